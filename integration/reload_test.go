package integration

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// bumpSerial replaces the SOA serial of the repository's example.test zone.
func bumpSerial(t *testing.T, zone string, serial uint32) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(\s*)2026112201(\s*; serial)`)
	if !re.MatchString(zone) {
		t.Fatal("test bug: serial line not found in zones/example.test.zone")
	}
	return re.ReplaceAllString(zone, fmt.Sprintf("${1}%d${2}", serial))
}

func serialOf(t *testing.T, addr, zone string) uint32 {
	t.Helper()
	r, err := Query(addr, zone, dns.TypeSOA, QueryOpts{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	t.Fatalf("no SOA for %s:\n%s", zone, r)
	return 0
}

// waitFor polls cond until it returns "" or the timeout passes; it returns the last message.
func waitFor(timeout time.Duration, cond func() string) string {
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" || time.Now().After(deadline) {
			return msg
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReload edits the zone file under a running server (reload 200ms): a new record is
// served and validates; a broken zone (CNAME beside other data) is rejected, the old data
// stays, and the log names the file and line; a fixed zone is picked up again.
func TestReload(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			orig := RepoZone(t, "example.test.zone")
			srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": orig}, Denial: mode, Reload: "200ms"})
			anchor, err := ReadAnchor(srv.KeyDir, "example.test")
			if err != nil {
				t.Fatal(err)
			}
			var delv *Delv
			if msg := PeerMissing("delv"); msg == "" {
				delv = NewDelv(t, srv, srv.Dir, anchor)
			} else {
				t.Log(msg + " (only direct checks)")
			}
			zf := srv.ZoneFile("example.test")
			if got := serialOf(t, srv.Addr, "example.test"); got != 2026112201 {
				t.Fatalf("initial serial %d", got)
			}
			check := func(l *Lab, qname string, qtype uint16) string {
				e := l.Zones.Resolve(qname, qtype)
				probs := JudgeDirect(l, qname, qtype, e)
				if len(probs) == 0 && delv != nil {
					probs = JudgeDelv(l, qname, qtype, e)
				}
				return strings.Join(probs, "\n")
			}
			labFor := func(content string) *Lab {
				zs, err := NewZoneSet(map[string]string{"example.test": content}, map[string]*Anchor{"example.test.": anchor})
				if err != nil {
					t.Fatal(err)
				}
				l := &Lab{Denial: mode, Srv: srv, Anchors: map[string]*Anchor{"example.test.": anchor}, Zones: zs, Delv: delv}
				zs.denial(l.ModeFor)
				return l
			}

			// 1. Add a TXT record and bump the serial.
			v2 := bumpSerial(t, orig, 2026112202) + "reloaded        IN TXT   \"reload-2\"\n"
			if err := os.WriteFile(zf, []byte(v2), 0o644); err != nil {
				t.Fatal(err)
			}
			lab2 := labFor(v2)
			if msg := waitFor(5*time.Second, func() string {
				if s := serialOf(t, srv.Addr, "example.test"); s != 2026112202 {
					return fmt.Sprintf("serial still %d", s)
				}
				return check(lab2, "reloaded.example.test", dns.TypeTXT)
			}); msg != "" {
				t.Fatalf("new record not served within 5s of the edit (reload 200ms):\n%s\nlog:\n%s", msg, tail(srv.LogPath, 3000))
			}
			// Denial must follow the new data too: the name was NXDOMAIN, now it has NODATA for A.
			if msg := check(lab2, "reloaded.example.test", dns.TypeA); msg != "" {
				t.Errorf("after reload: %s", msg)
			}
			if msg := check(lab2, "nope.example.test", dns.TypeA); msg != "" {
				t.Errorf("after reload: %s", msg)
			}

			// 2. A broken zone: a CNAME beside the A record of www (RFC 1034 §3.6.2, RFC 2181 §10.1).
			broken := bumpSerial(t, orig, 2026112203) + "reloaded        IN TXT   \"reload-3\"\n"
			brokenLine := strings.Count(broken, "\n") + 1
			broken += "www             IN CNAME mail.example.test.\n"
			if err := os.WriteFile(zf, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // several reload intervals
			if s := serialOf(t, srv.Addr, "example.test"); s != 2026112202 {
				t.Errorf("after writing a broken zone the serial is %d; the old zone (2026112202) should stay", s)
			}
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{"reloaded.example.test", dns.TypeTXT}, {"www.example.test", dns.TypeA}, {"www.example.test", dns.TypeCNAME}} {
				if msg := check(lab2, q.name, q.qtype); msg != "" {
					t.Errorf("after a broken zone, old data should be served: %s", msg)
				}
			}
			logText := srv.Log()
			if !strings.Contains(logText, "example.test.zone") {
				t.Errorf("the log does not name the broken file example.test.zone:\n%s", tail(srv.LogPath, 3000))
			}
			// The line of the offending CNAME, or of the A record it conflicts with.
			aLine := 0
			for i, l := range strings.Split(broken, "\n") {
				if strings.HasPrefix(l, "www ") && strings.Contains(l, " A ") {
					aLine = i + 1
				}
			}
			lineRe := regexp.MustCompile(fmt.Sprintf(`(?i)(line[ :=]*|\.zone:)(%d|%d)\b`, brokenLine, aLine))
			if !lineRe.MatchString(logText) {
				t.Errorf("the log does not give the line of the error (CNAME on line %d, conflicting A on line %d):\n%s",
					brokenLine, aLine, tail(srv.LogPath, 3000))
			}
			if !srv.proc.running() {
				t.Fatalf("server exited after a broken zone:\n%s", tail(srv.LogPath, 3000))
			}

			// 3. Fixed again: the new data is picked up.
			v4 := bumpSerial(t, orig, 2026112204) + "reloaded        IN TXT   \"reload-4\"\n"
			if err := os.WriteFile(zf, []byte(v4), 0o644); err != nil {
				t.Fatal(err)
			}
			lab4 := labFor(v4)
			if msg := waitFor(5*time.Second, func() string {
				if s := serialOf(t, srv.Addr, "example.test"); s != 2026112204 {
					return fmt.Sprintf("serial still %d", s)
				}
				return check(lab4, "reloaded.example.test", dns.TypeTXT)
			}); msg != "" {
				t.Errorf("fixed zone not served within 5s:\n%s", msg)
			}
		})
	}
}

package integration

// danezone as a hidden primary, judged by real secondaries (Knot, NSD, BIND) pulling over
// TSIG, by Unbound and delv validating what each secondary serves, by ldns-verify-zone and
// dnssec-verify on the transferred zone, and by kdig for IXFR.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hiddenPrimary is a danezone primary of example.test with three secondaries.
type hiddenPrimary struct {
	srv      *Server
	cfg      ServerConfig // KeyDir outside the server's directory, so a restart keeps the keys
	key      TSIGKey
	sec      []*Secondary
	anchor   *Anchor
	certFile string
}

const xfrZone = "example.test."

func startHiddenPrimary(t *testing.T) *hiddenPrimary {
	t.Helper()
	h := &hiddenPrimary{key: NewTSIGKey("xfr.example.test.")}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	primary := fmt.Sprintf("127.0.0.1:%d", port)
	var to []string
	for _, kind := range SecondaryKinds {
		s := StartSecondary(t, kind, []string{xfrZone}, primary, h.key)
		h.sec = append(h.sec, s)
		to = append(to, s.Addr)
	}
	// The TLSA of mx1 follows a certificate file.
	h.certFile = filepath.Join(t.TempDir(), "mx1.pem")
	tlWriteAtomic(t, h.certFile, tlLeaf(t, "mx1.example.test", nil, nil).CertPEM)
	h.cfg = ServerConfig{
		Zones:  map[string]string{"example.test": RepoZone(t, "example.test.zone")},
		Port:   port,
		Reload: "1s", // the default poll
		Block: []string{
			fmt.Sprintf("tsig {\n        secret %s %s\n        require AXFR IXFR\n    }", h.key.Name, h.key.Secret),
			"transfer {\n        to " + strings.Join(to, " ") + "\n    }",
		},
		Extra:  []string{"tlsa mx1.example.test cert " + h.certFile, "validity 30d"},
		KeyDir: t.TempDir(),
	}
	h.srv = StartServer(t, h.cfg)
	if h.anchor, err = ReadAnchor(h.srv.KeyDir, xfrZone); err != nil {
		t.Fatal(err)
	}
	want := serialOf(t, h.srv.Addr, xfrZone)
	for _, s := range h.sec {
		if err := s.WaitSerial(xfrZone, want, 15*time.Second); err != nil {
			t.Fatalf("%s did not get serial %d: %v\n%s", s.Kind, want, err, s.LogTail(3000))
		}
	}
	return h
}

// restart stops the primary and starts it again on the same port with the same keys.
func (h *hiddenPrimary) restart(t *testing.T, whileDown func(zone string) string) {
	t.Helper()
	text := mustRead(t, h.srv.ZoneFile(xfrZone))
	h.srv.Stop()
	if whileDown != nil {
		text = whileDown(text)
	}
	h.cfg.Zones = map[string]string{"example.test": text}
	h.srv = StartServer(t, h.cfg)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameZone compares two transfers as sets of records.
func sameZone(a, b []dns.RR) (bool, string) {
	set := func(rrs []dns.RR) map[string]bool {
		m := map[string]bool{}
		for _, rr := range rrs {
			c := dns.Copy(rr)
			c.Header().Ttl = 0 // secondaries may count TTLs differently; the data must match
			m[strings.ToLower(c.String())] = true
		}
		return m
	}
	x, y := set(a), set(b)
	var missing, extra []string
	for k := range x {
		if !y[k] {
			missing = append(missing, k)
		}
	}
	for k := range y {
		if !x[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing)+len(extra) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("missing %d %v; extra %d %v", len(missing), missing[:min(5, len(missing))], len(extra), extra[:min(5, len(extra))])
}

func TestHiddenPrimary(t *testing.T) {
	h := startHiddenPrimary(t)
	dir := t.TempDir()
	axfr, err := AXFR(h.srv.Addr, xfrZone, &h.key)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("transfer verified", func(t *testing.T) {
		var anchors []dns.RR
		for _, ds := range h.anchor.DS {
			anchors = append(anchors, ds)
		}
		if err := LdnsVerifyZone(axfr, dir, anchors...); err != nil {
			t.Error(err)
		}
		if err := DnssecVerify(axfr, xfrZone, dir); err != nil {
			t.Error(err)
		}
		types := map[uint16]int{}
		for _, rr := range axfr {
			types[rr.Header().Rrtype]++
		}
		for _, ty := range []uint16{dns.TypeDNSKEY, dns.TypeNSEC, dns.TypeRRSIG, dns.TypeTLSA, dns.TypeDS} {
			if types[ty] == 0 {
				t.Errorf("the transfer has no %s", dns.TypeToString[ty])
			}
		}
	})

	t.Run("secondaries serve the zone", func(t *testing.T) {
		for _, s := range h.sec {
			got, err := AXFR(s.Addr, xfrZone, &h.key)
			if err != nil {
				t.Errorf("%s: AXFR: %v", s.Kind, err)
				continue
			}
			if ok, diff := sameZone(axfr, got); !ok {
				t.Errorf("%s serves another zone than the primary's: %s", s.Kind, diff)
			}
		}
	})

	t.Run("validated through each secondary", func(t *testing.T) {
		zs, err := NewZoneSet(map[string]string{"example.test": RepoZone(t, "example.test.zone")}, map[string]*Anchor{xfrZone: h.anchor})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range h.sec {
			u, err := NewUnbound(Stub{Anchor: h.anchor, Addr: s.Addr})
			if err != nil {
				t.Fatalf("%s: %v", s.Kind, err)
			}
			defer u.Stop()
			d := &Delv{Server: "127.0.0.1", Port: s.Port}
			if d.Bin, err = lookPeer("delv"); err != nil {
				t.Fatal(PeerMissing("delv"))
			}
			d.AnchorsFile = filepath.Join(dir, s.Kind+"-anchors.conf")
			os.WriteFile(d.AnchorsFile, []byte(DelvAnchors(h.anchor)), 0o644)
			l := &Lab{Srv: &Server{Addr: s.Addr, Port: s.Port}, Anchors: map[string]*Anchor{xfrZone: h.anchor}, Zones: zs, Unbound: u, Delv: d}
			for _, c := range casesNamed(t, "mx1 A", "apex MX", "NXDOMAIN nope", "NODATA mx1 TXT", "CNAME chain webmail A") {
				if c.qtype == dns.TypeTLSA {
					continue // follows the certificate here, not the zone file
				}
				e := zs.Resolve(c.qname, c.qtype)
				for _, p := range JudgeUnbound(l, c.qname, c.qtype, e) {
					t.Errorf("%s: %s", s.Kind, p)
				}
				for _, p := range JudgeDelv(l, c.qname, c.qtype, e) {
					t.Errorf("%s: %s", s.Kind, p)
				}
			}
			r, err := u.Resolve("_25._tcp.mx1.example.test.", dns.TypeTLSA)
			if err != nil || r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || len(r.Answer) == 0 {
				t.Errorf("%s: the managed TLSA does not validate through it: %v\n%v", s.Kind, err, r)
			}
		}
	})

	t.Run("IXFR after an edit", func(t *testing.T) {
		before := serialOf(t, h.srv.Addr, xfrZone)
		text := mustRead(t, h.srv.ZoneFile(xfrZone)) + "ixfr-test IN A 192.0.2.99\n"
		tlWriteAtomic(t, h.srv.ZoneFile(xfrZone), []byte(text))
		after := waitSerialPast(t, h.srv.Addr, before, 5*time.Second)
		out, err := KdigIXFR(h.srv.Addr, xfrZone, before, h.key)
		if err != nil {
			t.Fatalf("kdig: %v\n%s", err, out)
		}
		rrs := KdigRecords(out)
		// RFC 1995 §4: new SOA, old SOA, deletions, new SOA, additions, new SOA.
		if len(rrs) < 4 || rrs[1].Header().Rrtype != dns.TypeSOA || rrs[1].(*dns.SOA).Serial != before {
			t.Fatalf("kdig IXFR=%d: not an incremental transfer:\n%s", before, out)
		}
		if len(rrs) > 20 || len(rrs) >= len(axfr)/2 {
			t.Errorf("kdig IXFR=%d: %d records for one new name (the zone has %d)", before, len(rrs), len(axfr))
		}
		found := false
		for _, rr := range rrs {
			found = found || strings.HasPrefix(rr.Header().Name, "ixfr-test.")
		}
		if !found {
			t.Errorf("kdig IXFR=%d: the new record is not in it:\n%s", before, out)
		}
		for _, s := range h.sec {
			if err := s.WaitSerial(xfrZone, after, 5*time.Second); err != nil {
				t.Errorf("%s: %v", s.Kind, err)
			}
		}
		t.Logf("IXFR %d→%d: %d records, zone %d", before, after, len(rrs), len(axfr))
	})

	t.Run("TLSA renewal reaches every secondary", func(t *testing.T) {
		leaf := tlLeaf(t, "mx1.example.test", nil, nil)
		want := tlsaOf(leaf)
		start := time.Now()
		tlWriteAtomic(t, h.certFile, leaf.CertPEM)
		var wg sync.WaitGroup
		took := make([]time.Duration, len(h.sec))
		for i, s := range h.sec {
			wg.Go(func() {
				for time.Since(start) < 10*time.Second {
					r, err := Query(s.Addr, "_25._tcp.mx1.example.test.", dns.TypeTLSA, QueryOpts{DO: true})
					if err == nil && slices.ContainsFunc(r.Answer, func(rr dns.RR) bool { return tlsaHex(rr) == want }) {
						took[i] = time.Since(start)
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		var last time.Duration
		for i, s := range h.sec {
			if took[i] == 0 {
				t.Errorf("%s does not serve the new TLSA 10 s after the certificate changed\n%s", s.Kind, s.LogTail(2000))
			}
			last = max(last, took[i])
			t.Logf("%s serves the new TLSA %v after the certificate file changed", s.Kind, took[i].Round(time.Millisecond))
		}
		// The target is 2 s with the 1 s poll; the race detector slows the primary.
		limit := 2 * time.Second
		if raceEnabled {
			limit *= 2
		}
		if last > limit {
			t.Errorf("the last secondary served the new TLSA after %v (limit %v)", last, limit)
		}
		u, err := NewUnbound(Stub{Anchor: h.anchor, Addr: h.sec[0].Addr})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Stop()
		r, err := u.Resolve("_25._tcp.mx1.example.test.", dns.TypeTLSA)
		if err != nil || !r.AuthenticatedData || !slices.ContainsFunc(r.Answer, func(rr dns.RR) bool { return tlsaHex(rr) == want }) {
			t.Errorf("the renewed TLSA does not validate through %s: %v\n%v", h.sec[0].Kind, err, r)
		}
	})

	t.Run("transfers without the key refused", func(t *testing.T) {
		if _, err := AXFR(h.srv.Addr, xfrZone, nil); err == nil || !strings.Contains(err.Error(), "5") {
			t.Errorf("AXFR without TSIG: %v, want REFUSED (rcode 5)", err)
		}
		other := NewTSIGKey("other.example.test.")
		if _, err := AXFR(h.srv.Addr, xfrZone, &other); err == nil {
			t.Error("AXFR signed with an unknown key accepted")
		}
		wrong := h.key
		wrong.Secret = NewTSIGKey(h.key.Name).Secret
		if _, err := AXFR(h.srv.Addr, xfrZone, &wrong); err == nil {
			t.Error("AXFR signed with the wrong secret accepted")
		}
		if _, err := IXFR(h.srv.Addr, xfrZone, 1, nil); err == nil {
			t.Error("IXFR without TSIG accepted")
		}
	})

	t.Run("serial across a restart and an edit made while stopped", func(t *testing.T) {
		before := serialOf(t, h.srv.Addr, xfrZone)
		h.restart(t, func(zone string) string {
			// Edited while down, the serial in the file left as it was.
			return zone + "while-down IN A 192.0.2.98\n"
		})
		after := serialOf(t, h.srv.Addr, xfrZone)
		if !SerialAtLeast(after, before+1) {
			t.Fatalf("serial %d after the restart, %d before", after, before)
		}
		for _, s := range h.sec { // NOTIFY at start
			if err := s.WaitSerial(xfrZone, after, 10*time.Second); err != nil {
				t.Errorf("%s: %v", s.Kind, err)
				continue
			}
			r, err := Query(s.Addr, "while-down.example.test.", dns.TypeA, QueryOpts{})
			if err != nil || len(r.Answer) != 1 {
				t.Errorf("%s does not serve the edit made while the primary was down: %v %v", s.Kind, err, r)
			}
		}
	})
}

// waitSerialPast waits until addr serves a serial other than before and returns it.
func waitSerialPast(t *testing.T, addr string, before uint32, timeout time.Duration) uint32 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s := serialOf(t, addr, xfrZone); s != before {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serial still %d after %v", before, timeout)
	return 0
}

// tlsaOf is the 3 1 1 record data of a certificate, computed here from the certificate.
func tlsaOf(c *tlCert) string {
	rr := &dns.TLSA{}
	if err := rr.Sign(3, 1, 1, c.Cert); err != nil { // usage, selector, matching type
		panic(err)
	}
	return strings.ToLower(rr.Certificate)
}

func tlsaHex(rr dns.RR) string {
	if t, ok := rr.(*dns.TLSA); ok && t.Usage == 3 && t.Selector == 1 && t.MatchingType == 1 {
		return strings.ToLower(t.Certificate)
	}
	return ""
}

// TestTwoSigners: two danezone instances serving the same zone with the same keys, both
// behind one Unbound as stub addresses: every answer validates, whichever instance gave it.
func TestTwoSigners(t *testing.T) {
	for _, mode := range []string{"nsec", "minimal"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			zones := map[string]string{"example.test": RepoZone(t, "example.test.zone")}
			l := StartLab(t, ServerConfig{Zones: zones, Denial: mode})
			// The second site: the same zone file and a copy of the key files.
			keys := t.TempDir()
			for _, p := range l.Anchors[xfrZone].KeyPaths {
				for _, f := range []string{p, strings.TrimSuffix(p, ".key") + ".private"} {
					os.WriteFile(filepath.Join(keys, filepath.Base(f)), []byte(mustRead(t, f)), 0o600)
				}
			}
			srv2 := StartServer(t, ServerConfig{Zones: zones, Denial: mode, KeyDir: keys})
			u, err := NewUnbound(Stub{Anchor: l.Anchors[xfrZone], Addr: l.Srv.Addr + " " + srv2.Addr})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Stop()
			both := *l
			both.Unbound = u

			seed := randomSeed(t)
			t.Logf("seed %d (rerun with DANELAB_IT_SEED=%d)", seed, seed)
			rng := rand.New(rand.NewPCG(seed, seed^0x51f1))
			qs := randomQueriesFor(rng, l.Zones.Zones[xfrZone], 1000)
			var mu sync.Mutex
			var failed []string
			work := make(chan randomQuery)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for q := range work {
						e := l.Zones.Resolve(q.name, q.qtype)
						if probs := JudgeUnbound(&both, q.name, q.qtype, e); len(probs) > 0 {
							mu.Lock()
							failed = append(failed, fmt.Sprintf("%s %s: %s", q.name, typeString(q.qtype), strings.Join(probs, "; ")))
							mu.Unlock()
						}
					}
				})
			}
			for _, q := range qs {
				work <- q
			}
			close(work)
			wg.Wait()
			if len(failed) > 0 {
				t.Errorf("%d of %d answers through two signers failed (seed %d); first: %s", len(failed), len(qs), seed, failed[0])
			}
			// Both instances answered a share of them.
			for _, s := range []*Server{l.Srv, srv2} {
				if n := strings.Count(mustRead(t, s.LogPath), "example.test."); n < 10 {
					t.Errorf("the instance on %s answered %d questions: Unbound did not use both", s.Addr, n)
				}
			}
		})
	}
}

// TestTransferNSEC3: in the NSEC3 modes a secondary receives the whole NSEC3 chain and the
// NSEC3PARAM (in nsec3-narrow, the chain its white lies stand for, which a secondary cannot
// make): ldns-verify-zone and dnssec-verify pass the transfer, Knot serves it as the primary
// does, and Unbound and delv validate the negative answers Knot makes from it.
func TestTransferNSEC3(t *testing.T) {
	for _, mode := range []string{"nsec3", "nsec3-narrow"} {
		t.Run(mode, func(t *testing.T) {
			key := NewTSIGKey("xfr.example.test.")
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			sec := StartSecondary(t, "knot", []string{xfrZone}, fmt.Sprintf("127.0.0.1:%d", port), key)
			text := RepoZone(t, "example.test.zone")
			srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": text}, Port: port, Denial: mode,
				Block: []string{
					fmt.Sprintf("tsig {\n        secret %s %s\n        require AXFR IXFR\n    }", key.Name, key.Secret),
					"transfer {\n        to " + sec.Addr + "\n    }",
				}})
			anchor, err := ReadAnchor(srv.KeyDir, xfrZone)
			if err != nil {
				t.Fatal(err)
			}
			if err := sec.WaitSerial(xfrZone, serialOf(t, srv.Addr, xfrZone), 15*time.Second); err != nil {
				t.Fatalf("knot did not get the zone: %v\n%s", err, sec.LogTail(3000))
			}
			axfr, err := AXFR(srv.Addr, xfrZone, &key)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var anchors []dns.RR
			for _, ds := range anchor.DS {
				anchors = append(anchors, ds)
			}
			if err := LdnsVerifyZone(axfr, dir, anchors...); err != nil {
				t.Error(err)
			}
			if err := DnssecVerify(axfr, xfrZone, dir); err != nil {
				t.Error(err)
			}
			zs, err := NewZoneSet(map[string]string{"example.test": text}, map[string]*Anchor{xfrZone: anchor})
			if err != nil {
				t.Fatal(err)
			}
			zs.denial(func(string) string { return mode })
			types := map[uint16]int{}
			for _, rr := range axfr {
				types[rr.Header().Rrtype]++
			}
			if n := len(zs.ZoneFor(xfrZone).NSEC3Chain()); types[dns.TypeNSEC3] != n || types[dns.TypeNSEC3PARAM] != 1 || types[dns.TypeNSEC] != 0 {
				t.Errorf("the transfer has %d NSEC3 (the zone has %d names), %d NSEC3PARAM, %d NSEC", types[dns.TypeNSEC3], n, types[dns.TypeNSEC3PARAM], types[dns.TypeNSEC])
			}
			got, err := AXFR(sec.Addr, xfrZone, &key)
			if err != nil {
				t.Fatal(err)
			}
			if ok, diff := sameZone(axfr, got); !ok {
				t.Errorf("knot serves another zone than the primary's: %s", diff)
			}
			u, err := NewUnbound(Stub{Anchor: anchor, Addr: sec.Addr})
			if err != nil {
				t.Fatal(err)
			}
			defer u.Stop()
			d := &Delv{Server: "127.0.0.1", Port: sec.Port, AnchorsFile: filepath.Join(dir, "anchors.conf")}
			if d.Bin, err = lookPeer("delv"); err != nil {
				t.Fatal(PeerMissing("delv"))
			}
			os.WriteFile(d.AnchorsFile, []byte(DelvAnchors(anchor)), 0o644)
			l := &Lab{Denial: mode, Srv: &Server{Addr: sec.Addr, Port: sec.Port}, Anchors: map[string]*Anchor{xfrZone: anchor}, Zones: zs, Unbound: u, Delv: d}
			for _, c := range casesNamed(t, "NXDOMAIN nope", "NODATA mx1 TXT", "ENT NODATA _tcp.mx1 A", "wildcard A", "wildcard NODATA TXT", "DS at insecure delegation") {
				e := zs.Resolve(c.qname, c.qtype)
				for _, p := range append(JudgeUnbound(l, c.qname, c.qtype, e), JudgeDelv(l, c.qname, c.qtype, e)...) {
					t.Errorf("through knot: %s", p)
				}
			}
		})
	}
}

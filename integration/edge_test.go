package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDNAME: a zone with a DNAME (RFC 6672) must either be rejected at load, or the names
// below the DNAME owner must be answered by substitution, validating as secure. Serving them
// as NXDOMAIN contradicts the signed DNAME and validators call the answer bogus.
func TestDNAME(t *testing.T) {
	t.Parallel()
	zone := `$ORIGIN dn.test.
$TTL 600
@     IN SOA ns1.dn.test. hostmaster.dn.test. 1 3600 900 1209600 120
      IN NS  ns1.dn.test.
ns1   IN A   127.0.0.1
old   IN DNAME new.dn.test.
www.new IN A 127.0.0.50
`
	srv, err := NewServer(ServerConfig{Zones: map[string]string{"dn.test": zone}, Denial: "nsec"})
	if err != nil {
		if strings.Contains(strings.ToUpper(err.Error()), "DNAME") {
			t.Logf("a zone with a DNAME is rejected at load: fine")
			return
		}
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	a, err := ReadAnchor(srv.KeyDir, "dn.test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Query(srv.Addr, "www.old.dn.test", dns.TypeA, QueryOpts{DO: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess || !hasType(r.Answer, dns.TypeDNAME) || !hasType(r.Answer, dns.TypeCNAME) {
		t.Errorf("www.old.dn.test A: want DNAME substitution (NOERROR, DNAME + CNAME + A), got rcode %s\n%s", dns.RcodeToString[r.Rcode], r)
	}
	if PeerMissing("delv") == "" {
		d := NewDelv(t, srv, srv.Dir, a)
		res, err := d.Query("dn.test", "www.old.dn.test", dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Secure || res.Rcode != dns.RcodeSuccess {
			t.Errorf("delv www.old.dn.test A: not a validated answer:\n%s", res.Output)
		}
	}
}

// TestReloadUnderLoad rewrites the zone file every few hundred milliseconds while clients
// query; every answer must carry valid signatures and match one of the versions, and the
// (race-built, under -race) server must not report a data race.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	orig := RepoZone(t, "example.test.zone")
	srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": orig}, Denial: "minimal", Reload: "100ms"})
	anchor, err := ReadAnchor(srv.KeyDir, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]*Anchor{"example.test.": anchor}
	const versions = 8
	zs0, err := NewZoneSet(map[string]string{"example.test": orig}, anchors)
	if err != nil {
		t.Fatal(err)
	}
	models := []*ZoneSet{zs0} // the zone before the first rewrite
	var texts []string
	for v := range versions {
		text := bumpSerial(t, orig, uint32(2026112202+v)) + fmt.Sprintf("_mta-sts IN TXT \"version %d\"\n", v)
		zs, err := NewZoneSet(map[string]string{"example.test": text}, anchors)
		if err != nil {
			t.Fatal(err)
		}
		models = append(models, zs)
		texts = append(texts, text)
	}
	queries := []struct {
		name  string
		qtype uint16
	}{
		{"_mta-sts.example.test", dns.TypeTXT}, {"mx1.example.test", dns.TypeA}, {"nope.example.test", dns.TypeA},
		{"foo.users.example.test", dns.TypeMX}, {"webmail.example.test", dns.TypeA}, {"mx1.example.test", dns.TypeTXT},
		{"example.test", dns.TypeSOA}, {"example.test", dns.TypeDNSKEY},
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		problems []string
		count    atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for !stop.Load() {
				q := queries[rng.IntN(len(queries))]
				r, err := QueryFull(srv.Addr, q.name, q.qtype, QueryOpts{DO: true, TCP: rng.IntN(4) == 0})
				count.Add(1)
				var msg string
				if err != nil {
					msg = err.Error()
				} else {
					msg = checkAgainstVersions(r, q.name, q.qtype, models, anchors)
				}
				if msg != "" {
					mu.Lock()
					if len(problems) < 10 {
						problems = append(problems, msg)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for v := range versions {
		time.Sleep(300 * time.Millisecond)
		if err := os.WriteFile(srv.ZoneFile("example.test"), []byte(texts[v]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if got := serialOf(t, srv.Addr, "example.test"); got != 2026112202+versions-1 {
		t.Errorf("final serial %d, want %d", got, 2026112202+versions-1)
	}
	t.Logf("%d queries during %d reloads", count.Load(), versions)
}

// checkAgainstVersions checks a DO response: signatures verify, and rcode and answer match at
// least one of the zone versions.
func checkAgainstVersions(r *dns.Msg, qname string, qtype uint16, models []*ZoneSet, anchors map[string]*Anchor) string {
	q := qname + " " + typeString(qtype)
	for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
		sets, sigs, order := groupRRsets(sec)
		for _, k := range order {
			if err := verifyRRset(sets[k], sigs[k], anchors, time.Now()); err != nil {
				return fmt.Sprintf("%s: %s %s: %v\n%s", q, k.name, typeString(k.rtype), err, r)
			}
		}
	}
	var last string
	for _, zs := range models {
		e := zs.Resolve(qname, qtype)
		if r.Rcode != e.Rcode {
			last = fmt.Sprintf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[e.Rcode])
			continue
		}
		if e.Kind == Positive {
			if ok, d := sameRRs(e.Answer, r.Answer); !ok {
				last = d
				continue
			}
		}
		return ""
	}
	return fmt.Sprintf("%s: matches no zone version (%s)\n%s", q, last, r)
}

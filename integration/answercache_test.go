package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cacheHits reads the answer cache's hit counter from the server's metrics.
func cacheHits(t *testing.T, metricsAddr string) int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^coredns_danezone_answer_cache_hits_total\{[^}]*\} (\d+)`).FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}

// freeAddr returns a free local address, for the prometheus plugin.
func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// exchange sends m and returns the response, checked for the ID.
func exchange(t *testing.T, addr string, m *dns.Msg, tcp bool) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second, UDPSize: 65535}
	if tcp {
		c.Net = "tcp"
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	if r.Id != m.Id {
		t.Fatalf("%s: response ID %d for query %d", m.Question[0].Name, r.Id, m.Id)
	}
	return r
}

// normal is a response in presentation form without its ID, to compare responses to
// different queries. With fresh, the signatures' validity and signature are left out: the
// per-answer modes sign each uncached answer anew, with a jittered expiration.
func normal(r *dns.Msg, fresh bool) string {
	c := r.Copy()
	c.Id = 0
	if fresh {
		for _, rr := range append(append(c.Answer[:len(c.Answer):len(c.Answer)], c.Ns...), c.Extra...) {
			if sig, ok := rr.(*dns.RRSIG); ok {
				sig.Inception, sig.Expiration, sig.Signature = 0, 0, ""
			}
		}
	}
	return c.String()
}

// TestAnswerCacheSameBytes asks every kind of question three ways: with an EDNS option the
// server does not echo (which the answer cache never answers), then twice without (the first
// may fill the cache, the second comes from it, as a different name's NXDOMAIN may). All three
// must be the same response, down to the letter case of the question and the answer owners,
// the RD and CD flags, the OPT record and truncation, for DO and not, UDP sizes 512 to 4096,
// without EDNS and over TCP. The server's own metrics show the cache answered.
func TestAnswerCacheSameBytes(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	for _, mode := range []string{"nsec", "nsec3", "nsec3-narrow", "compact"} {
		t.Run(mode, func(t *testing.T) {
			srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": RepoZone(t, "example.test.zone")},
				Denial: mode, Block: []string{"prometheus " + metricsAddr}})
			rng := rand.New(rand.NewPCG(uint64(len(mode)), 7))
			questions := []struct {
				name  string
				qtype uint16
			}{
				{"example.test.", dns.TypeMX}, {"example.test.", dns.TypeSOA}, {"example.test.", dns.TypeDNSKEY},
				{"example.test.", dns.TypeTXT}, {"example.test.", dns.TypeNS}, {"example.test.", dns.TypeANY},
				{"mx1.example.test.", dns.TypeA}, {"mx1.example.test.", dns.TypeAAAA}, {"mx1.example.test.", dns.TypeMX},
				{"_25._tcp.mx1.example.test.", dns.TypeTLSA}, {"_tcp.mx1.example.test.", dns.TypeA},
				{"mail.example.test.", dns.TypeA}, {"webmail.example.test.", dns.TypeA}, {"webmail.example.test.", dns.TypeTLSA},
				{"alice.users.example.test.", dns.TypeMX}, {"bob.users.example.test.", dns.TypeTXT},
				{"x.signed.example.test.", dns.TypeA}, {"signed.example.test.", dns.TypeDS}, {"unsigned.example.test.", dns.TypeDS},
				{"mx1.example.test.", dns.TypeNSEC}, {"mx1.example.test.", dns.TypeRRSIG},
			}
			for i := range 12 { // names that do not exist, some in the same gap of the chain
				questions = append(questions, struct {
					name  string
					qtype uint16
				}{fmt.Sprintf("nx%d.example.test.", i%4*100+i), dns.TypeA},
					struct {
						name  string
						qtype uint16
					}{fmt.Sprintf("zz%d.mx1.example.test.", i), dns.TypeTXT})
			}
			fresh := mode != "nsec" && mode != "nsec3" // per-answer proofs
			before := cacheHits(t, metricsAddr)
			compared, kept := 0, 0
			for _, q := range questions {
				for _, v := range []struct {
					do, noEDNS, tcp bool
					size            uint16
				}{{do: true, size: 1232}, {do: true, size: 4096}, {do: true, size: 512}, {do: false, size: 1232},
					{noEDNS: true}, {do: true, size: 1232, tcp: true}} {
					name := randomCase(rng, q.name)
					rd, cd := rng.IntN(2) == 0, rng.IntN(2) == 0
					ask := func(option bool) *dns.Msg {
						m := new(dns.Msg)
						m.SetQuestion(name, q.qtype)
						m.RecursionDesired, m.CheckingDisabled = rd, cd
						if !v.noEDNS {
							m.SetEdns0(v.size, v.do)
							if option {
								o := m.IsEdns0()
								o.Option = append(o.Option, &dns.EDNS0_LOCAL{Code: 65001})
							}
						}
						return exchange(t, srv.Addr, m, v.tcp)
					}
					var ref *dns.Msg
					if !v.noEDNS {
						ref = ask(true)
					}
					first, second := ask(false), ask(false)
					if ref == nil {
						ref = first
					}
					label := fmt.Sprintf("%s %s do=%v size=%d noedns=%v tcp=%v", name, dns.TypeToString[q.qtype], v.do, v.size, v.noEDNS, v.tcp)
					if normal(first, fresh) != normal(ref, fresh) {
						t.Errorf("%s: response differs from the uncached one:\n%s\nuncached:\n%s", label, first, ref)
					}
					if normal(second, fresh) != normal(ref, fresh) {
						t.Errorf("%s: cached response differs from the uncached one:\n%s\nuncached:\n%s", label, second, ref)
					}
					if second.Question[0].Name != name {
						t.Errorf("%s: question spelled %s", label, second.Question[0].Name)
					}
					compared++
					// Kept: all but what a wildcard made and per-name proofs (see the README).
					nx := strings.HasPrefix(q.name, "nx") || strings.HasPrefix(q.name, "zz")
					if !strings.Contains(q.name, ".users.") && !(fresh && v.do && nx) {
						kept++
					}
				}
			}
			hits := cacheHits(t, metricsAddr) - before
			// Every second plain query it keeps at least, and more (the proofs shared by names).
			if hits < kept {
				t.Errorf("the answer cache answered %d of %d repeated questions it keeps", hits, kept)
			}
			t.Logf("%d questions compared, %d answered from the cache", compared, hits)
		})
	}
}

// TestAnswerCacheZoneFlip changes the zone under a flood of queries from the cache (positive,
// NODATA and NXDOMAIN, with DO): once any response carries the new version, no query sent
// after it is answered from the old one. Every response must be one version throughout: the
// TXT record and the SOA serial of the negative answers say which.
func TestAnswerCacheZoneFlip(t *testing.T) {
	t.Parallel()
	orig := RepoZone(t, "example.test.zone")
	srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": orig}, Reload: "100ms"})
	const oldSerial, newSerial = 2026112201, 2026112299
	re := regexp.MustCompile(`(?m)^(_dmarc\s+IN\s+TXT\s+)`)
	if !re.MatchString(orig) {
		t.Fatal("test bug: no _dmarc TXT line in zones/example.test.zone")
	}
	newZone := re.ReplaceAllString(bumpSerial(t, orig, newSerial), `${1}"flip" `)
	questions := []struct {
		name  string
		qtype uint16
	}{{"_dmarc.example.test.", dns.TypeTXT}, {"mx1.example.test.", dns.TypeTXT}, {"nx1.example.test.", dns.TypeA},
		{"nx2.example.test.", dns.TypeA}, {"www.example.test.", dns.TypeMX}}

	// version says which zone a response comes from: 1 old, 2 new, 0 cannot tell.
	version := func(r *dns.Msg) int {
		for _, rr := range r.Answer {
			if txt, ok := rr.(*dns.TXT); ok && strings.HasPrefix(txt.Hdr.Name, "_dmarc") {
				if len(txt.Txt) > 0 && txt.Txt[0] == "flip" {
					return 2
				}
				return 1
			}
		}
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				switch soa.Serial {
				case oldSerial:
					return 1
				case newSerial:
					return 2
				}
			}
		}
		return 0
	}
	type result struct {
		sent, got time.Time
		v         int
		name      string
	}
	var (
		mu       sync.Mutex
		results  []result
		firstNew atomic.Int64 // UnixNano when a response of the new version first arrived
		stop     atomic.Bool
		wg       sync.WaitGroup
		failures atomic.Int32
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second, UDPSize: 65535}
			for i := w; !stop.Load(); i++ {
				q := questions[i%len(questions)]
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				m.SetEdns0(1232, true)
				sent := time.Now()
				r, _, err := c.Exchange(m, srv.Addr)
				got := time.Now()
				if err != nil || r.Truncated {
					failures.Add(1)
					continue
				}
				v := version(r)
				if v == 2 {
					firstNew.CompareAndSwap(0, got.UnixNano())
				}
				mu.Lock()
				results = append(results, result{sent, got, v, q.name})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond) // the cache fills with the old version
	tmp := srv.ZoneFile("example.test") + ".new"
	if err := os.WriteFile(tmp, []byte(newZone), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, srv.ZoneFile("example.test")); err != nil {
		t.Fatal(err)
	}
	if msg := waitFor(10*time.Second, func() string {
		if firstNew.Load() == 0 {
			return "no response of the new version"
		}
		return ""
	}); msg != "" {
		stop.Store(true)
		wg.Wait()
		t.Fatal(msg)
	}
	time.Sleep(700 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	switchAt := time.Unix(0, firstNew.Load())
	var before, after, stale, unknown int
	for _, r := range results {
		switch {
		case r.v == 0:
			unknown++
		case r.sent.After(switchAt):
			after++
			if r.v != 2 {
				stale++
				if stale <= 5 {
					t.Errorf("%s sent %s after the first new answer: answered from the old version", r.name, r.sent.Sub(switchAt))
				}
			}
		case r.v == 1:
			before++
		}
	}
	if unknown > 0 || failures.Load() > 0 {
		t.Errorf("%d responses of no known version, %d failed queries", unknown, failures.Load())
	}
	if before < 100 || after < 100 {
		t.Errorf("flood too thin to judge: %d old answers before the switch, %d after", before, after)
	}
	if stale > 0 {
		t.Errorf("%d of %d responses to queries sent after the switch came from the old version", stale, after)
	}
	t.Logf("%d responses before the switch, %d after (none stale)", before, after)
}

// TestAnswerCacheLogPlugin runs CoreDNS's log plugin before danezone, logging only denials
// (`class denial`), and asks each question twice: the second answer, to a query with other
// flags (CD, no RD) and letter case, comes from the answer cache, which keeps bytes. The log
// plugin must see every answer as sent: the NXDOMAIN and NODATA logged both times with their
// rcode, their own flags and size, the positive answer not at all (the plugin classifies the
// message it is given: without one, a cached answer would be logged as an error, or not as a
// denial; with the first asker's, with its flags).
func TestAnswerCacheLogPlugin(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	srv := StartServer(t, ServerConfig{Zones: map[string]string{"example.test": RepoZone(t, "example.test.zone")},
		Block: []string{"prometheus " + metricsAddr,
			"log . \"seen {>id} {name} {type} {rcode} {>rflags} {rsize}\" {\n class denial\n }"}})
	questions := []struct {
		name   string
		qtype  uint16
		rcode  string
		denial bool
	}{
		{"nx1.example.test.", dns.TypeA, "NXDOMAIN", true},
		{"mx1.example.test.", dns.TypeTXT, "NOERROR", true},
		{"mx1.example.test.", dns.TypeA, "NOERROR", false},
	}
	before := cacheHits(t, metricsAddr)
	want := map[uint16]string{} // ID -> the log line the answer must give
	var silent []uint16
	for round := range 2 {
		for i, q := range questions {
			m := new(dns.Msg)
			m.SetQuestion(q.name, q.qtype)
			m.Id = uint16(1000 + 10*round + i)
			m.SetEdns0(1232, true)
			flags := "qr,aa,rd"
			if round == 1 { // the cached answer's flags are this query's, not the first asker's
				m.Question[0].Name = strings.ToUpper(q.name)
				m.RecursionDesired, m.CheckingDisabled = false, true
				flags = "qr,aa,cd"
			}
			size, r := exchangeRaw(t, srv.Addr, m)
			if got := dns.RcodeToString[r.Rcode]; got != q.rcode {
				t.Fatalf("%s %s: %s, want %s", q.name, dns.TypeToString[q.qtype], got, q.rcode)
			}
			if !q.denial {
				silent = append(silent, m.Id)
				continue
			}
			want[m.Id] = fmt.Sprintf("seen %d %s %s %s %s %d", m.Id, q.name, dns.TypeToString[q.qtype], q.rcode, flags, size)
		}
	}
	if hits := cacheHits(t, metricsAddr) - before; hits < len(questions) {
		t.Fatalf("the answer cache answered %d of the second round's %d questions", hits, len(questions))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, missing := srv.Log(), []string(nil)
		for _, line := range want {
			if !strings.Contains(log, line+"\n") {
				missing = append(missing, line)
			}
		}
		if len(missing) == 0 {
			for _, id := range silent {
				if strings.Contains(log, fmt.Sprintf("seen %d ", id)) {
					t.Fatalf("a positive answer (ID %d) logged as a denial:\n%s", id, log)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines missing: %q\nlog:\n%s", missing, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exchangeRaw sends m over UDP and returns the response and its size on the wire.
func exchangeRaw(t *testing.T, addr string, m *dns.Msg) (int, *dns.Msg) {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("udp", addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s: %v", m.Question[0].Name, err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if r.Id != m.Id {
		t.Fatalf("response ID %d for query %d", r.Id, m.Id)
	}
	return n, r
}

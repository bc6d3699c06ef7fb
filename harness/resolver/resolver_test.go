package resolver

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func resolve(t *testing.T, r *Resolver, name string, qtype uint16) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := r.Resolve(ctx, name, qtype)
	if err != nil {
		t.Fatalf("Resolve %s %s: %v", name, dns.Type(qtype), err)
	}
	return res
}

type want struct {
	verdict Verdict
	rcode   int
	ede     uint16
	answer  uint16 // a type the answer section must hold for the name (0: none checked)
	reason  string // a substring of the reason
}

func check(t *testing.T, res *Result, name string, qtype uint16, w want) {
	t.Helper()
	if res.Verdict != w.verdict || res.Msg.Rcode != w.rcode || res.EDE != w.ede ||
		(w.reason != "" && !strings.Contains(res.Reason, w.reason)) {
		t.Errorf("%s %s: got %s rcode %s EDE %d (%s); want %s rcode %s EDE %d (%q)", name, dns.Type(qtype),
			res.Verdict, dns.RcodeToString[res.Msg.Rcode], res.EDE, res.Reason,
			w.verdict, dns.RcodeToString[w.rcode], w.ede, w.reason)
	}
	if res.Msg.AuthenticatedData != (res.Verdict == Secure) {
		t.Errorf("%s %s: AD=%v with verdict %s", name, dns.Type(qtype), res.Msg.AuthenticatedData, res.Verdict)
	}
	if w.answer != 0 {
		found := false
		for _, rr := range res.Msg.Answer {
			if rr.Header().Rrtype == w.answer && equalNames(rr.Header().Name, lastOwner(res, name)) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s: no %s in the answer %v", name, dns.Type(qtype), dns.Type(w.answer), res.Msg.Answer)
		}
	}
}

// lastOwner is the name at the end of the CNAME chain.
func lastOwner(res *Result, name string) string {
	if len(res.Chain) > 0 {
		return res.Chain[len(res.Chain)-1].Target
	}
	return canonical(name)
}

func TestVerdicts(t *testing.T) {
	r := New(fix.config(fix.base))
	cases := []struct {
		name  string
		qtype uint16
		want  want
	}{
		// secure positive, NXDOMAIN, NODATA, empty non-terminal, wildcards
		{"www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"WWW.Example.TEST", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"_25._tcp.mx1.example.test.", dns.TypeTLSA, want{verdict: Secure, answer: dns.TypeTLSA}},
		{"nope.example.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"_25._tcp.nope.example.test.", dns.TypeTLSA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"x._tcp.mx1.example.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"www.example.test.", dns.TypeTXT, want{verdict: Secure}},
		{"mx1.example.test.", dns.TypeTLSA, want{verdict: Secure}},
		{"_tcp.mx1.example.test.", dns.TypeA, want{verdict: Secure}}, // empty non-terminal
		{"users.example.test.", dns.TypeA, want{verdict: Secure}},    // empty non-terminal above a wildcard
		{"foo.users.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"a.b.users.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"foo.users.example.test.", dns.TypeTXT, want{verdict: Secure}}, // wildcard NODATA
		{"example.test.", dns.TypeDNSKEY, want{verdict: Secure, answer: dns.TypeDNSKEY}},
		{"example.test.", dns.TypeDS, want{verdict: Secure, answer: dns.TypeDS}},
		{"test.", dns.TypeSOA, want{verdict: Secure, answer: dns.TypeSOA}},
		{".", dns.TypeNS, want{verdict: Secure, answer: dns.TypeNS}},
		{"nope.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		// other algorithms: RSASHA256 (8), ED25519 (15)
		{"www.rsa.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"nope.rsa.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"www.ed.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"nope.ed.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		// NS names without glue
		{"www.noglue.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		// insecure delegations
		{"www.unsigned.test.", dns.TypeA, want{verdict: Insecure, answer: dns.TypeA, reason: "unsigned delegation"}},
		{"nope.unsigned.test.", dns.TypeA, want{verdict: Insecure, rcode: dns.RcodeNameError}},
		{"unsigned.test.", dns.TypeDS, want{verdict: Secure}}, // the proof itself is secure
		{"www.alg16.test.", dns.TypeA, want{verdict: Insecure, answer: dns.TypeA, ede: dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm}},
		// bogus
		{"badsig.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, reason: "verification failed"}},
		{"nosig.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing}},
		{"expired.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired, reason: "expired"}},
		{"www.dsmismatch.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing, reason: "matches its DS"}},
		{"x.nonsec.example.test.", dns.TypeA, want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeNSECMissing}},
		// NSEC3
		{"www.nsec3.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"nope.nsec3.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"x.y.nsec3.test.", dns.TypeA, want{verdict: Secure, rcode: dns.RcodeNameError}},
		{"www.nsec3.test.", dns.TypeTXT, want{verdict: Secure}},
		{"b.nsec3.test.", dns.TypeA, want{verdict: Secure}}, // empty non-terminal
		{"x.wild.nsec3.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"x.wild.nsec3.test.", dns.TypeTXT, want{verdict: Secure}},
		{"www.unsigned.nsec3.test.", dns.TypeA, want{verdict: Insecure, answer: dns.TypeA, reason: "unsigned delegation"}},
		{"unsigned.nsec3.test.", dns.TypeDS, want{verdict: Secure}},
		{"www.iter.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
		{"nope.iter.test.", dns.TypeA, want{verdict: Insecure, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeUnsupportedNSEC3IterValue}},
		// truncation: UDP gives TC=1, TCP the answer
		{"tc.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA}},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+dns.Type(c.qtype).String(), func(t *testing.T) {
			res := resolve(t, r, c.name, c.qtype)
			check(t, res, c.name, c.qtype, c.want)
			t.Logf("%s %s: %s %s EDE %d: %s (%d sig checks, %d queries)", c.name, dns.Type(c.qtype), res.Verdict,
				dns.RcodeToString[res.Msg.Rcode], res.EDE, res.Reason, res.SigChecks, res.Queries)
		})
	}
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	r := New(fix.config(fix.base))
	s := fix.servers[fix.zones["example.test."].ip]
	before := s.tcpQueries.Load()
	res := resolve(t, r, "tc.example.test.", dns.TypeA)
	check(t, res, "tc.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	if s.tcpQueries.Load() == before {
		t.Errorf("no TCP query after TC=1")
	}
}

func TestCNAMEChains(t *testing.T) {
	r := New(fix.config(fix.base))
	type link struct {
		owner, target string
		v             Verdict
	}
	cases := []struct {
		name  string
		want  want
		links []link
	}{
		{"mail.example.test.", want{verdict: Secure, answer: dns.TypeA}, []link{{"mail.example.test.", "www.example.test.", Secure}}},
		{"webmail.example.test.", want{verdict: Secure, answer: dns.TypeA}, []link{
			{"webmail.example.test.", "mail.example.test.", Secure}, {"mail.example.test.", "www.example.test.", Secure}}},
		{"ext.example.test.", want{verdict: Secure, answer: dns.TypeA}, []link{{"ext.example.test.", "www.nsec3.test.", Secure}}},
		// a secure link into an unsigned zone: the final answer is insecure
		{"alias.example.test.", want{verdict: Insecure, answer: dns.TypeA}, []link{{"alias.example.test.", "www.unsigned.test.", Secure}}},
		// a secure link to a bogus answer
		{"badlink.example.test.", want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus}, []link{{"badlink.example.test.", "badsig.example.test.", Secure}}},
		// a DNAME substitution, then the target's own zone
		{"www.dn.example.test.", want{verdict: Secure, answer: dns.TypeA}, []link{{"www.dn.example.test.", "www.nsec3.test.", Secure}}},
		{"nope.dn.example.test.", want{verdict: Secure, rcode: dns.RcodeNameError}, []link{{"nope.dn.example.test.", "nope.nsec3.test.", Secure}}},
		{"loop1.example.test.", want{verdict: Indeterminate, reason: "loop"}, []link{
			{"loop1.example.test.", "loop2.example.test.", Secure}, {"loop2.example.test.", "loop1.example.test.", Secure}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := resolve(t, r, c.name, dns.TypeA)
			check(t, res, c.name, dns.TypeA, c.want)
			if len(res.Chain) != len(c.links) {
				t.Fatalf("chain %v, want %v", res.Chain, c.links)
			}
			for i, l := range c.links {
				g := res.Chain[i]
				if g.Owner != l.owner || g.Target != l.target || g.Verdict != l.v {
					t.Errorf("link %d: %+v, want %+v", i, g, l)
				}
			}
		})
	}
	// The CNAME itself, asked for.
	res := resolve(t, r, "alias.example.test.", dns.TypeCNAME)
	check(t, res, "alias.example.test.", dns.TypeCNAME, want{verdict: Secure, answer: dns.TypeCNAME})
	res = resolve(t, r, "www.dn.example.test.", dns.TypeCNAME)
	check(t, res, "www.dn.example.test.", dns.TypeCNAME, want{verdict: Secure, answer: dns.TypeCNAME})
	res = resolve(t, r, "dn.example.test.", dns.TypeDNAME)
	check(t, res, "dn.example.test.", dns.TypeDNAME, want{verdict: Secure, answer: dns.TypeDNAME})
}

// The same signatures are secure now, bogus (expired) 30 days later and not yet valid 30
// days earlier.
func TestVirtualTime(t *testing.T) {
	for _, c := range []struct {
		at   time.Time
		want want
	}{
		{fix.base, want{verdict: Secure, answer: dns.TypeTLSA}},
		{fix.base.Add(6 * 24 * time.Hour), want{verdict: Secure, answer: dns.TypeTLSA}},
		{fix.base.Add(30 * 24 * time.Hour), want{verdict: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired, reason: "expired"}},
		{fix.base.Add(-30 * 24 * time.Hour), want{verdict: Bogus, ede: dns.ExtendedErrorCodeSignatureNotYetValid, reason: "not valid before"}},
	} {
		r := New(fix.config(c.at))
		res := resolve(t, r, "_25._tcp.mx1.example.test.", dns.TypeTLSA)
		check(t, res, "_25._tcp.mx1.example.test.", dns.TypeTLSA, c.want)
	}
	// Unbound-like skew forgives a signature that expired an hour ago, not one a day ago.
	cfg := fix.config(fix.base.Add(7*24*time.Hour + time.Hour))
	cfg.SigSkewMin, cfg.SigSkewMax = time.Hour, 2*time.Hour
	res := resolve(t, New(cfg), "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	cfg.Now = func() time.Time { return fix.base.Add(8 * 24 * time.Hour) }
	res = resolve(t, New(cfg), "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired})
}

func TestTrustAnchors(t *testing.T) {
	// A DNSKEY anchor works as well as a DS.
	cfg := fix.config(fix.base)
	cfg.TrustAnchors = []dns.RR{fix.rootKSK}
	res := resolve(t, New(cfg), "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})

	// A wrong anchor makes everything bogus.
	other, _ := genKey(".", 257)
	cfg.TrustAnchors = []dns.RR{other.ToDS(dns.SHA256)}
	res = resolve(t, New(cfg), "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSKEYMissing, answer: dns.TypeA})

	// An anchor for a zone below the root: names elsewhere are indeterminate.
	cfg.TrustAnchors = []dns.RR{fix.zones["example.test."].ds()}
	r := New(cfg)
	res = resolve(t, r, "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	res = resolve(t, r, "www.nsec3.test.", dns.TypeA)
	check(t, res, "www.nsec3.test.", dns.TypeA, want{verdict: Indeterminate, ede: dns.ExtendedErrorCodeDNSSECIndeterminate, answer: dns.TypeA, reason: "no trust anchor"})
}

func TestTimeouts(t *testing.T) {
	cfg := fix.config(fix.base)
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	res := resolve(t, New(cfg), "drop.example.test.", dns.TypeA)
	check(t, res, "drop.example.test.", dns.TypeA, want{verdict: Indeterminate, rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeNoReachableAuthority})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}

	// Nothing listens at the root address: a retry, then indeterminate.
	pc, err := listenUDP()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // bound, never read: queries time out
	cfg.Roots = []string{pc.LocalAddr().String()}
	cfg.Retries = 1
	res = resolve(t, New(cfg), "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Indeterminate, rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeNoReachableAuthority})
	if res.Queries != 2 {
		t.Errorf("%d queries, want 2 (one retry)", res.Queries)
	}
}

func TestKeyTrap(t *testing.T) {
	// Defaults: at most 8 RRSIGs tried, 4 keys each.
	r := New(fix.config(fix.base))
	res := resolve(t, r, "www.keytrap.test.", dns.TypeA)
	check(t, res, "www.keytrap.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, answer: dns.TypeA, reason: "share a key tag"})
	if res.SigChecks > 5+8*4 {
		t.Errorf("%d signature checks, more than the caps allow", res.SigChecks)
	}
	t.Logf("defaults: %d signature checks: %s", res.SigChecks, res.Reason)

	// A lower cap per answer.
	cfg := fix.config(fix.base)
	cfg.MaxSigChecks = 16
	res = resolve(t, New(cfg), "www.keytrap.test.", dns.TypeA)
	check(t, res, "www.keytrap.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, answer: dns.TypeA, reason: "too many signature validations"})
	if res.SigChecks != 16 {
		t.Errorf("%d signature checks, want the cap 16", res.SigChecks)
	}
	// The zone's other data is fine.
	res = resolve(t, r, "keytrap.test.", dns.TypeSOA)
	check(t, res, "keytrap.test.", dns.TypeSOA, want{verdict: Secure, answer: dns.TypeSOA})
}

type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) set(t time.Time)         { c.t.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func TestCacheVirtualTTL(t *testing.T) {
	var clk clock
	clk.set(fix.base)
	cfg := fix.config(fix.base)
	cfg.Now = clk.now
	cfg.Cache = true
	r := New(cfg)
	ttlOf := func(res *Result) uint32 {
		for _, rr := range res.Msg.Answer {
			if rr.Header().Rrtype == dns.TypeA {
				return rr.Header().Ttl
			}
		}
		t.Fatalf("no A in %v", res.Msg.Answer)
		return 0
	}
	res := resolve(t, r, "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	if res.Queries == 0 {
		t.Fatalf("first resolution sent no query")
	}
	clk.advance(100 * time.Second)
	res = resolve(t, r, "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	if res.Queries != 0 || ttlOf(res) != 200 {
		t.Errorf("after 100s: %d queries, TTL %d; want 0 queries, TTL 200", res.Queries, ttlOf(res))
	}
	// Another name of the zone: the delegation and keys come from the cache.
	res = resolve(t, r, "mx1.example.test.", dns.TypeA)
	check(t, res, "mx1.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	if res.Queries != 1 {
		t.Errorf("mx1: %d queries, want 1", res.Queries)
	}
	clk.advance(201 * time.Second) // the A RRset (TTL 300) has expired, the keys (3600) not
	res = resolve(t, r, "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	if res.Queries != 1 || ttlOf(res) != 300 {
		t.Errorf("after 301s: %d queries, TTL %d; want 1 query, TTL 300", res.Queries, ttlOf(res))
	}
	r.Flush()
	res = resolve(t, r, "www.example.test.", dns.TypeA)
	if res.Queries < 3 {
		t.Errorf("after Flush: %d queries", res.Queries)
	}
	// Virtual time also judges cached signatures: 30 days later they have expired.
	clk.advance(30 * 24 * time.Hour)
	res = resolve(t, r, "www.example.test.", dns.TypeA)
	check(t, res, "www.example.test.", dns.TypeA, want{verdict: Bogus, ede: dns.ExtendedErrorCodeSignatureExpired, answer: dns.TypeA})
}

func TestMisuse(t *testing.T) {
	r := New(fix.config(fix.base))
	ctx := context.Background()
	if _, err := r.Resolve(ctx, "bad..name", dns.TypeA); err == nil {
		t.Errorf("invalid name accepted")
	}
	if _, err := r.Resolve(ctx, "www.example.test.", dns.TypeANY); err == nil {
		t.Errorf("ANY accepted")
	}
	if _, err := New(Config{}).Resolve(ctx, "www.example.test.", dns.TypeA); err == nil {
		t.Errorf("no roots accepted")
	}
}

func TestVerdictString(t *testing.T) {
	for v, s := range map[Verdict]string{Secure: "secure", Insecure: "insecure", Bogus: "bogus", Indeterminate: "indeterminate", Verdict(9): "Verdict(9)"} {
		if v.String() != s {
			t.Errorf("%d: %q, want %q", int(v), v.String(), s)
		}
	}
}

// RFC 4034 §6.1: the example names in canonical order.
func TestCanonicalOrder(t *testing.T) {
	names := []string{
		"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`,
	}
	for i := range names {
		for j := range names {
			got := compareNames(names[i], names[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", names[i], names[j], got, want)
			}
		}
	}
	if !nsecCovers("a.example.", "z.example.", "b.example.") || nsecCovers("a.example.", "z.example.", "a.example.") {
		t.Errorf("nsecCovers: plain interval")
	}
	if !nsecCovers("z.example.", "example.", "zz.example.") || nsecCovers("z.example.", "example.", "b.example.") {
		t.Errorf("nsecCovers: last NSEC of the chain")
	}
}

func TestConcurrentResolves(t *testing.T) {
	cfg := fix.config(fix.base)
	cfg.Cache = true
	r := New(cfg)
	names := []string{"www.example.test.", "mail.example.test.", "nope.example.test.", "www.unsigned.test.", "www.nsec3.test.", "alias.example.test."}
	done := make(chan *Result, 4*len(names))
	for range 4 {
		for _, n := range names {
			go func() {
				res, err := r.Resolve(context.Background(), n, dns.TypeA)
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
		}
	}
	for range 4 * len(names) {
		if res := <-done; res != nil && (res.Verdict == Bogus || res.Verdict == Indeterminate) {
			t.Errorf("%s: %s (%s)", res.Msg.Question[0].Name, res.Verdict, res.Reason)
		}
	}
}

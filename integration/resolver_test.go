package integration

// Differential tests of the Go validating resolver (harness/resolver) against Unbound on the
// same lab (harness/lab): for every answer class and every danezone fault mode, the Go
// resolver's verdict must be Unbound's — secure ↔ AD=1; insecure ↔ NOERROR/NXDOMAIN without
// AD; bogus ↔ SERVFAIL with a DNSSEC EDE (the same code); indeterminate ↔ SERVFAIL without a
// DNSSEC EDE, or no answer.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/internal/peer"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
)

var diffDomains = []lab.Domain{
	{Name: "example.test", Records: []string{
		"@ MX 10 mx1", "@ MX 20 mx2", "mx1 A 127.0.0.11", "mx2 A 127.0.0.12",
		"_25._tcp.mx1 TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1",
		"_25._tcp.mx2 TLSA 3 1 1 5d9a4ef1a48b7e0f2be7d3b9c4a5f11ab2bd0a3f8f4a1d3e2c6b7a8d9e0f1a2b",
		"mail CNAME mx1", "*.users A 127.0.0.20", "alias CNAME mx.plain.test.",
		"_25._tcp.shared CNAME _25._tcp.mx1"}},
	{Name: "minimal.test", Denial: "minimal", Records: []string{"@ MX 10 mx", "mx A 127.0.0.30"}},
	{Name: "hashed.test", Denial: "nsec3", Records: hashedRecords},
	{Name: "narrow.test", Denial: "nsec3-narrow", Records: hashedRecords},
	{Name: "compact.test", Denial: "compact", Records: hashedRecords},
	{Name: "optout.test", Denial: "nsec3 optout", Records: append(hashedRecords, "insecure NS ns.insecure", "ns.insecure A 127.0.0.35")},
	{Name: "plain.test", Unsigned: true, Records: []string{"@ MX 10 mx", "mx A 127.0.0.31"}},
	{Name: "child.example.test", Records: []string{"mx A 127.0.0.32", "_25._tcp.mx TLSA 3 1 1 0102030405060708091011121314151617181920212223242526272829303132"}},
}

// hashedRecords are a mail domain's records for the NSEC3 and compact denial modes: an MX
// host with TLSA (an empty non-terminal above it) and a wildcard.
var hashedRecords = []string{"@ MX 10 mx", "mx A 127.0.0.33",
	"_25._tcp.mx TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1", "*.w A 127.0.0.34"}

// unboundFor starts an Unbound with the lab's configuration (fresh cache).
func unboundFor(t *testing.T, l *lab.Lab) string {
	t.Helper()
	bin := peer.Need(t, "unbound")
	dir := t.TempDir()
	anchor := filepath.Join(dir, "root.anchor")
	if err := l.WriteAnchor(anchor); err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	conf := filepath.Join(dir, "unbound.conf")
	if err := l.WriteUnboundConfig(conf, lab.UnboundOptions{Listen: addr, AnchorFile: anchor, Dir: dir, Verbosity: 1}); err != nil {
		t.Fatal(err)
	}
	bin, err = copyExecutable(bin, filepath.Join(dir, "unbound")) // AppArmor confines the packaged path
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("test.", dns.TypeSOA)
	for range 50 {
		if _, _, err := c.Exchange(m, addr); err == nil {
			return addr
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "unbound.log"))
	t.Fatalf("unbound did not start:\n%s", b)
	return ""
}

// verdictOf classifies Unbound's answer in the Go resolver's vocabulary.
func verdictOf(r *dns.Msg, err error) (resolver.Verdict, uint16) {
	if err != nil {
		return resolver.Indeterminate, 0
	}
	var ede uint16
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				ede = e.InfoCode
			}
		}
	}
	switch {
	case r.Rcode == dns.RcodeServerFailure && dnssecEDE(ede):
		return resolver.Bogus, ede
	case r.Rcode == dns.RcodeServerFailure:
		return resolver.Indeterminate, ede
	case r.AuthenticatedData:
		return resolver.Secure, 0
	}
	return resolver.Insecure, 0
}

func dnssecEDE(c uint16) bool { return c >= 1 && c <= 12 }

// askUnbound asks and retries once after Unbound's discard-timeout (a stub would retry).
func askUnbound(addr, name string, qtype uint16) (*dns.Msg, error) {
	c := &dns.Client{Timeout: 4 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	var r *dns.Msg
	var err error
	for range 3 {
		if r, _, err = c.Exchange(m, addr); err == nil {
			return r, nil
		}
	}
	return nil, err
}

func newGoResolver(l *lab.Lab) *resolver.Resolver {
	host, port, _ := net.SplitHostPort(l.Addr)
	p, _ := strconv.Atoi(port)
	return resolver.New(resolver.Config{TrustAnchors: l.Anchor, Roots: []string{net.JoinHostPort(host, port)}, Port: p,
		Timeout: 700 * time.Millisecond, Retries: 1, Cache: true})
}

type diffQ struct {
	name  string
	qtype uint16
}

func compare(t *testing.T, ctx context.Context, label string, g *resolver.Resolver, ub string, q diffQ) {
	t.Helper()
	res, err := g.Resolve(ctx, q.name, q.qtype)
	if err != nil {
		t.Errorf("%s: %s %s: Go resolver: %v", label, q.name, dns.TypeToString[q.qtype], err)
		return
	}
	uv, uede := verdictOf(askUnbound(ub, q.name, q.qtype))
	t.Logf("%s: %s %s: Go %s EDE %d (%s); Unbound %s EDE %d", label, q.name, dns.TypeToString[q.qtype], res.Verdict, res.EDE, res.Reason, uv, uede)
	if res.Verdict != uv {
		t.Errorf("%s: %s %s: Go %s (%s, EDE %d), Unbound %s (EDE %d)", label, q.name, dns.TypeToString[q.qtype], res.Verdict, res.Reason, res.EDE, uv, uede)
		return
	}
	if uv == resolver.Bogus && res.EDE != uede {
		t.Errorf("%s: %s %s: both bogus, Go EDE %d (%s), Unbound EDE %d", label, q.name, dns.TypeToString[q.qtype], res.EDE, res.Reason, uede)
	}
	if uv == resolver.Secure || uv == resolver.Insecure {
		if ur, _ := askUnbound(ub, q.name, q.qtype); ur != nil && ur.Rcode != res.Msg.Rcode {
			t.Errorf("%s: %s %s: rcode Go %s, Unbound %s", label, q.name, dns.TypeToString[q.qtype], dns.RcodeToString[res.Msg.Rcode], dns.RcodeToString[ur.Rcode])
		}
	}
}

// TestResolverDifferentialAnswers: every answer class of the lab, Go resolver against Unbound.
func TestResolverDifferentialAnswers(t *testing.T) {
	l, err := lab.Start(lab.Config{Domains: diffDomains})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	ub := unboundFor(t, l)
	g := newGoResolver(l)
	ctx := context.Background()
	for _, q := range []diffQ{
		{"example.test", dns.TypeMX}, {"_25._tcp.mx1.example.test", dns.TypeTLSA}, // positive
		{"nope.example.test", dns.TypeA}, {"_25._tcp.nope.example.test", dns.TypeTLSA}, // NXDOMAIN
		{"mx1.example.test", dns.TypeTXT}, {"_tcp.mx1.example.test", dns.TypeA}, // NODATA, ENT
		{"a.users.example.test", dns.TypeA}, {"a.b.users.example.test", dns.TypeA}, {"a.users.example.test", dns.TypeTXT}, // wildcards
		{"mail.example.test", dns.TypeA}, {"_25._tcp.shared.example.test", dns.TypeTLSA}, // CNAME chains
		{"alias.example.test", dns.TypeA},                                                        // CNAME into an unsigned zone
		{"mx.plain.test", dns.TypeA}, {"nope.plain.test", dns.TypeA}, {"plain.test", dns.TypeDS}, // insecure delegation
		{"child.example.test", dns.TypeDS}, {"_25._tcp.mx.child.example.test", dns.TypeTLSA}, // secure delegation
		{"nope.minimal.test", dns.TypeMX}, {"mx.minimal.test", dns.TypeTXT}, // minimal denial
		{"nope.hashed.test", dns.TypeMX}, {"_25._tcp.nope.hashed.test", dns.TypeTLSA}, {"mx.hashed.test", dns.TypeTXT}, {"_tcp.mx.hashed.test", dns.TypeA}, {"_25._tcp.mx.hashed.test", dns.TypeTLSA}, {"a.w.hashed.test", dns.TypeA}, {"a.w.hashed.test", dns.TypeTLSA}, {"hashed.test", dns.TypeNSEC3PARAM},
		{"nope.narrow.test", dns.TypeMX}, {"_25._tcp.nope.narrow.test", dns.TypeTLSA}, {"mx.narrow.test", dns.TypeTXT}, {"_tcp.mx.narrow.test", dns.TypeA}, {"_25._tcp.mx.narrow.test", dns.TypeTLSA}, {"a.w.narrow.test", dns.TypeA}, {"a.w.narrow.test", dns.TypeTLSA}, {"narrow.test", dns.TypeNSEC3PARAM},
		{"nope.compact.test", dns.TypeMX}, {"_25._tcp.nope.compact.test", dns.TypeTLSA}, {"mx.compact.test", dns.TypeTXT}, {"_tcp.mx.compact.test", dns.TypeA}, {"_25._tcp.mx.compact.test", dns.TypeTLSA}, {"a.w.compact.test", dns.TypeA}, {"a.w.compact.test", dns.TypeTLSA}, {"compact.test", dns.TypeNSEC3PARAM},
		{"nope.optout.test", dns.TypeMX}, {"_25._tcp.nope.optout.test", dns.TypeTLSA}, {"mx.optout.test", dns.TypeTXT}, {"_tcp.mx.optout.test", dns.TypeA}, {"_25._tcp.mx.optout.test", dns.TypeTLSA}, {"a.w.optout.test", dns.TypeA}, {"a.w.optout.test", dns.TypeTLSA}, {"optout.test", dns.TypeNSEC3PARAM},
		{"insecure.optout.test", dns.TypeDS}, {"x.insecure.optout.test", dns.TypeA}, // opt-out
		{"nope.test", dns.TypeA}, {"test", dns.TypeDNSKEY}, {".", dns.TypeSOA},
	} {
		compare(t, ctx, "no fault", g, ub, q)
	}
}

// TestResolverDifferentialFaults: every fault mode, each on a lab of its own.
func TestResolverDifferentialFaults(t *testing.T) {
	peer.Need(t, "unbound")
	type faultRun struct {
		spec fault.Spec
		qs   []diffQ
	}
	tlsa := diffQ{"_25._tcp.mx1.example.test", dns.TypeTLSA}
	runs := map[string]faultRun{}
	for _, m := range []fault.Mode{fault.ServFail, fault.Refused, fault.NotImp, fault.FormErr, fault.Drop, fault.Truncate,
		fault.TruncateNoTCP, fault.ExpiredSig, fault.FutureSig, fault.BadSig, fault.NoSig, fault.WrongKey,
		fault.TLSAMismatch, fault.TLSAUnusable, fault.TLSAAbsent} {
		runs[string(m)] = faultRun{fault.Spec{Mode: m, Name: tlsa.name, Type: "TLSA"}, []diffQ{tlsa, {"_25._tcp.mx2.example.test", dns.TypeTLSA}}}
	}
	runs["delay"] = faultRun{fault.Spec{Mode: fault.Delay, Name: tlsa.name, Type: "TLSA", Delay: fault.Duration(300 * time.Millisecond)}, []diffQ{tlsa}}
	for _, m := range []fault.Mode{fault.NoDenial, fault.BadDenial} {
		runs[string(m)] = faultRun{fault.Spec{Mode: m, Name: "*nope.example.test"}, []diffQ{{"_25._tcp.nope.example.test", dns.TypeTLSA}, {"mx1.example.test", dns.TypeA}}}
	}
	runs["nsec3-iterations"] = faultRun{fault.Spec{Mode: fault.NSEC3Iterations, Name: "*nope.hashed.test"},
		[]diffQ{{"_25._tcp.nope.hashed.test", dns.TypeTLSA}, {"nope.hashed.test", dns.TypeMX}, {"mx.hashed.test", dns.TypeTXT}}}
	runs["nsec3-iterations-151"] = faultRun{fault.Spec{Mode: fault.NSEC3Iterations, Name: "*.example.test", Iterations: 151},
		[]diffQ{{"_25._tcp.nope.example.test", dns.TypeTLSA}, {"mx1.example.test", dns.TypeTXT}, tlsa}}
	runs["nsec3-iterations-150"] = faultRun{fault.Spec{Mode: fault.NSEC3Iterations, Name: "*.example.test", Iterations: 150},
		[]diffQ{{"_25._tcp.nope.example.test", dns.TypeTLSA}, {"mx1.example.test", dns.TypeTXT}}}
	for _, m := range []fault.Mode{fault.CompactNoNXNAME, fault.CompactTypeInBitmap} {
		runs[string(m)] = faultRun{fault.Spec{Mode: m, Name: "*.compact.test"},
			[]diffQ{{"_25._tcp.nope.compact.test", dns.TypeTLSA}, {"mx.compact.test", dns.TypeTXT}, {"_25._tcp.mx.compact.test", dns.TypeTLSA}}}
	}
	for _, m := range []fault.Mode{fault.DSMismatch, fault.Insecure} {
		runs[string(m)] = faultRun{fault.Spec{Mode: m, Name: "child.example.test"}, []diffQ{{"_25._tcp.mx.child.example.test", dns.TypeTLSA}, tlsa}}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 4)
	for name, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			t.Run(name, func(t *testing.T) {
				l, err := lab.Start(lab.Config{Domains: diffDomains})
				if err != nil {
					t.Fatal(err)
				}
				defer l.Stop()
				if _, err := l.AddFault(run.spec); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				ub := unboundFor(t, l)
				mu.Unlock()
				g := newGoResolver(l)
				for _, q := range run.qs {
					compare(t, context.Background(), fmt.Sprint(name), g, ub, q)
				}
			})
		}()
	}
	wg.Wait()
}

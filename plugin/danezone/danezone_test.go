package danezone

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/internal/canonical"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/miekg/dns"
)

const testZone = `$ORIGIN example.test.
$TTL 3600
@             SOA   ns1 hostmaster 2026112201 3600 900 1209600 300
@             NS    ns1
@             MX    10 mx1
ns1           A     127.0.0.1
mx1           A     127.0.0.11
mx1           AAAA  ::1
_25._tcp.mx1  TLSA  3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1
big           TXT   "` + "%BIG%" + `"
mail          CNAME mx1
webmail       CNAME mail
out           CNAME mx.elsewhere.test.
dangling      CNAME nothere
*.users       A     127.0.0.20
*.users       MX    10 mx1
sub           NS    ns.sub
sub           DS    31589 13 2 3490a6806d47f17a34c29e2ce80e8a999ffbe4be8f8d1b3c9e7a5b4c3d2e1f00
ns.sub        A     127.0.0.31
insecure      NS    ns.elsewhere.test.
`

// newTestZone starts danezone on testZone in a temporary directory.
func newTestZone(t testing.TB, mode denial.Mode) (*DaneZone, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "example.test.zone")
	txt := strings.Repeat("0123456789", 25)
	data := strings.Replace(testZone, "%BIG%", txt+`" "`+txt+`" "`+txt+`" "`+txt+`" "`+txt, 1)
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config{path: file, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: serial.File,
		mode: mode, modes: map[string]denial.Mode{}, policy: signer.DefaultPolicy(), answerCache: defaultAnswerCache}
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Next = test.ErrorHandler()
	return d, file
}

// serveRaw returns the response, or nil when none was written.
func serveRaw(t *testing.T, d *DaneZone, m *dns.Msg) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if _, err := d.ServeDNS(context.Background(), rec, m); err != nil {
		t.Fatal(err)
	}
	return rec.Msg
}

func serve(t *testing.T, d *DaneZone, m *dns.Msg) *dns.Msg {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	if _, err := d.ServeDNS(context.Background(), rec, m); err != nil {
		t.Fatalf("%s %s: %v", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return rec.Msg
}

// Expectations written from the DNS rules and the zone above. Canonical order of the NSEC
// chain: example.test, big, dangling, insecure, mail, mx1, _25._tcp.mx1, ns1, out, sub, *.users,
// webmail (users and _tcp.mx1 are empty non-terminals, ns.sub is occluded glue).
var nsecCases = []test.Case{
	{Qname: "mx1.example.test.", Qtype: dns.TypeA, Do: true,
		Answer: []dns.RR{test.A("mx1.example.test. 3600 IN A 127.0.0.11"), test.RRSIG("mx1.example.test. 3600 IN RRSIG A 13 3 3600 0 0 0 example.test. x")}},
	{Qname: "MX1.Example.TEST.", Qtype: dns.TypeAAAA, Do: true,
		Answer: []dns.RR{test.AAAA("MX1.Example.TEST. 3600 IN AAAA ::1"), test.RRSIG("MX1.Example.TEST. 3600 IN RRSIG AAAA 13 3 3600 0 0 0 example.test. x")}},
	{Qname: "nope.example.test.", Qtype: dns.TypeA, Do: true, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("_25._tcp.mx1.example.test. 300 IN NSEC ns1.example.test. TLSA RRSIG NSEC"),
			test.RRSIG("_25._tcp.mx1.example.test. 300 IN RRSIG NSEC 13 5 300 0 0 0 example.test. x"),
			test.NSEC("example.test. 300 IN NSEC big.example.test. NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY"),
			test.RRSIG("example.test. 300 IN RRSIG NSEC 13 2 300 0 0 0 example.test. x"),
		}},
	{Qname: "nope.example.test.", Qtype: dns.TypeA, Rcode: dns.RcodeNameError,
		Ns: []dns.RR{test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300")}},
	{Qname: "mx1.example.test.", Qtype: dns.TypeA,
		Answer: []dns.RR{test.A("mx1.example.test. 3600 IN A 127.0.0.11")}},
	{Qname: "mx1.example.test.", Qtype: dns.TypeTXT, Do: true,
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("mx1.example.test. 300 IN NSEC _25._tcp.mx1.example.test. A AAAA RRSIG NSEC"),
			test.RRSIG("mx1.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "_tcp.mx1.example.test.", Qtype: dns.TypeA, Do: true, // empty non-terminal
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("mx1.example.test. 300 IN NSEC _25._tcp.mx1.example.test. A AAAA RRSIG NSEC"),
			test.RRSIG("mx1.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "foo.users.example.test.", Qtype: dns.TypeA, Do: true, // wildcard expansion
		Answer: []dns.RR{
			test.A("foo.users.example.test. 3600 IN A 127.0.0.20"),
			test.RRSIG("foo.users.example.test. 3600 IN RRSIG A 13 3 3600 0 0 0 example.test. x"),
		},
		Ns: []dns.RR{
			test.NSEC("*.users.example.test. 300 IN NSEC webmail.example.test. A MX RRSIG NSEC"),
			test.RRSIG("*.users.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "a.b.users.example.test.", Qtype: dns.TypeMX, Do: true, // deep wildcard expansion
		Answer: []dns.RR{
			test.MX("a.b.users.example.test. 3600 IN MX 10 mx1.example.test."),
			test.RRSIG("a.b.users.example.test. 3600 IN RRSIG MX 13 3 3600 0 0 0 example.test. x"),
		},
		Ns: []dns.RR{
			test.NSEC("*.users.example.test. 300 IN NSEC webmail.example.test. A MX RRSIG NSEC"),
			test.RRSIG("*.users.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "foo.users.example.test.", Qtype: dns.TypeTXT, Do: true, // wildcard NODATA
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("*.users.example.test. 300 IN NSEC webmail.example.test. A MX RRSIG NSEC"),
			test.RRSIG("*.users.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "webmail.example.test.", Qtype: dns.TypeA, Do: true, // CNAME chain
		Answer: []dns.RR{
			test.CNAME("webmail.example.test. 3600 IN CNAME mail.example.test."),
			test.RRSIG("webmail.example.test. 3600 IN RRSIG CNAME 13 3 3600 0 0 0 example.test. x"),
			test.CNAME("mail.example.test. 3600 IN CNAME mx1.example.test."),
			test.RRSIG("mail.example.test. 3600 IN RRSIG CNAME 13 3 3600 0 0 0 example.test. x"),
			test.A("mx1.example.test. 3600 IN A 127.0.0.11"),
			test.RRSIG("mx1.example.test. 3600 IN RRSIG A 13 3 3600 0 0 0 example.test. x"),
		}},
	{Qname: "dangling.example.test.", Qtype: dns.TypeA, Do: true, Rcode: dns.RcodeNameError, // RFC 6604
		Answer: []dns.RR{
			test.CNAME("dangling.example.test. 3600 IN CNAME nothere.example.test."),
			test.RRSIG("dangling.example.test. 3600 IN RRSIG CNAME 13 3 3600 0 0 0 example.test. x"),
		},
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("_25._tcp.mx1.example.test. 300 IN NSEC ns1.example.test. TLSA RRSIG NSEC"),
			test.RRSIG("_25._tcp.mx1.example.test. 300 IN RRSIG NSEC 13 5 300 0 0 0 example.test. x"),
			test.NSEC("example.test. 300 IN NSEC big.example.test. NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY"),
			test.RRSIG("example.test. 300 IN RRSIG NSEC 13 2 300 0 0 0 example.test. x"),
		}},
	{Qname: "out.example.test.", Qtype: dns.TypeA, Do: true, // CNAME out of the zone
		Answer: []dns.RR{
			test.CNAME("out.example.test. 3600 IN CNAME mx.elsewhere.test."),
			test.RRSIG("out.example.test. 3600 IN RRSIG CNAME 13 3 3600 0 0 0 example.test. x"),
		}},
	{Qname: "mail.example.test.", Qtype: dns.TypeCNAME, Do: true,
		Answer: []dns.RR{
			test.CNAME("mail.example.test. 3600 IN CNAME mx1.example.test."),
			test.RRSIG("mail.example.test. 3600 IN RRSIG CNAME 13 3 3600 0 0 0 example.test. x"),
		}},
	{Qname: "x.sub.example.test.", Qtype: dns.TypeMX, Do: true, // secure delegation
		Ns: []dns.RR{
			test.NS("sub.example.test. 3600 IN NS ns.sub.example.test."),
			test.DS("sub.example.test. 3600 IN DS 31589 13 2 3490a6806d47f17a34c29e2ce80e8a999ffbe4be8f8d1b3c9e7a5b4c3d2e1f00"),
			test.RRSIG("sub.example.test. 3600 IN RRSIG DS 13 3 3600 0 0 0 example.test. x"),
		},
		Extra: []dns.RR{test.A("ns.sub.example.test. 3600 IN A 127.0.0.31")}},
	{Qname: "sub.example.test.", Qtype: dns.TypeDS, Do: true, // DS from the parent side
		Answer: []dns.RR{
			test.DS("sub.example.test. 3600 IN DS 31589 13 2 3490a6806d47f17a34c29e2ce80e8a999ffbe4be8f8d1b3c9e7a5b4c3d2e1f00"),
			test.RRSIG("sub.example.test. 3600 IN RRSIG DS 13 3 3600 0 0 0 example.test. x"),
		}},
	{Qname: "insecure.example.test.", Qtype: dns.TypeA, Do: true, // insecure delegation
		Ns: []dns.RR{
			test.NS("insecure.example.test. 3600 IN NS ns.elsewhere.test."),
			test.NSEC("insecure.example.test. 300 IN NSEC mail.example.test. NS RRSIG NSEC"),
			test.RRSIG("insecure.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "insecure.example.test.", Qtype: dns.TypeDS, Do: true, // provably no DS
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("insecure.example.test. 300 IN NSEC mail.example.test. NS RRSIG NSEC"),
			test.RRSIG("insecure.example.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 example.test. x"),
		}},
	{Qname: "example.test.", Qtype: dns.TypeNSEC, Do: true,
		Answer: []dns.RR{
			test.NSEC("example.test. 300 IN NSEC big.example.test. NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY"),
			test.RRSIG("example.test. 300 IN RRSIG NSEC 13 2 300 0 0 0 example.test. x"),
		}},
	{Qname: "example.test.", Qtype: dns.TypeNSEC3PARAM, Do: true,
		Ns: []dns.RR{
			test.SOA("example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112201 3600 900 1209600 300"),
			test.RRSIG("example.test. 300 IN RRSIG SOA 13 2 3600 0 0 0 example.test. x"),
			test.NSEC("example.test. 300 IN NSEC big.example.test. NS SOA MX RRSIG NSEC DNSKEY CDS CDNSKEY"),
			test.RRSIG("example.test. 300 IN RRSIG NSEC 13 2 300 0 0 0 example.test. x"),
		}},
	{Qname: "example.test.", Qtype: dns.TypeANY, Do: true, // RFC 8482: one RRset
		Answer: []dns.RR{
			test.NS("example.test. 3600 IN NS ns1.example.test."),
			test.RRSIG("example.test. 3600 IN RRSIG NS 13 2 3600 0 0 0 example.test. x"),
		}},
}

func TestLookupNSEC(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	model := modelOf(t, file)
	for _, tc := range nsecCases {
		t.Run(tc.Qname+"/"+dns.TypeToString[tc.Qtype], func(t *testing.T) {
			m := tc.Msg()
			resp := serve(t, d, m)
			if err := test.SortAndCheck(resp, sorted(tc)); err != nil {
				t.Error(err)
			}
			judge(t, d, model, m, resp)
		})
	}
}

// TestLookupMinimal asks the same questions in minimal mode: the answers are the same, the
// proofs differ and are judged for what they prove.
func TestLookupMinimal(t *testing.T) {
	d, file := newTestZone(t, denial.Minimal)
	model := modelOf(t, file)
	for _, tc := range nsecCases {
		t.Run(tc.Qname+"/"+dns.TypeToString[tc.Qtype], func(t *testing.T) {
			m := tc.Msg()
			resp := serve(t, d, m)
			tc.Ns = withoutNSEC(tc.Ns)
			if tc.Qtype == dns.TypeNSEC {
				tc.Answer = nil
			}
			resp2 := resp.Copy()
			resp2.Ns = withoutNSEC(resp2.Ns)
			if tc.Qtype == dns.TypeNSEC {
				resp2.Answer = nil
			}
			if err := test.SortAndCheck(resp2, sorted(tc)); err != nil {
				t.Error(err)
			}
			judge(t, d, model, m, resp)
		})
	}
}

// sorted orders the expected sections the way SortAndCheck orders the response's.
func sorted(tc test.Case) test.Case {
	for _, sec := range [][]dns.RR{tc.Answer, tc.Ns, tc.Extra} {
		sort.Sort(test.RRSet(sec))
	}
	return tc
}

func withoutNSEC(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeNSEC {
			continue
		}
		if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeNSEC {
			continue
		}
		out = append(out, rr)
	}
	return out
}

func TestTruncation(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	m := new(dns.Msg)
	m.SetQuestion("big.example.test.", dns.TypeTXT)
	m.SetEdns0(512, true)
	resp := serve(t, d, m) // test.ResponseWriter is UDP
	if !resp.Truncated || len(resp.Answer) != 0 {
		t.Fatalf("UDP 512: want TC=1 and no partial answer, got TC=%v answer=%d", resp.Truncated, len(resp.Answer))
	}
	rec := dnstest.NewRecorder(&test.ResponseWriter{TCP: true})
	if _, err := d.ServeDNS(context.Background(), rec, m); err != nil {
		t.Fatal(err)
	}
	if rec.Msg.Truncated || len(rec.Msg.Answer) != 2 {
		t.Fatalf("TCP: want the whole answer (TXT + RRSIG), got TC=%v answer=%d", rec.Msg.Truncated, len(rec.Msg.Answer))
	}
	if l := rec.Msg.Len(); l <= 1232 {
		t.Fatalf("test record too small to need TCP: %d bytes", l)
	}
}

func TestBadVersion(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	m := new(dns.Msg)
	m.SetQuestion("mx1.example.test.", dns.TypeA)
	m.SetEdns0(1232, true)
	m.IsEdns0().SetVersion(1)
	resp := serve(t, d, m)
	if resp.Rcode != dns.RcodeBadVers {
		t.Fatalf("EDNS version 1: want BADVERS, got %s", dns.RcodeToString[resp.Rcode])
	}
}

func TestSignatureCache(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	sz := d.zones.Load().byName["example.test."]
	now := time.Now()
	sz.signer.Now = func() time.Time { return now }
	m := new(dns.Msg)
	m.SetQuestion("nope1.example.test.", dns.TypeA)
	m.SetEdns0(1232, true)
	first := serve(t, d, m)
	m.Question[0].Name = "nope2.example.test." // same proofs: no new signature
	again := serve(t, d, m)
	if first.Ns[1].String() != again.Ns[1].String() {
		t.Fatal("the SOA signature was made again for an unchanged RRset")
	}
	// Past the refresh point, signatures are made anew, and the old ones are never served.
	later := now.Add(10 * 24 * time.Hour)
	sz.signer.Now = func() time.Time { return later }
	fresh := serve(t, d, m)
	for _, rr := range append(fresh.Answer, fresh.Ns...) {
		if sig, ok := rr.(*dns.RRSIG); ok && !sig.ValidityPeriod(later.Add(24*time.Hour)) {
			t.Fatalf("served a signature that is not valid well past now: %s", sig)
		}
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	sz := d.zones.Load().byName["example.test."]
	old := sz.cur.Load()
	bad := strings.Replace(testZone, "mail          CNAME mx1", "mail          CNAME mx1\nmail A 127.0.0.9", 1)
	os.WriteFile(file, []byte(bad), 0o644)
	err := sz.reload()
	if err == nil || !strings.Contains(err.Error(), file+":") || !strings.Contains(err.Error(), "CNAME and other data") {
		t.Fatalf("want an error naming %s and the CNAME conflict, got %v", file, err)
	}
	if sz.cur.Load() != old {
		t.Fatal("a broken zone replaced the serving version")
	}
}

// model is an independent view of the test zone, read with miekg/dns alone.
type model struct {
	origin string
	types  map[string]map[uint16]bool // canonical owner -> types (authoritative only)
	exists map[string]bool            // owners and empty non-terminals (not occluded)
}

func modelOf(t *testing.T, file string) *model {
	data, _ := os.ReadFile(file)
	zp := dns.NewZoneParser(bytes.NewReader(data), "example.test.", file)
	md := &model{origin: "example.test.", types: map[string]map[uint16]bool{}, exists: map[string]bool{}}
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		n := strings.ToLower(rr.Header().Name)
		if strings.HasSuffix(n, ".sub.example.test.") {
			continue // occluded glue
		}
		if md.types[n] == nil {
			md.types[n] = map[uint16]bool{}
		}
		md.types[n][rr.Header().Rrtype] = true
		for x := n; dns.IsSubDomain("example.test.", x); {
			md.exists[x] = true
			off, end := dns.NextLabel(x, 0)
			if end {
				break
			}
			x = x[off:]
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY} {
		md.types["example.test."][t] = true
	}
	return md
}

// canonicalLess orders names per RFC 4034 §6.1.
func canonicalLess(a, b string) bool { return canonical.Compare(a, b) < 0 }

// judge checks a response as a validator would: every RRSIG verifies with the zone key and is
// valid now; every NSEC tells the truth about the model; and the proofs needed for the
// answer's class are present.
func judge(t *testing.T, d *DaneZone, md *model, q, resp *dns.Msg) {
	t.Helper()
	sz := d.zones.Load().byName["example.test."]
	key := sz.signer.Keys().Keys[0].DNSKEY
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range append(append([]dns.RR{}, resp.Answer...), resp.Ns...) {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, s)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		sets[k] = append(sets[k], rr)
	}
	do := q.IsEdns0() != nil && q.IsEdns0().Do()
	for _, s := range sigs {
		k := strings.ToLower(s.Header().Name) + "/" + dns.TypeToString[s.TypeCovered]
		if err := s.Verify(key, sets[k]); err != nil {
			t.Errorf("RRSIG over %s does not verify: %v", k, err)
		}
		if !s.ValidityPeriod(time.Now()) {
			t.Errorf("RRSIG over %s not valid now", k)
		}
	}
	if !do {
		if len(sigs) > 0 {
			t.Errorf("RRSIG without DO")
		}
		return
	}
	for k := range sets {
		if strings.HasSuffix(k, "/NS") && !resp.Authoritative {
			continue // delegation NS is not signed
		}
		found := false
		for _, s := range sigs {
			if strings.ToLower(s.Header().Name)+"/"+dns.TypeToString[s.TypeCovered] == k {
				found = true
			}
		}
		if !found {
			t.Errorf("%s has no signature", k)
		}
	}
	covers := func(n *dns.NSEC, name string) bool {
		return canonicalLess(n.Header().Name, name) && (canonicalLess(name, n.NextDomain) || canonicalLess(n.NextDomain, n.Header().Name))
	}
	var nsecs []*dns.NSEC
	for _, rr := range append(append([]dns.RR{}, resp.Answer...), resp.Ns...) {
		n, ok := rr.(*dns.NSEC)
		if !ok {
			continue
		}
		nsecs = append(nsecs, n)
		owner := strings.ToLower(n.Header().Name)
		for name := range md.types { // owners; an empty non-terminal is covered by design
			if covers(n, name) {
				t.Errorf("NSEC %s covers the existing name %s", n, name)
			}
		}
		if types, ok := md.types[owner]; ok {
			want := map[uint16]bool{dns.TypeRRSIG: true, dns.TypeNSEC: true}
			for ty := range types {
				if owner == "sub.example.test." || owner == "insecure.example.test." {
					if ty != dns.TypeNS && ty != dns.TypeDS {
						continue
					}
				}
				want[ty] = true
			}
			got := map[uint16]bool{}
			for _, ty := range n.TypeBitMap {
				got[ty] = true
			}
			if len(got) != len(want) {
				t.Errorf("NSEC %s: bitmap should hold exactly %v", n, want)
			}
			for ty := range want {
				if !got[ty] {
					t.Errorf("NSEC %s: bitmap lacks %s", n, dns.TypeToString[ty])
				}
			}
		}
		if n.Header().Ttl != 300 {
			t.Errorf("NSEC TTL %d, want the negative TTL 300", n.Header().Ttl)
		}
	}
	qname := strings.ToLower(q.Question[0].Name)
	if resp.Rcode == dns.RcodeNameError {
		target := qname
		if len(resp.Answer) > 0 { // after a CNAME chain the last target is denied
			target = strings.ToLower(resp.Answer[len(resp.Answer)-2].(*dns.CNAME).Target)
		}
		ce := target
		for !md.exists[ce] {
			off, _ := dns.NextLabel(ce, 0)
			ce = ce[off:]
		}
		var gotName, gotWild bool
		for _, n := range nsecs {
			gotName = gotName || covers(n, target)
			gotWild = gotWild || covers(n, "*."+ce)
		}
		if !gotName || !gotWild {
			t.Errorf("NXDOMAIN for %s: proof of the name %v, of the wildcard *.%s %v", target, gotName, ce, gotWild)
		}
	}
}

package xfr

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// bigZone is a zone of n mail hosts (A, TLSA) under a delegation-free apex.
func bigZone(tb testing.TB, n int, ks *keys.Set) *zone.Zone {
	var b strings.Builder
	b.WriteString("$ORIGIN big.test.\n$TTL 300\n@ SOA ns h 1 3600 900 604800 300\n@ NS ns\nns A 192.0.2.1\n")
	for i := range n {
		fmt.Fprintf(&b, "mx%d A 192.0.2.%d\n_25._tcp.mx%d TLSA 3 1 1 %064x\n", i, i%250+1, i, i)
	}
	apex := []*zone.RRset{zone.NewRRset(ks.DNSKEYs())}
	z, err := zone.Parse(strings.NewReader(b.String()), "big.test.", "big.test.zone", nil, apex...)
	if err != nil {
		tb.Fatal(err)
	}
	return z
}

func testKeys(tb testing.TB) *keys.Set {
	dir := tb.TempDir()
	if _, err := keys.Generate(dir, "big.test.", dns.ECDSAP256SHA256); err != nil {
		tb.Fatal(err)
	}
	ks, err := keys.Load(dir, "big.test.")
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

// BenchmarkPublishChange is what a TLSA change costs a zone of 10k hosts before an IXFR can
// be answered: the version built (one RRset and the SOA signed anew) and diffed.
func BenchmarkPublishChange(b *testing.B) {
	ks := testKeys(b)
	z := bigZone(b, 10000, ks)
	s := signer.New("big.test.", ks, signer.DefaultPolicy())
	horizon := time.Now().Add(time.Hour)
	d := denial.New(denial.NSEC, z, nil)
	prev, err := Build(z, d, ks, s, horizon, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		rr, _ := dns.NewRR(fmt.Sprintf("_25._tcp.mx7.big.test. 300 IN TLSA 3 1 1 %064x", i+1_000_000))
		nz, err := z.Apply([]zone.Edit{{Op: zone.Replace, Name: "_25._tcp.mx7.big.test.", Type: dns.TypeTLSA, RRs: []dns.RR{rr}}}, 0)
		if err != nil {
			b.Fatal(err)
		}
		nz = nz.WithSerial(uint32(i+2), z)
		b.StartTimer()
		nd := denial.New(denial.NSEC, nz, d)
		v, err := Build(nz, nd, ks, s, horizon, prev)
		if err != nil {
			b.Fatal(err)
		}
		delta := Diff(prev, v)
		b.StopTimer()
		if len(delta.Add) != 3 { // the TLSA, its RRSIG and the SOA's RRSIG
			b.Fatalf("delta adds %d records", len(delta.Add))
		}
		prev, z, d = v, nz, nd
	}
}

// A change of one RRset re-signs it and the SOA, and nothing else; the delta holds just
// that. With signatures due, everything is re-signed.
func TestBuildReusesSignatures(t *testing.T) {
	ks := testKeys(t)
	z := bigZone(t, 200, ks)
	s := signer.New("big.test.", ks, signer.DefaultPolicy())
	now := time.Now()
	d := denial.New(denial.NSEC, z, nil)
	v1, err := Build(z, d, ks, s, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := dns.NewRR("_25._tcp.mx7.big.test. 300 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))
	z2, err := z.Apply([]zone.Edit{{Op: zone.Replace, Name: "_25._tcp.mx7.big.test.", Type: dns.TypeTLSA, RRs: []dns.RR{rr}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	z2 = z2.WithSerial(2, z)
	v2, err := Build(z2, denial.New(denial.NSEC, z2, d), ks, s, now, v1)
	if err != nil {
		t.Fatal(err)
	}
	if len(v2.Sets) != len(v1.Sets) || v2.Records != v1.Records {
		t.Fatalf("sets %d→%d, records %d→%d", len(v1.Sets), len(v2.Sets), v1.Records, v2.Records)
	}
	var resigned []string
	for i := range v2.Sets {
		if len(v2.Sets[i].Sigs) > 0 && !slices.Equal(v1.Sets[i].Sigs, v2.Sets[i].Sigs) {
			resigned = append(resigned, v2.Sets[i].RRset.Name+" "+dns.TypeToString[v2.Sets[i].RRset.Type])
		}
	}
	if want := []string{"big.test. SOA", "_25._tcp.mx7.big.test. TLSA"}; strings.Join(resigned, ",") != strings.Join(want, ",") {
		t.Errorf("re-signed %v, want %v", resigned, want)
	}
	delta := Diff(v1, v2)
	if len(delta.Del) != 3 || len(delta.Add) != 3 {
		t.Errorf("delta: %d deleted, %d added; want 3 and 3 (TLSA, its RRSIG, the SOA's RRSIG)\n%v\n%v", len(delta.Del), len(delta.Add), delta.Del, delta.Add)
	}
	// Past the first refresh, looking Ahead (at least the jitter): every signature made with
	// the first ones is made anew.
	later := v2.RefreshAt.Add(time.Minute)
	s.Now = func() time.Time { return later }
	v3, err := Build(z2, denial.New(denial.NSEC, z2, d), ks, s, later.Add(s.Policy().Ahead()), v2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range v3.Sets {
		if len(v3.Sets[i].Sigs) > 0 && slices.Equal(v2.Sets[i].Sigs, v3.Sets[i].Sigs) {
			t.Fatalf("%s %s: signature due and not renewed", v3.Sets[i].RRset.Name, dns.TypeToString[v3.Sets[i].RRset.Type])
		}
	}
	if !v3.RefreshAt.After(later) {
		t.Errorf("refresh at %v, not after %v", v3.RefreshAt, later)
	}
}

package zone

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestLookupDNAME: names below a DNAME are redirected by it (RFC 6672 §2.3), the DNAME's own
// name is not, and after a new serial (the apex copied) nothing changes.
func TestLookupDNAME(t *testing.T) {
	const text = `example.test. 3600 SOA ns.example.test. h.example.test. 1 3600 900 1209600 300
example.test. NS ns.example.test.
ns.example.test. A 192.0.2.1
old.example.test. DNAME new.example.test.
old.example.test. TXT "kept"
deep.x.example.test. A 192.0.2.2
`
	z, err := Parse(strings.NewReader(text), "example.test.", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, zz := range []*Zone{z, z.WithSerial(2, nil)} {
		for _, c := range []struct {
			name  string
			qtype uint16
			want  Kind
		}{
			{"www.old.example.test.", dns.TypeA, DNAME},
			{"a.b.OLD.example.test.", dns.TypeTXT, DNAME},
			{"old.example.test.", dns.TypeDNAME, Answer},
			{"old.example.test.", dns.TypeTXT, Answer},
			{"old.example.test.", dns.TypeA, NoData},
			{"x.example.test.", dns.TypeA, NoData}, // an empty non-terminal
			{"y.x.example.test.", dns.TypeA, NXDomain},
			{"deep.x.example.test.", dns.TypeA, Answer},
		} {
			res := zz.Lookup(c.name, c.qtype)
			if res.Kind != c.want {
				t.Errorf("serial %d: %s %s: %s, want %s", zz.Serial, c.name, dns.TypeToString[c.qtype], res.Kind, c.want)
			}
			if res.Kind == DNAME && (res.Set == nil || res.Set.Type != dns.TypeDNAME || res.Set.Name != "old.example.test.") {
				t.Errorf("%s: DNAME result without the DNAME RRset: %+v", c.name, res.Set)
			}
		}
	}
}

// TestNXDomainIndexAgainstLookup: the answer cache's test for a name that does not exist
// agrees with Lookup on random trees, with delegations, DNAMEs, wildcards, empty
// non-terminals and the key's escaped octets, in the root zone too; and its positions are
// those NXDomainCovers gives for the next closer name Lookup found.
func TestNXDomainIndexAgainstLookup(t *testing.T) {
	labels := []string{"a", "B", "*", `\000`, `\001`, "a-b", `\255`, "zz", "_25", "_tcp"}
	rng := rand.New(rand.NewPCG(7, 9))
	name := func(origin string, most int) string {
		n := origin
		for range 1 + rng.IntN(most) {
			l := labels[rng.IntN(len(labels))]
			if n == "." {
				n = l + "."
			} else {
				n = l + "." + n
			}
		}
		return n
	}
	nx, checked, refused := 0, 0, 0
	for round := range 400 {
		origin := "example.test."
		if round%5 == 0 {
			origin = "."
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s 3600 SOA ns.example.test. h.example.test. 1 3600 900 1209600 300\n%s NS ns.example.test.\n", origin, origin)
		for range 1 + rng.IntN(14) {
			n := name(origin, 4)
			switch rng.IntN(6) {
			case 0: // at a wildcard too, which the load refuses (RFC 4592 §4.2)
				fmt.Fprintf(&b, "%s NS ns.example.test.\n", n)
			case 1:
				fmt.Fprintf(&b, "%s DNAME target.example.\n", n)
			default:
				fmt.Fprintf(&b, "%s A 192.0.2.1\n", n)
			}
		}
		z, err := Parse(strings.NewReader(b.String()), origin, "t", nil)
		if err != nil {
			refused++ // data below a DNAME, NS at a wildcard: refused, nothing to serve
			continue
		}
		// A new serial shares the index and copies the apex: the same answers.
		for _, z := range []*Zone{z, z.WithSerial(2, nil)} {
			for range 20 {
				q := name(origin, 5)
				if rng.IntN(3) == 0 {
					q = strings.ToUpper(q)
				}
				res := z.Lookup(q, dns.TypeA)
				i, j, ok := z.NXDomainIndex(q)
				checked++
				if ok != (res.Kind == NXDomain) {
					t.Fatalf("round %d, %s: NXDomainIndex says %v, Lookup %s\n%s", round, q, ok, res.Kind, b.String())
				}
				if !ok {
					continue
				}
				nx++
				if wi, wj := z.NXDomainCovers(res.NextCloser); i != wi || j != wj {
					t.Fatalf("round %d, %s: positions %d, %d; NXDomainCovers(%s) says %d, %d\n%s", round, q, i, j, res.NextCloser, wi, wj, b.String())
				}
			}
			// The origin, names above it and beside it: never "does not exist here".
			for _, q := range []string{origin, "test.", "other.", "example.other.", "test.example."} {
				if _, _, ok := z.NXDomainIndex(q); ok && (origin != "." || q == ".") {
					t.Errorf("round %d: NXDomainIndex(%s) in zone %s says it does not exist", round, q, origin)
				}
			}
		}
	}
	if refused > 200 {
		t.Errorf("%d of 400 trees refused: the trees test too little", refused)
	}
	if nx < checked/5 || nx > checked*4/5 {
		t.Errorf("%d of %d names did not exist: the trees test too little", nx, checked)
	}
}

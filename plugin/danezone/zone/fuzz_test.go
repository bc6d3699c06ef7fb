package zone

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzParse feeds arbitrary zone text to the loader: it must never panic, and a zone it
// accepts must encode every record and answer a lookup of each of its names.
func FuzzParse(f *testing.F) {
	f.Add(head + "www A 127.0.0.1\n")
	f.Add(head + "*.w A 127.0.0.1\nsub NS ns.sub\nns.sub A 127.0.0.2\n")
	f.Add(head + "a CNAME b\nb CNAME a\n")
	f.Add(head + "x\\000y A 127.0.0.1\n\\@ TXT \"x\"\n")
	f.Add("$ORIGIN example.test.\n@ SOA ns h 1 1 1 1 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		if generatedRecords(text) > 2000 {
			return // $GENERATE makes large zones from short text: correct, but seconds per input
		}
		z, err := Parse(strings.NewReader(text), "example.test.", "fuzz", nil)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Whatever loads can be served: every record encodes.
		buf := make([]byte, 0x10000+512)
		z.Sets(func(s *RRset) {
			for _, rr := range s.RRs {
				if _, err := dns.PackRR(rr, buf, 0, nil, false); err != nil {
					t.Fatalf("accepted %s, which does not encode: %v", rr, err)
				}
			}
		})
		for _, n := range z.Chain() {
			for _, qt := range []uint16{dns.TypeA, dns.TypeDS, dns.TypeNSEC, dns.TypeANY} {
				z.Lookup(n.Name, qt)
				z.Lookup("x."+n.Name, qt)
			}
			z.Predecessor(n.Name)
		}
	})
}

var generateRE = regexp.MustCompile(`(?i)\$GENERATE\s+(\d+)-(\d+)`)

// generatedRecords is how many records the $GENERATE lines of text make at most.
func generatedRecords(text string) int {
	n := 0
	for _, m := range generateRE.FindAllStringSubmatch(text, -1) {
		a, _ := strconv.Atoi(m[1])
		b, err := strconv.Atoi(m[2])
		if err != nil || b-a > 1<<20 {
			return 1 << 30
		}
		n += max(b-a, 0) + 1
	}
	return n
}

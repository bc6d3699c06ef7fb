package zone

import (
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

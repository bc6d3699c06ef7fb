package danezone

import (
	"testing"

	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/miekg/dns"
)

// Requests danezone must refuse before any lookup, handed to the handler directly (the
// server's own checks are covered over a socket in TestMalformedPackets).
func TestRequestChecks(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC) // Next: test.ErrorHandler, which answers SERVFAIL
	opt := func() dns.RR {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		return o
	}
	query := func(name string, qtype uint16, edit func(m *dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		edit(m)
		return m
	}
	for _, tc := range []struct {
		name  string
		req   *dns.Msg
		rcode int
	}{
		{"no question", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) { m.Question = nil }), dns.RcodeFormatError},
		{"two questions", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) {
			m.Question = append(m.Question, dns.Question{Name: "ns1.example.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
		}), dns.RcodeFormatError},
		{"one OPT", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) { m.Extra = []dns.RR{opt()} }), dns.RcodeSuccess},
		{"two OPTs", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) { m.Extra = []dns.RR{opt(), opt()} }), dns.RcodeFormatError},
		{"OPT in the answer", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) { m.Answer = []dns.RR{opt()} }), dns.RcodeFormatError},
		{"OPT in the authority", query("mx1.example.test.", dns.TypeA, func(m *dns.Msg) { m.Ns = []dns.RR{opt()} }), dns.RcodeFormatError},
		{"NOTIFY", query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"UPDATE", query("example.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		// Not a zone served here: the next plugin decides.
		{"NOTIFY elsewhere", query("other.test.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeServerFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := serveRaw(t, d, tc.req)
			if r == nil {
				t.Fatal("no response written")
			}
			if r.Rcode != tc.rcode || r.Opcode != tc.req.Opcode || !r.Response {
				t.Errorf("rcode %s opcode %s, want rcode %s opcode %s\n%s", dns.RcodeToString[r.Rcode], dns.OpcodeToString[r.Opcode],
					dns.RcodeToString[tc.rcode], dns.OpcodeToString[tc.req.Opcode], r)
			}
			if tc.rcode != dns.RcodeSuccess && (len(r.Answer) > 0 || len(r.Ns) > 0) {
				t.Errorf("an error response with records:\n%s", r)
			}
		})
	}
}

package danezone

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/miekg/dns"
)

// FuzzServeDNS sends arbitrary wire-format queries through the handler in both denial modes:
// no panic, and every response packs.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"mx1.example.test.", dns.TypeA}, {"nope.example.test.", dns.TypeA}, {"a.b.users.example.test.", dns.TypeMX},
		{"x.sub.example.test.", dns.TypeA}, {"insecure.example.test.", dns.TypeDS}, {"webmail.example.test.", dns.TypeA},
		{"example.test.", dns.TypeANY}, {"_tcp.mx1.example.test.", dns.TypeNSEC}, {"\\000.example.test.", dns.TypeRRSIG},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	ds := map[denial.Mode]*DaneZone{}
	for _, mode := range []denial.Mode{denial.NSEC, denial.Minimal} {
		d, _ := newTestZone(f, mode)
		ds[mode] = d
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil || len(m.Question) != 1 || m.Response {
			return
		}
		for mode, d := range ds {
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			d.ServeDNS(context.Background(), rec, m.Copy())
			if rec.Msg == nil {
				continue
			}
			if _, err := rec.Msg.Pack(); err != nil {
				t.Fatalf("%s: response to %s does not pack: %v", mode, m.Question[0].String(), err)
			}
		}
	})
}

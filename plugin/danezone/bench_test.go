package danezone

import (
	"context"
	"strconv"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/miekg/dns"
)

// BenchmarkNXDOMAIN answers unique non-existent names (the per-answer signing path of the
// minimal, nsec3-narrow and compact modes). Throughput is measured by make bench; this is for
// profiling.
func BenchmarkNXDOMAIN(b *testing.B) {
	for _, mode := range []denial.Mode{denial.NSEC, denial.Minimal, denial.NSEC3, denial.NSEC3Narrow, denial.Compacted} {
		b.Run(mode.String(), func(b *testing.B) {
			d, _ := newTestZone(b, mode)
			m := new(dns.Msg)
			m.SetEdns0(1232, true)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.SetQuestion("n"+strconv.Itoa(i)+".example.test.", dns.TypeA)
				rec := dnstest.NewRecorder(&test.ResponseWriter{})
				d.ServeDNS(context.Background(), rec, m)
			}
		})
	}
}

// BenchmarkCachedAnswer is the answer cache's hit path, written through CoreDNS's
// ScrubWriter: the same question again, and names never asked before whose NXDOMAIN is made
// of the same proof; "log": the same question with the log plugin's recorder in between (it
// is given a message per answer).
func BenchmarkCachedAnswer(b *testing.B) {
	d, _ := newTestZone(b, denial.NSEC)
	tw := &test.ResponseWriter{}
	for _, tc := range []struct {
		name  string
		qname func(i int) string
		log   bool
	}{
		{"same", func(int) string { return "example.test." }, false},
		{"proof", func(i int) string { return "zz" + strconv.Itoa(i) + ".example.test." }, false},
		{"log", func(int) string { return "example.test." }, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := new(dns.Msg)
			m.SetQuestion(tc.qname(-1), dns.TypeMX)
			m.SetEdns0(1232, true)
			writer := func() dns.ResponseWriter {
				var w dns.ResponseWriter = request.NewScrubWriter(m, tw)
				if tc.log {
					w = dnstest.NewRecorder(w)
				}
				return w
			}
			d.ServeDNS(context.Background(), writer(), m)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.Question[0].Name = tc.qname(i)
				w := writer()
				d.ServeDNS(context.Background(), w, m)
				if rec, ok := w.(*dnstest.Recorder); ok && (rec.Msg == nil || rec.Msg.Id != m.Id) {
					b.Fatal("the log plugin's recorder got no message, or another query's")
				}
			}
		})
	}
}

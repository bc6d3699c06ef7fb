package danezone

import (
	"context"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPerQueryMetricsCarryServer serves queries through a server block and checks that every
// metric counted per query has a series with that server's label.
func TestPerQueryMetricsCarryServer(t *testing.T) {
	const addr = "dns://127.0.0.1:10530-metrics-test"
	perQuery := map[string]bool{
		"coredns_danezone_signatures_total":             true,
		"coredns_danezone_signature_cache_hits_total":   true,
		"coredns_danezone_signature_cache_misses_total": true,
		"coredns_danezone_responses_total":              true,
		"coredns_danezone_faults_applied_total":         true,
	}
	d, _ := newTestZone(t, denial.Minimal) // minimal denial signs per answer: a miss every time
	if _, err := d.faults.Add(fault.Spec{Mode: fault.ServFail, Name: "broken.example.test", Type: "A"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, &dnsserver.Server{Addr: addr})
	for _, name := range []string{"mx1.example.test.", "mx1.example.test.", "missing.example.test.", "broken.example.test."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.SetEdns0(1232, true)
		if _, err := d.ServeDNS(ctx, dnstest.NewRecorder(&test.ResponseWriter{}), m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range families {
		if !perQuery[mf.GetName()] {
			continue
		}
		for _, m := range mf.GetMetric() {
			server, ok := "", false
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" {
					server, ok = l.GetValue(), true
				}
			}
			if !ok {
				t.Errorf("%s has no server label: %v", mf.GetName(), m.GetLabel())
			}
			seen[mf.GetName()] = seen[mf.GetName()] || server == addr
		}
	}
	for name := range perQuery {
		if !seen[name] {
			t.Errorf("%s: no series with server=%q", name, addr)
		}
	}
}

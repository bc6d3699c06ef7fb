package danezone

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestFaultShapes checks what each fault does to the response, and that the neighbouring name
// and the neighbouring type of the same name are untouched. What validators conclude from each
// is judged by delv and Unbound in integration/.
func TestFaultShapes(t *testing.T) {
	sigs := func(m *dns.Msg) []*dns.RRSIG {
		var out []*dns.RRSIG
		for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
			if s, ok := rr.(*dns.RRSIG); ok {
				out = append(out, s)
			}
		}
		return out
	}
	now := time.Now()
	tests := []struct {
		mode  fault.Mode
		name  string
		qtype uint16
		check func(*dns.Msg) bool
	}{
		{fault.ServFail, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeServerFailure && len(m.Answer) == 0 }},
		{fault.Refused, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeRefused }},
		{fault.NotImp, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNotImplemented }},
		{fault.FormErr, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeFormatError }},
		{fault.Drop, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m == nil }},
		{fault.Truncate, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Truncated && len(m.Answer) == 0 }},
		{fault.TruncateNoTCP, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Truncated }},
		{fault.NoSig, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return len(m.Answer) == 1 && len(sigs(m)) == 0 }},
		{fault.ExpiredSig, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool {
			s := sigs(m)
			return len(s) == 1 && time.Unix(int64(s[0].Expiration), 0).Before(now)
		}},
		{fault.FutureSig, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool {
			s := sigs(m)
			return len(s) == 1 && time.Unix(int64(s[0].Inception), 0).After(now)
		}},
		{fault.BadSig, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return len(sigs(m)) == 1 }},
		{fault.WrongKey, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return len(sigs(m)) == 1 }},
		{fault.NoDenial, "nope.example.test.", dns.TypeA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError && len(m.Ns) == 2 }},
		{fault.BadDenial, "nope.example.test.", dns.TypeA, func(m *dns.Msg) bool {
			return m.Rcode == dns.RcodeNameError && strings.HasPrefix(m.Ns[2].Header().Name, "\\000.")
		}},
		{fault.TLSAMismatch, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool {
			t := m.Answer[0].(*dns.TLSA)
			return t.Usage == 3 && len(t.Certificate) == 64 && !strings.EqualFold(t.Certificate, "8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1")
		}},
		{fault.TLSAUnusable, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Answer[0].(*dns.TLSA).Usage == 1 }},
		{fault.TLSAAbsent, "_25._tcp.mx1.example.test.", dns.TypeTLSA, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeNameError }},
		{fault.DSMismatch, "sub.example.test.", dns.TypeDS, func(m *dns.Msg) bool {
			return len(m.Answer) == 2 && !strings.EqualFold(m.Answer[0].(*dns.DS).Digest, "3490a6806d47f17a34c29e2ce80e8a999ffbe4be8f8d1b3c9e7a5b4c3d2e1f00")
		}},
		{fault.Insecure, "sub.example.test.", dns.TypeDS, func(m *dns.Msg) bool { return m.Rcode == dns.RcodeSuccess && len(m.Answer) == 0 }},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			d, file := newTestZone(t, denial.NSEC)
			spec := fault.Spec{Mode: tc.mode, Name: tc.name}
			if !tc.mode.Data() {
				spec.Type = dns.TypeToString[tc.qtype]
			}
			if _, err := d.faults.Add(spec); err != nil {
				t.Fatal(err)
			}
			m := new(dns.Msg)
			m.SetQuestion(tc.name, tc.qtype)
			m.SetEdns0(1232, true)
			rec := serveRaw(t, d, m)
			if !tc.check(rec) {
				t.Fatalf("response:\n%v", rec)
			}
			// Neighbours: another name, and for response faults another type of the same name.
			md := modelOf(t, file)
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{"mx1.example.test.", dns.TypeA}, {tc.name, dns.TypeNSEC}} {
				if tc.mode.Data() && q.name == tc.name {
					continue
				}
				n := new(dns.Msg)
				n.SetQuestion(q.name, q.qtype)
				n.SetEdns0(1232, true)
				judge(t, d, md, n, serve(t, d, n))
			}
		})
	}
}

func TestDNAMEAndTransfers(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	data, _ := os.ReadFile(file)
	os.WriteFile(file, append(data, []byte("old DNAME new.example.test.\nwww.new A 127.0.0.5\n")...), 0o644)
	sz := d.zones.Load().byName["example.test."]
	if err := sz.reload(); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("WWW.old.example.test.", dns.TypeA)
	m.SetEdns0(1232, true)
	r := serve(t, d, m)
	// DNAME + RRSIG, synthesised CNAME (unsigned), A + RRSIG.
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 5 {
		t.Fatalf("DNAME answer:\n%v", r)
	}
	if c, ok := r.Answer[2].(*dns.CNAME); !ok || c.Hdr.Name != "WWW.old.example.test." || c.Target != "WWW.new.example.test." {
		t.Fatalf("synthesised CNAME: %v", r.Answer[2])
	}
	for _, q := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		m.SetQuestion("example.test.", q)
		if r := serve(t, d, m); r.Rcode != dns.RcodeRefused {
			t.Errorf("%s: %s, want REFUSED", dns.TypeToString[q], dns.RcodeToString[r.Rcode])
		}
	}
	d.Next = nil
	m.SetQuestion("www.other.test.", dns.TypeA)
	if r := serve(t, d, m); r.Rcode != dns.RcodeRefused {
		t.Errorf("out of zone: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	os.WriteFile(file, append(data, []byte("old DNAME new.example.test.\nx.old A 127.0.0.5\n")...), 0o644)
	if err := sz.reload(); err == nil || !strings.Contains(err.Error(), "below the DNAME") {
		t.Errorf("data below a DNAME: %v", err)
	}
}

// delayQueries sends n queries for mx1.example.test/A through the handler concurrently; each
// response (nil: none) arrives on the channel when its ServeDNS returns.
func delayQueries(t *testing.T, d *DaneZone, n int) <-chan *dns.Msg {
	t.Helper()
	out := make(chan *dns.Msg, n)
	for range n {
		go func() {
			m := new(dns.Msg)
			m.SetQuestion("mx1.example.test.", dns.TypeA)
			rec := dnstest.NewRecorder(&test.ResponseWriter{})
			if _, err := d.ServeDNS(context.Background(), rec, m); err != nil {
				t.Error(err)
			}
			out <- rec.Msg
		}()
	}
	return out
}

// collect waits for n responses, failing if they take anywhere near the fault's delay.
func collect(t *testing.T, done <-chan *dns.Msg, n int, what string) []*dns.Msg {
	t.Helper()
	var out []*dns.Msg
	deadline := time.After(10 * time.Second) // the delay is a minute
	for len(out) < n {
		select {
		case m := <-done:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("%s: %d of %d queries returned", what, len(out), n)
		}
	}
	return out
}

// TestDelayFaultReleased: removing a delay fault, or resetting, releases the queries it holds
// at once, and they are answered normally.
func TestDelayFaultReleased(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	for _, remove := range []func(id string){
		func(id string) { d.faults.Remove(id) },
		func(string) { d.faults.Reset() },
	} {
		f, err := d.faults.Add(fault.Spec{Mode: fault.Delay, Name: "mx1.example.test", Type: "A", Delay: fault.Duration(fault.MaxDelay)})
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		done := delayQueries(t, d, n)
		for d.faults.List()[0].Applied < n {
			time.Sleep(time.Millisecond)
		}
		select {
		case <-done:
			t.Fatal("a query was answered before the delay")
		case <-time.After(50 * time.Millisecond):
		}
		remove(f.ID)
		for _, m := range collect(t, done, n, "after the removal") {
			if m == nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Fatalf("a released query: %v", m)
			}
		}
	}
}

// TestDelayFaultBounded: beyond the most queries delayed at once, the queries a delay fault
// matches are dropped right away, holding no goroutine, and counted.
func TestDelayFaultBounded(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	const held, extra = 20, 200
	d.faults.MaxDelayed = held
	if _, err := d.faults.Add(fault.Spec{Mode: fault.Delay, Name: "mx1.example.test", Type: "A", Delay: fault.Duration(fault.MaxDelay)}); err != nil {
		t.Fatal(err)
	}
	counted := func() float64 { // the series of this zone, whatever the server label
		families, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if mf.GetName() == "coredns_danezone_fault_delays_dropped_total" && l.GetName() == "zone" && l.GetValue() == "example.test." {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	before := counted()
	base := runtime.NumGoroutine()
	done := delayQueries(t, d, held+extra)
	for _, m := range collect(t, done, extra, "beyond the limit") {
		if m != nil {
			t.Fatalf("a query beyond the limit was answered: %v", m)
		}
	}
	if n := runtime.NumGoroutine() - base; n > held+10 {
		t.Errorf("%d goroutines for %d queries held", n, held)
	}
	if v := d.faults.List()[0]; v.Applied != held+extra || v.Dropped != extra || d.faults.Delayed() != held {
		t.Errorf("applied %d, dropped %d, held %d", v.Applied, v.Dropped, d.faults.Delayed())
	}
	if n := counted() - before; n != extra {
		t.Errorf("coredns_danezone_fault_delays_dropped_total counted %v", n)
	}
	d.faults.Reset()
	collect(t, done, held, "after the reset")
}

// BenchmarkServeWithFaults answers a query no fault matches with 0, 10 and 10,000 faults on
// other names: the faults must not cost each query a scan of them all.
func BenchmarkServeWithFaults(b *testing.B) {
	for _, n := range []int{0, 10, 10000} {
		b.Run("faults="+strconv.Itoa(n), func(b *testing.B) {
			d, _ := newTestZone(b, denial.NSEC)
			d.faults.MaxFaults = max(n, 1)
			for i := range n {
				if _, err := d.faults.Add(fault.Spec{Mode: fault.ServFail, Name: "host" + strconv.Itoa(i) + ".example.test"}); err != nil {
					b.Fatal(err)
				}
			}
			m := new(dns.Msg)
			m.SetQuestion("mx1.example.test.", dns.TypeA)
			m.SetEdns0(1232, true)
			b.ReportAllocs()
			for b.Loop() {
				d.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), m)
			}
		})
	}
}

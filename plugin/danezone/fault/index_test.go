package fault

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// linearMatch is Match as it was before the index: every fault scanned in the order added.
func linearMatch(r *Registry, zone, qname string, qtype uint16) *Fault {
	now := r.Now()
	for _, f := range r.faults {
		if f.zone != "" && !strings.EqualFold(f.zone, zone) {
			continue
		}
		if f.qtype != 0 && f.qtype != qtype {
			continue
		}
		if !f.MatchName(qname) {
			continue
		}
		if now.Before(f.from) || (!f.until.IsZero() && !now.Before(f.until)) {
			continue
		}
		n := f.matched.Add(1)
		if f.Spec.Count > 0 && n > int64(f.Spec.Count) {
			continue
		}
		if f.Spec.Share > 0 && f.Spec.Share < 1 && r.rnd() >= f.Spec.Share {
			continue
		}
		f.applied.Add(1)
		return f
	}
	return nil
}

// linearDataFor is DataFor as it was before the index.
func linearDataFor(r *Registry, zone, qname string) *Fault {
	now := r.Now()
	for _, f := range r.faults {
		if !f.Spec.Mode.Data() || f.Spec.Mode.DataType() != dns.TypeDS || f.Spec.Share > 0 ||
			(f.zone != "" && !strings.EqualFold(f.zone, zone)) || !f.live(now) {
			continue
		}
		for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
			if f.MatchName(qname[off:]) {
				return f
			}
		}
	}
	return nil
}

func idOf(f *Fault) string {
	if f == nil {
		return "-"
	}
	return f.ID
}

// twin is a registry and its linear-scan reference, changed alike, sharing a clock and a
// seeded random source each (the same draws in the same order).
type twin struct {
	t        *testing.T
	got, ref *Registry
	now      time.Time
}

func newTwin(t *testing.T) *twin {
	tw := &twin{t: t, got: NewRegistry(), ref: NewRegistry(), now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	for _, r := range []*Registry{tw.got, tw.ref} {
		r.Now = func() time.Time { return tw.now }
		r.rnd = rand.New(rand.NewPCG(1, 2)).Float64
		r.MaxFaults = 5000
	}
	return tw
}

func (tw *twin) add(s Spec) {
	tw.t.Helper()
	a, errA := tw.got.Add(s)
	b, errB := tw.ref.Add(s)
	if errA != nil || errB != nil || a.ID != b.ID {
		tw.t.Fatalf("%+v: %v %v", s, errA, errB)
	}
}

func (tw *twin) remove(id string) {
	if tw.got.Remove(id) != tw.ref.Remove(id) {
		tw.t.Fatalf("remove %s differs", id)
	}
}

// query runs one query through both and fails on any difference, then compares the counters.
func (tw *twin) query(zone, name string, qtype uint16) {
	tw.t.Helper()
	if got, want := idOf(tw.got.Match(zone, name, qtype)), idOf(linearMatch(tw.ref, zone, name, qtype)); got != want {
		tw.t.Errorf("Match(%s, %s, %s) at %s = %s, linear scan %s", zone, name, dns.TypeToString[qtype], tw.now.Format(time.TimeOnly), got, want)
	}
	if got, want := idOf(tw.got.DataFor(zone, name)), idOf(linearDataFor(tw.ref, zone, name)); got != want {
		tw.t.Errorf("DataFor(%s, %s) at %s = %s, linear scan %s", zone, name, tw.now.Format(time.TimeOnly), got, want)
	}
}

func (tw *twin) sameCounters() {
	tw.t.Helper()
	a, b := tw.got.List(), tw.ref.List()
	if len(a) != len(b) {
		tw.t.Fatalf("%d faults, reference %d", len(a), len(b))
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Matched != b[i].Matched || a[i].Applied != b[i].Applied || a[i].Active != b[i].Active {
			tw.t.Errorf("fault %s: matched %d applied %d active %v; reference %s: %d %d %v",
				a[i].ID, a[i].Matched, a[i].Applied, a[i].Active, b[i].ID, b[i].Matched, b[i].Applied, b[i].Active)
		}
	}
}

// TestIndexMatchesLinearScan: with many faults, the indexed Match and DataFor return exactly
// what the scan in order of addition returned, and count the same faults.
func TestIndexMatchesLinearScan(t *testing.T) {
	tw := newTwin(t)
	// Hundreds of faults on other names: the index must not find them, the scan skips them.
	for i := range 800 {
		tw.add(Spec{Mode: ServFail, Name: "pad" + strconv.Itoa(i) + ".example.test", Type: "A"})
	}
	table := []Spec{
		{Mode: ServFail, Name: "_25._tcp.mx1.example.test", Type: "TLSA", Count: 2}, // heals after two
		{Mode: Refused, Name: "_25._TCP.MX1.example.test"},                          // then this one, every type
		{Mode: NoSig, Name: "_25._tcp.*.example.test", Type: "TLSA"},                // pattern, any zone
		{Mode: Drop, Name: "*.users.example.test", Zone: "example.test"},            // pattern of a zone
		{Mode: Drop, Name: "*.users.example.test", Zone: "other.test"},              // of another zone
		{Mode: BadSig, Name: "mx1.example.test", Zone: "EXAMPLE.test."},             // exact, zone in capitals
		{Mode: ExpiredSig, Name: "mx1.example.test", Type: "AAAA"},                  // shadowed for AAAA by the previous
		{Mode: Truncate, Name: "mx2.example.test", Share: 0.5},                      // a share
		{Mode: FormErr, Name: "mx2.example.test", Count: 3},                         // behind it
		{Mode: NotImp, Name: "w*.example.test", After: Duration(time.Minute), For: Duration(time.Minute)},
		{Mode: ServFail, Name: "*", Type: "MX", Zone: "other.test"},
		{Mode: Delay, Name: "late.example.test", Delay: Duration(time.Second), Count: 1},
		{Mode: DSMismatch, Name: "sub.example.test", Count: 4},           // DS: counted questions, and referrals
		{Mode: Insecure, Name: "*.deep.example.test"},                    // DS pattern
		{Mode: Insecure, Name: "sub.example.test", Share: 0.5},           // a share: never in DataFor
		{Mode: TLSAAbsent, Name: "_25._tcp.mx3.example.test"},            // data, not DS
		{Mode: DSMismatch, Name: "child.other.test", Zone: "other.test"}, // DS of another zone
		{Mode: ServFail, Name: "*.example.test", Type: "NS"},
		{Mode: ServFail, Name: "*example.test", Type: "NS", Count: 1}, // shadowed by the previous
	}
	for _, s := range table {
		tw.add(s)
	}
	queries := []struct {
		zone, name string
		qtype      uint16
	}{
		{"example.test.", "_25._tcp.mx1.example.test.", dns.TypeTLSA},
		{"example.test.", "_25._tcp.MX1.example.test.", dns.TypeA},
		{"example.test.", "_25._tcp.mx9.example.test.", dns.TypeTLSA},
		{"example.test.", "_25._tcp.mx9.example.test.", dns.TypeA},
		{"example.test.", "a.users.example.test.", dns.TypeA},
		{"other.test.", "a.users.example.test.", dns.TypeA},
		{"EXAMPLE.TEST.", "b.c.USERS.example.test.", dns.TypeMX},
		{"example.test.", "mx1.example.test.", dns.TypeAAAA},
		{"other.test.", "mx1.example.test.", dns.TypeAAAA},
		{"example.test.", "mx2.example.test.", dns.TypeA},
		{"example.test.", "www.example.test.", dns.TypeA},
		{"other.test.", "x.other.test.", dns.TypeMX},
		{"other.test.", "x.other.test", dns.TypeA},
		{"example.test.", "late.example.test.", dns.TypeA},
		{"example.test.", "sub.example.test.", dns.TypeDS},
		{"example.test.", "sub.example.test.", dns.TypeA},
		{"example.test.", "ns.sub.example.test.", dns.TypeA},
		{"example.test.", "x.y.deep.example.test.", dns.TypeA},
		{"example.test.", "deep.example.test.", dns.TypeDS},
		{"example.test.", "_25._tcp.mx3.example.test.", dns.TypeTLSA},
		{"other.test.", "a.child.other.test.", dns.TypeA},
		{"example.test.", "a.child.other.test.", dns.TypeA},
		{"example.test.", "example.test.", dns.TypeNS},
		{"example.test.", "a.example.test.", dns.TypeNS},
		{"example.test.", "pad17.example.test.", dns.TypeA},
		{"example.test.", "pad17.example.test.", dns.TypeAAAA},
		{".", ".", dns.TypeNS},
	}
	// Every query several times, across the window of the w* fault, so counts run out.
	for step := range 8 {
		tw.now = tw.now.Add(30 * time.Second)
		for _, q := range queries {
			tw.query(q.zone, q.name, q.qtype)
		}
		if step == 4 { // removals keep the order of what remains
			tw.remove("802")
			tw.remove("813")
			tw.remove("1")
			tw.add(Spec{Mode: ServFail, Name: "_25._tcp.mx1.example.test", Type: "TLSA"})
		}
	}
	tw.sameCounters()

	// And faults drawn at random over a small universe of names, types and zones.
	rnd := rand.New(rand.NewPCG(3, 4))
	names := []string{"a.example.test", "b.example.test", "*.example.test", "*", "a.*", "*.b.example.test", "x.b.example.test", "sub.example.test", "*.sub.example.test"}
	modes := []Mode{ServFail, Drop, NoSig, DSMismatch, Insecure, TLSAMismatch}
	types := []string{"", "A", "TLSA", "DS", "ANY"}
	zones := []string{"", "example.test", "other.test"}
	tw.got.Reset()
	tw.ref.Reset()
	for range 300 {
		s := Spec{Mode: modes[rnd.IntN(len(modes))], Name: names[rnd.IntN(len(names))], Type: types[rnd.IntN(len(types))], Zone: zones[rnd.IntN(len(zones))]}
		if rnd.IntN(3) == 0 {
			s.Count = 1 + rnd.IntN(3)
		}
		if rnd.IntN(4) == 0 {
			s.Share = 0.5
		}
		tw.add(s)
	}
	qnames := []string{"a.example.test.", "B.example.test.", "x.b.example.test.", "sub.example.test.", "ns.sub.example.test.", "a.other.test.", "example.test."}
	for range 2000 {
		z := []string{"example.test.", "other.test."}[rnd.IntN(2)]
		q := []uint16{dns.TypeA, dns.TypeTLSA, dns.TypeDS, dns.TypeMX}[rnd.IntN(4)]
		tw.query(z, qnames[rnd.IntN(len(qnames))], q)
		if rnd.IntN(50) == 0 {
			tw.remove(strconv.Itoa(801 + 300 + rnd.IntN(300)))
		}
	}
	tw.sameCounters()
}

// TestPatternEnds: the check of a pattern's fixed ends never refuses what the glob accepts,
// over every pattern and name of up to five characters of "a", "b", "." and "*".
func TestPatternEnds(t *testing.T) {
	var all func(n int, alphabet string) []string
	all = func(n int, alphabet string) []string {
		if n == 0 {
			return []string{""}
		}
		out := all(n-1, alphabet)
		for _, s := range all(n-1, alphabet) {
			if len(s) == n-1 {
				for _, c := range alphabet {
					out = append(out, s+string(c))
				}
			}
		}
		return out
	}
	names := all(5, "ab.")
	for _, p := range all(5, "ab.*") {
		if !strings.Contains(p, "*") {
			continue
		}
		f := &Fault{name: p, pattern: true}
		f.head, f.tail = ends(p)
		for _, n := range names {
			if got, want := f.matchCanonical(n), glob(p, n); got != want {
				t.Fatalf("%q against %q: %v, glob %v", p, n, got, want)
			}
		}
	}
}

// TestFaultLimit: the registry refuses a fault beyond its limit, with an error that says so,
// and takes one again once one is removed.
func TestFaultLimit(t *testing.T) {
	r := NewRegistry()
	for i := range 1000 {
		if _, err := r.Add(Spec{Mode: ServFail, Name: "n" + strconv.Itoa(i) + ".example.test"}); err != nil {
			t.Fatalf("fault %d: %v", i+1, err)
		}
	}
	_, err := r.Add(Spec{Mode: ServFail, Name: "one-more.example.test"})
	if err == nil || !strings.Contains(err.Error(), "too many faults: at most 1000") {
		t.Fatalf("fault 1001: %v", err)
	}
	if len(r.List()) != 1000 {
		t.Fatalf("%d faults registered", len(r.List()))
	}
	r.Remove("1")
	if _, err := r.Add(Spec{Mode: ServFail, Name: "one-more.example.test"}); err != nil {
		t.Fatalf("after a removal: %v", err)
	}
}

func TestFaultLimitSetting(t *testing.T) {
	r := NewRegistry()
	r.MaxFaults = 2
	for i := range 3 {
		_, err := r.Add(Spec{Mode: Drop, Name: "*"})
		if (err != nil) != (i == 2) || i == 2 && !errors.Is(err, ErrTooMany) {
			t.Errorf("fault %d: %v", i+1, err)
		}
	}
}

// TestHoldReleased: the queries a delay fault holds return when the fault is removed (to be
// answered), when the client goes away (dropped), and beyond MaxDelayed are not held at all.
func TestHoldReleased(t *testing.T) {
	r := NewRegistry()
	r.MaxDelayed = 3
	f, err := r.Add(Spec{Mode: Delay, Name: "late.test", Delay: Duration(MaxDelay)})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		answer  bool
		dropped int64
	}
	results := make(chan result, 5)
	for range 5 {
		go func() {
			a, dropped := f.Hold(context.Background())
			results <- result{a, dropped}
		}()
	}
	for range 2 { // beyond the limit: dropped at once
		if r := <-results; r.answer || r.dropped == 0 {
			t.Errorf("beyond the limit: %+v", r)
		}
	}
	for r.Delayed() != 3 {
		time.Sleep(time.Millisecond)
	}
	r.Remove(f.ID)
	for range 3 {
		select {
		case r := <-results:
			if !r.answer || r.dropped != 0 {
				t.Errorf("released: %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a held query was not released by the removal")
		}
	}
	if v := r.Delayed(); v != 0 {
		t.Errorf("%d still held", v)
	}
	if f.dropped.Load() != 2 {
		t.Errorf("dropped %d", f.dropped.Load())
	}

	f, _ = r.Add(Spec{Mode: Delay, Name: "late.test", Delay: Duration(MaxDelay)})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		a, dropped := f.Hold(ctx)
		results <- result{a, dropped}
	}()
	cancel()
	if res := <-results; res.answer || res.dropped != 0 {
		t.Errorf("client gone: %+v", res)
	}
	go func() {
		a, dropped := f.Hold(context.Background())
		results <- result{a, dropped}
	}()
	for r.Delayed() != 1 {
		time.Sleep(time.Millisecond)
	}
	r.Reset()
	if res := <-results; !res.answer {
		t.Errorf("after reset: %+v", res)
	}
}

// BenchmarkFaultMatch: the cost of matching a query with 10 and with 10,000 faults on exact
// names, for a query no fault matches and one the last fault added matches; and the worst
// case the limit allows, a thousand patterns (a linear list, each refused on its fixed ends).
func BenchmarkFaultMatch(b *testing.B) {
	for _, c := range []struct {
		kind, prefix string
		n            int
	}{{"faults", "", 10}, {"faults", "", 10000}, {"patterns", "*.", 1000}} {
		r := NewRegistry()
		r.MaxFaults = c.n
		for i := range c.n {
			if _, err := r.Add(Spec{Mode: ServFail, Name: c.prefix + "host" + strconv.Itoa(i) + ".example.test", Type: "TLSA"}); err != nil {
				b.Fatal(err)
			}
		}
		last := "x.host" + strconv.Itoa(c.n-1) + ".example.test." // below the last fault's name
		if c.prefix == "" {
			last = last[2:] // the name itself
		}
		for _, q := range []struct{ name, qname string }{{"miss", "www.example.test."}, {"hit", last}} {
			b.Run(c.kind+"="+strconv.Itoa(c.n)+"/"+q.name, func(b *testing.B) {
				if (r.Match("example.test.", q.qname, dns.TypeTLSA) != nil) != (q.name == "hit") {
					b.Fatalf("%s: wrong match", q.qname)
				}
				b.ReportAllocs()
				for b.Loop() {
					r.Match("example.test.", q.qname, dns.TypeTLSA)
				}
			})
		}
	}
}

// TestShareBounds: a share that is not a number is refused (it would apply to every query),
// and share 1, every query, counts for the referrals' DS like no share at all.
func TestShareBounds(t *testing.T) {
	r := NewRegistry()
	if _, err := r.Add(Spec{Mode: ServFail, Name: "a.example.test", Share: math.NaN()}); err == nil {
		t.Error("share NaN accepted")
	}
	if _, err := r.Add(Spec{Mode: DSMismatch, Name: "child.example.test", Share: 1}); err != nil {
		t.Fatal(err)
	}
	if f := r.DataFor("example.test.", "www.child.example.test."); f == nil {
		t.Error("a ds-mismatch fault with share 1 is left out of the referrals' DS")
	}
}

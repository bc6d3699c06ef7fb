package fault

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*.example.test.", "a.example.test.", true},
		{"*.example.test.", "a.b.example.test.", true},
		{"*.example.test.", "example.test.", false},
		{"_25._tcp.*.example.test.", "_25._tcp.mx1.example.test.", true},
		{"_25._tcp.*.example.test.", "_465._tcp.mx1.example.test.", false},
		{"*", "anything.", true},
		{"mx*.example.test.", "mx12.example.test.", true},
		{"mx*.example.test.", "www.example.test.", false},
	}
	for _, tc := range tests {
		if got := glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	r := NewRegistry()
	tests := []struct {
		spec Spec
		err  string
	}{
		{Spec{Name: "x.test"}, "mode is required"},
		{Spec{Mode: "explode", Name: "x.test"}, "valid modes are servfail, refused"},
		{Spec{Mode: ServFail}, "name is required"},
		{Spec{Mode: ServFail, Name: "x.test", Type: "BOGUS"}, `unknown type "BOGUS"`},
		{Spec{Mode: ServFail, Name: "x.test", Count: -1}, "count must not be negative"},
		{Spec{Mode: ServFail, Name: "x.test", Share: 2}, "share must be between 0 and 1"},
		{Spec{Mode: Delay, Name: "x.test"}, "needs a positive delay"},
		{Spec{Mode: ServFail, Name: "x.test", Delay: Duration(time.Second)}, "only for the delay mode"},
		{Spec{Mode: ServFail, Name: "x.test", Iterations: 5}, "only for the nsec3-iterations mode"},
		{Spec{Mode: NSEC3Iterations, Name: "x.test", Iterations: 2501}, "want 1 to 2500"},
		{Spec{Mode: Delay, Name: "x.test", Delay: Duration(time.Hour)}, "at most 1m"},
		{Spec{Mode: ServFail, Name: "x..test"}, "invalid name"},
	}
	for _, tc := range tests {
		if _, err := r.Add(tc.spec); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: want %q, got %v", tc.spec, tc.err, err)
		}
	}
	if len(r.List()) != 0 {
		t.Error("a bad spec was registered")
	}
}

func TestCountWindowShare(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	r := NewRegistry()
	r.Now = func() time.Time { return now }
	// First two TLSA queries of the name fail, then the fault heals.
	f, err := r.Add(Spec{Mode: ServFail, Name: "_25._tcp.mx1.example.test", Type: "TLSA", Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Match("example.test.", "_25._tcp.mx1.example.test.", dns.TypeA) != nil {
		t.Error("another type matched")
	}
	if r.Match("example.test.", "_25._tcp.mx2.example.test.", dns.TypeTLSA) != nil {
		t.Error("another name matched")
	}
	for i := 1; i <= 3; i++ {
		got := r.Match("example.test.", "_25._TCP.MX1.example.test.", dns.TypeTLSA)
		if (got != nil) != (i <= 2) {
			t.Errorf("query %d: applied=%v", i, got != nil)
		}
	}
	if v := r.List()[0]; v.Active || v.Applied != 2 {
		t.Errorf("after the count: active=%v applied=%d", v.Active, v.Applied)
	}
	r.Remove(f.ID)

	// A window starting in 15 minutes, lasting 30.
	r.Add(Spec{Mode: Drop, Name: "*.example.test", After: Duration(15 * time.Minute), For: Duration(30 * time.Minute)})
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {15*time.Minute - time.Second, false}, {15 * time.Minute, true}, {44 * time.Minute, true}, {45 * time.Minute, false}} {
		now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).Add(tc.at)
		if got := r.Match("example.test.", "a.example.test.", dns.TypeMX) != nil; got != tc.want {
			t.Errorf("at +%s: applied=%v", tc.at, got)
		}
	}
	r.Reset()

	// A share of 0.25 applies to about a quarter of the queries.
	r.Add(Spec{Mode: Refused, Name: "x.example.test", Share: 0.25})
	n := 0
	for range 4000 {
		if r.Match("example.test.", "x.example.test.", dns.TypeA) != nil {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("share 0.25 applied %d of 4000", n)
	}
	// Zone scope.
	r.Reset()
	r.Add(Spec{Mode: Refused, Name: "*", Zone: "other.test"})
	if r.Match("example.test.", "x.example.test.", dns.TypeA) != nil {
		t.Error("zone scope ignored")
	}
}

func TestSpecJSON(t *testing.T) {
	var s Spec
	if err := json.Unmarshal([]byte(`{"mode":"delay","name":"a.test","delay":"1500ms","for":"2d","after":30}`), &s); err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.Delay) != 1500*time.Millisecond || time.Duration(s.For) != 48*time.Hour || time.Duration(s.After) != 30*time.Second {
		t.Fatalf("durations: %+v", s)
	}
	if err := json.Unmarshal([]byte(`{"delay":"soon"}`), &s); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func TestConcurrentRegistry(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 200 {
				f, _ := r.Add(Spec{Mode: ServFail, Name: "*.example.test", Count: 5})
				r.List()
				r.Remove(f.ID)
			}
		}()
		go func() {
			defer wg.Done()
			for range 2000 {
				r.Match("example.test.", "a.example.test.", uint16(i))
			}
		}()
	}
	wg.Wait()
}

// TestSpecDurations: a fault's durations are bounded by what they mean, read from Go, a
// string or a number of seconds, and a JSON error names the field.
func TestSpecDurations(t *testing.T) {
	r := NewRegistry()
	for _, tc := range []struct {
		spec Spec
		err  string
	}{
		{Spec{Mode: ServFail, Name: "x.test", After: Duration(-time.Minute)}, "after -1m must not be negative"},
		{Spec{Mode: ServFail, Name: "x.test", For: Duration(-time.Minute)}, "for -1m must not be negative"},
		{Spec{Mode: ServFail, Name: "x.test", For: Duration(MaxWindow + time.Second)}, "for 8760h0m1s is too long (at most 365d)"},
		{Spec{Mode: ServFail, Name: "x.test", After: Duration(400 * 24 * time.Hour)}, "after 400d is too long (at most 365d)"},
		{Spec{Mode: Delay, Name: "x.test", Delay: Duration(MaxDelay + time.Millisecond)}, "delay 1m0.001s is too long (at most 1m)"},
	} {
		if _, err := r.Add(tc.spec); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: want %q, got %v", tc.spec, tc.err, err)
		}
	}
	if _, err := r.Add(Spec{Mode: Delay, Name: "x.test", After: Duration(MaxWindow), For: Duration(MaxWindow), Delay: Duration(MaxDelay)}); err != nil {
		t.Errorf("the bounds themselves: %v", err)
	}
	for _, tc := range []struct{ in, err string }{
		{`{"after":-60}`, "after: invalid duration -60 seconds: negative"},
		{`{"after":1e300}`, "after: invalid duration 1e300 seconds: out of range"},
		{`{"for":"200000d"}`, `for: invalid duration "200000d": out of range`},
		{`{"delay":"-1s"}`, `delay: invalid duration "-1s": negative`},
		{`{"delay":null}`, "delay: duration must be a string"},
		{`{"count":"x"}`, "Go struct field Spec.count of type int"},
		{`{"colour":"red"}`, `unknown field "colour"`},
	} {
		var s Spec
		if err := json.Unmarshal([]byte(tc.in), &s); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: want %q, got %v", tc.in, tc.err, err)
		}
	}
	var s Spec
	in := `{"mode":"delay","name":"a.test","after":"1m","for":90,"delay":0.5,"count":2,"share":0.5,"zone":"test","type":"A"}`
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	want := Spec{Mode: Delay, Name: "a.test", After: Duration(time.Minute), For: Duration(90 * time.Second), Delay: Duration(500 * time.Millisecond),
		Count: 2, Share: 0.5, Zone: "test", Type: "A"}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

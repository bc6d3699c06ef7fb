package queue

import (
	"testing"
	"time"
)

// TestEximSchedule: Exim's default retry rule, F,2h,15m; G,16h,1h,1.5; F,4d,6h, played from a
// first failure at 0; the address is bounced after the first attempt that fails past 4 days.
func TestEximSchedule(t *testing.T) {
	h := time.Hour
	want := []time.Duration{0, 15 * time.Minute, 30 * time.Minute, 45 * time.Minute, h, h + 15*time.Minute,
		h + 30*time.Minute, h + 45*time.Minute, 2 * h, // F,2h,15m
		3 * h, 4*h + 30*time.Minute, 6*h + 45*time.Minute, 10*h + 7*time.Minute + 30*time.Second, // G,16h,1h,1.5
	}
	p := EximProfile{}
	var got []time.Duration
	age := time.Duration(0)
	for n := 1; ; n++ {
		got = append(got, age)
		s := p.Next(n, age)
		if s.Expire {
			if age < 96*h || s.At != age {
				t.Fatalf("expired at attempt %d, age %v (At %v): want the first failure past 96h", n, age, s.At)
			}
			break
		}
		if s.At <= age {
			t.Fatalf("attempt %d at %v: next at %v does not move forward", n, age, s.At)
		}
		age = s.At
		if n > 100 {
			t.Fatal("no expiry after 100 attempts")
		}
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("attempt %d at %v, want %v (schedule %v)", i+1, got[i], w, got)
		}
	}
	// After 16h: every 6h.
	for i := 1; i < len(got); i++ {
		if got[i-1] >= 16*h && got[i]-got[i-1] != 6*h {
			t.Errorf("attempt %d: %v after the one before, want 6h", i+1, got[i]-got[i-1])
		}
	}

	// The test's own rule, F,2m,10s.
	short := EximProfile{Rules: []EximRetryRule{{Until: 2 * time.Minute, Interval: 10 * time.Second}}}
	if s := short.Next(3, 20*time.Second); s != (Step{At: 30 * time.Second}) {
		t.Errorf("F,2m,10s after a failure at 20s: %+v", s)
	}
	if s := short.Next(13, 2*time.Minute); !s.Expire {
		t.Errorf("F,2m,10s after a failure at 2m: %+v, want expiry", s)
	}
}

// TestEximCodes: Exim's DSN carries 5.0.0 for every failure after the retry timeout, a null MX
// included.
func TestEximCodes(t *testing.T) {
	p := EximProfile{}
	for _, r := range []string{ResultTLSAInvalid, ResultDNSSECInvalid, ResultSTARTTLSNotSupported, ResultDNSFailure} {
		if got := p.Status(Outcome{Result: r}).Code; got != "4.0.0" {
			t.Errorf("%s: attempt %s, want 4.0.0", r, got)
		}
		if got := p.Final(Outcome{Result: r}).Code; got != "5.0.0" {
			t.Errorf("%s: final %s, want 5.0.0", r, got)
		}
	}
	if got := p.Final(Outcome{Result: ResultNullMX, Permanent: true}).Code; got != "5.0.0" {
		t.Errorf("null MX: %s, want 5.0.0", got)
	}
}

package queue

import (
	"testing"
	"time"
)

// schedule plays p from a first attempt at 0, every attempt failing, and returns the ages of
// the attempts; the last one is the failure after which the message is returned.
func schedule(t *testing.T, p Profile) []time.Duration {
	t.Helper()
	var got []time.Duration
	age := time.Duration(0)
	for n := 1; n <= 100; n++ {
		got = append(got, age)
		s := p.Next(n, age)
		if s.Expire {
			if s.At != age {
				t.Fatalf("%s: expiry at %v after the attempt at %v", p.Name(), s.At, age)
			}
			return got
		}
		if s.At <= age {
			t.Fatalf("%s: attempt %d at %v: next at %v does not move forward", p.Name(), n, age, s.At)
		}
		age = s.At
	}
	t.Fatalf("%s: no expiry after 100 attempts", p.Name())
	return nil
}

// TestMoxSchedule: mox retries 7.5m, 15m, 30m, 1h, 2h, 4h, 8h after each failure and returns
// the message when the 8th attempt fails (mox queue/queue.go, dsn.go).
func TestMoxSchedule(t *testing.T) {
	m := time.Minute
	want := []time.Duration{0, 7*m + 30*time.Second, 22*m + 30*time.Second, 52*m + 30*time.Second,
		112*m + 30*time.Second, 232*m + 30*time.Second, 472*m + 30*time.Second, 952*m + 30*time.Second}
	got := schedule(t, MoxProfile{})
	if len(got) != len(want) {
		t.Fatalf("attempts %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("attempt %d at %v, want %v", i+1, got[i], want[i])
		}
	}
}

// TestMaddySchedule: maddy waits 15m × int(1.25^(n-1)) after the n-th failure: 15m four times,
// then 30m (1.25^4 = 2.44), 45m (3.05), 45m (3.81), 1h (4.77), ...; the 20th attempt (default
// max_tries) is the last.
func TestMaddySchedule(t *testing.T) {
	m := time.Minute
	got := schedule(t, MaddyProfile{})
	if len(got) != MaddyMaxTries {
		t.Fatalf("%d attempts, want %d: %v", len(got), MaddyMaxTries, got)
	}
	want := []time.Duration{0, 15 * m, 30 * m, 45 * m, 60 * m, 90 * m, 135 * m, 180 * m, 240 * m}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("attempt %d at %v, want %v (schedule %v)", i+1, got[i], want[i], got)
		}
	}
	if got := schedule(t, MaddyProfile{MaxTries: 6}); len(got) != 6 {
		t.Errorf("max_tries 6: %d attempts", len(got))
	}
}

// TestGoMTACodes: mox returns 5.0.0 after its attempts (4.0.0 while retrying) and takes the
// reply to an unoffered STARTTLS as permanent; maddy bounces DANE failures at once with 5.0.0
// and returns exhausted temporary failures with 4.0.0.
func TestGoMTACodes(t *testing.T) {
	for _, c := range []struct {
		p                Profile
		result           string
		attempt, final   string
		permanentAtFirst bool
	}{
		{MoxProfile{}, ResultTLSAInvalid, "4.0.0", "5.0.0", false},
		{MoxProfile{}, ResultDNSSECInvalid, "4.0.0", "5.0.0", false},
		{MoxProfile{}, ResultDNSFailure, "4.0.0", "5.0.0", false},
		{MoxProfile{}, ResultSTARTTLSNotSupported, "5.5.1", "5.5.1", true},
		{MoxProfile{}, ResultNullMX, "5.0.0", "5.0.0", true},
		{MaddyProfile{}, ResultTLSAInvalid, "5.0.0", "5.0.0", true},
		{MaddyProfile{}, ResultSTARTTLSNotSupported, "5.0.0", "5.0.0", true},
		{MaddyProfile{}, ResultDNSSECInvalid, "4.0.0", "4.0.0", false},
		{MaddyProfile{}, ResultDNSFailure, "4.0.0", "4.0.0", false},
	} {
		o := Outcome{Result: c.result}
		if got := c.p.Status(o).Code; got != c.attempt {
			t.Errorf("%s %s: attempt %s, want %s", c.p.Name(), c.result, got, c.attempt)
		}
		if got := c.p.Final(o).Code; got != c.final {
			t.Errorf("%s %s: final %s, want %s", c.p.Name(), c.result, got, c.final)
		}
	}
}

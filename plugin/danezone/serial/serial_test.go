package serial

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLess(t *testing.T) {
	for _, c := range []struct {
		a, b uint32
		want bool
	}{
		{1, 2, true},
		{2, 1, false},
		{5, 5, false},
		{0xffffffff, 0, true}, // RFC 1982 §3.2: wraps
		{0, 0xffffffff, false},
		{0, 1<<31 - 1, true},
		{0, 1 << 31, false}, // undefined: neither
		{1 << 31, 0, false},
	} {
		if got := Less(c.a, c.b); got != c.want {
			t.Errorf("Less(%d, %d) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestNext(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []struct {
		name string
		p    Policy
		last uint32
		have bool
		file uint32
		want uint32
	}{
		{"unixtime first", Unixtime, 0, false, 7, 1_800_000_000},
		{"unixtime after", Unixtime, 1_700_000_000, true, 7, 1_800_000_000},
		{"unixtime twice in a second", Unixtime, 1_800_000_000, true, 7, 1_800_000_001},
		{"unixtime behind a dateserial", Unixtime, 2026120201, true, 7, 2026120202},
		{"increment first: the file's", Increment, 0, false, 2026120201, 2026120201},
		{"increment", Increment, 41, true, 2026120201, 42},
		{"increment wraps", Increment, 0xffffffff, true, 1, 0},
		{"file newer", File, 5, true, 9, 9},
		{"file not newer", File, 9, true, 9, 10},
		{"file older", File, 9, true, 3, 10},
		{"file too far ahead is not greater", File, 1, true, 1 + 1<<31, 2},
		{"default is unixtime", "", 5, true, 9, 1_800_000_000},
	} {
		if got := c.p.Next(c.last, c.have, c.file, now); got != c.want {
			t.Errorf("%s: Next = %d, want %d", c.name, got, c.want)
		}
		if c.have && !Less(c.last, c.p.Next(c.last, c.have, c.file, now)) {
			t.Errorf("%s: not greater than %d", c.name, c.last)
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"unixtime", "increment", "file"} {
		if _, err := Parse(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := Parse("dateserial"); err == nil {
		t.Error("dateserial accepted")
	}
}

func TestStateKeepsSerials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "serial-state.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Last("a.test."); ok {
		t.Fatal("a serial in a new state")
	}
	if err := s.Save("a.test.", 42); err != nil {
		t.Fatal(err)
	}
	// Another process (a restart) reads the file.
	statesMu.Lock()
	delete(states, s.Path())
	statesMu.Unlock()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s2.Last("a.test."); !ok || v != 42 {
		t.Fatalf("after a restart: %d %v, want 42", v, ok)
	}
}

// Two users of one state file (two server blocks, or the old and the new instance during a
// reload) take serials from one sequence: neither goes back, whatever its own last serial.
func TestStateSharedSequence(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "serial-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a, _ := s.Next("z.", Unixtime, 0, false, 1, now) // instance A: 1800000000
	b, _ := s.Next("z.", Unixtime, 0, false, 1, now) // instance B knows nothing: still after A
	a2, _ := s.Next("z.", Unixtime, a, true, 1, now) // A again, behind B
	c, _ := s.Next("z.", Increment, 5, true, 1, now) // a much older last serial
	if !Less(a, b) || !Less(b, a2) || !Less(a2, c) {
		t.Fatalf("serials %d, %d, %d, %d: not increasing", a, b, a2, c)
	}
}

package scenario

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a transcript written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestShipped loads the shipped scenarios and runs them all, in parallel, with transcripts.
func TestShipped(t *testing.T) {
	ss, err := LoadDir("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var log syncBuffer
			r := Run(context.Background(), s, Options{Log: &log})
			if r.Verdict != Pass {
				t.Errorf("%s: %s\nexpected %s\nobserved %s\n%s\n%s", s.Name, r.Verdict, r.Expected, r.Observed, strings.Join(r.Diffs, "\n"), r.Err)
				t.Log(log.String())
			}
			t.Logf("%s: %s in %v: %s", s.Name, r.Verdict, r.Wall, r.Observed)
		}()
	}
	wg.Wait()
}

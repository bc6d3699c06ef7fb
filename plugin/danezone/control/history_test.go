package control

import (
	"sync"
	"testing"
)

// TestHistoryOrder: queries recorded at once by many handlers come out in the order of their
// times (a client that reads the log sees time go forward).
func TestHistoryOrder(t *testing.T) {
	h := NewHistory(1000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				h.Record(Query{Name: "a.example.test.", Type: "A"})
			}
		})
	}
	wg.Wait()
	qs := h.Find("", 0, Query{}.Time)
	if len(qs) != 800 {
		t.Fatalf("%d queries, want 800", len(qs))
	}
	for i := 1; i < len(qs); i++ {
		if qs[i].Time.Before(qs[i-1].Time) {
			t.Fatalf("query %d at %v is before query %d at %v", i, qs[i].Time, i-1, qs[i-1].Time)
		}
	}
}

package canonical

import (
	"slices"
	"testing"
)

// TestCompare: RFC 4034 §6.1's example, in its order.
func TestCompare(t *testing.T) {
	want := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, Compare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted: %q\nRFC 4034 §6.1: %q", got, want)
	}
}

package zone

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestBelow: the per-query zone match agrees with dns.IsSubDomain, escapes included.
func TestBelow(t *testing.T) {
	origins := []string{".", "example.test.", "b.example.test.", `a\.b.example.test.`, "test."}
	names := []string{".", "example.test.", "EXAMPLE.Test.", "www.example.test.", "wwwexample.test.", "xample.test.",
		`a\.example.test.`, `a\\.example.test.`, `x.a\.b.example.test.`, `a\.b.example.test.`, "b.example.test.",
		`\098.example.test.`, "test.", "other.", `a\\\.example.test.`, `\\.example.test.`}
	for _, o := range origins {
		for _, n := range names {
			if got, want := Below(o, n), dns.IsSubDomain(o, n); got != want {
				t.Errorf("Below(%q, %q) = %v, dns.IsSubDomain says %v", o, n, got, want)
			}
		}
	}
}

// TestPlainKey: the key of a name without escapes, made by scanning for dots, is the one the
// general path (labels found by dns.NextLabel, escapes resolved) makes.
func TestPlainKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const letters = "aZ09-_*x"
	for range 2000 {
		name := ""
		for range 1 + rng.IntN(5) {
			l := make([]byte, 1+rng.IntN(6))
			for i := range l {
				l[i] = letters[rng.IntN(len(letters))]
			}
			name += string(l) + "."
		}
		k1, b1 := appendPlainKey([]byte(nil), []int{}, name)
		k2, b2 := appendEscapedKey([]byte(nil), []int{}, name)
		if !bytes.Equal(k1, k2) || !slices.Equal(b1, b2) {
			t.Fatalf("%s: plain key %q %v, general %q %v", name, k1, b1, k2, b2)
		}
	}
}

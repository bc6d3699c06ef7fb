package zone

import (
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

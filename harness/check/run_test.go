package check

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// A secure MX whose signature expires within three days is a warning with the fix.
func TestSignaturesExpiringSoon(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		days int
		want Verdict
	}{{1, Warn}, {10, Pass}} {
		sig := fmt.Sprintf("example.test. 300 IN RRSIG MX 13 2 300 %s %s 1234 example.test. AAAA",
			now.Add(time.Duration(c.days)*24*time.Hour).UTC().Format("20060102150405"), now.Add(-time.Hour).UTC().Format("20060102150405"))
		r := (&stsResolver{}).set("example.test.", dns.TypeMX, resolver.Secure, dns.RcodeSuccess,
			"example.test. 300 IN MX 10 mx.example.test.", sig)
		rep, err := Run(context.Background(), "example.test", Config{Resolver: r, Timeout: 200 * time.Millisecond, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, it := range rep.Items {
			if it.Name == "MX of example.test" {
				found = true
				if it.Verdict != c.want {
					t.Errorf("%d days left: %s (%s), want %s", c.days, it.Verdict, it.Detail, c.want)
				}
			}
		}
		if !found {
			t.Fatalf("no MX item: %+v", rep.Items)
		}
	}
}

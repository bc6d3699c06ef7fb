package sender_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/receiver"
)

// TestNeverPlaintextUnderDANE is the property of RFC 7672 §2.2: a host with a usable secure
// TLSA RRset never receives the message in plaintext, whatever the receiver does. Every
// personality runs with a TLSA that describes what it serves and with random TLSA data.
func TestNeverPlaintextUnderDANE(t *testing.T) {
	t.Parallel()
	caIssued := map[receiver.Personality]bool{receiver.CAChain: true, receiver.CAChainLeafOnly: true,
		receiver.Expired: true, receiver.NotYetValid: true, receiver.NameMXHost: true,
		receiver.NameRecipientDomain: true, receiver.NameUnrelated: true}
	random := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return fmt.Sprintf("%x", b)
	}
	for _, p := range receiver.Personalities {
		variants := map[string]host{
			"published-311": {TLSA: []string{"3 1 1"}},
			"random-311":    {ExtraTLSA: []string{"3 1 1 " + random(32)}},
			"random-mixed":  {ExtraTLSA: []string{"2 0 1 " + random(32), "3 0 2 " + random(64), "0 1 1 " + random(32)}},
		}
		if caIssued[p] {
			variants["published-211"] = host{TLSA: []string{"2 1 1"}}
		}
		for name, h := range variants {
			t.Run(string(p)+"/"+name, func(t *testing.T) {
				t.Parallel()
				h.Label, h.Pers = "mx1", p
				if p == receiver.SlowGreeting {
					h.Delay = 300 * time.Millisecond
				}
				s := newScene(t, sceneConfig{Hosts: []host{h}})
				o := s.attempt()
				for _, d := range s.allDeliveries() {
					if !d.TLS {
						t.Fatalf("%s received the message in plaintext under DANE", p)
					}
				}
				for _, ss := range s.Recv["mx1"].Sessions() {
					if ss.Deliveries > 0 && !ss.TLS {
						t.Fatalf("plaintext session with deliveries: %+v", ss)
					}
				}
				if o.Delivered && o.TLS != "dane" {
					t.Errorf("delivered at level %q with a usable TLSA", o.TLS)
				}
				if !o.Delivered && !o.Permanent && o.TLS != "" && o.TLS != "dane" {
					t.Errorf("deferred with level %q, want dane", o.TLS)
				}
			})
		}
	}
}

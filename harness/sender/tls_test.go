package sender_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
)

// TestTLSACombinations: every usable usage × selector × matching type (RFC 7672 §3.1, RFC 6698
// §2.1). DANE-EE (3) records describe the served self-signed leaf, DANE-TA (2) records the CA
// that issued the served leaf (chain sent). A record of the same parameters for another key or
// CA must defer the message with tlsa-invalid (Exchange 4.7.323), never deliver it.
func TestTLSACombinations(t *testing.T) {
	t.Parallel()
	for _, u := range []int{2, 3} {
		for _, sel := range []int{0, 1} {
			for _, m := range []int{0, 1, 2} {
				p := fmt.Sprintf("%d %d %d", u, sel, m)
				pers := receiver.SelfSigned
				if u == 2 {
					pers = receiver.CAChain
				}
				t.Run(fmt.Sprintf("%d%d%d/match", u, sel, m), func(t *testing.T) {
					t.Parallel()
					s := newScene(t, sceneConfig{Hosts: []host{{Label: "mx1", Pers: pers, TLSA: []string{p}}}})
					s.wantDANE(s.attempt(), "mx1", "mx1.example.test")
				})
				t.Run(fmt.Sprintf("%d%d%d/mismatch", u, sel, m), func(t *testing.T) {
					t.Parallel()
					s := newScene(t, sceneConfig{Hosts: []host{{Label: "mx1", Pers: pers, WrongTLSA: []string{p}}}})
					o := s.attempt()
					s.wantDeferred(o, queue.ResultTLSAInvalid, "4.7.323")
					if o.TLS != queue.TLSDane {
						t.Errorf("TLS %q, want the required level %q", o.TLS, queue.TLSDane)
					}
				})
			}
		}
	}
}

// TestPersonalities: each receiver personality against the TLSA the scenario table gives it.
func TestPersonalities(t *testing.T) {
	t.Parallel()
	type tc struct {
		name  string
		h     host
		check func(t *testing.T, s *scene, o queue.Outcome)
	}
	dane := func(t *testing.T, s *scene, o queue.Outcome) { s.wantDANE(o, "mx1", "mx1.example.test") }
	deferred := func(result, code string) func(*testing.T, *scene, queue.Outcome) {
		return func(t *testing.T, s *scene, o queue.Outcome) { s.wantDeferred(o, result, code) }
	}
	encrypt := func(t *testing.T, s *scene, o queue.Outcome) {
		if !o.Delivered || o.TLS != queue.TLSEncrypt {
			t.Fatalf("want delivered over mandatory unauthenticated TLS, got delivered=%v tls=%q result=%q detail=%q", o.Delivered, o.TLS, o.Result, o.Detail)
		}
		ds := s.deliveries("mx1")
		if len(ds) != 1 || !ds[0].TLS || ds[0].TLSVersion < 0x0303 {
			t.Fatalf("deliveries %+v, want one over TLS >= 1.2", ds)
		}
	}
	smtpReply := func(permanent bool, status string) func(*testing.T, *scene, queue.Outcome) {
		return func(t *testing.T, s *scene, o queue.Outcome) {
			if o.Delivered || o.Permanent != permanent || o.Result != queue.ResultSMTPReply {
				t.Fatalf("got delivered=%v permanent=%v result=%q, want permanent=%v %s", o.Delivered, o.Permanent, o.Result, permanent, queue.ResultSMTPReply)
			}
			if o.Status != status || exchange(o) != status {
				t.Errorf("status %q exchange %q, want the server's %s", o.Status, exchange(o), status)
			}
			if ds := s.allDeliveries(); len(ds) != 0 {
				t.Errorf("%d deliveries", len(ds))
			}
			// The refusal came over the authenticated TLS session.
			for _, ss := range s.Recv["mx1"].Sessions() {
				if len(ss.Rejected) > 0 && !ss.TLS {
					t.Errorf("rejection in a plaintext session: %+v", ss)
				}
			}
		}
	}
	usage01 := []string{"0 1 1 " + hex32(1), "1 1 1 " + hex32(2), "0 0 2 " + hex32(3) + hex32(4)}
	cases := []tc{
		{"self-signed-311", host{Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}}, dane},
		{"ca-chain-211", host{Pers: receiver.CAChain, TLSA: []string{"2 1 1"}}, dane},
		{"ca-chain-leaf-only-211", host{Pers: receiver.CAChainLeafOnly, TLSA: []string{"2 1 1"}},
			deferred(queue.ResultCertificateNotTrusted, "4.7.323")},
		// 2 0 0 carries the whole trust anchor: the server need not send it (RFC 7671 §5.2.2).
		{"ca-chain-leaf-only-200", host{Pers: receiver.CAChainLeafOnly, TLSA: []string{"2 0 0"}}, dane},
		{"ca-chain-leaf-only-311", host{Pers: receiver.CAChainLeafOnly, TLSA: []string{"3 1 1"}}, dane},
		{"expired-311", host{Pers: receiver.Expired, TLSA: []string{"3 1 1"}}, dane}, // DANE-EE ignores dates
		{"expired-211", host{Pers: receiver.Expired, TLSA: []string{"2 1 1"}}, deferred(queue.ResultCertificateExpired, "4.7.322")},
		{"not-yet-valid-311", host{Pers: receiver.NotYetValid, TLSA: []string{"3 1 1"}}, dane},
		{"not-yet-valid-211", host{Pers: receiver.NotYetValid, TLSA: []string{"2 1 1"}}, deferred("", "4.7.323")},
		{"name-mx-host-211", host{Pers: receiver.NameMXHost, TLSA: []string{"2 1 1"}}, dane},
		{"name-recipient-domain-211", host{Pers: receiver.NameRecipientDomain, TLSA: []string{"2 1 1"}}, dane},
		{"name-unrelated-211", host{Pers: receiver.NameUnrelated, TLSA: []string{"2 1 1"}},
			deferred(queue.ResultCertificateHostMismatch, "4.7.323")},
		{"name-unrelated-311", host{Pers: receiver.NameUnrelated, TLSA: []string{"3 1 1"}}, dane}, // DANE-EE ignores names
		{"no-starttls-311", host{Pers: receiver.NoSTARTTLS, TLSA: []string{"3 1 1"}},
			deferred(queue.ResultSTARTTLSNotSupported, "4.7.321")},
		{"no-starttls-no-tlsa", host{Pers: receiver.NoSTARTTLS}, func(t *testing.T, s *scene, o queue.Outcome) {
			if !o.Delivered || o.TLS != queue.TLSNone {
				t.Fatalf("want delivered in plaintext (TLS %q), got delivered=%v tls=%q result=%q", queue.TLSNone, o.Delivered, o.TLS, o.Result)
			}
			if ds := s.deliveries("mx1"); len(ds) != 1 || ds[0].TLS {
				t.Fatalf("deliveries %+v, want one in plaintext", ds)
			}
		}},
		{"handshake-fails-311", host{Pers: receiver.HandshakeFails, TLSA: []string{"3 1 1"}},
			deferred(queue.ResultValidationFailure, "4.7.323")},
		{"tls10-only-311", host{Pers: receiver.TLS10Only, TLSA: []string{"3 1 1"}},
			deferred(queue.ResultValidationFailure, "4.7.323")},
		{"drop-after-starttls-311", host{Pers: receiver.DropAfterSTARTTLS, TLSA: []string{"3 1 1"}},
			func(t *testing.T, s *scene, o queue.Outcome) {
				if o.Delivered || o.Permanent {
					t.Fatalf("want a temporary failure, got delivered=%v permanent=%v", o.Delivered, o.Permanent)
				}
				if !hasPrefix(exchange(o), "4.") {
					t.Errorf("exchange status %s, want 4.x.x", exchange(o))
				}
				if ds := s.allDeliveries(); len(ds) != 0 {
					t.Errorf("%d deliveries", len(ds))
				}
				if n := len(s.Recv["mx1"].Sessions()); n != 1 {
					t.Errorf("%d sessions: no plaintext retry may follow the drop", n)
				}
			}},
		{"slow-greeting-311", host{Pers: receiver.SlowGreeting, Delay: 500 * time.Millisecond, TLSA: []string{"3 1 1"}}, dane},
		{"reject-rcpt-5xx", host{Pers: receiver.RejectRCPT5xx, TLSA: []string{"3 1 1"}}, smtpReply(true, "5.1.1")},
		{"reject-rcpt-4xx", host{Pers: receiver.RejectRCPT4xx, TLSA: []string{"3 1 1"}}, smtpReply(false, "4.2.1")},
		{"reject-data-5xx", host{Pers: receiver.RejectDATA5xx, TLSA: []string{"3 1 1"}}, smtpReply(true, "5.6.0")},
		{"reject-data-4xx", host{Pers: receiver.RejectDATA4xx, TLSA: []string{"3 1 1"}}, smtpReply(false, "4.3.0")},
		// Secure TLSA, none usable: TLS mandatory, no authentication (RFC 7672 §2.2).
		{"usage-01-only", host{Pers: receiver.SelfSigned, ExtraTLSA: usage01}, encrypt},
		{"usage-01-only-no-starttls", host{Pers: receiver.NoSTARTTLS, ExtraTLSA: usage01},
			deferred(queue.ResultSTARTTLSNotSupported, "4.7.321")},
		{"unusable-params", host{Pers: receiver.SelfSigned, ExtraTLSA: []string{
			"3 2 1 " + hex32(5), "3 1 3 " + hex32(6), "3 1 1 " + hex32(7)[:40], "3 1 2 " + hex32(8), "4 1 1 " + hex32(9)}}, encrypt},
		// One usable match among unusable and mismatching records is enough.
		{"mixed-set", host{Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}, WrongTLSA: []string{"3 1 1", "2 1 1"},
			ExtraTLSA: usage01}, dane},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := c.h
			h.Label = "mx1"
			s := newScene(t, sceneConfig{Hosts: []host{h}})
			c.check(t, s, s.attempt())
		})
	}
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

// hex32 is 32 bytes of recognisable hex.
func hex32(seed byte) string {
	b := make([]byte, 32)
	for i := range b {
		b[i] = seed*31 + byte(i)
	}
	return fmt.Sprintf("%x", b)
}

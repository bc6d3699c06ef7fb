package sender_test

import (
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/tlsrpt"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// TestInsecureMX: MX RRset insecure, MX host address and TLSA secure. The sender applies DANE
// to the host (RFC 7672 §2.2.1, as Postfix does), and then only the MX host name is a
// reference identifier (§3.2.2): a DANE-TA leaf naming the recipient domain does not do.
func TestInsecureMX(t *testing.T) {
	t.Parallel()
	cfg := func(p receiver.Personality, tlsa string) sceneConfig {
		return sceneConfig{Domain: "plain.test", Unsigned: true,
			Hosts: []host{{Label: "mx1", Domain: "example.test", Pers: p, TLSA: []string{tlsa}}},
			Extra: []lab.Domain{{Name: "example.test"}}}
	}
	t.Run("311", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, cfg(receiver.SelfSigned, "3 1 1"))
		s.wantDANE(s.attempt(), "mx1", "mx1.example.test")
	})
	t.Run("211-name-mx-host", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, cfg(receiver.NameMXHost, "2 1 1"))
		s.wantDANE(s.attempt(), "mx1", "mx1.example.test")
	})
	t.Run("211-name-recipient-domain", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, cfg(receiver.NameRecipientDomain, "2 1 1"))
		s.wantDeferred(s.attempt(), queue.ResultCertificateHostMismatch, "4.7.323")
	})
}

// TestPerHostFailuresMoveOn: a bogus TLSA or address at MX10 makes the sender try MX20.
func TestPerHostFailuresMoveOn(t *testing.T) {
	t.Parallel()
	for _, f := range []fault.Spec{
		{Mode: fault.ServFail, Name: tlsaName, Type: "TLSA"},
		{Mode: fault.BadSig, Name: tlsaName, Type: "TLSA"},
		{Mode: fault.BadSig, Name: "mx1.example.test", Type: "A"},
	} {
		t.Run(string(f.Mode)+"-"+f.Type, func(t *testing.T) {
			t.Parallel()
			s := newScene(t, sceneConfig{Hosts: []host{
				{Label: "mx1", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
				{Label: "mx2", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
			}})
			s.fault(f)
			s.wantDANE(s.attempt(), "mx2", "mx2.example.test")
			if n := len(s.deliveries("mx1")); n != 0 {
				t.Errorf("mx1 got %d deliveries", n)
			}
		})
	}
}

// TestMoreAddresses: the first address of a host refuses the connection, the next one is tried.
func TestMoreAddresses(t *testing.T) {
	t.Parallel()
	s := newScene(t, sceneConfig{Hosts: []host{{Label: "mx1", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}}}})
	// Two addresses for mx1: the receiver's and one nobody listens on (in either order).
	if err := s.Lab.AddRecords("mx1.example.test. 60 IN A " + s.Net + "250"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.Recv["mx1"].Reset()
		s.wantDANE(s.attempt(), "mx1", "mx1.example.test")
	}
}

// TestNoSuchDomain: the recipient domain does not exist (secure NXDOMAIN): permanent.
func TestNoSuchDomain(t *testing.T) {
	t.Parallel()
	s := newScene(t, sceneConfig{Hosts: []host{{Label: "mx1", Pers: receiver.SelfSigned}}})
	m := s.msg()
	m.Domain, m.To = "nosuch.example.test", []string{"bob@nosuch.example.test"}
	o := s.Snd.Attempt(t.Context(), m)
	if o.Delivered || !o.Permanent || !strings.HasPrefix(exchange(o), "5.") {
		t.Fatalf("delivered=%v permanent=%v status %s, want a permanent failure", o.Delivered, o.Permanent, exchange(o))
	}
}

// TestTimeoutAndHelo: the sender's Timeout bounds the wait for the greeting (a connection
// failure, Exchange 4.4.316), and it introduces itself with its configured HELO name.
func TestTimeoutAndHelo(t *testing.T) {
	t.Parallel()
	t.Run("slow-greeting", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, sceneConfig{Timeout: time.Second,
			Hosts: []host{{Label: "mx1", Pers: receiver.SlowGreeting, Delay: 6 * time.Second, TLSA: []string{"3 1 1"}}}})
		start := time.Now()
		o := s.attempt()
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("attempt took %v with a 1 s timeout", took)
		}
		if o.Delivered || o.Permanent || o.Result != queue.ResultConnect {
			t.Fatalf("delivered=%v permanent=%v result %q, want a temporary connection failure", o.Delivered, o.Permanent, o.Result)
		}
		if c := exchange(o); c != "4.4.316" {
			t.Errorf("exchange status %s, want 4.4.316", c)
		}
	})
	t.Run("helo", func(t *testing.T) {
		t.Parallel()
		// The sender speaks the dialogue before TLS itself, so the configured name is used on
		// STARTTLS sessions too (go-smtp alone would say EHLO localhost).
		s := newScene(t, sceneConfig{Hosts: []host{{Label: "mx1", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}}}})
		s.wantDANE(s.attempt(), "mx1", "mx1.example.test")
		if d := s.deliveries("mx1")[0]; d.Helo != "danelab.invalid" {
			t.Errorf("HELO %q, want the configured default danelab.invalid", d.Helo)
		}
	})
}

// TestSessionsForTLSRPT: the TLS sessions an attempt reports (RFC 8460 §4.4).
func TestSessionsForTLSRPT(t *testing.T) {
	t.Parallel()
	s := newScene(t, sceneConfig{Hosts: []host{
		{Label: "mx1", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}},
		{Label: "mx2", Pers: receiver.SelfSigned},
	}})
	o := s.attempt()
	if len(o.Sessions) != 2 {
		t.Fatalf("sessions %+v", o.Sessions)
	}
	a, b := o.Sessions[0], o.Sessions[1]
	if a.PolicyType != tlsrpt.PolicyTLSA || len(a.PolicyString) != 1 || !strings.HasPrefix(a.PolicyString[0], "3 1 1 ") ||
		a.Result != queue.ResultTLSAInvalid || a.MXHost != "mx1.example.test" || a.ReceivingIP != s.IP["mx1"] ||
		a.PolicyDomain != "example.test" {
		t.Errorf("mx1 session %+v", a)
	}
	if b.PolicyType != tlsrpt.PolicyNoPolicyFound || b.Result != tlsrpt.Success || b.MXHost != "mx2.example.test" {
		t.Errorf("mx2 session %+v", b)
	}
}

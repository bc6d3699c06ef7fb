package sender_test

import (
	"testing"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// wantOpportunistic checks a delivery at level may to label; tls says whether the receiver
// must have recorded TLS (it offers STARTTLS).
func (s *scene) wantOpportunistic(o queue.Outcome, label string, tls bool) {
	s.t.Helper()
	want := queue.TLSMay
	if !tls {
		want = queue.TLSNone
	}
	if !o.Delivered || o.TLS != want {
		s.t.Fatalf("want delivered with TLS %q, got delivered=%v tls=%q result=%q detail=%q", want, o.Delivered, o.TLS, o.Result, o.Detail)
	}
	if c := exchange(o); c != "2.0.0" {
		s.t.Errorf("exchange status %s", c)
	}
	ds := s.deliveries(label)
	if len(ds) != 1 || ds[0].TLS != tls {
		s.t.Fatalf("%s deliveries %+v, want one with TLS=%v", label, ds, tls)
	}
}

func (s *scene) fault(spec fault.Spec) string {
	s.t.Helper()
	id, err := s.Lab.AddFault(spec)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

const tlsaName = "_25._tcp.mx1.example.test"

// TestDNSSide runs the DNS rows of the scenario matrix.
func TestDNSSide(t *testing.T) {
	t.Parallel()
	one := func(h host) []host {
		h.Label = "mx1"
		if h.Pers == "" {
			h.Pers = receiver.SelfSigned
		}
		return []host{h}
	}
	dane311 := one(host{TLSA: []string{"3 1 1"}})
	type tc struct {
		name   string
		cfg    sceneConfig
		faults []fault.Spec
		check  func(t *testing.T, s *scene, o queue.Outcome)
	}
	deferred := func(result, code string) func(*testing.T, *scene, queue.Outcome) {
		return func(t *testing.T, s *scene, o queue.Outcome) { s.wantDeferred(o, result, code) }
	}
	tlsaFault := func(m fault.Mode) []fault.Spec {
		return []fault.Spec{{Mode: m, Name: tlsaName, Type: "TLSA"}}
	}
	dnssecInvalid := deferred(queue.ResultDNSSECInvalid, "4.7.324")
	dnsFailure := deferred(queue.ResultDNSFailure, "4.4.312")
	opp := func(t *testing.T, s *scene, o queue.Outcome) { s.wantOpportunistic(o, "mx1", true) }
	dane := func(t *testing.T, s *scene, o queue.Outcome) { s.wantDANE(o, "mx1", "mx1.example.test") }
	cases := []tc{
		// A TLSA for another key in the unsigned zone: it must be ignored, not used.
		{"mx-insecure", sceneConfig{Unsigned: true, Hosts: one(host{WrongTLSA: []string{"3 1 1"}})}, nil, opp},
		{"no-tlsa-nxdomain", sceneConfig{Hosts: one(host{})}, nil, opp},
		{"no-tlsa-nodata", sceneConfig{Hosts: one(host{}), Records: []string{tlsaName + ". TXT \"not a TLSA\""}}, nil, opp},
		{"no-tlsa-empty-non-terminal", sceneConfig{Hosts: one(host{}), Records: []string{"x." + tlsaName + ". TXT \"below\""}}, nil, opp},
		{"no-tlsa-no-starttls", sceneConfig{Hosts: one(host{Pers: receiver.NoSTARTTLS})}, nil,
			func(t *testing.T, s *scene, o queue.Outcome) { s.wantOpportunistic(o, "mx1", false) }},
		{"no-tlsa-missing-proof", sceneConfig{Hosts: one(host{})}, tlsaFault(fault.NoDenial), dnssecInvalid},
		{"tlsa-servfail", sceneConfig{Hosts: dane311}, tlsaFault(fault.ServFail), dnssecInvalid},
		{"tlsa-refused", sceneConfig{Hosts: dane311}, tlsaFault(fault.Refused), dnssecInvalid},
		{"tlsa-notimp", sceneConfig{Hosts: dane311}, tlsaFault(fault.NotImp), dnssecInvalid},
		{"tlsa-timeout", sceneConfig{Hosts: dane311}, tlsaFault(fault.Drop), dnssecInvalid},
		{"tlsa-bogus-sig", sceneConfig{Hosts: dane311}, tlsaFault(fault.BadSig), dnssecInvalid},
		{"tlsa-sig-expired", sceneConfig{Hosts: dane311}, tlsaFault(fault.ExpiredSig), dnssecInvalid},
		{"tlsa-sig-not-yet-valid", sceneConfig{Hosts: dane311}, tlsaFault(fault.FutureSig), dnssecInvalid},
		{"tlsa-no-sig", sceneConfig{Hosts: dane311}, tlsaFault(fault.NoSig), dnssecInvalid},
		{"tlsa-truncated-tcp", sceneConfig{Hosts: dane311}, tlsaFault(fault.Truncate), dane},
		{"tlsa-truncated-no-tcp", sceneConfig{Hosts: dane311}, tlsaFault(fault.TruncateNoTCP), dnssecInvalid},
		{"tlsa-mismatch-fault", sceneConfig{Hosts: dane311}, tlsaFault(fault.TLSAMismatch), deferred(queue.ResultTLSAInvalid, "4.7.323")},
		{"tlsa-unusable-fault", sceneConfig{Hosts: dane311}, tlsaFault(fault.TLSAUnusable),
			func(t *testing.T, s *scene, o queue.Outcome) {
				if !o.Delivered || o.TLS != queue.TLSEncrypt {
					t.Fatalf("want delivered at level encrypt, got delivered=%v tls=%q result=%q", o.Delivered, o.TLS, o.Result)
				}
				if ds := s.deliveries("mx1"); len(ds) != 1 || !ds[0].TLS {
					t.Fatalf("deliveries %+v, want one over TLS", ds)
				}
			}},
		{"tlsa-absent-fault", sceneConfig{Hosts: dane311}, tlsaFault(fault.TLSAAbsent), opp},
		{"mx-sig-expired", sceneConfig{Hosts: dane311}, []fault.Spec{{Mode: fault.ExpiredSig, Name: "example.test", Type: "MX"}}, dnsFailure},
		{"zone-sig-expired", sceneConfig{Hosts: dane311}, []fault.Spec{{Mode: fault.ExpiredSig, Name: "*example.test"}}, dnsFailure},
		{"ds-mismatch", sceneConfig{Hosts: dane311}, []fault.Spec{{Mode: fault.DSMismatch, Name: "example.test"}}, dnsFailure},
		{"mx-servfail", sceneConfig{Hosts: dane311}, []fault.Spec{{Mode: fault.ServFail, Name: "example.test", Type: "MX"}}, dnsFailure},
		{"mx-host-a-bogus", sceneConfig{Hosts: dane311}, []fault.Spec{{Mode: fault.BadSig, Name: "mx1.example.test", Type: "A"}}, dnsFailure},
		{"null-mx", sceneConfig{NoMX: true, Records: []string{"@ MX 0 ."}}, nil, func(t *testing.T, s *scene, o queue.Outcome) {
			if o.Delivered || !o.Permanent || o.Result != queue.ResultNullMX {
				t.Fatalf("want permanent null-mx, got delivered=%v permanent=%v result=%q", o.Delivered, o.Permanent, o.Result)
			}
			if c := exchange(o); c != "5.1.10" {
				t.Errorf("exchange status %s, want 5.1.10", c)
			}
		}},
		// No MX: the domain itself is the host (RFC 5321 §5.1); its TLSA at _25._tcp.<domain>.
		{"implicit-mx", sceneConfig{NoMX: true, Hosts: []host{{Label: "@", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}}}}, nil,
			func(t *testing.T, s *scene, o queue.Outcome) { s.wantDANE(o, "@", "example.test") }},
		// The MX host's address is in an unsigned zone: no TLSA lookup at all (RFC 7672 §2.2.2),
		// so the mismatching TLSA published there is never seen.
		{"mx-host-a-insecure", sceneConfig{Hosts: []host{{Label: "mx1", Domain: "plain.test", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}}},
			Extra: []lab.Domain{{Name: "plain.test", Unsigned: true}}}, nil,
			func(t *testing.T, s *scene, o queue.Outcome) {
				s.wantOpportunistic(o, "mx1", true)
				if h := s.history("_25._tcp.mx1.plain.test", ""); len(h) != 0 {
					t.Errorf("TLSA asked for a host with an insecure address: %+v", h)
				}
			}},
		// _25._tcp.mx1 is a secure CNAME to a shared TLSA RRset; the base domain stays mx1.
		{"tlsa-cname", sceneConfig{Hosts: one(host{TLSA: []string{"3 1 1"}, TLSAOwnerAt: "shared-tlsa"}),
			Records: []string{tlsaName + ". CNAME shared-tlsa"}}, nil, dane},
		{"tlsa-wildcard", sceneConfig{Hosts: one(host{TLSA: []string{"3 1 1"}, TLSAOwnerAt: "*._tcp.mx1"})}, nil, dane},
		// The MX target is a CNAME: TLSA at the expanded name is used (RFC 7672 §2.2.3), SNI is
		// the expanded name; the mismatching TLSA at the original name must not be used.
		{"mx-cname-host", sceneConfig{MX: []string{"10 mail"}, Hosts: one(host{TLSA: []string{"3 1 1"}}),
			Records: []string{"mail CNAME mx1", "_25._tcp.mail TLSA 3 1 1 " + hex32(42)}}, nil, dane},
		// Expanded name without TLSA (secure denial): the original name's TLSA applies, SNI the original name.
		{"mx-cname-host-tlsa-at-original", sceneConfig{MX: []string{"10 mail"}, Hosts: one(host{TLSA: []string{"3 1 1"}, TLSAOwnerAt: "_25._tcp.mail"}),
			Records: []string{"mail CNAME mx1"}}, nil,
			func(t *testing.T, s *scene, o queue.Outcome) { s.wantDANE(o, "mx1", "mail.example.test") }},
		// The TLSA RRset delegated to an unsigned zone: insecure, ignored.
		{"tlsa-insecure", sceneConfig{Hosts: one(host{}), Extra: []lab.Domain{{Name: "_tcp.mx1.example.test", Unsigned: true,
			Records: []string{"_25 TLSA 3 1 1 " + hex32(11)}}}}, nil, opp},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newScene(t, c.cfg)
			for _, f := range c.faults {
				s.fault(f)
			}
			c.check(t, s, s.attempt())
		})
	}
}

// TestMXFallback: a per-host failure moves on to the next MX (RFC 7672 §2.2); the failing host
// gets nothing in plaintext.
func TestMXFallback(t *testing.T) {
	t.Parallel()
	t.Run("mx-mixed-fallback", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, sceneConfig{Hosts: []host{
			{Label: "mx1", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}},
			{Label: "mx2", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
		}})
		o := s.attempt()
		s.wantDANE(o, "mx2", "mx2.example.test")
		if o.Host != "mx2.example.test." {
			t.Errorf("host %q", o.Host)
		}
		if ds := s.deliveries("mx1"); len(ds) != 0 {
			t.Errorf("mx1 got %d deliveries", len(ds))
		}
		if len(o.Sessions) != 2 || o.Sessions[0].Result != queue.ResultTLSAInvalid {
			t.Errorf("sessions %+v, want the failed mx1 session then mx2", o.Sessions)
		}
	})
	t.Run("mx-mixed-notlsa", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, sceneConfig{Hosts: []host{
			{Label: "mx1", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}},
			{Label: "mx2", Pers: receiver.SelfSigned},
		}})
		o := s.attempt()
		s.wantOpportunistic(o, "mx2", true)
		if ds := s.deliveries("mx1"); len(ds) != 0 {
			t.Errorf("mx1 got %d deliveries", len(ds))
		}
	})
	t.Run("mx-unreachable", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, sceneConfig{Hosts: []host{
			{Label: "mx1", NoReceiver: true, TLSA: nil, ExtraTLSA: []string{"3 1 1 " + hex32(1)}},
			{Label: "mx2", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
		}})
		s.wantDANE(s.attempt(), "mx2", "mx2.example.test")
	})
	t.Run("all-fail-deferred", func(t *testing.T) {
		t.Parallel()
		s := newScene(t, sceneConfig{Hosts: []host{
			{Label: "mx1", Pers: receiver.NoSTARTTLS, TLSA: []string{"3 1 1"}},
			{Label: "mx2", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}},
		}})
		o := s.attempt()
		if o.Delivered || o.Permanent {
			t.Fatalf("delivered=%v permanent=%v", o.Delivered, o.Permanent)
		}
		if !hasPrefix(exchange(o), "4.7.32") {
			t.Errorf("exchange status %s, want a 4.7.32x DANE code", exchange(o))
		}
		if ds := s.allDeliveries(); len(ds) != 0 {
			t.Errorf("%d deliveries", len(ds))
		}
	})
}

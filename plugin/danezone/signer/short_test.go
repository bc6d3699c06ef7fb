package signer

import (
	"crypto"
	"testing"

	"github.com/miekg/dns"
)

// TestShortPath checks the short path against miekg/dns: with deterministic signing both
// must produce the same signature bytes for every algorithm, and the signature verifies.
func TestShortPath(t *testing.T) {
	algs := []struct {
		alg  uint8
		bits int
	}{
		{dns.ECDSAP256SHA256, 256}, {dns.ECDSAP384SHA384, 384}, {dns.ED25519, 256},
		{dns.RSASHA256, 2048}, {dns.RSASHA512, 2048}, {dns.RSASHA1, 2048},
	}
	records := []string{
		"Nx.Example.TEST. 300 IN NSEC \\000.nx.example.test. RRSIG NSEC NXNAME",
		"*.example.test. 300 IN NSEC mail.example.test. A RRSIG NSEC",
		"EXAMPLE.test. 300 IN NSEC a.example.test. SOA NS RRSIG NSEC DNSKEY NSEC3PARAM",
		"2VPTU5TIMAMQTTGL4LUU9KG21E0AOR3S.example.test. 3600 IN NSEC3 1 1 0 - 2VPTU5TIMAMQTTGL4LUU9KG21E0AOR3T A RRSIG",
		"b4um86eghhds6nea196smvmlo4ors995.example.test. 3600 IN NSEC3 1 0 0 AABBCCDD b4um86eghhds6nea196smvmlo4ors996",
	}
	for _, a := range algs {
		key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
			Flags: 257, Protocol: 3, Algorithm: a.alg}
		priv, err := key.Generate(a.bits)
		if err != nil {
			t.Fatal(err)
		}
		k := priv.(crypto.Signer)
		for _, text := range records {
			rr, err := dns.NewRR(text)
			if err != nil {
				t.Fatal(err)
			}
			mk := func() *dns.RRSIG {
				return &dns.RRSIG{Hdr: dns.RR_Header{Name: rr.Header().Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
					Algorithm: a.alg, OrigTtl: rr.Header().Ttl, KeyTag: key.KeyTag(), SignerName: "Example.Test.",
					Inception: 1764547200, Expiration: 1767225600}
			}
			short, long := mk(), mk()
			if !shortPath([]dns.RR{rr}) {
				t.Fatalf("%s: not on the short path", text)
			}
			if err := signShort(short, k, rr); err != nil {
				t.Fatalf("alg %d %s: %v", a.alg, text, err)
			}
			if err := long.Sign(deterministic(k), []dns.RR{rr}); err != nil {
				t.Fatal(err)
			}
			if short.Labels != long.Labels || short.TypeCovered != long.TypeCovered {
				t.Errorf("alg %d %s: labels/type %d/%d, miekg %d/%d", a.alg, text, short.Labels, short.TypeCovered, long.Labels, long.TypeCovered)
			}
			if short.Signature != long.Signature {
				t.Errorf("alg %d %s: signature differs from miekg/dns's over the same data", a.alg, text)
			}
			if err := short.Verify(key, []dns.RR{rr}); err != nil {
				t.Errorf("alg %d %s: does not verify: %v", a.alg, text, err)
			}
		}
	}
	a, _ := dns.NewRR("a.example.test. 300 IN A 192.0.2.1")
	n, _ := dns.NewRR("a.example.test. 300 IN NSEC b.example.test. A")
	if shortPath([]dns.RR{a}) || shortPath([]dns.RR{n, n}) {
		t.Error("the short path takes a set it does not canonicalise")
	}
}

// TestRawECDSA rejects DER that is not two integers of the curve's size.
func TestRawECDSA(t *testing.T) {
	for _, der := range [][]byte{nil, {0x30, 0x00}, {0x30, 0x03, 0x02, 0x01, 0x01}, {0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}} {
		if _, err := rawECDSA(der, 32); err == nil {
			t.Errorf("%x: accepted", der)
		}
	}
	// Leading zero octets are stripped and short integers padded.
	got, err := rawECDSA([]byte{0x30, 0x07, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x05}, 4)
	if err != nil || string(got) != "\x00\x00\x00\x80\x00\x00\x00\x05" {
		t.Errorf("got %x, %v", got, err)
	}
	// An integer longer than the curve's size.
	if _, err := rawECDSA([]byte{0x30, 0x08, 0x02, 0x03, 0x01, 0x02, 0x03, 0x02, 0x01, 0x05}, 2); err == nil {
		t.Error("an oversized integer accepted")
	}
}

// TestShortPathLeavesRecord: the record signed is the zone's, packed into responses at the
// same time; signing must not write to it (go test -race finds it if it does).
func TestShortPathLeavesRecord(t *testing.T) {
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ED25519}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := dns.NewRR("a.example.test. 300 IN NSEC b.example.test. A RRSIG NSEC")
	before := *rr.(*dns.NSEC)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m := new(dns.Msg)
		m.SetQuestion("a.example.test.", dns.TypeA)
		m.Ns = []dns.RR{rr}
		for range 50 {
			if _, err := m.Pack(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: "a.example.test.", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
			Algorithm: dns.ED25519, OrigTtl: 300, KeyTag: key.KeyTag(), SignerName: "example.test.", Inception: 1, Expiration: 2}
		if err := signShort(sig, priv.(crypto.Signer), rr); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if after := *rr.(*dns.NSEC); after.Hdr != before.Hdr {
		t.Errorf("signing changed the record's header: %+v, was %+v", after.Hdr, before.Hdr)
	}
}

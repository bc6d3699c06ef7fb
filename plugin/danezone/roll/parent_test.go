package roll

import (
	"context"
	"crypto"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// parentServer is a parent zone test. served over TCP with answers made by the test: its
// DNSKEY RRset, signed, and for the DS question of example.test. whatever answer sets.
type parentServer struct {
	key    *dns.DNSKEY
	priv   crypto.Signer
	answer func(m *dns.Msg) // fills the reply to the DS question
}

func newParentServer(t *testing.T) (*parentServer, string) {
	t.Helper()
	p := &parentServer{key: &dns.DNSKEY{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 60},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}}
	priv, err := p.key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	p.priv = priv.(crypto.Signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		switch r.Question[0].Qtype {
		case dns.TypeDNSKEY:
			m.Answer = []dns.RR{p.key, p.sign(t, p.key)}
		case dns.TypeDS:
			p.answer(m)
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return p, ln.Addr().String()
}

// sign is an RRSIG over rr by the parent's key.
func (p *parentServer) sign(t *testing.T, rrs ...dns.RR) *dns.RRSIG {
	t.Helper()
	h := rrs[0].Header()
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		TypeCovered: h.Rrtype, Algorithm: p.key.Algorithm, Labels: uint8(dns.CountLabel(h.Name)), OrigTtl: h.Ttl,
		Expiration: uint32(time.Now().Add(time.Hour).Unix()), Inception: uint32(time.Now().Add(-time.Hour).Unix()),
		KeyTag: p.key.KeyTag(), SignerName: "test."}
	if err := sig.Sign(p.priv, rrs); err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestParentNoDS: a parent's "no DS" is believed only with a signed proof (a zone goes
// insecure on it): an NSEC at the name without DS, or an NSEC3 matching its hash.
func TestParentNoDS(t *testing.T) {
	p, addr := newParentServer(t)
	nsec := func(types ...uint16) *dns.NSEC {
		return &dns.NSEC{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 60},
			NextDomain: "z.test.", TypeBitMap: types}
	}
	nsec3 := func(name string, optOut bool) *dns.NSEC3 {
		n := &dns.NSEC3{Hdr: dns.RR_Header{Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 60},
			Hash: dns.SHA1, Iterations: 0, SaltLength: 0, HashLength: 20, TypeBitMap: []uint16{dns.TypeNS}}
		if optOut {
			n.Flags = 1
		}
		h := strings.ToLower(dns.HashName(name, dns.SHA1, 0, ""))
		n.Hdr.Name = h + ".test."
		// The next hashed owner: one more than this one, so that only name's hash matches.
		b := []byte(strings.ToUpper(h))
		b[len(b)-1]++
		n.NextDomain = string(b)
		return n
	}
	other := nsec3("other.test.", true)
	other.Hdr.Name = "00000000000000000000000000000000.test."
	other.NextDomain = "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV"
	wrongSig := func(rr dns.RR) *dns.RRSIG {
		s := p.sign(t, rr)
		s.Signature = s.Signature[:len(s.Signature)-4] + "AAA="
		return s
	}
	for _, c := range []struct {
		name    string
		auth    func() []dns.RR
		wantErr string
	}{
		{"signed NSEC without DS", func() []dns.RR { n := nsec(dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC); return []dns.RR{n, p.sign(t, n)} }, ""},
		{"signed NSEC3 matching", func() []dns.RR { n := nsec3("example.test.", false); return []dns.RR{n, p.sign(t, n)} }, ""},
		{"signed opt-out NSEC3 covering", func() []dns.RR { return []dns.RR{other, p.sign(t, other)} }, ""},
		{"no proof", func() []dns.RR { return nil }, "no NSEC or NSEC3 proof"},
		{"NSEC without RRSIG", func() []dns.RR { return []dns.RR{nsec(dns.TypeNS)} }, "without RRSIG"},
		{"NSEC with a bad RRSIG", func() []dns.RR { n := nsec(dns.TypeNS); return []dns.RR{n, wrongSig(n)} }, "does not verify"},
		{"NSEC that lists DS", func() []dns.RR { n := nsec(dns.TypeNS, dns.TypeDS); return []dns.RR{n, p.sign(t, n)} }, "says it has a DS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.answer = func(m *dns.Msg) { m.Ns = c.auth() }
			dss, _, err := Checker{Agents: []string{addr}}.ParentDS(context.Background(), "example.test.")
			switch {
			case c.wantErr == "" && (err != nil || len(dss) != 0):
				t.Fatalf("want no DS, got %v, %v", dss, err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("want an error with %q, got %v", c.wantErr, err)
			}
		})
	}
}

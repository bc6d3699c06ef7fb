package signer

import (
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

func testKeys(t *testing.T) *keys.Set {
	t.Helper()
	ks, _, err := keys.LoadOrGenerate(t.TempDir(), "example.test.", dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func aSet() *zone.RRset {
	rr, _ := dns.NewRR("www.example.test. 600 IN A 127.0.0.1")
	return zone.NewRRset([]dns.RR{rr})
}

func TestPolicy(t *testing.T) {
	ks := testKeys(t)
	p := DefaultPolicy()
	s := New("example.test.", ks, p)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	set := aSet()
	sigs, made, err := s.Sign(set)
	if err != nil || made != 1 || len(sigs) != 1 {
		t.Fatalf("sign: %v made=%d", err, made)
	}
	sig := sigs[0].(*dns.RRSIG)
	inc := time.Unix(int64(sig.Inception), 0)
	exp := time.Unix(int64(sig.Expiration), 0)
	if !inc.Equal(now.Add(-time.Hour)) {
		t.Errorf("inception %s, want 1h before %s", inc, now)
	}
	if exp.Before(now.Add(p.Validity)) || exp.After(now.Add(p.Validity+p.Jitter)) {
		t.Errorf("expiration %s outside [now+validity, now+validity+jitter]", exp)
	}
	if sig.OrigTtl != 600 || sig.Hdr.Ttl != 600 || sig.SignerName != "example.test." || sig.Labels != 3 {
		t.Errorf("RRSIG fields: %s", sig)
	}
	if err := sig.Verify(ks.Keys[0].DNSKEY, set.RRs); err != nil {
		t.Errorf("does not verify: %v", err)
	}
	// Cached: no new signature for the same RRset version.
	if again, made, _ := s.Sign(set); made != 0 || again[0] != sigs[0] {
		t.Error("second Sign made a new signature")
	}
	// Just before the refresh point: still cached; at it: re-signed.
	s.Now = func() time.Time { return exp.Add(-p.Refresh).Add(-time.Second) }
	if _, made, _ := s.Sign(set); made != 0 {
		t.Error("re-signed before the refresh point")
	}
	s.Now = func() time.Time { return exp.Add(-p.Refresh) }
	if _, made, _ := s.Sign(set); made != 1 {
		t.Error("not re-signed at the refresh point")
	}
	// A clock set back before the inception: the cached signature is not yet valid, re-sign.
	s.Now = func() time.Time { return now.Add(-48 * time.Hour) }
	if fresh, made, _ := s.Sign(set); made != 1 || !fresh[0].(*dns.RRSIG).ValidityPeriod(now.Add(-48*time.Hour)) {
		t.Error("served a signature that is not yet valid")
	}
	// New keys make every cached signature stale.
	s.Now = func() time.Time { return now }
	s.SetKeys(testKeys(t))
	if _, made, _ := s.Sign(set); made != 1 {
		t.Error("key change did not re-sign")
	}
}

func TestKSKSignsKeySets(t *testing.T) {
	ksk, err := keys.Generate(t.TempDir(), "example.test.", dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	dk := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: dns.ZONE, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := dk.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	zsk := &keys.Key{DNSKEY: dk, Signer: priv.(crypto.Signer), Tag: dk.KeyTag()}
	ks := &keys.Set{Zone: "example.test.", Keys: []*keys.Key{ksk, zsk}}
	s := New("example.test.", ks, DefaultPolicy())
	keySet := zone.NewRRset(ks.DNSKEYs())
	sigs, _, err := s.Sign(keySet)
	if err != nil || len(sigs) != 1 || sigs[0].(*dns.RRSIG).KeyTag != ksk.Tag {
		t.Fatalf("DNSKEY RRset must be signed by the KSK %d only: %v %v", ksk.Tag, sigs, err)
	}
	sigs, _, err = s.Sign(aSet())
	if err != nil || len(sigs) != 1 || sigs[0].(*dns.RRSIG).KeyTag != zsk.Tag {
		t.Fatalf("data must be signed by the ZSK %d only: %v %v", zsk.Tag, sigs, err)
	}
}

func TestPolicyCheck(t *testing.T) {
	day := 24 * time.Hour
	ok := DefaultPolicy()
	tests := []struct {
		change func(*Policy)
		err    string
	}{
		{func(p *Policy) {}, ""},
		{func(p *Policy) { p.Validity, p.Refresh = MaxValidity, MaxValidity/2 }, ""},
		{func(p *Policy) { p.Validity = 30 * time.Minute; p.Refresh = 10 * time.Minute }, "validity 30m is too short (at least 1h)"},
		{func(p *Policy) { p.Validity = 30000 * day }, "validity 30000d is too long (at most 730d)"},
		{func(p *Policy) { p.Validity = -day }, "too short"},
		{func(p *Policy) { p.Refresh = p.Validity }, "refresh 14d must be positive and shorter than validity 14d"},
		{func(p *Policy) { p.Refresh = 0 }, "must be positive"},
		{func(p *Policy) { p.Jitter = -time.Hour }, "must not be negative"},
		{func(p *Policy) { p.Jitter = 15 * day }, "jitter 15d must not be longer than validity 14d"},
		{func(p *Policy) { p.Inception = MaxInception }, ""},
		{func(p *Policy) { p.Inception = 8 * day }, "inception 8d is too long (at most 7d)"},
	}
	for i, tc := range tests {
		p := ok
		tc.change(&p)
		err := p.Check()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%d: %+v: want %q, got %v", i, p, tc.err, err)
		}
	}
}

// TestRefreshNotWholeSeconds: a refresh that is not a whole number of seconds (the default is
// half the validity: 1800.5 s of `validity 3601s`) is kept to the nanosecond: signatures are
// fresh until exactly expiration − refresh, and SignUntil says so.
func TestRefreshNotWholeSeconds(t *testing.T) {
	p := DefaultPolicy()
	p.Validity, p.Refresh, p.Jitter = 3601*time.Second, 1800500*time.Millisecond, 0
	s := New("example.test.", testKeys(t), p)
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	set := aSet()
	sigs, _, until, err := s.SignUntil(set, s.Keys())
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(int64(sigs[0].(*dns.RRSIG).Expiration), 0)
	if want := exp.Add(-p.Refresh); !until.Equal(want) {
		t.Fatalf("refresh at %v, want %v", until, want)
	}
	s.Now = func() time.Time { return until.Add(-200 * time.Millisecond) }
	if _, made, _ := s.Sign(set); made != 0 {
		t.Error("re-signed 0.2 s before the refresh point")
	}
	s.Now = func() time.Time { return until }
	if _, made, _ := s.Sign(set); made != 1 {
		t.Error("not re-signed at the refresh point")
	}
}

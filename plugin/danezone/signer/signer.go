// Package signer owns online signing: the validity policy in one place, and a signature cache
// kept in each RRset's slot, so the cost of a signature is paid once per RRset version and
// validity period rather than per query.
package signer

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// Policy sets the timing of signatures.
type Policy struct {
	Validity  time.Duration // expiration - now, before jitter
	Refresh   time.Duration // re-sign when less than this remains before expiration
	Jitter    time.Duration // random extra validity, so signatures do not all expire at once
	Inception time.Duration // inception backdated by this much, for clock skew
}

// DefaultPolicy is 14 days of validity, refreshed with 7 days left, up to 1 day of jitter,
// inception 1 hour in the past.
func DefaultPolicy() Policy {
	return Policy{Validity: 14 * 24 * time.Hour, Refresh: 7 * 24 * time.Hour, Jitter: 24 * time.Hour, Inception: time.Hour}
}

// Ahead is how far ahead of need the background re-signing of a zone for its secondaries
// works: it starts when a signature is due within Ahead, and then renews every signature due
// within 2×Ahead. Ahead is at least the jitter, so that the signatures made together (whose
// refresh times the jitter spreads) are renewed together: one new serial, one transfer, not a
// trickle of them. 2×Ahead stays below validity - refresh, so that a signature just made is
// never due already.
func (p Policy) Ahead() time.Duration {
	return min(max(p.Jitter, p.Refresh/10), (p.Validity-p.Refresh)/3)
}

// The bounds of a policy.
const (
	// MinValidity leaves room for the refresh margin and the poll that renews signatures.
	MinValidity = time.Hour
	// MaxValidity: RRSIG inception and expiration are 32-bit serial times (RFC 4034 §3.1.5,
	// RFC 1982 arithmetic), so nothing 2^31 s (68 years) or more from now can be expressed.
	// Far below that, a signature is a statement anyone can replay until it expires: two
	// years is more than any signing policy needs. Jitter is at most the validity, so an
	// expiration is never more than 2×MaxValidity away.
	MaxValidity = 730 * 24 * time.Hour
	// MaxInception bounds the backdating for validators with slow clocks: a clock a week
	// wrong is broken, not skewed.
	MaxInception = 7 * 24 * time.Hour
)

// Check reports a policy that cannot work, or that goes beyond the bounds above.
func (p Policy) Check() error {
	switch {
	case p.Validity < MinValidity:
		return fmt.Errorf("validity %s is too short (at least %s)", duration.Format(p.Validity), duration.Format(MinValidity))
	case p.Validity > MaxValidity: // RFC 4034 §3.1.5: see MaxValidity
		return fmt.Errorf("validity %s is too long (at most %s)", duration.Format(p.Validity), duration.Format(MaxValidity))
	case p.Refresh <= 0 || p.Refresh >= p.Validity:
		return fmt.Errorf("refresh %s must be positive and shorter than validity %s", duration.Format(p.Refresh), duration.Format(p.Validity))
	case p.Jitter < 0 || p.Inception < 0:
		return fmt.Errorf("jitter and inception must not be negative")
	case p.Jitter > p.Validity:
		return fmt.Errorf("jitter %s must not be longer than validity %s", duration.Format(p.Jitter), duration.Format(p.Validity))
	case p.Inception > MaxInception:
		return fmt.Errorf("inception %s is too long (at most %s)", duration.Format(p.Inception), duration.Format(MaxInception))
	}
	return nil
}

// Signer signs the RRsets of one zone.
type Signer struct {
	zone   string
	policy Policy
	keys   atomic.Pointer[keys.Set]
	// Now is the clock; tests move it.
	Now func() time.Time
}

// New returns a signer for zone with the given keys.
func New(zoneName string, ks *keys.Set, p Policy) *Signer {
	s := &Signer{zone: zone.Canonical(zoneName), policy: p, Now: time.Now}
	s.keys.Store(ks)
	return s
}

// Keys returns the current key set.
func (s *Signer) Keys() *keys.Set { return s.keys.Load() }

// SetKeys replaces the keys; every cached signature becomes stale.
func (s *Signer) SetKeys(ks *keys.Set) { s.keys.Store(ks) }

// Policy returns the signing policy.
func (s *Signer) Policy() Policy { return s.policy }

// entry is what a signer keeps in an RRset's slot. Its times are integers (a zone signed for
// transfer holds one entry per RRset: 64 octets each this way, 112 with time.Time): the
// RRSIG's inception and expiration in Unix seconds, as the RRSIG has them; refreshAt in Unix
// nanoseconds, as refresh need not be whole seconds.
type entry struct {
	keys                             *keys.Set
	sigs                             []dns.RR
	inception, expiration, refreshAt int64
}

// Sign returns RRSIGs over set that are valid now, and how many signatures it had to make
// (0 on a cache hit). The returned records are shared: copy before changing them.
func (s *Signer) Sign(set *zone.RRset) ([]dns.RR, int, error) {
	return s.SignWith(set, s.keys.Load())
}

// SignWith is Sign with the key set ks: the one of the snapshot being answered from, whose
// DNSKEY set goes with it (the signer's may already be the next one).
func (s *Signer) SignWith(set *zone.RRset, ks *keys.Set) ([]dns.RR, int, error) {
	sigs, made, _, err := s.SignUntil(set, ks)
	return sigs, made, err
}

// SignUntil is SignWith that also returns when the signatures are due for refresh: from then
// on an answer holding them must not be served again (the answer cache keeps that time).
func (s *Signer) SignUntil(set *zone.RRset, ks *keys.Set) ([]dns.RR, int, time.Time, error) {
	now := s.Now()
	e, made, err := s.signBy(set, ks, now, now)
	if err != nil {
		return nil, 0, time.Time{}, err
	}
	return e.sigs, made, time.Unix(0, e.refreshAt), nil
}

// Ahead returns RRSIGs over set by ks that need no refresh before horizon (signing them anew
// if the cached ones would), and when they will need it. The transfer of a zone signs ahead:
// a secondary serves the signatures it received until the next transfer.
func (s *Signer) Ahead(set *zone.RRset, ks *keys.Set, horizon time.Time) ([]dns.RR, time.Time, error) {
	e, _, err := s.signBy(set, ks, s.Now(), horizon)
	if err != nil {
		return nil, time.Time{}, err
	}
	return e.sigs, time.Unix(0, e.refreshAt), nil
}

// signBy returns the cached signatures of set if they are by ks, valid now and fresh until
// horizon; otherwise it signs and caches anew. It also returns how many signatures it made.
func (s *Signer) signBy(set *zone.RRset, ks *keys.Set, now, horizon time.Time) (*entry, int, error) {
	if e := s.fresh(set, ks, now, horizon); e != nil {
		return e, 0, nil
	}
	set.Sigs.Mu.Lock()
	defer set.Sigs.Mu.Unlock()
	if e := s.fresh(set, ks, now, horizon); e != nil { // signed while we waited
		return e, 0, nil
	}
	e, err := s.sign(set, ks, now)
	if err != nil {
		return nil, 0, err
	}
	set.Sigs.Store(e)
	return e, len(e.sigs), nil
}

// SignOnce signs set without caching: for records made per answer (minimal denial).
func (s *Signer) SignOnce(set *zone.RRset) ([]dns.RR, error) {
	return s.SignOnceWith(set, s.keys.Load())
}

// SignOnceWith is SignOnce with the key set ks.
func (s *Signer) SignOnceWith(set *zone.RRset, ks *keys.Set) ([]dns.RR, error) {
	sigs, _, err := s.SignOnceUntil(set, ks)
	return sigs, err
}

// SignOnceUntil is SignOnceWith that also returns when the signatures are due for refresh, as
// SignUntil does.
func (s *Signer) SignOnceUntil(set *zone.RRset, ks *keys.Set) ([]dns.RR, time.Time, error) {
	e, err := s.sign(set, ks, s.Now())
	if err != nil {
		return nil, time.Time{}, err
	}
	return e.sigs, time.Unix(0, e.refreshAt), nil
}

func (s *Signer) fresh(set *zone.RRset, ks *keys.Set, now, horizon time.Time) *entry {
	e, ok := set.Sigs.Load().(*entry)
	if !ok || e.keys != ks || now.Unix() < e.inception || horizon.UnixNano() >= e.refreshAt {
		return nil
	}
	return e
}

func (s *Signer) sign(set *zone.RRset, ks *keys.Set, now time.Time) (*entry, error) {
	inception := now.Add(-s.policy.Inception).Truncate(time.Second)
	validity := s.policy.Validity
	if s.policy.Jitter > 0 {
		validity += rand.N(s.policy.Jitter)
	}
	expiration := now.Add(validity).Truncate(time.Second) // what the RRSIG can say
	sigs, err := s.SignAt(set, inception, expiration, s.signers(set, ks))
	if err != nil {
		return nil, err
	}
	return &entry{keys: ks, sigs: sigs, inception: inception.Unix(), expiration: expiration.Unix(),
		refreshAt: expiration.Add(-s.policy.Refresh).UnixNano()}, nil
}

// signers returns the keys that sign set: the KSKs for the apex key sets, the ZSKs otherwise.
func (s *Signer) signers(set *zone.RRset, ks *keys.Set) []*keys.Key {
	if set.Name == s.zone && (set.Type == dns.TypeDNSKEY || set.Type == dns.TypeCDS || set.Type == dns.TypeCDNSKEY) {
		return ks.KSKs()
	}
	return ks.ZSKs()
}

// SignAt signs set with the given validity, by the given keys or, when with is nil, by the
// keys that normally sign it. Nothing is cached: fault injection uses it to make signatures
// that are wrong on purpose.
func (s *Signer) SignAt(set *zone.RRset, inception, expiration time.Time, with []*keys.Key) ([]dns.RR, error) {
	if with == nil {
		with = s.signers(set, s.keys.Load())
	}
	if len(with) == 0 {
		return nil, fmt.Errorf("no key to sign %s %s", set.Name, dns.TypeToString[set.Type])
	}
	var sigs []dns.RR
	for _, k := range with {
		sig := &dns.RRSIG{
			Hdr:        dns.RR_Header{Name: set.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: set.TTL},
			Algorithm:  k.DNSKEY.Algorithm,
			OrigTtl:    set.TTL,
			KeyTag:     k.Tag,
			SignerName: s.zone,
			Inception:  uint32(inception.Unix()),
			Expiration: uint32(expiration.Unix()),
		}
		var err error
		if shortPath(set.RRs) {
			err = signShort(sig, k.Signer, set.RRs[0])
		} else {
			err = sig.Sign(deterministic(k.Signer), set.RRs)
		}
		if err != nil {
			return nil, fmt.Errorf("signing %s %s with key %d: %w", set.Name, dns.TypeToString[set.Type], k.Tag, err)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// Serving returns the expiration of the signatures cached for set if they would be served now.
func (s *Signer) Serving(set *zone.RRset, now time.Time) (time.Time, bool) {
	e := s.fresh(set, s.keys.Load(), now, now)
	if e == nil {
		return time.Time{}, false
	}
	return time.Unix(e.expiration, 0), true
}

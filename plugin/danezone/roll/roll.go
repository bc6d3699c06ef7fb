// Package roll owns the life cycle of a zone's keys: the key policy (a CSK, or a KSK and a
// ZSK; their algorithm and lifetimes; the timing parameters of RFC 7583) and the rollovers that
// follow from it, as key timing metadata (keys.Timing) written into the key files, so that a
// restart resumes a roll where it stood.
//
//   - ZSK: pre-publication (RFC 7583 §3.2.1): the successor is published, signs once its
//     DNSKEY has reached every cache, and the predecessor's DNSKEY goes once the signatures it
//     made have expired from every cache.
//   - KSK and CSK: double-KSK with CDS/CDNSKEY (RFC 7583 §3.3.2, RFC 7344): the successor is
//     published and signs the DNSKEY RRset; once its DNSKEY has reached every cache, CDS and
//     CDNSKEY name it instead of the predecessor; the predecessor stays until the parent serves
//     the successor's DS (asked of the parent's servers, Checker) and the old DS has expired
//     from every cache.
//
// Plan is pure: the keys, the policy, the time and what the parent serves in, the actions out.
package roll

import (
	"errors"
	"fmt"
	"time"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// Policy is a zone's key policy. Durations follow RFC 7583 §2's names in brackets.
type Policy struct {
	Split     bool  // a KSK and a ZSK; false: one CSK that does both
	Algorithm uint8 // of new keys
	// Lifetimes: how long a key signs before its successor takes over; 0 is never.
	ZSKLifetime time.Duration // Split only
	KSKLifetime time.Duration // the KSK's, or the CSK's
	DNSKEYTTL   time.Duration // the TTL of new DNSKEY records [TTLkey]
	// MaxTTL is the largest TTL of the zone's signed records, the negative TTL included
	// [TTLsig]; Plan takes the larger of this and what the caller measured.
	MaxTTL      time.Duration
	Propagation time.Duration // from the primary to every secondary and cache [Dprp]
	Safety      time.Duration // added to each wait [Ipubsafety, Iretsafety]
	ParentDSTTL time.Duration // the TTL of the DS at the parent [TTLds]
	// ParentPropagation is how long the parent takes from serving a DS on one server to all
	// of them, after the check saw it on every parental agent [Dprp(parent)].
	ParentPropagation time.Duration
	// ParentWarn: a KSK roll that has waited this long for the parent's DS is logged loudly.
	ParentWarn time.Duration
}

// DefaultPolicy is a CSK of ECDSAP256SHA256 (13) that is never rolled by time, with timings
// for a zone served with TTLs up to a day.
func DefaultPolicy() Policy {
	return Policy{Algorithm: 13, DNSKEYTTL: time.Hour, MaxTTL: 24 * time.Hour, Propagation: time.Hour,
		Safety: time.Hour, ParentDSTTL: 24 * time.Hour, ParentPropagation: time.Hour, ParentWarn: 7 * 24 * time.Hour}
}

// PublishWait is how long a new DNSKEY is published before it may sign data or be named by
// CDS [Ipub = Dprp + TTLkey + safety].
func (p Policy) PublishWait() time.Duration { return p.Propagation + p.DNSKEYTTL + p.Safety }

// RetireWait is how long a ZSK's DNSKEY stays after it stops signing, until the signatures
// it made have expired from every cache [Iret = Dprp + TTLsig + safety; the signing delay is
// nil: danezone signs online].
func (p Policy) RetireWait(maxTTL time.Duration) time.Duration {
	return p.Propagation + max(maxTTL, p.MaxTTL) + p.Safety
}

// SecureAgainWait is how long a zone signed again after being insecure waits before CDS
// names its key (RFC 8078 §3): until the signed zone has reached every secondary and cache,
// where an answer saying the zone has no DNSKEY may live for the negative TTL (RFC 2308 §5),
// included in the zone's largest TTL (maxTTL, as measured; the policy's max-zone-ttl if larger).
func (p Policy) SecureAgainWait(maxTTL time.Duration) time.Duration {
	return p.Propagation + max(maxTTL, p.MaxTTL, p.DNSKEYTTL) + p.Safety
}

// DSWait is how long the old KSK stays after every parental agent serves the new DS, until
// the old DS has expired from every cache [Dprp(parent) + TTLds + safety].
func (p Policy) DSWait() time.Duration { return p.ParentPropagation + p.ParentDSTTL + p.Safety }

// Check rejects a policy whose rolls cannot complete within a key's lifetime: a key must
// live at least as long as a roll takes to replace it.
func (p Policy) Check() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dnskey-ttl", p.DNSKEYTTL}, {"propagation", p.Propagation}, {"safety", p.Safety},
		{"parent-ds-ttl", p.ParentDSTTL}, {"parent-propagation", p.ParentPropagation}, {"max-zone-ttl", p.MaxTTL}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if p.Split && p.ZSKLifetime > 0 {
		if need := p.PublishWait() + p.RetireWait(0); p.ZSKLifetime < need {
			errs = append(errs, fmt.Errorf("zsk lifetime %v is shorter than a ZSK roll takes (%v: publish %v, then retire %v)",
				p.ZSKLifetime, need, p.PublishWait(), p.RetireWait(0)))
		}
	}
	if p.KSKLifetime > 0 {
		if need := p.PublishWait() + p.DSWait(); p.KSKLifetime < need {
			role := "csk"
			if p.Split {
				role = "ksk"
			}
			errs = append(errs, fmt.Errorf("%s lifetime %v is shorter than a roll takes at the least (%v: publish %v, then the parent's DS %v, and however long the parent takes)",
				role, p.KSKLifetime, need, p.PublishWait(), p.DSWait()))
		}
	}
	return errors.Join(errs...)
}

// ZoneKeys is one zone's keys as danezone's control API reports them (GET /keys) and
// `danelab keys` prints them.
type ZoneKeys struct {
	Zone   string `json:"zone"`
	Policy string `json:"policy"` // "csk" or "split"
	// DNSSEC is where the zone stands: "signed"; "going insecure" (CDS DELETE, the keys
	// still signing); "insecure" (served unsigned); "going secure" (signed again, CDS DELETE
	// until CDS may name the new key).
	DNSSEC  string    `json:"dnssec"`
	Keys    []KeyInfo `json:"keys"`
	Next    time.Time `json:"next_event,omitzero"`
	Waiting string    `json:"waiting,omitempty"`
}

// KeyInfo is one key: its tag, role, algorithm, states now and schedule.
type KeyInfo struct {
	Tag       uint16      `json:"tag"`
	Role      string      `json:"role"` // "ksk" (SEP flag) or "zsk"
	Algorithm string      `json:"algorithm"`
	File      string      `json:"file"`
	Published bool        `json:"published"`
	Active    bool        `json:"active"`
	Synced    bool        `json:"synced"`
	Timing    keys.Timing `json:"timing"`
}

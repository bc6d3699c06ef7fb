package resolver

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// zoneKeys is what the chain of trust says about a zone: its validated DNSKEYs when it is
// secure, else why it is insecure, bogus or indeterminate.
type zoneKeys struct {
	name string
	st   status
	keys []*dns.DNSKEY
}

// walkStep is the chain of trust at one name on the way down from a trust anchor.
type walkStep struct {
	z  *zoneKeys // the zone holding the name: the name's own zone if it is a cut
	nx bool      // the name provably does not exist, so neither does anything below it
}

// algSupported reports whether signatures of algorithm alg can be verified.
func algSupported(alg uint8) bool {
	switch alg {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512,
		dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

func digestSupported(t uint8) bool {
	switch t {
	case dns.SHA1, dns.SHA256, dns.SHA384:
		return true
	}
	return false
}

// zoneFor walks the chain of trust from the closest trust anchor down to target, one label
// at a time (a DS question at each), and returns the state of the zone holding target.
func (q *query) zoneFor(target string) *zoneKeys {
	target = canonical(target)
	anchor := q.r.anchorFor(target)
	if anchor == "" {
		return &zoneKeys{name: target, st: indeterminate(dns.ExtendedErrorCodeDNSSECIndeterminate, "no trust anchor covers %s", target)}
	}
	z := q.anchorKeys(anchor)
	for n := dns.CountLabel(anchor) + 1; n <= dns.CountLabel(target); n++ {
		if z.st.v != Secure {
			return z
		}
		c := lastLabels(target, n)
		step, ok := q.walk[c]
		if !ok {
			step = q.dsStep(z, c)
			q.walk[c] = step
		}
		z = step.z
		if step.nx {
			break
		}
	}
	return z
}

// keysFor returns the state of the zone whose apex is signer.
func (q *query) keysFor(signer string) *zoneKeys {
	signer = canonical(signer)
	z := q.zoneFor(signer)
	if z.st.v == Secure && z.name != signer {
		return &zoneKeys{name: signer, st: bogus(dns.ExtendedErrorCodeDNSKEYMissing,
			"signer %s is not a zone apex (it lies in the zone %s)", signer, z.name)}
	}
	return z
}

// dsStep asks for the DS of c, a child of the secure zone z, and returns the zone holding c:
// c's own zone if c is a delegation (secure through a DS, or provably insecure), else z.
func (q *query) dsStep(z *zoneKeys, c string) *walkStep {
	resp, _, err := q.iterate(c, dns.TypeDS)
	if err != nil {
		return &walkStep{z: &zoneKeys{name: c, st: indeterminate(dns.ExtendedErrorCodeNoReachableAuthority, "DS %s: %v", c, err)}}
	}
	set := newSets(resp.Answer)
	ds, sigs := set.get(c, dns.TypeDS), set.sigs(c, dns.TypeDS)
	if len(ds) == 0 && resp.Rcode == dns.RcodeSuccess && len(resp.Answer) == 0 {
		ns := newSets(resp.Ns) // a referral with the DS in its authority section
		ds, sigs = ns.get(c, dns.TypeDS), ns.sigs(c, dns.TypeDS)
	}
	if len(ds) > 0 {
		if st, _ := q.checkWithZone(ds, sigs, z); st.v != Secure {
			st.reason = fmt.Sprintf("DS %s: %s", c, st.reason)
			return &walkStep{z: &zoneKeys{name: c, st: st}}
		}
		var list []*dns.DS
		for _, rr := range ds {
			list = append(list, rr.(*dns.DS))
		}
		return &walkStep{z: q.childKeys(c, list, nil)}
	}
	if len(set.get(c, dns.TypeCNAME)) > 0 {
		return &walkStep{z: z} // an alias is no zone cut
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return &walkStep{z: &zoneKeys{name: c, st: indeterminate(dns.ExtendedErrorCodeNoReachableAuthority, "DS %s: rcode %s", c, dns.RcodeToString[resp.Rcode])}}
	}
	kind, st := q.denial(resp, c, dns.TypeDS, z)
	switch {
	case st.v == Secure && kind == denyNXDOMAIN:
		return &walkStep{z: z, nx: true}
	case st.v == Secure && kind == denyDelegation:
		return &walkStep{z: &zoneKeys{name: c, st: insecure(0, "%s is an unsigned delegation: the signed denial from %s proves it has no DS", c, z.name)}}
	case st.v == Secure:
		return &walkStep{z: z} // no cut here
	case st.v == Insecure:
		return &walkStep{z: &zoneKeys{name: c, st: st}}
	}
	st.reason = fmt.Sprintf("no DS for %s: %s", c, st.reason)
	return &walkStep{z: &zoneKeys{name: c, st: st}}
}

// anchorKeys validates the DNSKEY RRset of a trust anchor zone.
func (q *query) anchorKeys(anchor string) *zoneKeys {
	if z, ok := q.anchorKS[anchor]; ok {
		return z
	}
	var ds []*dns.DS
	var keys []*dns.DNSKEY
	for _, rr := range q.r.anchors[anchor] {
		switch a := rr.(type) {
		case *dns.DS:
			ds = append(ds, a)
		case *dns.DNSKEY:
			keys = append(keys, a)
		}
	}
	z := q.childKeys(anchor, ds, keys)
	if z.st.v != Secure && z.st.v != Insecure {
		z.st.reason = fmt.Sprintf("trust anchor %s: %s", anchor, z.st.reason)
	}
	q.anchorKS[anchor] = z
	return z
}

// childKeys fetches the DNSKEY RRset of zone c and validates it with a key matching one of
// the (validated) DS records or one of the trusted keys.
func (q *query) childKeys(c string, ds []*dns.DS, trusted []*dns.DNSKEY) *zoneKeys {
	var usable []*dns.DS
	unsupAlg, unsupDigest := false, false
	strong := false
	for _, d := range ds {
		switch {
		case !algSupported(d.Algorithm):
			unsupAlg = true
		case !digestSupported(d.DigestType):
			unsupDigest = true
		default:
			usable = append(usable, d)
			strong = strong || d.DigestType != dns.SHA1
		}
	}
	if strong { // RFC 4509 §3: SHA-1 DS records are ignored when stronger ones exist
		usable = slices.DeleteFunc(usable, func(d *dns.DS) bool { return d.DigestType == dns.SHA1 })
	}
	var anchors []*dns.DNSKEY
	for _, k := range trusted {
		if algSupported(k.Algorithm) {
			anchors = append(anchors, k)
		} else {
			unsupAlg = true
		}
	}
	if len(usable) == 0 && len(anchors) == 0 {
		if unsupAlg {
			return &zoneKeys{name: c, st: insecure(dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, "%s: its DS records or trust anchors use only unsupported algorithms", c)}
		}
		if unsupDigest {
			return &zoneKeys{name: c, st: insecure(dns.ExtendedErrorCodeUnsupportedDSDigestType, "%s: its DS records use only unsupported digest types", c)}
		}
		return &zoneKeys{name: c, st: bogus(dns.ExtendedErrorCodeDNSKEYMissing, "%s: no DS record or trust anchor", c)}
	}

	resp, _, err := q.iterate(c, dns.TypeDNSKEY)
	if err != nil {
		return &zoneKeys{name: c, st: indeterminate(dns.ExtendedErrorCodeNoReachableAuthority, "DNSKEY %s: %v", c, err)}
	}
	set := newSets(resp.Answer)
	rrs := set.get(c, dns.TypeDNSKEY)
	if len(rrs) == 0 {
		return &zoneKeys{name: c, st: bogus(dns.ExtendedErrorCodeDNSKEYMissing, "%s has DS records but no DNSKEY RRset (rcode %s)", c, dns.RcodeToString[resp.Rcode])}
	}
	var keys []*dns.DNSKEY
	for _, rr := range rrs {
		keys = append(keys, rr.(*dns.DNSKEY))
	}
	// The secure entry points: keys of the set matching a DS (at most MaxKeyTagCollisions
	// per DS, against key-tag collisions), and the trusted keys themselves.
	sep := slices.Clone(anchors)
	for _, d := range usable {
		n := 0
		for _, k := range keys {
			if k.Algorithm != d.Algorithm || k.KeyTag() != d.KeyTag {
				continue
			}
			if n++; n > q.r.cfg.MaxKeyTagCollisions {
				break
			}
			if kd := k.ToDS(d.DigestType); kd != nil && strings.EqualFold(kd.Digest, d.Digest) && !slices.Contains(sep, k) {
				sep = append(sep, k)
			}
		}
	}
	if len(sep) == 0 {
		return &zoneKeys{name: c, st: bogus(dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY of %s matches its DS records", c)}
	}
	var sigs []*dns.RRSIG
	for _, s := range set.sigs(c, dns.TypeDNSKEY) {
		if canonical(s.SignerName) == c {
			sigs = append(sigs, s)
		}
	}
	if len(sigs) == 0 {
		return &zoneKeys{name: c, st: bogus(dns.ExtendedErrorCodeRRSIGsMissing, "the DNSKEY RRset of %s is not signed", c)}
	}
	if st, _ := q.checkSigs(rrs, sigs, sep); st.v != Secure {
		st.reason = fmt.Sprintf("DNSKEY %s: %s", c, st.reason)
		if st.ede == dns.ExtendedErrorCodeDNSBogus && !strings.Contains(st.reason, "too many") {
			// no signature by a DS-matched key verifies: the chain is broken
			st.ede = dns.ExtendedErrorCodeDNSKEYMissing
		}
		return &zoneKeys{name: c, st: st}
	}
	return &zoneKeys{name: c, st: secure(), keys: keys}
}

// checkWithZone verifies an RRset with the keys of the secure zone z: only RRSIGs by z count.
func (q *query) checkWithZone(rrset []dns.RR, sigs []*dns.RRSIG, z *zoneKeys) (status, *dns.RRSIG) {
	h := rrset[0].Header()
	var mine []*dns.RRSIG
	for _, s := range sigs {
		if canonical(s.SignerName) == z.name && s.TypeCovered == h.Rrtype {
			mine = append(mine, s)
		}
	}
	if len(mine) == 0 {
		return bogus(dns.ExtendedErrorCodeRRSIGsMissing, "%s %s: no RRSIG by %s", canonical(h.Name), dns.Type(h.Rrtype), z.name), nil
	}
	return q.checkSigs(rrset, mine, z.keys)
}

// verifyRRset validates an RRset found in an answer: by the keys of the zone that signed it,
// found through the chain of trust; an unsigned RRset is insecure only if its zone provably
// is. It returns the RRSIG that verified and its signer.
func (q *query) verifyRRset(rrset []dns.RR, sigs []*dns.RRSIG) (status, *dns.RRSIG, string) {
	h := rrset[0].Header()
	owner, t := canonical(h.Name), h.Rrtype
	var usable []*dns.RRSIG
	var signers []string
	for _, s := range sigs {
		signer := canonical(s.SignerName)
		switch {
		case s.TypeCovered != t, !isSubDomain(signer, owner), int(s.Labels) > dns.CountLabel(owner),
			t == dns.TypeDS && signer == owner && owner != ".",
			t == dns.TypeDNSKEY && signer != owner:
			continue
		}
		usable = append(usable, s)
		if !slices.Contains(signers, signer) {
			signers = append(signers, signer)
		}
	}
	if len(usable) == 0 {
		zoneName := owner
		if t == dns.TypeDS {
			zoneName = parentName(owner)
		}
		z := q.zoneFor(zoneName)
		if z.st.v == Secure {
			return bogus(dns.ExtendedErrorCodeRRSIGsMissing, "%s %s: no RRSIG, but the zone %s is signed", owner, dns.Type(t), z.name), nil, ""
		}
		return z.st, nil, ""
	}
	var last status
	for _, signer := range signers {
		z := q.keysFor(signer)
		if z.st.v == Insecure {
			return z.st, nil, ""
		}
		if z.st.v != Secure {
			last = z.st
			continue
		}
		var mine []*dns.RRSIG
		for _, s := range usable {
			if canonical(s.SignerName) == signer {
				mine = append(mine, s)
			}
		}
		st, sig := q.checkSigs(rrset, mine, z.keys)
		if st.v == Secure {
			return st, sig, signer
		}
		st.reason = fmt.Sprintf("%s %s: %s", owner, dns.Type(t), st.reason)
		last = st
	}
	return last, nil, ""
}

// checkSigs verifies an RRset with RRSIGs and candidate keys, within the KeyTrap caps: at
// most MaxSigsPerRRset RRSIGs, MaxKeyTagCollisions keys per RRSIG, MaxSigChecks
// verifications per Resolve. Secure at the first signature that verifies.
func (q *query) checkSigs(rrset []dns.RR, sigs []*dns.RRSIG, keys []*dns.DNSKEY) (status, *dns.RRSIG) {
	cfg := &q.r.cfg
	var expired, future, noKey, unsupported *dns.RRSIG
	bad, collisions, tried := 0, 0, 0
	tooManySigs := false
	tags := make([]uint16, len(keys))
	for i, k := range keys {
		tags[i] = k.KeyTag()
	}
	for _, sig := range sigs {
		if tried == cfg.MaxSigsPerRRset {
			tooManySigs = true
			break
		}
		tried++
		if !algSupported(sig.Algorithm) {
			unsupported = sig
			continue
		}
		switch q.sigTime(sig) {
		case 1:
			expired = sig
			continue
		case -1:
			future = sig
			continue
		}
		n := 0
		for i, k := range keys {
			if tags[i] != sig.KeyTag || k.Algorithm != sig.Algorithm || k.Protocol != 3 ||
				k.Flags&dns.ZONE == 0 || k.Flags&dns.REVOKE != 0 {
				continue
			}
			if n == cfg.MaxKeyTagCollisions {
				collisions++
				break
			}
			n++
			if q.sigChecks >= cfg.MaxSigChecks {
				return bogus(dns.ExtendedErrorCodeDNSBogus, "too many signature validations (the limit is %d per answer, against KeyTrap)", cfg.MaxSigChecks), nil
			}
			q.sigChecks++
			if err := sig.Verify(k, rrset); err == nil {
				return secure(), sig
			}
			bad++
		}
		if n == 0 {
			noKey = sig
		}
	}
	switch {
	case expired != nil:
		return bogus(dns.ExtendedErrorCodeSignatureExpired, "RRSIG (key tag %d) expired at %s, now is %s",
			expired.KeyTag, sigTimeString(expired.Expiration, q.now), q.now.UTC().Format(time.RFC3339)), nil
	case future != nil:
		return bogus(dns.ExtendedErrorCodeSignatureNotYetValid, "RRSIG (key tag %d) not valid before %s, now is %s",
			future.KeyTag, sigTimeString(future.Inception, q.now), q.now.UTC().Format(time.RFC3339)), nil
	case bad > 0 && collisions > 0:
		return bogus(dns.ExtendedErrorCodeDNSBogus, "signature verification failed; too many DNSKEYs share a key tag (at most %d tried per RRSIG, against KeyTrap)", cfg.MaxKeyTagCollisions), nil
	case bad > 0 && tooManySigs:
		return bogus(dns.ExtendedErrorCodeDNSBogus, "signature verification failed; too many RRSIGs (at most %d tried per RRset, against KeyTrap)", cfg.MaxSigsPerRRset), nil
	case bad > 0:
		return bogus(dns.ExtendedErrorCodeDNSBogus, "signature verification failed"), nil
	case noKey != nil:
		return bogus(dns.ExtendedErrorCodeDNSKEYMissing, "no DNSKEY of %s with key tag %d and algorithm %d",
			canonical(noKey.SignerName), noKey.KeyTag, noKey.Algorithm), nil
	case unsupported != nil:
		return bogus(dns.ExtendedErrorCodeDNSBogus, "no RRSIG with a supported algorithm (algorithm %d)", unsupported.Algorithm), nil
	}
	return bogus(dns.ExtendedErrorCodeRRSIGsMissing, "no RRSIG"), nil
}

// sigTime judges the validity period of sig at the virtual now (RFC 1982 serial
// arithmetic): 0 within it, 1 expired, -1 not yet valid. With SigSkewMax, skew is forgiven
// as Unbound does.
func (q *query) sigTime(sig *dns.RRSIG) int {
	now := q.now.Unix()
	inc, exp := serialTime(sig.Inception, now), serialTime(sig.Expiration, now)
	var skew int64
	if q.r.cfg.SigSkewMax > 0 {
		skew = max((exp-inc)/10, int64(q.r.cfg.SigSkewMin/time.Second))
		skew = min(skew, int64(q.r.cfg.SigSkewMax/time.Second))
	}
	switch {
	case now > exp+skew:
		return 1
	case now < inc-skew:
		return -1
	}
	return 0
}

// serialTime returns the time t (seconds, modulo 2^32) nearest to now.
func serialTime(t uint32, now int64) int64 {
	return now + int64(int32(t-uint32(now)))
}

func sigTimeString(t uint32, now time.Time) string {
	return time.Unix(serialTime(t, now.Unix()), 0).UTC().Format(time.RFC3339)
}

// validatePositive validates an RRset of the answer; a wildcard expansion must come with
// the proof that the name itself does not exist.
func (q *query) validatePositive(rrset []dns.RR, sigs []*dns.RRSIG, resp *dns.Msg) status {
	st, sig, signer := q.verifyRRset(rrset, sigs)
	if st.v != Secure || sig == nil {
		return st
	}
	owner := canonical(rrset[0].Header().Name)
	if int(sig.Labels) < dns.CountLabel(owner) {
		ce := lastLabels(owner, int(sig.Labels))
		if !isSubDomain(signer, ce) {
			return bogus(dns.ExtendedErrorCodeDNSBogus, "%s: wildcard *.%s outside the signer's zone %s", owner, ce, signer)
		}
		return q.wildcardProof(resp, owner, ce, signer)
	}
	return st
}

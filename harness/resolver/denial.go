package resolver

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// denyKind is what a validated negative answer proves.
type denyKind int

const (
	denyNone       denyKind = iota
	denyNXDOMAIN            // the name does not exist
	denyNODATA              // the name exists without the type (or is an empty non-terminal)
	denyDelegation          // DS question: the name is a delegation without DS (unsigned child)
)

// maxProofSets caps the NSEC/NSEC3 RRsets of one negative answer that are validated.
const maxProofSets = 8

// proof holds the validated denial records of one response, all from the zone zone.
type proof struct {
	zone   string
	nsec   []*dns.NSEC
	nsec3  []*dns.NSEC3
	hashes map[string]string
}

// denial validates the negative answer resp to qname/qtype. z, if given, is the secure zone
// that must have signed it (walking the chain of trust); else the signer is found in the
// answer and its keys through the chain of trust.
func (q *query) denial(resp *dns.Msg, qname string, qtype uint16, z *zoneKeys) (denyKind, status) {
	nx := resp.Rcode == dns.RcodeNameError
	what := "NODATA"
	missing := dns.ExtendedErrorCodeRRSIGsMissing
	if nx {
		what, missing = "NXDOMAIN", dns.ExtendedErrorCodeNSECMissing
	}
	sets := newSets(resp.Ns)
	if z == nil {
		signer := denialSigner(resp.Ns, qname, qtype)
		if signer == "" {
			zoneName := qname
			if qtype == dns.TypeDS {
				zoneName = parentName(qname)
			}
			zz := q.zoneFor(zoneName)
			if zz.st.v != Secure {
				return denyNone, zz.st
			}
			return denyNone, bogus(missing, "%s %s: unsigned %s, but the zone %s is signed", qname, dns.Type(qtype), what, zz.name)
		}
		z = q.keysFor(signer)
		if z.st.v != Secure {
			return denyNone, z.st
		}
	}
	p, st := q.validateProof(sets, z, qname)
	if st.v != Secure {
		st.reason = fmt.Sprintf("%s %s: %s: %s", qname, dns.Type(qtype), what, st.reason)
		return denyNone, st
	}
	if len(p.nsec) == 0 && len(p.nsec3) == 0 {
		return denyNone, bogus(missing, "%s %s: %s without NSEC or NSEC3 records", qname, dns.Type(qtype), what)
	}
	var kind denyKind
	if len(p.nsec) > 0 {
		kind, st = p.nsecProof(qname, qtype, nx)
	} else {
		kind, st = p.nsec3Proof(qname, qtype, nx, q.r.cfg.MaxNSEC3Iterations)
	}
	if st.v != Secure {
		st.reason = fmt.Sprintf("%s %s: %s", qname, dns.Type(qtype), st.reason)
	}
	return kind, st
}

// denialSigner returns the zone that signed a negative answer: the signer of its SOA, else
// of its NSEC or NSEC3 records; "" if none is signed. The signer must enclose qname (and be
// above it for DS, which the parent serves).
func denialSigner(ns []dns.RR, qname string, qtype uint16) string {
	found := ""
	for _, rr := range ns {
		s, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		signer := canonical(s.SignerName)
		if !isSubDomain(signer, qname) || (qtype == dns.TypeDS && signer == qname && qname != ".") {
			continue
		}
		switch s.TypeCovered {
		case dns.TypeSOA:
			return signer
		case dns.TypeNSEC, dns.TypeNSEC3:
			if found == "" {
				found = signer
			}
		}
	}
	return found
}

// validateProof validates the SOA and the NSEC/NSEC3 RRsets of an authority section with
// the keys of the secure zone z.
func (q *query) validateProof(sets *rrsets, z *zoneKeys, qname string) (*proof, status) {
	p := &proof{zone: z.name, hashes: map[string]string{}}
	if soa := sets.get(z.name, dns.TypeSOA); len(soa) > 0 {
		if st, _ := q.checkWithZone(soa, sets.sigs(z.name, dns.TypeSOA), z); st.v != Secure {
			st.reason = "SOA: " + st.reason
			return nil, st
		}
	}
	n := 0
	for _, t := range []uint16{dns.TypeNSEC, dns.TypeNSEC3} {
		for _, owner := range sets.owners(t) {
			if !isSubDomain(z.name, owner) || (t == dns.TypeNSEC3 && parentName(owner) != z.name) {
				continue // another zone's: no proof here
			}
			if n++; n > maxProofSets {
				return nil, bogus(dns.ExtendedErrorCodeDNSBogus, "more than %d NSEC/NSEC3 RRsets", maxProofSets)
			}
			rrs := sets.get(owner, t)
			st, sig := q.checkWithZone(rrs, sets.sigs(owner, t), z)
			if st.v != Secure {
				st.reason = fmt.Sprintf("%s %s: %s", dns.Type(t), owner, st.reason)
				return nil, st
			}
			if int(sig.Labels) < dns.CountLabel(strings.TrimPrefix(owner, "*.")) {
				return nil, bogus(dns.ExtendedErrorCodeDNSBogus, "%s %s is a wildcard expansion: no proof", dns.Type(t), owner)
			}
			for _, rr := range rrs {
				switch r := rr.(type) {
				case *dns.NSEC:
					p.nsec = append(p.nsec, r)
				case *dns.NSEC3:
					p.nsec3 = append(p.nsec3, r)
				}
			}
		}
	}
	return p, secure()
}

// match returns the NSEC owned by name.
func (p *proof) match(name string) *dns.NSEC {
	for _, n := range p.nsec {
		if equalNames(n.Hdr.Name, name) {
			return n
		}
	}
	return nil
}

// cover returns an NSEC whose interval covers name.
func (p *proof) cover(name string) *dns.NSEC {
	for _, n := range p.nsec {
		if nsecCovers(n.Hdr.Name, n.NextDomain, name) {
			return n
		}
	}
	return nil
}

// absent returns an NSEC proving that name does not exist: it covers name, its next name is
// not below name (that would make name an empty non-terminal), and it is not a delegation
// or DNAME above name (which proves nothing about names below it).
func (p *proof) absent(name string) *dns.NSEC {
	n := p.cover(name)
	if n == nil || isStrictSubDomain(name, canonical(n.NextDomain)) {
		return nil
	}
	if owner := canonical(n.Hdr.Name); isStrictSubDomain(owner, name) &&
		((hasType(n.TypeBitMap, dns.TypeNS) && !hasType(n.TypeBitMap, dns.TypeSOA)) || hasType(n.TypeBitMap, dns.TypeDNAME)) {
		return nil
	}
	return n
}

// closestEncloser derives from the NSEC covering name the closest existing ancestor of
// name (RFC 4035 §5.4): the longer common ancestor of name with the owner or the next name.
func (p *proof) closestEncloser(name string, n *dns.NSEC) string {
	a, b := commonAncestor(name, n.Hdr.Name), commonAncestor(name, n.NextDomain)
	ce := a
	if dns.CountLabel(b) > dns.CountLabel(a) {
		ce = b
	}
	if !isSubDomain(p.zone, ce) {
		ce = p.zone
	}
	return canonical(ce)
}

func wildcardOf(ce string) string {
	if ce == "." {
		return "*."
	}
	return "*." + ce
}

// nsecProof checks an NXDOMAIN or NODATA proof made of NSEC records (RFC 4035 §5.4).
func (p *proof) nsecProof(qname string, qtype uint16, nx bool) (denyKind, status) {
	m := p.match(qname)
	if nx {
		if m != nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but the NSEC at %s proves it exists", m.Hdr.Name)
		}
		c := p.absent(qname)
		if c == nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but no NSEC proves the name absent")
		}
		ce := p.closestEncloser(qname, c)
		wc := wildcardOf(ce)
		if w := p.match(wc); w != nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but the NSEC at %s proves the wildcard exists", wc)
		}
		if p.cover(wc) == nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but no NSEC proves the wildcard %s absent", wc)
		}
		return denyNXDOMAIN, secure()
	}
	if m != nil {
		bm := m.TypeBitMap
		if qtype == dns.TypeDS {
			switch {
			case p.zone == qname && qname != ".":
				return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "the DS denial comes from the child zone, not its parent")
			case hasType(bm, dns.TypeDS):
				return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC at %s lists DS", m.Hdr.Name)
			case hasType(bm, dns.TypeNS) && !hasType(bm, dns.TypeSOA):
				return denyDelegation, secure()
			}
			return denyNODATA, secure()
		}
		switch {
		case hasType(bm, qtype):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC at %s lists %s", m.Hdr.Name, dns.Type(qtype))
		case hasType(bm, dns.TypeCNAME):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC at %s lists CNAME", m.Hdr.Name)
		case hasType(bm, dns.TypeNS) && !hasType(bm, dns.TypeSOA):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA proven by the parent-side NSEC of the delegation %s", m.Hdr.Name)
		}
		return denyNODATA, secure()
	}
	// An empty non-terminal: an NSEC covering qname whose next name lies below it.
	if c := p.cover(qname); c != nil && isStrictSubDomain(qname, canonical(c.NextDomain)) {
		return denyNODATA, secure()
	}
	// Wildcard NODATA: qname does not exist and the wildcard that would match lacks the type.
	if c := p.absent(qname); c != nil {
		wc := wildcardOf(p.closestEncloser(qname, c))
		if w := p.match(wc); w != nil && !hasType(w.TypeBitMap, qtype) && !hasType(w.TypeBitMap, dns.TypeCNAME) {
			return denyNODATA, secure()
		}
	}
	return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but no NSEC matches the name or proves it an empty non-terminal")
}

// nsec3 helpers (RFC 5155 §8).

// usable3 returns the NSEC3 records a validator may use (RFC 5155 §8.1-8.2): SHA-1, known
// flags. iterations reports the highest iteration count among them.
func (p *proof) usable3() (out []*dns.NSEC3, iterations int) {
	for _, n := range p.nsec3 {
		if n.Hash != dns.SHA1 || n.Flags&^1 != 0 {
			continue
		}
		out = append(out, n)
		iterations = max(iterations, int(n.Iterations))
	}
	return out, iterations
}

func (p *proof) hash(name string, n *dns.NSEC3) string {
	k := fmt.Sprintf("%s|%s|%d", canonical(name), strings.ToLower(n.Salt), n.Iterations)
	h, ok := p.hashes[k]
	if !ok {
		h = dns.HashName(canonical(name), n.Hash, n.Iterations, n.Salt)
		p.hashes[k] = h
	}
	return h
}

func ownerHash(n *dns.NSEC3) string {
	off, _ := dns.NextLabel(n.Hdr.Name, 0)
	return strings.ToUpper(strings.TrimSuffix(n.Hdr.Name[:off], "."))
}

func (p *proof) match3(set []*dns.NSEC3, name string) *dns.NSEC3 {
	for _, n := range set {
		if h := p.hash(name, n); h != "" && h == ownerHash(n) {
			return n
		}
	}
	return nil
}

func (p *proof) cover3(set []*dns.NSEC3, name string) *dns.NSEC3 {
	for _, n := range set {
		h := p.hash(name, n)
		if h == "" {
			continue
		}
		owner, next := ownerHash(n), strings.ToUpper(n.NextDomain)
		if owner < next {
			if owner < h && h < next {
				return n
			}
		} else if h > owner || h < next || (owner == next && h != owner) {
			return n
		}
	}
	return nil
}

// closestEncloser3 finds the closest encloser proof of qname: the longest existing ancestor
// (an NSEC3 matches it) and an NSEC3 covering the next closer name.
func (p *proof) closestEncloser3(set []*dns.NSEC3, qname string) (ce, nc string, cov *dns.NSEC3, ok bool) {
	for n := dns.CountLabel(qname) - 1; n >= dns.CountLabel(p.zone); n-- {
		cand := lastLabels(qname, n)
		m := p.match3(set, cand)
		if m == nil {
			continue
		}
		if cand != p.zone && ((hasType(m.TypeBitMap, dns.TypeNS) && !hasType(m.TypeBitMap, dns.TypeSOA)) || hasType(m.TypeBitMap, dns.TypeDNAME)) {
			return "", "", nil, false // a delegation or DNAME above qname proves nothing below it
		}
		nc = childToward(cand, qname)
		cov = p.cover3(set, nc)
		return cand, nc, cov, cov != nil
	}
	return "", "", nil, false
}

// nsec3Proof checks an NXDOMAIN or NODATA proof made of NSEC3 records (RFC 5155 §8).
func (p *proof) nsec3Proof(qname string, qtype uint16, nx bool, maxIter int) (denyKind, status) {
	set, iter := p.usable3()
	if len(set) == 0 {
		return denyNone, bogus(dns.ExtendedErrorCodeNSECMissing, "no usable NSEC3 record (unknown hash algorithm or flags)")
	}
	if iter > maxIter {
		return denyNone, insecure(dns.ExtendedErrorCodeUnsupportedNSEC3IterValue,
			"NSEC3 with %d iterations, more than the %d accepted (RFC 9276): treated as insecure", iter, maxIter)
	}
	m := p.match3(set, qname)
	if nx {
		if m != nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but an NSEC3 matches the name")
		}
		ce, _, cov, ok := p.closestEncloser3(set, qname)
		if !ok {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN without an NSEC3 closest encloser proof")
		}
		if w := p.match3(set, wildcardOf(ce)); w != nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but an NSEC3 proves the wildcard %s exists", wildcardOf(ce))
		}
		if p.cover3(set, wildcardOf(ce)) == nil {
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NXDOMAIN, but no NSEC3 proves the wildcard %s absent", wildcardOf(ce))
		}
		if cov.Flags&1 != 0 {
			return denyNXDOMAIN, insecure(0, "NXDOMAIN proven by an opt-out NSEC3: an unsigned delegation may exist")
		}
		return denyNXDOMAIN, secure()
	}
	if m != nil {
		bm := m.TypeBitMap
		if qtype == dns.TypeDS {
			switch {
			case p.zone == qname && qname != ".":
				return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "the DS denial comes from the child zone, not its parent")
			case hasType(bm, dns.TypeDS):
				return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC3 of the name lists DS")
			case hasType(bm, dns.TypeNS) && !hasType(bm, dns.TypeSOA):
				return denyDelegation, secure()
			}
			return denyNODATA, secure()
		}
		switch {
		case hasType(bm, qtype):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC3 of the name lists %s", dns.Type(qtype))
		case hasType(bm, dns.TypeCNAME):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but the NSEC3 of the name lists CNAME")
		case hasType(bm, dns.TypeNS) && !hasType(bm, dns.TypeSOA):
			return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA proven by the parent-side NSEC3 of a delegation")
		}
		return denyNODATA, secure()
	}
	ce, _, cov, ok := p.closestEncloser3(set, qname)
	if ok && qtype == dns.TypeDS && cov.Flags&1 != 0 {
		return denyDelegation, insecure(0, "an opt-out NSEC3 covers %s: an unsigned delegation", qname)
	}
	if ok {
		if w := p.match3(set, wildcardOf(ce)); w != nil && !hasType(w.TypeBitMap, qtype) && !hasType(w.TypeBitMap, dns.TypeCNAME) {
			if cov.Flags&1 != 0 { // as for a wildcard expansion: a delegation may hide there
				return denyNODATA, insecure(0, "wildcard NODATA proven by an opt-out NSEC3: an unsigned delegation may exist")
			}
			return denyNODATA, secure()
		}
	}
	return denyNone, bogus(dns.ExtendedErrorCodeDNSBogus, "NODATA, but no NSEC3 matches the name")
}

// wildcardProof checks that a wildcard expansion at owner (from the wildcard below ce, in
// the zone signer) comes with the proof that no closer name exists: an NSEC or NSEC3
// covering the next closer name (RFC 4035 §5.3.4, RFC 5155 §8.8).
func (q *query) wildcardProof(resp *dns.Msg, owner, ce, signer string) status {
	z := q.keysFor(signer)
	if z.st.v != Secure {
		return z.st
	}
	p, st := q.validateProof(newSets(resp.Ns), z, owner)
	if st.v != Secure {
		st.reason = fmt.Sprintf("%s: wildcard proof: %s", owner, st.reason)
		return st
	}
	nc := childToward(ce, owner)
	if len(p.nsec) > 0 {
		if p.absent(nc) == nil {
			return bogus(dns.ExtendedErrorCodeDNSBogus, "%s: wildcard expansion, but no NSEC proves %s absent", owner, nc)
		}
		return secure()
	}
	if len(p.nsec3) > 0 {
		set, iter := p.usable3()
		if iter > q.r.cfg.MaxNSEC3Iterations {
			return insecure(dns.ExtendedErrorCodeUnsupportedNSEC3IterValue, "%s: wildcard proof: NSEC3 with %d iterations, more than %d (RFC 9276)", owner, iter, q.r.cfg.MaxNSEC3Iterations)
		}
		cov := p.cover3(set, nc)
		if cov == nil {
			return bogus(dns.ExtendedErrorCodeDNSBogus, "%s: wildcard expansion, but no NSEC3 covers %s", owner, nc)
		}
		if cov.Flags&1 != 0 {
			// An opt-out span may hold an unsigned delegation at the next closer name, whose
			// data would win over the wildcard: the expansion cannot be proven (Unbound too).
			return insecure(0, "%s: wildcard expansion proven by an opt-out NSEC3: an unsigned delegation may exist at %s", owner, nc)
		}
		return secure()
	}
	return bogus(dns.ExtendedErrorCodeNSECMissing, "%s: wildcard expansion without proof that the name does not exist", owner)
}

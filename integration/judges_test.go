package integration

// The three judges of an answer: direct queries (with our own signature checks), Unbound and
// delv. Each returns a list of problems; an empty list means the judge is satisfied.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/danelab/danelab/internal/canonical"
	"github.com/miekg/dns"
)

// rrsetKey identifies an RRset in a section.
type rrsetKey struct {
	name  string // lower case
	rtype uint16
}

// groupRRsets groups the non-RRSIG, non-OPT records of a section into RRsets and collects the
// RRSIGs by the RRset they cover.
func groupRRsets(rrs []dns.RR) (sets map[rrsetKey][]dns.RR, sigs map[rrsetKey][]*dns.RRSIG, order []rrsetKey) {
	sets = map[rrsetKey][]dns.RR{}
	sigs = map[rrsetKey][]*dns.RRSIG{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok {
			k := rrsetKey{canon(h.Name), sig.TypeCovered}
			sigs[k] = append(sigs[k], sig)
			continue
		}
		k := rrsetKey{canon(h.Name), h.Rrtype}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	return sets, sigs, order
}

// verifyRRset checks that one of sigs verifies set with one of the zone's keys, is currently
// valid, has TTL and original TTL equal to the RRset's TTL, and has the right label count.
func verifyRRset(set []dns.RR, sigs []*dns.RRSIG, keys map[string]*Anchor, now time.Time) error {
	if len(sigs) == 0 {
		return fmt.Errorf("no RRSIG")
	}
	// Canonical copies: lower-case owners so that miekg/dns accepts them as one RRset.
	cp := make([]dns.RR, len(set))
	for i, rr := range set {
		cp[i] = dns.Copy(rr)
		cp[i].Header().Name = strings.ToLower(rr.Header().Name)
	}
	ttl := set[0].Header().Ttl
	var errs []string
	for _, sig := range sigs {
		a := keys[strings.ToLower(sig.SignerName)]
		if a == nil {
			errs = append(errs, fmt.Sprintf("signer %s is not a served zone", sig.SignerName))
			continue
		}
		var key *dns.DNSKEY
		for _, k := range a.Keys {
			if k.KeyTag() == sig.KeyTag && k.Algorithm == sig.Algorithm {
				key = k
			}
		}
		if key == nil {
			errs = append(errs, fmt.Sprintf("RRSIG key tag %d alg %d matches no key file of %s", sig.KeyTag, sig.Algorithm, a.Zone))
			continue
		}
		s := dns.Copy(sig).(*dns.RRSIG)
		s.Hdr.Name = strings.ToLower(s.Hdr.Name)
		if err := s.Verify(key, cp); err != nil {
			errs = append(errs, fmt.Sprintf("RRSIG by %d does not verify: %v", sig.KeyTag, err))
			continue
		}
		if !s.ValidityPeriod(now) {
			errs = append(errs, fmt.Sprintf("RRSIG by %d not valid now (inception %s, expiration %s)", sig.KeyTag,
				dns.TimeToString(sig.Inception), dns.TimeToString(sig.Expiration)))
			continue
		}
		owner := cp[0].Header().Name
		wantLabels := dns.CountLabel(owner)
		if strings.HasPrefix(owner, "*.") {
			wantLabels-- // RFC 4034 §3.1.3: the "*" label is not counted
		}
		if int(sig.Labels) > wantLabels {
			errs = append(errs, fmt.Sprintf("RRSIG labels %d > %d", sig.Labels, wantLabels))
			continue
		}
		if sig.Hdr.Ttl != ttl {
			errs = append(errs, fmt.Sprintf("RRSIG TTL %d != RRset TTL %d (RFC 4035 §2.2)", sig.Hdr.Ttl, ttl))
			continue
		}
		return nil
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

// dnssecTypes are the types a server must not add to a response without DO unless asked for
// (RFC 4035 §3.2.1, RFC 3225).
var dnssecTypes = map[uint16]bool{dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true}

func fmtMsg(r *dns.Msg) string {
	if r == nil {
		return "<nil>"
	}
	return r.String()
}

// stopAtZoneChange adapts e when a CNAME chain leaves the zone of the query name and the
// server did not follow it: the answer then ends with that CNAME, NOERROR (RFC 6604), and the
// rest is the resolver's job.
func stopAtZoneChange(zs *ZoneSet, e Expect, r *dns.Msg) Expect {
	for i, rr := range e.Answer {
		cn, ok := rr.(*dns.CNAME)
		if !ok || zs.ZoneFor(rr.Header().Name) == zs.ZoneFor(cn.Target) {
			continue
		}
		target := canon(cn.Target)
		for _, a := range r.Answer {
			if canon(a.Header().Name) == target {
				return e // the server followed the chain
			}
		}
		owner := canon(rr.Header().Name)
		return Expect{Kind: Positive, Rcode: dns.RcodeSuccess, Answer: e.Answer[:i+1], Final: owner, Zone: zs.ZoneFor(owner)}
	}
	return e
}

// allowedAnswers lists the acceptable answer sections for a positive expectation: the whole
// chain, or (for CNAME chains that cross into another zone) the chain cut at each zone change.
func allowedAnswers(zs *ZoneSet, e Expect) [][]dns.RR {
	out := [][]dns.RR{e.Answer}
	for i := 1; i < len(e.Answer); i++ {
		prev := zs.ZoneFor(e.Answer[i-1].Header().Name)
		cur := zs.ZoneFor(e.Answer[i].Header().Name)
		if prev != cur && e.Answer[i].Header().Name != e.Answer[i-1].Header().Name {
			out = append(out, e.Answer[:i])
		}
	}
	return out
}

func matchesOne(zs *ZoneSet, e Expect, got []dns.RR) (bool, string) {
	var diff string
	for _, want := range allowedAnswers(zs, e) {
		ok, d := sameRRs(want, got)
		if ok {
			return true, ""
		}
		if diff == "" {
			diff = d
		}
	}
	return false, diff
}

// JudgeDirect asks the server itself, with and without DO, and checks the response against e:
// rcode, AA, answer content and TTLs, signatures (verified with the key files), the negative
// answer's SOA and NSEC TTLs, referrals, and that no DNSSEC records appear without DO.
func JudgeDirect(l *Lab, qname string, qtype uint16, e Expect) []string {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	q := fmt.Sprintf("%s %s", qname, typeString(qtype))
	now := time.Now()

	r, err := QueryFull(l.Srv.Addr, qname, qtype, QueryOpts{DO: true})
	if err != nil {
		return []string{err.Error()}
	}
	e = stopAtZoneChange(l.Zones, e, r)
	wantRcode := e.Rcode
	if e.Kind == Referral {
		wantRcode = dns.RcodeSuccess
	}
	// Compact denial (RFC 9824 §3.1): a name that does not exist is NOERROR with DO (and no
	// CO), with one NSEC at the name listing NXNAME.
	compactNX := e.Kind == NXDomain && e.Zone != nil && l.ModeFor(e.Zone.Origin) == "compact"
	if compactNX {
		wantRcode = dns.RcodeSuccess
		var owned []string
		for _, rr := range append(slices.Clone(r.Answer), r.Ns...) {
			if n, ok := rr.(*dns.NSEC); ok && canon(n.Hdr.Name) == e.Final {
				types := slices.Clone(n.TypeBitMap)
				slices.Sort(types)
				owned = append(owned, fmt.Sprint(typeNames(types)))
				if !slices.Equal(types, []uint16{dns.TypeRRSIG, dns.TypeNSEC, 128}) {
					add("%s: compact NXDOMAIN NSEC at %s lists %v, want RRSIG NSEC NXNAME (RFC 9824 §3.1)", q, e.Final, typeNames(types))
				}
			}
		}
		if len(owned) != 1 {
			add("%s: compact NXDOMAIN with %d NSEC owned by %s, want one (RFC 9824 §3.1)", q, len(owned), e.Final)
		}
		if qtype == dns.TypeNSEC {
			e.Kind = Unknown // the NSEC at the name is the answer: no negative answer to check
		}
	}
	if r.Rcode != wantRcode {
		add("%s +dnssec: rcode %s, want %s (%s)", q, dns.RcodeToString[r.Rcode], dns.RcodeToString[wantRcode], e.Kind)
	}
	if wantAA := e.Kind != Referral; r.Authoritative != wantAA {
		add("%s +dnssec: AA=%v, want %v (%s)", q, r.Authoritative, wantAA, e.Kind)
	}
	if o := r.IsEdns0(); o == nil || !o.Do() {
		add("%s: the response to a DO query lacks an OPT record with DO=1 (RFC 3225 §3)", q)
	}
	if len(r.Question) != 1 || r.Question[0].Name != presentation(qname) {
		add("%s: question section %v does not echo the query name exactly", q, r.Question)
	}
	ansSets, ansSigs, ansOrder := groupRRsets(r.Answer)
	switch e.Kind {
	case Positive:
		if ok, d := matchesOne(l.Zones, e, r.Answer); !ok {
			add("%s +dnssec: answer differs from the zone file: %s", q, d)
		}
		// TTLs of zone data are served as in the file.
		for _, want := range e.Answer {
			z := l.Zones.ZoneFor(want.Header().Name)
			if z == nil || z.Synth[want.Header().Rrtype] {
				continue
			}
			for _, got := range r.Answer {
				if rrKey(got) == rrKey(want) && got.Header().Ttl != want.Header().Ttl {
					add("%s: %s served with TTL %d, zone file says %d", q, strings.ToLower(got.Header().Name)+" "+dns.TypeToString[got.Header().Rrtype], got.Header().Ttl, want.Header().Ttl)
				}
			}
		}
		// The answer's owner names keep the case of the query (for the first RRset).
		if len(r.Answer) > 0 && r.Answer[0].Header().Name != presentation(qname) && canon(r.Answer[0].Header().Name) == canon(qname) {
			add("%s: answer owner %q does not keep the query name's case", q, r.Answer[0].Header().Name)
		}
	case NoData, NXDomain:
		var chain []dns.RR
		for _, rr := range r.Answer {
			if rr.Header().Rrtype != dns.TypeRRSIG {
				chain = append(chain, rr)
			}
		}
		if ok, d := sameRRs(e.Answer, chain); !ok {
			add("%s +dnssec: %s answer should hold only the CNAME chain: %s", q, e.Kind, d)
		}
	}
	// NSEC/RRSIG queries: the RRset at the owner, never a CNAME; at a name owning RRsets an
	// NSEC query gets an NSEC owned by that name.
	if qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG {
		lq := canon(qname)
		if _, ok := ansSets[rrsetKey{lq, dns.TypeCNAME}]; ok {
			add("%s: answered with the CNAME chain; %s RRsets live beside a CNAME and must be answered from the owner (RFC 4035 §2.5)", q, typeString(qtype))
		}
		if z := l.Zones.ZoneFor(lq); qtype == dns.TypeNSEC && z != nil && !hashedMode(l.ModeFor(z.Origin)) && e.Wildcard == "" && len(z.Data[lq]) > 0 && !z.BelowCut(lq, false) {
			if _, ok := ansSets[rrsetKey{lq, dns.TypeNSEC}]; !ok {
				add("%s: no NSEC owned by %s in the answer", q, lq)
			}
		}
	}
	// Every answer RRset is signed and verifies (any RRset of a served zone).
	for _, k := range ansOrder {
		if err := verifyRRset(ansSets[k], ansSigs[k], l.Anchors, now); err != nil {
			add("%s: answer RRset %s %s: %v", q, k.name, typeString(k.rtype), err)
		}
	}
	// Every NSEC (answer or authority) fits the zone: the exact chain in nsec mode, honest
	// bitmaps and intervals that hide no data in minimal mode.
	for _, rr := range append(slices.Clone(r.Answer), r.Ns...) {
		if n3, ok := rr.(*dns.NSEC3); ok {
			z := l.Zones.ZoneFor(parentName(canon(n3.Hdr.Name)))
			if z == nil || !hashedMode(l.ModeFor(z.Origin)) {
				add("%s: NSEC3 %s outside the zones served with NSEC3", q, n3.Hdr.Name)
			} else if err := z.CheckNSEC3(n3, l.ModeFor(z.Origin)); err != nil {
				add("%s: %v (denial %s)", q, err, l.ModeFor(z.Origin))
			}
			continue
		}
		n, ok := rr.(*dns.NSEC)
		if !ok {
			continue
		}
		z := l.Zones.ZoneFor(n.Hdr.Name)
		if z == nil {
			add("%s: NSEC %s outside the served zones", q, n.Hdr.Name)
			continue
		}
		if err := z.CheckNSEC(n, l.ModeFor(z.Origin)); err != nil {
			add("%s: %v (denial %s)", q, err, l.ModeFor(z.Origin))
		}
	}
	authSets, authSigs, authOrder := groupRRsets(r.Ns)
	hashed := e.Zone != nil && hashedMode(l.ModeFor(e.Zone.Origin))
	if hashed && (e.Kind == NoData || e.Kind == NXDomain || e.Kind == Positive && e.Wildcard != "") {
		for _, p := range checkNSEC3Proof(e.Zone, qtype, e, r.Ns) {
			add("%s: %s", q, p)
		}
	}
	switch e.Kind {
	case NoData, NXDomain:
		z := e.Zone
		soa := authSets[rrsetKey{z.Origin, dns.TypeSOA}]
		if len(soa) != 1 {
			add("%s: negative answer without the zone's SOA in authority (RFC 2308 §3): %d SOA", q, len(soa))
		} else if soa[0].Header().Ttl != z.NegTTL() {
			add("%s: negative answer SOA TTL %d, want min(SOA TTL, MINIMUM) = %d (RFC 2308 §3)", q, soa[0].Header().Ttl, z.NegTTL())
		}
		nsecs := 0
		for _, k := range authOrder {
			if hashed {
				break // checkNSEC3Proof and CheckNSEC3
			}
			if k.rtype == dns.TypeNSEC {
				nsecs++
				for _, rr := range authSets[k] {
					if rr.Header().Ttl != z.NegTTL() {
						add("%s: NSEC %s TTL %d, want min(SOA TTL, MINIMUM) = %d (RFC 9077)", q, k.name, rr.Header().Ttl, z.NegTTL())
					}
				}
			}
			if k.rtype == dns.TypeNSEC3 {
				add("%s: NSEC3 in a zone served with NSEC", q)
			}
		}
		if nsecs == 0 && !hashed {
			add("%s: %s answer with DO has no NSEC proof", q, e.Kind)
		}
		// RFC 4035 §3.1.3.1: NODATA at a name that owns RRsets includes the NSEC owned by that
		// name; §3.1.3.4: wildcard NODATA includes the NSEC owned by the wildcard. Either NSEC
		// must not list the type (or CNAME).
		if e.Kind == NoData && e.Zone != nil && !hashed {
			owner := e.Final
			if e.Wildcard != "" && l.ModeFor(z.Origin) != "compact" { // compact: at the name (RFC 9824 §3.3)
				owner = e.Wildcard
			}
			if len(z.Data[owner]) > 0 || e.Wildcard != "" {
				if set := authSets[rrsetKey{owner, dns.TypeNSEC}]; len(set) > 0 {
					n := set[0].(*dns.NSEC)
					if slices.Contains(n.TypeBitMap, qtype) || slices.Contains(n.TypeBitMap, dns.TypeCNAME) {
						add("%s: NODATA proof NSEC %s lists %s/CNAME: %v", q, n.Hdr.Name, typeString(qtype), typeNames(n.TypeBitMap))
					}
				} else {
					add("%s: NODATA without the NSEC owned by %s (RFC 4035 §3.1.3.1/§3.1.3.4)", q, owner)
				}
			}
		}
		for _, k := range authOrder {
			if err := verifyRRset(authSets[k], authSigs[k], l.Anchors, now); err != nil {
				add("%s: authority RRset %s %s: %v", q, k.name, typeString(k.rtype), err)
			}
		}
	case Referral:
		probs = append(probs, checkReferral(l, q, e, r, true)...)
	default:
		for _, k := range authOrder {
			if err := verifyRRset(authSets[k], authSigs[k], l.Anchors, now); err != nil {
				add("%s: authority RRset %s %s: %v", q, k.name, typeString(k.rtype), err)
			}
		}
	}
	// Additional data from a served zone (not glue below a cut) comes with its RRSIGs
	// (RFC 4035 §3.1.1).
	addSets, addSigs, addOrder := groupRRsets(r.Extra)
	for _, k := range addOrder {
		z := l.Zones.ZoneFor(k.name)
		if z == nil || z.BelowCut(k.name, false) {
			continue
		}
		if err := verifyRRset(addSets[k], addSigs[k], l.Anchors, now); err != nil {
			add("%s: additional RRset %s %s: %v", q, k.name, typeString(k.rtype), err)
		}
	}
	if len(probs) > 0 {
		probs = append(probs, "response was:\n"+fmtMsg(r))
		return probs
	}

	// The same query without DO: same rcode and answer, no DNSSEC records.
	r2, err := QueryFull(l.Srv.Addr, qname, qtype, QueryOpts{})
	if err != nil {
		return []string{err.Error()}
	}
	if compactNX && r2.Rcode == dns.RcodeNameError && r.Rcode == dns.RcodeSuccess {
		// without DO the rcode is NXDOMAIN; with it, the compact answer's NOERROR
	} else if r2.Rcode != r.Rcode || r2.Authoritative != r.Authoritative {
		add("%s without DO: rcode %s AA=%v, with DO: rcode %s AA=%v", q, dns.RcodeToString[r2.Rcode], r2.Authoritative, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for si, sec := range [][]dns.RR{r2.Answer, r2.Ns, r2.Extra} {
		for _, rr := range sec {
			t := rr.Header().Rrtype
			if dnssecTypes[t] && !(si == 0 && t == qtype) {
				add("%s without DO: response contains %s (RFC 4035 §3.2.1)", q, rr.String())
			}
		}
	}
	if e.Kind == Positive {
		if ok, d := matchesOne(l.Zones, e, r2.Answer); !ok {
			add("%s without DO: answer differs from the zone file: %s", q, d)
		}
	}
	if e.Kind == Referral {
		probs = append(probs, checkReferral(l, q+" (no DO)", e, r2, false)...)
	}
	if len(probs) > 0 {
		probs = append(probs, "response without DO was:\n"+fmtMsg(r2))
	}
	return probs
}

func typeNames(ts []uint16) []string {
	var out []string
	for _, t := range ts {
		out = append(out, typeString(t))
	}
	return out
}

// checkReferral checks a referral for e.Cut: AA=0, the cut's NS RRset in authority, glue for
// in-bailiwick name servers in additional, and with DO either the signed DS RRset or an NSEC
// owned by the cut that proves there is no DS (NS bit set, DS and SOA bits clear).
func checkReferral(l *Lab, q string, e Expect, r *dns.Msg, do bool) []string {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	z := e.Zone
	cut := e.Cut
	if r.Authoritative {
		add("%s: referral to %s with AA=1", q, cut)
	}
	if len(r.Answer) != 0 {
		add("%s: referral to %s with a non-empty answer section", q, cut)
	}
	sets, sigs, _ := groupRRsets(r.Ns)
	if ok, d := sameRRs(z.Data[cut][dns.TypeNS], sets[rrsetKey{cut, dns.TypeNS}]); !ok {
		add("%s: referral NS RRset differs from the zone: %s", q, d)
	}
	if len(sigs[rrsetKey{cut, dns.TypeNS}]) > 0 {
		add("%s: referral NS RRset is signed (the parent side NS is not authoritative data)", q)
	}
	// Glue: addresses of name servers at or below the cut, as in the zone file.
	var glue []dns.RR
	for _, ns := range z.Data[cut][dns.TypeNS] {
		target := canon(ns.(*dns.NS).Ns)
		if dns.IsSubDomain(cut, target) {
			glue = append(glue, z.Data[target][dns.TypeA]...)
			glue = append(glue, z.Data[target][dns.TypeAAAA]...)
		}
	}
	var extra []dns.RR
	for _, rr := range r.Extra {
		if t := rr.Header().Rrtype; t == dns.TypeA || t == dns.TypeAAAA {
			extra = append(extra, rr)
		}
	}
	if ok, d := sameRRs(glue, extra); !ok {
		add("%s: referral glue differs from the zone: %s", q, d)
	}
	if !do {
		return probs
	}
	now := time.Now()
	if ds := z.Data[cut][dns.TypeDS]; len(ds) > 0 {
		got := sets[rrsetKey{cut, dns.TypeDS}]
		if ok, d := sameRRs(ds, got); !ok {
			add("%s: referral to a signed delegation: DS RRset differs: %s", q, d)
		} else if err := verifyRRset(got, sigs[rrsetKey{cut, dns.TypeDS}], l.Anchors, now); err != nil {
			add("%s: referral DS: %v", q, err)
		}
	} else if hashedMode(l.ModeFor(z.Origin)) {
		var n3 *dns.NSEC3
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC3); ok {
				if h, err := hashOf(n.Hdr.Name, z.Origin); err == nil && h == nsec3Hash(cut) {
					n3 = n
				}
			}
		}
		if n3 == nil {
			add("%s: referral to an unsigned delegation without the NSEC3 of %s proving no DS (RFC 5155 §7.2.7)", q, cut)
		} else if !slices.Contains(n3.TypeBitMap, dns.TypeNS) || slices.Contains(n3.TypeBitMap, dns.TypeDS) || slices.Contains(n3.TypeBitMap, dns.TypeSOA) {
			add("%s: insecure delegation NSEC3 bitmap %v must have NS and lack DS and SOA", q, typeNames(n3.TypeBitMap))
		} else if err := verifyRRset([]dns.RR{n3}, sigs[rrsetKey{canon(n3.Hdr.Name), dns.TypeNSEC3}], l.Anchors, now); err != nil {
			add("%s: referral NSEC3: %v", q, err)
		}
	} else {
		set := sets[rrsetKey{cut, dns.TypeNSEC}]
		if len(set) != 1 {
			add("%s: referral to an unsigned delegation without an NSEC owned by %s proving no DS (RFC 4035 §3.1.4)", q, cut)
		} else {
			n := set[0].(*dns.NSEC)
			if !slices.Contains(n.TypeBitMap, dns.TypeNS) || slices.Contains(n.TypeBitMap, dns.TypeDS) || slices.Contains(n.TypeBitMap, dns.TypeSOA) {
				add("%s: insecure delegation NSEC bitmap %v must have NS and lack DS and SOA", q, typeNames(n.TypeBitMap))
			}
			if err := verifyRRset(set, sigs[rrsetKey{cut, dns.TypeNSEC}], l.Anchors, now); err != nil {
				add("%s: referral NSEC: %v", q, err)
			}
		}
	}
	return probs
}

// JudgeUnbound asks the lab's Unbound and checks AD=1, the rcode and the answer content.
func JudgeUnbound(l *Lab, qname string, qtype uint16, e Expect) []string {
	e = compactView(l, e, qtype)
	q := fmt.Sprintf("%s %s", qname, typeString(qtype))
	r, err := l.Unbound.Resolve(qname, qtype)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if e.Kind == Positive && unboundWildcardQuirk(l.Zones, qname, e) &&
		r.Rcode == dns.RcodeSuccess && r.AuthenticatedData && len(r.Answer) == 0 {
		return nil // Unbound's own defect, see unboundWildcardQuirk
	}
	if r.Rcode != e.Rcode {
		add("unbound %s: rcode %s, want %s (%s) %v", q, dns.RcodeToString[r.Rcode], dns.RcodeToString[e.Rcode], e.Kind, EDE(r))
	}
	if !r.AuthenticatedData {
		add("unbound %s: AD=0 (not validated as secure) %v", q, EDE(r))
	}
	switch e.Kind {
	case Positive:
		if ok, d := sameRRs(e.Answer, r.Answer); !ok {
			add("unbound %s: answer differs from the zone file: %s", q, d)
		}
	case NoData, NXDomain:
		if ok, d := sameRRs(e.Answer, r.Answer); !ok {
			add("unbound %s: %s answer should hold only the CNAME chain: %s", q, e.Kind, d)
		}
	}
	if len(probs) > 0 {
		probs = append(probs, "unbound response:\n"+fmtMsg(r))
	}
	return probs
}

// JudgeDelv runs delv with the static KSK and checks "fully validated", the rcode
// (ncache nxdomain / nxrrset) and the answer content.
func JudgeDelv(l *Lab, qname string, qtype uint16, e Expect) []string {
	e = compactView(l, e, qtype)
	z := l.Zones.ZoneFor(qname)
	res, err := l.Delv.Query(z.Origin, qname, qtype)
	if err != nil {
		return []string{err.Error()}
	}
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if res.Failure != "" {
		add("delv: resolution failed: %s", res.Failure)
	}
	if !res.Secure {
		add("delv: not fully validated")
	}
	if res.Rcode != e.Rcode && res.Failure == "" {
		add("delv: rcode %s, want %s (%s)", dns.RcodeToString[res.Rcode], dns.RcodeToString[e.Rcode], e.Kind)
	}
	if e.Kind == NoData && !res.NoData {
		add("delv: expected a proven NODATA (ncache nxrrset)")
	}
	if e.Kind == Positive && res.NoData {
		add("delv: unexpected NODATA")
	}
	switch e.Kind {
	case Positive, NoData, NXDomain:
		if ok, d := matchesOne(l.Zones, e, res.Answer); !ok && e.Kind == Positive {
			add("delv: answer differs from the zone file: %s", d)
		} else if ok, d := sameRRs(e.Answer, res.Answer); !ok && e.Kind != Positive {
			add("delv: %s answer should hold only the CNAME chain: %s", e.Kind, d)
		}
	}
	if len(probs) > 0 {
		probs = append(probs, res.Cmd+"\n"+res.Output)
	}
	return probs
}

// compactView is what a validator sees of e in a zone served with compact denial (RFC 9824):
// a name that does not exist is a secure NODATA (NOERROR), as validators that do not restore
// the rcode from NXNAME (Unbound 1.17, BIND 9.18) report it.
func compactView(l *Lab, e Expect, qtype uint16) Expect {
	if e.Kind == NXDomain && e.Zone != nil && l.ModeFor(e.Zone.Origin) == "compact" {
		e.Kind, e.Rcode = NoData, dns.RcodeSuccess
		if qtype == dns.TypeNSEC {
			e.Kind = Unknown // the NSEC at the name is the answer
		}
	}
	return e
}

// unboundWildcardQuirk reports whether Unbound 1.17 may answer NODATA (with AD=1) instead of
// the wildcard expansion for qname: with aggressive-nsec (RFC 8198, on by default) and the
// NSEC that covers qname cached, Unbound gets it wrong when the label just below the
// wildcard's parent sorts before "*" (e.g. "!x.users", "\001b.users", "a.)b.users"): the
// covering NSEC then ends at the wildcard owner itself. Measured here with the server's
// answer correct (delv and Unbound with aggressive-nsec: no both validate the expansion).
func unboundWildcardQuirk(zs *ZoneSet, qname string, e Expect) bool {
	if e.Wildcard == "" {
		return false
	}
	parent := parentName(e.Wildcard)
	name := canon(qname)
	for parentName(name) != parent {
		if name == "." {
			return false
		}
		name = parentName(name)
	}
	labels := canonical.Labels(name)
	return len(labels) > 0 && len(labels[0]) > 0 && labels[0][0] < '*'
}

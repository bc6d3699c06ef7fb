package integration

// An independent model of what the served zones must answer, computed from the zone files
// with the rules of RFC 1034 §4.3.2, RFC 4592 (wildcards, empty non-terminals) and RFC 4035
// (DS at the parent side of a cut), plus the DNSKEY/CDS/CDNSKEY published from the key files.
// Nothing here looks at the server's answers.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/danelab/danelab/internal/canonical"
	"github.com/miekg/dns"
)

// Kind classifies an expected answer.
type Kind int

const (
	Positive Kind = iota // the qtype RRset exists (possibly after CNAMEs, possibly from a wildcard)
	NoData               // name exists, type does not (NOERROR, empty answer after CNAMEs)
	NXDomain             // name does not exist
	Referral             // name is at or below a zone cut (not a DS query at the cut)
	Unknown              // content not modelled (e.g. NSEC queries); rcode is still known
)

func (k Kind) String() string {
	return [...]string{"positive", "nodata", "nxdomain", "referral", "unknown"}[k]
}

// Zone is one parsed zone file.
type Zone struct {
	Origin string                         // FQDN, lower case
	Data   map[string]map[uint16][]dns.RR // lower-case owner -> type -> RRs
	Exists map[string]bool                // owners and empty non-terminals
	Cuts   map[string]bool                // delegation points (NS below the apex)
	SOA    *dns.SOA
	Synth  map[uint16]bool // apex types published by the signer, not in the file

	chainOnce    sync.Once
	chainByOwner map[string]NSECEntry
	nsec3Once    sync.Once
	nsec3ByHash  map[string]nsec3Entry
}

// ZoneSet is every zone a server serves.
type ZoneSet struct {
	Zones map[string]*Zone
}

// NegTTL is the TTL of negative answers and of NSEC records: min(SOA TTL, SOA MINIMUM)
// (RFC 2308 §3, RFC 9077).
func (z *Zone) NegTTL() uint32 { return min(z.SOA.Hdr.Ttl, z.SOA.Minttl) }

// NewZoneSet parses zone file contents (origin -> text). anchors (may be nil) adds the apex
// DNSKEY RRset from the key files, CDNSKEY (the SEP keys) and CDS (from dsset).
func NewZoneSet(contents map[string]string, anchors map[string]*Anchor) (*ZoneSet, error) {
	zs := &ZoneSet{Zones: map[string]*Zone{}}
	for origin, text := range contents {
		z, err := ParseZone(origin, text)
		if err != nil {
			return nil, err
		}
		if a := anchors[z.Origin]; a != nil {
			z.addKeys(a)
		}
		zs.Zones[z.Origin] = z
	}
	return zs, nil
}

// ParseZone parses a zone file and derives existence, cuts and the SOA.
func ParseZone(origin, text string) (*Zone, error) {
	origin = canon(origin)
	z := &Zone{Origin: origin, Data: map[string]map[uint16][]dns.RR{}, Exists: map[string]bool{},
		Cuts: map[string]bool{}, Synth: map[uint16]bool{}}
	zp := dns.NewZoneParser(strings.NewReader(text), origin, origin+"zone")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		h := rr.Header()
		h.Name = canon(h.Name)
		if !dns.IsSubDomain(origin, h.Name) {
			return nil, fmt.Errorf("zone %s: %s is out of zone", origin, h.Name)
		}
		if z.Data[h.Name] == nil {
			z.Data[h.Name] = map[uint16][]dns.RR{}
		}
		z.Data[h.Name][h.Rrtype] = append(z.Data[h.Name][h.Rrtype], rr)
		if soa, ok := rr.(*dns.SOA); ok && h.Name == origin {
			z.SOA = soa
		}
		if h.Rrtype == dns.TypeNS && h.Name != origin {
			z.Cuts[h.Name] = true
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	if z.SOA == nil {
		return nil, fmt.Errorf("zone %s has no SOA", origin)
	}
	for owner := range z.Data {
		for n := owner; ; n = parentName(n) {
			z.Exists[n] = true
			if n == origin {
				break
			}
		}
	}
	return z, nil
}

func (z *Zone) addKeys(a *Anchor) {
	apex := z.Data[z.Origin]
	for _, k := range a.Keys {
		kk := dns.Copy(k).(*dns.DNSKEY)
		kk.Hdr.Name = z.Origin
		apex[dns.TypeDNSKEY] = append(apex[dns.TypeDNSKEY], kk)
		if k.Flags&dns.SEP != 0 {
			apex[dns.TypeCDNSKEY] = append(apex[dns.TypeCDNSKEY], kk.ToCDNSKEY())
		}
	}
	for _, ds := range a.DS {
		apex[dns.TypeCDS] = append(apex[dns.TypeCDS], ds.ToCDS())
	}
	if len(a.DS) == 0 { // no dsset: the SHA-256 DS of each SEP key
		for _, k := range a.Keys {
			if k.Flags&dns.SEP != 0 {
				apex[dns.TypeCDS] = append(apex[dns.TypeCDS], k.ToDS(dns.SHA256).ToCDS())
			}
		}
	}
	for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeCDNSKEY, dns.TypeCDS} {
		z.Synth[t] = true
	}
}

// denial adds to each zone what its denial mode publishes: the NSEC3PARAM of the NSEC3 modes.
func (zs *ZoneSet) denial(modeFor func(origin string) string) {
	for _, z := range zs.Zones {
		if hashedMode(modeFor(z.Origin)) {
			z.addNSEC3PARAM()
		}
	}
}

// addNSEC3PARAM adds the NSEC3PARAM a zone denied with NSEC3 publishes at its apex (the
// lab's parameters: RFC 9276's, TTL 0 as BIND has it).
func (z *Zone) addNSEC3PARAM() {
	z.Data[z.Origin][dns.TypeNSEC3PARAM] = []dns.RR{&dns.NSEC3PARAM{
		Hdr: dns.RR_Header{Name: z.Origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET}, Hash: dns.SHA1}}
	z.Synth[dns.TypeNSEC3PARAM] = true
}

// canon returns name fully qualified, lower-cased, with miekg/dns's canonical presentation
// escapes (so that "\046" and "\." compare equal).
func canon(name string) string {
	name = dns.Fqdn(name)
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		return strings.ToLower(name)
	}
	s, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return strings.ToLower(name)
	}
	return strings.ToLower(s)
}

// typeString names a type, "TYPE<n>" for types without a mnemonic (RFC 3597).
func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// presentation returns name fully qualified in miekg/dns's canonical presentation, keeping
// its case.
func presentation(name string) string {
	name = dns.Fqdn(name)
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		return name
	}
	s, _, err := dns.UnpackDomainName(buf[:off], 0)
	if err != nil {
		return name
	}
	return s
}

// parentName strips the first label ("a.b.c." -> "b.c."; "c." -> ".").
func parentName(n string) string {
	if n == "." {
		return "."
	}
	i, end := dns.NextLabel(n, 0)
	if end {
		return "."
	}
	return n[i:]
}

// ZoneFor returns the zone with the longest origin containing name, or nil.
func (zs *ZoneSet) ZoneFor(name string) *Zone {
	name = canon(name)
	var best *Zone
	for o, z := range zs.Zones {
		if dns.IsSubDomain(o, name) && (best == nil || len(o) > len(best.Origin)) {
			best = z
		}
	}
	return best
}

// Expect is the expected outcome of a query.
type Expect struct {
	Kind      Kind
	Rcode     int
	Answer    []dns.RR // CNAMEs followed by the final RRset; owners as in the zone (lower case)
	Final     string   // the name the chain ends at
	Wildcard  string   // the wildcard that synthesized the final answer, if any
	Cut       string   // the delegation point, for Referral
	Zone      *Zone    // zone of the final name (nil if the chain left the zones)
	OutOfZone bool     // the CNAME chain leads outside the served zones
}

// Resolve computes the expected outcome for (name, qtype) across the zones, following
// CNAMEs (RFC 6604: the rcode is the one of the last name in the chain).
func (zs *ZoneSet) Resolve(name string, qtype uint16) Expect {
	cur := canon(name)
	var chain []dns.RR
	seen := map[string]bool{}
	for {
		z := zs.ZoneFor(cur)
		if z == nil {
			return Expect{Kind: Unknown, Rcode: dns.RcodeSuccess, Answer: chain, Final: cur, OutOfZone: true}
		}
		e := z.lookup(cur, qtype)
		e.Answer = append(chain, e.Answer...)
		if e.Kind != Positive || qtype == dns.TypeCNAME || seen[cur] {
			return e
		}
		last := e.Answer[len(e.Answer)-1]
		cn, ok := last.(*dns.CNAME)
		if !ok || qtype == dns.TypeCNAME {
			return e
		}
		seen[cur] = true
		chain = e.Answer
		cur = canon(cn.Target)
	}
}

// lookup answers for one name in one zone. A positive answer that is a CNAME (for another
// qtype) ends with the CNAME RR; Resolve follows it.
func (z *Zone) lookup(name string, qtype uint16) Expect {
	e := Expect{Zone: z, Final: name, Rcode: dns.RcodeSuccess}
	// Zone cuts, top down: the highest cut above or at name wins.
	var ancestors []string
	for n := name; n != z.Origin; n = parentName(n) {
		ancestors = append(ancestors, n)
	}
	for i := len(ancestors) - 1; i >= 0; i-- {
		a := ancestors[i]
		if !z.Cuts[a] {
			continue
		}
		if a == name && qtype == dns.TypeDS { // DS lives on the parent side
			if ds := z.Data[a][dns.TypeDS]; len(ds) > 0 {
				e.Kind, e.Answer = Positive, ds
			} else {
				e.Kind = NoData
			}
			return e
		}
		e.Kind, e.Cut = Referral, a
		return e
	}
	owner := name
	if !z.Exists[name] {
		ce := parentName(name)
		for !z.Exists[ce] {
			ce = parentName(ce)
		}
		w := "*." + ce
		if !z.Exists[w] {
			e.Kind, e.Rcode = NXDomain, dns.RcodeNameError
			return e
		}
		owner, e.Wildcard = w, w
	}
	if qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG || qtype == dns.TypeANY {
		e.Kind = Unknown // the name exists; the content depends on the signer
		return e
	}
	rrs := z.Data[owner][qtype]
	if len(rrs) == 0 && qtype != dns.TypeCNAME {
		rrs = z.Data[owner][dns.TypeCNAME]
	}
	if len(rrs) == 0 {
		e.Kind = NoData
		return e
	}
	e.Kind = Positive
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = name
		e.Answer = append(e.Answer, c)
	}
	return e
}

// Names returns every existing name of the zone (owners and empty non-terminals) that is not
// at or below a zone cut, sorted.
func (z *Zone) Names() []string {
	var out []string
	for n := range z.Exists {
		if !z.BelowCut(n, true) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// BelowCut reports whether name is below a zone cut (or at one, if atCut).
func (z *Zone) BelowCut(name string, atCut bool) bool {
	name = canon(name)
	for n := name; n != z.Origin && n != "."; n = parentName(n) {
		if z.Cuts[n] && (n != name || atCut) {
			return true
		}
	}
	return false
}

// rrKey renders an RR for set comparison: lower-case owner, no TTL, rdata lower-cased except
// for TXT (whose strings are case-sensitive data).
func rrKey(rr dns.RR) string {
	c := dns.Copy(rr)
	h := c.Header()
	h.Ttl = 0
	h.Name = canon(h.Name)
	s := c.String()
	if h.Rrtype != dns.TypeTXT {
		s = strings.ToLower(s)
	}
	return s
}

// sameRRs compares two RR lists as sets (RRSIGs in got are ignored) and describes the
// difference.
func sameRRs(want, got []dns.RR) (bool, string) {
	w := map[string]bool{}
	for _, rr := range want {
		w[rrKey(rr)] = true
	}
	g := map[string]bool{}
	for _, rr := range got {
		if rr.Header().Rrtype == dns.TypeRRSIG {
			continue
		}
		g[rrKey(rr)] = true
	}
	var missing, extra []string
	for k := range w {
		if !g[k] {
			missing = append(missing, k)
		}
	}
	for k := range g {
		if !w[k] {
			extra = append(extra, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return true, ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return false, fmt.Sprintf("missing %q, unexpected %q", missing, extra)
}

// ---------------------------------------------------------------------------------------------
// Canonical order and the NSEC chain (RFC 4034 §6.1, §4.1)

// CanonicalCompare orders two names as RFC 4034 §6.1 does.
var CanonicalCompare = canonical.Compare

// NSECEntry is one link of the zone's NSEC chain.
type NSECEntry struct {
	Owner string
	Next  string
	Types []uint16 // sorted
}

// Chain returns the NSEC chain the zone must have in nsec mode: every name that owns
// authoritative RRsets or is a delegation point (not glue below a cut; not empty
// non-terminals), in canonical order, each with its types plus RRSIG and NSEC.
func (z *Zone) Chain() []NSECEntry {
	var owners []string
	for n, types := range z.Data {
		if len(types) > 0 && !z.BelowCut(n, false) {
			owners = append(owners, n)
		}
	}
	slices.SortFunc(owners, CanonicalCompare)
	out := make([]NSECEntry, len(owners))
	for i, n := range owners {
		e := NSECEntry{Owner: n, Next: owners[(i+1)%len(owners)]}
		for t := range z.Data[n] {
			e.Types = append(e.Types, t)
		}
		e.Types = append(e.Types, dns.TypeRRSIG, dns.TypeNSEC)
		slices.Sort(e.Types)
		e.Types = slices.Compact(e.Types)
		out[i] = e
	}
	return out
}

// chainIndex returns the chain by owner.
func (z *Zone) chainIndex() map[string]NSECEntry {
	z.chainOnce.Do(func() {
		z.chainByOwner = map[string]NSECEntry{}
		for _, e := range z.Chain() {
			z.chainByOwner[e.Owner] = e
		}
	})
	return z.chainByOwner
}

// wildcardFor returns the wildcard that matches name, a name that does not exist, or "".
func (z *Zone) wildcardFor(name string) string {
	name = canon(name)
	if z.Exists[name] || !dns.IsSubDomain(z.Origin, name) || name == z.Origin {
		return ""
	}
	ce := parentName(name)
	for !z.Exists[ce] && ce != z.Origin {
		ce = parentName(ce)
	}
	if w := "*." + ce; z.Exists[w] && !z.BelowCut(w, true) {
		return w
	}
	return ""
}

// CheckNSEC checks one NSEC record of a response against the zone. In nsec mode it must be
// exactly the chain's link for its owner. In minimal mode (RFC 4470 style), an NSEC owned by
// a name with RRsets must list exactly that name's types; any other owner must list at most
// RRSIG and NSEC; and no name with RRsets may lie strictly between owner and next.
func (z *Zone) CheckNSEC(n *dns.NSEC, mode string) error {
	owner := canon(n.Hdr.Name)
	next := canon(n.NextDomain)
	idx := z.chainIndex()
	if !dns.IsSubDomain(z.Origin, owner) || !dns.IsSubDomain(z.Origin, next) {
		return fmt.Errorf("NSEC %s -> %s leaves the zone %s", owner, next, z.Origin)
	}
	types := slices.Clone(n.TypeBitMap)
	slices.Sort(types)
	want, isOwner := idx[owner]
	if mode == "nsec" {
		if !isOwner {
			return fmt.Errorf("NSEC owner %s is not in the zone's NSEC chain", owner)
		}
		if CanonicalCompare(next, want.Next) != 0 {
			return fmt.Errorf("NSEC %s next %s, the chain says %s", owner, next, want.Next)
		}
		if !slices.Equal(types, want.Types) {
			return fmt.Errorf("NSEC %s types %v, the zone has %v", owner, typeNames(types), typeNames(want.Types))
		}
		return nil
	}
	if isOwner {
		if !slices.Equal(types, want.Types) {
			return fmt.Errorf("NSEC %s types %v, the zone has %v", owner, typeNames(types), typeNames(want.Types))
		}
	} else if w := z.wildcardFor(owner); mode == "compact" && w != "" {
		// A name a wildcard matches is answered as if it existed (RFC 9824 §3.3).
		if !slices.Equal(types, idx[w].Types) {
			return fmt.Errorf("NSEC at %s (matched by %s) types %v, the wildcard has %v", owner, w, typeNames(types), typeNames(idx[w].Types))
		}
	} else {
		for _, t := range types {
			if t != dns.TypeRRSIG && t != dns.TypeNSEC && !(mode == "compact" && t == 128) { // NXNAME, RFC 9824
				return fmt.Errorf("NSEC at %s (a name without RRsets) lists %s", owner, typeString(t))
			}
		}
	}
	wrap := CanonicalCompare(next, owner) <= 0 // the last link points back to the apex
	for o := range idx {
		after := CanonicalCompare(o, owner) > 0
		before := CanonicalCompare(o, next) < 0
		if (after && before) || (wrap && after) {
			return fmt.Errorf("NSEC %s -> %s covers %s, which has RRsets", owner, next, o)
		}
	}
	return nil
}

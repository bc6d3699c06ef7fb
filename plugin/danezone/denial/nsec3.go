package denial

import (
	"slices"
	"sort"
	"strings"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// hashChain is the NSEC3 chain of a snapshot (RFC 5155 §7.1): one NSEC3 per authoritative
// name and empty non-terminal (insecure delegations left out with opt-out), ordered by hash,
// built once per snapshot like the NSEC chain, so that a flood of random names costs hashing
// and a binary search, no signing.
type hashChain struct {
	mode   Mode
	z      *zone.Zone
	hashes []string          // base32hex, uppercase, ascending: the order of the owner names too
	sets   []*zone.RRset     // parallel to hashes
	byKey  map[string]string // the hash of each name (by zone.Key), for the next snapshot
	hashProofs
}

// Hash is the NSEC3 hash of name under mode's parameters, in base32hex, uppercase.
func (m Mode) Hash(name string) string {
	return dns.HashName(name, dns.SHA1, m.Iterations, m.Salt)
}

// nsec3Owner is the owner name of the NSEC3 of hash in zone origin.
func nsec3Owner(hash, origin string) string { return join(strings.ToLower(hash), origin) }

// Bitmap3 is the NSEC3 type bitmap of node n (RFC 5155 §3.2.1): its types, RRSIG where it
// owns a signed RRset; at a delegation point NS, and DS with RRSIG when it has one; nothing
// for an empty non-terminal.
func Bitmap3(n *zone.Node) []uint16 {
	var types []uint16
	signed := false
	for _, s := range n.RRsets() {
		t := s.Type
		if n.Cut && t != dns.TypeNS && t != dns.TypeDS {
			continue
		}
		types = append(types, t)
		signed = signed || n.Signed(t)
	}
	if signed {
		types = append(types, dns.TypeRRSIG)
	}
	slices.Sort(types)
	return slices.Compact(types)
}

// nsec3Set is the NSEC3 RRset at hash with next hashed owner next.
func (m Mode) nsec3Set(origin, hash, next string, ttl uint32, types []uint16) *zone.RRset {
	owner := nsec3Owner(hash, origin)
	rr := &dns.NSEC3{
		Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: ttl},
		Hash:       dns.SHA1,
		Iterations: m.Iterations,
		SaltLength: uint8(len(m.Salt) / 2),
		Salt:       m.Salt,
		HashLength: 20,
		NextDomain: next,
		TypeBitMap: types,
	}
	if m.OptOut {
		rr.Flags = 1
	}
	return &zone.RRset{Name: owner, Type: dns.TypeNSEC3, TTL: ttl, RRs: []dns.RR{rr}}
}

// inChain says whether n has an NSEC3 of its own: every authoritative name and empty
// non-terminal, but, with opt-out, not a delegation without DS (RFC 5155 §6).
func (m Mode) inChain(n *zone.Node) bool {
	return !(m.OptOut && n.Cut && n.Set(dns.TypeDS) == nil)
}

func newHashChain(mode Mode, z *zone.Zone, prev *hashChain) *hashChain {
	type named struct {
		hash string
		node *zone.Node
	}
	// A change to a zone keeps most names: their hashes are the previous snapshot's (with
	// many iterations, hashing the whole zone again would take seconds per change).
	var old map[string]string
	if prev != nil && prev.mode == mode && prev.z.Origin == z.Origin {
		old = prev.byKey
	}
	var all []named
	byKey := make(map[string]string, len(z.Chain())+len(z.EmptyNonTerminals()))
	for _, list := range [][]*zone.Node{z.Chain(), z.EmptyNonTerminals()} {
		for _, n := range list {
			if !mode.inChain(n) {
				continue
			}
			h, ok := old[n.Key]
			if !ok {
				h = mode.Hash(n.Name)
			}
			byKey[n.Key] = h
			all = append(all, named{h, n})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].hash < all[j].hash })
	all = slices.CompactFunc(all, func(a, b named) bool { return a.hash == b.hash }) // a SHA-1 collision: one record
	c := &hashChain{mode: mode, z: z, hashes: make([]string, len(all)), sets: make([]*zone.RRset, len(all)), byKey: byKey}
	c.hashProofs = hashProofs{origin: z.Origin, match: c.match, cover: c.cover}
	if prev != nil && (prev.mode != mode || prev.z.NegTTL != z.NegTTL || prev.z.Origin != z.Origin) {
		prev = nil
	}
	j := 0
	for i, e := range all {
		next := all[(i+1)%len(all)].hash
		s := mode.nsec3Set(z.Origin, e.hash, next, z.NegTTL, Bitmap3(e.node))
		if prev != nil {
			for j < len(prev.hashes) && prev.hashes[j] < e.hash {
				j++
			}
			if j < len(prev.hashes) && prev.hashes[j] == e.hash && zone.EqualSets(prev.sets[j], s) {
				s = prev.sets[j]
			}
		}
		c.hashes[i], c.sets[i] = e.hash, s
	}
	return c
}

// match returns the NSEC3 of name, or nil when name has none.
func (c *hashChain) match(name string) *zone.RRset {
	h := c.mode.Hash(name)
	if i, ok := slices.BinarySearch(c.hashes, h); ok {
		return c.sets[i]
	}
	return nil
}

// cover returns the NSEC3 whose span covers the hash of name, which has no NSEC3 of its own.
func (c *hashChain) cover(name string) *zone.RRset {
	i, _ := slices.BinarySearch(c.hashes, c.mode.Hash(name))
	if i == 0 {
		i = len(c.hashes)
	}
	return c.sets[i-1]
}

// encloserProof is the closest provable encloser proof for name (RFC 5155 §7.2.1): the NSEC3
// matching its closest ancestor that has one, and the one covering the next closer name.
func encloserProof(name, origin string, match, cover func(string) *zone.RRset) []*zone.RRset {
	next := name
	for ce := parentName(name); ; ce = parentName(ce) {
		if m := match(ce); m != nil || ce == origin {
			return []*zone.RRset{m, cover(next)}
		}
		next = ce
	}
}

func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// hashProofs makes the proofs of RFC 5155 §7.2 from an NSEC3 maker: match returns the NSEC3
// of a name (nil when it has none: a delegation left out by opt-out), cover the NSEC3 covering
// a name that has none.
type hashProofs struct {
	origin       string
	match, cover func(string) *zone.RRset
}

func (p hashProofs) NoData(n *zone.Node) []*zone.RRset {
	if m := p.match(n.Name); m != nil {
		return []*zone.RRset{m}
	}
	// A delegation without DS left out by opt-out: the closest provable encloser, and the
	// opt-out NSEC3 covering the next closer name (RFC 5155 §7.2.4).
	return encloserProof(n.Name, p.origin, p.match, p.cover)
}

func (p hashProofs) NXDomain(encloser, next string) []*zone.RRset {
	return []*zone.RRset{p.match(encloser), p.cover(next), p.cover(join("*", encloser))}
}

func (p hashProofs) Wildcard(_, next string) []*zone.RRset {
	return []*zone.RRset{p.cover(next)}
}

func (p hashProofs) WildcardNoData(w *zone.Node, encloser, next string) []*zone.RRset {
	return []*zone.RRset{p.match(encloser), p.cover(next), p.match(w.Name)}
}

func (p hashProofs) Own(*zone.Node) *zone.RRset { return nil }

// Sets returns the chain's NSEC3 RRsets, in canonical order of their owners.
func (c *hashChain) Sets() []*zone.RRset { return c.sets }

// Made calls fn with every NSEC3 RRset of the chain: they are made with it.
func (c *hashChain) Made(fn func(*zone.RRset)) {
	for _, s := range c.sets {
		fn(s)
	}
}

// NSEC3PARAM is the NSEC3PARAM record of mode at origin (RFC 5155 §4), with TTL 0 as BIND
// gives it: it tells secondaries and signers the parameters, validators never use it.
func (m Mode) NSEC3PARAM(origin string) *dns.NSEC3PARAM {
	p := &dns.NSEC3PARAM{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET},
		Hash: dns.SHA1, Iterations: m.Iterations, SaltLength: uint8(len(m.Salt) / 2), Salt: m.Salt}
	return p
}

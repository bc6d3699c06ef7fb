package denial

import (
	"bytes"
	"crypto/sha1"
	"encoding/base32"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// hashChain is the NSEC3 chain of a snapshot (RFC 5155 §7.1): one NSEC3 per authoritative
// name and empty non-terminal (insecure delegations left out with opt-out), ordered by hash,
// built once per snapshot like the NSEC chain, so that a flood of random names costs hashing
// and a binary search, no signing. It holds the raw hashes; each record is made when first
// asked for (a zone of 10^5 names would otherwise hold 10^5 NSEC3 RRsets from the start).
type hashChain struct {
	mode Mode
	salt []byte
	z    *zone.Zone
	// raw holds the hash of each name of z.Chain(), then of z.EmptyNonTerminals(): in
	// canonical order, which pairs it with the next snapshot's. Zero for names without an
	// NSEC3 (opt-out).
	raw   [][sha1.Size]byte
	order []int32 // the positions in raw of the chain, ascending by hash
	sets  records // parallel to order
	hashProofs
}

// Hash is the NSEC3 hash of name under mode's parameters, in base32hex, uppercase.
func (m Mode) Hash(name string) string {
	salt, _ := hex.DecodeString(m.Salt)
	h := rawHash(name, m.Iterations, salt)
	return b32.EncodeToString(h[:])
}

// nsec3Owner is the owner name of the NSEC3 of hash in zone origin.
func nsec3Owner(hash, origin string) string { return join(strings.ToLower(hash), origin) }

// Bitmap3 is the NSEC3 type bitmap of node n (RFC 5155 §3.2.1): its types, RRSIG where it
// owns a signed RRset; at a delegation point NS, and DS with RRSIG when it has one; nothing
// for an empty non-terminal.
func Bitmap3(n *zone.Node) []uint16 { return appendBitmap3(nil, n) }

// appendBitmap3 appends Bitmap3(n) to dst.
func appendBitmap3(dst []uint16, n *zone.Node) []uint16 {
	start := len(dst)
	types := dst
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
	slices.Sort(types[start:])
	return types[:start+len(slices.Compact(types[start:]))]
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

// rawHash is the NSEC3 hash of name (RFC 5155 §5): SHA-1 over the canonical wire form of
// the name and the salt, then over the hash and the salt, iterations times more.
func rawHash(name string, iterations uint16, salt []byte) [sha1.Size]byte {
	var buf [256 + 255]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), buf[:], 0, nil, false)
	if err != nil {
		return [sha1.Size]byte{}
	}
	for i := range n { // label lengths are below 64, so no octet of them is a letter
		if c := buf[i]; c >= 'A' && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	h := sha1.Sum(append(buf[:n], salt...))
	for range iterations {
		h = sha1.Sum(append(append(buf[:0], h[:]...), salt...))
	}
	return h
}

// b32 is base32hex (RFC 4648 §7) without padding, as NSEC3 spells hashes (RFC 5155 §3.3).
var b32 = base32.HexEncoding.WithPadding(base32.NoPadding)

func newHashChain(mode Mode, z *zone.Zone, prev *hashChain) *hashChain {
	salt, _ := hex.DecodeString(mode.Salt)
	chain, ents := z.Chain(), z.EmptyNonTerminals()
	c := &hashChain{mode: mode, salt: salt, z: z, raw: make([][sha1.Size]byte, len(chain)+len(ents))}
	c.hashProofs = hashProofs{origin: z.Origin, match: c.match, cover: c.cover}
	if prev != nil && (prev.mode != mode || prev.z.Origin != z.Origin) {
		prev = nil
	}
	// A change to a zone keeps most names: their hashes are the previous snapshot's (with
	// many iterations, hashing the whole zone again would take seconds per change). Both
	// lists are in canonical order: one walk pairs them.
	var zero [sha1.Size]byte
	var prevLists [2][]*zone.Node
	var prevRaw [2][][sha1.Size]byte
	if prev != nil {
		pc := prev.z.Chain()
		prevLists = [2][]*zone.Node{pc, prev.z.EmptyNonTerminals()}
		prevRaw = [2][][sha1.Size]byte{prev.raw[:len(pc)], prev.raw[len(pc):]}
	}
	c.order = make([]int32, 0, len(c.raw))
	base := 0
	for l, list := range [2][]*zone.Node{chain, ents} {
		old, j := prevLists[l], 0
		for i, n := range list {
			if !mode.inChain(n) {
				continue
			}
			for j < len(old) && old[j].Key < n.Key {
				j++
			}
			if j < len(old) && old[j].Key == n.Key && prevRaw[l][j] != zero {
				c.raw[base+i] = prevRaw[l][j]
			} else {
				c.raw[base+i] = rawHash(n.Name, mode.Iterations, salt)
			}
			c.order = append(c.order, int32(base+i))
		}
		base += len(list)
	}
	slices.SortFunc(c.order, func(a, b int32) int { return bytes.Compare(c.raw[a][:], c.raw[b][:]) })
	c.order = slices.CompactFunc(c.order, func(a, b int32) bool { return c.raw[a] == c.raw[b] }) // a SHA-1 collision: one record
	c.sets = make(records, len(c.order))
	if prev == nil || prev.z.NegTTL != z.NegTTL {
		return c
	}
	// The records prev made that are still the same keep their identity, and with it their
	// signatures: same hash, same next hash, same types.
	var bm [16]uint16
	j := 0
	for i, p := range c.order {
		h := c.raw[p]
		for j < len(prev.order) && bytes.Compare(prev.raw[prev.order[j]][:], h[:]) < 0 {
			j++
		}
		if j == len(prev.order) || prev.raw[prev.order[j]] != h {
			continue
		}
		s := prev.sets[j].Load()
		if s == nil {
			continue
		}
		rr := s.RRs[0].(*dns.NSEC3)
		if rr.NextDomain == c.hashAt((i+1)%len(c.order)) && slices.Equal(rr.TypeBitMap, appendBitmap3(bm[:0], c.node(p))) {
			c.sets[i].Store(s)
		}
	}
	return c
}

// node returns the name at position p of raw.
func (c *hashChain) node(p int32) *zone.Node {
	if chain := c.z.Chain(); int(p) < len(chain) {
		return chain[p]
	}
	return c.z.EmptyNonTerminals()[int(p)-len(c.z.Chain())]
}

// hashAt returns the i-th hash of the chain in base32hex, uppercase.
func (c *hashChain) hashAt(i int) string { return b32.EncodeToString(c.raw[c.order[i]][:]) }

// at returns the i-th NSEC3 RRset of the chain, made once: every caller gets the same RRset,
// which holds its signatures.
func (c *hashChain) at(i int) *zone.RRset {
	if s := c.sets[i].Load(); s != nil {
		return s
	}
	return c.sets.keep(i, c.mode.nsec3Set(c.z.Origin, c.hashAt(i), c.hashAt((i+1)%len(c.order)), c.z.NegTTL, Bitmap3(c.node(c.order[i]))))
}

// search returns the position in the chain of the first hash >= that of name, and whether it
// is that hash.
func (c *hashChain) search(name string) (int, bool) {
	h := rawHash(name, c.mode.Iterations, c.salt)
	return slices.BinarySearchFunc(c.order, h, func(p int32, h [sha1.Size]byte) int { return bytes.Compare(c.raw[p][:], h[:]) })
}

// match returns the NSEC3 of name, or nil when name has none.
func (c *hashChain) match(name string) *zone.RRset {
	if i, ok := c.search(name); ok {
		return c.at(i)
	}
	return nil
}

// cover returns the NSEC3 whose span covers the hash of name, which has no NSEC3 of its own.
func (c *hashChain) cover(name string) *zone.RRset {
	i, _ := c.search(name)
	if i == 0 {
		i = len(c.order)
	}
	return c.at(i - 1)
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

func (p hashProofs) NXDomain(encloser, next string) [3]*zone.RRset {
	return [3]*zone.RRset{p.match(encloser), p.cover(next), p.cover(join("*", encloser))}
}

func (p hashProofs) Wildcard(_, next string) []*zone.RRset {
	return []*zone.RRset{p.cover(next)}
}

func (p hashProofs) WildcardNoData(w *zone.Node, encloser, next string) []*zone.RRset {
	return []*zone.RRset{p.match(encloser), p.cover(next), p.match(w.Name)}
}

func (p hashProofs) Own(*zone.Node) *zone.RRset { return nil }

// Sets returns the chain's NSEC3 RRsets, in canonical order of their owners, all made.
func (c *hashChain) Sets() []*zone.RRset { return c.sets.all(c.at) }

// Made calls fn with the NSEC3 RRsets made so far.
func (c *hashChain) Made(fn func(*zone.RRset)) { c.sets.made(fn) }

// NSEC3PARAM is the NSEC3PARAM record of mode at origin (RFC 5155 §4), with TTL 0 as BIND
// gives it: it tells secondaries and signers the parameters, validators never use it.
func (m Mode) NSEC3PARAM(origin string) *dns.NSEC3PARAM {
	p := &dns.NSEC3PARAM{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET},
		Hash: dns.SHA1, Iterations: m.Iterations, SaltLength: uint8(len(m.Salt) / 2), Salt: m.Salt}
	return p
}

// Package denial owns authenticated denial of existence: given a zone snapshot, the records
// that prove a name or type absent. One implementation per mode: the precomputed NSEC chain
// (nsec), minimally covering NSEC records made per answer (minimal, RFC 4470), the precomputed
// NSEC3 chain (nsec3, RFC 5155), minimally covering NSEC3 records made per answer
// (nsec3-narrow) and compact denial of existence (compact, RFC 9824).
package denial

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// Mode is a denial mode with its parameters.
type Mode struct {
	Kind string // nsec, minimal, nsec3, nsec3-narrow, compact
	// NSEC3 (RFC 5155 §3.1): extra hash iterations, the salt (hex, "" for none), and opt-out
	// (insecure delegations left out of the chain, RFC 5155 §6).
	Iterations uint16
	Salt       string
	OptOut     bool
}

// The modes with their defaults (RFC 9276: no extra iterations, no salt).
var (
	NSEC        = Mode{Kind: "nsec"}
	Minimal     = Mode{Kind: "minimal"}
	NSEC3       = Mode{Kind: "nsec3"}
	NSEC3Narrow = Mode{Kind: "nsec3-narrow"}
	Compacted   = Mode{Kind: "compact"}
)

var kinds = []Mode{NSEC, Minimal, NSEC3, NSEC3Narrow, Compacted}

// Hashed says whether the mode denies with NSEC3.
func (m Mode) Hashed() bool { return m.Kind == NSEC3.Kind || m.Kind == NSEC3Narrow.Kind }

// String is the mode as the denial directive spells it.
func (m Mode) String() string {
	if !m.Hashed() {
		return m.Kind
	}
	parts := []string{m.Kind}
	if m.Iterations != 0 {
		parts = append(parts, "iterations", strconv.Itoa(int(m.Iterations)))
	}
	if m.Salt != "" {
		parts = append(parts, "salt", m.Salt)
	}
	if m.OptOut {
		parts = append(parts, "optout")
	}
	return strings.Join(parts, " ")
}

// ForTransfer is the mode whose chain a secondary receives: the per-answer modes' chains.
func (m Mode) ForTransfer() Mode {
	switch m.Kind {
	case Minimal.Kind, Compacted.Kind:
		return NSEC
	case NSEC3Narrow.Kind:
		m.Kind = NSEC3.Kind
	}
	return m
}

// MaxIterations bounds the extra NSEC3 iterations: validators treat more than 100 as insecure
// or bogus (RFC 9276 §3.2; Unbound and BIND from 150), so more is no protection, only cost.
const MaxIterations = 100

// ParseMode parses a mode name followed by its options (nsec3 modes: `iterations N`,
// `salt HEX|-`, `optout`); it returns the arguments left (zones).
func ParseMode(args []string) (Mode, []string, error) {
	if len(args) == 0 {
		return Mode{}, nil, fmt.Errorf("denial needs a mode")
	}
	var m Mode
	for _, k := range kinds {
		if k.Kind == args[0] {
			m = k
		}
	}
	if m.Kind == "" {
		var names []string
		for _, k := range kinds {
			names = append(names, k.Kind)
		}
		return Mode{}, nil, fmt.Errorf("unknown denial mode %q: valid are %s", args[0], strings.Join(names, ", "))
	}
	rest := args[1:]
	for len(rest) > 0 {
		switch rest[0] {
		case "iterations", "salt", "optout":
			if !m.Hashed() {
				return Mode{}, nil, fmt.Errorf("%s is an option of the nsec3 modes, not of %s", rest[0], m.Kind)
			}
		default:
			return m, rest, nil
		}
		switch rest[0] {
		case "optout":
			if m.Kind == NSEC3Narrow.Kind {
				return Mode{}, nil, fmt.Errorf("optout is for nsec3: nsec3-narrow makes a record for every name asked")
			}
			m.OptOut, rest = true, rest[1:]
			continue
		}
		if len(rest) < 2 {
			return Mode{}, nil, fmt.Errorf("%s needs a value", rest[0])
		}
		switch rest[0] {
		case "iterations":
			n, err := strconv.Atoi(rest[1])
			if err != nil || n < 0 || n > MaxIterations {
				return Mode{}, nil, fmt.Errorf("iterations %q: want 0 to %d (RFC 9276: 0)", rest[1], MaxIterations)
			}
			m.Iterations = uint16(n)
		case "salt":
			salt := rest[1]
			if salt == "-" {
				salt = ""
			}
			if b, err := hex.DecodeString(salt); err != nil || len(b) > 255 {
				return Mode{}, nil, fmt.Errorf("salt %q: want hex of at most 255 octets, or - for none", rest[1])
			}
			m.Salt = strings.ToUpper(salt)
		}
		rest = rest[2:]
	}
	return m, nil, nil
}

// Denier makes the proofs for one zone snapshot: the NSEC or NSEC3 RRsets of the authority
// section, each once.
type Denier interface {
	// NoData proves that the existing name n (an empty non-terminal too) has no RRset of the
	// type asked; at a delegation point, that it has no DS.
	NoData(n *zone.Node) []*zone.RRset
	// NXDomain proves that a name does not exist: encloser is its closest encloser, next
	// the next closer name (RFC 5155 §7.2.2), and no wildcard below encloser exists. Unused
	// places are nil: an array, because a flood of random names asks for one per query.
	NXDomain(encloser, next string) [3]*zone.RRset
	// Wildcard proves, for an answer made from the wildcard below encloser, that next, the
	// next closer name, does not exist (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6).
	Wildcard(encloser, next string) []*zone.RRset
	// WildcardNoData proves that the wildcard w, which matched, has no RRset of the type
	// asked, and that next does not exist (RFC 5155 §7.2.5).
	WildcardNoData(w *zone.Node, encloser, next string) []*zone.RRset
	// Own returns the NSEC RRset owned by n (for NSEC and RRSIG questions), or nil: an empty
	// non-terminal in nsec mode, every name in the nsec3 modes.
	Own(n *zone.Node) *zone.RRset
}

// New returns the denier of mode for snapshot z. prev, if given, is the denier of the
// snapshot z replaces: unchanged RRsets keep their signatures.
func New(mode Mode, z *zone.Zone, prev Denier) Denier {
	switch mode.Kind {
	case Minimal.Kind:
		return nsecProofs{&minimal{z: z}}
	case NSEC3.Kind:
		p, _ := prev.(*hashChain)
		return newHashChain(mode, z, p)
	case NSEC3Narrow.Kind:
		return newNarrow(mode, z)
	case Compacted.Kind:
		return newCompact(z)
	}
	var p *chain
	if pp, ok := prev.(nsecProofs); ok {
		p, _ = pp.nsecs.(*chain)
	}
	return nsecProofs{newChain(z, p)}
}

// Chain is a denier that holds a whole chain, as a transfer carries it.
type Chain interface {
	Denier
	Sets() []*zone.RRset // in canonical order of their owners
}

// TransferChain is the chain a secondary receives for snapshot z denied by d: d's own when
// it holds one, else (the per-answer modes, whose records a secondary cannot make) the chain
// of its mode's transfer mode, built from prev's where it can.
func TransferChain(d Denier, z *zone.Zone, prev Chain) Chain {
	switch d := d.(type) {
	case *hashChain:
		return d
	case *narrow:
		p, _ := prev.(*hashChain)
		return newHashChain(d.mode.ForTransfer(), z, p)
	case nsecProofs:
		if _, ok := d.nsecs.(*chain); ok {
			return d
		}
	}
	var p *chain
	if pp, ok := prev.(nsecProofs); ok {
		p, _ = pp.nsecs.(*chain)
	}
	return nsecProofs{newChain(z, p)}
}

// nsecs is what the NSEC modes make: the NSEC matching an existing name, and one covering a
// name that does not exist.
type nsecs interface {
	// Match returns the NSEC RRset owned by the existing node n, or nil if n owns none (an
	// empty non-terminal in nsec mode: Cover proves it then).
	Match(n *zone.Node) *zone.RRset
	// Cover returns an NSEC RRset whose owner sorts before name and whose next name sorts
	// after it: proof that name, which must not exist, does not exist.
	Cover(name string) *zone.RRset
}

// nsecProofs makes the proofs of RFC 4035 §3.1.3 from an NSEC maker.
type nsecProofs struct{ nsecs }

func (p nsecProofs) NoData(n *zone.Node) []*zone.RRset {
	if m := p.Match(n); m != nil {
		return []*zone.RRset{m}
	}
	return []*zone.RRset{p.Cover(n.Name)}
}

func (p nsecProofs) NXDomain(encloser, next string) [3]*zone.RRset {
	// Both from one key, in a flood of random names the work of every answer: the encloser is
	// next's parent (zone.Result), so next says it all.
	if c, ok := p.nsecs.(*chain); ok {
		i, j := c.z.NXDomainCovers(next)
		return [3]*zone.RRset{c.at(i), c.at(j)}
	}
	return [3]*zone.RRset{p.Cover(next), p.Cover(join("*", encloser))}
}

// ByIndex is the denier of nsec mode, whose NXDOMAIN proofs are records of its chain.
type ByIndex interface {
	// NXDomainAt returns NXDomain's records for a name whose covers are at positions i and
	// j of the zone's chain (zone.NXDomainIndex), and false when the denier keeps no chain
	// of the zone's names (minimal mode).
	NXDomainAt(i, j int) ([3]*zone.RRset, bool)
}

func (p nsecProofs) NXDomainAt(i, j int) ([3]*zone.RRset, bool) {
	if c, ok := p.nsecs.(*chain); ok {
		return [3]*zone.RRset{c.at(i), c.at(j)}, true
	}
	return [3]*zone.RRset{}, false
}

func (p nsecProofs) Wildcard(_, next string) []*zone.RRset {
	return []*zone.RRset{p.Cover(next)}
}

func (p nsecProofs) WildcardNoData(w *zone.Node, encloser, next string) []*zone.RRset {
	return append(p.NoData(w), p.Cover(next))
}

func (p nsecProofs) Own(n *zone.Node) *zone.RRset { return p.Match(n) }

// Sets returns the chain's NSEC RRsets in nsec mode (nil otherwise), all made.
func (p nsecProofs) Sets() []*zone.RRset {
	if c, ok := p.nsecs.(*chain); ok {
		return c.sets.all(c.at)
	}
	return nil
}

// Made calls fn with the proof RRsets made so far that are kept with the snapshot (those of
// the chain, in nsec mode; the other modes' are made per answer).
func (p nsecProofs) Made(fn func(*zone.RRset)) {
	if c, ok := p.nsecs.(*chain); ok {
		c.sets.made(fn)
	}
}

// Bitmap returns the NSEC type bitmap of node n: its authoritative types plus RRSIG and NSEC.
// At a delegation point only NS and DS are authoritative (RFC 4035 §2.3).
func Bitmap(n *zone.Node) []uint16 {
	return appendBitmap(make([]uint16, 0, len(n.RRsets())+2), n)
}

// appendBitmap appends Bitmap(n) to dst.
func appendBitmap(dst []uint16, n *zone.Node) []uint16 {
	start := len(dst)
	for _, s := range n.RRsets() {
		t := s.Type
		if n.Cut && t != dns.TypeNS && t != dns.TypeDS {
			continue
		}
		dst = append(dst, t)
	}
	dst = append(dst, dns.TypeRRSIG, dns.TypeNSEC)
	types := dst[start:]
	slices.Sort(types)
	return dst[:start+len(slices.Compact(types))]
}

func nsecSet(owner, next string, ttl uint32, types []uint16) *zone.RRset {
	rr := &dns.NSEC{
		Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: next,
		TypeBitMap: types,
	}
	return &zone.RRset{Name: owner, Type: dns.TypeNSEC, TTL: ttl, RRs: []dns.RR{rr}}
}

// chain is the NSEC chain of the zone. Its records are made when first asked for: a zone of
// 10^5 names would otherwise hold 10^5 NSEC RRsets from the start (14 MB), of which a flood
// of random names asks for some, and answers of existing names for few.
type chain struct {
	z    *zone.Zone
	sets records // parallel to z.Chain()
}

func newChain(z *zone.Zone, prev *chain) *chain {
	nodes := z.Chain()
	c := &chain{z: z, sets: make(records, len(nodes))}
	if prev == nil || prev.z.NegTTL != z.NegTTL {
		return c
	}
	// The records prev made that are still the same keep their identity, and with it their
	// signatures. Both chains are in canonical order, so one walk pairs them.
	old := prev.z.Chain()
	var buf [16]uint16
	j := 0
	for i, n := range nodes {
		for j < len(old) && old[j].Key < n.Key {
			j++
		}
		if j == len(old) || old[j].Key != n.Key {
			continue
		}
		s := prev.sets[j].Load()
		if s == nil {
			continue
		}
		rr := s.RRs[0].(*dns.NSEC)
		if rr.NextDomain == nodes[(i+1)%len(nodes)].Name && slices.Equal(rr.TypeBitMap, appendBitmap(buf[:0], n)) {
			c.sets[i].Store(s)
		}
	}
	return c
}

// at returns the NSEC RRset of the i-th name of the chain, made once: every caller gets the
// same RRset, which holds its signatures.
func (c *chain) at(i int) *zone.RRset {
	if s := c.sets[i].Load(); s != nil {
		return s
	}
	nodes := c.z.Chain()
	n := nodes[i]
	return c.sets.keep(i, nsecSet(n.Name, nodes[(i+1)%len(nodes)].Name, c.z.NegTTL, Bitmap(n)))
}

func (c *chain) Match(n *zone.Node) *zone.RRset {
	if i := c.z.Index(n); i >= 0 {
		return c.at(i)
	}
	return nil
}

func (c *chain) Cover(name string) *zone.RRset {
	return c.at(c.z.PredecessorIndex(name))
}

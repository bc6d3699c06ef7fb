// Package denial owns authenticated denial of existence: given a zone snapshot, the NSEC
// records that prove a name or type absent. One implementation per mode: the precomputed
// NSEC chain (nsec) and minimally covering NSEC records made per answer (minimal, RFC 4470).
// NSEC3 and compact denial (RFC 9824) fit the same interface.
package denial

import (
	"fmt"
	"slices"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// Mode names a denial implementation.
type Mode string

// The modes.
const (
	NSEC    Mode = "nsec"
	Minimal Mode = "minimal"
)

// ParseMode checks a mode name.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case NSEC, Minimal:
		return Mode(s), nil
	}
	return "", fmt.Errorf("unknown denial mode %q: valid are nsec, minimal", s)
}

// Denier makes the proofs for one zone snapshot.
type Denier interface {
	// Match returns the NSEC RRset owned by the existing node n, or nil if n owns none (an
	// empty non-terminal in nsec mode: Cover proves it then).
	Match(n *zone.Node) *zone.RRset
	// Cover returns an NSEC RRset whose owner sorts before name and whose next name sorts
	// after it: proof that name, which must not exist, does not exist.
	Cover(name string) *zone.RRset
}

// New returns the denier of mode for snapshot z. prev, if given, is the denier of the
// snapshot z replaces: unchanged NSEC RRsets keep their signatures.
func New(mode Mode, z *zone.Zone, prev Denier) Denier {
	if mode == Minimal {
		return &minimal{z: z, cache: map[string]*zone.RRset{}}
	}
	p, _ := prev.(*chain)
	return newChain(z, p)
}

// Bitmap returns the NSEC type bitmap of node n: its authoritative types plus RRSIG and NSEC.
// At a delegation point only NS and DS are authoritative (RFC 4035 §2.3).
func Bitmap(n *zone.Node) []uint16 {
	types := make([]uint16, 0, len(n.Types)+2)
	for _, t := range n.Types {
		if n.Cut && t != dns.TypeNS && t != dns.TypeDS {
			continue
		}
		types = append(types, t)
	}
	types = append(types, dns.TypeRRSIG, dns.TypeNSEC)
	slices.Sort(types)
	return slices.Compact(types)
}

func nsecSet(owner, next string, ttl uint32, types []uint16) *zone.RRset {
	rr := &dns.NSEC{
		Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: next,
		TypeBitMap: types,
	}
	return &zone.RRset{Name: owner, Type: dns.TypeNSEC, TTL: ttl, RRs: []dns.RR{rr}}
}

// chain is the NSEC chain of the zone, built once per snapshot.
type chain struct {
	z    *zone.Zone
	sets []*zone.RRset // parallel to z.Chain()
}

func newChain(z *zone.Zone, prev *chain) *chain {
	nodes := z.Chain()
	c := &chain{z: z, sets: make([]*zone.RRset, len(nodes))}
	var old []*zone.Node // prev's chain: both are in canonical order, so one walk pairs them
	if prev != nil && prev.z.NegTTL == z.NegTTL {
		old = prev.z.Chain()
	}
	j := 0
	for i, n := range nodes {
		next := nodes[(i+1)%len(nodes)].Name
		s := nsecSet(n.Name, next, z.NegTTL, Bitmap(n))
		for j < len(old) && old[j].Key < n.Key {
			j++
		}
		if j < len(old) && old[j].Key == n.Key && zone.EqualSets(prev.sets[j], s) {
			s = prev.sets[j]
		}
		c.sets[i] = s
	}
	return c
}

func (c *chain) Match(n *zone.Node) *zone.RRset {
	if i := c.z.Index(n); i >= 0 {
		return c.sets[i]
	}
	return nil
}

func (c *chain) Cover(name string) *zone.RRset {
	prev, _ := c.z.Predecessor(name)
	return c.sets[c.z.Index(prev)]
}

// Sets returns the chain's NSEC RRsets.
func (c *chain) Sets() []*zone.RRset { return c.sets }

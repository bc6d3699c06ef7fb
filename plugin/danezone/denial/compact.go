package denial

import (
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// TypeNXNAME is the meta-type that marks a compact answer's NSEC as denying a name that
// does not exist (RFC 9824 §3.3, IANA: 128).
const TypeNXNAME uint16 = 128

// compact is compact denial of existence (RFC 9824): a name that does not exist is answered
// NOERROR with one NSEC owned by the name itself, from the name to its immediate successor,
// listing RRSIG, NSEC and NXNAME, made and signed per answer; a name that exists but lacks
// the type, or an empty non-terminal, gets the same shape of NSEC with its real types
// (nothing but RRSIG and NSEC for an empty non-terminal), so the two stay told apart.
// A name a wildcard matched is answered as if it existed (RFC 9824 §3.3): the synthesised
// RRset signed at the name (by the answer code), or an NSEC at the name with the wildcard's
// types.
type compact struct {
	nsecProofs
	m *minimal
}

func newCompact(z *zone.Zone) compact {
	m := &minimal{z: z}
	return compact{nsecProofs{m}, m}
}

// NXName returns the NSEC denying that qname, which does not exist, exists (RFC 9824 §3.1).
func (c compact) NXName(qname string) *zone.RRset {
	name := zone.Canonical(qname)
	set := nsecSet(name, successor(name), c.m.z.NegTTL, []uint16{dns.TypeNSEC, dns.TypeRRSIG, TypeNXNAME})
	set.Ephemeral = true
	return set
}

// NoDataAt returns the NSEC at qname, a name a wildcard matched, listing the wildcard n's
// types (RFC 9824 §3.3: the name is answered as if it existed).
func (c compact) NoDataAt(qname string, n *zone.Node) *zone.RRset {
	name := zone.Canonical(qname)
	set := nsecSet(name, successor(name), c.m.z.NegTTL, Bitmap(n))
	set.Ephemeral = true
	return set
}

// NoData is the NSEC at n; at a delegation point (a referral, or its DS denied) the next name
// is the owner's first label with a zero octet appended, which stays outside the child zone
// (RFC 9824 §3.4), or, where that does not fit, the label's successor among its siblings.
func (c compact) NoData(n *zone.Node) []*zone.RRset {
	if !n.Cut {
		return c.nsecProofs.NoData(n)
	}
	return []*zone.RRset{c.cut(n)}
}

// Own is the NSEC owned by n: at a delegation point the one of NoData, never a second one.
func (c compact) Own(n *zone.Node) *zone.RRset {
	if n.Cut {
		return c.cut(n)
	}
	return c.nsecProofs.Own(n)
}

func (c compact) cut(n *zone.Node) *zone.RRset {
	return c.m.cached("cut:"+n.Name, func() *zone.RRset {
		return nsecSet(n.Name, siblingSuccessor(n.Name), c.m.z.NegTTL, Bitmap(n))
	})
}

// successor is the name right after name in canonical order (RFC 4471 §3.1.2): name with a
// zero label in front while that fits 255 octets, else its sibling successor.
func successor(name string) string {
	if c := join("\\000", name); wireLen(c) <= 255 {
		return c
	}
	return siblingSuccessor(name)
}

// siblingSuccessor is the first name after name and all its descendants (RFC 4471 §3.1.2
// without the zero label in front): the first label with a zero octet appended, or, where
// that does not fit, its last octet incremented (0xff octets dropped first, a label left
// empty giving way to its parent's sibling successor).
func siblingSuccessor(name string) string {
	for name != "." {
		label, parent := splitFirst(name)
		b := unescape(label)
		for i, c := range b { // canonical form: the order compares letters lower case
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		if len(b) < 63 && wireLen(name) < 255 {
			return join(escape(append(b, 0)), parent)
		}
		for len(b) > 0 {
			last := b[len(b)-1]
			if last == 0xff {
				b = b[:len(b)-1]
				continue
			}
			last++
			if last >= 'A' && last <= 'Z' { // no upper case octet sorts there: the next is '['
				last = 'Z' + 1
			}
			b[len(b)-1] = last
			return join(escape(b), parent)
		}
		name = parent
	}
	return name
}

// Compact is what a compact denier adds: the NSEC that stands for NXDOMAIN, and the one at a
// name a wildcard matched.
type Compact interface {
	NXName(qname string) *zone.RRset
	NoDataAt(qname string, wildcard *zone.Node) *zone.RRset
}

var _ Compact = compact{}

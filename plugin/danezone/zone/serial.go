package zone

import (
	"slices"

	"github.com/miekg/dns"
)

// Signed reports whether the RRset of type t at n is signed: authoritative data only. Below a
// delegation point everything is glue, and at one only the DS is the parent's own; the NS
// there belongs to the child (RFC 4035 §2.2).
func (n *Node) Signed(t uint16) bool {
	return !n.Occluded && (!n.Cut || t == dns.TypeDS)
}

// WithSerial returns a snapshot that differs from z only in the serial of its SOA. When prev
// has the same SOA with that serial, its SOA RRset is shared (and with it its signatures).
// Nothing else is copied but the apex and the chain (a pointer per name): the name index and
// the rest of z are shared with the new snapshot.
func (z *Zone) WithSerial(serial uint32, prev *Zone) *Zone {
	old := z.SOA.RRs[0].(*dns.SOA)
	var set *RRset
	if prev != nil && prev.Serial == serial && SameSOA(prev.SOA, z.SOA) {
		set = prev.SOA
	} else if old.Serial == serial {
		return z
	} else {
		soa := dns.Copy(old).(*dns.SOA)
		soa.Serial = serial
		set = &RRset{Name: z.SOA.Name, Type: dns.TypeSOA, TTL: z.SOA.TTL, RRs: []dns.RR{soa}}
	}
	if set == z.SOA {
		return z
	}
	// The new version shares the name index: only the apex differs, and reads of the apex
	// go through Zone.get. The chain is copied (one pointer per name), the apex first in it.
	apex := *z.apex
	apex.sets = slices.Clone(apex.sets)
	for i, s := range apex.sets {
		if s.Type == dns.TypeSOA {
			apex.sets[i] = set
		}
	}
	nz := *z
	nz.apex = &apex
	nz.chain = slices.Clone(z.chain)
	nz.chain[0] = &apex
	nz.SOA, nz.Serial = set, serial
	return &nz
}

// SameSOA reports whether two SOA RRsets are equal but for the serial.
func SameSOA(a, b *RRset) bool {
	x, y := *a.RRs[0].(*dns.SOA), *b.RRs[0].(*dns.SOA)
	x.Serial, y.Serial = 0, 0
	x.Hdr, y.Hdr = dns.RR_Header{}, dns.RR_Header{}
	return a.TTL == b.TTL && x == y
}

// SameData reports whether a and b hold the same data but for the SOA serial: what a
// secondary receives does not change from one to the other. Equal RRsets must be shared
// (Reuse), as every way of making a snapshot ensures.
func SameData(a, b *Zone) bool {
	if len(a.nodes) != len(b.nodes) || a.records != b.records || !SameSOA(a.SOA, b.SOA) {
		return false
	}
	same := true
	a.each(func(n *Node) {
		m := b.get(n.Key)
		if !same || m == nil || len(m.sets) != len(n.sets) {
			same = false
			return
		}
		for i, s := range n.sets {
			if m.sets[i] != s && s.Type != dns.TypeSOA {
				same = false
				return
			}
		}
	})
	return same
}

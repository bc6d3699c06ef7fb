package denial

import (
	"strings"

	"github.com/danelab/danelab/plugin/danezone/zone"
)

// narrow makes minimally covering NSEC3 records per answer ("NSEC3 white lies", RFC 7129
// Appendix B): the NSEC3 covering a name's hash runs from that hash minus one to that hash
// plus one, so an answer reveals no hash of the zone and the zone cannot be walked or
// dictionary-attacked offline. An existing name's NSEC3 runs from its hash to its hash plus
// one, with its real bitmap. Only the record covering a name that does not exist is made,
// and signed, per answer; the ones that depend on an existing name alone (its own, the one
// denying the wildcard below it) are kept for the life of the snapshot.
type narrow struct {
	mode Mode
	z    *zone.Zone
	setCache
	hashProofs
}

func newNarrow(mode Mode, z *zone.Zone) *narrow {
	n := &narrow{mode: mode, z: z}
	n.hashProofs = hashProofs{origin: z.Origin, match: n.match, cover: n.cover}
	return n
}

// step returns the hash one above (+1) or below (-1) hash, wrapping around 2^160.
func step(hash string, d int) string {
	b, err := b32.DecodeString(strings.ToUpper(hash))
	if err != nil {
		return hash
	}
	for i := len(b) - 1; i >= 0; i-- {
		old := b[i]
		b[i] += byte(d)
		if d > 0 && b[i] > old || d < 0 && b[i] < old {
			break // no carry or borrow
		}
	}
	return b32.EncodeToString(b)
}

// match returns the NSEC3 of the existing (not occluded) name, or nil.
func (n *narrow) match(name string) *zone.RRset {
	node := n.z.Node(name)
	if node == nil || node.Occluded {
		return nil
	}
	return n.cached("match:"+node.Name, func() *zone.RRset {
		h := n.mode.Hash(node.Name)
		return n.mode.nsec3Set(n.z.Origin, h, step(h, 1), n.z.NegTTL, Bitmap3(node))
	})
}

// cover returns an NSEC3 from the hash of name minus one to that hash plus one.
func (n *narrow) cover(name string) *zone.RRset {
	name = zone.Canonical(name)
	make := func() *zone.RRset {
		h := n.mode.Hash(name)
		return n.mode.nsec3Set(n.z.Origin, step(h, -1), step(h, 1), n.z.NegTTL, nil)
	}
	if strings.HasPrefix(name, "*.") { // the wildcard below an existing name
		return n.cached("cover:"+name, make)
	}
	set := make()
	set.Ephemeral = true
	return set
}

package denial

import (
	"strings"
	"sync"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// minimal makes minimally covering NSEC records per answer (RFC 4470 "white lies"): the owner
// and next name hug the denied name as closely as possible, so a response reveals no other
// name of the zone and nothing can be walked. The real neighbours bound them, so no existing
// name is ever covered (an aggressive cache, RFC 8198, may rely on that).
//
// The records that depend only on an existing name (the NSEC matching it, the one denying the
// wildcard below it) are the same for every answer: they are kept, with their signatures, for
// the life of the snapshot, which bounds them by the zone's size. Only the NSEC covering a
// name that does not exist is made, and signed, per answer.
type minimal struct {
	z *zone.Zone
	setCache
}

// setCache keeps, for the life of a snapshot, the records of the per-answer modes that depend
// only on an existing name (bounded by the zone's size); made once, shared by all answers.
type setCache struct {
	mu    sync.RWMutex
	cache map[string]*zone.RRset
}

func (c *setCache) cached(key string, make func() *zone.RRset) *zone.RRset {
	c.mu.RLock()
	set := c.cache[key]
	c.mu.RUnlock()
	if set != nil {
		return set
	}
	set = make()
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[string]*zone.RRset{}
	}
	if old := c.cache[key]; old != nil {
		set = old
	} else {
		c.cache[key] = set
	}
	c.mu.Unlock()
	return set
}

// Match returns an NSEC at n whose next name is n's immediate successor, \000.n.
func (m *minimal) Match(n *zone.Node) *zone.RRset {
	return m.cached("match:"+n.Name, func() *zone.RRset { return m.match(n) })
}

func (m *minimal) match(n *zone.Node) *zone.RRset {
	next := join("\\000", n.Name)
	if wireLen(next) > 255 {
		next = m.z.Next(n).Name
	}
	var types []uint16
	if n.ENT() {
		types = []uint16{dns.TypeRRSIG, dns.TypeNSEC}
	} else {
		types = Bitmap(n)
	}
	return nsecSet(n.Name, next, m.z.NegTTL, types)
}

// Cover returns an NSEC from just before name to just after name and its whole subtree.
// The owner and next name are siblings of name, which keeps the closest encloser a validator
// derives from them (RFC 4035 §5.4) equal to name's parent.
func (m *minimal) Cover(name string) *zone.RRset {
	name = zone.Canonical(name)
	if strings.HasPrefix(name, "*.") { // the wildcard below an existing name
		return m.cached("cover:"+name, func() *zone.RRset { return m.cover(name) })
	}
	set := m.cover(name)
	set.Ephemeral = true
	return set
}

func (m *minimal) cover(name string) *zone.RRset {
	prev, next := m.z.Predecessor(name)
	label, parent := splitFirst(name)

	owner, types := prev.Name, Bitmap(prev)
	if p, ok := predecessorLabel(label, 255-wireLen(parent)-1); ok {
		if cand := join(p, parent); zone.Key(cand) > zone.Key(prev.Name) {
			owner, types = cand, []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		}
	}
	nextName := next.Name
	if s, ok := successorLabel(label); ok {
		cand := join(s, parent)
		nk := zone.Key(next.Name)
		wrapped := nk <= zone.Key(name) // the chain wrapped to the apex
		if wireLen(cand) <= 255 && (wrapped || zone.Key(cand) < nk) {
			nextName = cand
		}
	}
	return nsecSet(owner, nextName, m.z.NegTTL, types)
}

func splitFirst(name string) (label, parent string) {
	off, end := dns.NextLabel(name, 0)
	if end { // a one-label name: its label without the dot, below the root
		return strings.TrimSuffix(name, "."), "."
	}
	return name[:off-1], name[off:]
}

// join is the name of label below parent (the root too: "com." below ".").
func join(label, parent string) string {
	if parent == "." {
		return label + "."
	}
	return label + "." + parent
}

// successorLabel returns the label that sorts right after label and every name below it:
// label followed by a zero octet.
func successorLabel(label string) (string, bool) {
	b := unescape(label)
	if len(b) >= 63 {
		return "", false
	}
	return escape(append(b, 0)), true
}

// predecessorLabel returns a label that sorts just before label: label with its last octet
// decremented and padded with 0xff octets to 63 (or to what the name has room for), as RFC
// 4470 §3 does; none for a label ending in a zero octet. The padding matters: the owner of a covering NSEC is claimed to exist with no
// data, so it must be a name nobody asks for. A short one ("2\255" for "3") is a name a
// client can ask for, and below a wildcard the zone answers it with the wildcard's data: a
// validator that cached the lie then denies data the zone serves.
// Canonical order compares uppercase as lowercase, so a decrement that lands on A-Z goes to '@'.
func predecessorLabel(label string, room int) (string, bool) {
	b := unescape(label)
	if len(b) == 0 {
		return "", false
	}
	// A label ending in zero octets: the label without them sorts right before it, but it
	// is a name a client can ask for ("q" for "q\000"), and a validator that cached an NSEC
	// claiming "q" exists answered NODATA for it where the zone says NXDOMAIN (Unbound, seed
	// 1796217446460197162). The real previous name will not do either: below a wildcard it
	// owns the NSEC that matches the wildcard too, and two NSECs at one owner are bogus (seed
	// 1796218325974597334). So step back from the label without its zero octets: nothing
	// exists between that and label (the caller checks it sorts after the previous name).
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", false
	}
	last := b[len(b)-1]
	last--
	if last >= 'A' && last <= 'Z' {
		last = '@'
	}
	b[len(b)-1] = last
	for len(b) < min(63, room) {
		b = append(b, 0xff)
	}
	return escape(b), true
}

func unescape(label string) []byte { return zone.AppendOctets(nil, label) }

// wireLen returns the length of name in wire format.
func wireLen(name string) int {
	if name == "." {
		return 1
	}
	n := 1
	off := 0
	for {
		next, end := dns.NextLabel(name, off)
		n += len(unescape(name[off:max(off, next-1)])) + 1
		if end {
			return n
		}
		off = next
	}
}

func escape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '*':
			s.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			s.WriteByte(c + 'a' - 'A')
		default:
			s.WriteByte('\\')
			s.WriteByte('0' + c/100)
			s.WriteByte('0' + c/10%10)
			s.WriteByte('0' + c%10)
		}
	}
	return s.String()
}

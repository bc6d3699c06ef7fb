// Package zone owns the zone data of danezone: loading and validating RFC 1035 zone files
// (errors carry file:line), and the immutable snapshot that answers lookups. A snapshot never
// changes once built; a reload or a record change builds a new one. No DNSSEC lives here
// beyond knowing which names exist and in what canonical order.
package zone

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// RRset is one immutable RRset of a snapshot. Owner names in RRs are canonical (lowercase).
type RRset struct {
	Name string // canonical owner name
	Type uint16
	TTL  uint32
	RRs  []dns.RR
	// Ephemeral marks an RRset made for one answer (a minimally covering NSEC): it is signed
	// without caching.
	Ephemeral bool

	// Sigs is the signature cache slot of this RRset version, owned by the signer. Keeping it
	// beside the RRset means a signature lives exactly as long as the data it covers.
	Sigs SigSlot
}

// SigSlot holds a value for the signer: a lock-free read path plus a mutex so that one
// goroutine signs while the others wait for its result instead of signing again.
type SigSlot struct {
	v  atomic.Pointer[any]
	Mu sync.Mutex
}

// Load returns the cached value or nil.
func (s *SigSlot) Load() any {
	if p := s.v.Load(); p != nil {
		return *p
	}
	return nil
}

// Store sets the cached value.
func (s *SigSlot) Store(v any) { s.v.Store(&v) }

// NewRRset builds an RRset from records sharing owner and type; TTLs are set to the smallest.
func NewRRset(rrs []dns.RR) *RRset {
	h := rrs[0].Header()
	set := &RRset{Name: h.Name, Type: h.Rrtype, TTL: h.Ttl, RRs: rrs}
	for _, rr := range rrs {
		set.TTL = min(set.TTL, rr.Header().Ttl)
	}
	for _, rr := range rrs {
		rr.Header().Ttl = set.TTL
	}
	return set
}

// Node is one name of the zone: an owner of RRsets, or an empty non-terminal (no RRsets).
type Node struct {
	Name     string            // canonical name
	Key      string            // Key(Name): the map key, which sorts in canonical order
	Sets     map[uint16]*RRset // by type
	Types    []uint16          // sorted types present (for NSEC bitmaps)
	Cut      bool              // a delegation point (NS below the apex)
	Occluded bool              // at or below a delegation point's child side: glue, never authoritative
	Wildcard bool              // first label is "*"
}

// ENT reports whether the node is an empty non-terminal.
func (n *Node) ENT() bool { return len(n.Sets) == 0 }

// Zone is an immutable snapshot of one zone.
type Zone struct {
	Origin string // canonical
	File   string
	SOA    *RRset
	Serial uint32
	// NegTTL is the TTL of negative answers and of NSEC records: min(SOA TTL, SOA MINIMUM)
	// (RFC 9077).
	NegTTL uint32

	limits       Limits // what loaded it; runtime edits are held to the same
	records      int    // records and empty non-terminals, as Limits.MaxRecords counts them
	originKey    string
	originLabels int
	nodes        map[string]*Node // by Key(name): every owner, ENT and occluded name
	// chain holds the authoritative names (owners of authoritative data and delegation
	// points; not ENTs, not occluded names) in canonical order: the NSEC chain (RFC 4034 §6.1).
	chain     []*Node
	chainKeys []string
	// ents are the empty non-terminals that are not occluded, in canonical order: with the
	// chain, the names an NSEC3 chain holds (RFC 5155 §7.1).
	ents []*Node
	glue []*Node // the occluded names that own data, in canonical order
}

// Nodes returns the number of names in the zone (owners and empty non-terminals).
func (z *Zone) Nodes() int { return len(z.nodes) }

// Records returns the number of records in the zone, each empty non-terminal counted as one
// (what Limits.MaxRecords bounds).
func (z *Zone) Records() int { return z.records }

// Chain returns the authoritative names in canonical order.
func (z *Zone) Chain() []*Node { return z.chain }

// EmptyNonTerminals returns the empty non-terminals that are not occluded, in canonical order.
func (z *Zone) EmptyNonTerminals() []*Node { return z.ents }

// Node returns the node for name, or nil.
func (z *Zone) Node(name string) *Node { return z.nodes[Key(name)] }

// Apex returns the apex node.
func (z *Zone) Apex() *Node { return z.nodes[z.originKey] }

// Sets calls fn with every RRset in the zone: those of the authoritative names in canonical
// order of owner, then type; then the glue below delegation points, in the same order.
func (z *Zone) Sets(fn func(*RRset)) {
	z.Walk(func(n *Node) {
		for _, t := range n.Types {
			fn(n.Sets[t])
		}
	})
}

// Walk calls fn with every name that owns data: the authoritative names in canonical order,
// then the glue below delegation points, in canonical order. It sorts nothing.
func (z *Zone) Walk(fn func(*Node)) {
	for _, n := range z.chain {
		fn(n)
	}
	for _, n := range z.glue {
		fn(n)
	}
}

// Predecessor returns the last authoritative name that sorts before name (wrapping to the last
// name of the zone), and the index of the first one after it.
func (z *Zone) Predecessor(name string) (prev *Node, next *Node) {
	k := Key(name)
	i := sort.SearchStrings(z.chainKeys, k) // first >= k
	j := i
	if j < len(z.chainKeys) && z.chainKeys[j] == k {
		j++
	}
	p := i - 1
	if p < 0 {
		p = len(z.chain) - 1
	}
	if j >= len(z.chain) {
		j = 0
	}
	return z.chain[p], z.chain[j]
}

// PredecessorIndex returns the position in the chain of Predecessor(name), without
// allocating: the NSEC that covers a name that does not exist.
func (z *Zone) PredecessorIndex(name string) int {
	var kb [2*maxName + 2]byte
	key, _ := appendKey(kb[:0], []uint16(nil), name)
	lo, hi := 0, len(z.chainKeys) // the first key >= key
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if z.chainKeys[m] < string(key) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return len(z.chain) - 1
	}
	return lo - 1
}

// Next returns the authoritative name following n in the chain (wrapping to the apex).
func (z *Zone) Next(n *Node) *Node {
	k := Key(n.Name)
	i := sort.SearchStrings(z.chainKeys, k)
	if i < len(z.chain) && z.chainKeys[i] == k {
		i++
	}
	if i >= len(z.chain) {
		i = 0
	}
	return z.chain[i]
}

// Index returns the position of n in the chain, or -1.
func (z *Zone) Index(n *Node) int {
	k := Key(n.Name)
	i := sort.SearchStrings(z.chainKeys, k)
	if i < len(z.chain) && z.chainKeys[i] == k {
		return i
	}
	return -1
}

// build makes a snapshot from validated RRsets (owner -> type -> set).
func build(origin, file string, lim Limits, sets map[string]map[uint16]*RRset) *Zone {
	z := &Zone{Origin: origin, File: file, limits: lim, nodes: make(map[string]*Node, len(sets)*2)}
	z.originKey, _ = keyBounds(origin)
	z.originLabels = dns.CountLabel(origin)
	for name, byType := range sets {
		n := z.node(name)
		n.Sets = byType
		for t := range byType {
			n.Types = append(n.Types, t)
		}
		slices.Sort(n.Types)
		if name != origin {
			if _, ok := byType[dns.TypeNS]; ok {
				n.Cut = true
			}
		}
		// empty non-terminals: every ancestor up to the origin exists.
		for p := parent(name); p != "" && dns.IsSubDomain(origin, p) && p != origin; p = parent(p) {
			z.node(p)
		}
	}
	// Occlusion: everything strictly below a delegation point.
	for _, n := range z.nodes {
		for p := parent(n.Name); p != "" && p != origin && dns.IsSubDomain(origin, p); p = parent(p) {
			if pn := z.nodes[Key(p)]; pn != nil && pn.Cut {
				n.Occluded = true
				break
			}
		}
	}
	for k, n := range z.nodes {
		if n.ENT() {
			z.records++
		}
		for _, s := range n.Sets {
			z.records += len(s.RRs)
		}
		if n.Occluded && !n.ENT() {
			z.glue = append(z.glue, n)
		}
		if n.ENT() && !n.Occluded {
			z.ents = append(z.ents, n)
		}
		if n.Occluded || n.ENT() {
			continue
		}
		z.chainKeys = append(z.chainKeys, k)
	}
	sort.Strings(z.chainKeys)
	sort.Slice(z.ents, func(i, j int) bool { return z.ents[i].Key < z.ents[j].Key })
	sort.Slice(z.glue, func(i, j int) bool { return z.glue[i].Key < z.glue[j].Key })
	z.chain = make([]*Node, len(z.chainKeys))
	for i, k := range z.chainKeys {
		z.chain[i] = z.nodes[k]
	}
	apex := z.nodes[z.originKey]
	z.SOA = apex.Sets[dns.TypeSOA]
	soa := z.SOA.RRs[0].(*dns.SOA)
	z.Serial = soa.Serial
	z.NegTTL = min(z.SOA.TTL, soa.Minttl)
	return z
}

func (z *Zone) node(name string) *Node {
	k := Key(name)
	if n, ok := z.nodes[k]; ok {
		return n
	}
	n := &Node{Name: name, Key: k}
	n.Wildcard = len(name) > 1 && name[0] == '*' && name[1] == '.'
	z.nodes[k] = n
	return n
}

func parent(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return ""
	}
	return name[off:]
}

// WithSets returns a new snapshot with the RRsets of the given owners replaced (a nil or empty
// map for an owner removes its data). Unchanged RRsets keep their identity, and with it their
// cached signatures.
func (z *Zone) WithSets(changes map[string]map[uint16]*RRset) *Zone {
	sets := z.allSets()
	for name, byType := range changes {
		if len(byType) == 0 {
			delete(sets, name)
			continue
		}
		sets[name] = byType
	}
	return build(z.Origin, z.File, z.limits, sets)
}

func (z *Zone) allSets() map[string]map[uint16]*RRset {
	sets := make(map[string]map[uint16]*RRset, len(z.nodes))
	for _, n := range z.nodes {
		if n.ENT() {
			continue
		}
		byType := make(map[uint16]*RRset, len(n.Sets))
		for t, s := range n.Sets {
			byType[t] = s
		}
		sets[n.Name] = byType
	}
	return sets
}

// Package zone owns the zone data of danezone: loading and validating RFC 1035 zone files
// (errors carry file:line), and the immutable snapshot that answers lookups. A snapshot never
// changes once built; a reload or a record change builds a new one. No DNSSEC lives here
// beyond knowing which names exist and in what canonical order.
package zone

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// RRset is one immutable RRset of a snapshot. Owner names in RRs are canonical (lowercase).
type RRset struct {
	Name string // canonical owner name
	RRs  []dns.RR
	// Sigs is the signature cache slot of this RRset version, owned by the signer. Keeping it
	// beside the RRset means a signature lives exactly as long as the data it covers.
	Sigs SigSlot
	TTL  uint32
	Type uint16
	// Ephemeral marks an RRset made for one answer (a minimally covering NSEC): it is signed
	// without caching.
	Ephemeral bool
	// The fields are in this order to pack the struct into 64 octets: a zone holds one per
	// RRset.
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
	set := &RRset{}
	set.init(rrs)
	return set
}

func (s *RRset) init(rrs []dns.RR) {
	h := rrs[0].Header()
	s.Name, s.Type, s.TTL, s.RRs = h.Name, h.Rrtype, h.Ttl, rrs
	for _, rr := range rrs {
		s.TTL = min(s.TTL, rr.Header().Ttl)
	}
	for _, rr := range rrs {
		rr.Header().Ttl = s.TTL
	}
}

// Node is one name of the zone: an owner of RRsets, or an empty non-terminal (no RRsets).
type Node struct {
	Name     string // canonical name
	Key      string // Key(Name): the map key, which sorts in canonical order
	sets     []*RRset
	Cut      bool // a delegation point (NS below the apex)
	Occluded bool // at or below a delegation point's child side: glue, never authoritative
	Wildcard bool // first label is "*"
	// dname: the node owns a DNAME. Lookup asks it of every ancestor of every name; a flag
	// beside Cut saves reading the RRsets, which are elsewhere in memory.
	dname bool
}

// ENT reports whether the node is an empty non-terminal.
func (n *Node) ENT() bool { return len(n.sets) == 0 }

// Set returns the RRset of type t at n, or nil. A name owns a handful of types: a scan of a
// slice is faster than a map and a tenth of its size, which counts in a zone of 10^5 names.
func (n *Node) Set(t uint16) *RRset {
	for _, s := range n.sets {
		if s.Type == t {
			return s
		}
	}
	return nil
}

// RRsets returns the RRsets of n in ascending order of type (the order of an NSEC bitmap).
// The slice is the node's: it must not be changed.
func (n *Node) RRsets() []*RRset { return n.sets }

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
	// apex is the apex node. Versions that differ only in the SOA serial (WithSerial) share
	// nodes, in which the apex may be an older one: every read goes through get.
	apex  *Node
	nodes map[string]*Node // by Key(name): every owner, ENT and occluded name
	// chain holds the authoritative names (owners of authoritative data and delegation
	// points; not ENTs, not occluded names) in canonical order: the NSEC chain (RFC 4034 §6.1).
	// The apex sorts first.
	chain []*Node
	// prefixes holds keyPrefix of the chain's keys after the origin's: the first step of
	// every search, in one array.
	prefixes []uint64
	// ents are the empty non-terminals that are not occluded, in canonical order: with the
	// chain, the names an NSEC3 chain holds (RFC 5155 §7.1).
	ents []*Node
	glue []*Node // the occluded names that own data, in canonical order
}

// get returns the node of key k, or nil.
func (z *Zone) get(k string) *Node {
	if k == z.originKey {
		return z.apex
	}
	return z.nodes[k]
}

// each calls fn with every node, in no order.
func (z *Zone) each(fn func(*Node)) {
	for k, n := range z.nodes {
		if k == z.originKey {
			n = z.apex
		}
		fn(n)
	}
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
func (z *Zone) Node(name string) *Node { return z.get(Key(name)) }

// Apex returns the apex node.
func (z *Zone) Apex() *Node { return z.apex }

// Sets calls fn with every RRset in the zone: those of the authoritative names in canonical
// order of owner, then type; then the glue below delegation points, in the same order.
func (z *Zone) Sets(fn func(*RRset)) {
	z.Walk(func(n *Node) {
		for _, s := range n.sets {
			fn(s)
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

// search returns the position in the chain of the first name whose key is >= key. The key
// may be bytes: compared as string(key), they are not copied.
func search[K string | []byte](z *Zone, key K) int {
	lo, hi := 0, len(z.chain)
	if len(key) < len(z.originKey) || string(key[:len(z.originKey)]) != z.originKey {
		for lo < hi { // not in the zone: no prefix of its own
			if m := int(uint(lo+hi) >> 1); z.chain[m].Key < string(key) {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo
	}
	// The prefixes first, from one array: a search of a zone's keys through its nodes missed
	// the processor's caches at every step.
	p := keyPrefix(key, len(z.originKey))
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q := z.prefixes[m]; q < p || q == p && z.chain[m].Key < string(key) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// keyPrefix returns the 8 octets of key from off, big-endian, zeros past its end. Keys
// compare as their prefixes do where those differ (a zero is the least octet).
func keyPrefix[K string | []byte](key K, off int) uint64 {
	var p uint64
	for i := range 8 {
		p <<= 8
		if off+i < len(key) {
			p |= uint64(key[off+i])
		}
	}
	return p
}

// Predecessor returns the last authoritative name that sorts before name (wrapping to the last
// name of the zone), and the first one after it.
func (z *Zone) Predecessor(name string) (prev *Node, next *Node) {
	k := Key(name)
	i := search(z, k)
	j := i
	if j < len(z.chain) && z.chain[j].Key == k {
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
	key, _ := appendKey(make([]byte, 0, keyRoom), []uint16(nil), name)
	return z.cover(key)
}

// NXDomainCovers returns the positions in the chain of PredecessorIndex(next) and
// PredecessorIndex of the wildcard at next's parent: for a name that does not exist, whose
// next closer name is next, the NSEC records that cover it and the wildcard of its closest
// encloser (RFC 4035 §3.1.3.2). The parent's key is a prefix of next's, so one key does.
func (z *Zone) NXDomainCovers(next string) (int, int) {
	key, bounds := appendKey(make([]byte, 0, keyRoom), make([]uint16, 0, labelRoom), next)
	i := z.cover(key)
	wild := key[:0]
	if len(bounds) > 1 {
		wild = key[:bounds[len(bounds)-2]]
	}
	return i, z.cover(append(wild, '*', 0))
}

// NXDomainIndex reports whether qname (at or below the origin) does not exist, as Lookup
// would find (Kind NXDomain), and then the positions in the chain of the NSEC records that
// cover it and the wildcard at its closest encloser: what NXDomainCovers returns for its next
// closer name. It is the answer cache's path for a flood of random names: two searches of the
// chain, which the answer needs anyway for its NSEC records, and no walk down the name index,
// whose lookups of random names miss the processor's caches.
//
// The closest encloser is found from the chain alone. Every existing ancestor of qname is an
// ancestor of a name in the chain that sorts next to qname (its predecessor or successor):
// a name's descendants sort right after it, so the chain names below an ancestor form one run
// that qname falls into. Names below a delegation point are not in the chain, so when one is
// qname's ancestor it is the closest encloser found, and the predecessor; data below a DNAME
// is refused at load (belowDNAME), so a DNAME can only be there too.
func (z *Zone) NXDomainIndex(qname string) (cover, wild int, ok bool) {
	key, bounds := appendKey(make([]byte, 0, keyRoom), make([]uint16, 0, labelRoom), qname)
	nl := len(bounds)
	if nl <= z.originLabels || !strings.HasPrefix(string(key), z.originKey) {
		return 0, 0, false // the origin itself, or not in the zone
	}
	i := search(z, key)
	if i < len(z.chain) && z.chain[i].Key == string(key) {
		return 0, 0, false
	}
	// The closest encloser's labels: the most that qname's key shares, at a label's end,
	// with the keys of the names on either side (the apex sorts first: i > 0).
	depth := z.originLabels
	shared := func(k string) {
		n := 0
		for n < len(k) && n < len(key) && k[n] == key[n] {
			n++
		}
		for depth < nl && int(bounds[depth]) <= n {
			depth++
		}
	}
	prev := z.chain[i-1]
	shared(prev.Key)
	if i < len(z.chain) {
		shared(z.chain[i].Key)
	}
	if depth == nl {
		return 0, 0, false // an empty non-terminal: a name in the chain is below it
	}
	// A delegation point or a DNAME owner can only be the closest encloser when it is the
	// predecessor itself: a chain name strictly below either would be occluded or refused.
	end := len(z.originKey)
	if depth > z.originLabels {
		end = int(bounds[depth-1])
	}
	if prev.Key == string(key[:end]) && (prev.Cut || prev.dname) {
		return 0, 0, false // a referral, or a DNAME's redirection
	}
	// The wildcard at the closest encloser exists, with data or as an empty non-terminal,
	// when the first chain name from its key on is it or below it.
	wk := append(key[:end], '*', 0)
	k := search(z, wk)
	if k < len(z.chain) && strings.HasPrefix(z.chain[k].Key, string(wk)) {
		return 0, 0, false
	}
	return i - 1, k - 1, true // k > 0: the apex sorts before the wildcard
}

// cover returns the position in the chain of the last name whose key sorts before key
// (wrapping to the last name).
func (z *Zone) cover(key []byte) int {
	if i := search(z, key); i > 0 {
		return i - 1
	}
	return len(z.chain) - 1
}

// Next returns the authoritative name following n in the chain (wrapping to the apex).
func (z *Zone) Next(n *Node) *Node {
	i := search(z, n.Key)
	if i < len(z.chain) && z.chain[i].Key == n.Key {
		i++
	}
	if i >= len(z.chain) {
		i = 0
	}
	return z.chain[i]
}

// Index returns the position of n in the chain, or -1.
func (z *Zone) Index(n *Node) int {
	i := search(z, n.Key)
	if i < len(z.chain) && z.chain[i].Key == n.Key {
		return i
	}
	return -1
}

// owned is the data of one name on its way into a snapshot: its RRsets in ascending order of
// type.
type owned struct {
	name string
	sets []*RRset
}

// build makes a snapshot from validated RRsets, names at or below origin. It takes the sets
// slices of owners as they are.
func build(origin, file string, lim Limits, owners []owned) *Zone {
	z := &Zone{Origin: origin, File: file, limits: lim, nodes: make(map[string]*Node, len(owners)+len(owners)/2)}
	z.originKey = Key(origin)
	z.originLabels = dns.CountLabel(origin)
	// One allocation for the owners' nodes: 10^5 names are 10^5 fewer objects to allocate
	// and for the collector to visit.
	slab := make([]Node, len(owners))
	all := make([]*Node, len(owners), len(owners)+len(owners)/4)
	for i, o := range owners {
		n := &slab[i]
		n.Name, n.Key, n.sets = o.name, Key(o.name), o.sets
		n.Wildcard = isWildcard(o.name)
		n.Cut = o.name != origin && n.Set(dns.TypeNS) != nil
		n.dname = n.Set(dns.TypeDNAME) != nil
		z.nodes[n.Key] = n
		all[i] = n
	}
	// Empty non-terminals: every name between an owner and the origin exists (RFC 4592 §2.2.2).
	// The key of an ancestor is a prefix of the owner's key, so it costs no allocation.
	kb, bb := make([]byte, 0, keyRoom), make([]uint16, 0, labelRoom)
	for _, o := range all[:len(owners)] {
		var bounds []uint16
		kb, bounds = appendKey(kb[:0], bb[:0], o.Name)
		bb = bounds
		nl := len(bounds)
		for j := nl - 1; j > z.originLabels; j-- {
			k := o.Key[:bounds[j-1]]
			if z.nodes[k] != nil {
				break // it and its ancestors exist (an owner's are made in its own turn)
			}
			n := &Node{Name: nameWithLabels(o.Name, nl-j), Key: k}
			n.Wildcard = isWildcard(n.Name)
			z.nodes[k] = n
			all = append(all, n)
		}
	}
	slices.SortFunc(all, func(a, b *Node) int { return strings.Compare(a.Key, b.Key) })
	// In canonical order the names below a delegation point follow it, and a key that has the
	// delegation point's key as a prefix is below it: one pass finds what it occludes.
	cut, below := "", false
	for _, n := range all {
		if below && strings.HasPrefix(n.Key, cut) {
			n.Occluded = true
		} else {
			below = n.Cut
			cut = n.Key
		}
		if n.ENT() {
			z.records++
		}
		for _, s := range n.sets {
			z.records += len(s.RRs)
		}
		switch {
		case n.Occluded && !n.ENT():
			z.glue = append(z.glue, n)
		case n.Occluded:
		case n.ENT():
			z.ents = append(z.ents, n)
		default:
			z.chain = append(z.chain, n)
		}
	}
	z.prefixes = make([]uint64, len(z.chain))
	for i, n := range z.chain {
		z.prefixes[i] = keyPrefix(n.Key, len(z.originKey))
	}
	z.apex = z.nodes[z.originKey]
	z.SOA = z.apex.Set(dns.TypeSOA)
	soa := z.SOA.RRs[0].(*dns.SOA)
	z.Serial = soa.Serial
	z.NegTTL = min(z.SOA.TTL, soa.Minttl)
	return z
}

// belowDNAME returns a name that owns data below a DNAME, and that DNAME's owner; nils when
// there is none (RFC 6672 §2.3: nothing below a DNAME is served). Names below a name sort
// right after it, so one pass in canonical order finds them.
func (z *Zone) belowDNAME() (*Node, *Node) {
	var dname *Node
	check := func(n *Node) (*Node, *Node) {
		if dname != nil && strings.HasPrefix(n.Key, dname.Key) && n.Key != dname.Key {
			if !n.ENT() {
				return n, dname
			}
			return nil, nil
		}
		dname = nil
		if n.Set(dns.TypeDNAME) != nil {
			dname = n
		}
		return nil, nil
	}
	for _, names := range [][]*Node{z.chain, z.glue} {
		dname = nil
		for _, n := range names {
			if a, b := check(n); a != nil {
				return a, b
			}
		}
	}
	return nil, nil
}

func isWildcard(name string) bool { return len(name) > 1 && name[0] == '*' && name[1] == '.' }

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
	return build(z.Origin, z.File, z.limits, ownedFrom(sets))
}

// allSets returns the RRsets of every owner by name and type: the form edits work on.
func (z *Zone) allSets() map[string]map[uint16]*RRset {
	sets := make(map[string]map[uint16]*RRset, len(z.nodes))
	z.each(func(n *Node) {
		if n.ENT() {
			return
		}
		byType := make(map[uint16]*RRset, len(n.sets))
		for _, s := range n.sets {
			byType[s.Type] = s
		}
		sets[n.Name] = byType
	})
	return sets
}

// ownedFrom turns the form of allSets into build's.
func ownedFrom(sets map[string]map[uint16]*RRset) []owned {
	out := make([]owned, 0, len(sets))
	for name, byType := range sets {
		o := owned{name: name, sets: make([]*RRset, 0, len(byType))}
		for _, s := range byType {
			o.sets = append(o.sets, s)
		}
		slices.SortFunc(o.sets, func(a, b *RRset) int { return int(a.Type) - int(b.Type) })
		out = append(out, o)
	}
	return out
}

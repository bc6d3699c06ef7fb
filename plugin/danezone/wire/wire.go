// Package wire owns danezone's packed responses and its answer cache: responses packed with
// names compressed so that one packing serves every query with the same key (Pack), kept as a
// packet cache keeps them, and patched per query for what does not change the key: the ID,
// the RD and CD flags, the question and its letter case, the compression pointers after it,
// and the OPT record's size and flag fields. A cache belongs to one version of a zone and is
// dropped with it.
package wire

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// The query properties that change a response's bytes, beside name, type and size.
const (
	FlagDO  = 1 << iota // DNSSEC OK, as the zone serves it (off for an unsigned zone)
	FlagCO              // Compact Answers OK (RFC 9824 §4)
	FlagOPT             // the query has an OPT record, so the response has one
	FlagTCP             // not truncated; no UDP size rules
)

// maxName is the longest name in wire form (RFC 1035 §2.3.4).
const maxName = 255

// Query is what a cache lookup needs of one query, built without allocating: the key (flags,
// size, type, lowercase name) and the question name in wire form, spelled as asked.
type Query struct {
	key  [5 + maxName]byte
	klen int
	name [maxName]byte
	nlen int
}

// Make fills q for qname (presentation form, as asked), qtype, the flags above and size (the
// largest response the client takes: its EDNS size, 512 without EDNS, 65535 over TCP). It
// reports false for names it does not cache: with escapes, or not fully qualified.
func (q *Query) Make(qname string, qtype uint16, flags uint8, size uint16) bool {
	q.key[0] = flags
	binary.BigEndian.PutUint16(q.key[1:], size)
	binary.BigEndian.PutUint16(q.key[3:], qtype)
	if qname == "." {
		q.name[0], q.key[5] = 0, 0
		q.nlen, q.klen = 1, 6
		return true
	}
	if len(qname)+1 > maxName || len(qname) == 0 || qname[len(qname)-1] != '.' {
		return false
	}
	// Presentation to wire: each label's length, then its octets. An escape (\. or \DDD)
	// would need decoding: such names are rare, and go the uncached way.
	start := 0
	for i := 0; i < len(qname); i++ {
		c := qname[i]
		if c == '\\' {
			return false
		}
		if c == '.' {
			n := i - start
			if n == 0 || n > 63 {
				return false
			}
			q.name[start] = byte(n)
			q.key[5+start] = byte(n)
			start = i + 1
			continue
		}
		q.name[i+1] = c
		q.key[5+i+1] = lower(c)
	}
	q.name[len(qname)] = 0
	q.key[5+len(qname)] = 0
	q.nlen = len(qname) + 1
	q.klen = 5 + q.nlen
	return true
}

// Flags returns the flags q was made with.
func (q *Query) Flags() uint8 { return q.key[0] }

// Size returns the size q was made with.
func (q *Query) Size() uint16 { return binary.BigEndian.Uint16(q.key[1:]) }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Entry is one cached response. What a hit reads comes first, and its bytes are one string:
// the key it is kept under (a map key that shares them), the header, the rest after the
// question, and the offsets Append patches. One object for all a hit copies and patches: a
// hit then reads the entry and one string, not three more objects on other pages (and the
// garbage collector has fewer to mark).
type Entry struct {
	used    atomic.Bool // asked since the clock hand last went by (see place)
	Rcode   int
	Kind    int    // the caller's classification, for its metrics
	klen    uint16 // length of the key in data
	blen    uint16 // length of the body in data
	names   uint16 // offsets after the body: of answer owners spelled as the question name,
	ptrs    uint16 // then of compression pointers (see Pack)
	opt     int32  // offset in the body of the OPT record, or -1
	until   int64  // Unix nanoseconds from which the entry must not be served; 0: none
	source  uint64 // what the answer was resolved in, beyond the zone version (see Usable)
	data    string // key, header (12 octets), body (everything after the question), offsets
	spelled string // the question name as asked, when the entry serves only that spelling
	slot    int32  // in its shard's ring (see place)
	proof   *Proof // the key of an entry kept by proof (PutProof)
	// The response as a message, for observers that need one (the log plugin): made only
	// where they are, at the first answer they see (see Observed).
	msg atomic.Pointer[dns.Msg]
}

// Observed returns the message kept for observers, or nil.
func (e *Entry) Observed() *dns.Msg { return e.msg.Load() }

// Observe keeps m, the response as a message, for observers. The caller must not change m
// afterwards: observers of later answers share it.
func (e *Entry) Observe(m *dns.Msg) { e.msg.Store(m) }

func (e *Entry) key() string { return e.data[:e.klen] }

// Truncated reports whether the response has TC set.
func (e *Entry) Truncated() bool { return e.head()[2]&0x02 != 0 }

func (e *Entry) head() string { return e.data[e.klen : e.klen+12] }
func (e *Entry) body() string { return e.data[e.klen+12 : int(e.klen)+12+int(e.blen)] }

// offset returns the i-th offset after the body: the names' first, then the pointers'.
func (e *Entry) offset(i int) int {
	at := int(e.klen) + 12 + int(e.blen) + 2*i
	return int(e.data[at])<<8 | int(e.data[at+1])
}

var errShape = errors.New("response not in the shape the cache keeps")

func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// Set records what the entry holds beyond its bytes: the rcode and the caller's
// classification, the moment a signature in it is due for refresh (zero: none), and the
// source it was resolved in, which must still be the one served for the entry to be. It keeps
// no dns.Msg unless an observer needs one (Observe): thousands of entries, each with its graph
// of records, are thousands of objects for the garbage collector to mark on every cycle.
func (e *Entry) Set(rcode, kind int, until time.Time, source uint64) {
	e.Rcode, e.Kind, e.source = rcode, kind, source
	e.until = 0
	if !until.IsZero() {
		e.until = until.UnixNano()
	}
}

// Usable reports whether the entry may answer q now, resolved as it was in source.
func (e *Entry) Usable(q *Query, now time.Time, source uint64) bool {
	return e.source == source && (e.until == 0 || now.UnixNano() < e.until) &&
		(e.spelled == "" || e.spelled == string(q.name[:q.nlen]))
}

// OnlyAs restricts the entry to the question name spelled as in q: for responses that carry
// the spelling elsewhere than in answer owners (a CNAME synthesised from a DNAME).
func (e *Entry) OnlyAs(q *Query) { e.spelled = string(q.name[:q.nlen]) }

// MaxEntry is the largest response kept: the bound on entries is then a bound on memory
// (MaxEntry octets of response each, plus the key, offsets and the Entry). Put and PutProof
// keep nothing larger.
const MaxEntry = 4096

func (e *Entry) tooLarge() bool { return 12+int(e.blen) > MaxEntry }

// Len is the size of the response to q from this entry.
func (e *Entry) Len(q *Query) int { return 12 + q.nlen + 4 + int(e.blen) }

// Portable reports whether the entry can answer a question of another name: no answer owner
// spelled as the question name, nothing else that carries its spelling (OnlyAs). Compression
// pointers never reach into the question (Pack).
func (e *Entry) Portable() bool { return e.spelled == "" && e.names == 0 }

// Append appends the response for the query r (its ID, RD and CD flags, and OPT record's size
// and flags) and q (its question name as spelled) to dst.
func (e *Entry) Append(dst []byte, r *dns.Msg, q *Query, qtype uint16, opt *dns.OPT) []byte {
	n := len(dst)
	dst = append(dst, e.head()...)
	h := dst[n:]
	binary.BigEndian.PutUint16(h, r.Id)
	// RFC 1035 §4.1.1: RD is copied; RFC 4035 §3.2.2: so is CD.
	h[2] &^= 0x01
	if r.RecursionDesired {
		h[2] |= 0x01
	}
	h[3] &^= 0x10
	if r.CheckingDisabled {
		h[3] |= 0x10
	}
	dst = append(dst, q.name[:q.nlen]...)
	dst = binary.BigEndian.AppendUint16(dst, qtype)
	dst = binary.BigEndian.AppendUint16(dst, dns.ClassINET)
	b := len(dst)
	dst = append(dst, e.body()...)
	body := dst[b:]
	for i := range int(e.names) {
		copy(body[e.offset(i):], q.name[:q.nlen])
	}
	// Pack made the pointers' targets as if there were no question.
	for i := int(e.names); i < int(e.names)+int(e.ptrs); i++ {
		o := body[e.offset(i):]
		binary.BigEndian.PutUint16(o, binary.BigEndian.Uint16(o)+uint16(q.nlen+4))
	}
	if e.opt >= 0 && opt != nil {
		// What CoreDNS's ScrubWriter makes of the query's OPT record (request.SizeAndDo):
		// its size field, its flags with the extended rcode and version cleared.
		o := body[e.opt:]
		binary.BigEndian.PutUint16(o[3:], opt.Hdr.Class)
		binary.BigEndian.PutUint32(o[5:], opt.Hdr.Ttl&0xff00)
	}
	return dst
}

// Cache holds the entries of one zone version, up to a bound.
type Cache struct {
	seed   maphash.Seed
	per    int // entries per shard
	shards [16]shard
}

type shard struct {
	mu     sync.RWMutex
	names  map[string]*Entry // by Query key
	proofs map[Proof]*Entry
	// The entries in their slots, and the clock hand that goes round them to evict (see
	// place); per slot, the hash of a name entry's key (0 for a proof's), for forget.
	ring   []*Entry
	hashes []uint64
	hand   int
	// A bit per hash of the keys in names (and of some evicted since: see forget), so that a
	// name not kept, as every name of an NXDOMAIN flood is, costs no probe of the map, whose
	// memory such a flood never touches otherwise.
	seen    []uint64
	evicted int // names evicted since seen was last made anew
}

// seenBits is the size of a shard's seen filter per entry it holds: with a bit set per name
// kept, one name in 8 to 16 not kept is looked up in the map anyway (the filter is rounded up
// to a power of two), up to about one in five as evicted names leave their bits until forget.
const seenBits = 8

// Proof keys a negative answer that does not depend on the name asked: the RRsets of its
// authority section (identities, which the zone version keeps alive), its rcode and the
// query's flags and size. Any name whose answer is made of those RRsets gets those bytes.
type Proof struct {
	Sets  [4]*zone.RRset
	Rcode uint8
	Flags uint8
	Size  uint16
}

// New returns a cache for up to size entries (at least one per shard).
func New(size int) *Cache {
	c := &Cache{seed: maphash.MakeSeed(), per: max(size/16, 1)}
	bits := 64
	for bits < c.per*seenBits {
		bits *= 2
	}
	for i := range c.shards {
		c.shards[i].names = map[string]*Entry{}
		c.shards[i].proofs = map[Proof]*Entry{}
		c.shards[i].seen = make([]uint64, bits/64)
	}
	return c
}

// at returns the shard of a key's hash h, and the bit of h in its seen filter.
func (c *Cache) at(h uint64) (s *shard, word int, bit uint64) {
	s = &c.shards[h%uint64(len(c.shards))]
	b := int(h/uint64(len(c.shards))) & (64*len(s.seen) - 1)
	return s, b / 64, 1 << (b % 64)
}

// Get returns the entry for q, or nil.
func (c *Cache) Get(q *Query) *Entry {
	key := q.key[:q.klen]
	s, w, b := c.at(maphash.Bytes(c.seed, key))
	s.mu.RLock()
	var e *Entry
	if s.seen[w]&b != 0 {
		e = s.names[string(key)]
	}
	s.mu.RUnlock()
	e.use()
	return e
}

// use marks e asked for. The check first: an entry asked again and again is not written
// again and again (its cache line stays shared between the cores that read it).
func (e *Entry) use() {
	if e != nil && !e.used.Load() {
		e.used.Store(true)
	}
}

// Put stores e, made for the query it is kept under (Pack), evicting an entry of its shard
// when the shard is full.
func (c *Cache) Put(e *Entry) {
	if e.tooLarge() {
		return
	}
	key := e.key()
	h := maphash.String(c.seed, key) // as Get's, of the key's bytes
	s, w, b := c.at(h)
	s.mu.Lock()
	s.place(e, s.names[key], c.per, h)
	s.names[key] = e
	s.seen[w] |= b
	if s.evicted > c.per {
		s.forget(c)
	}
	s.mu.Unlock()
}

func (c *Cache) proofShard(p *Proof) *shard {
	return &c.shards[maphash.Comparable(c.seed, *p)%uint64(len(c.shards))]
}

// GetProof returns the entry for a negative answer made of p's RRsets, or nil.
func (c *Cache) GetProof(p *Proof) *Entry {
	s := c.proofShard(p)
	s.mu.RLock()
	e := s.proofs[*p]
	s.mu.RUnlock()
	e.use()
	return e
}

// PutProof stores e for p.
func (c *Cache) PutProof(p *Proof, e *Entry) {
	if e.tooLarge() {
		return
	}
	s := c.proofShard(p)
	s.mu.Lock()
	key := *p // the entry's own copy: the caller's may be reused
	e.proof = &key
	s.place(e, s.proofs[*p], c.per, 0)
	s.proofs[*p] = e
	s.mu.Unlock()
}

// place gives e a slot in the ring: old's, when e replaces old under the same key; a new one
// while the shard has room; otherwise the slot of the entry it evicts. Eviction is CLOCK, the
// second-chance approximation of least recently used: the hand goes round the slots, clearing
// the mark of entries asked since it last went by (use) and evicting the first unmarked one.
// An entry asked again within a turn of the hand stays, while a flood of names asked once, or
// another working set, turns over the rest; a new entry has a whole turn to be asked again.
func (s *shard) place(e, old *Entry, per int, h uint64) {
	switch {
	case old != nil:
		e.slot = old.slot
	case len(s.ring) < per:
		e.slot = int32(len(s.ring))
		s.ring, s.hashes = append(s.ring, nil), append(s.hashes, 0)
	default:
		// Readers mark entries without the lock: two turns at the most, then the hand's.
		for range 2 * len(s.ring) {
			if !s.ring[s.hand].used.Swap(false) {
				break
			}
			s.hand = (s.hand + 1) % len(s.ring)
		}
		victim := s.ring[s.hand]
		if victim.proof != nil {
			delete(s.proofs, *victim.proof)
		} else {
			delete(s.names, victim.key())
			s.evicted++
		}
		e.slot = int32(s.hand)
		s.hand = (s.hand + 1) % len(s.ring)
	}
	s.ring[e.slot], s.hashes[e.slot] = e, h
}

// forget makes the seen filter anew from the names kept: evicted names leave their bits set,
// and after a whole shard's worth the filter would let most names through to the map. It
// reads the hashes kept beside the ring, one array, not the keys: the lock is held. (A key
// whose hash is 0, one in 2^64, loses its bit: a miss, then kept again.)
func (s *shard) forget(c *Cache) {
	clear(s.seen)
	for _, h := range s.hashes {
		if h != 0 {
			_, w, b := c.at(h)
			s.seen[w] |= b
		}
	}
	s.evicted = 0
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.names) + len(s.proofs)
		s.mu.RUnlock()
	}
	return n
}

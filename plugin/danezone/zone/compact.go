package zone

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Log is the net effect of a sequence of runtime changes, kept instead of their history: the
// cost of recording a change does not grow with the changes before it, and neither does the
// log, beyond the records it names. Edits returns changes with the same effect as the whole
// sequence on any version of the zone, applied with Apply as after a reload (every edit
// tolerant). The zero Log is empty. Not safe for concurrent use.
//
// The effect of a sequence of changes on one RRset is one of two things. After a Replace, or a
// removal of the RRset or of its name, it is a fixed set of records. Otherwise it is "the
// RRset of the zone file without the records D, plus the records A" (D and A disjoint), with
// the TTL of the last record added if any was (Apply gives an RRset the TTL of the record
// added last; a removal keeps it). Adding or removing a record updates D and A; a removal of
// the name makes every RRset of it fixed (and empty).
type Log struct {
	byName map[string]*nameChange
	names  []string // in order of first change, for a stable result
}

// nameChange is the net effect of the changes of one owner name.
type nameChange struct {
	cleared bool // every RRset of the name was removed: those not in byType are gone
	byType  map[uint16]*setChange
	types   []uint16
}

// setChange is the net effect of the changes of one RRset.
type setChange struct {
	fixed bool    // the RRset is add, whatever the file holds
	add   rrIndex // fixed: the RRset (none when empty); otherwise A, the records added
	del   rrIndex // D: the records removed from the file's RRset
	ttl   uint32  // fixed: the RRset's TTL; otherwise the TTL of the record added last
	added bool    // not fixed: a record was added, so the RRset takes ttl
	last  dns.RR  // the record added last
}

// Compact returns edits with the same effect as edits (see Log). edits must have been applied
// successfully.
func Compact(edits []Edit) []Edit {
	var l Log
	l.Append(edits)
	return l.Edits()
}

// Append records edits, which have been applied successfully after those already recorded.
func (l *Log) Append(edits []Edit) {
	if l.byName == nil {
		l.byName = map[string]*nameChange{}
	}
	for _, e := range edits {
		name := Canonical(e.Name)
		rrs := make([]dns.RR, 0, len(e.RRs))
		for _, rr := range e.RRs {
			c := dns.Copy(rr)
			c.Header().Name = Canonical(c.Header().Name)
			canonicalRdata(c)
			rrs = append(rrs, c)
		}
		switch e.Op {
		case Add:
			for _, rr := range rrs {
				c := l.set(name, rr.Header().Rrtype)
				c.add.insert(rr)
				c.ttl = rr.Header().Ttl
				if !c.fixed {
					c.del.remove(rr)
					c.added, c.last = true, rr
				}
			}
		case Replace:
			c := l.set(name, e.Type)
			*c = setChange{fixed: true}
			for _, rr := range rrs {
				// NewRRset(dedup(rrs)): the smallest TTL of the records kept
				if c.add.insert(rr) && (c.add.len() == 1 || rr.Header().Ttl < c.ttl) {
					c.ttl = rr.Header().Ttl
				}
			}
		case Remove:
			switch {
			case len(rrs) == 0 && e.Type == 0:
				*l.name(name) = nameChange{cleared: true, byType: map[uint16]*setChange{}}
			case len(rrs) == 0:
				*l.set(name, e.Type) = setChange{fixed: true}
			case e.Type != 0:
				c := l.set(name, e.Type)
				for _, rr := range rrs {
					c.add.remove(rr)
					if !c.fixed {
						c.del.insert(rr)
					}
				}
			}
		}
	}
}

// Edits returns the changes recorded, a few per RRset and name.
func (l *Log) Edits() []Edit {
	var out []Edit
	for _, name := range l.names {
		nc := l.byName[name]
		if nc.cleared {
			out = append(out, Edit{Op: Remove, Name: name})
		}
		for _, t := range nc.types {
			c := nc.byType[t]
			switch {
			case c.fixed && c.add.len() == 0 && nc.cleared:
				// gone with the name
			case c.fixed:
				out = append(out, Edit{Op: Replace, Name: name, Type: t, RRs: withTTL(c.add.list(), c.ttl)})
			default:
				if c.del.len() > 0 {
					out = append(out, Edit{Op: Remove, Name: name, Type: t, RRs: c.del.list()})
				}
				switch {
				case c.add.len() > 0:
					out = append(out, Edit{Op: Add, Name: name, Type: t, RRs: withTTL(c.add.list(), c.ttl)})
				case c.added:
					// Every record added was removed again, but the RRset kept the TTL of the
					// last one: add and remove it again for that.
					last := withTTL([]dns.RR{c.last}, c.ttl)
					out = append(out, Edit{Op: Add, Name: name, Type: t, RRs: last},
						Edit{Op: Remove, Name: name, Type: t, RRs: last})
				}
			}
		}
	}
	return out
}

func (l *Log) name(name string) *nameChange {
	nc := l.byName[name]
	if nc == nil {
		nc = &nameChange{byType: map[uint16]*setChange{}}
		l.byName[name] = nc
		l.names = append(l.names, name)
	}
	return nc
}

func (l *Log) set(name string, t uint16) *setChange {
	nc := l.name(name)
	c := nc.byType[t]
	if c == nil {
		c = &setChange{fixed: nc.cleared}
		nc.byType[t] = c
		nc.types = append(nc.types, t)
	}
	return c
}

// rrIndex is a set of records (dns.IsDuplicate is equality) in the order they were inserted,
// found by a hash of their data rather than by comparing with each.
type rrIndex struct {
	byKey map[string][]rrEntry
	n     int
	seq   int
}

type rrEntry struct {
	rr  dns.RR
	seq int
}

// rrKey buckets records: the type and the data, lowercased since IsDuplicate compares domain
// names without case. Records in one bucket are told apart by IsDuplicate.
func rrKey(rr dns.RR) string {
	return dns.TypeToString[rr.Header().Rrtype] + " " + strings.ToLower(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

// insert adds rr unless a duplicate is there, and reports whether it did.
func (x *rrIndex) insert(rr dns.RR) bool {
	if x.byKey == nil {
		x.byKey = map[string][]rrEntry{}
	}
	k := rrKey(rr)
	for _, e := range x.byKey[k] {
		if dns.IsDuplicate(e.rr, rr) {
			return false
		}
	}
	x.seq++
	x.byKey[k] = append(x.byKey[k], rrEntry{rr, x.seq})
	x.n++
	return true
}

// remove deletes the duplicates of rr.
func (x *rrIndex) remove(rr dns.RR) {
	k := rrKey(rr)
	bucket := x.byKey[k]
	keep := bucket[:0:0]
	for _, e := range bucket {
		if !dns.IsDuplicate(e.rr, rr) {
			keep = append(keep, e)
		}
	}
	x.n -= len(bucket) - len(keep)
	if len(keep) == 0 {
		delete(x.byKey, k)
	} else {
		x.byKey[k] = keep
	}
}

func (x *rrIndex) len() int { return x.n }

// list returns the records in the order they were inserted.
func (x *rrIndex) list() []dns.RR {
	entries := make([]rrEntry, 0, x.n)
	for _, b := range x.byKey {
		entries = append(entries, b...)
	}
	slices.SortFunc(entries, func(a, b rrEntry) int { return a.seq - b.seq })
	out := make([]dns.RR, len(entries))
	for i, e := range entries {
		out[i] = e.rr
	}
	return out
}

// dedup returns rrs without duplicates (RFC 2181 §5: an RRset holds each record once).
func dedup(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			out = append(out, rr)
		}
	}
	return out
}

// withTTL returns copies of rrs with the given TTL.
func withTTL(rrs []dns.RR, ttl uint32) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Ttl = ttl
	}
	return out
}

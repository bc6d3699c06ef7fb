package xfr

import (
	"slices"
	"sync"

	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/miekg/dns"
)

// Delta is the difference between two consecutive versions (RFC 1995 §4): the records to
// delete from the one with serial From, then the ones to add to make the one with serial To.
type Delta struct {
	From, To dns.RR // their SOA records
	Del, Add []dns.RR
}

// Len is the number of records the delta takes in an IXFR answer.
func (d *Delta) Len() int { return 2 + len(d.Del) + len(d.Add) }

// Diff returns the delta from a to b, in one walk over both (their Sets are sorted the same
// way). RRsets that did not change are shared between versions (zone.Reuse, the signer's
// cache), so only the changed ones are compared record by record.
func Diff(a, b *Version) *Delta {
	d := &Delta{From: a.SOA, To: b.SOA}
	i, j := 0, 0
	for i < len(a.Sets) || j < len(b.Sets) {
		switch {
		case j == len(b.Sets) || i < len(a.Sets) && a.Sets[i].before(&b.Sets[j]):
			d.Del = appendSet(d.Del, a.Sets[i])
			i++
		case i == len(a.Sets) || b.Sets[j].before(&a.Sets[i]):
			d.Add = appendSet(d.Add, b.Sets[j])
			j++
		default:
			o, s := a.Sets[i], b.Sets[j]
			if o.RRset != s.RRset && s.RRset.Type != dns.TypeSOA { // the SOAs are the delta's frame
				d.Del = appendMissing(d.Del, o.RRset.RRs, s.RRset.RRs)
				d.Add = appendMissing(d.Add, s.RRset.RRs, o.RRset.RRs)
			}
			if !slices.Equal(o.Sigs, s.Sigs) { // the same records, shared from the signer's cache
				d.Del = append(d.Del, o.Sigs...)
				d.Add = append(d.Add, s.Sigs...)
			}
			i++
			j++
		}
	}
	return d
}

func appendSet(out []dns.RR, s Set) []dns.RR {
	if s.RRset.Type != dns.TypeSOA {
		out = append(out, s.RRset.RRs...)
	}
	return append(out, s.Sigs...)
}

// appendMissing appends the records of rrs that are not in other. A record whose TTL changed
// is another record to a secondary: it is deleted and added.
func appendMissing(out, rrs, other []dns.RR) []dns.RR {
	for _, rr := range rrs {
		found := false
		for _, o := range other {
			if dns.IsDuplicate(rr, o) && rr.Header().Ttl == o.Header().Ttl {
				found = true
				break
			}
		}
		if !found {
			out = append(out, rr)
		}
	}
	return out
}

// Journal keeps the most recent deltas of a zone, bounded: at most MaxDeltas, and at most as
// many records in all as the zone itself has (past that, a full transfer is cheaper).
type Journal struct {
	mu      sync.Mutex
	deltas  []*Delta
	records int
}

// MaxDeltas bounds the number of versions a secondary can be behind and still get an IXFR.
const MaxDeltas = 1000

// minJournal is the record budget of the journal of a small zone.
const minJournal = 10000

// Add appends d, the delta to a version of size records, dropping the oldest deltas past the
// bounds. A delta larger than the zone is not kept: the journal then starts over, since no
// IXFR could cross it.
func (j *Journal) Add(d *Delta, size int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	budget := max(size, minJournal)
	if d.Len() > budget {
		j.deltas, j.records = nil, 0
		return
	}
	j.deltas = append(j.deltas, d)
	j.records += d.Len()
	for len(j.deltas) > MaxDeltas || j.records > budget {
		j.records -= j.deltas[0].Len()
		j.deltas[0] = nil
		j.deltas = j.deltas[1:]
	}
}

// Since returns the deltas from the version with serial from to the one with serial to, or
// false when the journal does not reach back that far (the answer is then a full transfer).
func (j *Journal) Since(from, to uint32) ([]*Delta, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, d := range j.deltas {
		if soaSerial(d.From) != from {
			continue
		}
		out := []*Delta{}
		at := from
		for _, d := range j.deltas[i:] {
			if soaSerial(d.From) != at { // a gap (the journal started over): no IXFR across it
				return nil, false
			}
			out = append(out, d)
			if at = soaSerial(d.To); at == to {
				return out, true
			}
		}
		return nil, false
	}
	return nil, false
}

func soaSerial(rr dns.RR) uint32 { return rr.(*dns.SOA).Serial }

// IXFR returns the records of an incremental transfer from the deltas to cur (RFC 1995 §4):
// cur's SOA, each delta framed by its SOAs, cur's SOA again. It gives up (false) when send
// does.
func IXFR(cur dns.RR, deltas []*Delta, batch int, send func([]dns.RR) bool) bool {
	out := []dns.RR{cur}
	for _, d := range deltas {
		for _, part := range [][]dns.RR{{d.From}, d.Del, {d.To}, d.Add} {
			for _, rr := range part {
				out = append(out, rr)
				if len(out) >= batch {
					if !send(out) {
						return false
					}
					out = make([]dns.RR, 0, batch)
				}
			}
		}
	}
	return send(append(out, cur))
}

// UpToDate reports whether a secondary at serial have needs nothing from version v: it is at
// v or past it (serial arithmetic, RFC 1982).
func (v *Version) UpToDate(have uint32) bool {
	return have == v.Serial || serial.Less(v.Serial, have)
}

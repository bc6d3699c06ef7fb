package denial

import (
	"sync/atomic"

	"github.com/danelab/danelab/plugin/danezone/zone"
)

// records holds the records of a chain, one per position, each made the first time an
// answer asks for it. Every caller gets the same RRset for a position: it holds the
// signatures, and the answer cache keys proofs by it.
type records []atomic.Pointer[zone.RRset]

// keep stores s at i unless another caller stored one first, and returns the one kept.
func (r records) keep(i int, s *zone.RRset) *zone.RRset {
	if r[i].CompareAndSwap(nil, s) {
		return s
	}
	return r[i].Load()
}

// made calls fn with the records made so far.
func (r records) made(fn func(*zone.RRset)) {
	for i := range r {
		if s := r[i].Load(); s != nil {
			fn(s)
		}
	}
}

// all returns every record, made now by at if it was not.
func (r records) all(at func(int) *zone.RRset) []*zone.RRset {
	out := make([]*zone.RRset, len(r))
	for i := range r {
		out[i] = at(i)
	}
	return out
}

// Package xfr owns what danezone's secondaries receive: signed versions of a zone (every RRset
// with its signatures and the NSEC chain, as the primary serves them), the differences
// between versions, a bounded journal of them for IXFR (RFC 1995), and the record streams of
// AXFR (RFC 5936) and IXFR answers.
package xfr

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// Set is one RRset of a version with the signatures it was published with (none for glue, a
// delegation's NS and unsigned zones).
type Set struct {
	RRset *zone.RRset
	Sigs  []dns.RR

	// Where it sorts: Sets are in runs (authoritative data, glue, NSEC chain), each in
	// canonical order of owner (zone.Key) and type, so two versions are diffed in one walk.
	run uint8
	key string
	// refreshAt is when Sigs need refreshing (Unix nanoseconds; 0 for none).
	refreshAt int64
}

// The runs of Version.Sets.
const (
	runData uint8 = iota
	runGlue
	runNSEC
)

// before reports whether s sorts before o.
func (s *Set) before(o *Set) bool {
	if s.run != o.run {
		return s.run < o.run
	}
	if s.key != o.key {
		return s.key < o.key
	}
	return s.RRset.Type < o.RRset.Type
}

// Version is one signed version of a zone, immutable once built.
type Version struct {
	Serial uint32
	SOA    dns.RR    // the first and last record of a transfer
	Keys   *keys.Set // the keys that signed it; nil for an unsigned zone
	Sets   []Set     // every RRset (the SOA's too, for its signatures), then the NSEC chain
	// RefreshAt is when the first of its signatures needs refreshing (zero: none).
	RefreshAt time.Time
	Records   int // in a transfer, the SOA counted once

	chain denial.Chain // the NSEC or NSEC3 chain, reused by the next version
}

// Build makes the version of snapshot z, signed with ks (nil: unsigned) by s so that no
// signature needs refreshing before horizon (signatures cached or in prev that would are made
// anew). d is the snapshot's denier: its chain is used
// when it has one; otherwise (minimal denial, whose white lies a secondary cannot make) the
// NSEC chain is built for the transfer, from prev's where it can. Signing is spread over the
// cores.
func Build(z *zone.Zone, d denial.Denier, ks *keys.Set, s *signer.Signer, horizon time.Time, prev *Version) (*Version, error) {
	v := &Version{Serial: z.Serial, SOA: z.SOA.RRs[0], Keys: ks}
	var signed []int // indexes in v.Sets of the RRsets to sign
	if prev != nil {
		v.Sets = make([]Set, 0, len(prev.Sets)+16)
		signed = make([]int, 0, len(prev.Sets))
	}
	z.Walk(func(n *zone.Node) {
		run := runData
		if n.Occluded {
			run = runGlue
		}
		for _, set := range n.RRsets() {
			if ks != nil && n.Signed(set.Type) {
				signed = append(signed, len(v.Sets))
			}
			v.Sets = append(v.Sets, Set{RRset: set, run: run, key: n.Key})
			v.Records += len(set.RRs)
		}
	})
	v.Records++ // the closing SOA
	if ks != nil {
		var p denial.Chain
		if prev != nil {
			p = prev.chain
		}
		c := denial.TransferChain(d, z, p)
		v.chain = c
		for _, set := range c.Sets() {
			signed = append(signed, len(v.Sets))
			v.Sets = append(v.Sets, Set{RRset: set, run: runNSEC, key: zone.Key(set.Name)})
			v.Records += len(set.RRs)
		}
	}
	if len(signed) == 0 {
		return v, nil
	}
	// Signatures of RRsets unchanged since prev are prev's when none of prev's is due: the
	// common case of a small change to a large zone costs a walk, not a signer call per RRset.
	toSign := signed
	if prev != nil && prev.Keys == ks && horizon.Before(prev.RefreshAt) {
		toSign = nil
		i := 0
		for _, j := range signed {
			// Mostly the next one is the same RRset: no need to compare where they sort.
			if i >= len(prev.Sets) || prev.Sets[i].RRset != v.Sets[j].RRset {
				for i < len(prev.Sets) && prev.Sets[i].before(&v.Sets[j]) {
					i++
				}
			}
			// Only what prev signed: an RRset unsigned there (at a delegation point that is
			// gone now) is the same RRset, but must be signed here.
			if i < len(prev.Sets) && prev.Sets[i].RRset == v.Sets[j].RRset && len(prev.Sets[i].Sigs) > 0 {
				v.Sets[j].Sigs, v.Sets[j].refreshAt = prev.Sets[i].Sigs, prev.Sets[i].refreshAt
				i++
				continue
			}
			toSign = append(toSign, j)
		}
	}
	errs := make([]error, len(toSign))
	workers := min(runtime.GOMAXPROCS(0), (len(toSign)+255)/256)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(toSign); i += workers {
				set := &v.Sets[toSign[i]]
				var at time.Time
				set.Sigs, at, errs[i] = s.Ahead(set.RRset, ks, horizon)
				set.refreshAt = at.UnixNano()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("signing the zone for transfer: %w", err)
		}
	}
	first := int64(0)
	for _, j := range signed {
		v.Records += len(v.Sets[j].Sigs)
		if at := v.Sets[j].refreshAt; at != 0 && (first == 0 || at < first) {
			first = at
		}
	}
	v.RefreshAt = time.Unix(0, first)
	return v, nil
}

// Expire is the SOA EXPIRE of the version.
func (v *Version) Expire() uint32 { return v.SOA.(*dns.SOA).Expire }

// AXFR returns the records of a full transfer, in messages of at most batch records: the
// SOA, every RRset with its signatures, the SOA again (RFC 5936 §2.2).
func (v *Version) AXFR(batch int, send func([]dns.RR) bool) bool {
	out := []dns.RR{v.SOA}
	flush := func() bool {
		ok := send(out)
		out = make([]dns.RR, 0, batch)
		return ok
	}
	for _, s := range v.Sets {
		if s.RRset.Type != dns.TypeSOA {
			out = append(out, s.RRset.RRs...)
		}
		out = append(out, s.Sigs...)
		if len(out) >= batch && !flush() {
			return false
		}
	}
	out = append(out, v.SOA)
	return flush()
}

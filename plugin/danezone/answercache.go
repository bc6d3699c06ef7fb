package danezone

import (
	"context"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/request"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/wire"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultAnswerCache is the answer cache's bound per zone version, in responses: about 5 MB
// of them at the sizes a mail domain's answers have, about 55 MB at the most (wire.MaxEntry,
// with keys and the allocator's rounding).
const defaultAnswerCache = 10000

// maxAnswerCache bounds the directive: a million responses is about half a gigabyte at a mail
// domain's sizes.
const maxAnswerCache = 1_000_000

// cacheable reports whether the response to r may come from, and go to, the answer cache: a
// query without EDNS options (they are echoed, and options such as cookies are per client)
// that danezone packs itself (packable).
func cacheable(w dns.ResponseWriter, r *dns.Msg, opt *dns.OPT) bool {
	return !hasOptions(opt) && packable(w, r)
}

func hasOptions(opt *dns.OPT) bool { return opt != nil && len(opt.Option) > 0 }

// packable reports whether danezone writes the response to r as bytes it packed (wire.Pack):
// without TSIG (the response is signed as it is written), through the writers whose work on
// a message it knows how to do itself (see recorders).
func packable(w dns.ResponseWriter, r *dns.Msg) bool {
	if r.IsTsig() != nil {
		return false
	}
	_, ok := recorders(w, nil)
	return ok
}

// recorders walks the writers between the handler and CoreDNS's ScrubWriter, whose work on a
// message (request.SizeAndDo, request.Scrub) the cache does itself, and calls fn with each
// recorder of the metrics and log plugins (metrics: the metrics plugin's, which reads only
// the rcode). It reports false when some other writer is there (the dnssec or cache plugin's):
// it needs the message, not bytes.
func recorders(w dns.ResponseWriter, fn func(r *dnstest.Recorder, metrics bool)) (n int, ok bool) {
	for range 32 {
		switch x := w.(type) {
		case *request.ScrubWriter:
			return n, true
		case *metrics.Recorder:
			if fn != nil {
				fn(x.Recorder, true)
			}
			w, n = x.ResponseWriter, n+1
		case *dnstest.Recorder:
			if fn != nil {
				fn(x, false)
			}
			w, n = x.ResponseWriter, n+1
		default:
			// plugin.NextOrFailure wraps every writer it passes on in a writer that only
			// notes which plugin wrote: its type is unexported, so it is known by example.
			if reflect.TypeOf(w) != pluginWriter {
				return n, false
			}
			w = reflect.ValueOf(w).Elem().Field(0).Interface().(dns.ResponseWriter)
		}
	}
	return n, false
}

var pluginWriter = func() reflect.Type {
	var t reflect.Type
	plugin.NextOrFailure("danezone", plugin.HandlerFunc(func(_ context.Context, w dns.ResponseWriter, _ *dns.Msg) (int, error) {
		t = reflect.TypeOf(w)
		return 0, nil
	}), context.Background(), nil, nil)
	return t
}()

// observed tells the recorders above the ScrubWriter about a response to r written as bytes,
// as their WriteMsg would have: its rcode, and to a plain dnstest.Recorder (the log plugin's)
// a message, which the log plugin classifies (response.Typify) and prints flags from. The
// message is the entry's, made once where such a recorder is (Entry.Observe): the response as
// built (m, on the answer path) or, at the first hit, unpacked from the bytes sent (b). Each
// answer gets a copy with its own ID, RD and CD flags and question; the sections are shared.
func observed(w dns.ResponseWriter, r *dns.Msg, e *wire.Entry, m *dns.Msg, b []byte) {
	recorders(w, func(rec *dnstest.Recorder, metrics bool) {
		rec.Rcode = e.Rcode
		if metrics {
			return
		}
		kept := e.Observed()
		if kept == nil {
			if kept = m; kept == nil {
				kept = new(dns.Msg)
				if err := kept.Unpack(b); err != nil { // bytes Pack made: not expected
					if !unpackWarned.Swap(true) {
						log.Warningf("a cached response could not be unpacked for the log plugin: %v", err)
					}
					return
				}
			}
			e.Observe(kept)
		}
		c := *kept
		c.Id, c.RecursionDesired, c.CheckingDisabled, c.Question = r.Id, r.RecursionDesired, r.CheckingDisabled, r.Question
		rec.Msg = &c
	})
}

// unpackWarned: the warning above once, not per query.
var unpackWarned atomic.Bool

// wireFlags returns the flags of a query's wire.Query key.
func wireFlags(do, co bool, opt *dns.OPT, state request.Request) uint8 {
	var f uint8
	if do {
		f |= wire.FlagDO
	}
	if co {
		f |= wire.FlagCO
	}
	if opt != nil {
		f |= wire.FlagOPT
	}
	if state.Proto() == "tcp" {
		f |= wire.FlagTCP
	}
	return f
}

// negativeProof returns the key of an NXDOMAIN answer to qname that does not depend on the
// name (no record owned by it): the SOA and the denial records, when those are the zone's own
// (nsec and nsec3 chains, or none without DO); ok is false otherwise.
func negativeProof(snap *snapshot, qname string, qtype uint16, do bool, mode denial.Mode, q *wire.Query) (p wire.Proof, ok bool) {
	if do && mode == denial.Compacted { // the NSEC is at the name (RFC 9824 §3.1)
		return p, false
	}
	p = wire.Proof{Rcode: dns.RcodeNameError, Flags: q.Flags(), Size: q.Size()}
	p.Sets[0] = snap.z.SOA
	// Without DO, and in nsec mode, the chain says it all (zone.NXDomainIndex).
	ix, chain := snap.d.(denial.ByIndex)
	if !do || (chain && mode.Kind == denial.NSEC.Kind) {
		i, j, nx := snap.z.NXDomainIndex(qname)
		if !nx || !do {
			return p, nx
		}
		if sets, ok := ix.NXDomainAt(i, j); ok {
			p.Sets[1], p.Sets[2] = sets[0], sets[1]
			return p, true
		}
		return p, false
	}
	res := snap.z.Lookup(qname, qtype)
	if res.Kind != zone.NXDomain {
		return p, false
	}
	if do {
		for i, s := range snap.d.NXDomain(res.Encloser, res.NextCloser) {
			if s != nil && s.Ephemeral { // made for this name (white lies)
				return p, false
			}
			p.Sets[1+i] = s
		}
	}
	return p, true
}

// fits reports whether a response of n octets (with its OPT record) to the query q goes out
// as the answer path would send it: not truncated (see pack).
func fits(n int, q *wire.Query, opt *dns.OPT) bool {
	return n <= responseLimit(q.Flags()&wire.FlagTCP != 0, opt)
}

// scratch is what answering from the cache needs per query, pooled: the query's key and a
// buffer for the response.
type scratch struct {
	q   wire.Query
	buf []byte
}

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 1500)} }}

// release returns sc to the pool, without a buffer a large TCP answer grew.
func (sc *scratch) release() {
	if cap(sc.buf) > 4*1500 {
		sc.buf = make([]byte, 0, 1500)
	}
	scratches.Put(sc)
}

// fromCache answers r from the answer cache when it can: the packed response to the same
// question, or to a name denied by the same proof, from the version of the zone being served.
// Anything it does not handle (faults registered, other opcodes and classes, transfers, EDNS
// versions other than 0) goes to serve, which checks everything. Its frame is small: the
// write below it runs on the same goroutine stack.
func (d *DaneZone) fromCache(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) bool {
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery || r.Question[0].Qclass != dns.ClassINET ||
		(d.faults != nil && !d.faults.Empty()) {
		return false
	}
	qname, qtype := r.Question[0].Name, r.Question[0].Qtype
	switch qtype {
	case dns.TypeAXFR, dns.TypeIXFR, denial.TypeNXNAME:
		return false
	}
	opt := r.IsEdns0()
	if (opt != nil && opt.Version() != 0) || malformed(r) != dns.RcodeSuccess || !cacheable(w, r, opt) {
		return false
	}
	set := d.zones.Load()
	sz := set.match(qname, qtype)
	if sz == nil {
		return false
	}
	snap := sz.cur.Load()
	if snap.answers == nil {
		return false
	}
	state := request.Request{W: w, Req: r}
	do := opt != nil && opt.Do() && !snap.unsigned()
	sc := scratches.Get().(*scratch)
	defer sc.release()
	q := &sc.q
	if !q.Make(qname, qtype, wireFlags(do, do && opt.Co(), opt, state), uint16(state.Size())) {
		return false
	}
	now := sz.signer.Now()
	e := snap.answers.Get(q)
	if e == nil || !e.Usable(q, now, set.gen) {
		e = nil
		if p, ok := negativeProof(snap, qname, qtype, do, sz.mode, q); ok {
			if pe := snap.answers.GetProof(&p); pe != nil && pe.Usable(q, now, set.gen) && fits(pe.Len(q), q, opt) {
				e = pe
			}
		}
	}
	if e == nil {
		return false
	}
	c := d.counters(sz, metrics.WithServer(ctx))
	c.kinds[e.Kind].Inc()
	c.hits.Inc()
	d.record(state, sz, nil, e.Rcode)
	sc.buf = e.Append(sc.buf[:0], r, q, qtype, opt)
	observed(w, r, e, nil, sc.buf)
	w.Write(sc.buf) // an error is the transport's: as on the answer path, nothing else to send
	return true
}

// zoneCounters are a zone's per-query counters for one server label, looked up once rather
// than per query.
type zoneCounters struct {
	server       string
	kinds        [zone.DNAME + 1]prometheus.Counter
	hits, misses prometheus.Counter
}

func (d *DaneZone) counters(sz *servedZone, server string) *zoneCounters {
	if c := sz.counters.Load(); c != nil && c.server == server {
		return c
	}
	c := &zoneCounters{server: server, hits: answerCacheHits.WithLabelValues(server, sz.origin),
		misses: answerCacheMisses.WithLabelValues(server, sz.origin)}
	for k := range c.kinds {
		c.kinds[k] = responses.WithLabelValues(server, sz.origin, zone.Kind(k).String())
	}
	sz.counters.Store(c)
	return c
}

// keep stores the response e, as written, in the answer cache: by its proof when it has one
// that any name can use, by its question otherwise (proof nil).
func (d *DaneZone) keep(cache *wire.Cache, e *wire.Entry, proof *wire.Proof, a *answer, kind zone.Kind) {
	if proof != nil {
		if kind == zone.NXDomain && !e.Truncated() && e.Portable() {
			cache.PutProof(proof, e)
		}
		return
	}
	// A name that does not exist, or that a wildcard matched, is likely asked once (a flood of
	// random names): kept by name, they would only push out the answers asked again.
	if kind == zone.NXDomain || a.wildcard {
		return
	}
	cache.Put(e)
}

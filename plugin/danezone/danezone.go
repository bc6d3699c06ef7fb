// Package danezone is a CoreDNS plugin: authoritative DNS for mail domains, signed online, with
// exact denial of existence. The handler is thin: it picks the zone, looks the name up in an
// immutable snapshot, and adds signatures and proofs.
package danezone

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/request"
	"github.com/danelab/danelab/plugin/danezone/control"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/danelab/danelab/plugin/danezone/roll"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/danelab/danelab/plugin/danezone/wire"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// maxUDP is the largest UDP payload danezone sends: the DNS Flag Day 2020 size, which avoids IP
// fragmentation on practically every path.
const maxUDP = 1232

// maxChain caps the CNAME links followed inside a zone.
const maxChain = 8

// DaneZone is the plugin.
type DaneZone struct {
	Next  plugin.Handler
	zones atomic.Pointer[zoneSet]

	faults  *fault.Registry
	history *control.History // nil unless the control API is on

	trackers     []*tlsa.Tracker // TLSA records that follow certificates
	tlsaState    string
	tlsaLogged   map[string]string    // last error logged per host
	expiryLogged map[string]time.Time // last expiry warning per host
	newFiles     map[string]*settling // zone files not served yet, settling; the poll goroutine's

	pubMu      sync.Mutex // guards publishing and notify
	publishing bool       // publishers run (from OnStartup): zones added later get theirs too
	notify     func(zone string) error

	keyPolicy roll.Policy     // the key policy (rollover.go)
	rolling   bool            // the poll runs the key policy (reload is not 0)
	insecure  map[string]bool // zones going insecure (the insecure directive): no rolls asked
}

// Name implements plugin.Handler.
func (d *DaneZone) Name() string { return "danezone" }

// ServeDNS implements plugin.Handler.
func (d *DaneZone) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if d.fromCache(ctx, w, r) {
		return dns.RcodeSuccess, nil
	}
	return d.serve(ctx, w, r)
}

// serve answers from the zone: every query the answer cache did not.
func (d *DaneZone) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	state := request.Request{W: w, Req: r}
	// The request itself is checked before any lookup. CoreDNS's server has already answered
	// what miekg/dns cannot unpack (FORMERR), opcodes other than QUERY and NOTIFY (NOTIMP), and
	// a header without a question (SERVFAIL: see the README).
	if rcode := malformed(r); rcode != dns.RcodeSuccess {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil // written: the server must not answer a second time
	}
	if state.QClass() != dns.ClassINET {
		return plugin.NextOrFailure(d.Name(), d.Next, ctx, w, r)
	}
	qname, qtype := state.Name(), state.QType()
	set := d.zones.Load()
	sz := set.match(qname, qtype)
	if sz == nil {
		if d.Next == nil { // an authoritative server refuses what it is not authoritative for
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeRefused)
			w.WriteMsg(m)
			return dns.RcodeSuccess, nil
		}
		return plugin.NextOrFailure(d.Name(), d.Next, ctx, w, r)
	}
	if r.Opcode != dns.OpcodeQuery {
		// NOTIFY (RFC 1996) tells a secondary to transfer, and danezone is only ever the
		// primary; an opcode another plugin let through (UPDATE) is not implemented either.
		// Never answer them as queries (RFC 1035 §4.1.1: NOTIMP).
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNotImplemented)
		d.record(state, sz, nil, dns.RcodeNotImplemented)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	}

	server := metrics.WithServer(ctx)
	var f *fault.Fault
	if d.faults != nil {
		f = d.faults.Match(sz.origin, qname, qtype)
	}
	if f != nil {
		faultsApplied.WithLabelValues(server, sz.origin, string(f.Mode())).Inc()
		if transport(ctx, sz.origin, f, w, r, state.Proto() == "udp", func(rcode int) { d.record(state, sz, f, rcode) }) {
			return dns.RcodeSuccess, nil
		}
	}

	if qtype == dns.TypeAXFR || qtype == dns.TypeIXFR {
		// Transfers are the transfer plugin's, before us in the chain, for the secondaries
		// it allows; what reaches here is not allowed: refuse it rather than send an empty
		// answer.
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	}

	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	opt := r.IsEdns0()
	if opt != nil && opt.Version() != 0 { // RFC 6891 §6.1.3
		m.Rcode = dns.RcodeBadVers
		m.SetEdns0(maxUDP, opt.Do())
		w.WriteMsg(m)
		return dns.RcodeBadVers, nil
	}
	snap := sz.cur.Load()
	// A zone without keys in use (unsigned, or taken insecure) answers as if DO were clear.
	do := opt != nil && opt.Do() && !snap.unsigned()
	if qtype == denial.TypeNXNAME && sz.mode == denial.Compacted {
		// RFC 9824 §3.5: NXNAME is a meta-type; asked for explicitly, FORMERR with EDE 30.
		m.Rcode = dns.RcodeFormatError
		if opt != nil {
			m.SetEdns0(maxUDP, opt.Do())
			o := m.IsEdns0()
			o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeInvalidQueryType})
		}
		d.record(state, sz, nil, dns.RcodeFormatError)
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil // written: CoreDNS would send a second FORMERR otherwise
	}
	faulty := f != nil
	if f != nil && f.Mode().Data() {
		snap = sz.alts.get(f, snap, sz.mode)
	} else if d.faults != nil {
		if df := d.faults.DataFor(sz.origin, qname); df != nil {
			snap = sz.alts.get(df, snap, sz.mode)
			faulty = true
		}
	}
	co := do && opt.Co()

	// danezone packs the response itself when it can (q: see pack), and what the answer
	// cache did not have, it keeps (fromCache): never an answer with a fault.
	var q *wire.Query
	var sc *scratch
	if packable(w, r) {
		sc = scratches.Get().(*scratch)
		defer sc.release()
		if sc.q.Make(r.Question[0].Name, qtype, wireFlags(do, co, opt, state), uint16(state.Size())) {
			q = &sc.q
		}
	}
	var proof *wire.Proof
	cache := snap.answers
	if q == nil || faulty || hasOptions(opt) { // q made: packable; so the rest of cacheable
		cache = nil
	}
	if cache != nil {
		if p, ok := negativeProof(snap, qname, qtype, do, sz.mode, q); ok {
			proof = &p
		}
		d.counters(sz, server).misses.Inc()
	}

	a := &answer{m: m, do: do, co: co, sz: sz, snap: snap}
	kind := a.resolve(set, r.Question[0].Name, qtype)
	if a.err == nil && f != nil && !snap.unsigned() {
		a.err = d.damage(m, f, sz)
	}
	if a.err != nil {
		return d.serverFailure(w, r, state, sz, f, "the answer could not be signed", a.err)
	}

	d.counters(sz, server).kinds[kind].Inc()
	if a.hits > 0 {
		sigCacheHits.WithLabelValues(server, sz.origin).Add(float64(a.hits))
	}
	if a.misses > 0 {
		sigCacheMisses.WithLabelValues(server, sz.origin).Add(float64(a.misses))
		signaturesMade.WithLabelValues(server, sz.origin).Add(float64(a.made))
	}

	if q != nil && m.Rcode <= 0xf { // (an extended rcode, in the OPT record: CoreDNS's way)
		e, err := pack(m, q, state, opt)
		if errors.Is(err, errTooLarge) {
			return d.serverFailure(w, r, state, sz, f, "the answer does not fit a DNS message", err)
		}
		if err != nil {
			return d.serverFailure(w, r, state, sz, f, "the answer could not be encoded", err)
		}
		e.Set(m.Rcode, int(kind), a.until, set.gen)
		if a.synthesised {
			e.OnlyAs(q)
		}
		d.record(state, sz, f, m.Rcode)
		sc.buf = e.Append(sc.buf[:0], r, q, qtype, opt)
		observed(w, r, e, m, sc.buf)
		if _, err := w.Write(sc.buf); err == nil && cache != nil {
			d.keep(cache, e, proof, a, kind)
		}
		return dns.RcodeSuccess, nil // an error is the transport's: nothing else to send
	}

	// Through CoreDNS's writer, which adds the OPT record (the request's, with DO as asked):
	// leave room for it.
	m.Compress = true
	length := func(m *dns.Msg) int { return m.Len() }
	if state.Proto() == "udp" {
		size := dns.MinMsgSize
		if opt != nil {
			size = udpLimit(opt) - dns.Len(opt)
		}
		truncate(m, size, length)
	} else if length(m) > responseLimit(true, opt)-optLen(opt) {
		// Truncating over TCP would leave a partial, unverifiable answer with no bigger
		// transport to retry on. Zones are loaded so that this does not happen (zone.Limits).
		return d.serverFailure(w, r, state, sz, f, "the answer does not fit a DNS message", errTooLarge)
	}
	d.record(state, sz, f, m.Rcode)
	err := w.WriteMsg(m)
	if err != nil {
		// miekg/dns packs when writing: a record that cannot be encoded would otherwise
		// mean no reply at all. Any other error is the transport's (a TCP client gone): a
		// second write would not reach it either, and might corrupt a half-written stream.
		// (Packing again only on this path keeps the query path at one pack.)
		if _, perr := m.Pack(); perr != nil {
			return d.serverFailure(w, r, state, sz, f, "the answer could not be encoded", perr)
		}
		return dns.RcodeSuccess, nil
	}
	return dns.RcodeSuccess, nil
}

// udpLimit is the largest UDP response for a query with EDNS record opt: its size, at least
// 512 octets (RFC 6891 §6.2.5) and at most maxUDP.
func udpLimit(opt *dns.OPT) int { return min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDP) }

// responseLimit is the largest response, with its OPT record, to a query over TCP (65535
// octets, RFC 1035 §4.2.2) or UDP (512 octets without EDNS, RFC 1035 §4.2.1; udpLimit with).
func responseLimit(tcp bool, opt *dns.OPT) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case opt != nil:
		return udpLimit(opt)
	}
	return dns.MinMsgSize
}

func optLen(opt *dns.OPT) int {
	if opt == nil {
		return 0
	}
	return dns.Len(opt)
}

var errTooLarge = errors.New("the answer does not fit 65535 octets")

// pack makes the response's bytes as CoreDNS's writer would have, more compactly: the OPT
// record made from the query's (request.SizeAndDo, as the ScrubWriter does), names compressed
// (wire.Pack), cut to the client's UDP size (truncate). Over TCP a response larger than a DNS
// message is errTooLarge.
func pack(m *dns.Msg, q *wire.Query, state request.Request, opt *dns.OPT) (*wire.Entry, error) {
	state.SizeAndDo(m)
	e, err := wire.Pack(m, q)
	if err != nil {
		return nil, err
	}
	tcp := state.Proto() == "tcp"
	limit := responseLimit(tcp, opt)
	if e.Len(q) <= limit {
		return e, nil
	}
	if tcp {
		return nil, errTooLarge
	}
	truncate(m, limit, func(m *dns.Msg) int {
		if e, err := wire.Pack(m, q); err == nil {
			return e.Len(q)
		}
		return dns.MaxMsgSize + 1
	})
	return wire.Pack(m, q)
}

// serverFailure answers SERVFAIL for a response danezone could not build or encode, never
// nothing (a client can only time out on silence), with an extended error (RFC 8914 §4.1,
// Other, and what went wrong) when the query has EDNS to carry it. err goes to the errors
// plugin; the response is written, so the rcode returned says so.
func (d *DaneZone) serverFailure(w dns.ResponseWriter, r *dns.Msg, state request.Request, sz *servedZone, f *fault.Fault, why string, err error) (int, error) {
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(maxUDP, opt.Do())
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeOther, ExtraText: why})
	}
	err = fmt.Errorf("%s %s: %s: %w", r.Question[0].Name, dns.TypeToString[r.Question[0].Qtype], why, err)
	d.record(state, sz, f, dns.RcodeServerFailure)
	if werr := w.WriteMsg(m); werr != nil {
		return dns.RcodeServerFailure, plugin.Error(d.Name(), fmt.Errorf("%w; and the SERVFAIL: %v", err, werr))
	}
	return dns.RcodeSuccess, plugin.Error(d.Name(), err)
}

// malformed returns FORMERR for a request that cannot be interpreted, RcodeSuccess otherwise.
func malformed(r *dns.Msg) int {
	// One question: RFC 9619 for QUERY; with none there is nothing to answer (RFC 1035 §4.1.1).
	if len(r.Question) != 1 {
		return dns.RcodeFormatError
	}
	// RFC 6891 §6.1.1: more than one OPT RR is a FORMERR, and the OPT RR belongs in the
	// additional section.
	opts := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 {
		return dns.RcodeFormatError
	}
	for _, section := range [][]dns.RR{r.Answer, r.Ns} {
		for _, rr := range section {
			if rr.Header().Rrtype == dns.TypeOPT {
				return dns.RcodeFormatError
			}
		}
	}
	return dns.RcodeSuccess
}

// record adds the query to the control API's history, when there is one. It runs before the
// answer is written: once a client has its answer, the history holds the question, in the
// order the answers went out.
func (d *DaneZone) record(state request.Request, sz *servedZone, f *fault.Fault, rcode int) {
	if d.history == nil {
		return
	}
	q := control.Query{Zone: sz.origin, Name: strings.ToLower(state.Name()), Type: dns.TypeToString[state.QType()],
		Proto: state.Proto(), Remote: state.IP(), Rcode: "none"}
	if rcode >= 0 {
		q.Rcode = dns.RcodeToString[rcode]
	}
	if f != nil {
		q.Fault, q.Mode = f.ID, string(f.Mode())
	}
	d.history.Record(q)
}

// truncate makes m fit size, as length measures it. A response that loses any record of its
// answer or authority section (where the DNSSEC proofs live) is sent with TC=1 and only the
// question, so the client retries over TCP instead of trying to validate a partial answer. An
// OPT record stays.
func truncate(m *dns.Msg, size int, length func(*dns.Msg) int) {
	if length(m) <= size {
		return
	}
	// Additional data is optional: drop it first. Except the glue of a referral, which a
	// resolver needs to follow it: without it the client must retry over TCP (RFC 9471).
	var opt []dns.RR
	glue := false
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, rr)
		} else {
			glue = glue || !m.Authoritative
		}
	}
	m.Extra = opt
	if length(m) <= size {
		m.Truncated = glue
		return
	}
	m.Truncated = true
	m.Answer, m.Ns = nil, nil
}

// answer builds one response.
type answer struct {
	m    *dns.Msg
	do   bool
	co   bool // Compact Answers OK (RFC 9824 §4): NXDOMAIN stays NXDOMAIN in compact mode
	sz   *servedZone
	snap *snapshot
	seen map[string]bool // NSEC owners already in the authority section
	err  error
	// until is when the first signature in the answer is due for refresh (zero: none): the
	// answer cache must not serve it from then on.
	until time.Time
	// For the answer cache: a wildcard matched (the name is likely asked once), a CNAME was
	// synthesised from a DNAME (its target carries the question's spelling).
	wildcard, synthesised bool

	hits, misses, made int
}

// resolve fills the message for qname/qtype and returns the kind of the first step.
func (a *answer) resolve(set *zoneSet, qname string, qtype uint16) zone.Kind {
	z := a.snap.z
	first := zone.Kind(-1)
	visited := map[string]bool{}
	for hop := 0; ; hop++ {
		res := z.Lookup(qname, qtype)
		if first < 0 {
			first = res.Kind
		}
		switch res.Kind {
		case zone.Answer:
			a.addMatch(res, qname)
			return first
		case zone.CNAME:
			a.addMatch(res, qname)
			target := res.Set.RRs[0].(*dns.CNAME).Target
			visited[zone.Canonical(qname)] = true
			// Follow only inside this zone (not into a child zone served here too).
			if hop+1 >= maxChain || visited[target] || set.origin(target) != a.sz.origin {
				return first
			}
			qname = target
		case zone.NoData:
			a.wildcard = a.wildcard || res.Wildcard
			if a.positiveMeta(res, qname, qtype) {
				return first
			}
			if c, ok := a.snap.d.(denial.Compact); ok && res.Wildcard && a.do && a.meta(c.NoDataAt(qname, res.Node), qname, qtype) {
				return first // as if the name existed (RFC 9824 §3.3)
			}
			a.negative()
			if a.do {
				if c, ok := a.snap.d.(denial.Compact); ok && res.Wildcard {
					a.proof(c.NoDataAt(qname, res.Node)) // RFC 9824 §3.3
				} else if res.Wildcard {
					a.proof(a.snap.d.WildcardNoData(res.Node, res.Encloser, res.NextCloser)...)
				} else {
					a.proof(a.snap.d.NoData(res.Node)...)
				}
			}
			return first
		case zone.NXDomain:
			if c, ok := a.snap.d.(denial.Compact); ok && a.do {
				// RFC 9824 §3.1: NOERROR and one NSEC at the name listing NXNAME; with CO
				// the NXDOMAIN rcode is kept (§4).
				nx := c.NXName(qname)
				if a.meta(nx, qname, qtype) {
					return first
				}
				if a.co {
					a.m.Rcode = dns.RcodeNameError
				}
				a.negative()
				a.proof(nx)
				return first
			}
			a.m.Rcode = dns.RcodeNameError
			a.negative()
			if a.do {
				sets := a.snap.d.NXDomain(res.Encloser, res.NextCloser)
				a.proof(sets[:]...)
			}
			return first
		case zone.Referral:
			if hop == 0 {
				a.referral(res.Node)
			}
			return first
		case zone.DNAME:
			// RFC 6672: the signed DNAME, then a CNAME synthesised from it (unsigned: a
			// validator synthesises and checks it itself), then the answer for the target.
			a.add(&a.m.Answer, res.Set, res.Set.Name, res.Set.TTL)
			d := res.Set.RRs[0].(*dns.DNAME)
			drop := dns.CountLabel(qname) - dns.CountLabel(res.Set.Name)
			target := qname[:dns.Split(qname)[drop]] + d.Target
			if _, ok := dns.IsDomainName(target); !ok { // longer than 255 octets (RFC 6672 §2.2)
				a.m.Rcode = dns.RcodeYXDomain
				return first
			}
			a.synthesised = true
			a.m.Answer = append(a.m.Answer, &dns.CNAME{
				Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: res.Set.TTL},
				Target: target})
			visited[zone.Canonical(qname)] = true
			if hop+1 >= maxChain || visited[zone.Canonical(target)] || set.origin(target) != a.sz.origin {
				return first
			}
			qname = target
		}
	}
}

// meta answers an NSEC or RRSIG question at a name whose only RRset is the NSEC nx (compact
// denial: a name that does not exist, or one a wildcard matched): the NSEC, or its RRSIGs,
// is the answer; a NODATA whose NSEC lists the type asked would be bogus.
func (a *answer) meta(nx *zone.RRset, qname string, qtype uint16) bool {
	switch qtype {
	case dns.TypeNSEC:
		a.add(&a.m.Answer, nx, qname, nx.TTL)
		return true
	case dns.TypeRRSIG:
		a.sigs(&a.m.Answer, nx, qname, nx.TTL)
		return true
	}
	return false
}

// addMatch adds the RRset a lookup found at qname, or a wildcard synthesised for it, with
// the proof that no closer name exists; in compact denial the synthesised RRset is signed as
// if it were at qname, and needs no proof (RFC 9824 §3.3).
func (a *answer) addMatch(res zone.Result, qname string) {
	if _, ok := a.snap.d.(denial.Compact); ok && res.Wildcard && a.do {
		a.wildcard = true
		set := &zone.RRset{Name: zone.Canonical(qname), Type: res.Set.Type, TTL: res.Set.TTL, Ephemeral: true}
		for _, rr := range res.Set.RRs {
			c := dns.Copy(rr)
			c.Header().Name = set.Name
			set.RRs = append(set.RRs, c)
		}
		a.add(&a.m.Answer, set, qname, set.TTL)
		return
	}
	a.add(&a.m.Answer, res.Set, qname, res.Set.TTL)
	if res.Wildcard {
		a.wildcard = true
		a.proveNoCloser(res)
	}
}

// positiveMeta answers NSEC and RRSIG questions at an existing name, which a lookup of the
// zone data reports as no data: both types are danezone's own.
func (a *answer) positiveMeta(res zone.Result, qname string, qtype uint16) bool {
	if res.Wildcard {
		return false
	}
	switch qtype {
	case dns.TypeNSEC:
		if n := a.snap.d.Own(res.Node); n != nil {
			a.add(&a.m.Answer, n, qname, n.TTL)
			return true
		}
	case dns.TypeRRSIG:
		if res.Node.ENT() {
			// An empty non-terminal owns an NSEC in the per-answer modes: its RRSIGs are the
			// answer (a NODATA whose NSEC lists RRSIG would be bogus); none in nsec mode.
			if n := a.snap.d.Own(res.Node); n != nil && a.do {
				a.sigs(&a.m.Answer, n, qname, n.TTL)
				return a.err == nil
			}
			return false
		}
		for _, s := range res.Node.RRsets() {
			if res.Node.Cut && s.Type != dns.TypeDS {
				continue
			}
			a.sigs(&a.m.Answer, s, qname, s.TTL)
		}
		if n := a.snap.d.Own(res.Node); n != nil {
			a.sigs(&a.m.Answer, n, qname, n.TTL)
		}
		return a.err == nil && len(a.m.Answer) > 0
	}
	return false
}

// negative adds the SOA of a negative answer, with the negative TTL (RFC 2308 §3, RFC 9077).
func (a *answer) negative() {
	z := a.snap.z
	a.add(&a.m.Ns, z.SOA, z.Origin, z.NegTTL)
}

// proveNoCloser proves that no name closer than the wildcard exists (RFC 4035 §3.1.3.3).
func (a *answer) proveNoCloser(res zone.Result) {
	if a.do {
		a.proof(a.snap.d.Wildcard(res.Encloser, res.NextCloser)...)
	}
}

// proof adds denial records to the authority section, each owner once.
func (a *answer) proof(sets ...*zone.RRset) {
	for _, set := range sets {
		if set == nil || a.seen[set.Name] {
			continue
		}
		if a.seen == nil {
			a.seen = map[string]bool{}
		}
		a.seen[set.Name] = true
		a.add(&a.m.Ns, set, set.Name, set.TTL)
	}
}

// referral answers for a name at or below a delegation point: NS, then the signed DS or the
// proof that there is none, then glue (RFC 4035 §3.1.4).
func (a *answer) referral(cut *zone.Node) {
	a.m.Authoritative = false
	ns := cut.Set(dns.TypeNS)
	a.m.Ns = append(a.m.Ns, ns.RRs...) // the child's NS: not authoritative here, never signed
	if a.do {
		if ds := cut.Set(dns.TypeDS); ds != nil {
			a.add(&a.m.Ns, ds, ds.Name, ds.TTL)
		} else {
			a.proof(a.snap.d.NoData(cut)...)
		}
	}
	z := a.snap.z
	for _, rr := range ns.RRs {
		target := rr.(*dns.NS).Ns
		if !dns.IsSubDomain(z.Origin, target) {
			continue
		}
		n := z.Node(target)
		if n == nil {
			continue
		}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if s := n.Set(t); s != nil {
				if n.Occluded || n.Cut { // glue is not authoritative: never signed
					a.m.Extra = append(a.m.Extra, s.RRs...)
				} else {
					a.add(&a.m.Extra, s, s.Name, s.TTL)
				}
			}
		}
	}
}

// add appends set to section with the given owner spelling and TTL, and its signatures when
// DO is set. Records are shared with the zone when nothing about them changes, copied
// otherwise: a response never modifies zone data.
func (a *answer) add(section *[]dns.RR, set *zone.RRset, owner string, ttl uint32) {
	appendRRs(section, set.RRs, owner, set.Name, ttl, set.TTL)
	if a.do {
		a.sigs(section, set, owner, ttl)
	}
}

func (a *answer) sigs(section *[]dns.RR, set *zone.RRset, owner string, ttl uint32) {
	var sigs []dns.RR
	var made int
	var err error
	var until time.Time
	if set.Ephemeral {
		sigs, until, err = a.sz.signer.SignOnceUntil(set, a.snap.keys)
		made = len(sigs)
	} else {
		sigs, made, until, err = a.sz.signer.SignUntil(set, a.snap.keys)
	}
	if err != nil {
		a.err = err
		return
	}
	if a.until.IsZero() || until.Before(a.until) {
		a.until = until
	}
	if made > 0 {
		a.misses++
		a.made += made
	} else {
		a.hits++
	}
	appendRRs(section, sigs, owner, set.Name, ttl, set.TTL)
}

func appendRRs(section *[]dns.RR, rrs []dns.RR, owner, name string, ttl, setTTL uint32) {
	if owner == name && ttl == setTTL {
		*section = append(*section, rrs...)
		return
	}
	for _, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		c.Header().Ttl = ttl
		*section = append(*section, c)
	}
}

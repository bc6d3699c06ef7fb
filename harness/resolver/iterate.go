package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// delegation is a zone cut and the addresses of its servers.
type delegation struct {
	zone    string
	addrs   []string // "ip:port"
	expires time.Time
}

// cachedMsg is a response kept for its TTL.
type cachedMsg struct {
	msg     *dns.Msg
	zone    string // the zone whose servers answered
	stored  time.Time
	expires time.Time
}

const (
	maxReferrals = 24 // referrals followed for one question
	maxNSDepth   = 4  // nesting of NS address lookups
	maxNSLookups = 4  // NS names resolved for one delegation without glue
)

// iterate asks qname/qtype starting at the closest known delegation and follows referrals
// until a server answers. It returns the response and the zone whose servers gave it.
func (q *query) iterate(qname string, qtype uint16) (*dns.Msg, string, error) {
	qname = canonical(qname)
	key := setKey(qname, qtype)
	if c, ok := q.msgs[key]; ok {
		return c.msg, c.zone, nil
	}
	if c, ok := q.r.lookupMsg(key, q.now); ok {
		q.msgs[key] = c
		return c.msg, c.zone, nil
	}
	if q.busy[key] {
		return nil, "", fmt.Errorf("resolution loop: %s %s is already being resolved", qname, dns.Type(qtype))
	}
	q.busy[key] = true
	defer delete(q.busy, key)

	d := q.closestDelegation(qname, qtype)
	for range maxReferrals {
		resp, err := q.ask(d, qname, qtype)
		if err != nil {
			return nil, d.zone, fmt.Errorf("servers of %s: %w", d.zone, err)
		}
		if child, ok := referral(resp, d.zone, qname, qtype); ok {
			nd := q.delegationFrom(resp, d.zone, child)
			if len(nd.addrs) == 0 {
				return nil, d.zone, fmt.Errorf("referral to %s: no usable server address", child)
			}
			d = nd
			continue
		}
		q.storeMsg(key, resp, d.zone)
		return resp, d.zone, nil
	}
	return nil, d.zone, fmt.Errorf("more than %d referrals", maxReferrals)
}

// referral reports whether resp, from a server of zone, delegates a zone below zone that
// holds qname, and returns the child zone. A referral for qname itself is no referral for
// a DS question: the DS lives at the parent and whatever the parent says is its answer.
func referral(resp *dns.Msg, zone, qname string, qtype uint16) (string, bool) {
	if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) > 0 {
		return "", false
	}
	child := ""
	for _, rr := range resp.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeSOA:
			return "", false
		case dns.TypeNS:
			o := canonical(rr.Header().Name)
			if isStrictSubDomain(zone, o) && isSubDomain(o, qname) && !(qtype == dns.TypeDS && o == qname) {
				child = o
			}
		}
	}
	return child, child != ""
}

func (q *query) port() string {
	if q.r.cfg.Port != 0 {
		return strconv.Itoa(q.r.cfg.Port)
	}
	return "53"
}

// closestDelegation returns the deepest known zone cut above qname (strictly above it for
// DS, which the parent serves), the root if none.
func (q *query) closestDelegation(qname string, qtype uint16) *delegation {
	n := dns.CountLabel(qname)
	if qtype == dns.TypeDS && qname != "." {
		n--
	}
	for ; n > 0; n-- {
		anc := lastLabels(qname, n)
		if d, ok := q.delegs[anc]; ok {
			return d
		}
		if d, ok := q.r.lookupDeleg(anc, q.now); ok {
			q.delegs[anc] = d
			return d
		}
	}
	return &delegation{zone: ".", addrs: q.r.cfg.Roots}
}

// delegationFrom makes the delegation to child from a referral given by a server of parent:
// glue within the parent's bailiwick, else the addresses of the NS names looked up.
func (q *query) delegationFrom(resp *dns.Msg, parent, child string) *delegation {
	var names []string
	ttl := uint32(86400)
	for _, rr := range resp.Ns {
		if ns, ok := rr.(*dns.NS); ok && canonical(ns.Hdr.Name) == child {
			names = append(names, canonical(ns.Ns))
			ttl = min(ttl, ns.Hdr.Ttl)
		}
	}
	d := &delegation{zone: child}
	seen := map[string]bool{}
	add := func(ip string) {
		a := net.JoinHostPort(ip, q.port())
		if !seen[a] {
			seen[a] = true
			d.addrs = append(d.addrs, a)
		}
	}
	isNS := func(name string) bool {
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
	for _, rr := range resp.Extra {
		owner := canonical(rr.Header().Name)
		if !isNS(owner) || !isSubDomain(parent, owner) {
			continue
		}
		switch a := rr.(type) {
		case *dns.A:
			add(a.A.String())
			ttl = min(ttl, a.Hdr.Ttl)
		case *dns.AAAA:
			add(a.AAAA.String())
			ttl = min(ttl, a.Hdr.Ttl)
		}
	}
	if len(d.addrs) == 0 {
		looked := 0
		for _, n := range names {
			if isSubDomain(child, n) || looked == maxNSLookups {
				continue // in the child's bailiwick without glue: unreachable
			}
			looked++
			for _, ip := range q.lookupAddrs(n) {
				add(ip)
			}
		}
	}
	d.expires = q.now.Add(time.Duration(ttl) * time.Second)
	if len(d.addrs) > 0 {
		q.delegs[child] = d
		q.r.storeDeleg(d)
	}
	return d
}

// lookupAddrs resolves the addresses of a name server (without validation: addresses need
// none, what they serve is validated).
func (q *query) lookupAddrs(name string) []string {
	if q.depth >= maxNSDepth {
		return nil
	}
	q.depth++
	defer func() { q.depth-- }()
	var ips []string
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, _, err := q.iterate(name, t)
		if err != nil {
			continue
		}
		for _, rr := range resp.Answer {
			switch a := rr.(type) {
			case *dns.A:
				ips = append(ips, a.A.String())
			case *dns.AAAA:
				ips = append(ips, a.AAAA.String())
			}
		}
		if len(ips) > 0 {
			break
		}
	}
	return ips
}

var errQueryLimit = errors.New("query limit reached")

// ask sends the question to the servers of d in turn until one gives a usable answer.
func (q *query) ask(d *delegation, qname string, qtype uint16) (*dns.Msg, error) {
	var lastErr error
	for _, addr := range d.addrs {
	attempts:
		for range q.r.cfg.Retries + 1 {
			if err := q.ctx.Err(); err != nil {
				return nil, err
			}
			if q.queries >= q.r.cfg.MaxQueries {
				return nil, errQueryLimit
			}
			resp, err := q.exchange(addr, qname, qtype)
			if err != nil {
				lastErr = fmt.Errorf("%s: %w", addr, err)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue // retry this address
				}
				break attempts
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, nil
			}
			lastErr = fmt.Errorf("%s answered %s", addr, dns.RcodeToString[resp.Rcode])
			break attempts
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no server address")
	}
	return nil, lastErr
}

// exchange sends one question to one server: UDP with EDNS (1232 octets), DO and CD set,
// and again over TCP if the answer is truncated.
func (q *query) exchange(addr, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = false
	m.CheckingDisabled = true
	m.SetEdns0(1232, true)

	try := func(network string) (*dns.Msg, error) {
		q.queries++
		ctx, cancel := context.WithTimeout(q.ctx, q.r.cfg.Timeout)
		defer cancel()
		c := &dns.Client{Net: network, Timeout: q.r.cfg.Timeout, UDPSize: 1232}
		resp, _, err := c.ExchangeContext(ctx, m, addr)
		return resp, err
	}
	resp, err := try("udp")
	if err == nil && resp.Truncated {
		resp, err = try("tcp")
	}
	if err != nil {
		return nil, err
	}
	if resp.Truncated {
		return nil, errors.New("truncated answer over TCP")
	}
	if !resp.Response || resp.Opcode != dns.OpcodeQuery || len(resp.Question) != 1 ||
		!equalNames(resp.Question[0].Name, qname) || resp.Question[0].Qtype != qtype ||
		resp.Question[0].Qclass != dns.ClassINET {
		return nil, errors.New("answer to another question")
	}
	return resp, nil
}

// storeMsg keeps a response for this Resolve and, with Cache, for its TTL.
func (q *query) storeMsg(key string, resp *dns.Msg, zone string) {
	c := cachedMsg{msg: resp, zone: zone, stored: q.now}
	q.msgs[key] = c
	if !q.r.cfg.Cache {
		return
	}
	ttl, ok := msgTTL(resp)
	if !ok || ttl == 0 {
		return
	}
	c.expires = q.now.Add(time.Duration(ttl) * time.Second)
	c.msg = resp.Copy() // the caller's Result shares resp's records
	q.r.mu.Lock()
	q.r.msgs[key] = c
	q.r.mu.Unlock()
}

// msgTTL returns the time a response may be kept: the lowest TTL of its answer and
// authority records, the SOA's capped by its minimum field (RFC 2308).
func msgTTL(m *dns.Msg) (uint32, bool) {
	ttl, ok := uint32(0), false
	for _, rr := range append(m.Answer[:len(m.Answer):len(m.Answer)], m.Ns...) {
		t := rr.Header().Ttl
		if soa, isSOA := rr.(*dns.SOA); isSOA {
			t = min(t, soa.Minttl)
		}
		if !ok || t < ttl {
			ttl, ok = t, true
		}
	}
	return ttl, ok
}

// lookupMsg returns a cached response, a copy with its TTLs counted down to now.
func (r *Resolver) lookupMsg(key string, now time.Time) (cachedMsg, bool) {
	if !r.cfg.Cache {
		return cachedMsg{}, false
	}
	r.mu.Lock()
	c, ok := r.msgs[key]
	if ok && !now.Before(c.expires) {
		delete(r.msgs, key)
		ok = false
	}
	r.mu.Unlock()
	if !ok {
		return cachedMsg{}, false
	}
	elapsed := uint32(max(0, now.Sub(c.stored)/time.Second))
	m := c.msg.Copy()
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > elapsed {
				h.Ttl -= elapsed
			} else {
				h.Ttl = 0
			}
		}
	}
	return cachedMsg{msg: m, zone: c.zone, stored: now, expires: c.expires}, true
}

func (r *Resolver) lookupDeleg(zone string, now time.Time) (*delegation, bool) {
	if !r.cfg.Cache {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.delegs[zone]
	if ok && !now.Before(d.expires) {
		delete(r.delegs, zone)
		return nil, false
	}
	return d, ok
}

func (r *Resolver) storeDeleg(d *delegation) {
	if !r.cfg.Cache || !d.expires.After(time.Time{}) {
		return
	}
	r.mu.Lock()
	r.delegs[d.zone] = d
	r.mu.Unlock()
}

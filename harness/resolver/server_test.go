package resolver

// A tiny authoritative server for the tests: it serves the zones of one address, answering
// authoritatively with DNSSEC proofs, referring to child zones it does not serve, with
// faults (drop, truncate over UDP, strip denial records) selected by name.

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

type authServer struct {
	ip    string
	addr  string
	zones map[string]*tzone

	mu       sync.Mutex
	drop     map[string]bool                          // names never answered
	tcOnly   map[string]bool                          // names answered with TC=1 over UDP
	noDenial map[string]bool                          // names at or below these lose their NSEC/NSEC3 in negative answers
	rewrite  map[string]func(z *tzone, resp *dns.Msg) // by "qname|TYPE": forge the answer

	queries    atomic.Int64
	tcpQueries atomic.Int64

	servers []*dns.Server
}

func newAuthServer(ip string) *authServer {
	return &authServer{ip: ip, zones: map[string]*tzone{},
		drop: map[string]bool{}, tcOnly: map[string]bool{}, noDenial: map[string]bool{},
		rewrite: map[string]func(*tzone, *dns.Msg){}}
}

// start serves UDP and TCP on ip:port.
func (s *authServer) start(port int) error {
	s.addr = net.JoinHostPort(s.ip, fmt.Sprint(port))
	pc, err := net.ListenPacket("udp", s.addr)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		pc.Close()
		return err
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: l, Handler: s}
	s.servers = []*dns.Server{udp, tcp}
	for _, srv := range s.servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("server %s did not start", s.addr)
		}
	}
	return nil
}

func (s *authServer) stop() {
	for _, srv := range s.servers {
		srv.Shutdown()
	}
}

func (s *authServer) faulted(m map[string]bool, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[name]
}

func (s *authServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	tcp := w.LocalAddr().Network() == "tcp"
	if tcp {
		s.tcpQueries.Add(1)
	}
	resp := new(dns.Msg)
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	qname := canonical(q.Name)
	if s.faulted(s.drop, qname) {
		return
	}
	resp.SetReply(req)
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()
	if !tcp && s.faulted(s.tcOnly, qname) {
		resp.Truncated = true
		w.WriteMsg(resp)
		return
	}
	z := s.zoneFor(qname, q.Qtype)
	if z == nil {
		resp.Rcode = dns.RcodeRefused
		w.WriteMsg(resp)
		return
	}
	z.answer(resp, qname, q.Qtype, do)
	s.mu.Lock()
	rw := s.rewrite[fkey(qname, q.Qtype)]
	s.mu.Unlock()
	if rw != nil {
		rw(z, resp)
	}
	if len(resp.Answer) == 0 && s.denialStripped(qname) {
		var ns []dns.RR
		for _, rr := range resp.Ns {
			t := rr.Header().Rrtype
			if sig, ok := rr.(*dns.RRSIG); ok {
				t = sig.TypeCovered
			}
			if t != dns.TypeNSEC && t != dns.TypeNSEC3 {
				ns = append(ns, rr)
			}
		}
		resp.Ns = ns
	}
	size := dns.MinMsgSize
	if opt != nil {
		resp.SetEdns0(1232, do)
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	if !tcp {
		resp.Truncate(size)
	}
	w.WriteMsg(resp)
}

func (s *authServer) denialStripped(qname string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.noDenial {
		if isSubDomain(n, qname) {
			return true
		}
	}
	return false
}

// zoneFor returns the served zone that answers qname/qtype: the deepest enclosing one, its
// parent for a DS at its apex when the parent is served here too.
func (s *authServer) zoneFor(qname string, qtype uint16) *tzone {
	var best *tzone
	for _, z := range s.zones {
		if isSubDomain(z.origin, qname) && (best == nil || dns.CountLabel(z.origin) > dns.CountLabel(best.origin)) {
			best = z
		}
	}
	if best != nil && qtype == dns.TypeDS && best.origin == qname && qname != "." {
		for _, z := range s.zones {
			if z.origin == parentName(qname) {
				return z
			}
		}
	}
	return best
}

// withSigs returns rrs followed, with do, by their RRSIGs.
func (z *tzone) withSigs(owner string, t uint16, rrs []dns.RR, do bool) []dns.RR {
	out := append([]dns.RR(nil), rrs...)
	if do && z.signed {
		out = append(out, z.sigs[canonical(owner)][t]...)
	}
	return out
}

func (z *tzone) soa(do bool) []dns.RR {
	return z.withSigs(z.origin, dns.TypeSOA, z.data[z.origin][dns.TypeSOA], do)
}

func (z *tzone) nsecRRs(n *dns.NSEC, do bool) []dns.RR {
	if n == nil || !do {
		return nil
	}
	return z.withSigs(n.Hdr.Name, dns.TypeNSEC, []dns.RR{n}, do)
}

func (z *tzone) nsec3RRs(n *dns.NSEC3, do bool) []dns.RR {
	if n == nil || !do {
		return nil
	}
	return z.withSigs(n.Hdr.Name, dns.TypeNSEC3, []dns.RR{n}, do)
}

// addDenial appends records to the authority section once each.
func addUnique(section []dns.RR, rrs ...dns.RR) []dns.RR {
	for _, rr := range rrs {
		dup := false
		for _, have := range section {
			if dns.IsDuplicate(have, rr) {
				if s1, ok := have.(*dns.RRSIG); ok {
					if s2, ok := rr.(*dns.RRSIG); ok && s1.Signature != s2.Signature {
						continue
					}
				}
				dup = true
				break
			}
		}
		if !dup {
			section = append(section, rr)
		}
	}
	return section
}

// answer fills resp with the zone's answer to qname/qtype.
func (z *tzone) answer(resp *dns.Msg, qname string, qtype uint16, do bool) {
	// A delegation above qname (or at it, except for DS): a referral.
	for c := range z.cuts {
		if isSubDomain(c, qname) && !(qtype == dns.TypeDS && c == qname) {
			z.referral(resp, c, do)
			return
		}
	}
	resp.Authoritative = true
	for n := parentName(qname); isStrictSubDomain(z.origin, qname) && isSubDomain(z.origin, n); n = parentName(n) {
		if d := z.data[n][dns.TypeDNAME]; d != nil { // RFC 6672 substitution
			resp.Answer = append(resp.Answer, z.withSigs(n, dns.TypeDNAME, d, do)...)
			target := strings.TrimSuffix(qname, n) + d[0].(*dns.DNAME).Target
			resp.Answer = append(resp.Answer, &dns.CNAME{
				Hdr:    dns.RR_Header{Name: qname, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: d[0].Header().Ttl},
				Target: target,
			})
			return
		}
		if n == z.origin {
			break
		}
	}
	if z.exists[qname] {
		for range 8 { // follow CNAMEs within the zone
			if rrs := z.data[qname][qtype]; rrs != nil {
				resp.Answer = append(resp.Answer, z.withSigs(qname, qtype, rrs, do)...)
				return
			}
			cn := z.data[qname][dns.TypeCNAME]
			if cn == nil || qtype == dns.TypeCNAME {
				break
			}
			resp.Answer = append(resp.Answer, z.withSigs(qname, dns.TypeCNAME, cn, do)...)
			target := canonical(cn[0].(*dns.CNAME).Target)
			if !isSubDomain(z.origin, target) || z.occluded(target) || z.data[target] == nil {
				return // the resolver goes on from here
			}
			qname = target
		}
		if len(resp.Answer) > 0 {
			return
		}
		// NODATA
		resp.Ns = append(resp.Ns, z.soa(do)...)
		if z.nsec3 != nil {
			resp.Ns = addUnique(resp.Ns, z.n3exact(qname, do)...)
		} else if n := z.nsecs[qname]; n != nil {
			resp.Ns = addUnique(resp.Ns, z.nsecRRs(n, do)...)
		} else { // an empty non-terminal: the NSEC covering it
			resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.predecessor(qname), do)...)
		}
		return
	}
	ce := z.closestEncloser(qname)
	nc := childToward(ce, qname)
	wc := wildcardOf(ce)
	if z.data[wc] != nil {
		t := qtype
		if z.data[wc][t] == nil && z.data[wc][dns.TypeCNAME] != nil {
			t = dns.TypeCNAME
		}
		if rrs := z.data[wc][t]; rrs != nil {
			for _, rr := range z.withSigs(wc, t, rrs, do) {
				c := dns.Copy(rr)
				c.Header().Name = qname
				resp.Answer = append(resp.Answer, c)
			}
			if z.nsec3 != nil {
				resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover(nc), do)...)
			} else {
				resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.predecessor(qname), do)...)
			}
			return
		}
		// wildcard NODATA
		resp.Ns = append(resp.Ns, z.soa(do)...)
		if z.nsec3 != nil {
			resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3match(ce), do)...)
			resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover(nc), do)...)
			resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3match(wc), do)...)
		} else {
			resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.predecessor(qname), do)...)
			resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.nsecs[wc], do)...)
		}
		return
	}
	// NXDOMAIN
	resp.Rcode = dns.RcodeNameError
	resp.Ns = append(resp.Ns, z.soa(do)...)
	if z.nsec3 != nil {
		resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3match(ce), do)...)
		resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover(nc), do)...)
		resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover(wc), do)...)
	} else if len(z.chain) > 0 {
		resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.predecessor(qname), do)...)
		resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.predecessor(wc), do)...)
	}
}

// referral fills resp with a referral to the child zone at cut c: its NS records, the DS
// (or the proof there is none) and the glue.
func (z *tzone) referral(resp *dns.Msg, c string, do bool) {
	ns := z.data[c][dns.TypeNS]
	resp.Ns = append(resp.Ns, ns...)
	if ds := z.data[c][dns.TypeDS]; ds != nil {
		resp.Ns = append(resp.Ns, z.withSigs(c, dns.TypeDS, ds, do)...)
	} else if z.nsec3 != nil {
		resp.Ns = addUnique(resp.Ns, z.n3exact(c, do)...)
	} else {
		resp.Ns = addUnique(resp.Ns, z.nsecRRs(z.nsecs[c], do)...)
	}
	for _, rr := range ns {
		target := canonical(rr.(*dns.NS).Ns)
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			resp.Extra = append(resp.Extra, z.data[target][t]...)
		}
	}
}

// n3exact returns the NSEC3 matching name or, for a name left out of an opt-out chain, the
// closest encloser proof: the NSEC3 of the closest ancestor in the chain and the (opt-out)
// NSEC3 covering the next closer name.
func (z *tzone) n3exact(name string, do bool) []dns.RR {
	if m := z.n3match(name); m != nil {
		return z.nsec3RRs(m, do)
	}
	ce := parentName(name)
	for z.n3match(ce) == nil && ce != z.origin {
		ce = parentName(ce)
	}
	out := z.nsec3RRs(z.n3match(ce), do)
	return addUnique(out, z.nsec3RRs(z.n3cover(childToward(ce, name)), do)...)
}

// String names the server for test logs.
func (s *authServer) String() string {
	var origins []string
	for o := range s.zones {
		origins = append(origins, o)
	}
	return s.addr + " " + strings.Join(origins, " ")
}

// listenUDP binds a UDP socket on loopback that nobody reads.
func listenUDP() (net.PacketConn, error) { return net.ListenPacket("udp", "127.0.0.1:0") }

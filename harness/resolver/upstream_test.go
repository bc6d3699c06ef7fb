package resolver

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeUpstream is a "validating resolver" whose verdicts are chosen by the name asked.
type fakeUpstream struct {
	addr    string
	badFlag atomic.Bool // a query came without RD, DO or AD
	servers []*dns.Server
}

func (f *fakeUpstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	opt := req.IsEdns0()
	if !req.RecursionDesired || !req.AuthenticatedData || opt == nil || !opt.Do() {
		f.badFlag.Store(true)
	}
	q := req.Question[0]
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	resp.SetEdns0(1232, true)
	a := func(name string) dns.RR { return mustRR(name + " 60 IN A 192.0.2.1") }
	switch q.Name {
	case "secure.example.":
		resp.AuthenticatedData = true
		resp.Answer = []dns.RR{a(q.Name)}
	case "insecure.example.":
		resp.Answer = []dns.RR{a(q.Name)}
	case "nx.example.":
		resp.AuthenticatedData = true
		resp.Rcode = dns.RcodeNameError
	case "bogus.example.", "unreach.example.":
		resp.Rcode = dns.RcodeServerFailure
		code := uint16(dns.ExtendedErrorCodeSignatureExpired)
		if q.Name == "unreach.example." {
			code = dns.ExtendedErrorCodeNoReachableAuthority
		}
		opt := resp.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: "from the fake"})
	case "fail.example.":
		resp.Rcode = dns.RcodeServerFailure
	case "drop.example.":
		return
	case "big.example.":
		if w.LocalAddr().Network() != "tcp" {
			resp.Truncated = true
			break
		}
		resp.AuthenticatedData = true
		resp.Answer = []dns.RR{a(q.Name)}
	case "chain.example.":
		resp.AuthenticatedData = true
		resp.Answer = []dns.RR{mustRR("chain.example. 60 IN CNAME secure.example."), a("secure.example.")}
	default:
		resp.Rcode = dns.RcodeRefused
	}
	w.WriteMsg(resp)
}

func startFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	l, err := net.Listen("tcp", f.addr)
	if err != nil {
		pc.Close()
		t.Skipf("TCP port %s taken: %v", f.addr, err)
	}
	f.servers = []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}}
	for _, s := range f.servers {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		for _, s := range f.servers {
			s.Shutdown()
		}
	})
	return f
}

func TestUpstream(t *testing.T) {
	f := startFakeUpstream(t)
	var u Interface = NewUpstream(f.addr, 300*time.Millisecond)
	cases := []struct {
		name    string
		verdict Verdict
		rcode   int
		ede     uint16
		queries int
	}{
		{"secure.example.", Secure, dns.RcodeSuccess, 0, 1},
		{"insecure.example.", Insecure, dns.RcodeSuccess, 0, 1},
		{"nx.example.", Secure, dns.RcodeNameError, 0, 1},
		{"bogus.example.", Bogus, dns.RcodeServerFailure, dns.ExtendedErrorCodeSignatureExpired, 1},
		{"unreach.example.", Indeterminate, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, 1},
		{"fail.example.", Indeterminate, dns.RcodeServerFailure, 0, 1},
		{"drop.example.", Indeterminate, dns.RcodeServerFailure, dns.ExtendedErrorCodeNoReachableAuthority, 1},
		{"big.example.", Secure, dns.RcodeSuccess, 0, 2},
		{"refused.example.", Indeterminate, dns.RcodeRefused, 0, 1},
	}
	for _, c := range cases {
		res, err := u.Resolve(context.Background(), c.name, dns.TypeA)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Verdict != c.verdict || res.Msg.Rcode != c.rcode || res.EDE != c.ede || res.Queries != c.queries {
			t.Errorf("%s: %s %s EDE %d, %d queries (%s); want %s %s EDE %d, %d queries", c.name,
				res.Verdict, dns.RcodeToString[res.Msg.Rcode], res.EDE, res.Queries, res.Reason,
				c.verdict, dns.RcodeToString[c.rcode], c.ede, c.queries)
		}
	}
	res, err := u.Resolve(context.Background(), "chain.example", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != Secure || len(res.Chain) != 1 || res.Chain[0].Target != "secure.example." || res.Chain[0].Verdict != Secure {
		t.Errorf("chain: %s %+v", res.Verdict, res.Chain)
	}
	if f.badFlag.Load() {
		t.Errorf("a query lacked RD, AD or DO")
	}
	if _, err := u.Resolve(context.Background(), "bad..name", dns.TypeA); err == nil {
		t.Errorf("invalid name accepted")
	}
}

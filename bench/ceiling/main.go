// Command ceiling is the framework's ceiling for make bench: CoreDNS with one plugin whose
// handler writes a pre-packed answer (the question copied, a fixed SOA, an OPT with DO), with
// no lookup, no signing and no packing of a dns.Msg. It measures the least work CoreDNS
// (its UDP server, request parsing and plugin chain) does per query on the machine, so that
// danezone's figures can be given as a share of it.
//
//	.:PORT { bind 127.0.0.1  ceiling }
package main

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	"github.com/coredns/coredns/plugin"
	_ "github.com/coredns/coredns/plugin/bind"
	"github.com/miekg/dns"
)

func init() {
	dnsserver.Directives = []string{"bind", "ceiling"}
	plugin.Register("ceiling", func(c *caddy.Controller) error {
		c.Next()
		if c.NextArg() {
			return plugin.Error("ceiling", c.ArgErr())
		}
		dnsserver.GetConfig(c).AddPlugin(func(plugin.Handler) plugin.Handler { return handler{} })
		return nil
	})
}

// answer is the answer and additional sections: an SOA owned by the question's name (a
// compression pointer to offset 12) and an OPT record with DO set (RFC 6891, 1232 octets).
var answer = func() []byte {
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns: "ns1.example.test.", Mbox: "hostmaster.example.test.", Serial: 1, Refresh: 3600, Retry: 900, Expire: 1209600, Minttl: 60}
	buf := make([]byte, 512)
	n, err := dns.PackRR(soa, buf, 0, nil, false)
	if err != nil {
		panic(err)
	}
	out := append([]byte{0xc0, 0x0c}, buf[1:n]...) // the root owner replaced by the pointer
	return append(out, 0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0)
}()

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

type handler struct{}

func (handler) Name() string { return "ceiling" }

func (handler) ServeDNS(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	bp := buffers.Get().(*[]byte)
	b := (*bp)[:12]
	binary.BigEndian.PutUint16(b[0:], r.Id)
	flags := uint16(1<<15 | 1<<10) // QR, AA
	if r.RecursionDesired {
		flags |= 1 << 8
	}
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	binary.BigEndian.PutUint16(b[6:], 1) // ANCOUNT
	binary.BigEndian.PutUint16(b[8:], 0)
	binary.BigEndian.PutUint16(b[10:], 1) // ARCOUNT: the OPT
	q := r.Question[0]
	b = b[:cap(b)]
	off, err := dns.PackDomainName(q.Name, b, 12, nil, false)
	if err != nil {
		buffers.Put(bp)
		return dns.RcodeFormatError, err
	}
	b = binary.BigEndian.AppendUint16(b[:off], q.Qtype)
	b = binary.BigEndian.AppendUint16(b, q.Qclass)
	b = append(b, answer...)
	_, err = w.Write(b)
	*bp = b[:0]
	buffers.Put(bp)
	return dns.RcodeSuccess, err
}

func main() { coremain.Run() }

package main

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
)

func TestResolverServer(t *testing.T) {
	l, err := lab.Start(lab.Config{Domains: []lab.Domain{{Name: "example.test", Records: []string{
		"mx1 A 127.0.0.11", "_25._tcp.mx1 TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	anchor := filepath.Join(t.TempDir(), "root.anchor")
	l.WriteAnchor(anchor)
	anchors, err := readAnchors(anchor)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(l.Addr)
	p, _ := strconv.Atoi(port)
	h := &resolverHandler{r: resolver.New(resolver.Config{TrustAnchors: anchors, Roots: []string{l.Addr}, Port: p, Timeout: time.Second})}
	ln, _ := net.Listen("tcp", host+":0")
	addr := ln.Addr().String()
	ln.Close()
	servers, err := serveDNS(addr, h)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range servers {
			s.Shutdown()
		}
	}()
	ask := func(name string, qtype uint16, do, cd bool) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, do)
		m.CheckingDisabled = cd
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := ask("_25._tcp.mx1.example.test.", dns.TypeTLSA, true, false); !r.AuthenticatedData || len(r.Answer) != 2 {
		t.Fatalf("secure TLSA with DO: AD=%v answer %v", r.AuthenticatedData, r.Answer)
	}
	if r := ask("_25._tcp.mx1.example.test.", dns.TypeTLSA, false, false); !r.AuthenticatedData || len(r.Answer) != 1 {
		t.Fatalf("secure TLSA without DO: AD=%v answer %v", r.AuthenticatedData, r.Answer)
	}
	if r := ask("nope.example.test.", dns.TypeA, true, false); r.Rcode != dns.RcodeNameError || !r.AuthenticatedData {
		t.Fatalf("NXDOMAIN: %v", r)
	}
	if _, err := l.AddFault(fault.Spec{Mode: fault.ExpiredSig, Name: "_25._tcp.mx1.example.test", Type: "TLSA"}); err != nil {
		t.Fatal(err)
	}
	r := ask("_25._tcp.mx1.example.test.", dns.TypeTLSA, true, false)
	var ede uint16
	for _, o := range r.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			ede = e.InfoCode
		}
	}
	if r.Rcode != dns.RcodeServerFailure || ede != dns.ExtendedErrorCodeSignatureExpired {
		t.Fatalf("expired signature: %s EDE %d", dns.RcodeToString[r.Rcode], ede)
	}
	if r := ask("_25._tcp.mx1.example.test.", dns.TypeTLSA, true, true); r.Rcode != dns.RcodeSuccess || r.AuthenticatedData {
		t.Fatalf("CD set: bogus data should come back without AD: %v", r)
	}
}

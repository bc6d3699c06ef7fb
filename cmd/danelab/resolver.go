package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

func init() {
	register("resolver", command{
		group:   groupLab,
		usage:   "-anchor FILE -root HOST:PORT [-listen ADDR] [-port N] [-timeout D]",
		summary: "serve the lab's validating resolver (with the AD bit) for an external MTA",
		help: "Serves the Go validating resolver of harness/resolver on -listen (default\n" +
			"127.0.0.54:53): it iterates from -root with the trust anchor in -anchor (DS or\n" +
			"DNSKEY records in zone file syntax, e.g. the lab's root.anchor), answers secure data\n" +
			"with AD=1, insecure data without it, and SERVFAIL with an extended DNS error\n" +
			"(RFC 8914) for bogus or unreachable answers. With CD set, bogus data is returned.\n" +
			"-port N contacts every name server on port N (a lab serves all zones on one port;\n" +
			"default: the port of -root).",
		run: runResolver,
	})
}

func runResolver(args []string) error {
	fs := flag.NewFlagSet("resolver", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.54:53", "address to serve on")
	anchorFile := fs.String("anchor", "", "trust anchor file")
	root := fs.String("root", "", "root server HOST:PORT")
	port := fs.Int("port", 0, "port of every name server")
	timeout := fs.Duration("timeout", 2*time.Second, "per-query timeout")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"resolver"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 || *anchorFile == "" || *root == "" {
		return usagef("give -anchor FILE and -root HOST:PORT")
	}
	anchors, err := readAnchors(*anchorFile)
	if err != nil {
		return err
	}
	if *port == 0 {
		_, p, err := net.SplitHostPort(*root)
		if err != nil {
			return usagef("-root: %v", err)
		}
		*port, _ = strconv.Atoi(p)
	}
	h := &resolverHandler{r: resolver.New(resolver.Config{TrustAnchors: anchors, Roots: []string{*root}, Port: *port,
		Timeout: *timeout, Retries: 1, Cache: true})}
	servers, err := serveDNS(*listen, h)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "validating resolver on %s (udp, tcp), root %s, anchor %s\n", *listen, *root, *anchorFile)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, s := range servers {
		s.Shutdown()
	}
	return nil
}

// serveDNS starts h on addr over UDP and TCP.
func serveDNS(addr string, h dns.Handler) ([]*dns.Server, error) {
	var out []*dns.Server
	for _, proto := range []string{"udp", "tcp"} {
		started := make(chan error, 1)
		s := &dns.Server{Addr: addr, Net: proto, Handler: h, NotifyStartedFunc: func() { started <- nil }}
		go func() {
			if err := s.ListenAndServe(); err != nil {
				started <- err
			}
		}()
		if err := <-started; err != nil {
			for _, o := range out {
				o.Shutdown()
			}
			return nil, fmt.Errorf("listen %s/%s: %v", addr, proto, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func readAnchors(path string) ([]dns.RR, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []dns.RR
	zp := dns.NewZoneParser(f, ".", path)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
			out = append(out, rr)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no DS or DNSKEY record", path)
	}
	return out, nil
}

// resolverHandler answers stub queries from the validating resolver, as a validating
// recursive server does (RFC 4035 §3.2).
type resolverHandler struct{ r *resolver.Resolver }

func (h *resolverHandler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := h.r.Resolve(ctx, q.Name, q.Qtype)
	var ede *dns.EDNS0_EDE
	switch {
	case err != nil:
		m.Rcode = dns.RcodeNotImplemented
	case res.Verdict == resolver.Secure || res.Verdict == resolver.Insecure || (res.Verdict == resolver.Bogus && req.CheckingDisabled):
		m.Rcode = res.Msg.Rcode
		m.Answer, m.Ns = res.Msg.Answer, res.Msg.Ns
		m.AuthenticatedData = res.Verdict == resolver.Secure
		if !do { // DNSSEC records only for clients that asked (RFC 4035 §3.2.1)
			m.Answer, m.Ns = stripDNSSEC(m.Answer, q.Qtype), stripDNSSEC(m.Ns, q.Qtype)
		}
	default:
		m.Rcode = dns.RcodeServerFailure
		ede = &dns.EDNS0_EDE{InfoCode: res.EDE, ExtraText: res.Reason}
	}
	if opt != nil {
		m.SetEdns0(1232, do)
		if ede != nil {
			m.IsEdns0().Option = append(m.IsEdns0().Option, ede)
		}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), 1232)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func stripDNSSEC(rrs []dns.RR, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		switch t := rr.Header().Rrtype; t {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
			if t != qtype {
				continue
			}
		}
		out = append(out, rr)
	}
	return out
}

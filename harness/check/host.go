package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/dane"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/sender"
	"github.com/miekg/dns"
)

// host checks one MX host with the sender's own decisions (sender.Policy): its addresses,
// the TLSA records that apply (at the CNAME target first, RFC 7672 §2.2.3), their security,
// the proof of their absence, their usability and rollover readiness, then the certificate
// it serves, verified with the sender's reference identifiers and SNI.
func (c *run) host(ctx context.Context, host string, mxSecure bool) {
	g := "host " + strings.TrimSuffix(host, ".")
	pctx, cancel := context.WithTimeout(ctx, 4*c.cfg.Timeout) // up to four lookups
	defer cancel()
	p, failed := c.sender.Policy(pctx, c.domain, host, mxSecure)
	if pctx.Err() != nil {
		c.add(Item{Group: g, Name: "addresses and TLSA", Verdict: Fail, Detail: "no answer within " + (4 * c.cfg.Timeout).String(),
			Fix: "make the name servers of " + strings.TrimSuffix(host, ".") + " answer: senders skip a host they cannot look up"})
		return
	}
	if p.AddrRes != nil {
		it := verdictItem(g, "addresses", p.AddrRes, nil, Warn,
			"sign the zone of "+strings.TrimSuffix(host, ".")+": senders look TLSA up only for hosts whose address records are secure (RFC 7672 §2.2.2)",
			"fix the signatures of "+strings.TrimSuffix(host, ".")+"'s zone: senders skip this host", dns.TypeA, dns.TypeCNAME)
		for _, l := range p.AddrRes.Chain {
			it.Evidence = append(it.Evidence, fmt.Sprintf("%s is an alias of %s (%s)", strings.TrimSuffix(l.Owner, "."), strings.TrimSuffix(l.Target, "."), l.Verdict))
		}
		if len(p.Addrs) > 0 {
			it.Evidence = append(it.Evidence, "addresses: "+strings.Join(p.Addrs, " "))
		}
		c.expiring(&it, p.AddrRes)
		c.add(it)
	}
	if failed != nil {
		it := Item{Group: g, Name: "usable by senders", Verdict: Fail, Detail: failed.Detail}
		switch failed.Result {
		case "dnssec-invalid":
			it.Name, it.Code = "TLSA "+strings.TrimSuffix(p.TLSAOwner, "."), "4.7.324"
			it.Evidence = evidence(p.TLSARes, dns.TypeTLSA)
			it.Fix = "make the name servers answer TLSA questions with signed records or a signed denial (NODATA/NXDOMAIN with NSEC/NSEC3): " +
				"until then DANE senders defer all mail to this host (Exchange Online: 4.7.324 dnssec-invalid)"
		default:
			it.Code = "4.4.312"
			it.Fix = "make the address records of " + strings.TrimSuffix(host, ".") + " resolve and validate: senders skip this host"
		}
		c.add(it)
		return
	}
	if p.Secure {
		c.tlsa(g, host, p)
	}
	c.starttls(ctx, g, host, p)
}

// tlsa reports the TLSA records the sender found (or the proof that there are none).
func (c *run) tlsa(g, host string, p sender.HostPolicy) {
	res := p.TLSARes
	name := "TLSA " + strings.TrimSuffix(p.TLSAOwner, ".")
	if res == nil {
		return
	}
	if res.Verdict == resolver.Insecure {
		c.add(Item{Group: g, Name: name, Verdict: Warn, Detail: "insecure: " + res.Reason, Evidence: evidence(res, dns.TypeTLSA),
			Fix: "sign the zone holding " + strings.TrimSuffix(p.TLSAOwner, ".") + ": insecure TLSA records are ignored"})
		return
	}
	if len(p.TLSAs) == 0 {
		// A secure denial: the resolver validated the NSEC/NSEC3 proof that no TLSA exists.
		kind := "NODATA"
		if res.Msg.Rcode == dns.RcodeNameError {
			kind = "NXDOMAIN"
		}
		c.add(Item{Group: g, Name: name, Verdict: Warn, Detail: "none, and their absence is proven (" + kind + " with a valid denial): no DANE for this host",
			Evidence: evidence(res, dns.TypeNSEC, dns.TypeNSEC3),
			Fix:      "publish `" + p.TLSAOwner + " IN TLSA 3 1 1 <sha256 of the server's key>` (danelab tlsa -probe HOST:25 prints it) so that senders authenticate the server"})
		return
	}
	it := Item{Group: g, Name: name, Verdict: Pass, Detail: fmt.Sprintf("secure, %d records, TTL %d", len(p.TLSAs), p.TLSAs[0].Hdr.Ttl),
		Evidence: evidence(res, dns.TypeTLSA)}
	usable := dane.UsableSet(p.TLSAs)
	var notes []string
	for _, t := range p.TLSAs {
		if !dane.Usable(t) {
			notes = append(notes, fmt.Sprintf("%d %d %d is not usable for SMTP (RFC 7672 §3.1: usages 2 and 3, selector 0/1, matching 0/1/2 with the right digest length)",
				t.Usage, t.Selector, t.MatchingType))
		}
	}
	switch {
	case len(usable) == 0:
		// Senders then require TLS without authenticating (RFC 7672 §2.2; Exchange Online too).
		it.Verdict = Warn
		it.Detail += "; none usable: senders require TLS but do not authenticate the server"
		it.Fix = "publish a 3 1 1 record of the server's key: usages 0 and 1 mean nothing to SMTP senders"
	case len(notes) > 0:
		it.Verdict, it.Fix = Warn, "remove the unusable records: they never match"
	}
	it.Evidence = append(it.Evidence, notes...)
	c.expiring(&it, res)
	c.add(it)
	if len(usable) > 0 {
		c.rollover(g, usable)
	}
}

// rollover says whether a certificate renewal with a new key would be seen by senders in
// time: a second DANE-EE record (the next key), or a DANE-TA record beside the DANE-EE one
// (RFC 7671 §8.1, the "3 1 1 + 3 1 1" and "3 1 1 + 2 1 1" schemes).
func (c *run) rollover(g string, usable []*dns.TLSA) {
	ee, ta := 0, 0
	for _, t := range usable {
		if t.Usage == 3 {
			ee++
		} else {
			ta++
		}
	}
	it := Item{Group: g, Name: "rollover readiness"}
	switch {
	case ee >= 2:
		it.Verdict, it.Detail = Pass, fmt.Sprintf("%d DANE-EE records: the next key is published ahead", ee)
	case ee >= 1 && ta >= 1:
		it.Verdict, it.Detail = Pass, "DANE-EE and DANE-TA records: a renewal by the same CA still matches"
	case ta >= 1:
		it.Verdict, it.Detail = Pass, "DANE-TA: any certificate from that CA matches"
	default:
		it.Verdict, it.Detail = Warn, "one DANE-EE record: a renewal with a new key breaks DANE until the TLSA follows"
		it.Fix = "publish the next key's 3 1 1 record at least two TTLs before the renewal (danezone: `tlsa HOST cert FILE next DIR`)"
	}
	c.add(it)
}

// starttls connects to the host, asks for STARTTLS and checks what it serves against the
// TLSA records: each network step has the timeout, and a failure names the step.
func (c *run) starttls(ctx context.Context, g, host string, p sender.HostPolicy) {
	tlsas := p.TLSAs
	if p.Level != sender.LevelDANE {
		tlsas = nil // nothing to authenticate with
	}
	mandatory := p.Level != sender.LevelMay
	addr := net.JoinHostPort(p.Addrs[0], strconv.Itoa(c.cfg.Port))
	step := "connecting to " + addr
	fail := func(err error, fix string) {
		var ne net.Error
		detail := step + ": " + err.Error()
		if errors.As(err, &ne) && ne.Timeout() {
			detail = step + ": no answer within " + c.cfg.Timeout.String()
		}
		it := Item{Group: g, Name: "STARTTLS", Verdict: Fail, Detail: detail, Fix: fix}
		if mandatory {
			it.Code = "4.7.321"
		}
		c.add(it)
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	conn, err := c.cfg.Dial(dctx, "tcp", addr)
	if err != nil {
		fail(err, "make the server reachable on port "+strconv.Itoa(c.cfg.Port))
		return
	}
	defer conn.Close()
	deadline := func() { conn.SetDeadline(time.Now().Add(c.cfg.Timeout)) }
	tp := textproto.NewConn(conn)
	step = "reading the greeting of " + addr
	deadline()
	if _, _, err := tp.ReadResponse(220); err != nil {
		fail(err, "make the server greet with 220 promptly")
		return
	}
	step = "EHLO to " + addr
	deadline()
	if err := tp.PrintfLine("EHLO danelab.invalid"); err != nil {
		fail(err, "make the server accept EHLO")
		return
	}
	_, ext, err := tp.ReadResponse(250)
	if err != nil {
		fail(err, "make the server accept EHLO")
		return
	}
	offered := false
	sc := bufio.NewScanner(strings.NewReader(ext))
	for sc.Scan() {
		offered = offered || strings.EqualFold(strings.TrimSpace(sc.Text()), "STARTTLS")
	}
	if !offered {
		v := Warn
		fix := "enable STARTTLS on the server: mail to it travels in plaintext"
		if mandatory {
			v, fix = Fail, "enable STARTTLS: with TLSA published, DANE senders never send in plaintext and defer (4.7.321)"
		}
		c.add(Item{Group: g, Name: "STARTTLS", Verdict: v, Detail: "not offered in the EHLO reply", Evidence: strings.Split(ext, "\n"), Fix: fix, Code: "4.7.321"})
		return
	}
	step = "STARTTLS to " + addr
	deadline()
	if err := tp.PrintfLine("STARTTLS"); err != nil {
		fail(err, "make STARTTLS work")
		return
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		fail(err, "make STARTTLS work")
		return
	}
	step = "TLS handshake with " + addr
	deadline()
	var chain []*x509.Certificate
	tc := tls.Client(conn, &tls.Config{ServerName: strings.TrimSuffix(p.SNI, "."), InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error { chain = cs.PeerCertificates; return nil }})
	if err := tc.HandshakeContext(dctx); err != nil {
		fail(err, "make the TLS handshake work with TLS 1.2 or later (DANE senders do not fall back to plaintext)")
		return
	}
	cs := tc.ConnectionState()
	tc.Close()
	c.add(Item{Group: g, Name: "STARTTLS", Verdict: Pass, Detail: "offered; " + tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)})
	c.certificate(g, host, chain, tlsas, p.Refs)
}

// certificate reports the chain the server presented and which TLSA record matches it, as the
// harness's sender decides it (dane.Verify, the same code).
func (c *run) certificate(g, host string, chain []*x509.Certificate, tlsas []*dns.TLSA, refs []string) {
	var ev []string
	now := c.cfg.Now()
	for i, cert := range chain {
		ev = append(ev, fmt.Sprintf("[%d] %s, issued by %s, valid %s to %s, names %s", i, cert.Subject.CommonName, cert.Issuer.CommonName,
			cert.NotBefore.UTC().Format("2006-01-02"), cert.NotAfter.UTC().Format("2006-01-02"), strings.Join(cert.DNSNames, " ")))
	}
	it := Item{Group: g, Name: "certificate", Verdict: Pass, Evidence: ev}
	if len(chain) == 0 {
		it.Verdict, it.Detail = Fail, "no certificate"
		c.add(it)
		return
	}
	left := chain[0].NotAfter.Sub(now)
	it.Detail = "expires in " + days(left)
	if left < 14*24*time.Hour {
		it.Verdict, it.Fix = Warn, "renew the certificate (with the next key's TLSA published first)"
	}
	if left < 0 {
		it.Detail = "expired on " + chain[0].NotAfter.UTC().Format("2006-01-02")
		it.Fix = "renew the certificate: DANE-EE (3) ignores dates, but DANE-TA (2) and every non-DANE sender reject it (4.7.322)"
	}
	c.add(it)
	if c.sts != nil && c.sts.Mode == "enforce" {
		c.stsCertificate(g, host, chain, now)
	}
	if len(tlsas) == 0 {
		return
	}
	m, err := dane.Verify(chain, dane.UsableSet(tlsas), refs, now)
	match := Item{Group: g, Name: "DANE authentication"}
	if err != nil {
		match.Verdict, match.Code, match.Detail = Fail, "4.7.323", err.Error()
		match.Fix = "publish the TLSA record of the certificate the server really serves (danelab tlsa -probe " + strings.TrimSuffix(host, ".") + ":25), or deploy the certificate the records name"
	} else {
		match.Verdict, match.Detail = Pass, m.String()
	}
	c.add(match)
}

// stsCertificate judges the chain as a sender that enforces MTA-STS does (RFC 8461 §4.2): it
// must be valid in the Web PKI and name the MX host. A DANE-only certificate (self-signed,
// matched by DANE-EE) passes DANE senders and fails these.
func (c *run) stsCertificate(g, host string, chain []*x509.Certificate, now time.Time) {
	inter := x509.NewCertPool()
	for _, cert := range chain[1:] {
		inter.AddCert(cert)
	}
	name := strings.TrimSuffix(host, ".")
	it := Item{Group: g, Name: "certificate for MTA-STS (enforce)", Verdict: Pass, Detail: "valid in the Web PKI for " + name}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Intermediates: inter, Roots: c.cfg.Roots, CurrentTime: now}); err != nil {
		it.Verdict, it.Detail = Fail, "senders that enforce MTA-STS will not deliver: "+err.Error()
		it.Fix = "serve a certificate from a public CA that names " + name + " (its 3 1 1 TLSA record still matches if the key stays), or set the MTA-STS policy to testing"
	}
	c.add(it)
}

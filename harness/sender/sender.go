// Package sender owns one SMTP delivery attempt as a DANE-aware MTA makes it (RFC 7672): MX
// lookup (null MX, implicit MX), addresses per host, TLSA at _25._tcp (the CNAME-expanded name
// first), the security level that follows (dane, encrypt, may), STARTTLS with DANE
// authentication, the next MX after a per-host failure, never plaintext where DANE applies.
// Every attempt redoes DNS through the resolver and returns a classified queue.Outcome.
package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/harness/dane"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/tlsrpt"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

// The security levels of a host (RFC 7672 §2.2).
const (
	LevelDANE    = "dane"    // usable secure TLSA: STARTTLS and authentication mandatory
	LevelEncrypt = "encrypt" // secure TLSA, none usable: STARTTLS mandatory, no authentication
	LevelMay     = "may"     // no secure TLSA: opportunistic TLS, plaintext allowed
)

// Config configures a Sender.
type Config struct {
	Resolver resolver.Interface
	Port     int    // SMTP port of every MX host; default 25
	Helo     string // default "danelab.invalid"
	Timeout  time.Duration
	// Now is the clock DANE-TA chains are validated at; default time.Now.
	Now func() time.Time
	// LocalAddr, if set, is the address connections are made from (TLS-RPT sending-mta-ip).
	LocalAddr string
	// DryRun stops each session after the recipients are accepted (no DATA): the attempt
	// ends as Delivered when the message would have been transferred. danelab check uses it to
	// predict a delivery with the very rules that make one.
	DryRun bool
	// Transcript, if set, receives the SMTP dialogue line by line: "C: EHLO ..." for what the
	// sender wrote, "S: 250 ..." for what it read; inside TLS the same with "C(tls)"/"S(tls)",
	// and one line with the TLS details after the handshake.
	Transcript func(line string)
}

// Sender makes delivery attempts; it implements queue.Attempter.
type Sender struct{ cfg Config }

// New returns a sender.
func New(cfg Config) *Sender {
	if cfg.Port == 0 {
		cfg.Port = 25
	}
	if cfg.Helo == "" {
		cfg.Helo = "danelab.invalid"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{cfg: cfg}
}

type mxHost struct {
	pref uint16
	name string
}

// Attempt makes one delivery attempt of msg to its recipient domain.
func (s *Sender) Attempt(ctx context.Context, msg *queue.Message) queue.Outcome {
	domain := dns.Fqdn(strings.ToLower(msg.Domain))
	hosts, mxSecure, fail := s.mx(ctx, domain)
	if fail != nil {
		return *fail
	}
	var last queue.Outcome
	var sessions []tlsrpt.Attempt
	for _, h := range hosts {
		o := s.tryHost(ctx, msg, domain, h.name, mxSecure)
		sessions = append(sessions, o.Sessions...)
		if o.Delivered || o.Permanent {
			o.Sessions = sessions
			return o
		}
		last = o
	}
	last.Sessions = sessions
	return last
}

// MX returns the MX hosts of domain in preference order as an attempt sees them (the domain
// itself when there is none), whether the MX RRset is secure, or the outcome that ends an
// attempt there.
func (s *Sender) MX(ctx context.Context, domain string) ([]string, bool, *queue.Outcome) {
	hosts, secure, o := s.mx(ctx, dns.Fqdn(strings.ToLower(domain)))
	var names []string
	for _, h := range hosts {
		names = append(names, h.name)
	}
	return names, secure, o
}

// mx returns the MX hosts in preference order (RFC 5321 §5.1: the domain itself when there
// is no MX) and whether the MX RRset is secure; or the outcome that ends the attempt.
func (s *Sender) mx(ctx context.Context, domain string) ([]mxHost, bool, *queue.Outcome) {
	res, err := s.cfg.Resolver.Resolve(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, false, &queue.Outcome{Result: queue.ResultDNSFailure, Detail: err.Error()}
	}
	switch res.Verdict {
	case resolver.Bogus, resolver.Indeterminate:
		return nil, false, &queue.Outcome{Result: queue.ResultDNSFailure, Detail: "MX lookup " + res.Verdict.String() + ": " + res.Reason}
	}
	if res.Msg.Rcode == dns.RcodeNameError {
		return nil, false, &queue.Outcome{Result: queue.ResultSMTPReply, Permanent: true, Status: "5.1.2",
			Detail: "550 5.1.2 domain " + domain + " does not exist"}
	}
	var hosts []mxHost
	for _, rr := range res.Msg.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			hosts = append(hosts, mxHost{mx.Preference, strings.ToLower(mx.Mx)})
		}
	}
	if len(hosts) == 1 && hosts[0].name == "." { // RFC 7505
		return nil, false, &queue.Outcome{Result: queue.ResultNullMX, Permanent: true, Detail: domain + " publishes a null MX"}
	}
	if len(hosts) == 0 {
		hosts = []mxHost{{0, domain}}
	}
	sort.SliceStable(hosts, func(i, j int) bool { return hosts[i].pref < hosts[j].pref })
	return hosts, res.Verdict == resolver.Secure, nil
}

// HostPolicy is what a sender decides about one MX host before it connects (RFC 7672 §2.2):
// its addresses, and the TLSA records that apply, the reference identifiers, the SNI and the
// security level that follow from them.
type HostPolicy struct {
	Host      string   // the MX host, FQDN
	Addrs     []string // IPv4 first, then IPv6
	AddrRes   *resolver.Result
	Secure    bool   // the address records are secure: TLSA is looked up
	TLSAOwner string // where the TLSA records were found (or last looked up)
	TLSARes   *resolver.Result
	TLSAs     []*dns.TLSA
	Refs      []string // reference identifiers for DANE-TA
	SNI       string
	Level     string // LevelDANE, LevelEncrypt, LevelMay
}

// Policy decides about host, an MX host of domain (whose MX RRset is secure or not), as an
// attempt does: addresses, then TLSA where they are secure. A failure that makes the host
// unusable comes as the outcome (Result and Detail set).
func (s *Sender) Policy(ctx context.Context, domain, host string, mxSecure bool) (HostPolicy, *queue.Outcome) {
	p := HostPolicy{Host: host, Level: LevelMay, SNI: host, Refs: []string{}}
	fail := func(result, detail string) (HostPolicy, *queue.Outcome) {
		return p, &queue.Outcome{Result: result, Detail: detail}
	}
	addrRes, err := s.cfg.Resolver.Resolve(ctx, host, dns.TypeA)
	if err != nil {
		return fail(queue.ResultDNSFailure, err.Error())
	}
	p.AddrRes = addrRes
	if addrRes.Verdict == resolver.Bogus || addrRes.Verdict == resolver.Indeterminate {
		return fail(queue.ResultDNSFailure, "address lookup of "+host+" "+addrRes.Verdict.String()+": "+addrRes.Reason)
	}
	for _, rr := range addrRes.Msg.Answer {
		if a, ok := rr.(*dns.A); ok {
			p.Addrs = append(p.Addrs, a.A.String())
		}
	}
	secure := addrRes.Verdict == resolver.Secure
	// AAAA too (IPv4 is tried first); its security counts like the A RRset's (RFC 7672 §2.2.2).
	if v6, err := s.cfg.Resolver.Resolve(ctx, host, dns.TypeAAAA); err == nil {
		switch v6.Verdict {
		case resolver.Bogus, resolver.Indeterminate:
			return fail(queue.ResultDNSFailure, "address lookup (AAAA) of "+host+" "+v6.Verdict.String()+": "+v6.Reason)
		case resolver.Insecure:
			secure = false
		}
		for _, rr := range v6.Msg.Answer {
			if a, ok := rr.(*dns.AAAA); ok {
				p.Addrs = append(p.Addrs, a.AAAA.String())
			}
		}
	}
	if len(p.Addrs) == 0 {
		return fail(queue.ResultDNSFailure, host+" has no address")
	}
	p.Secure = secure
	if !secure {
		return p, nil
	}
	// TLSA only where the address is secure (RFC 7672 §2.2.2); the CNAME-expanded name first
	// when the whole chain is secure, then the original name (§2.2.3).
	names := []string{host}
	if n := len(addrRes.Chain); n > 0 {
		names = []string{strings.ToLower(dns.Fqdn(addrRes.Chain[n-1].Target)), host}
	}
	for _, base := range names {
		p.TLSAOwner = "_" + strconv.Itoa(25) + "._tcp." + base
		t, r := s.cfg.Resolver.Resolve(ctx, p.TLSAOwner, dns.TypeTLSA)
		if r != nil {
			return fail(queue.ResultDNSSECInvalid, r.Error())
		}
		p.TLSARes = t
		if t.Verdict == resolver.Bogus || t.Verdict == resolver.Indeterminate {
			// No plaintext and no delivery to this host (RFC 7672 §2.2.1).
			return fail(queue.ResultDNSSECInvalid, "TLSA lookup at "+strings.TrimSuffix(p.TLSAOwner, ".")+" "+t.Verdict.String()+": "+t.Reason)
		}
		if t.Verdict != resolver.Secure {
			continue
		}
		for _, rr := range t.Msg.Answer {
			if x, ok := rr.(*dns.TLSA); ok {
				p.TLSAs = append(p.TLSAs, x)
			}
		}
		if len(p.TLSAs) > 0 {
			p.SNI = base
			p.Refs = []string{base}
			if base != host {
				p.Refs = append(p.Refs, host)
			}
			if mxSecure { // with a secure MX RRset the next-hop domain is a reference id too
				p.Refs = append(p.Refs, domain)
			}
			p.Level = LevelEncrypt
			if len(dane.UsableSet(p.TLSAs)) > 0 {
				p.Level = LevelDANE
			}
			break
		}
	}
	return p, nil
}

// tryHost makes the attempt at one MX host: its policy, then each address in turn.
func (s *Sender) tryHost(ctx context.Context, msg *queue.Message, domain, host string, mxSecure bool) queue.Outcome {
	p, failed := s.Policy(ctx, domain, host, mxSecure)
	if failed != nil {
		o := *failed
		o.Host = host
		o.Sessions = []tlsrpt.Attempt{{PolicyDomain: strings.TrimSuffix(domain, "."), PolicyType: tlsrpt.PolicyNoPolicyFound,
			MXHost: strings.TrimSuffix(host, "."), Result: o.Result, FailureDetail: o.Detail}}
		return o
	}
	var o queue.Outcome
	for _, ip := range p.Addrs {
		o = s.deliver(ctx, msg, domain, host, ip, p.Level, p.TLSAs, p.Refs, p.SNI)
		if o.Delivered || o.Permanent || o.Result != queue.ResultConnect {
			return o
		}
	}
	return o
}

// deliver runs one SMTP session at one address.
func (s *Sender) deliver(ctx context.Context, msg *queue.Message, domain, host, ip, level string, tlsas []*dns.TLSA, refs []string, sni string) queue.Outcome {
	session := tlsrpt.Attempt{Time: s.cfg.Now(), PolicyDomain: strings.TrimSuffix(domain, "."), PolicyType: tlsrpt.PolicyNoPolicyFound,
		MXHost: strings.TrimSuffix(host, "."), ReceivingIP: ip}
	if level != LevelMay {
		session.PolicyType = tlsrpt.PolicyTLSA
		for _, t := range tlsas {
			session.PolicyString = append(session.PolicyString, strings.TrimPrefix(t.String(), t.Hdr.String()))
		}
	}
	out := func(o queue.Outcome) queue.Outcome {
		o.Host = host
		if o.TLS == "" { // plaintext() has already said "none"
			o.TLS = level
		}
		session.Result = tlsrpt.Success
		if !o.Delivered && o.Result != queue.ResultSMTPReply {
			session.Result, session.FailureDetail = o.Result, o.Detail
		}
		o.Sessions = []tlsrpt.Attempt{session}
		return o
	}
	if s.cfg.LocalAddr != "" {
		session.SendingMTAIP = s.cfg.LocalAddr
	}
	conn, err := s.dial(ctx, ip)
	if err != nil {
		return out(queue.Outcome{Result: queue.ResultConnect, Detail: err.Error()})
	}
	if s.cfg.Transcript != nil {
		s.cfg.Transcript(fmt.Sprintf("connected to %s (%s)", net.JoinHostPort(ip, strconv.Itoa(s.cfg.Port)), strings.TrimSuffix(host, ".")))
		conn = newTraceConn(conn, s.cfg.Transcript, "")
	}
	var verr error
	var match dane.Match
	var cfg *tls.Config
	if level == LevelDANE {
		cfg = dane.TLSConfig(sni, tlsas, refs, s.cfg.Now, func(m dane.Match, e error) { match, verr = m, e })
	} else { // encrypt or may: TLS without authentication
		cfg = &tls.Config{InsecureSkipVerify: true, ServerName: strings.TrimSuffix(sni, "."), MinVersion: tls.VersionTLS12}
	}
	// The dialogue before TLS is ours (go-smtp v0.25 cannot start TLS after its own EHLO with
	// our HELO name); go-smtp takes over on the TLS connection.
	c, conn, offered, helo, err := s.startTLS(conn, cfg)
	session.ReceivingMXHelo = helo
	if err != nil {
		var se *smtp.SMTPError
		var ne net.Error
		switch {
		case verr != nil:
			return out(daneOutcome(verr))
		case errors.As(err, &se):
			return out(replyOutcome(err, queue.ResultConnect))
		case errors.As(err, &ne) && ne.Timeout():
			return out(queue.Outcome{Result: queue.ResultConnect, Detail: fmt.Sprintf("no reply within %v: %v", s.cfg.Timeout, err)})
		case level == LevelMay: // opportunistic: a failed handshake falls back to plaintext
			return s.plaintext(ctx, msg, out, ip)
		}
		return out(queue.Outcome{Result: queue.ResultValidationFailure, Detail: "TLS handshake: " + err.Error()})
	}
	if !offered {
		if level != LevelMay { // never plaintext where TLS is mandatory (RFC 7672 §2.2)
			conn.Close()
			return out(queue.Outcome{Result: queue.ResultSTARTTLSNotSupported, Detail: host + " does not offer STARTTLS"})
		}
		o := s.transfer(c, msg)
		c.Close()
		o.TLS = "none"
		return out(o)
	}
	defer c.Close()
	o := s.transfer(c, msg)
	if cs, ok := tlsState(conn); ok {
		o.TLSInfo = tls.VersionName(cs.Version) + " " + tls.CipherSuiteName(cs.CipherSuite)
	}
	if verr == nil && match.Record != nil {
		o.Matched = strings.TrimPrefix(match.Record.String(), match.Record.Hdr.String())
	}
	return out(o)
}

// startTLS reads the greeting, says EHLO and, when STARTTLS is offered, starts TLS and checks
// the certificate (cfg.VerifyConnection) in the handshake. It returns a go-smtp client on the
// TLS connection, or on the plain one when STARTTLS is not offered, that has said EHLO, and
// that connection.
func (s *Sender) startTLS(conn net.Conn, cfg *tls.Config) (*smtp.Client, net.Conn, bool, string, error) {
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, conn, false, "", smtpError(err)
	}
	id, err := tp.Cmd("EHLO %s", s.cfg.Helo)
	if err != nil {
		return nil, conn, false, "", err
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, conn, false, "", smtpError(err)
	}
	helo := strings.Fields(msg + " ")[0] // the server's name, first word of its EHLO reply
	offered := false
	for _, line := range strings.Split(msg, "\n") {
		if strings.EqualFold(strings.Fields(line + " ")[0], "STARTTLS") {
			offered = true
		}
	}
	next := conn
	if offered {
		if _, err := tp.Cmd("STARTTLS"); err != nil {
			return nil, conn, true, helo, err
		}
		if _, _, err := tp.ReadResponse(220); err != nil {
			return nil, conn, true, helo, smtpError(err)
		}
		trace, traced := conn.(*traceConn)
		if traced {
			trace.off.Store(true) // the handshake is binary; the dialogue goes on inside TLS
		}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err != nil {
			if traced {
				trace.f("TLS handshake failed: " + err.Error())
			}
			return nil, conn, true, helo, err
		}
		next = tc
		if traced {
			cs := tc.ConnectionState()
			var leaf string
			if len(cs.PeerCertificates) > 0 {
				c := cs.PeerCertificates[0]
				leaf = fmt.Sprintf("; leaf %q issued by %q, names %v, valid %s..%s", c.Subject.CommonName, c.Issuer.CommonName,
					c.DNSNames, c.NotBefore.UTC().Format(time.DateOnly), c.NotAfter.UTC().Format(time.DateOnly))
			}
			trace.f(fmt.Sprintf("TLS up: %s %s, SNI %q, %d certificate(s) sent%s", tls.VersionName(cs.Version),
				tls.CipherSuiteName(cs.CipherSuite), cfg.ServerName, len(cs.PeerCertificates), leaf))
			next = newTraceConn(tc, trace.f, "(tls)")
		}
	}
	// go-smtp expects a greeting: give it one, then it says EHLO (again, on TLS).
	c := smtp.NewClient(&greeted{Conn: next, pending: []byte("220 greeted\r\n")})
	c.CommandTimeout, c.SubmissionTimeout = s.cfg.Timeout, s.cfg.Timeout
	if err := c.Hello(s.cfg.Helo); err != nil {
		c.Close()
		return nil, conn, offered, helo, err
	}
	return c, next, offered, helo, nil
}

// traceConn reports the lines a connection carries to f, until off.
type traceConn struct {
	net.Conn
	f          func(string)
	tag        string
	off        atomic.Bool
	mu         sync.Mutex
	rbuf, wbuf []byte
}

func newTraceConn(c net.Conn, f func(string), tag string) *traceConn {
	return &traceConn{Conn: c, f: f, tag: tag}
}

func (t *traceConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.emit(&t.rbuf, "S"+t.tag+": ", p[:n])
	return n, err
}

func (t *traceConn) Write(p []byte) (int, error) {
	t.emit(&t.wbuf, "C"+t.tag+": ", p)
	return t.Conn.Write(p)
}

func (t *traceConn) emit(buf *[]byte, prefix string, p []byte) {
	if t.off.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	*buf = append(*buf, p...)
	for {
		i := bytes.IndexByte(*buf, '\n')
		if i < 0 {
			return
		}
		t.f(prefix + strings.TrimRight(string((*buf)[:i]), "\r"))
		*buf = (*buf)[i+1:]
	}
}

// tlsState is the TLS state of a connection startTLS returned, traced or not.
func tlsState(c net.Conn) (tls.ConnectionState, bool) {
	if t, ok := c.(*traceConn); ok {
		c = t.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// smtpError turns a textproto error reply into go-smtp's error type.
func smtpError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, EnhancedCode: enhanced(te.Msg), Message: te.Msg}
	}
	return err
}

func enhanced(msg string) smtp.EnhancedCode {
	var c smtp.EnhancedCode
	if n, _ := fmt.Sscanf(msg, "%d.%d.%d", &c[0], &c[1], &c[2]); n == 3 {
		return c
	}
	return smtp.NoEnhancedCode
}

// greeted is a connection whose first reads return a greeting already consumed.
type greeted struct {
	net.Conn
	pending []byte
}

func (g *greeted) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

func (s *Sender) dial(ctx context.Context, ip string) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.Timeout}
	if s.cfg.LocalAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.cfg.LocalAddr)}
	}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(s.cfg.Timeout))
	return conn, nil
}

// plaintext redelivers over a new connection without TLS (level may only).
func (s *Sender) plaintext(ctx context.Context, msg *queue.Message, out func(queue.Outcome) queue.Outcome, ip string) queue.Outcome {
	conn, err := s.dial(ctx, ip)
	if err != nil {
		return out(queue.Outcome{Result: queue.ResultConnect, Detail: err.Error()})
	}
	if s.cfg.Transcript != nil {
		s.cfg.Transcript(fmt.Sprintf("connected to %s again, for plaintext (opportunistic TLS failed)", net.JoinHostPort(ip, strconv.Itoa(s.cfg.Port))))
		conn = newTraceConn(conn, s.cfg.Transcript, "")
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout, c.SubmissionTimeout = s.cfg.Timeout, s.cfg.Timeout
	defer c.Close()
	if err := c.Hello(s.cfg.Helo); err != nil {
		return out(replyOutcome(err, queue.ResultConnect))
	}
	o := s.transfer(c, msg)
	o.TLS = "none"
	return out(o)
}

// transfer sends the envelope and the message.
func (s *Sender) transfer(c *smtp.Client, msg *queue.Message) queue.Outcome {
	if err := c.Mail(msg.From, nil); err != nil {
		return replyOutcome(err, queue.ResultSMTPReply)
	}
	for _, rcpt := range msg.To {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return replyOutcome(err, queue.ResultSMTPReply)
		}
	}
	if s.cfg.DryRun {
		c.Reset()
		c.Quit()
		return queue.Outcome{Delivered: true, Detail: "dry run: the recipients were accepted; no message was sent"}
	}
	w, err := c.Data()
	if err != nil {
		return replyOutcome(err, queue.ResultSMTPReply)
	}
	if _, err := w.Write(msg.Data); err != nil {
		return replyOutcome(err, queue.ResultSMTPReply)
	}
	if err := w.Close(); err != nil {
		return replyOutcome(err, queue.ResultSMTPReply)
	}
	c.Quit()
	return queue.Outcome{Delivered: true}
}

// replyOutcome classifies an SMTP error: the server's own reply, or a broken connection.
func replyOutcome(err error, otherwise string) queue.Outcome {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		status := fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		if se.EnhancedCode == smtp.NoEnhancedCode || se.EnhancedCode[0] == 0 {
			status = fmt.Sprintf("%d.0.0", se.Code/100)
		}
		return queue.Outcome{Result: queue.ResultSMTPReply, Permanent: se.Code >= 500, Status: status,
			Detail: fmt.Sprintf("%d %s %s", se.Code, status, se.Message)}
	}
	return queue.Outcome{Result: otherwise, Detail: err.Error()}
}

// daneOutcome classifies a DANE authentication failure (RFC 8460 result types).
func daneOutcome(err error) queue.Outcome {
	r := queue.ResultTLSAInvalid
	switch {
	case errors.Is(err, dane.ErrExpired):
		r = queue.ResultCertificateExpired
	case errors.Is(err, dane.ErrHostMismatch):
		r = queue.ResultCertificateHostMismatch
	case errors.Is(err, dane.ErrTANotSent), errors.Is(err, dane.ErrChainInvalid):
		r = queue.ResultCertificateNotTrusted
	}
	return queue.Outcome{Result: r, Detail: err.Error()}
}

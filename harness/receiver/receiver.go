// Package receiver runs SMTP receivers (github.com/emersion/go-smtp servers) on loopback
// addresses with chosen TLS personalities — every certificate and STARTTLS situation a DANE
// sender must handle (RFC 7672) — and records what each one got: connections (STARTTLS used,
// handshake outcome, SNI, TLS version and cipher) and delivered messages.
package receiver

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Personality is how a receiver behaves.
type Personality string

// Personalities. Certificates are generated at Start unless Config.Identity is set (then it is
// served as is, except by OtherKey); validity is relative to Config.Now.
const (
	// SelfSigned serves a valid self-signed leaf naming Hostname (for 3 x x records).
	SelfSigned Personality = "self-signed"
	// CAChain serves a CA-issued leaf naming Hostname and sends the CA with it (for 2 x x).
	CAChain Personality = "ca-chain"
	// CAChainLeafOnly serves a CA-issued leaf without sending the CA.
	CAChainLeafOnly Personality = "ca-chain-leaf-only"
	// Expired serves a CA-issued leaf (chain sent) that expired a day ago.
	Expired Personality = "expired"
	// NotYetValid serves a CA-issued leaf (chain sent) valid from tomorrow.
	NotYetValid Personality = "not-yet-valid"
	// OtherKey serves a certificate with a key made at Start, unrelated to anything published
	// before: the names (and issuer) of Config.Identity when set, else self-signed for Hostname.
	OtherKey Personality = "other-key"
	// NameMXHost serves a CA-issued leaf (chain sent) naming Hostname.
	NameMXHost Personality = "name-mx-host"
	// NameRecipientDomain serves a CA-issued leaf (chain sent) naming Config.RecipientDomain.
	NameRecipientDomain Personality = "name-recipient-domain"
	// NameUnrelated serves a CA-issued leaf (chain sent) naming Config.UnrelatedName.
	NameUnrelated Personality = "name-unrelated"
	// NoSTARTTLS does not offer STARTTLS (a STARTTLS command gets 502 5.5.1).
	NoSTARTTLS Personality = "no-starttls"
	// HandshakeFails offers STARTTLS, records the ClientHello, then aborts the handshake with a
	// TLS alert (internal error); go-smtp then replies 550 5.0.0 if the client still listens.
	HandshakeFails Personality = "handshake-fails"
	// TLS10Only speaks TLS 1.0 and nothing else (self-signed leaf). Go's crypto/tls still
	// serves TLS 1.0 when MinVersion and MaxVersion say so explicitly.
	TLS10Only Personality = "tls10-only"
	// SlowGreeting delays the 220 greeting by Config.GreetingDelay (10 s when zero).
	SlowGreeting Personality = "slow-greeting"
	// RejectRCPT4xx answers every RCPT with 450 4.2.1; RejectRCPT5xx with 550 5.1.1.
	RejectRCPT4xx Personality = "reject-rcpt-4xx"
	RejectRCPT5xx Personality = "reject-rcpt-5xx"
	// RejectDATA4xx answers the end of DATA with 451 4.3.0; RejectDATA5xx with 554 5.6.0.
	RejectDATA4xx Personality = "reject-data-4xx"
	RejectDATA5xx Personality = "reject-data-5xx"
	// DropAfterSTARTTLS closes the connection right after a successful TLS handshake.
	DropAfterSTARTTLS Personality = "drop-after-starttls"
)

// Personalities lists every personality.
var Personalities = []Personality{SelfSigned, CAChain, CAChainLeafOnly, Expired, NotYetValid, OtherKey,
	NameMXHost, NameRecipientDomain, NameUnrelated, NoSTARTTLS, HandshakeFails, TLS10Only, SlowGreeting,
	RejectRCPT4xx, RejectRCPT5xx, RejectDATA4xx, RejectDATA5xx, DropAfterSTARTTLS}

// CAIssued reports whether the personality serves a certificate issued by the receiver's CA
// (so that a usage 2, DANE-TA, record can name that CA); the others serve a self-signed one.
func (p Personality) CAIssued() bool {
	switch p {
	case CAChain, CAChainLeafOnly, Expired, NotYetValid, NameMXHost, NameRecipientDomain, NameUnrelated:
		return true
	}
	return false
}

// DefaultSlowGreeting is SlowGreeting's delay when Config.GreetingDelay is zero.
const DefaultSlowGreeting = 10 * time.Second

// Config describes a receiver.
type Config struct {
	Addr            string // listen address, 127.0.0.x:port (port 25 needs root); "127.0.0.1:0" when empty
	Hostname        string // the MX host name: greeting domain and default leaf name ("localhost" when empty)
	RecipientDomain string // leaf name of NameRecipientDomain (required by it)
	UnrelatedName   string // leaf name of NameUnrelated ("unrelated.invalid" when empty)
	Personality     Personality
	Identity        *Identity        // the certificate to serve; generated from the personality when nil
	CA              *CA              // issuer of generated CA-issued leaves; a new "danelab CA" when nil
	GreetingDelay   time.Duration    // delay of the 220 greeting (any personality)
	Timeout         time.Duration    // server read and write timeout (30 s when zero)
	Now             func() time.Time // clock for generated validity and recorded times (time.Now when nil)
	Log             io.Writer        // go-smtp's error log (discarded when nil)
}

// Delivery is a message the receiver accepted.
type Delivery struct {
	From        string
	To          []string
	Data        []byte
	Helo        string
	Remote      string
	TLS         bool
	TLSVersion  uint16
	CipherSuite uint16
	SNI         string              // server name of the ClientHello ("" when none sent)
	Chain       []*x509.Certificate // the certificates the receiver presented
	Time        time.Time
}

// Session is one SMTP connection and how it went.
type Session struct {
	Remote         string
	Start, End     time.Time // End is zero while the connection is open
	Helo           string    // last HELO/EHLO argument
	StartTLS       bool      // the client sent STARTTLS and a ClientHello
	SNI            string    // server name of the ClientHello
	TLS            bool      // the handshake completed
	TLSVersion     uint16
	CipherSuite    uint16
	HandshakeError string   // why TLS did not come up after a ClientHello ("" when it did)
	Dropped        bool     // closed by DropAfterSTARTTLS
	Deliveries     int      // messages accepted
	Rejected       []string // replies refusing RCPT or DATA, e.g. "RCPT <a@b>: 450 4.2.1 ..."
}

// Receiver is a running SMTP receiver.
type Receiver struct {
	cfg   Config
	id    *Identity
	ca    *CA
	srv   *smtp.Server
	ln    net.Listener
	done  chan struct{}
	serve chan struct{}
	conns sync.WaitGroup

	mu         sync.Mutex
	sessions   []*Session
	deliveries []Delivery
}

// Start listens on cfg.Addr and serves until Stop.
func Start(cfg Config) (*Receiver, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.UnrelatedName == "" {
		cfg.UnrelatedName = "unrelated.invalid"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Personality == "" {
		cfg.Personality = SelfSigned
	}
	if cfg.Personality == SlowGreeting && cfg.GreetingDelay == 0 {
		cfg.GreetingDelay = DefaultSlowGreeting
	}
	r := &Receiver{cfg: cfg, done: make(chan struct{}), serve: make(chan struct{})}
	if err := r.makeIdentity(); err != nil {
		return nil, err
	}

	srv := smtp.NewServer(backend{r})
	srv.Domain = cfg.Hostname
	srv.ReadTimeout = cfg.Timeout
	srv.WriteTimeout = cfg.Timeout
	srv.MaxMessageBytes = 32 << 20
	srv.MaxRecipients = 100
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	srv.ErrorLog = log.New(logw, "receiver "+string(cfg.Personality)+" ", log.LstdFlags)
	srv.TLSConfig = r.tlsConfig()
	r.srv = srv

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("receiver %s: %w", cfg.Personality, err)
	}
	r.ln = ln
	go func() {
		defer close(r.serve)
		srv.Serve(&listener{Listener: ln, r: r})
	}()
	return r, nil
}

func (r *Receiver) makeIdentity() error {
	cfg := r.cfg
	now := cfg.Now()
	nb, na := now.Add(-time.Hour), now.Add(365*24*time.Hour)
	r.ca = cfg.CA
	ca := func() (*CA, error) {
		if r.ca == nil {
			c, err := NewCAValid("danelab CA", now.Add(-365*24*time.Hour), now.Add(10*365*24*time.Hour))
			if err != nil {
				return nil, err
			}
			r.ca = c
		}
		return r.ca, nil
	}
	issue := func(names []string, nb, na time.Time) (*Identity, error) {
		c, err := ca()
		if err != nil {
			return nil, err
		}
		return c.Issue(names, nb, na)
	}
	var err error
	host := []string{cfg.Hostname}
	switch {
	case cfg.Personality == OtherKey:
		names, issuer := host, (*CA)(nil)
		if cfg.Identity != nil {
			names, issuer = cfg.Identity.Leaf.DNSNames, cfg.Identity.CA
		}
		key, kerr := NewKey()
		if kerr != nil {
			return kerr
		}
		if issuer != nil {
			r.id, err = issuer.IssueKey(key, names, nb, na)
		} else {
			r.id, err = NewSelfSignedKey(key, names, nb, na)
		}
	case cfg.Identity != nil:
		r.id = cfg.Identity
		if r.ca == nil {
			r.ca = cfg.Identity.CA
		}
	default:
		switch cfg.Personality {
		case CAChain, NameMXHost:
			r.id, err = issue(host, nb, na)
		case CAChainLeafOnly:
			r.id, err = issue(host, nb, na)
			if err == nil {
				r.id = r.id.LeafOnly()
			}
		case Expired:
			r.id, err = issue(host, now.Add(-30*24*time.Hour), now.Add(-24*time.Hour))
		case NotYetValid:
			r.id, err = issue(host, now.Add(24*time.Hour), now.Add(30*24*time.Hour))
		case NameRecipientDomain:
			if cfg.RecipientDomain == "" {
				return fmt.Errorf("receiver %s: Config.RecipientDomain is required", cfg.Personality)
			}
			r.id, err = issue([]string{cfg.RecipientDomain}, nb, na)
		case NameUnrelated:
			r.id, err = issue([]string{cfg.UnrelatedName}, nb, na)
		case SelfSigned, NoSTARTTLS, HandshakeFails, TLS10Only, SlowGreeting,
			RejectRCPT4xx, RejectRCPT5xx, RejectDATA4xx, RejectDATA5xx, DropAfterSTARTTLS:
			r.id, err = NewSelfSigned(host, nb, na)
		default:
			return fmt.Errorf("receiver: unknown personality %q", cfg.Personality)
		}
	}
	return err
}

func (r *Receiver) tlsConfig() *tls.Config {
	p := r.cfg.Personality
	if p == NoSTARTTLS {
		return nil
	}
	var c *tls.Config
	c = &tls.Config{
		// The identity is read per handshake: Reissue may replace it while the receiver runs.
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			id := r.Identity()
			if rc, ok := h.Conn.(*conn); ok {
				r.update(rc.sess, func(s *Session) { s.StartTLS, s.SNI = true, h.ServerName })
				rc.id.Store(id)
			}
			if p == HandshakeFails {
				return nil, errors.New("receiver: HandshakeFails personality refuses the handshake")
			}
			cc := c.Clone()
			cc.GetConfigForClient = nil
			cc.Certificates = []tls.Certificate{id.Certificate}
			return cc, nil
		},
	}
	if p == TLS10Only {
		c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
	}
	return c
}

// Addr is the address the receiver listens on.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// Identity is the certificate the receiver serves (nil never: NoSTARTTLS has one too, unused).
func (r *Receiver) Identity() *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.id
}

// Renewed returns a certificate like the served one (same names, issuer, validity period and
// chain shape) for key, without serving it: a renewal that can be announced (TLSA "next"
// records) before it is deployed with SetIdentity. A new key is a key rollover, which
// invalidates every record of the old leaf; the same key keeps "x 1 x" records valid but not
// "x 0 x" ones.
func (r *Receiver) Renewed(key crypto.Signer) (*Identity, error) {
	old := r.Identity()
	leaf := old.Leaf
	var id *Identity
	var err error
	if old.CA != nil {
		id, err = old.CA.IssueKey(key, leaf.DNSNames, leaf.NotBefore, leaf.NotAfter)
	} else {
		id, err = NewSelfSignedKey(key, leaf.DNSNames, leaf.NotBefore, leaf.NotAfter)
	}
	if err != nil {
		return nil, err
	}
	if len(old.Chain) == 1 && old.CA != nil { // keep sending what the personality sends
		id = id.LeafOnly()
	}
	return id, nil
}

// SetIdentity serves id from the next handshake on.
func (r *Receiver) SetIdentity(id *Identity) {
	r.mu.Lock()
	r.id = id
	r.mu.Unlock()
}

// CA is the issuer of the served certificate (nil for a self-signed one).
func (r *Receiver) CA() *CA { return r.ca }

// Config is the receiver's configuration with defaults filled in.
func (r *Receiver) Config() Config { return r.cfg }

// Stop closes the listener and every connection and waits (up to 5 s) for them to end.
func (r *Receiver) Stop() {
	select {
	case <-r.done:
		return
	default:
		close(r.done)
	}
	r.srv.Close()
	// Serve may not have taken the listener yet (Stop right after Start), so Close alone
	// would leave it accepting: close it here too.
	r.ln.Close()
	<-r.serve
	waited := make(chan struct{})
	go func() { r.conns.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
}

// Deliveries returns the accepted messages so far, oldest first.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.deliveries...)
}

// Sessions returns the connections so far, oldest first (copies).
func (r *Receiver) Sessions() []Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Session, len(r.sessions))
	for i, s := range r.sessions {
		out[i] = *s
		out[i].Rejected = append([]string(nil), s.Rejected...)
	}
	return out
}

// Reset forgets the recorded sessions and deliveries.
func (r *Receiver) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions, r.deliveries = nil, nil
}

func (r *Receiver) update(s *Session, f func(*Session)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(s)
}

// listener wraps accepted connections to record sessions and delay the greeting.
type listener struct {
	net.Listener
	r *Receiver
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := l.r
	s := &Session{Remote: c.RemoteAddr().String(), Start: r.cfg.Now()}
	r.mu.Lock()
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
	r.conns.Add(1)
	return &conn{Conn: c, r: r, sess: s}, nil
}

// conn is an accepted connection: go-smtp writes its replies through it in plaintext, and
// crypto/tls its records after STARTTLS.
type conn struct {
	net.Conn
	r       *Receiver
	sess    *Session
	greeted atomic.Bool
	closed  atomic.Bool
	id      atomic.Pointer[Identity] // the identity presented in this connection's handshake
}

var handshakeErrorReply = []byte("550 5.0.0 Handshake error")

func (c *conn) Write(p []byte) (int, error) {
	if !c.greeted.Swap(true) && c.r.cfg.GreetingDelay > 0 {
		t := time.NewTimer(c.r.cfg.GreetingDelay)
		select {
		case <-t.C:
		case <-c.r.done:
			t.Stop()
			return 0, net.ErrClosed
		}
	}
	if bytes.HasPrefix(p, handshakeErrorReply) {
		c.r.update(c.sess, func(s *Session) {
			if s.StartTLS && !s.TLS && s.HandshakeError == "" {
				s.HandshakeError = "TLS handshake failed (server replied 550 5.0.0 Handshake error)"
			}
		})
	}
	return c.Conn.Write(p)
}

func (c *conn) Close() error {
	if !c.closed.Swap(true) {
		c.r.update(c.sess, func(s *Session) {
			s.End = c.r.cfg.Now()
			if s.StartTLS && !s.TLS && s.HandshakeError == "" {
				s.HandshakeError = "TLS handshake did not complete"
			}
		})
		defer c.r.conns.Done()
	}
	return c.Conn.Close()
}

// tlsUp records a completed handshake.
func (c *conn) tlsUp(cs tls.ConnectionState) {
	c.r.update(c.sess, func(s *Session) {
		s.StartTLS, s.TLS = true, true
		s.TLSVersion, s.CipherSuite = cs.Version, cs.CipherSuite
		if s.SNI == "" {
			s.SNI = cs.ServerName
		}
		s.HandshakeError = ""
	})
}

// drop closes the raw connection (DropAfterSTARTTLS).
func (c *conn) drop() {
	c.r.update(c.sess, func(s *Session) { s.Dropped = true })
	c.Close()
}

func ourConn(sc *smtp.Conn) *conn {
	nc := sc.Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*conn)
	return c
}

type backend struct{ r *Receiver }

func (b backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c := ourConn(sc)
	if c == nil {
		return nil, errors.New("receiver: unknown connection")
	}
	b.r.update(c.sess, func(s *Session) { s.Helo = sc.Hostname() })
	cs, isTLS := sc.TLSConnectionState()
	if isTLS {
		c.tlsUp(cs)
		if b.r.cfg.Personality == DropAfterSTARTTLS {
			c.drop()
			return nil, errors.New("dropping the connection")
		}
	}
	return &session{r: b.r, sc: sc, c: c, tlsAtStart: isTLS}, nil
}

type session struct {
	r          *Receiver
	sc         *smtp.Conn
	c          *conn
	tlsAtStart bool
	from       string
	to         []string
}

func (s *session) Reset() { s.from, s.to = "", nil }

// Logout runs on QUIT and close, and right after a successful STARTTLS handshake (go-smtp ends
// the plaintext session then): that is where DropAfterSTARTTLS drops.
func (s *session) Logout() error {
	if cs, isTLS := s.sc.TLSConnectionState(); isTLS && !s.tlsAtStart {
		s.tlsAtStart = true // once
		s.c.tlsUp(cs)
		if s.r.cfg.Personality == DropAfterSTARTTLS {
			s.c.drop()
		}
	}
	return nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from, s.to = from, nil
	return nil
}

func (s *session) reject(what string, e *smtp.SMTPError) error {
	s.r.update(s.c.sess, func(x *Session) {
		x.Rejected = append(x.Rejected, fmt.Sprintf("%s: %d %d.%d.%d %s", what, e.Code,
			e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message))
	})
	return e
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch s.r.cfg.Personality {
	case RejectRCPT4xx:
		return s.reject("RCPT <"+to+">", &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Mailbox temporarily unavailable (danelab reject-rcpt-4xx)"})
	case RejectRCPT5xx:
		return s.reject("RCPT <"+to+">", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user (danelab reject-rcpt-5xx)"})
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	data, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	switch s.r.cfg.Personality {
	case RejectDATA4xx:
		return s.reject("DATA", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure (danelab reject-data-4xx)"})
	case RejectDATA5xx:
		return s.reject("DATA", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused (danelab reject-data-5xx)"})
	}
	chain := s.r.Identity().Chain
	if id := s.c.id.Load(); id != nil {
		chain = id.Chain
	}
	d := Delivery{From: s.from, To: append([]string(nil), s.to...), Data: data, Helo: s.sc.Hostname(),
		Remote: s.c.RemoteAddr().String(), Chain: chain, Time: s.r.cfg.Now()}
	if cs, ok := s.sc.TLSConnectionState(); ok {
		d.TLS, d.TLSVersion, d.CipherSuite, d.SNI = true, cs.Version, cs.CipherSuite, cs.ServerName
	}
	s.r.mu.Lock()
	s.r.deliveries = append(s.r.deliveries, d)
	s.c.sess.Deliveries++
	s.r.mu.Unlock()
	return nil
}

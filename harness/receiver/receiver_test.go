package receiver

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/dane"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"
)

const (
	mxHost    = "mx.example.test"
	rcptDom   = "example.test"
	fromAddr  = "alice@sender.test"
	toAddr    = "bob@example.test"
	msgBody   = "Subject: hi\r\n\r\nhello over DANE\r\n"
	cmdTimout = 5 * time.Second
)

func start(t *testing.T, cfg Config) *Receiver {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = mxHost
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

func rec(t *testing.T, c *x509.Certificate, u, s, m uint8) *dns.TLSA {
	t.Helper()
	data, err := tlsa.Data(c, s, m)
	if err != nil {
		t.Fatal(err)
	}
	return tlsa.New(tlsa.Owner(mxHost, 25), 300, tlsa.Param{Usage: u, Selector: s, Matching: m}, data)
}

// attempt is what a client saw.
type attempt struct {
	offered bool                // STARTTLS advertised
	tlsErr  error               // error of the first command after STARTTLS (the handshake)
	tls     bool                // TLS came up
	state   tls.ConnectionState // client side
	verdict error               // dane verdict, when a DANE config was used
	match   dane.Match
	mailErr error
	rcptErr error
	dataErr error
	greet   time.Duration // time to the greeting (plaintext attempts only)
}

func (a attempt) delivered() bool {
	return a.mailErr == nil && a.rcptErr == nil && a.dataErr == nil && a.tlsErr == nil
}

// send delivers one message. cfg nil: plaintext; otherwise STARTTLS with cfg (required).
func send(t *testing.T, addr string, cfg *tls.Config) attempt {
	t.Helper()
	var a attempt
	// The clock starts before the dial: the server may accept, and start its greeting delay,
	// before DialTimeout returns (a greeting seen at 298 ms of a 300 ms delay).
	t0 := time.Now()
	raw, err := net.DialTimeout("tcp", addr, cmdTimout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(3 * cmdTimout))
	var c *smtp.Client
	if cfg == nil {
		c = smtp.NewClient(raw)
		c.CommandTimeout, c.SubmissionTimeout = cmdTimout, cmdTimout
		if err := c.Hello("sender.test"); err != nil {
			t.Fatal(err)
		}
		a.offered, _ = c.Extension("STARTTLS")
		a.greet = time.Since(t0)
	} else {
		c, err = smtp.NewClientStartTLS(raw, cfg)
		if err != nil {
			if strings.Contains(err.Error(), "support STARTTLS") {
				return a
			}
			t.Fatalf("STARTTLS: %v", err)
		}
		a.offered = true
		c.CommandTimeout, c.SubmissionTimeout = cmdTimout, cmdTimout
	}
	defer c.Close()
	a.mailErr = c.Mail(fromAddr, nil)
	if cfg != nil {
		a.state, a.tls = c.TLSConnectionState()
		if a.mailErr != nil && (!a.tls || !a.state.HandshakeComplete) {
			a.tlsErr, a.mailErr = a.mailErr, nil
			a.tls = false
			return a
		}
	}
	if a.mailErr != nil {
		return a
	}
	if a.rcptErr = c.Rcpt(toAddr, nil); a.rcptErr != nil {
		return a
	}
	w, err := c.Data()
	if err != nil {
		a.dataErr = err
		return a
	}
	io.WriteString(w, msgBody)
	a.dataErr = w.Close()
	c.Quit()
	return a
}

// daneCfg is a DANE client config recording its verdict into a.
func daneCfg(recs []*dns.TLSA, verdict *error, match *dane.Match) *tls.Config {
	return dane.TLSConfig(mxHost, recs, []string{rcptDom}, nil, func(m dane.Match, err error) {
		*verdict, *match = err, m
	})
}

func anyCfg() *tls.Config {
	return &tls.Config{ServerName: mxHost, InsecureSkipVerify: true}
}

func sendDANE(t *testing.T, addr string, recs ...*dns.TLSA) attempt {
	t.Helper()
	var verdict error
	var m dane.Match
	a := send(t, addr, daneCfg(recs, &verdict, &m))
	a.verdict, a.match = verdict, m
	return a
}

func wantDelivered(t *testing.T, r *Receiver, a attempt, tlsOn bool) Delivery {
	t.Helper()
	if !a.delivered() {
		t.Fatalf("not delivered: %+v", a)
	}
	ds := r.Deliveries()
	if len(ds) != 1 {
		t.Fatalf("%d deliveries, want 1", len(ds))
	}
	d := ds[0]
	if d.From != fromAddr || len(d.To) != 1 || d.To[0] != toAddr || string(d.Data) != msgBody {
		t.Errorf("delivery %q -> %q: %q", d.From, d.To, d.Data)
	}
	if d.TLS != tlsOn {
		t.Errorf("delivery TLS = %v, want %v", d.TLS, tlsOn)
	}
	if tlsOn {
		if d.SNI != mxHost || d.TLSVersion < tls.VersionTLS12 || d.CipherSuite == 0 {
			t.Errorf("delivery SNI %q version %x cipher %x", d.SNI, d.TLSVersion, d.CipherSuite)
		}
		if d.TLSVersion != a.state.Version || d.CipherSuite != a.state.CipherSuite {
			t.Errorf("recorded version/cipher %x/%x, client saw %x/%x", d.TLSVersion, d.CipherSuite, a.state.Version, a.state.CipherSuite)
		}
		if len(d.Chain) != len(a.state.PeerCertificates) || !d.Chain[0].Equal(a.state.PeerCertificates[0]) {
			t.Errorf("recorded chain differs from what the client got")
		}
	}
	if d.Time.IsZero() || d.Helo == "" || d.Remote == "" {
		t.Errorf("delivery time/helo/remote: %v %q %q", d.Time, d.Helo, d.Remote)
	}
	ss := r.Sessions()
	if len(ss) == 0 || ss[len(ss)-1].Deliveries != 1 || ss[len(ss)-1].TLS != tlsOn {
		t.Errorf("sessions %+v", ss)
	}
	return d
}

func wantRefused(t *testing.T, r *Receiver, a attempt, kind error) Session {
	t.Helper()
	if a.tlsErr == nil || a.delivered() {
		t.Fatalf("handshake did not fail: %+v", a)
	}
	if kind != nil && !errors.Is(a.verdict, kind) {
		t.Fatalf("verdict %v, want %v", a.verdict, kind)
	}
	if n := len(r.Deliveries()); n != 0 {
		t.Errorf("%d deliveries after a failed handshake", n)
	}
	// The server notices the abort when the client closes; wait for the session to end.
	var s Session
	for i := 0; i < 200; i++ {
		ss := r.Sessions()
		if len(ss) > 0 {
			s = ss[len(ss)-1]
			if !s.End.IsZero() {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.StartTLS || s.TLS || s.HandshakeError == "" || s.SNI != mxHost {
		t.Errorf("session %+v: want STARTTLS, SNI %s, a handshake error", s, mxHost)
	}
	return s
}

func TestSelfSigned(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: SelfSigned})
	leaf := r.Identity().Leaf
	if len(r.Identity().Chain) != 1 || leaf.Subject.CommonName != mxHost || !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) || r.CA() != nil {
		t.Fatalf("identity: %v chain %d", leaf.Subject, len(r.Identity().Chain))
	}
	a := sendDANE(t, r.Addr(), rec(t, leaf, 3, 1, 1))
	wantDelivered(t, r, a, true)
	if a.verdict != nil || a.match.Usage != 3 {
		t.Errorf("verdict %v %v", a.match, a.verdict)
	}
	s := r.Sessions()[0]
	if !s.StartTLS || !s.TLS || s.SNI != mxHost || s.HandshakeError != "" || s.Helo != "localhost" {
		t.Errorf("session %+v", s)
	}
	// The same receiver also delivers a second message; Reset forgets.
	a = send(t, r.Addr(), anyCfg())
	if !a.delivered() || len(r.Deliveries()) != 2 || len(r.Sessions()) != 2 {
		t.Fatalf("second delivery: %+v, %d", a, len(r.Deliveries()))
	}
	r.Reset()
	if len(r.Deliveries()) != 0 || len(r.Sessions()) != 0 {
		t.Error("Reset")
	}
	// Plaintext delivery is possible too (STARTTLS advertised).
	a = send(t, r.Addr(), nil)
	if !a.offered {
		t.Error("STARTTLS not advertised")
	}
	wantDelivered(t, r, a, false)
}

func TestCAChain(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: CAChain})
	id := r.Identity()
	if len(id.Chain) != 2 || r.CA() == nil || !id.Chain[1].Equal(r.CA().Cert) || id.Leaf.CheckSignatureFrom(r.CA().Cert) != nil {
		t.Fatal("identity is not leaf + CA")
	}
	a := sendDANE(t, r.Addr(), rec(t, r.CA().Cert, 2, 1, 1))
	d := wantDelivered(t, r, a, true)
	if len(d.Chain) != 2 || a.match.Usage != 2 || a.match.Depth != 1 || a.match.Name != mxHost {
		t.Errorf("chain %d, match %v", len(d.Chain), a.match)
	}
}

func TestCAChainLeafOnly(t *testing.T) {
	t.Parallel()
	ca, err := NewCA("shared CA")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Personality: CAChainLeafOnly, CA: ca})
	if r.CA() != ca || len(r.Identity().Chain) != 1 || r.Identity().Leaf.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatal("identity")
	}
	a := sendDANE(t, r.Addr(), rec(t, ca.Cert, 2, 1, 1))
	if len(a.state.PeerCertificates) > 1 {
		t.Errorf("server sent %d certificates", len(a.state.PeerCertificates))
	}
	wantRefused(t, r, a, dane.ErrTANotSent)
	// 2 0 0 carries the whole CA: accepted without it being sent.
	r.Reset()
	a = sendDANE(t, r.Addr(), rec(t, ca.Cert, 2, 0, 0))
	wantDelivered(t, r, a, true)
}

func TestDates(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    Personality
		kind error
	}{{Expired, dane.ErrExpired}, {NotYetValid, dane.ErrNotYetValid}} {
		t.Run(string(c.p), func(t *testing.T) {
			r := start(t, Config{Personality: c.p})
			leaf := r.Identity().Leaf
			now := time.Now()
			if (c.p == Expired) != now.After(leaf.NotAfter) || (c.p == NotYetValid) != now.Before(leaf.NotBefore) {
				t.Fatalf("leaf valid %s..%s", leaf.NotBefore, leaf.NotAfter)
			}
			wantRefused(t, r, sendDANE(t, r.Addr(), rec(t, r.CA().Cert, 2, 1, 1)), c.kind)
			r.Reset()
			a := sendDANE(t, r.Addr(), rec(t, leaf, 3, 1, 1)) // DANE-EE ignores dates
			wantDelivered(t, r, a, true)
		})
	}
}

func TestOtherKey(t *testing.T) {
	t.Parallel()
	published, err := NewSelfSigned([]string{mxHost}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, Config{Personality: OtherKey, Identity: published})
	served := r.Identity().Leaf
	if bytes.Equal(served.RawSubjectPublicKeyInfo, published.Leaf.RawSubjectPublicKeyInfo) || served.DNSNames[0] != mxHost {
		t.Fatal("OtherKey serves the published key")
	}
	wantRefused(t, r, sendDANE(t, r.Addr(), rec(t, published.Leaf, 3, 1, 1)), dane.ErrNoMatch)
	// Without an identity: a fresh self-signed key.
	r2 := start(t, Config{Personality: OtherKey})
	if r2.Identity().CA != nil || bytes.Equal(r2.Identity().Leaf.RawSubjectPublicKeyInfo, served.RawSubjectPublicKeyInfo) {
		t.Fatal("identity")
	}
	// With a CA-issued identity: re-keyed by the same CA, the 2 1 1 still matches.
	ca, _ := NewCA("CA")
	pub2, _ := ca.Issue([]string{mxHost}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	r3 := start(t, Config{Personality: OtherKey, Identity: pub2})
	wantRefused(t, r3, sendDANE(t, r3.Addr(), rec(t, pub2.Leaf, 3, 1, 1)), dane.ErrNoMatch)
	r3.Reset()
	wantDelivered(t, r3, sendDANE(t, r3.Addr(), rec(t, ca.Cert, 2, 1, 1)), true)
}

func TestNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p     Personality
		name  string
		match bool
	}{{NameMXHost, mxHost, true}, {NameRecipientDomain, rcptDom, true}, {NameUnrelated, "unrelated.invalid", false}} {
		t.Run(string(c.p), func(t *testing.T) {
			r := start(t, Config{Personality: c.p, RecipientDomain: rcptDom})
			if n := r.Identity().Leaf.DNSNames; len(n) != 1 || n[0] != c.name || len(r.Identity().Chain) != 2 {
				t.Fatalf("leaf names %v, chain %d", n, len(r.Identity().Chain))
			}
			a := sendDANE(t, r.Addr(), rec(t, r.CA().Cert, 2, 1, 1))
			if c.match {
				wantDelivered(t, r, a, true)
				if a.match.Name != c.name {
					t.Errorf("matched name %q", a.match.Name)
				}
			} else {
				wantRefused(t, r, a, dane.ErrHostMismatch)
			}
		})
	}
	if _, err := Start(Config{Personality: NameRecipientDomain}); err == nil {
		t.Error("NameRecipientDomain without RecipientDomain started")
	}
	if _, err := Start(Config{Personality: "bogus"}); err == nil {
		t.Error("unknown personality started")
	}
}

func TestNoSTARTTLS(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: NoSTARTTLS})
	a := sendDANE(t, r.Addr(), rec(t, r.Identity().Leaf, 3, 1, 1))
	if a.offered || a.delivered() && a.tls {
		t.Fatalf("STARTTLS offered: %+v", a)
	}
	// A STARTTLS command anyway: 502.
	c, err := smtp.Dial(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.CommandTimeout = cmdTimout
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised")
	}
	c.Close()
	wantReply(t, r.Addr(), "STARTTLS", "502 5.5.1")
	// Plaintext works.
	a = send(t, r.Addr(), nil)
	wantDelivered(t, r, a, false)
}

// wantReply sends EHLO then cmd on a raw connection and checks the reply's start.
func wantReply(t *testing.T, addr, cmd, want string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, cmdTimout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(cmdTimout))
	fmt.Fprintf(c, "EHLO x\r\n%s\r\n", cmd)
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "\r\n"+want) && !strings.HasPrefix(got, want) {
		n, err := c.Read(buf)
		got += string(buf[:n])
		if err != nil {
			t.Fatalf("reply to %s: %q, %v; want %q", cmd, got, err, want)
		}
	}
}

func TestHandshakeFails(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: HandshakeFails})
	a := sendDANE(t, r.Addr(), rec(t, r.Identity().Leaf, 3, 1, 1))
	if !a.offered {
		t.Fatal("STARTTLS not offered")
	}
	s := wantRefused(t, r, a, nil)
	if a.verdict != nil {
		t.Errorf("verification ran: %v", a.verdict)
	}
	t.Logf("client: %v; session: %s", a.tlsErr, s.HandshakeError)
	// Any client fails, not just a DANE one.
	r.Reset()
	wantRefused(t, r, send(t, r.Addr(), anyCfg()), nil)
}

func TestTLS10Only(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: TLS10Only})
	a := sendDANE(t, r.Addr(), rec(t, r.Identity().Leaf, 3, 1, 1))
	wantRefused(t, r, a, nil)
	if a.verdict != nil {
		t.Errorf("verification ran: %v", a.verdict)
	}
	// A client that accepts TLS 1.0 gets TLS 1.0: the server really speaks it.
	r.Reset()
	old := anyCfg()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS12
	a = send(t, r.Addr(), old)
	if !a.delivered() || a.state.Version != tls.VersionTLS10 {
		t.Fatalf("TLS 1.0 client: %+v", a)
	}
	if d := r.Deliveries(); len(d) != 1 || d[0].TLSVersion != tls.VersionTLS10 {
		t.Errorf("deliveries %+v", d)
	}
}

func TestSlowGreeting(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	r := start(t, Config{Personality: SlowGreeting, GreetingDelay: delay})
	a := send(t, r.Addr(), nil)
	if a.greet < delay {
		t.Errorf("greeting after %v, want ≥ %v", a.greet, delay)
	}
	wantDelivered(t, r, a, false)
	// An impatient client gives up.
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(delay / 3))
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("greeting arrived early")
	}
	// The default delay, and Stop does not wait for it.
	r2 := start(t, Config{Personality: SlowGreeting})
	if r2.Config().GreetingDelay != DefaultSlowGreeting {
		t.Errorf("default delay %v", r2.Config().GreetingDelay)
	}
	c2, err := net.Dial("tcp", r2.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	time.Sleep(50 * time.Millisecond)
	t0 := time.Now()
	r2.Stop()
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Stop took %v", d)
	}
}

func TestRejects(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p    Personality
		code int
		enh  smtp.EnhancedCode
		rcpt bool
	}{
		{RejectRCPT4xx, 450, smtp.EnhancedCode{4, 2, 1}, true},
		{RejectRCPT5xx, 550, smtp.EnhancedCode{5, 1, 1}, true},
		{RejectDATA4xx, 451, smtp.EnhancedCode{4, 3, 0}, false},
		{RejectDATA5xx, 554, smtp.EnhancedCode{5, 6, 0}, false},
	} {
		t.Run(string(c.p), func(t *testing.T) {
			r := start(t, Config{Personality: c.p})
			a := sendDANE(t, r.Addr(), rec(t, r.Identity().Leaf, 3, 1, 1))
			if !a.tls || a.tlsErr != nil || a.mailErr != nil {
				t.Fatalf("TLS did not come up: %+v", a)
			}
			err := a.dataErr
			if c.rcpt {
				err = a.rcptErr
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != c.code || se.EnhancedCode != c.enh {
				t.Fatalf("error %v, want %d %v", err, c.code, c.enh)
			}
			if len(r.Deliveries()) != 0 {
				t.Error("recorded a delivery")
			}
			s := r.Sessions()[0]
			if len(s.Rejected) != 1 || !strings.Contains(s.Rejected[0], fmt.Sprint(c.code)) || !s.TLS {
				t.Errorf("session %+v", s)
			}
		})
	}
}

func TestDropAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	r := start(t, Config{Personality: DropAfterSTARTTLS})
	a := sendDANE(t, r.Addr(), rec(t, r.Identity().Leaf, 3, 1, 1))
	if a.delivered() || a.verdict != nil {
		t.Fatalf("attempt %+v", a)
	}
	// The handshake completed (the verdict ran and matched), then the connection died.
	if a.match.Usage != 3 {
		t.Errorf("DANE verdict did not run: %v", a.match)
	}
	t.Logf("client: tls %v, err %v / %v", a.tls, a.tlsErr, a.mailErr)
	s := r.Sessions()[0]
	if !s.StartTLS || !s.TLS || !s.Dropped || s.SNI != mxHost || s.HandshakeError != "" || s.End.IsZero() {
		t.Errorf("session %+v", s)
	}
	if len(r.Deliveries()) != 0 {
		t.Error("delivery recorded")
	}
}

// TestAllPersonalitiesStart: every personality starts with defaults and answers EHLO.
func TestAllPersonalitiesStart(t *testing.T) {
	t.Parallel()
	for _, p := range Personalities {
		cfg := Config{Personality: p, RecipientDomain: rcptDom}
		if p == SlowGreeting {
			cfg.GreetingDelay = 10 * time.Millisecond
		}
		r := start(t, cfg)
		c, err := smtp.Dial(r.Addr())
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c.CommandTimeout = cmdTimout
		ok, _ := c.Extension("STARTTLS")
		if ok != (p != NoSTARTTLS) {
			t.Errorf("%s: STARTTLS advertised = %v", p, ok)
		}
		c.Quit()
		if r.Identity() == nil || r.Identity().Leaf == nil {
			t.Errorf("%s: no identity", p)
		}
	}
}

// TestLoopbackAddresses: distinct 127.0.0.x addresses, and port 25 where allowed.
func TestLoopbackAddresses(t *testing.T) {
	t.Parallel()
	r1 := start(t, Config{Addr: "127.0.0.21:0"})
	r2 := start(t, Config{Addr: "127.0.0.22:0"})
	if !strings.HasPrefix(r1.Addr(), "127.0.0.21:") || !strings.HasPrefix(r2.Addr(), "127.0.0.22:") {
		t.Fatalf("addresses %s %s", r1.Addr(), r2.Addr())
	}
	wantDelivered(t, r2, send(t, r2.Addr(), anyCfg()), true)
	if len(r1.Deliveries()) != 0 {
		t.Error("r1 got r2's mail")
	}
	r25, err := Start(Config{Addr: "127.0.0.231:25", Hostname: mxHost})
	if err != nil {
		t.Skipf("port 25 not available here: %v", err)
	}
	defer r25.Stop()
	if r25.Addr() != "127.0.0.231:25" {
		t.Errorf("addr %s", r25.Addr())
	}
	wantDelivered(t, r25, send(t, r25.Addr(), anyCfg()), true)
}

// TestCAIssued: CAIssued says which personalities have a CA, as Start makes them.
func TestCAIssued(t *testing.T) {
	for _, p := range Personalities {
		r, err := Start(Config{Personality: p, RecipientDomain: "example.test"})
		if err != nil {
			t.Fatal(err)
		}
		r.Stop()
		if got := r.CA() != nil; got != p.CAIssued() {
			t.Errorf("%s: Start made a CA: %v, CAIssued: %v", p, got, p.CAIssued())
		}
	}
}

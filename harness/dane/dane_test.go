package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64 = 1

// mkCert signs a certificate for key; parent nil means self-signed.
func mkCert(t *testing.T, key crypto.Signer, cn string, names []string, isCA bool, nb, na time.Time, parent *testCert) *testCert {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names,
		NotBefore:    nb, NotAfter: na,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{c, key}
}

var (
	valid0 = now.Add(-24 * time.Hour)
	valid1 = now.Add(365 * 24 * time.Hour)
)

func mkCA(t *testing.T, name string) *testCert {
	return mkCert(t, newKey(t), name, nil, true, valid0.Add(-time.Hour), valid1.Add(time.Hour), nil)
}

func record(t *testing.T, c *x509.Certificate, u, s, m uint8) *dns.TLSA {
	t.Helper()
	data, err := tlsa.Data(c, s, m)
	if err != nil {
		t.Fatal(err)
	}
	return tlsa.New("_25._tcp.mx.example.test.", 300, tlsa.Param{Usage: u, Selector: s, Matching: m}, data)
}

func chainOf(cs ...*testCert) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range cs {
		out = append(out, c.cert)
	}
	return out
}

var refs = []string{"mx.example.test", "example.test"}

func TestUsable(t *testing.T) {
	h := func(n int) string { return strings.Repeat("ab", n) }
	cases := []struct {
		u, s, m uint8
		data    string
		want    bool
	}{
		{3, 1, 1, h(32), true}, {3, 0, 1, h(32), true}, {2, 1, 1, h(32), true},
		{3, 1, 2, h(64), true}, {2, 0, 2, h(64), true},
		{3, 1, 0, h(1), true}, {2, 0, 0, h(200), true},
		{3, 1, 0, "", false},
		{3, 1, 1, h(31), false}, {3, 1, 1, h(33), false}, {3, 1, 1, h(64), false},
		{3, 1, 2, h(32), false}, {3, 1, 2, h(63), false},
		{3, 1, 1, "zz" + h(31), false},
		{0, 1, 1, h(32), false}, {1, 1, 1, h(32), false}, {4, 1, 1, h(32), false},
		{3, 2, 1, h(32), false}, {3, 1, 3, h(32), false}, {3, 255, 255, h(32), false},
	}
	var all []*dns.TLSA
	nUsable := 0
	for _, c := range cases {
		r := tlsa.New("x.", 1, tlsa.Param{Usage: c.u, Selector: c.s, Matching: c.m}, c.data)
		all = append(all, r)
		if c.want {
			nUsable++
		}
		if got := Usable(r); got != c.want {
			t.Errorf("Usable(%d %d %d, %d bytes) = %v, want %v", c.u, c.s, c.m, len(c.data)/2, got, c.want)
		}
	}
	if Usable(nil) {
		t.Error("Usable(nil)")
	}
	us := UsableSet(all)
	if len(us) != nUsable {
		t.Errorf("UsableSet: %d, want %d", len(us), nUsable)
	}
	for _, r := range us {
		if !Usable(r) {
			t.Errorf("UsableSet kept %v", r)
		}
	}
}

// TestCombinations: every usage 2/3 × selector 0/1 × matching 0/1/2, matching and not.
func TestCombinations(t *testing.T) {
	self := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, valid0, valid1, nil)
	other := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, valid0, valid1, nil)
	ca := mkCA(t, "Lab CA")
	otherCA := mkCA(t, "Other CA")
	leaf := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, valid0, valid1, ca)
	for _, u := range []uint8{2, 3} {
		for _, s := range []uint8{0, 1} {
			for _, m := range []uint8{0, 1, 2} {
				for _, match := range []bool{true, false} {
					name := fmt.Sprintf("%d%d%d/match=%v", u, s, m, match)
					t.Run(name, func(t *testing.T) {
						var chain []*x509.Certificate
						var rec *dns.TLSA
						wantDepth := 0
						if u == 3 {
							chain = chainOf(self)
							rec = record(t, self.cert, u, s, m)
							if !match {
								rec = record(t, other.cert, u, s, m)
							}
						} else {
							chain = chainOf(leaf, ca)
							wantDepth = 1
							rec = record(t, ca.cert, u, s, m)
							if !match {
								rec = record(t, otherCA.cert, u, s, m)
							}
						}
						if !Usable(rec) {
							t.Fatalf("record %v not usable", rec)
						}
						got, err := Verify(chain, []*dns.TLSA{rec}, refs, now)
						if match {
							if err != nil {
								t.Fatalf("Verify: %v", err)
							}
							if got.Record != rec || got.Usage != u || got.Depth != wantDepth {
								t.Fatalf("Match = %+v, want record %v usage %d depth %d", got, rec, u, wantDepth)
							}
							if u == 2 && got.Name != "mx.example.test" {
								t.Errorf("Name = %q", got.Name)
							}
							return
						}
						if !errors.Is(err, ErrNoMatch) {
							t.Fatalf("Verify = %+v, %v; want ErrNoMatch", got, err)
						}
						var de *Error
						if !errors.As(err, &de) {
							t.Fatalf("error %T is not *Error", err)
						}
					})
				}
			}
		}
	}
}

func TestDANEEEIgnoresNamesAndDates(t *testing.T) {
	key := newKey(t)
	cases := map[string]*testCert{
		"expired":       mkCert(t, key, "mx.example.test", []string{"mx.example.test"}, false, now.Add(-48*time.Hour), now.Add(-time.Hour), nil),
		"not-yet-valid": mkCert(t, key, "mx.example.test", []string{"mx.example.test"}, false, now.Add(time.Hour), now.Add(48*time.Hour), nil),
		"wrong-name":    mkCert(t, key, "unrelated.invalid", []string{"unrelated.invalid"}, false, valid0, valid1, nil),
		"ca-issued":     mkCert(t, key, "unrelated.invalid", nil, false, now.Add(-48*time.Hour), now.Add(-time.Hour), mkCA(t, "X")),
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, sm := range [][2]uint8{{1, 1}, {0, 1}, {1, 2}, {1, 0}} {
				rec := record(t, c.cert, 3, sm[0], sm[1])
				m, err := Verify(chainOf(c), []*dns.TLSA{rec}, refs, now)
				if err != nil || m.Usage != 3 || m.Depth != 0 {
					t.Errorf("3 %d %d: %+v, %v", sm[0], sm[1], m, err)
				}
			}
		})
	}
	// The same key, re-issued: 3 1 1 still matches, 3 0 1 of the old certificate does not.
	old, renewed := cases["expired"], cases["wrong-name"]
	if _, err := Verify(chainOf(renewed), []*dns.TLSA{record(t, old.cert, 3, 1, 1)}, refs, now); err != nil {
		t.Errorf("3 1 1 after re-issue: %v", err)
	}
	if _, err := Verify(chainOf(renewed), []*dns.TLSA{record(t, old.cert, 3, 0, 1)}, refs, now); !errors.Is(err, ErrNoMatch) {
		t.Errorf("3 0 1 after re-issue: %v, want ErrNoMatch", err)
	}
}

func TestDANETA(t *testing.T) {
	ca := mkCA(t, "Lab CA")
	leafFor := func(cn string, names []string, nb, na time.Time) *testCert {
		return mkCert(t, newKey(t), cn, names, false, nb, na, ca)
	}
	root := mkCA(t, "Lab Root")
	interKey := newKey(t)
	inter := mkCert(t, interKey, "Lab Intermediate", nil, true, valid0, valid1, root)
	deepLeaf := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, valid0, valid1, inter)
	expiredInter := mkCert(t, interKey, "Lab Intermediate", nil, true, now.Add(-48*time.Hour), now.Add(-time.Hour), root)
	otherCA := mkCA(t, "Lab CA") // same name, other key
	forged := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, valid0, valid1, otherCA)

	r211 := record(t, ca.cert, 2, 1, 1)
	r200 := record(t, ca.cert, 2, 0, 0)
	good := leafFor("mx.example.test", []string{"mx.example.test"}, valid0, valid1)
	cases := []struct {
		name      string
		chain     []*x509.Certificate
		recs      []*dns.TLSA
		refs      []string
		wantErr   error
		wantDepth int
		wantName  string
	}{
		{"mx-host", chainOf(good, ca), []*dns.TLSA{r211}, refs, nil, 1, "mx.example.test"},
		{"recipient-domain", chainOf(leafFor("example.test", []string{"example.test"}, valid0, valid1), ca), []*dns.TLSA{r211}, refs, nil, 1, "example.test"},
		{"wildcard", chainOf(leafFor("x", []string{"*.example.test"}, valid0, valid1), ca), []*dns.TLSA{r211}, refs, nil, 1, "mx.example.test"},
		{"cn-only", chainOf(leafFor("MX.Example.Test", nil, valid0, valid1), ca), []*dns.TLSA{r211}, []string{"mx.example.test."}, nil, 1, "mx.example.test."},
		{"cn-ignored-with-san", chainOf(leafFor("mx.example.test", []string{"other.test"}, valid0, valid1), ca), []*dns.TLSA{r211}, refs, ErrHostMismatch, 0, ""},
		{"unrelated-name", chainOf(leafFor("unrelated.invalid", []string{"unrelated.invalid"}, valid0, valid1), ca), []*dns.TLSA{r211}, refs, ErrHostMismatch, 0, ""},
		{"wildcard-two-labels", chainOf(leafFor("x", []string{"*.test"}, valid0, valid1), ca), []*dns.TLSA{r211}, []string{"mx.example.test"}, ErrHostMismatch, 0, ""},
		{"leaf-expired", chainOf(leafFor("mx.example.test", []string{"mx.example.test"}, now.Add(-48*time.Hour), now.Add(-time.Hour)), ca), []*dns.TLSA{r211}, refs, ErrExpired, 0, ""},
		{"leaf-not-yet-valid", chainOf(leafFor("mx.example.test", []string{"mx.example.test"}, now.Add(time.Hour), valid1), ca), []*dns.TLSA{r211}, refs, ErrNotYetValid, 0, ""},
		{"expired-and-wrong-name", chainOf(leafFor("u.invalid", []string{"u.invalid"}, now.Add(-48*time.Hour), now.Add(-time.Hour)), ca), []*dns.TLSA{r211}, refs, ErrExpired, 0, ""},
		{"ta-not-sent", chainOf(good), []*dns.TLSA{r211}, refs, ErrTANotSent, 0, ""},
		{"ta-not-sent-200", chainOf(good), []*dns.TLSA{r200}, refs, nil, 1, "mx.example.test"},
		{"ta-sent-200", chainOf(good, ca), []*dns.TLSA{r200}, refs, nil, 1, "mx.example.test"},
		{"root-at-depth-2", chainOf(deepLeaf, inter, root), []*dns.TLSA{record(t, root.cert, 2, 1, 1)}, refs, nil, 2, "mx.example.test"},
		{"intermediate-at-depth-1", chainOf(deepLeaf, inter, root), []*dns.TLSA{record(t, inter.cert, 2, 0, 1)}, refs, nil, 1, "mx.example.test"},
		{"intermediate-expired", chainOf(deepLeaf, expiredInter, root), []*dns.TLSA{record(t, root.cert, 2, 1, 1)}, refs, ErrExpired, 0, ""},
		{"ta-did-not-sign-leaf", chainOf(forged, ca), []*dns.TLSA{r211}, refs, ErrChainInvalid, 0, ""},
		{"leaf-cannot-be-ta", chainOf(good, ca), []*dns.TLSA{record(t, good.cert, 2, 1, 1)}, refs, ErrNoMatch, 0, ""},
		{"unusable-ignored", chainOf(good, ca), []*dns.TLSA{
			record(t, ca.cert, 0, 1, 1), record(t, ca.cert, 1, 1, 1), record(t, good.cert, 1, 0, 1),
			tlsa.New("x.", 1, tlsa.Param{Usage: 2, Selector: 1, Matching: 1}, "abcd"), r211}, refs, nil, 1, "mx.example.test"},
		{"only-unusable", chainOf(good, ca), []*dns.TLSA{record(t, ca.cert, 0, 1, 1), record(t, good.cert, 1, 1, 1)}, refs, ErrNoUsable, 0, ""},
		{"host-mismatch-beats-no-match", chainOf(leafFor("u.invalid", []string{"u.invalid"}, valid0, valid1), ca),
			[]*dns.TLSA{record(t, otherCA.cert, 2, 1, 1), r211, record(t, good.cert, 3, 1, 1)}, refs, ErrHostMismatch, 0, ""},
		{"most-advanced-failure-wins", chainOf(leafFor("u.invalid", []string{"u.invalid"}, valid0, valid1), otherCA, ca),
			[]*dns.TLSA{record(t, otherCA.cert, 2, 1, 1), r211}, refs, ErrHostMismatch, 0, ""},
		{"most-advanced-failure-wins-reversed", chainOf(leafFor("u.invalid", []string{"u.invalid"}, valid0, valid1), otherCA, ca),
			[]*dns.TLSA{r211, record(t, otherCA.cert, 2, 1, 1)}, refs, ErrHostMismatch, 0, ""},
		{"chain-invalid-beats-ta-not-sent", chainOf(good, otherCA),
			[]*dns.TLSA{record(t, otherCA.cert, 2, 1, 1), r211}, refs, ErrChainInvalid, 0, ""},
		{"ee-rescues-ta-failure", chainOf(leafFor("u.invalid", []string{"u.invalid"}, now.Add(-48*time.Hour), now.Add(-time.Hour)), ca), nil, refs, nil, 0, ""},
		{"no-certificate", nil, []*dns.TLSA{r211}, refs, ErrNoMatch, 0, ""},
	}
	// ee-rescues-ta-failure: 2 1 1 fails (expired) but a 3 1 1 of the same leaf matches.
	cases[len(cases)-2].recs = []*dns.TLSA{r211, record(t, cases[len(cases)-2].chain[0], 3, 1, 1)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Verify(c.chain, c.recs, c.refs, now)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Verify = %+v, %v; want %v", m, err, c.wantErr)
				}
				if m.Record != nil {
					t.Errorf("failed Verify returned a match %v", m)
				}
				t.Logf("error: %v", err)
				if m.String() != "no match" {
					t.Errorf("Match.String() = %q", m.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !strings.Contains(m.String(), "matched at depth") {
				t.Errorf("Match.String() = %q", m.String())
			}
			if c.name == "ee-rescues-ta-failure" {
				if m.Usage != 3 {
					t.Errorf("want DANE-EE match, got %v", m)
				}
				return
			}
			if m.Usage != 2 || m.Depth != c.wantDepth || m.Name != c.wantName {
				t.Errorf("Match = %v (usage %d depth %d name %q), want depth %d name %q", m, m.Usage, m.Depth, m.Name, c.wantDepth, c.wantName)
			}
		})
	}
}

func TestNameMatch(t *testing.T) {
	c := &x509.Certificate{DNSNames: []string{"*.Example.TEST", "mail.other.test."}}
	for ref, want := range map[string]bool{
		"mx.example.test": true, "MX.EXAMPLE.TEST.": true, "example.test": false, "a.mx.example.test": false,
		"mail.other.test": true, "other.test": false, "": false, ".example.test": false,
	} {
		if _, got := NameMatch(c, []string{ref}); got != want {
			t.Errorf("NameMatch(%q) = %v, want %v", ref, got, want)
		}
	}
}

// serve runs a TLS server on loopback with cert and records the SNI of each ClientHello.
func serve(t *testing.T, cert tls.Certificate) (addr string, sni func() []string) {
	t.Helper()
	var mu sync.Mutex
	var names []string
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			names = append(names, h.ServerName)
			mu.Unlock()
			return nil, nil
		},
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("hello\n"))
				}
			}()
		}
	}()
	return l.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), names...)
	}
}

func tlsCert(c ...*testCert) tls.Certificate {
	var tc tls.Certificate
	for _, x := range c {
		tc.Certificate = append(tc.Certificate, x.cert.Raw)
	}
	tc.PrivateKey = c[0].key
	tc.Leaf = c[0].cert
	return tc
}

func TestHandshake(t *testing.T) {
	realNow := time.Now()
	ca := mkCert(t, newKey(t), "Lab CA", nil, true, realNow.Add(-time.Hour), realNow.Add(time.Hour), nil)
	self := mkCert(t, newKey(t), "whatever.invalid", nil, false, realNow.Add(-48*time.Hour), realNow.Add(-time.Hour), nil) // expired: DANE-EE does not care
	leaf := mkCert(t, newKey(t), "mx.example.test", []string{"mx.example.test"}, false, realNow.Add(-time.Hour), realNow.Add(time.Hour), ca)
	other := mkCert(t, newKey(t), "x", nil, false, realNow.Add(-time.Hour), realNow.Add(time.Hour), nil)
	cases := []struct {
		name    string
		served  tls.Certificate
		recs    []*dns.TLSA
		wantErr error
		usage   uint8
	}{
		{"ee-match", tlsCert(self), []*dns.TLSA{record(t, self.cert, 3, 1, 1)}, nil, 3},
		{"ee-no-match", tlsCert(self), []*dns.TLSA{record(t, other.cert, 3, 1, 1)}, ErrNoMatch, 0},
		{"ta-match", tlsCert(leaf, ca), []*dns.TLSA{record(t, ca.cert, 2, 1, 1)}, nil, 2},
		{"ta-not-sent", tlsCert(leaf), []*dns.TLSA{record(t, ca.cert, 2, 1, 1)}, ErrTANotSent, 0},
		{"unusable-only-encrypts", tlsCert(self), []*dns.TLSA{record(t, self.cert, 1, 1, 1)}, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, sni := serve(t, c.served)
			var gotM Match
			var gotErr error
			calls := 0
			cfg := TLSConfig("mx.example.test.", c.recs, []string{"example.test"}, nil, func(m Match, err error) {
				calls++
				gotM, gotErr = m, err
			})
			raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(5 * time.Second))
			conn := tls.Client(raw, cfg)
			herr := conn.Handshake()
			if calls != 1 {
				t.Fatalf("onVerify called %d times", calls)
			}
			if s := sni(); len(s) != 1 || s[0] != "mx.example.test" {
				t.Errorf("server saw SNI %q, want mx.example.test", s)
			}
			if c.wantErr != nil {
				if herr == nil || !errors.Is(herr, c.wantErr) || !errors.Is(gotErr, c.wantErr) {
					t.Fatalf("handshake error %v, verdict %v; want %v", herr, gotErr, c.wantErr)
				}
				return
			}
			if herr != nil {
				t.Fatalf("handshake: %v (verdict %v)", herr, gotErr)
			}
			if c.usage == 0 {
				if !errors.Is(gotErr, ErrNoUsable) {
					t.Errorf("verdict %v, want ErrNoUsable", gotErr)
				}
			} else if gotErr != nil || gotM.Usage != c.usage {
				t.Errorf("verdict %v, %v; want usage %d", gotM, gotErr, c.usage)
			}
			if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
				t.Errorf("TLS version %x", v)
			}
			buf := make([]byte, 6)
			if _, err := conn.Read(buf); err != nil || string(buf) != "hello\n" {
				t.Errorf("read %q, %v", buf, err)
			}
		})
	}
}

func TestTLSConfigRefusesOldTLS(t *testing.T) {
	cfg := TLSConfig("mx.example.test", nil, nil, nil, nil)
	if cfg.MinVersion != tls.VersionTLS12 || !cfg.InsecureSkipVerify || cfg.ServerName != "mx.example.test" || cfg.VerifyConnection == nil {
		t.Fatalf("config %+v", cfg)
	}
}

package integration

// Harness for the TLSA tests (tlsa_test.go): certificates made with crypto/x509, the
// independent judges of TLSA data (openssl pipelines, ldns-dane, hash-slinger's tlsa), a
// danezone server with the control API and the prometheus endpoint, go-smtp STARTTLS
// receivers, an Unbound on port 53 of a spare loopback address for Postfix's posttls-finger,
// and pebble + lego for an ACME renewal (acme_helpers_test.go). Every name here starts with "tl" to stay clear of
// the other test files of the package.

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// ---------------------------------------------------------------------------------------------
// Certificates

// tlCert is a certificate made by a test, with its key and PEM forms.
type tlCert struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte // PKCS#8
}

// tlKey makes a key: "ec" (P-256) or "rsa" (2048 bits).
func tlKey(tb testing.TB, kind string) crypto.Signer {
	tb.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// tlCertOpts describe a certificate to make.
type tlCertOpts struct {
	CN        string
	DNSNames  []string
	IPs       []net.IP
	CA        bool
	Key       crypto.Signer // nil: a new P-256 key
	Issuer    *tlCert       // nil: self-signed
	NotBefore time.Time     // zero: an hour ago
	NotAfter  time.Time     // zero: in 90 days
}

func tlMakeCert(tb testing.TB, o tlCertOpts) *tlCert {
	tb.Helper()
	key := o.Key
	if key == nil {
		key = tlKey(tb, "ec")
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.CN, Organization: []string{"danelab tests"}},
		DNSNames:     o.DNSNames,
		IPAddresses:  o.IPs,
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
	}
	if o.CA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if o.Issuer != nil {
		parent, signer = o.Issuer.Cert, o.Issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return &tlCert{Cert: c, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})}
}

// tlLeaf makes a server certificate for host: self-signed when issuer is nil.
func tlLeaf(tb testing.TB, host string, issuer *tlCert, key crypto.Signer) *tlCert {
	tb.Helper()
	return tlMakeCert(tb, tlCertOpts{CN: host, DNSNames: []string{host}, Issuer: issuer, Key: key})
}

// tlChainPEM concatenates certificates (leaf first), like certbot's fullchain.pem.
func tlChainPEM(certs ...*tlCert) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, c.CertPEM...)
	}
	return b
}

// tlWriteAtomic replaces path's content at once (write to a temporary file, rename), as
// certbot does with its symlinks: a poll never sees half a file.
func tlWriteAtomic(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

// tlTLSCert is c (and the rest of its chain) as a crypto/tls certificate.
func tlTLSCert(c *tlCert, chain ...*tlCert) tls.Certificate {
	tc := tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
	for _, x := range chain {
		tc.Certificate = append(tc.Certificate, x.Cert.Raw)
	}
	return tc
}

// ---------------------------------------------------------------------------------------------
// Independent judges of TLSA data

var tlDigestRe = regexp.MustCompile(`=\s*([0-9a-f]{64})\s*$`)

// tlOpenSSLCertSPKI computes the SPKI SHA-256 of the first certificate of a PEM file with the
// openssl pipeline `openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | openssl
// dgst -sha256`: the association data of a 3 1 1 (leaf) or 2 1 1 (CA) record.
func tlOpenSSLCertSPKI(tb testing.TB, pemFile string) string {
	tb.Helper()
	return tlOpenSSL(tb, `openssl x509 -noout -pubkey -in "$1" | openssl pkey -pubin -outform DER | openssl dgst -sha256`, pemFile)
}

// tlOpenSSLKeySPKI computes the SPKI SHA-256 of a private key file with `openssl pkey -pubout
// -outform DER | openssl dgst -sha256`: the 3 1 1 data of a staged key.
func tlOpenSSLKeySPKI(tb testing.TB, keyFile string) string {
	tb.Helper()
	return tlOpenSSL(tb, `openssl pkey -in "$1" -pubout -outform DER | openssl dgst -sha256`, keyFile)
}

func tlOpenSSL(tb testing.TB, pipeline, file string) string {
	tb.Helper()
	peer.Need(tb, "openssl")
	cmd := exec.Command("bash", "-o", "pipefail", "-c", pipeline, "bash", file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s (%s): %v\n%s", pipeline, file, err, out)
	}
	m := tlDigestRe.FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		tb.Fatalf("%s (%s): no SHA-256 digest in %q", pipeline, file, out)
	}
	return m[1]
}

// tlWriteTemp writes data into a new file of dir and returns its path.
func tlWriteTemp(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// tlRecordLine parses one TLSA record from a tool's output: the first line holding
// "TLSA u s m hex".
var tlRecordRe = regexp.MustCompile(`(?m)\bTLSA\s+(\d)\s+(\d)\s+(\d)\s+([0-9a-fA-F]+)\s*$`)

func tlRecordFrom(out string) (string, bool) {
	m := tlRecordRe.FindStringSubmatch(out)
	if m == nil {
		return "", false
	}
	return fmt.Sprintf("%s %s %s %s", m[1], m[2], m[3], strings.ToLower(m[4])), true
}

// ---------------------------------------------------------------------------------------------
// The server under test, with the control API and prometheus

// tlServerConfig is a danezone server for the TLSA tests.
type tlServerConfig struct {
	Zones  map[string]string // default: the repository's example.test
	Lines  []string          // lines of the danezone block (tlsa ...)
	Reload string            // "" leaves the reload line out: danezone's default (1s)
}

// tlServer is a running server with its control API and metrics endpoint.
type tlServer struct {
	*Server
	Control  string // http://127.0.0.1:PORT
	Metrics  string // http://127.0.0.1:PORT/metrics
	Corefile string
}

// tlStartServer writes the zones and a Corefile with `control` in the danezone block and
// `prometheus` in the server block (which ServerConfig cannot express), starts the server
// with the harness's process helpers and waits until it answers; stopped at test end.
func tlStartServer(tb testing.TB, cfg tlServerConfig) *tlServer {
	tb.Helper()
	if coreDNSBin == "" {
		tb.Fatal("server binary not built (TestMain did not run?)")
	}
	if cfg.Zones == nil {
		cfg.Zones = map[string]string{"example.test": RepoZone(tb, "example.test.zone")}
	}
	dir, cleanup, err := tempDir("tlsa")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{Dir: dir, ZoneDir: filepath.Join(dir, "zones"), KeyDir: filepath.Join(dir, "keys"),
		LogPath: filepath.Join(dir, "coredns.log"), cleanup: cleanup}
	tb.Cleanup(func() {
		n := len(raceReports())
		s.Stop()
		if r := raceReports(); len(r) > n {
			tb.Errorf("data race in the server under test:\n%s", r[len(r)-1])
		}
	})
	for _, d := range []string{s.ZoneDir, s.KeyDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	for origin, text := range cfg.Zones {
		if err := os.WriteFile(s.ZoneFile(origin), []byte(text), 0o644); err != nil {
			tb.Fatal(err)
		}
		s.Origins = append(s.Origins, dns.Fqdn(origin))
	}
	sort.Strings(s.Origins)
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			tb.Fatal(err)
		}
	}
	s.Port = ports[0]
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	var block strings.Builder
	fmt.Fprintf(&block, "        keys %s\n", s.KeyDir)
	if cfg.Reload != "" {
		fmt.Fprintf(&block, "        reload %s\n", cfg.Reload)
	}
	fmt.Fprintf(&block, "        control 127.0.0.1:%d\n", ports[1])
	for _, l := range cfg.Lines {
		fmt.Fprintf(&block, "        %s\n", l)
	}
	corefile := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    danezone %s {
%s    }
    prometheus 127.0.0.1:%d
    log
    errors
}
`, s.Port, s.ZoneDir, block.String(), ports[2])
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		tb.Fatal(err)
	}
	if s.proc, err = startProcess("coredns", dir, s.LogPath, coreDNSBin, "-conf", conf); err != nil {
		tb.Fatal(err)
	}
	if err := s.waitReady(30 * time.Second); err != nil {
		tb.Fatalf("%v\nCorefile:\n%s\ncoredns log (%s):\n%s", err, corefile, s.LogPath, tail(s.LogPath, 4000))
	}
	ts := &tlServer{Server: s, Corefile: corefile,
		Control: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		Metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2])}
	// The control API and the metrics endpoint start with the server; wait for both.
	if msg := waitFor(10*time.Second, func() string {
		for _, u := range []string{ts.Control + "/health", ts.Metrics} {
			resp, err := tlHTTP.Get(u)
			if err != nil {
				return err.Error()
			}
			resp.Body.Close()
		}
		return ""
	}); msg != "" {
		tb.Fatalf("control API or metrics not up: %s\n%s", msg, tail(s.LogPath, 2000))
	}
	return ts
}

var tlHTTP = &http.Client{Timeout: 5 * time.Second}

// tlStatus is one host of GET /tlsa, decoded by the field names the API documents.
type tlStatus struct {
	Host      string   `json:"host"`
	Source    string   `json:"source"`
	Current   []string `json:"current"`
	Next      []string `json:"next"`
	Held      []string `json:"held"`
	Owners    []string `json:"owners"`
	LastError string   `json:"last_error"`
	Unstaged  bool     `json:"unstaged_key"`
	Warnings  []string `json:"warnings"`
}

// TLSAStatus returns GET /tlsa for host (FQDN or not).
func (s *tlServer) TLSAStatus(tb testing.TB, host string) tlStatus {
	tb.Helper()
	resp, err := tlHTTP.Get(s.Control + "/tlsa")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /tlsa: %s\n%s", resp.Status, body)
	}
	var all []tlStatus
	if err := json.Unmarshal(body, &all); err != nil {
		tb.Fatalf("GET /tlsa: %v\n%s", err, body)
	}
	for _, st := range all {
		if strings.EqualFold(strings.TrimSuffix(st.Host, "."), strings.TrimSuffix(host, ".")) {
			return st
		}
	}
	tb.Fatalf("GET /tlsa has no host %s:\n%s", host, body)
	return tlStatus{}
}

// Metric returns the value of a metric series whose labels include every label given
// (name{k="v",...}), read from the prometheus text exposition; ok is false when absent.
func (s *tlServer) Metric(tb testing.TB, name string, labels ...string) (float64, bool) {
	tb.Helper()
	resp, err := tlHTTP.Get(s.Metrics)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		series := line[:i]
		match := true
		for j := 0; j+1 < len(labels); j += 2 {
			if !strings.Contains(series, fmt.Sprintf("%s=%q", labels[j], labels[j+1])) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		return v, true
	}
	return 0, false
}

// ---------------------------------------------------------------------------------------------
// TLSA as served

// tlAnswer is the TLSA RRset of one response: the records as "u s m hex" (sorted), their TTL
// and whether an RRSIG covering TLSA came along.
type tlAnswer struct {
	Records []string
	TTL     uint32
	Signed  bool
	AD      bool
	Rcode   int
}

func (a tlAnswer) Has(rec string) bool { return slices.Contains(a.Records, rec) }

func (a tlAnswer) String() string {
	return fmt.Sprintf("rcode %s AD=%v signed=%v ttl %d %v", dns.RcodeToString[a.Rcode], a.AD, a.Signed, a.TTL, a.Records)
}

func tlParse(r *dns.Msg, owner string) tlAnswer {
	a := tlAnswer{AD: r.AuthenticatedData, Rcode: r.Rcode}
	for _, rr := range r.Answer {
		if !strings.EqualFold(rr.Header().Name, dns.Fqdn(owner)) {
			continue
		}
		switch x := rr.(type) {
		case *dns.TLSA:
			a.Records = append(a.Records, fmt.Sprintf("%d %d %d %s", x.Usage, x.Selector, x.MatchingType, strings.ToLower(x.Certificate)))
			a.TTL = x.Hdr.Ttl
		case *dns.RRSIG:
			if x.TypeCovered == dns.TypeTLSA {
				a.Signed = true
			}
		}
	}
	sort.Strings(a.Records)
	return a
}

// tlQuery asks the server for the TLSA RRset of owner (DO set).
func tlQuery(addr, owner string) (tlAnswer, error) {
	r, err := QueryFull(addr, owner, dns.TypeTLSA, QueryOpts{DO: true, Timeout: 2 * time.Second})
	if err != nil {
		return tlAnswer{}, err
	}
	return tlParse(r, owner), nil
}

func tlMustQuery(tb testing.TB, addr, owner string) tlAnswer {
	tb.Helper()
	a, err := tlQuery(addr, owner)
	if err != nil {
		tb.Fatal(err)
	}
	if a.Rcode != dns.RcodeSuccess || !a.Signed {
		tb.Fatalf("TLSA %s from %s: %s (want NOERROR with an RRSIG)", owner, addr, a)
	}
	return a
}

// tlWait polls the TLSA RRset of owner every 10 ms until cond holds; it returns the answer
// and how long it took, or fails the test after timeout.
func tlWait(tb testing.TB, addr, owner string, timeout time.Duration, what string, cond func(tlAnswer) bool) (tlAnswer, time.Duration) {
	tb.Helper()
	start := time.Now()
	var last tlAnswer
	var lastErr error
	for time.Since(start) < timeout {
		a, err := tlQuery(addr, owner)
		if err == nil && a.Rcode == dns.RcodeSuccess && cond(a) {
			return a, time.Since(start)
		}
		last, lastErr = a, err
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("%s: not served within %v; last answer %s (error %v)", what, timeout, last, lastErr)
	return last, 0
}

// tlObservation is one answer seen by tlObserver.
type tlObservation struct {
	At time.Time
	A  tlAnswer
}

// tlObserver queries owner every interval until stopped, keeping every answer: a resolver's
// view of the RRset across a change.
type tlObserver struct {
	mu   sync.Mutex
	obs  []tlObservation
	errs []string
	stop chan struct{}
	done chan struct{}
}

func tlObserve(addr, owner string, every time.Duration) *tlObserver {
	o := &tlObserver{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			a, err := tlQuery(addr, owner)
			at := time.Now()
			o.mu.Lock()
			if err != nil {
				o.errs = append(o.errs, err.Error())
			} else {
				o.obs = append(o.obs, tlObservation{at, a})
			}
			o.mu.Unlock()
			select {
			case <-o.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return o
}

// Stop ends the observation and returns what was seen.
func (o *tlObserver) Stop() ([]tlObservation, []string) {
	close(o.stop)
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.obs), slices.Clone(o.errs)
}

// ---------------------------------------------------------------------------------------------
// SMTP receivers (go-smtp) with STARTTLS

// tlReceiver is a go-smtp server offering STARTTLS with a fixed certificate chain.
type tlReceiver struct {
	Addr string
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{}
}

type tlSession struct{}

func (tlSession) Reset()                               {}
func (tlSession) Logout() error                        { return nil }
func (tlSession) Mail(string, *smtp.MailOptions) error { return nil }
func (tlSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (tlSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }
func tlBackend() smtp.Backend                          { return smtp.BackendFunc(tlNewSession) }
func tlNewSession(*smtp.Conn) (smtp.Session, error)    { return tlSession{}, nil }

var _ smtp.Session = tlSession{}

// tlStartReceiver listens on addr ("127.0.0.12:0" for a free port) and serves SMTP with
// STARTTLS presenting cert; with implicit, TLS starts at connect (port 465 style). Closed at
// test end (or earlier with Close).
func tlStartReceiver(tb testing.TB, addr string, cert tls.Certificate, implicit bool) *tlReceiver {
	tb.Helper()
	r, err := tlNewReceiver(addr, cert, implicit)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

func tlNewReceiver(addr string, cert tls.Certificate, implicit bool) (*tlReceiver, error) {
	s := smtp.NewServer(tlBackend())
	s.Domain = "receiver.danelab.test"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ErrorLog = log.New(io.Discard, "", 0)
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", addr, s.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("receiver on %s: %w", addr, err)
	}
	r := &tlReceiver{Addr: ln.Addr().String(), srv: s, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = s.Serve(ln)
	}()
	return r, nil
}

// Close stops the receiver and waits until its listener is closed.
func (r *tlReceiver) Close() {
	if r == nil || r.srv == nil {
		return
	}
	_ = r.srv.Close()
	<-r.done
	r.srv = nil
}

// tlSpareLoopback returns the first address of candidates where port is free on TCP (and
// UDP when udp is set) right now.
func tlSpareLoopback(port int, udp bool, candidates ...string) (string, error) {
	for _, ip := range candidates {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		tl, err := net.Listen("tcp4", addr)
		if err != nil {
			continue
		}
		tl.Close()
		if udp {
			ul, err := net.ListenPacket("udp4", addr)
			if err != nil {
				continue
			}
			ul.Close()
		}
		return ip, nil
	}
	return "", fmt.Errorf("port %d is busy on every candidate address %v", port, candidates)
}

// ---------------------------------------------------------------------------------------------
// An Unbound on port 53 (for Postfix tools, which use the system resolver)

// tlStartUnboundAt starts a validating Unbound on ip:53 for the stubs, like NewUnbound (which
// takes a free port on 127.0.0.1); stopped at test end.
func tlStartUnboundAt(tb testing.TB, ip string, stubs ...Stub) *Unbound {
	tb.Helper()
	peer.Need(tb, "unbound")
	u, err := startUnbound(unboundSpec{IP: ip, Port: 53, Anchors: stubAnchors(stubs), Stubs: stubs,
		Server: []string{"cache-max-ttl: 5", "cache-max-negative-ttl: 5"}, Probe: stubs[0].Anchor.Zone, ProbeType: dns.TypeSOA})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(u.Stop)
	return u
}

// tlRunUnbound starts unbound -d with the configuration u.Conf (written by the caller, with
// its logfile at u.LogPath) in u.Dir, and waits until it answers SOA queries for zone at
// u.Addr. The caller registers u.Stop. For the Postfix tests, whose configuration the lab
// writes.
func tlRunUnbound(tb testing.TB, u *Unbound, zone string) {
	tb.Helper()
	peer.Need(tb, "unbound")
	if err := runUnbound(u, zone, dns.TypeSOA); err != nil {
		tb.Fatal(err)
	}
}

// tlInLabResolver wraps argv so that it runs in a private mount namespace whose
// /etc/resolv.conf names the lab resolver only (the machine's own file is not touched).
func tlInLabResolver(tb testing.TB, dir, resolverIP string, argv ...string) *exec.Cmd {
	tb.Helper()
	for _, p := range []string{"unshare", "mount"} {
		peer.Need(tb, p)
	}
	rc := filepath.Join(dir, "lab-resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver "+resolverIP+"\noptions edns0 trust-ad attempts:1 timeout:5\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	script := fmt.Sprintf("mount --bind '%s' /etc/resolv.conf && exec %s", rc, strings.Join(quoted, " "))
	return exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
}

// ---------------------------------------------------------------------------------------------
// bin/danelab

var (
	tlDanelabOnce sync.Once
	tlDanelabBin  string
	tlDanelabErr  error
)

// tlDanelab builds cmd/danelab once per test binary.
func tlDanelab(tb testing.TB) string {
	tb.Helper()
	tlDanelabOnce.Do(func() {
		root := moduleRoot
		if root == "" {
			if root, tlDanelabErr = findModuleRoot(); tlDanelabErr != nil {
				return
			}
		}
		dir, err := os.MkdirTemp("", "danelab-it-cli-")
		if err != nil {
			tlDanelabErr = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "danelab")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCommand(), "build", "-o", bin, "./cmd/danelab")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			tlDanelabErr = fmt.Errorf("go build ./cmd/danelab: %v\n%s", err, out)
			return
		}
		tlDanelabBin = bin
	})
	if tlDanelabErr != nil {
		tb.Fatal(tlDanelabErr)
	}
	return tlDanelabBin
}

// tlRun runs a command with a timeout and returns its combined output and exit code.
func tlRun(tb testing.TB, timeout time.Duration, cmd *exec.Cmd) (string, int) {
	tb.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			tb.Fatalf("%v: %v\n%s", cmd.Args, err, out.String())
		}
		return out.String(), 0
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		tb.Fatalf("%v: no exit within %v\n%s", cmd.Args, timeout, out.String())
		return "", -1
	}
}

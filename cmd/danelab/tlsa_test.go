package main

// `danelab tlsa`: the records printed for a certificate file or a live server must carry the
// data openssl computes from the same certificate
// (`openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256`).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

type tlsaTestCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func tlsaMakeCert(t *testing.T, cn string, ca bool, issuer *tlsaTestCert, rsaKey bool, notAfter time.Time) *tlsaTestCert {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaKey {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.DNSNames = []string{cn}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.cert, issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsaTestCert{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// tlsaOpenSSL computes the SPKI SHA-256 of the first certificate of a PEM file with openssl.
func tlsaOpenSSL(t *testing.T, file string) string {
	t.Helper()
	peer.Need(t, "openssl")
	out, err := exec.Command("bash", "-o", "pipefail", "-c",
		`openssl x509 -noout -pubkey -in "$1" | openssl pkey -pubin -outform DER | openssl dgst -sha256`, "bash", file).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`=\s*([0-9a-f]{64})\s*$`).FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		t.Fatalf("openssl printed no digest: %q", out)
	}
	return m[1]
}

func tlsaWrite(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsaRecords runs `danelab tlsa args...` and returns the records printed (zone file syntax,
// rendered back as "OWNER TTL u s m hex") and the comment lines.
func tlsaRecords(t *testing.T, args ...string) (records, comments []string) {
	t.Helper()
	out, errOut := capture(t)
	if code := run(append([]string{"tlsa"}, args...)); code != 0 {
		t.Fatalf("danelab tlsa %v: exit %d\n%s%s", args, code, out, errOut)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.HasPrefix(line, ";") {
			comments = append(comments, line)
			continue
		}
		rr, err := dns.NewRR(line)
		if err != nil {
			t.Fatalf("danelab tlsa %v: %q does not parse: %v", args, line, err)
		}
		x, ok := rr.(*dns.TLSA)
		if !ok {
			t.Fatalf("danelab tlsa %v: not a TLSA record: %q", args, line)
		}
		records = append(records, fmt.Sprintf("%s %d %d %d %d %s", x.Hdr.Name, x.Hdr.Ttl, x.Usage, x.Selector, x.MatchingType, strings.ToLower(x.Certificate)))
	}
	slices.Sort(records)
	return records, comments
}

func TestTLSACommandCert(t *testing.T) {
	dir := t.TempDir()
	ca := tlsaMakeCert(t, "danelab lab CA", true, nil, false, time.Time{})
	leaf := tlsaMakeCert(t, "mx1.example.test", false, ca, true, time.Time{})
	full := tlsaWrite(t, dir, "fullchain.pem", append(append([]byte{}, leaf.pem...), ca.pem...))
	leafData := tlsaOpenSSL(t, full)
	caData := tlsaOpenSSL(t, tlsaWrite(t, dir, "ca.pem", ca.pem))

	// Defaults: 3 1 1 at _25._tcp of the certificate's first DNS name, TTL 300.
	got, comments := tlsaRecords(t, "-cert", full)
	if want := []string{"_25._tcp.mx1.example.test. 300 3 1 1 " + leafData}; !slices.Equal(got, want) {
		t.Errorf("danelab tlsa -cert: %v, openssl computed %v", got, want)
	}
	if len(comments) != 1 || !strings.Contains(comments[0], "mx1.example.test") || strings.Contains(comments[0], "WARNING") {
		t.Errorf("comments %q", comments)
	}

	got, _ = tlsaRecords(t, "-cert", full, "-host", "mail.example.test", "-ports", "25,465", "-records", "311,211", "-ttl", "60")
	var want []string
	for _, port := range []string{"25", "465"} {
		want = append(want, "_"+port+"._tcp.mail.example.test. 60 3 1 1 "+leafData, "_"+port+"._tcp.mail.example.test. 60 2 1 1 "+caData)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("danelab tlsa -records 311,211 -ports 25,465:\n got %v\nwant %v", got, want)
	}

	// An expired certificate: the records, with a warning.
	old := tlsaMakeCert(t, "old.example.test", false, nil, false, time.Now().Add(-24*time.Hour))
	oldFile := tlsaWrite(t, dir, "old.pem", old.pem)
	got, comments = tlsaRecords(t, "-cert", oldFile)
	if want := []string{"_25._tcp.old.example.test. 300 3 1 1 " + tlsaOpenSSL(t, oldFile)}; !slices.Equal(got, want) {
		t.Errorf("expired certificate: %v, want %v", got, want)
	}
	if !strings.Contains(strings.Join(comments, "\n"), "WARNING") {
		t.Errorf("expired certificate: no warning in %q", comments)
	}
}

func TestTLSACommandErrors(t *testing.T) {
	dir := t.TempDir()
	self := tlsaMakeCert(t, "mx1.example.test", false, nil, false, time.Time{})
	selfFile := tlsaWrite(t, dir, "self.pem", self.pem)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "-cert"},
		{[]string{"-cert", selfFile, "-probe", "127.0.0.1:25"}, 2, "-cert"},
		{[]string{"-cert", selfFile, "-records", "011"}, 2, "usage"},
		{[]string{"-cert", selfFile, "-ports", "0"}, 2, "port"},
		{[]string{"-cert", filepath.Join(dir, "missing.pem")}, 1, "missing.pem"},
		{[]string{"-cert", tlsaWrite(t, dir, "junk.pem", []byte("junk\n"))}, 1, "junk.pem"},
		// DANE-TA needs the issuer in the chain; a self-signed leaf alone has none.
		{[]string{"-cert", selfFile, "-records", "211"}, 1, "DANE-TA"},
	} {
		out, errOut := capture(t)
		code := run(append([]string{"tlsa"}, c.args...))
		if code != c.code || !strings.Contains(errOut.String()+out.String(), c.want) {
			t.Errorf("danelab tlsa %v: exit %d (want %d), output %q (want it to mention %q)", c.args, code, c.code, errOut.String()+out.String(), c.want)
		}
	}
}

type tlsaSession struct{}

func (tlsaSession) Reset()                               {}
func (tlsaSession) Logout() error                        { return nil }
func (tlsaSession) Mail(string, *smtp.MailOptions) error { return nil }
func (tlsaSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (tlsaSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// tlsaReceiver serves SMTP on a free port of 127.0.0.12: STARTTLS with chain, implicit TLS
// when implicit is set, no TLS at all when chain is nil.
func tlsaReceiver(t *testing.T, implicit bool, chain ...*tlsaTestCert) string {
	t.Helper()
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return tlsaSession{}, nil }))
	s.Domain = "receiver.danelab.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = log.New(io.Discard, "", 0)
	if len(chain) > 0 {
		tc := tls.Certificate{PrivateKey: chain[0].key}
		for _, c := range chain {
			tc.Certificate = append(tc.Certificate, c.cert.Raw)
		}
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{tc}}
	}
	var ln net.Listener
	var err error
	if implicit {
		ln, err = tls.Listen("tcp", "127.0.0.12:0", s.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.12:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

func TestTLSACommandProbe(t *testing.T) {
	dir := t.TempDir()
	ca := tlsaMakeCert(t, "danelab lab CA", true, nil, false, time.Time{})
	leaf := tlsaMakeCert(t, "mx2.example.test", false, ca, false, time.Time{})
	leafData := tlsaOpenSSL(t, tlsaWrite(t, dir, "leaf.pem", leaf.pem))
	caData := tlsaOpenSSL(t, tlsaWrite(t, dir, "ca.pem", ca.pem))

	addr := tlsaReceiver(t, false, leaf, ca)
	got, comments := tlsaRecords(t, "-probe", addr, "-host", "mx2.example.test")
	if want := []string{"_25._tcp.mx2.example.test. 300 3 1 1 " + leafData}; !slices.Equal(got, want) {
		t.Errorf("danelab tlsa -probe %s (STARTTLS): %v, openssl computed %v", addr, got, want)
	}
	if len(comments) == 0 || !strings.Contains(comments[0], addr) {
		t.Errorf("comments %q do not name the probed address %s", comments, addr)
	}
	// The chain the server presents is taken whole: 2 1 1 of the CA it sent.
	got, _ = tlsaRecords(t, "-probe", addr, "-host", "mx2.example.test", "-records", "211")
	if want := []string{"_25._tcp.mx2.example.test. 300 2 1 1 " + caData}; !slices.Equal(got, want) {
		t.Errorf("danelab tlsa -probe -records 211: %v, openssl computed %v", got, want)
	}

	tlsAddr := tlsaReceiver(t, true, leaf)
	got, _ = tlsaRecords(t, "-probe", tlsAddr, "-tls", "-ports", "465", "-host", "mx2.example.test")
	if want := []string{"_465._tcp.mx2.example.test. 300 3 1 1 " + leafData}; !slices.Equal(got, want) {
		t.Errorf("danelab tlsa -probe %s -tls: %v, openssl computed %v", tlsAddr, got, want)
	}

	// A server without STARTTLS: an error naming the cause, exit 1.
	plain := tlsaReceiver(t, false)
	out, errOut := capture(t)
	if code := run([]string{"tlsa", "-probe", plain, "-host", "mx2.example.test"}); code != 1 || !strings.Contains(errOut.String(), "STARTTLS") {
		t.Errorf("danelab tlsa -probe %s (no STARTTLS): exit %d, output %q%q; want 1 and a word on STARTTLS", plain, code, out, errOut)
	}
}

// TestTLSASubcommandErrors: bad usage of tlsa sync, gate and next is exit 2 with a message
// naming the flag, file or line; nothing is written.
func TestTLSASubcommandErrors(t *testing.T) {
	dir := t.TempDir()
	self := tlsaMakeCert(t, "mx1.example.test", false, nil, false, time.Time{})
	certFile := tlsaWrite(t, dir, "cert.pem", self.pem)
	conf := tlsaWrite(t, dir, "tlsa.conf", []byte("# hosts\ntlsa mx1.example.test cert "+certFile+"\n\ntlsa mx2.example.test cert "+certFile+" records 911\n"))
	dup := tlsaWrite(t, dir, "dup.conf", []byte("tlsa mx1.example.test cert "+certFile+"\ntlsa mx1.example.test cert "+certFile+" ports 25,465\n"))
	notTLSA := tlsaWrite(t, dir, "other.conf", []byte("zone example.test\n"))
	state := filepath.Join(dir, "state.json")
	common := []string{"-zone", "example.test", "-server", "127.0.0.1:1", "-state", state}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"sync", "-once"}, 2, "-host and -cert"},
		{append([]string{"sync", "-once", "-config", conf}, common...), 1, "tlsa.conf:4"},
		{append([]string{"sync", "-once", "-config", notTLSA}, common...), 1, "other.conf:1"},
		{append([]string{"sync", "-once", "-config", dup}, common...), 2, "_25._tcp.mx1.example.test. is published by two tlsa lines"},
		{append([]string{"sync", "-once", "-config", conf, "-host", "mx.example.test"}, common...), 2, "-config goes without"},
		{append([]string{"sync", "-once", "-host", "mx1.example.test", "-cert", certFile, "-tsig", filepath.Join(dir, "none.key")}, common...), 1, "none.key"},
		{append([]string{"sync", "-interval", "10ms", "-host", "mx1.example.test", "-cert", certFile}, common...), 2, "-interval"},
		{append([]string{"gate", "-host", "mx1.example.test", "-cert", certFile, "-new-cert", certFile}, common...), 2, "-install-key"},
		{append([]string{"gate", "-host", "mx1.example.test", "-cert", certFile, "-install-key", filepath.Join(dir, "k")}, common...), 2, "deploy hook"},
		{[]string{"next"}, 2, "-key"},
		{[]string{"next", "-key", filepath.Join(dir, "next.key")}, 2, "-domains"},
		{[]string{"next", "-key", filepath.Join(dir, "next.key"), "-domains", "mx1.example.test", "-type", "dsa"}, 1, "dsa"},
	} {
		out, errOut := capture(t)
		code := run(append([]string{"tlsa"}, c.args...))
		if code != c.code || !strings.Contains(errOut.String()+out.String(), c.want) {
			t.Errorf("danelab tlsa %v: exit %d (want %d), output %q (want it to mention %q)", c.args, code, c.code, errOut.String()+out.String(), c.want)
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("a failed command wrote the state file")
	}
	if _, err := os.Stat(filepath.Join(dir, "next.key")); err == nil {
		t.Errorf("a failed tlsa next wrote a key")
	}
}

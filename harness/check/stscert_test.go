package check

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// testCert makes a certificate for names, issued by ca (self-signed CA when ca is nil).
func testCert(t *testing.T, ca *tls.Certificate, names ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test"},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	parent, signer := tmpl, any(key)
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		parent, signer = ca.Leaf, ca.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// smtpTLS serves STARTTLS with cert on a loopback port.
func smtpTLS(t *testing.T, cert tls.Certificate) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				c.Write([]byte("220 mx.example.test ESMTP\r\n"))
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
					case strings.HasPrefix(cmd, "EHLO"):
						c.Write([]byte("250-mx.example.test\r\n250 STARTTLS\r\n"))
					case cmd == "STARTTLS":
						c.Write([]byte("220 go ahead\r\n"))
						tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
						tc.Handshake()
						return
					default:
						c.Write([]byte("221 bye\r\n"))
						return
					}
				}
			}()
		}
	}()
	port, _ := strconv.Atoi(strings.Split(ln.Addr().String(), ":")[1])
	return port
}

// In MTA-STS enforce mode a host's certificate must be valid in the Web PKI for the host
// (RFC 8461 §4.2); a DANE-only certificate fails there.
func TestSTSEnforceCertificate(t *testing.T) {
	ca := testCert(t, nil)
	other := testCert(t, nil)
	port := smtpTLS(t, testCert(t, &ca, "mx.example.test"))
	r := (&stsResolver{}).
		set("example.test.", dns.TypeMX, resolver.Secure, dns.RcodeSuccess, "example.test. 300 IN MX 10 mx.example.test.").
		set("mx.example.test.", dns.TypeA, resolver.Secure, dns.RcodeSuccess, "mx.example.test. 300 IN A 127.0.0.1").
		set("mx.example.test.", dns.TypeAAAA, resolver.Secure, dns.RcodeSuccess).
		set("_mta-sts.example.test.", dns.TypeTXT, resolver.Secure, dns.RcodeSuccess, `_mta-sts.example.test. 300 IN TXT "v=STSv1; id=20261202"`)
	policy := "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 604800\r\n"
	for _, c := range []struct {
		roots *x509.Certificate
		want  Verdict
	}{{ca.Leaf, Pass}, {other.Leaf, Fail}} {
		roots := x509.NewCertPool()
		roots.AddCert(c.roots)
		rep, err := Run(context.Background(), "example.test", Config{Resolver: r, Port: port, Timeout: 2 * time.Second, Roots: roots,
			HTTPS: func(context.Context, string) ([]byte, error) { return []byte(policy), nil }})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, it := range rep.Items {
			if it.Name == "certificate for MTA-STS (enforce)" {
				found = true
				if it.Verdict != c.want {
					t.Errorf("roots %s: %s (%s), want %s", c.roots.Subject, it.Verdict, it.Detail, c.want)
				}
			}
		}
		if !found {
			t.Fatalf("no MTA-STS certificate item: %+v", rep.Items)
		}
	}
}

package tlsa

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Source yields the certificate chain a mail server presents, leaf first.
type Source interface {
	Fetch(ctx context.Context) ([]*x509.Certificate, error)
	String() string
}

// File reads a PEM chain: certbot's fullchain.pem, acme.sh's output, or the bundle Postfix
// serves (smtpd_tls_chain_files, where a private key may come first: it is skipped).
type File struct{ Path string }

func (f File) String() string { return f.Path }

// Fetch reads and parses the file. Errors name the file and the problem.
func (f File) Fetch(context.Context) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, err
	}
	return ParsePEM(f.Path, data)
}

// ParsePEM returns the certificates of a PEM bundle, in order.
func ParsePEM(name string, data []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			// pem.Decode stops silently at a block it cannot read: a file caught half-written
			// (a renewal in progress) would lose its last certificates.
			if bytes.Contains(data, []byte("-----BEGIN")) {
				return nil, fmt.Errorf("%s: PEM block %d is truncated or malformed (a file still being written?)", name, i)
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %v", name, i, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", name)
	}
	return chain, nil
}

// Probe connects to a mail server and takes the chain it presents: STARTTLS on an SMTP
// port (25, 587), implicit TLS otherwise (465).
type Probe struct {
	Addr       string // host:port
	ServerName string // SNI: the TLSA base domain (RFC 7672 §8.1)
	Implicit   bool   // implicit TLS instead of STARTTLS
	Timeout    time.Duration
}

func (p Probe) String() string {
	if p.Implicit {
		return "tls://" + p.Addr
	}
	return "smtp+starttls://" + p.Addr
}

// Fetch runs the probe.
func (p Probe) Fetch(ctx context.Context) ([]*x509.Certificate, error) {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	// Authentication is DANE's job, not this probe's: take whatever chain is presented.
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: strings.TrimSuffix(p.ServerName, "."), MinVersion: tls.VersionTLS12}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %v", p, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if p.Implicit {
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("probe %s: TLS handshake: %v", p, err)
		}
		return tc.ConnectionState().PeerCertificates, nil
	}
	c, err := smtp.NewClient(conn, cfg.ServerName)
	if err != nil {
		return nil, fmt.Errorf("probe %s: SMTP greeting: %v", p, err)
	}
	defer c.Close()
	if err := c.Hello("danezone-probe.invalid"); err != nil {
		return nil, fmt.Errorf("probe %s: EHLO: %v", p, err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return nil, fmt.Errorf("probe %s: the server does not offer STARTTLS", p)
	}
	if err := c.StartTLS(cfg); err != nil {
		return nil, fmt.Errorf("probe %s: STARTTLS: %v", p, err)
	}
	st, _ := c.TLSConnectionState()
	c.Quit()
	if len(st.PeerCertificates) == 0 {
		return nil, fmt.Errorf("probe %s: no certificate presented", p)
	}
	return st.PeerCertificates, nil
}

// StagedKeys reads the SPKIs (DER) of the keys staged for the next certificate: a file, or
// every file of a directory, each holding PEM public keys, private keys, certificates or
// certificate requests.
func StagedKeys(path string) ([][]byte, error) {
	files, err := StagedFiles(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		spkis, err := parseKeys(f, data)
		if err != nil {
			return nil, err
		}
		out = append(out, spkis...)
	}
	return out, nil
}

// StagedFiles returns the files of a staged-key path: the file itself, or the files of the
// directory (not hidden ones: editors' and tools' temporary files), sorted.
func StagedFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	return files, nil
}

func parseKeys(name string, data []byte) ([][]byte, error) {
	var out [][]byte
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var pub any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			var k crypto.Signer
			if k, err = privateKey(b); err == nil {
				pub = k.Public()
			}
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				out = append(out, c.RawSubjectPublicKeyInfo)
				continue
			}
		case "CERTIFICATE REQUEST":
			var c *x509.CertificateRequest
			if c, err = x509.ParseCertificateRequest(b.Bytes); err == nil {
				out = append(out, c.RawSubjectPublicKeyInfo)
				continue
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d (%s): %v", name, i, b.Type, err)
		}
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %v", name, i, err)
		}
		out = append(out, spki)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no key, certificate or request in PEM", name)
	}
	return out, nil
}

// privateKey parses a PEM block of a private key: PKCS #8, SEC 1 (EC) or PKCS #1 (RSA).
func privateKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("%s is not a private key", b.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// ParsePrivateKey returns the first private key of a PEM file (a certificate's key, as ACME
// clients write it). Errors name the file and block; a truncated block is one.
func ParsePrivateKey(name string, data []byte) (crypto.Signer, error) {
	for i := 1; ; i++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			if bytes.Contains(data, []byte("-----BEGIN")) {
				return nil, fmt.Errorf("%s: PEM block %d is truncated or malformed (a file still being written?)", name, i)
			}
			return nil, fmt.Errorf("%s: no private key in PEM", name)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		k, err := privateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d (%s): %v", name, i, b.Type, err)
		}
		return k, nil
	}
}

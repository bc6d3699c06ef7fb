// Package tlsa owns TLSA records made from the certificates a mail server really serves: the
// one place where TLSA data is computed (the harness imports it), the certificate sources
// (PEM files, a live probe of the server), staged next keys, and the rollover state that keeps
// every key a sender may have cached published (RFC 7671 §8, "current + next").
package tlsa

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Param is a TLSA usage, selector and matching type.
type Param struct{ Usage, Selector, Matching uint8 }

func (p Param) String() string { return fmt.Sprintf("%d %d %d", p.Usage, p.Selector, p.Matching) }

// DefaultParams is DANE-EE, SPKI, SHA-256: the record RFC 7671 and Exchange Online recommend.
var DefaultParams = []Param{{3, 1, 1}}

// ParseParam reads "311" or "3 1 1" or "3-1-1". Usages 2 (DANE-TA) and 3 (DANE-EE) only: the
// PKIX usages are unusable for SMTP (RFC 7672 §3.1.3).
func ParseParam(s string) (Param, error) {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' || r == ',' })
	if len(f) == 1 && len(f[0]) == 3 {
		f = []string{f[0][:1], f[0][1:2], f[0][2:]}
	}
	if len(f) != 3 {
		return Param{}, fmt.Errorf("TLSA parameters %q: want usage, selector and matching type like 311 or \"3 1 1\"", s)
	}
	var v [3]uint8
	for i, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 || n > 255 {
			return Param{}, fmt.Errorf("TLSA parameters %q: %q is not a number", s, x)
		}
		v[i] = uint8(n)
	}
	p := Param{v[0], v[1], v[2]}
	switch {
	case p.Usage != 2 && p.Usage != 3:
		return p, fmt.Errorf("TLSA usage %d: only 2 (DANE-TA) and 3 (DANE-EE) are usable for SMTP", p.Usage)
	case p.Selector > 1:
		return p, fmt.Errorf("TLSA selector %d: 0 (certificate) or 1 (SPKI)", p.Selector)
	case p.Matching > 2:
		return p, fmt.Errorf("TLSA matching type %d: 0 (full), 1 (SHA-256) or 2 (SHA-512)", p.Matching)
	}
	return p, nil
}

// Digest returns the association data for raw (a certificate or an SPKI, DER) by matching type.
func Digest(raw []byte, matching uint8) (string, error) {
	switch matching {
	case 0:
		return hex.EncodeToString(raw), nil
	case 1:
		s := sha256.Sum256(raw)
		return hex.EncodeToString(s[:]), nil
	case 2:
		s := sha512.Sum512(raw)
		return hex.EncodeToString(s[:]), nil
	}
	return "", fmt.Errorf("unknown matching type %d", matching)
}

// Data returns the association data of cert for selector and matching type.
func Data(cert *x509.Certificate, selector, matching uint8) (string, error) {
	switch selector {
	case 0:
		return Digest(cert.Raw, matching)
	case 1:
		return Digest(cert.RawSubjectPublicKeyInfo, matching)
	}
	return "", fmt.Errorf("unknown selector %d", selector)
}

// Subject returns the certificate a record of usage u describes in chain (leaf first): the
// leaf for DANE-EE, the certificate that issued the leaf for DANE-TA.
func Subject(chain []*x509.Certificate, usage uint8) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("no certificate")
	}
	if usage == 3 {
		return chain[0], nil
	}
	for _, c := range chain[1:] {
		if chain[0].CheckSignatureFrom(c) == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("usage 2 (DANE-TA) needs the certificate that issued the leaf in the chain; the chain has %d certificate(s) and none issued %q", len(chain), chain[0].Subject)
}

// Records returns the TLSA records for chain at owner.
func Records(owner string, ttl uint32, chain []*x509.Certificate, params []Param) ([]dns.RR, error) {
	var out []dns.RR
	for _, p := range params {
		c, err := Subject(chain, p.Usage)
		if err != nil {
			return nil, err
		}
		data, err := Data(c, p.Selector, p.Matching)
		if err != nil {
			return nil, err
		}
		out = append(out, New(owner, ttl, p, data))
	}
	return out, nil
}

// New makes one TLSA record.
func New(owner string, ttl uint32, p Param, data string) *dns.TLSA {
	return &dns.TLSA{Hdr: dns.RR_Header{Name: dns.Fqdn(owner), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: ttl},
		Usage: p.Usage, Selector: p.Selector, MatchingType: p.Matching, Certificate: data}
}

// Owner returns the TLSA owner name of host and port: _PORT._tcp.HOST (RFC 6698 §3).
func Owner(host string, port int) string {
	return fmt.Sprintf("_%d._tcp.%s", port, dns.Fqdn(strings.ToLower(host)))
}

// Package dane owns TLSA usability and certificate matching for SMTP per RFC 7672, RFC 7671 and
// RFC 6698: which TLSA records a sender may use, whether the chain a server presents matches one
// of them (DANE-EE: the leaf or its key, names and dates ignored; DANE-TA: a trust anchor in the
// chain, the chain validated with dates, the leaf carrying a reference identifier), and the
// crypto/tls client configuration that enforces it on a STARTTLS connection.
//
// The functions are pure: no DNS, no sockets. TLSA association data is computed by
// plugin/danezone/tlsa, the one place that does it.
package dane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// Usages (RFC 7218 acronyms). PKIX-TA (0) and PKIX-EE (1) are unusable for SMTP (RFC 7672 §3.1.3).
const (
	UsageDANETA = 2
	UsageDANEEE = 3
)

// Sentinel errors of Verify; test them with errors.Is. The RFC 8460 result type each one maps to
// is named in its comment (the sender's classifier decides the final vocabulary).
var (
	// ErrNoUsable: no TLSA record is usable; DANE authentication is impossible (RFC 7672 §2.2:
	// TLS is still mandatory, without authentication).
	ErrNoUsable = errors.New("dane: no usable TLSA record")
	// ErrNoMatch: the presented certificates match no usable TLSA record
	// ("validation-failure" / Exchange "tlsa-invalid").
	ErrNoMatch = errors.New("dane: certificate matches no TLSA record")
	// ErrTANotSent: DANE-TA records only, none matched, and the server sent the leaf without
	// its issuer ("validation-failure" / "tlsa-invalid").
	ErrTANotSent = errors.New("dane: DANE-TA trust anchor not sent by the server")
	// ErrExpired: a certificate of a DANE-TA chain (normally the leaf) has expired
	// ("certificate-expired").
	ErrExpired = errors.New("dane: certificate expired")
	// ErrNotYetValid: a certificate of a DANE-TA chain is not yet valid
	// ("validation-failure" / Exchange "tlsa-invalid").
	ErrNotYetValid = errors.New("dane: certificate not yet valid")
	// ErrChainInvalid: a trust anchor matched but the chain from the leaf to it does not validate
	// (signature, CA constraints) ("validation-failure" / "certificate-not-trusted").
	ErrChainInvalid = errors.New("dane: certificate chain to the DANE-TA trust anchor does not validate")
	// ErrHostMismatch: DANE-TA chain valid, but the leaf carries none of the reference
	// identifiers ("certificate-host-mismatch").
	ErrHostMismatch = errors.New("dane: certificate does not name a reference identifier")
)

// Error is the error Verify returns: Kind is one of the sentinels above, Record and Depth the
// TLSA record and chain position that got furthest (nil / -1 when none matched).
type Error struct {
	Kind   error
	Record *dns.TLSA
	Depth  int
	Detail string
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Record != nil {
		s += fmt.Sprintf(" (TLSA %d %d %d", e.Record.Usage, e.Record.Selector, e.Record.MatchingType)
		if e.Depth >= 0 {
			s += fmt.Sprintf(" at depth %d", e.Depth)
		}
		s += ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap makes errors.Is(err, ErrExpired) and friends work.
func (e *Error) Unwrap() error { return e.Kind }

// Match says which TLSA record authenticated the server and how.
type Match struct {
	Record *dns.TLSA
	Usage  uint8 // 2 DANE-TA or 3 DANE-EE
	// Depth of the matching certificate in the presented chain: 0 the leaf (DANE-EE), ≥1 a
	// certificate the server sent (DANE-TA); len(chain) for a `2 0 0` trust anchor the server
	// did not send.
	Depth int
	// Name is the reference identifier the leaf carries (DANE-TA only).
	Name string
}

// String is a short description for logs.
func (m Match) String() string {
	if m.Record == nil {
		return "no match"
	}
	s := fmt.Sprintf("TLSA %d %d %d matched at depth %d", m.Record.Usage, m.Record.Selector, m.Record.MatchingType, m.Depth)
	if m.Name != "" {
		s += " for " + m.Name
	}
	return s
}

// Usable reports whether a sender may use t for SMTP (RFC 7672 §3.1): usage 2 or 3, selector 0
// or 1, matching type 0 (non-empty data), 1 (32 bytes) or 2 (64 bytes), data valid hex.
func Usable(t *dns.TLSA) bool {
	if t == nil || (t.Usage != UsageDANETA && t.Usage != UsageDANEEE) || t.Selector > 1 {
		return false
	}
	data, err := hex.DecodeString(t.Certificate)
	if err != nil {
		return false
	}
	switch t.MatchingType {
	case 0:
		return len(data) > 0
	case 1:
		return len(data) == 32
	case 2:
		return len(data) == 64
	}
	return false
}

// UsableSet returns the usable records of rrs, in order.
func UsableSet(rrs []*dns.TLSA) (usable []*dns.TLSA) {
	for _, t := range rrs {
		if Usable(t) {
			usable = append(usable, t)
		}
	}
	return usable
}

// matches reports whether cert matches t's selector, matching type and data.
func matches(t *dns.TLSA, cert *x509.Certificate) bool {
	got, err := tlsa.Data(cert, t.Selector, t.MatchingType)
	if err != nil {
		return false
	}
	a, err1 := hex.DecodeString(got)
	b, err2 := hex.DecodeString(t.Certificate)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// VerifyState is Verify on the certificates of a TLS connection.
func VerifyState(cs tls.ConnectionState, tlsas []*dns.TLSA, refNames []string, now time.Time) (Match, error) {
	return Verify(cs.PeerCertificates, tlsas, refNames, now)
}

// rank orders failures by how far verification got: the most advanced one is reported.
func rank(kind error) int {
	switch kind {
	case ErrHostMismatch:
		return 5
	case ErrExpired, ErrNotYetValid:
		return 4
	case ErrChainInvalid:
		return 3
	case ErrTANotSent:
		return 2
	}
	return 1
}

// Verify authenticates chain (leaf first, as the server sent it) against the usable records of
// tlsas. One match is enough; unusable records are ignored. DANE-EE records match the leaf and
// check nothing else. DANE-TA records match a certificate at depth ≥ 1 (or, for `2 0 0`, the
// leaf's issuer given in full); the chain from the leaf to it must validate at now (signatures,
// dates, CA constraints, any extended key usage) and the leaf must name one of refNames (SAN DNS
// names with RFC 6125 one-label wildcards; the CN only when there is no SAN DNS name). On
// failure the *Error of the record that got furthest is returned.
func Verify(chain []*x509.Certificate, tlsas []*dns.TLSA, refNames []string, now time.Time) (Match, error) {
	usable := UsableSet(tlsas)
	if len(usable) == 0 {
		return Match{}, &Error{Kind: ErrNoUsable, Depth: -1, Detail: fmt.Sprintf("%d record(s), none usable", len(tlsas))}
	}
	if len(chain) == 0 {
		return Match{}, &Error{Kind: ErrNoMatch, Depth: -1, Detail: "no certificate presented"}
	}
	leaf := chain[0]
	// DANE-EE first: cheapest and most common.
	for _, t := range usable {
		if t.Usage == UsageDANEEE && matches(t, leaf) {
			return Match{Record: t, Usage: UsageDANEEE, Depth: 0}, nil
		}
	}
	var best *Error
	keep := func(e *Error) {
		if best == nil || rank(e.Kind) > rank(best.Kind) {
			best = e
		}
	}
	haveTA := false
	for _, t := range usable {
		if t.Usage != UsageDANETA {
			continue
		}
		haveTA = true
		for depth := 1; depth < len(chain); depth++ {
			if !matches(t, chain[depth]) {
				continue
			}
			m, err := verifyTA(chain, chain[depth], t, depth, refNames, now)
			if err == nil {
				return m, nil
			}
			keep(err)
		}
		// 2 0 0: the record holds the whole trust anchor; the server need not send it.
		if t.Selector == 0 && t.MatchingType == 0 {
			der, _ := hex.DecodeString(t.Certificate)
			ta, err := x509.ParseCertificate(der)
			if err != nil {
				keep(&Error{Kind: ErrNoMatch, Record: t, Depth: -1, Detail: "TLSA 2 0 0 data is not a certificate: " + err.Error()})
				continue
			}
			if sentIn(chain, ta) || !signedSomething(chain, ta) {
				continue // tried above, or not the anchor of this chain
			}
			m, verr := verifyTA(chain, ta, t, len(chain), refNames, now)
			if verr == nil {
				return m, nil
			}
			keep(verr)
		}
	}
	if best != nil {
		return Match{}, best
	}
	if haveTA && !issuerSent(chain) {
		return Match{}, &Error{Kind: ErrTANotSent, Depth: -1,
			Detail: fmt.Sprintf("server sent %d certificate(s) and not the issuer of %q", len(chain), leaf.Subject)}
	}
	return Match{}, &Error{Kind: ErrNoMatch, Depth: -1,
		Detail: fmt.Sprintf("%d usable record(s), %d certificate(s) presented, leaf %q", len(usable), len(chain), leaf.Subject)}
}

func sentIn(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range chain[1:] {
		if bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// signedSomething reports whether ta issued a certificate of chain.
func signedSomething(chain []*x509.Certificate, ta *x509.Certificate) bool {
	for _, c := range chain {
		if bytes.Equal(c.RawIssuer, ta.RawSubject) && c.CheckSignatureFrom(ta) == nil {
			return true
		}
	}
	return false
}

// issuerSent reports whether the chain holds a certificate above the leaf that issued it, or the
// leaf is self-issued (then there is nothing more to send).
func issuerSent(chain []*x509.Certificate) bool {
	leaf := chain[0]
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return true
	}
	for _, c := range chain[1:] {
		if leaf.CheckSignatureFrom(c) == nil {
			return true
		}
	}
	return false
}

// verifyTA validates the chain from the leaf to ta and the leaf's names.
func verifyTA(chain []*x509.Certificate, ta *x509.Certificate, t *dns.TLSA, depth int, refNames []string, now time.Time) (Match, *Error) {
	leaf := chain[0]
	fail := func(kind error, format string, a ...any) (Match, *Error) {
		return Match{}, &Error{Kind: kind, Record: t, Depth: depth, Detail: fmt.Sprintf(format, a...)}
	}
	if now.After(leaf.NotAfter) {
		return fail(ErrExpired, "leaf %q expired at %s (now %s)", leaf.Subject, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fail(ErrNotYetValid, "leaf %q valid from %s (now %s)", leaf.Subject, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var ci x509.CertificateInvalidError
		if errors.As(err, &ci) && ci.Reason == x509.Expired {
			// Which certificate, and which side of its validity period?
			for _, c := range append(chain[1:len(chain):len(chain)], ta) {
				if now.After(c.NotAfter) {
					return fail(ErrExpired, "%q expired at %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
				}
				if now.Before(c.NotBefore) {
					return fail(ErrNotYetValid, "%q valid from %s", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
				}
			}
			return fail(ErrExpired, "%v", err)
		}
		return fail(ErrChainInvalid, "%v", err)
	}
	name, ok := NameMatch(leaf, refNames)
	if !ok {
		return fail(ErrHostMismatch, "leaf names %s, reference identifiers %s", certNames(leaf), strings.Join(refNames, ", "))
	}
	return Match{Record: t, Usage: UsageDANETA, Depth: depth, Name: name}, nil
}

func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return strings.Join(c.DNSNames, ", ")
	}
	return "CN=" + c.Subject.CommonName
}

func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// NameMatch returns the first reference identifier the certificate carries: SAN DNS names (a
// "*." wildcard matches exactly one leftmost label, RFC 6125 §6.4.3), the subject CN only when
// the certificate has no SAN DNS name (RFC 7672 §3.2.3 permits it).
func NameMatch(c *x509.Certificate, refNames []string) (string, bool) {
	names := c.DNSNames
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	for _, ref := range refNames {
		r := normName(ref)
		if r == "" {
			continue
		}
		for _, n := range names {
			if hostMatches(normName(n), r) {
				return ref, true
			}
		}
	}
	return "", false
}

func hostMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok && rest != "" {
		label, parent, ok := strings.Cut(host, ".")
		return ok && label != "" && parent == rest
	}
	return false
}

// TLSConfig returns a client configuration for STARTTLS to a DANE host: SNI serverName (the TLSA
// base domain, RFC 7672 §8.1), TLS 1.2 or later, and no PKIX verification — VerifyConnection
// runs Verify with tlsas, refNames (serverName is always added) and now() (time.Now when nil).
// onVerify, when set, receives every verdict. With no usable record the connection is
// encrypted but unauthenticated (RFC 7672 §2.2): any certificate is accepted and onVerify gets
// ErrNoUsable.
func TLSConfig(serverName string, tlsas []*dns.TLSA, refNames []string, now func() time.Time, onVerify func(Match, error)) *tls.Config {
	if now == nil {
		now = time.Now
	}
	refs := append([]string{serverName}, refNames...)
	usable := UsableSet(tlsas)
	return &tls.Config{
		ServerName:         normName(serverName),
		InsecureSkipVerify: true, // verified by VerifyConnection below
		MinVersion:         tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error {
			m, err := VerifyState(cs, tlsas, refs, now())
			if onVerify != nil {
				onVerify(m, err)
			}
			if len(usable) == 0 {
				return nil
			}
			return err
		},
	}
}

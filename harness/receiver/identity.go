package receiver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// Identity is what a receiver presents in the TLS handshake.
type Identity struct {
	Certificate tls.Certificate     // chain as sent (leaf first) with the private key
	Leaf        *x509.Certificate   // the leaf
	Chain       []*x509.Certificate // the certificates sent, leaf first
	Key         crypto.Signer       // the leaf's private key
	CA          *CA                 // the issuer; nil for a self-signed leaf
}

// LeafOnly returns a copy of id that sends the leaf without the rest of the chain.
func (id *Identity) LeafOnly() *Identity {
	c := *id
	c.Chain = id.Chain[:1]
	c.Certificate.Certificate = id.Certificate.Certificate[:1]
	return &c
}

// CA is a lab certificate authority (a self-signed root) that issues server certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// NewCA makes a root CA named name, valid from an hour ago for ten years.
func NewCA(name string) (*CA, error) {
	return NewCAValid(name, time.Now().Add(-time.Hour), time.Now().Add(10*365*24*time.Hour))
}

// NewCAValid makes a root CA with the given validity period.
func NewCAValid(name string, notBefore, notAfter time.Time) (*CA, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	sn, err := serialNumber()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"danelab"}},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("CA %q: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issue makes a server certificate for names (SAN DNS names, the first also the CN) with a
// fresh key; the identity sends the leaf and the CA.
func (ca *CA) Issue(names []string, notBefore, notAfter time.Time) (*Identity, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	return ca.IssueKey(key, names, notBefore, notAfter)
}

// IssueKey is Issue with a given key (a re-issued certificate keeps its key).
func (ca *CA) IssueKey(key crypto.Signer, names []string, notBefore, notAfter time.Time) (*Identity, error) {
	return makeIdentity(key, names, notBefore, notAfter, ca)
}

// NewSelfSigned makes a self-signed server certificate for names with a fresh key.
func NewSelfSigned(names []string, notBefore, notAfter time.Time) (*Identity, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	return NewSelfSignedKey(key, names, notBefore, notAfter)
}

// NewSelfSignedKey is NewSelfSigned with a given key.
func NewSelfSignedKey(key crypto.Signer, names []string, notBefore, notAfter time.Time) (*Identity, error) {
	return makeIdentity(key, names, notBefore, notAfter, nil)
}

func makeIdentity(key crypto.Signer, names []string, notBefore, notAfter time.Time, ca *CA) (*Identity, error) {
	sn, err := serialNumber()
	if err != nil {
		return nil, err
	}
	cn := "danelab receiver"
	if len(names) > 0 {
		cn = names[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              names,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("certificate for %v: %v", names, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	id := &Identity{Leaf: leaf, Chain: []*x509.Certificate{leaf}, Key: key, CA: ca}
	id.Certificate = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	if ca != nil {
		id.Chain = append(id.Chain, ca.Cert)
		id.Certificate.Certificate = append(id.Certificate.Certificate, ca.Cert.Raw)
	}
	return id, nil
}

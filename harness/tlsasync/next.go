package tlsasync

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

// KeyTypes are the key types Stage makes, named as lego's --key-type names them.
var KeyTypes = []string{"ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"}

// Staged is a key made for the next certificate.
type Staged struct {
	Key, CSR string // files written
	Record   string // its DANE-EE SPKI SHA-256 record, "3 1 1 HEX"
	Replaced bool   // an earlier staged key, now in use, was replaced
}

// Stage makes the key of the next certificate (RFC 7671 §8.1: publish its TLSA before using
// it) and a certificate request for domains that an ACME client can be given (lego --csr,
// certbot --csr). An existing key file is replaced only when it is the key of the installed
// certificate (it has been used: time for the next); otherwise it is still waiting for its
// certificate, and replacing it would throw away a key whose TLSA is already published.
func Stage(keyFile, csrFile, keyType string, domains []string, installed []*x509.Certificate) (Staged, error) {
	st := Staged{Key: keyFile, CSR: csrFile}
	if len(domains) == 0 {
		return st, errors.New("no domain for the certificate request")
	}
	if data, err := os.ReadFile(keyFile); err == nil {
		k, err := tlsa.ParsePrivateKey(keyFile, data)
		if err != nil {
			return st, fmt.Errorf("%v: not replacing it", err)
		}
		if len(installed) == 0 || !samePublic(k.Public(), installed[0].PublicKey) {
			return st, fmt.Errorf("%s is a staged key not yet in use (its certificate has not been installed): not replacing it; remove it to start again", keyFile)
		}
		st.Replaced = true
	} else if !os.IsNotExist(err) {
		return st, err
	}
	key, err := generate(keyType)
	if err != nil {
		return st, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return st, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: domains[0]}, DNSNames: domains}, key)
	if err != nil {
		return st, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return st, err
	}
	d, _ := tlsa.Digest(spki, 1)
	st.Record = "3 1 1 " + d
	// The key first: if the request cannot be written, the old request names the old key,
	// which is still installed; the other way round it would name a key that is lost.
	if err := install(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return st, err
	}
	if err := install(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), 0o644); err != nil {
		return st, err
	}
	return st, nil
}

// KeyType names the type of a certificate's key as Stage does ("" if none fits).
func KeyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ec256"
		case elliptic.P384():
			return "ec384"
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048, 3072, 4096:
			return fmt.Sprintf("rsa%d", k.N.BitLen())
		}
	}
	return ""
}

func generate(kind string) (crypto.Signer, error) {
	switch kind {
	case "ec256", "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("key type %q: want one of %v", kind, KeyTypes)
}

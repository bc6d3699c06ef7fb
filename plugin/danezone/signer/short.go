package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RSASHA1 zones exist; the algorithm is the key's, not ours
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"

	"github.com/miekg/dns"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Denial made per answer (minimal, narrow, compact) signs one fresh NSEC or NSEC3 record per
// negative answer, so the cost of a signature outside the key operation matters there. The
// short path below builds the signed data (RFC 4034 §3.1.8.1) in a pooled buffer and skips
// the general canonicalisation, which a single NSEC or NSEC3 record does not need: its
// canonical form (RFC 4034 §6.2, RFC 6840 §5.1) is its owner in lower case and its RDATA as
// it is. Everything else goes through miekg/dns's RRSIG.Sign.

// shortPath reports whether rrs can be signed by the short path.
func shortPath(rrs []dns.RR) bool {
	if len(rrs) != 1 {
		return false
	}
	switch rrs[0].(type) {
	case *dns.NSEC, *dns.NSEC3:
		return true
	}
	return false
}

var signData = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// signShort fills in sig's Labels, TypeCovered and Signature over the single record rr.
func signShort(sig *dns.RRSIG, k crypto.Signer, rr dns.RR) error {
	h := rr.Header()
	sig.TypeCovered = h.Rrtype
	sig.Labels = uint8(dns.CountLabel(h.Name))
	if strings.HasPrefix(h.Name, "*.") { // RFC 4034 §3.1.3: the "*" label is not counted
		sig.Labels--
	}
	bp := signData.Get().(*[]byte)
	defer signData.Put(bp)
	b, err := appendSignedData((*bp)[:0], sig, rr)
	if err != nil {
		return err
	}
	*bp = b
	raw, err := signRaw(k, sig.Algorithm, b)
	if err != nil {
		return err
	}
	sig.Signature = base64.StdEncoding.EncodeToString(raw)
	return nil
}

// appendSignedData appends the RRSIG RDATA without its signature, then rr in canonical form
// (RFC 4034 §3.1.8.1).
func appendSignedData(b []byte, sig *dns.RRSIG, rr dns.RR) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, sig.TypeCovered)
	b = append(b, sig.Algorithm, sig.Labels)
	b = binary.BigEndian.AppendUint32(b, sig.OrigTtl)
	b = binary.BigEndian.AppendUint32(b, sig.Expiration)
	b = binary.BigEndian.AppendUint32(b, sig.Inception)
	b = binary.BigEndian.AppendUint16(b, sig.KeyTag)
	var err error
	if b, err = appendPacked(b, func(buf []byte, off int) (int, error) {
		return dns.PackDomainName(dns.CanonicalName(sig.SignerName), buf, off, nil, false)
	}); err != nil {
		return nil, err
	}
	// dns.PackRR writes the record's Rdlength: pack a shallow copy, since rr may be the
	// zone's, read by responses being packed at the same time.
	switch r := rr.(type) {
	case *dns.NSEC:
		c := *r
		rr = &c
	case *dns.NSEC3:
		c := *r
		rr = &c
	default:
		return nil, fmt.Errorf("short signing path: %T", rr)
	}
	start := len(b)
	if b, err = appendPacked(b, func(buf []byte, off int) (int, error) {
		return dns.PackRR(rr, buf, off, nil, false)
	}); err != nil {
		return nil, err
	}
	// The owner in lower case: ASCII letters only (RFC 4034 §6.2); a length octet (at most
	// 63) is never one.
	i := start
	for ; b[i] != 0; i += int(b[i]) + 1 {
		for j := i + 1; j <= i+int(b[i]); j++ {
			if 'A' <= b[j] && b[j] <= 'Z' {
				b[j] += 'a' - 'A'
			}
		}
	}
	// The TTL is the RRSIG's original TTL (RFC 4034 §6.2 item 5): after the name's root octet,
	// the type and the class.
	binary.BigEndian.PutUint32(b[i+5:], sig.OrigTtl)
	return b, nil
}

// appendPacked appends what pack writes, growing b until it fits.
func appendPacked(b []byte, pack func(buf []byte, off int) (int, error)) ([]byte, error) {
	for {
		end, err := pack(b[:cap(b)], len(b))
		if err == nil {
			return b[:end], nil
		}
		if !errors.Is(err, dns.ErrBuf) || cap(b) > dns.MaxMsgSize {
			return nil, err
		}
		b = append(b[:cap(b)], make([]byte, cap(b)+256)...)[:len(b)]
	}
}

// signRaw signs data with k and returns the signature as an RRSIG carries it.
func signRaw(k crypto.Signer, alg uint8, data []byte) ([]byte, error) {
	var h hash.Hash
	var ch crypto.Hash
	size := 0
	switch alg {
	case dns.ED25519: // RFC 8080 §4: the data itself, no hash
		return k.Sign(nil, data, crypto.Hash(0))
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1:
		h, ch = sha1.New(), crypto.SHA1 //nolint:gosec
	case dns.RSASHA256:
		h, ch = sha256.New(), crypto.SHA256
	case dns.RSASHA512:
		h, ch = sha512.New(), crypto.SHA512
	case dns.ECDSAP256SHA256:
		h, ch, size = sha256.New(), crypto.SHA256, 32
	case dns.ECDSAP384SHA384:
		h, ch, size = sha512.New384(), crypto.SHA384, 48
	default:
		return nil, dns.ErrAlg
	}
	h.Write(data)
	var sum [sha512.Size]byte
	digest := h.Sum(sum[:0])
	if size == 0 { // RSA, RFC 3110 §3 / RFC 5702 §3: PKCS #1 v1.5, the bytes as they are
		return k.Sign(rand.Reader, digest, ch)
	}
	der, err := deterministic(k).Sign(nil, digest, ch)
	if err != nil {
		return nil, err
	}
	return rawECDSA(der, size)
}

// rawECDSA turns an ASN.1 ECDSA signature into r | s, each size octets (RFC 6605 §4).
func rawECDSA(der []byte, size int) ([]byte, error) {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1(&r, cbasn1.INTEGER) || !seq.ReadASN1(&s, cbasn1.INTEGER) {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	for i, v := range []cryptobyte.String{r, s} {
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > size {
			return nil, errors.New("malformed ECDSA signature")
		}
		copy(out[(i+1)*size-len(v):], v)
	}
	return out, nil
}

// deterministic returns k so that an ECDSA key signs by RFC 6979 (a nonce derived from the
// key and the digest) instead of hedged random nonces: as safe against a weak random source,
// and a fifth cheaper per signature, which is what a negative answer made per query costs.
// Ed25519 signatures are deterministic by design too (RFC 8032 §5.1.6).
func deterministic(k crypto.Signer) crypto.Signer {
	if e, ok := k.(*ecdsa.PrivateKey); ok {
		return rfc6979{e}
	}
	return k
}

type rfc6979 struct{ *ecdsa.PrivateKey }

// Sign ignores rand: crypto/ecdsa signs by RFC 6979 when it is nil.
func (k rfc6979) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.PrivateKey.Sign(nil, digest, opts)
}

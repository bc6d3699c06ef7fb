package world

import (
	"crypto/x509"
	"fmt"
	"time"

	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

// tlsaRecords are the TLSA records of host h at owner in zone file syntax: the computed
// entries from cur (for usage 3 also from next, when set: a staged renewal), the wrong ones
// from an unrelated certificate, the given ones as given.
func tlsaRecords(h scenario.Host, owner string, cur, next *receiver.Identity, ca *receiver.CA) ([]string, error) {
	var out []string
	add := func(p tlsa.Param, data string) {
		ttl := ""
		if h.TLSATTL > 0 {
			ttl = fmt.Sprint(h.TLSATTL, " ")
		}
		out = append(out, fmt.Sprintf("%s %sTLSA %d %d %d %s", owner, ttl, p.Usage, p.Selector, p.Matching, data))
	}
	for _, e := range h.TLSA {
		var data string
		var err error
		switch e.Kind {
		case scenario.Computed:
			if data, err = ownData(cur, ca, e.Param); err != nil {
				return nil, err
			}
			if next != nil && e.Usage == 3 {
				nd, err := ownData(next, ca, e.Param)
				if err != nil {
					return nil, err
				}
				add(e.Param, nd)
			}
		case scenario.Wrong:
			if data, err = otherData(e.Param); err != nil {
				return nil, err
			}
		case scenario.Given:
			data = e.Data
		}
		add(e.Param, data)
	}
	return out, nil
}

// ownData is the association data of a receiver's certificate: the leaf for usage 3, the
// issuing CA for usage 2.
func ownData(id *receiver.Identity, ca *receiver.CA, p tlsa.Param) (string, error) {
	var c *x509.Certificate
	switch {
	case id == nil:
		return "", fmt.Errorf("%d %d %d is computed from the receiver's certificate, but there is no receiver", p.Usage, p.Selector, p.Matching)
	case p.Usage == 2:
		if ca == nil {
			return "", fmt.Errorf("usage 2 needs a CA-issued personality (ca-chain, ...), not a self-signed certificate")
		}
		c = ca.Cert
	default:
		c = id.Leaf
	}
	return tlsa.Data(c, p.Selector, p.Matching)
}

// otherData is association data of a certificate unrelated to everything served.
func otherData(p tlsa.Param) (string, error) {
	var c *x509.Certificate
	if p.Usage == 2 {
		ca, err := receiver.NewCA("some other CA")
		if err != nil {
			return "", err
		}
		c = ca.Cert
	} else {
		id, err := receiver.NewSelfSigned([]string{"other.invalid"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			return "", err
		}
		c = id.Leaf
	}
	return tlsa.Data(c, p.Selector, p.Matching)
}

package resolver

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// Upstream trusts the AD bit of a validating recursive resolver, as real MTAs do.
type Upstream struct {
	addr    string
	timeout time.Duration
}

// NewUpstream returns an Upstream asking the resolver at addr ("ip:port"); timeout bounds
// each query (default 5s).
func NewUpstream(addr string, timeout time.Duration) *Upstream {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Upstream{addr: addr, timeout: timeout}
}

// dnssecEDE reports whether an extended error code says a validation failed.
func dnssecEDE(code uint16) bool {
	switch code {
	case dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm, dns.ExtendedErrorCodeUnsupportedDSDigestType,
		dns.ExtendedErrorCodeDNSBogus, dns.ExtendedErrorCodeSignatureExpired,
		dns.ExtendedErrorCodeSignatureNotYetValid, dns.ExtendedErrorCodeDNSKEYMissing,
		dns.ExtendedErrorCodeRRSIGsMissing, dns.ExtendedErrorCodeNoZoneKeyBitSet,
		dns.ExtendedErrorCodeNSECMissing, dns.ExtendedErrorCodeSignatureExpiredBeforeValid,
		dns.ExtendedErrorCodeUnsupportedNSEC3IterValue:
		return true
	}
	return false
}

// Resolve asks the upstream resolver with RD, DO and AD set and judges by its answer:
// NOERROR or NXDOMAIN with AD is Secure, without AD Insecure; SERVFAIL with an extended
// error about DNSSEC (RFC 8914 codes 1, 2, 6-12, 25, 27) is Bogus with that code; any other
// SERVFAIL, another rcode or no answer in time is Indeterminate. Each CNAME link gets the
// verdict of the whole answer: an upstream gives one AD bit.
func (u *Upstream) Resolve(ctx context.Context, name string, qtype uint16) (*Result, error) {
	if ctx == nil {
		return nil, fmt.Errorf("resolver: nil context")
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, fmt.Errorf("resolver: invalid name %q", name)
	}
	if qtype == 0 {
		return nil, fmt.Errorf("resolver: query type 0")
	}
	name = canonical(name)
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true // RFC 6840 §5.7: ask for the AD bit
	m.SetEdns0(1232, true)

	res := &Result{}
	ask := func(network string) (*dns.Msg, error) {
		res.Queries++
		cctx, cancel := context.WithTimeout(ctx, u.timeout)
		defer cancel()
		c := &dns.Client{Net: network, Timeout: u.timeout, UDPSize: 1232}
		r, _, err := c.ExchangeContext(cctx, m, u.addr)
		return r, err
	}
	resp, err := ask("udp")
	if err == nil && resp.Truncated {
		resp, err = ask("tcp")
	}
	if err == nil && (len(resp.Question) != 1 || !equalNames(resp.Question[0].Name, name) || resp.Question[0].Qtype != qtype) {
		err = fmt.Errorf("answer to another question")
	}
	if err != nil {
		fail := new(dns.Msg)
		fail.SetRcode(m, dns.RcodeServerFailure)
		res.Msg = fail
		res.Verdict = Indeterminate
		res.EDE = dns.ExtendedErrorCodeNoReachableAuthority
		res.Reason = fmt.Sprintf("upstream %s: %v", u.addr, err)
		return res, nil
	}
	res.Msg = resp
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		if resp.AuthenticatedData {
			res.Verdict, res.Reason = Secure, "upstream set AD"
		} else {
			res.Verdict, res.Reason = Insecure, "upstream did not set AD"
		}
	case dns.RcodeServerFailure:
		res.Verdict, res.Reason = Indeterminate, "upstream SERVFAIL without a DNSSEC extended error"
		if ede := firstEDE(resp); ede != nil {
			res.EDE = ede.InfoCode
			text := dns.ExtendedErrorCodeToString[ede.InfoCode]
			if ede.ExtraText != "" {
				text += ": " + ede.ExtraText
			}
			if dnssecEDE(ede.InfoCode) {
				res.Verdict, res.Reason = Bogus, "upstream SERVFAIL, EDE "+fmt.Sprint(ede.InfoCode)+" ("+text+")"
			} else {
				res.Reason = "upstream SERVFAIL, EDE " + fmt.Sprint(ede.InfoCode) + " (" + text + ")"
			}
		}
	default:
		res.Verdict, res.Reason = Indeterminate, "upstream answered "+dns.RcodeToString[resp.Rcode]
	}
	// The CNAME chain as the upstream gave it.
	sets := newSets(resp.Answer)
	current, seen := name, map[string]bool{name: true}
	for qtype != dns.TypeCNAME {
		cn := sets.get(current, dns.TypeCNAME)
		if len(cn) == 0 {
			break
		}
		target := canonical(cn[0].(*dns.CNAME).Target)
		res.Chain = append(res.Chain, Link{Owner: current, Target: target, Verdict: res.Verdict, Reason: res.Reason})
		if seen[target] {
			break
		}
		seen[target] = true
		current = target
	}
	return res, nil
}

func firstEDE(m *dns.Msg) *dns.EDNS0_EDE {
	opt := m.IsEdns0()
	if opt == nil {
		return nil
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e
		}
	}
	return nil
}

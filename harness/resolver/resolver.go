// Package resolver is a DNSSEC-validating iterative resolver in pure Go for the DANE test
// harness. It starts from configured root servers and trust anchors, follows referrals,
// builds the chain of trust (DS → DNSKEY → RRset) itself and judges every answer secure,
// insecure, bogus or indeterminate (RFC 4035 §4.3) with a reason aligned with the extended
// DNS error codes of RFC 8914. Time is injected: signatures are judged, and cached records
// expire, at the virtual time of Config.Now.
//
// A second mode, Upstream, trusts the AD bit of a validating resolver, as real MTAs do.
// Both satisfy Interface.
package resolver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Verdict is the security status of an answer (RFC 4035 §4.3). The zero value is
// Indeterminate, so that an unset verdict is never taken for Secure.
type Verdict int

// The verdicts.
const (
	// Indeterminate: no trust anchor covers the name, or the answer could not be obtained
	// (no reachable authority, timeouts, loops).
	Indeterminate Verdict = iota
	// Secure: an unbroken chain of signed DNSKEY and DS records from a trust anchor.
	Secure
	// Insecure: provably outside any chain of trust (an unsigned delegation, unsupported
	// algorithms, NSEC3 opt-out or too many NSEC3 iterations).
	Insecure
	// Bogus: a chain of trust should exist but the answer does not validate.
	Bogus
)

func (v Verdict) String() string {
	switch v {
	case Secure:
		return "secure"
	case Insecure:
		return "insecure"
	case Bogus:
		return "bogus"
	case Indeterminate:
		return "indeterminate"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// weakness orders verdicts: a combination takes the weakest (highest).
func (v Verdict) weakness() int {
	switch v {
	case Secure:
		return 0
	case Insecure:
		return 1
	case Indeterminate:
		return 2
	}
	return 3
}

// Link is one alias of a chain: Owner is a CNAME for Target, or Target is the substitution
// of Owner by a DNAME above it. RFC 7672 cares about the security of each link.
type Link struct {
	Owner   string
	Target  string
	Verdict Verdict
	Reason  string
}

// Result is a judged answer.
type Result struct {
	// Msg is the answer as the servers gave it: the question asked, the final rcode, the
	// answer section with the whole CNAME chain and RRSIGs, and the authority section of the
	// last response. AD is set iff Verdict is Secure. It is a SERVFAIL without records when
	// no server answered.
	Msg     *dns.Msg
	Verdict Verdict
	Reason  string // human-readable
	// EDE is the RFC 8914 extended error code matching the reason (dns.ExtendedErrorCode*):
	// 6 DNSSEC Bogus, 7 Signature Expired, 8 Signature Not Yet Valid, 9 DNSKEY Missing,
	// 10 RRSIGs Missing, 12 NSEC Missing, 22 No Reachable Authority, ...; for insecure
	// answers 1 (Unsupported DNSKEY Algorithm), 2 (Unsupported DS Digest Type) or
	// 27 (Unsupported NSEC3 Iterations Value) when that is why, else 0.
	EDE   uint16
	Chain []Link // the CNAME and DNAME links followed, in order
	// SigChecks is the number of signature verifications (RRSIG.Verify calls) the
	// resolution cost; Queries the number of queries sent to servers.
	SigChecks int
	Queries   int
}

// Config configures a Resolver. Zero values take the documented defaults.
type Config struct {
	// TrustAnchors are DS and/or DNSKEY records of the root or of any zone; names under no
	// anchor are Indeterminate.
	TrustAnchors []dns.RR
	// Roots are the "ip:port" addresses of the root servers.
	Roots []string
	// Port, if non-zero, is the port every NS address is contacted on (a lab serves all its
	// zones on one nonstandard port); else 53.
	Port int
	// Now is the clock signatures are judged by and cache entries expire by; default time.Now.
	Now func() time.Time
	// Timeout bounds each query; default 2s.
	Timeout time.Duration
	// Retries is the number of extra attempts per server address after a timeout (default 0).
	Retries int
	// MaxSigChecks caps the signature verifications of one Resolve (KeyTrap,
	// CVE-2023-50387); default 64. Exceeding it makes the answer Bogus.
	MaxSigChecks int
	// MaxKeyTagCollisions caps the DNSKEYs with one key tag tried for one RRSIG; default 4.
	MaxKeyTagCollisions int
	// MaxSigsPerRRset caps the RRSIGs tried for one RRset; default 8.
	MaxSigsPerRRset int
	// MaxNSEC3Iterations: NSEC3 records with more iterations make the answer Insecure
	// (RFC 9276 §3.2, CVE-2023-50868), as Unbound does; default 150.
	MaxNSEC3Iterations int
	// Cache keeps responses and delegations for their TTL, counted down by Now.
	Cache bool
	// SigSkewMin and SigSkewMax, if SigSkewMax > 0, forgive clock skew at the edges of a
	// signature's validity period as Unbound does (val-sig-skew-min/max): a tenth of the
	// period, clamped to [SigSkewMin, SigSkewMax]. Zero: judged strictly.
	SigSkewMin, SigSkewMax time.Duration
	// MaxQueries caps the queries of one Resolve; default 200.
	MaxQueries int
}

// Interface is what both the validating Resolver and the AD-trusting Upstream offer.
type Interface interface {
	Resolve(ctx context.Context, name string, qtype uint16) (*Result, error)
}

// Resolver is a validating iterative resolver. It is safe for concurrent use.
type Resolver struct {
	cfg     Config
	anchors map[string][]dns.RR // by canonical owner

	mu     sync.Mutex
	msgs   map[string]cachedMsg   // "qname|qtype" → response (Cache only)
	delegs map[string]*delegation // zone → servers (Cache only)
}

var (
	_ Interface = (*Resolver)(nil)
	_ Interface = (*Upstream)(nil)
)

// New returns a Resolver for cfg.
func New(cfg Config) *Resolver {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.MaxSigChecks <= 0 {
		cfg.MaxSigChecks = 64
	}
	if cfg.MaxKeyTagCollisions <= 0 {
		cfg.MaxKeyTagCollisions = 4
	}
	if cfg.MaxSigsPerRRset <= 0 {
		cfg.MaxSigsPerRRset = 8
	}
	if cfg.MaxNSEC3Iterations <= 0 {
		cfg.MaxNSEC3Iterations = 150
	}
	if cfg.MaxQueries <= 0 {
		cfg.MaxQueries = 200
	}
	r := &Resolver{
		cfg:     cfg,
		anchors: map[string][]dns.RR{},
		msgs:    map[string]cachedMsg{},
		delegs:  map[string]*delegation{},
	}
	for _, rr := range cfg.TrustAnchors {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
			owner := canonical(rr.Header().Name)
			r.anchors[owner] = append(r.anchors[owner], rr)
		}
	}
	return r
}

// Flush empties the cache.
func (r *Resolver) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = map[string]cachedMsg{}
	r.delegs = map[string]*delegation{}
}

// anchorFor returns the deepest trust anchor name at or above name, or "".
func (r *Resolver) anchorFor(name string) string {
	best := ""
	for a := range r.anchors {
		if isSubDomain(a, name) && (best == "" || dns.CountLabel(a) > dns.CountLabel(best)) {
			best = a
		}
	}
	return best
}

// status is a verdict with its reason.
type status struct {
	v      Verdict
	reason string
	ede    uint16
}

func secure() status { return status{v: Secure} }

func bogus(ede uint16, format string, args ...any) status {
	return status{v: Bogus, ede: ede, reason: fmt.Sprintf(format, args...)}
}

func insecure(ede uint16, format string, args ...any) status {
	return status{v: Insecure, ede: ede, reason: fmt.Sprintf(format, args...)}
}

func indeterminate(ede uint16, format string, args ...any) status {
	return status{v: Indeterminate, ede: ede, reason: fmt.Sprintf(format, args...)}
}

// weaker returns the weaker of a and b (a on a tie).
func weaker(a, b status) status {
	if b.v.weakness() > a.v.weakness() {
		return b
	}
	return a
}

// query is the state of one Resolve.
type query struct {
	r         *Resolver
	ctx       context.Context
	now       time.Time
	sigChecks int
	queries   int
	depth     int                    // nesting of NS address lookups
	busy      map[string]bool        // iterations under way, against loops
	msgs      map[string]cachedMsg   // responses of this Resolve
	delegs    map[string]*delegation // delegations learnt during this Resolve
	walk      map[string]*walkStep   // chain-of-trust steps, by name
	anchorKS  map[string]*zoneKeys   // validated keys of trust anchor zones
}

// Resolve looks name/qtype up and judges the answer. The error is only for misuse (an
// invalid name or type); failures to get an answer are Indeterminate results.
func (r *Resolver) Resolve(ctx context.Context, name string, qtype uint16) (*Result, error) {
	if ctx == nil {
		return nil, fmt.Errorf("resolver: nil context")
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, fmt.Errorf("resolver: invalid name %q", name)
	}
	switch qtype {
	case 0, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeRRSIG:
		return nil, fmt.Errorf("resolver: unsupported query type %s", dns.Type(qtype))
	}
	if len(r.cfg.Roots) == 0 {
		return nil, fmt.Errorf("resolver: no root servers configured")
	}
	q := &query{
		r:        r,
		ctx:      ctx,
		now:      r.cfg.Now(),
		busy:     map[string]bool{},
		msgs:     map[string]cachedMsg{},
		delegs:   map[string]*delegation{},
		walk:     map[string]*walkStep{},
		anchorKS: map[string]*zoneKeys{},
	}
	res := q.resolve(canonical(name), qtype)
	res.SigChecks = q.sigChecks
	res.Queries = q.queries
	return res, nil
}

const maxChain = 16 // CNAME links followed

func (q *query) resolve(name string, qtype uint16) *Result {
	out := new(dns.Msg)
	out.SetQuestion(name, qtype)
	out.Response = true
	out.RecursionDesired = true
	out.RecursionAvailable = true
	res := &Result{Msg: out}
	st := secure()
	finish := func(s status) *Result {
		st = weaker(st, s)
		res.Verdict, res.Reason, res.EDE = st.v, st.reason, st.ede
		if st.v == Secure {
			res.EDE = 0
		}
		out.AuthenticatedData = st.v == Secure
		return res
	}

	current := name
	seen := map[string]bool{name: true}
	for hop := 0; hop <= maxChain; hop++ {
		resp, _, err := q.iterate(current, qtype)
		if err != nil {
			out.Rcode = dns.RcodeServerFailure
			out.Ns = nil
			return finish(indeterminate(dns.ExtendedErrorCodeNoReachableAuthority, "%s %s: %v", current, dns.Type(qtype), err))
		}
		set := newSets(resp.Answer)
		followed := false
		for {
			if owner, dname := set.dname(current); qtype == dns.TypeCNAME && dname != nil {
				// The CNAME asked for is synthesised from a DNAME: the DNAME vouches for it.
				s := q.validatePositive(dname, set.sigs(owner, dns.TypeDNAME), resp)
				out.Answer = append(out.Answer, dname...)
				out.Answer = append(out.Answer, sigsAsRRs(set.sigs(owner, dns.TypeDNAME))...)
				out.Answer = append(out.Answer, set.get(current, dns.TypeCNAME)...)
				out.Rcode = resp.Rcode
				out.Ns = resp.Ns
				return finish(s)
			}
			if rrs := set.get(current, qtype); len(rrs) > 0 {
				s := q.validatePositive(rrs, set.sigs(current, qtype), resp)
				out.Answer = append(out.Answer, rrs...)
				out.Answer = append(out.Answer, sigsAsRRs(set.sigs(current, qtype))...)
				out.Rcode = dns.RcodeSuccess
				out.Ns = resp.Ns
				return finish(s)
			}
			var s status
			var target string
			if owner, dname := set.dname(current); dname != nil {
				// RFC 6672: the signed DNAME substitutes the suffix; the CNAME synthesised
				// from it is unsigned and not needed.
				s = q.validatePositive(dname, set.sigs(owner, dns.TypeDNAME), resp)
				prefix := current // owner "." keeps the whole name
				if owner != "." {
					prefix = current[:len(current)-len(owner)]
				}
				target = canonical(prefix + dns.Fqdn(dname[0].(*dns.DNAME).Target))
				out.Answer = append(out.Answer, dname...)
				out.Answer = append(out.Answer, sigsAsRRs(set.sigs(owner, dns.TypeDNAME))...)
				out.Answer = append(out.Answer, set.get(current, dns.TypeCNAME)...)
				if _, ok := dns.IsDomainName(target); !ok || len(target) > 254 {
					out.Rcode = resp.Rcode
					return finish(weaker(s, indeterminate(0, "DNAME %s: substitution of %s is too long", owner, current)))
				}
			} else {
				cn := set.get(current, dns.TypeCNAME)
				if qtype == dns.TypeCNAME || len(cn) == 0 {
					break
				}
				s = q.validatePositive(cn, set.sigs(current, dns.TypeCNAME), resp)
				target = canonical(cn[0].(*dns.CNAME).Target)
				out.Answer = append(out.Answer, cn...)
				out.Answer = append(out.Answer, sigsAsRRs(set.sigs(current, dns.TypeCNAME))...)
			}
			reason := s.reason
			if s.v == Secure {
				reason = "validated"
			}
			res.Chain = append(res.Chain, Link{Owner: current, Target: target, Verdict: s.v, Reason: reason})
			if s.v != Secure {
				s.reason = fmt.Sprintf("alias %s → %s: %s", current, target, s.reason)
			}
			if s.v == Bogus || s.v == Indeterminate {
				out.Rcode = resp.Rcode
				out.Ns = resp.Ns
				return finish(s)
			}
			st = weaker(st, s)
			if seen[target] {
				out.Rcode = resp.Rcode
				return finish(indeterminate(0, "CNAME loop at %s", target))
			}
			if len(seen) > maxChain {
				out.Rcode = resp.Rcode
				return finish(indeterminate(0, "CNAME chain longer than %d links", maxChain))
			}
			seen[target] = true
			current = target
			followed = true
		}
		if followed {
			continue // ask for the target itself: its own server, its own proofs
		}
		// No data for current: a negative answer, which must be proven.
		out.Rcode = resp.Rcode
		out.Ns = resp.Ns
		if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			return finish(indeterminate(dns.ExtendedErrorCodeNoReachableAuthority, "%s %s: rcode %s", current, dns.Type(qtype), dns.RcodeToString[resp.Rcode]))
		}
		_, s := q.denial(resp, current, qtype, nil)
		return finish(s)
	}
	return finish(indeterminate(0, "CNAME chain longer than %d links", maxChain))
}

// rrsets groups the records of a section by owner and type, with the RRSIGs by the type
// they cover.
type rrsets struct {
	rrs  map[string][]dns.RR
	sigm map[string][]*dns.RRSIG
}

func setKey(name string, t uint16) string { return canonical(name) + "|" + dns.Type(t).String() }

func newSets(section []dns.RR) *rrsets {
	s := &rrsets{rrs: map[string][]dns.RR{}, sigm: map[string][]*dns.RRSIG{}}
	for _, rr := range section {
		h := rr.Header()
		if h.Class != dns.ClassINET {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok {
			k := setKey(h.Name, sig.TypeCovered)
			s.sigm[k] = append(s.sigm[k], sig)
			continue
		}
		k := setKey(h.Name, h.Rrtype)
		s.rrs[k] = append(s.rrs[k], rr)
	}
	return s
}

func (s *rrsets) get(name string, t uint16) []dns.RR      { return s.rrs[setKey(name, t)] }
func (s *rrsets) sigs(name string, t uint16) []*dns.RRSIG { return s.sigm[setKey(name, t)] }

// dname returns the DNAME RRset whose owner is the closest strict ancestor of name, if any.
func (s *rrsets) dname(name string) (string, []dns.RR) {
	for n := parentName(name); ; n = parentName(n) {
		if rrs := s.get(n, dns.TypeDNAME); len(rrs) > 0 {
			return canonical(n), rrs
		}
		if n == "." {
			return "", nil
		}
	}
}

// owners returns the owners of the RRsets of type t.
func (s *rrsets) owners(t uint16) []string {
	var out []string
	suffix := "|" + dns.Type(t).String()
	for k := range s.rrs {
		if owner, ok := strings.CutSuffix(k, suffix); ok {
			out = append(out, owner)
		}
	}
	sort.Strings(out)
	return out
}

func sigsAsRRs(sigs []*dns.RRSIG) []dns.RR {
	out := make([]dns.RR, len(sigs))
	for i, s := range sigs {
		out[i] = s
	}
	return out
}

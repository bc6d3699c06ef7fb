package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/sender"
	"github.com/miekg/dns"
)

// ErrNotDomain is a domain argument that is not a domain name.
var ErrNotDomain = errors.New("not a domain name")

// Run checks domain. It returns an error only when domain is not a name; everything that goes
// wrong while checking (a resolver that does not answer, a host that hangs) is an item of the
// report, naming the step.
func Run(ctx context.Context, domain string, cfg Config) (*Report, error) {
	d := strings.ToLower(strings.TrimSpace(domain))
	if _, ok := dns.IsDomainName(d); !ok || d == "" || d == "." || net.ParseIP(strings.Trim(d, "[]")) != nil || strings.ContainsAny(d, " @/:") {
		return nil, fmt.Errorf("%q: %w", domain, ErrNotDomain)
	}
	d = dns.Fqdn(d)
	if cfg.Port == 0 {
		cfg.Port = 25
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dial == nil {
		dialer := &net.Dialer{Timeout: cfg.Timeout}
		cfg.Dial = dialer.DialContext
	}
	c := &run{cfg: cfg, domain: d, sender: sender.New(sender.Config{Resolver: cfg.Resolver, Port: cfg.Port, Timeout: cfg.Timeout, Now: cfg.Now, DryRun: true}), r: &Report{Domain: strings.TrimSuffix(d, "."), Started: cfg.Now(), Resolution: cfg.Resolution}}
	start := time.Now()
	if cfg.Iterative {
		c.chain(ctx)
	}
	mxRes, hosts, mxErr := c.mx(ctx)
	mxSecure := mxErr == nil && mxRes != nil && mxRes.Verdict == resolver.Secure
	if cfg.MXHost != "" {
		hosts, mxSecure = []string{dns.Fqdn(strings.ToLower(cfg.MXHost))}, false
	}
	c.hosts = len(hosts)
	// The MTA-STS policy first (its items after the hosts'): in enforce mode each host's
	// certificate is also judged as MTA-STS senders judge it.
	sts, items := fetchSTS(ctx, cfg, c.name())
	c.sts = sts
	for _, h := range hosts {
		c.host(ctx, h, mxSecure)
	}
	c.add(items...)
	if sts != nil {
		c.add(checkSTSMX(sts, hosts)...)
	}
	c.add(checkTLSRPT(ctx, cfg, c.name())...)
	c.add(checkExchange(cfg.ExpectMX, mxRes, mxErr, sts)...)
	c.predict(ctx)
	c.r.Took = time.Since(start)
	return c.r, nil
}

// run is one check in progress.
type run struct {
	cfg    Config
	domain string         // FQDN
	sender *sender.Sender // the harness's sender in a dry run: its rules decide
	hosts  int            // MX hosts checked
	sts    *STSPolicy     // the domain's MTA-STS policy, nil for none
	r      *Report
}

func (c *run) name() string { return strings.TrimSuffix(c.domain, ".") }

func (c *run) add(items ...Item) { c.r.Items = append(c.r.Items, items...) }

// resolve is one lookup with the per-step timeout; the error names the step.
func (c *run) resolve(ctx context.Context, name string, qtype uint16) (*resolver.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	res, err := c.cfg.Resolver.Resolve(ctx, name, qtype)
	if ctx.Err() != nil { // whatever the resolver made of it, the step ran out of time
		return nil, fmt.Errorf("%s %s: no answer within %v", strings.TrimSuffix(name, "."), dns.TypeToString[qtype], c.cfg.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", strings.TrimSuffix(name, "."), dns.TypeToString[qtype], err)
	}
	return res, nil
}

// records returns the records of type t in the answer.
func records[T dns.RR](res *resolver.Result) []T {
	var out []T
	if res == nil || res.Msg == nil {
		return nil
	}
	for _, rr := range res.Msg.Answer {
		if x, ok := rr.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// evidence is the records of an answer (with their signatures' dates), one per line.
func evidence(res *resolver.Result, types ...uint16) []string {
	var out []string
	if res == nil || res.Msg == nil {
		return nil
	}
	for _, rr := range res.Msg.Answer {
		t := rr.Header().Rrtype
		if sig, ok := rr.(*dns.RRSIG); ok {
			out = append(out, fmt.Sprintf("RRSIG %s by key %d, valid %s to %s", dns.TypeToString[sig.TypeCovered], sig.KeyTag,
				sigTime(sig.Inception).Format("2006-01-02 15:04"), sigTime(sig.Expiration).Format("2006-01-02 15:04 MST")))
			continue
		}
		for _, want := range types {
			if t == want {
				out = append(out, rr.String())
			}
		}
	}
	return out
}

func sigTime(v uint32) time.Time { return time.Unix(int64(v), 0).UTC() }

// daysLeft returns the smallest validity left on the answer's signatures.
func daysLeft(res *resolver.Result, now time.Time) (time.Duration, bool) {
	var least time.Duration
	found := false
	for _, sig := range records[*dns.RRSIG](res) {
		// RFC 4034 §3.1.5: serial arithmetic around now.
		left := time.Duration(int32(sig.Expiration-uint32(now.Unix()))) * time.Second
		if !found || left < least {
			least, found = left, true
		}
	}
	return least, found
}

// minSigDays is when signatures close to expiry are warned about.
const minSigDays = 3 * 24 * time.Hour

// verdictItem turns a lookup's security into an item: secure passes, the rest as given.
func verdictItem(group, name string, res *resolver.Result, err error, insecure Verdict, fixInsecure, fixBogus string, types ...uint16) Item {
	it := Item{Group: group, Name: name}
	switch {
	case err != nil:
		it.Verdict, it.Detail, it.Fix = Fail, err.Error(), "make the name servers answer, signed: a sender defers mail it cannot look up"
	case res.Verdict == resolver.Secure:
		it.Verdict, it.Detail = Pass, "secure (DNSSEC-validated)"
	case res.Verdict == resolver.Insecure:
		it.Verdict, it.Detail, it.Fix = insecure, "insecure: "+res.Reason, fixInsecure
	case res.Verdict == resolver.Indeterminate: // no usable answer: not a signature problem
		it.Verdict, it.Detail = Fail, res.Verdict.String()+": "+res.Reason
		it.Fix = "make the name servers (or the resolver) answer: a sender defers mail while a lookup gets no answer or SERVFAIL"
	default:
		it.Verdict, it.Detail, it.Fix = Fail, res.Verdict.String()+": "+res.Reason, fixBogus
	}
	it.Evidence = evidence(res, types...)
	return it
}

// expiring warns on a secure item whose signatures expire in less than minSigDays: the
// signatures that matter to a sender (MX, addresses, TLSA) as well as the zone keys'.
func (c *run) expiring(it *Item, res *resolver.Result) {
	if it.Verdict != Pass || res == nil {
		return
	}
	if left, ok := daysLeft(res, c.cfg.Now()); ok && left < minSigDays {
		it.Verdict = Warn
		it.Detail += "; signatures expire in " + days(left)
		it.Fix = "re-sign the zone now: when these signatures expire every sender defers mail (4.7.324 or 4.4.312)"
	}
}

// mx checks the MX RRset and returns it and the hosts to check, in preference order.
func (c *run) mx(ctx context.Context) (*resolver.Result, []string, error) {
	const g = "mx"
	res, err := c.resolve(ctx, c.domain, dns.TypeMX)
	it := verdictItem(g, "MX of "+c.name(), res, err, Warn,
		"sign the zone: with an insecure MX only hosts whose own records are signed get DANE, and Exchange Online's inbound DANE needs a signed MX",
		"fix the zone's signatures: senders defer all mail while the MX lookup fails validation (4.4.312)", dns.TypeMX)
	if err != nil || res.Verdict == resolver.Bogus || res.Verdict == resolver.Indeterminate {
		c.add(it)
		return res, nil, err
	}
	c.expiring(&it, res)
	if res.Msg.Rcode == dns.RcodeNameError {
		it.Verdict, it.Detail, it.Fix = Fail, c.name()+" does not exist (NXDOMAIN)", "create the domain's zone, or check the spelling"
		c.add(it)
		return res, nil, nil
	}
	mxs := records[*dns.MX](res)
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Preference < mxs[j].Preference })
	if len(mxs) == 1 && mxs[0].Mx == "." { // RFC 7505
		it.Verdict, it.Detail, it.Fix = Info, "null MX: the domain accepts no mail (RFC 7505)", ""
		c.add(it)
		return res, nil, nil
	}
	var hosts []string
	for _, mx := range mxs {
		hosts = append(hosts, strings.ToLower(dns.Fqdn(mx.Mx)))
	}
	if len(hosts) == 0 { // RFC 5321 §5.1: the domain itself
		it.Detail += "; no MX: senders use the domain's own address"
		if it.Verdict == Pass {
			it.Verdict, it.Fix = Warn, "publish an MX record: DANE senders then look TLSA up at the MX host"
		}
		hosts = []string{c.domain}
	}
	c.add(it)
	// An MX target must be a host name, not an alias (RFC 2181 §10.3).
	for _, h := range hosts {
		ar, err := c.resolve(ctx, h, dns.TypeA)
		if err == nil && len(ar.Chain) > 0 {
			c.add(Item{Group: g, Name: "MX target " + strings.TrimSuffix(h, "."), Verdict: Warn,
				Detail: fmt.Sprintf("is an alias (CNAME to %s)", strings.TrimSuffix(ar.Chain[len(ar.Chain)-1].Target, ".")),
				Fix:    "point the MX at the host name itself (RFC 2181 §10.3); DANE senders look TLSA up at the alias's target first"})
		}
	}
	return res, hosts, nil
}

// predict asks the harness's sender, in a dry run, what it would do with mail to the domain
// now, and turns its outcome into each profile's status.
func (c *run) predict(ctx context.Context) {
	domain := c.name()
	if c.cfg.MXHost != "" {
		domain = strings.TrimSuffix(c.cfg.MXHost, ".") // as if it were the only MX (its implicit MX)
	}
	// Every host may take its lookups and an SMTP session's steps before the next is tried.
	budget := time.Duration(8*max(1, c.hosts)) * c.cfg.Timeout
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	o := c.sender.Attempt(ctx, &queue.Message{To: []string{"postmaster@" + domain}, Domain: domain})
	if ctx.Err() != nil {
		o = queue.Outcome{Result: queue.ResultConnect, Host: o.Host, Detail: "the dry run of a delivery ran out of time after " + budget.String() + " (hosts that accept connections but do not answer)"}
	}
	for _, p := range []queue.Profile{queue.ExchangeProfile{}, queue.PostfixProfile{}} {
		c.r.Predictions = append(c.r.Predictions, prediction(p, o))
	}
}

// prediction is a profile's view of an outcome.
func prediction(p queue.Profile, o queue.Outcome) Prediction {
	pr := Prediction{Sender: p.Name(), Host: strings.TrimSuffix(o.Host, "."), Matched: o.Matched}
	if o.Delivered {
		pr.Action, pr.Security = "deliver", o.TLS
		switch o.TLS {
		case queue.TLSDane:
			pr.Reason = "DANE-authenticated TLS"
		case queue.TLSEncrypt:
			pr.Reason = "TLS required (the TLSA records are secure but none is usable), not authenticated"
		case queue.TLSNone:
			pr.Reason = "plaintext: no TLS offered and no secure TLSA"
		default:
			pr.Reason = "opportunistic TLS: no secure, usable TLSA"
		}
		if o.TLSInfo != "" {
			pr.Reason += " (" + o.TLSInfo + ")"
		}
		return pr
	}
	st := p.Status(o)
	pr.Action, pr.Code, pr.Reason = "defer", st.Code, o.Detail
	switch {
	case o.Result == queue.ResultNullMX: // what the domain asks for: not a failure (RFC 7505)
		pr.Action, pr.Reason = "none", "the domain publishes a null MX: it accepts no mail, and senders bounce at once"
	case o.Permanent:
		pr.Action = "bounce"
	}
	return pr
}

package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// MTA-STS limits (RFC 8461).
const (
	stsMaxBody   = 64 << 10 // §3.3: senders SHOULD cap the policy at 64 KB
	stsMaxAge    = 31557600 // §3.2: max_age is at most a year
	stsShortAge  = 86400    // under a day is a warning in enforce mode; §3.2 suggests weeks
	stsGoodAge   = 1209600  // what the fix proposes: two weeks
	stsGroup     = "mta-sts"
	stsPolicyLoc = "/.well-known/mta-sts.txt"
)

var (
	// §3.1: sts-id = 1*32(ALPHA / DIGIT).
	stsID = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	// §3.1 sts-ext-name and §3.2 sts-policy-ext-name.
	stsFieldName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)
	// §3.1 sts-ext-value: printable US-ASCII without "=" and ";".
	stsExtValue = regexp.MustCompile(`^[\x21-\x3a\x3c\x3e-\x7e]+$`)
	// An LDH label of a host name in A-labels (§3.2 refers to RFC 5321's Domain).
	stsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// fetchSTS discovers the domain's MTA-STS policy as a sender does (RFC 8461 §3): the TXT record
// at _mta-sts.<domain>, then the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt.
// The policy is nil when there is none a sender would apply.
func fetchSTS(ctx context.Context, cfg Config, domain string) (*STSPolicy, []Item) {
	return fetchSTSRoots(ctx, cfg, domain, nil)
}

// fetchSTSRoots is fetchSTS with the roots the default HTTPS client trusts (nil: the system's),
// so that tests can run the default client against their own CA.
func fetchSTSRoots(ctx context.Context, cfg Config, domain string, roots *x509.CertPool) (*STSPolicy, []Item) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	txtName := "_mta-sts." + d + "."
	host := "mta-sts." + d
	u := "https://" + host + stsPolicyLoc
	item := func(v Verdict, name, detail, fix string, ev ...string) Item {
		return Item{Group: stsGroup, Name: name, Verdict: v, Detail: detail, Evidence: ev, Fix: fix}
	}

	ans, err := lookupPolicyTXT(ctx, cfg, txtName)
	if err != nil {
		return nil, []Item{item(Fail, "MTA-STS record", err.Error(),
			fmt.Sprintf("make TXT %s answer (or not exist) with a valid or insecure answer: senders treat a failed lookup as a temporary error", txtName))}
	}
	// §3.1: records not beginning with "v=STSv1;" are discarded; exactly one must remain.
	var cands, near []string
	for _, t := range ans.txts {
		switch {
		case strings.HasPrefix(t, "v=STSv1;"):
			cands = append(cands, t)
		case strings.HasPrefix(strings.ToLower(t), "v=stsv1"):
			near = append(near, t)
		}
	}
	switch {
	case len(cands) == 0 && len(near) > 0:
		return nil, []Item{item(Fail, "MTA-STS record",
			fmt.Sprintf("TXT %s %q does not begin with \"v=STSv1;\": senders ignore it (RFC 8461 §3.1)", txtName, near[0]),
			fmt.Sprintf("publish %s TXT \"v=STSv1; id=<1-32 letters and digits>\"", txtName),
			quoteTXTs(txtName, near)...)}
	case len(cands) == 0:
		return nil, []Item{item(Info, "MTA-STS record", "no MTA-STS policy", "",
			fmt.Sprintf("%s TXT: %s", txtName, ans.none()))}
	case len(cands) > 1:
		return nil, []Item{item(Fail, "MTA-STS record",
			fmt.Sprintf("%d v=STSv1 records at %s: senders use none of them (RFC 8461 §3.1)", len(cands), txtName),
			fmt.Sprintf("keep exactly one v=STSv1 TXT record at %s", txtName),
			quoteTXTs(txtName, cands)...)}
	}
	txtEv := fmt.Sprintf("%s TXT %q", txtName, cands[0])
	if _, err := parseSTSRecord(cands[0]); err != nil {
		return nil, []Item{item(Fail, "MTA-STS record",
			fmt.Sprintf("TXT %s: %v: senders ignore the policy (RFC 8461 §3.1)", txtName, err),
			fmt.Sprintf("publish %s TXT \"v=STSv1; id=<1-32 letters and digits>\"", txtName), txtEv)}
	}

	fetch := cfg.HTTPS
	if fetch == nil {
		fetch = stsHTTPS(cfg, roots)
	}
	t := policyStepTimeout(cfg)
	fctx, cancel := context.WithTimeout(ctx, t)
	body, err := fetch(fctx, u)
	if err == nil && len(body) > stsMaxBody {
		err = &stsFetchError{msg: fmt.Sprintf("policy of %d bytes, over 64 KB", len(body)),
			fix: "keep the policy under 64 KB (RFC 8461 §3.3)"}
	}
	timedOut := errors.Is(fctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		msg := stsErrText(err)
		if timedOut || stsIsTimeout(err) {
			msg = "timeout after " + t.String()
		}
		return nil, []Item{item(Fail, "MTA-STS policy",
			fmt.Sprintf("fetching %s: %s: senders find no policy (RFC 8461 §3.3)", u, msg),
			stsFetchFix(err, u, host, timedOut), txtEv)}
	}
	p, lines, err := parseSTSPolicy(string(body))
	if err != nil {
		return nil, []Item{item(Fail, "MTA-STS policy",
			fmt.Sprintf("policy at %s: %v: senders ignore it (RFC 8461 §3.2)", u, err),
			fmt.Sprintf("correct the policy at %s (\"version: STSv1\", \"mode: enforce\", \"mx: <host>\" per MX, \"max_age: %d\"), then change the id of TXT %s", u, stsGoodAge, txtName),
			append([]string{txtEv}, lines...)...)}
	}
	ev := append([]string{txtEv, u + ":"}, lines...)
	var items []Item
	switch p.Mode {
	case "enforce":
		items = append(items, item(Pass, "MTA-STS policy", "mode enforce: MTA-STS senders deliver only over authenticated TLS to the listed MX hosts", "", ev...))
		if p.MaxAge < stsShortAge {
			items = append(items, item(Warn, "MTA-STS max_age",
				fmt.Sprintf("max_age %d s is under a day: senders refetch the policy often and an attacker who blocks the fetch soon finds no policy (RFC 8461 §3.2 recommends weeks)", p.MaxAge),
				fmt.Sprintf("raise max_age in the policy at %s to weeks, e.g. \"max_age: %d\", and change the id of TXT %s", u, stsGoodAge, txtName),
				fmt.Sprintf("max_age: %d", p.MaxAge)))
		}
	case "testing":
		items = append(items, item(Info, "MTA-STS policy", "mode testing: senders report failures (TLS-RPT) but deliver anyway", "", ev...))
	default:
		items = append(items, item(Info, "MTA-STS policy", "mode none: senders drop their cached policy and apply none", "", ev...))
	}
	return p, items
}

// parseSTSRecord checks an MTA-STS TXT record that begins with "v=STSv1;" (RFC 8461 §3.1)
// and returns its id.
func parseSTSRecord(txt string) (string, error) {
	fields := strings.Split(txt, ";")
	id := ""
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 { // a trailing ";" is allowed
				continue
			}
			return "", fmt.Errorf("empty field")
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || !stsFieldName.MatchString(name) {
			return "", fmt.Errorf("malformed field %q", f)
		}
		switch name {
		case "id":
			if !stsID.MatchString(value) {
				return "", fmt.Errorf("id %q is not 1 to 32 letters and digits", value)
			}
			if id == "" { // §3.2: of duplicate fields the first counts
				id = value
			}
		case "v":
			return "", fmt.Errorf("version given twice")
		default:
			if !stsExtValue.MatchString(value) {
				return "", fmt.Errorf("malformed field %q", f)
			}
		}
	}
	if id == "" {
		return "", fmt.Errorf("no id= field")
	}
	return id, nil
}

// parseSTSPolicy parses a policy body (RFC 8461 §3.2): "key: value" lines ended by LF or
// CRLF. It returns the policy and its lines (for evidence). Blank lines are tolerated;
// unknown keys are extensions and ignored; of a repeated key other than mx the first counts.
func parseSTSPolicy(body string) (*STSPolicy, []string, error) {
	var lines []string
	p := &STSPolicy{}
	seen := map[string]bool{}
	for n, line := range strings.Split(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue
		}
		lines = append(lines, line)
		key, value, ok := strings.Cut(line, ":")
		if !ok || !stsFieldName.MatchString(key) {
			return nil, lines, fmt.Errorf("line %d %q is not \"key: value\"", n+1, line)
		}
		value = strings.Trim(value, " \t")
		first := !seen[key]
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, lines, fmt.Errorf("line %d: version %q, not STSv1", n+1, value)
			}
		case "mode":
			switch value {
			case "enforce", "testing", "none":
			default:
				return nil, lines, fmt.Errorf("line %d: mode %q is not enforce, testing or none", n+1, value)
			}
			if first {
				p.Mode = value
			}
		case "max_age":
			v, err := strconv.Atoi(value)
			if err != nil || len(value) > 10 || strings.Trim(value, "0123456789") != "" || v > stsMaxAge {
				return nil, lines, fmt.Errorf("line %d: max_age %q is not a number of seconds from 0 to %d", n+1, value, stsMaxAge)
			}
			if first {
				p.MaxAge = v
			}
		case "mx":
			if err := checkSTSPattern(value); err != nil {
				return nil, lines, fmt.Errorf("line %d: %v", n+1, err)
			}
			p.MX = append(p.MX, strings.ToLower(value))
		}
	}
	if len(lines) == 0 {
		return nil, nil, fmt.Errorf("empty policy")
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, lines, fmt.Errorf("no %s: line", k)
		}
	}
	if len(p.MX) == 0 && p.Mode != "none" { // §3.2: mx may only be left out in mode none
		return nil, lines, fmt.Errorf("no mx: line in mode %s", p.Mode)
	}
	return p, lines, nil
}

// checkSTSPattern checks an mx pattern: a host name in A-labels without a trailing dot,
// optionally with a leading "*." (RFC 8461 §3.2, §4.1).
func checkSTSPattern(s string) error {
	name := strings.TrimPrefix(s, "*.")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("mx %q is not a host name", s)
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("mx %q ends with a dot", s)
	}
	for _, l := range strings.Split(strings.ToLower(name), ".") {
		if !stsLabel.MatchString(l) {
			return fmt.Errorf("mx %q is not a host name (label %q)", s, l)
		}
	}
	return nil
}

// stsMatch reports whether host matches an mx pattern (RFC 8461 §4.1): literally, or with
// "*." standing for exactly one leftmost label. Case and a trailing dot do not matter.
func stsMatch(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if parent, ok := strings.CutPrefix(pattern, "*."); ok {
		label, rest, found := strings.Cut(host, ".")
		return found && label != "" && rest == parent
	}
	return host == pattern
}

// checkSTSMX checks that every MX host matches a pattern of the policy (RFC 8461 §4.1): an
// MTA-STS sender in enforce mode does not deliver to a host that matches none.
func checkSTSMX(p *STSPolicy, mxHosts []string) []Item {
	if p == nil || p.Mode == "none" || len(mxHosts) == 0 {
		return nil
	}
	var items []Item
	var ok []string
	for _, h := range mxHosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		matched := ""
		for _, pat := range p.MX {
			if stsMatch(pat, h) {
				matched = pat
				break
			}
		}
		if matched != "" {
			ok = append(ok, fmt.Sprintf("%s matches mx: %s", h, matched))
			continue
		}
		it := Item{Group: stsGroup, Name: "MTA-STS mx " + h,
			Evidence: []string{"policy mx: " + strings.Join(p.MX, ", ")},
			Fix:      fmt.Sprintf("add `mx: %s` to the policy and change the id of the _mta-sts TXT record so that senders refetch it", h)}
		if p.Mode == "enforce" {
			it.Verdict = Fail
			it.Detail = fmt.Sprintf("mail to %s would not be delivered by MTA-STS senders: add `mx: %s` to the policy (RFC 8461 §4.1)", h, h)
		} else {
			it.Verdict = Warn
			it.Detail = fmt.Sprintf("%s matches no mx of the policy: in testing mode senders deliver anyway but report a failure; in enforce mode mail to it would not be delivered (RFC 8461 §4.1)", h)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		items = append(items, Item{Group: stsGroup, Name: "MTA-STS mx", Verdict: Pass,
			Detail: "every MX host matches an mx of the policy", Evidence: ok})
	}
	return items
}

// policyTXTAnswer is the TXT answer for a policy record (MTA-STS, TLS-RPT).
type policyTXTAnswer struct {
	txts  []string // each record's strings concatenated
	rcode int
}

// none says why there is no record, for evidence.
func (a policyTXTAnswer) none() string {
	if a.rcode == dns.RcodeNameError {
		return "NXDOMAIN"
	}
	if len(a.txts) == 0 {
		return "no TXT record (NODATA)"
	}
	return fmt.Sprintf("no policy record among %d TXT records", len(a.txts))
}

// lookupPolicyTXT looks up the TXT records at name. Neither MTA-STS nor TLS-RPT needs DNSSEC,
// so an insecure answer is used; a bogus or indeterminate one is an error, since a validating
// sender cannot use it either.
func lookupPolicyTXT(ctx context.Context, cfg Config, name string) (policyTXTAnswer, error) {
	if cfg.Resolver == nil {
		return policyTXTAnswer{}, fmt.Errorf("looking up TXT %s: no resolver configured", name)
	}
	t := policyStepTimeout(cfg)
	rctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	res, err := cfg.Resolver.Resolve(rctx, name, dns.TypeTXT)
	if errors.Is(rctx.Err(), context.DeadlineExceeded) {
		return policyTXTAnswer{}, fmt.Errorf("looking up TXT %s: timeout after %s", name, t)
	}
	if err != nil {
		return policyTXTAnswer{}, fmt.Errorf("looking up TXT %s: %v", name, err)
	}
	if res == nil || res.Msg == nil {
		return policyTXTAnswer{}, fmt.Errorf("looking up TXT %s: no answer", name)
	}
	switch res.Verdict {
	case resolver.Bogus, resolver.Indeterminate:
		return policyTXTAnswer{}, fmt.Errorf("looking up TXT %s: %s: %s", name, res.Verdict, res.Reason)
	}
	a := policyTXTAnswer{rcode: res.Msg.Rcode}
	switch res.Msg.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return a, fmt.Errorf("looking up TXT %s: %s", name, dns.RcodeToString[res.Msg.Rcode])
	}
	for _, rr := range res.Msg.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			a.txts = append(a.txts, strings.Join(t.Txt, ""))
		}
	}
	return a, nil
}

// policyStepTimeout is the timeout of one network step.
func policyStepTimeout(cfg Config) time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return 10 * time.Second
}

func quoteTXTs(name string, txts []string) []string {
	out := make([]string, len(txts))
	for i, t := range txts {
		out[i] = fmt.Sprintf("%s TXT %q", name, t)
	}
	return out
}

// stsFetchError is a failure of the default fetch that knows its fix.
type stsFetchError struct{ msg, fix string }

func (e *stsFetchError) Error() string { return e.msg }

// stsHTTPS returns the default policy fetcher (RFC 8461 §3.3): HTTPS with the certificate
// validated against roots (nil: the system's) and the host name, TLS 1.2 or later, no
// redirects, status 200, media type text/plain, at most 64 KB. Host addresses come from
// cfg.Resolver when set, so that lab names resolve; connections go through cfg.Dial.
func stsHTTPS(cfg Config, roots *x509.CertPool) func(ctx context.Context, url string) ([]byte, error) {
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr := &http.Transport{
		Proxy: nil, // a sender connects directly
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || cfg.Resolver == nil || net.ParseIP(host) != nil {
				return dial(ctx, network, addr)
			}
			ips, err := stsAddrs(ctx, cfg.Resolver, host)
			if err != nil {
				return nil, err
			}
			var errs []error
			for _, ip := range ips {
				c, err := dial(ctx, network, net.JoinHostPort(ip, port))
				if err == nil {
					return c, nil
				}
				errs = append(errs, err)
			}
			return nil, errors.Join(errs...)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	client := &http.Client{
		Transport: tr,
		// §3.3: senders MUST NOT follow redirects; the 3xx is reported below.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context, u string) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return nil, &stsFetchError{
				msg: fmt.Sprintf("HTTP %s redirecting to %q: senders do not follow redirects", resp.Status, resp.Header.Get("Location")),
				fix: fmt.Sprintf("serve the policy at %s itself with status 200: senders do not follow redirects (RFC 8461 §3.3)", u)}
		}
		if resp.StatusCode != http.StatusOK {
			return nil, &stsFetchError{msg: "HTTP " + resp.Status + ", not 200",
				fix: fmt.Sprintf("serve the policy at %s with status 200 (RFC 8461 §3.3)", u)}
		}
		// §3.3: senders SHOULD check the media type, lest a user-hosted file pass for a policy.
		ct := resp.Header.Get("Content-Type")
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "text/plain" {
			return nil, &stsFetchError{msg: fmt.Sprintf("Content-Type %q, not text/plain", ct),
				fix: fmt.Sprintf("serve %s as text/plain (RFC 8461 §3.3)", u)}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, stsMaxBody+1))
		if err != nil {
			return nil, fmt.Errorf("reading the body: %w", err)
		}
		return body, nil // fetchSTS rejects more than stsMaxBody
	}
}

// stsAddrs returns the addresses of host from r; a bogus or failed lookup is an error.
func stsAddrs(ctx context.Context, r resolver.Interface, host string) ([]string, error) {
	var ips []string
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		res, err := r.Resolve(ctx, dns.Fqdn(host), qt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %v", host, dns.TypeToString[qt], err))
			continue
		}
		if res == nil || res.Msg == nil || res.Verdict == resolver.Bogus || res.Verdict == resolver.Indeterminate {
			reason := "no answer"
			if res != nil {
				reason = res.Verdict.String() + ": " + res.Reason
			}
			errs = append(errs, fmt.Errorf("%s %s: %s", host, dns.TypeToString[qt], reason))
			continue
		}
		for _, rr := range res.Msg.Answer {
			switch a := rr.(type) {
			case *dns.A:
				ips = append(ips, a.A.String())
			case *dns.AAAA:
				ips = append(ips, a.AAAA.String())
			}
		}
	}
	if len(ips) > 0 {
		return ips, nil
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, &stsFetchError{msg: host + " has no A or AAAA record",
		fix: fmt.Sprintf("publish A or AAAA records for %s and serve the policy there over HTTPS", host)}
}

// stsErrText is the error without the "Get URL:" prefix net/http adds (the item names the URL).
func stsErrText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// stsIsTimeout reports whether err is a timeout.
func stsIsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// stsFetchFix is the fix for a failed policy fetch.
func stsFetchFix(err error, u, host string, timedOut bool) string {
	var fe *stsFetchError
	var cve *tls.CertificateVerificationError
	var hn x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &fe):
		return fe.fix
	case timedOut || stsIsTimeout(err):
		return fmt.Sprintf("make %s answer HTTPS on port 443 within the timeout", host)
	case errors.As(err, &cve), errors.As(err, &hn), errors.As(err, &ua), errors.As(err, &ci):
		return fmt.Sprintf("serve a certificate for %s that is valid now and chains to a public root (RFC 8461 §3.3)", host)
	}
	return fmt.Sprintf("serve the policy at %s over HTTPS with a publicly trusted certificate for %s (RFC 8461 §3.3)", u, host)
}

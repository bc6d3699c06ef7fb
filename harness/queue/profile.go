package queue

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Profile is a sender's personality: its retry schedule, its lifetime and its status codes.
type Profile interface {
	Name() string
	// Next is asked after failed (temporary) attempt number attempt (1-based), made at message
	// age age. It returns the message age of the next attempt, or of the expiry (Step.Expire).
	// Step.At <= age with Expire means: expire now.
	Next(attempt int, age time.Duration) Step
	// Status is the profile's status for an attempt (4.x.x for a temporary failure, 5.x.x for a
	// permanent one, 2.0.0 for a delivery).
	Status(o Outcome) Status
	// Final is the status the DSN carries when the message fails for good after last.
	Final(last Outcome) Status
}

// Step is a scheduling decision, in message age (time since Message.Submitted).
type Step struct {
	At     time.Duration
	Expire bool
}

// Status is a profile's verdict on an outcome.
type Status struct {
	Code           string // enhanced status code, "4.7.323"
	DiagnosticType string // RFC 3464 diagnostic-type: "smtp" or "X-Postfix"
	Diagnostic     string // e.g. "450 4.7.323 tlsa-invalid: The domain failed DANE validation"
}

// DiagnosticCode is the value of the DSN Diagnostic-Code field: "smtp; 550 5.7.323 ...".
func (s Status) DiagnosticCode() string { return s.DiagnosticType + "; " + s.Diagnostic }

// CodeEntry is one cell of the code table: the retrying (class 4) code and the words.
type CodeEntry struct {
	Code string // 4.x.x; 5.x.x for classes that are always permanent (null MX)
	Text string
}

type column int

const (
	colExchange column = iota
	colPostfix
	colRFC
	colExim
	colMox
	colMaddy
	numColumns
)

// codeTable maps every failure class (Outcome.Result) to each profile's code and words. It is
// the only place where codes are chosen. Sources: docs/sender-behaviour.md, "Exchange Online as a
// sender" (4/5.7.321-324, 4/5.4.312) and "Postfix as a sender" (DANE log words and codes); the
// rfc profile uses the RFC 3463 generic codes (X.7.4 security features not supported, X.7.5
// cryptographic failure, X.4.3 directory server failure, X.4.1 no answer from host, X.1.10 null
// MX / RFC 7505). The exim column is Exim 4.96 as measured by integration/exim_fixture_test.go:
// Exim gives no enhanced status code of its own to a DANE, TLS or DNS failure (its log has
// internal errno values, -36 "DANE error: tlsa lookup DEFER", -37 "TLS session: (certificate
// verification failed)", -38 "a TLS session is required, but the server did not offer TLS
// support", -1 "host lookup did not complete"), and its DSN says Status: 5.0.0 when the retry
// timeout is exceeded, and 5.0.0 for a null MX ("an MX or SRV record indicated no SMTP
// service", not RFC 7505's 5.1.10); hence 4.0.0 while retrying, with Exim's log words.
//
// The mox column is mox v0.0.15 (integration/mox_fixture_test.go; source queue/dsn.go,
// smtpclient): no enhanced code of its own for a DANE, TLS or DNS failure, so 4.0.0 in its
// delay DSN and 5.0.0 in the failure DSN; with DANE in force it sends STARTTLS even when the
// server did not offer it, and takes the reply (the lab's receivers: 502 5.5.1) as permanent.
// The maddy column is maddy 0.8.1 (integration/maddy_fixture_test.go; target/remote/dane.go):
// a DANE failure is a permanent 550 5.7.0/5.7.1, but its DSNs carry only the class of the code
// (X.0.0: the queue's type assertion on the enhanced code never matches), and a temporary
// failure that exhausts max_tries is returned with Status 4.0.0.
var codeTable = map[string][numColumns]CodeEntry{
	ResultSTARTTLSNotSupported: {
		{"4.7.321", "starttls-not-supported: Destination mail server must support TLS to receive mail"},
		{"4.7.4", "TLS is required, but was not offered"},
		{"4.7.4", "STARTTLS not offered where TLS is required"},
		{"4.0.0", "TLS session required, but not offered"},
		{"5.5.1", "STARTTLS not offered, sent anyway as DANE requires TLS: the server's 502 5.5.1 reply is permanent"},
		{"5.0.0", "TLS is required but unsupported or failed (enforced by DANE)"},
	},
	ResultCertificateExpired: {
		{"4.7.322", "certificate-expired: Destination mail server's certificate is expired"},
		{"4.7.5", "Server certificate not verified"},
		{"4.7.5", "server certificate expired"},
		{"4.0.0", "TLS session: certificate verification failed"},
		{"4.0.0", "tls handshake: dane verification: certificate has expired"},
		{"5.0.0", "No matching TLSA records"},
	},
	ResultTLSAInvalid: {
		{"4.7.323", "tlsa-invalid: The domain failed DANE validation"},
		{"4.7.5", "Server certificate not verified"},
		{"4.7.5", "server certificate does not match the TLSA records"},
		{"4.0.0", "TLS session: certificate verification failed"},
		{"4.0.0", "tls handshake: dane verification: no matching tlsa record"},
		{"5.0.0", "No matching TLSA records"},
	},
	ResultCertificateHostMismatch: {
		{"4.7.323", "tlsa-invalid: The domain failed DANE validation"},
		{"4.7.5", "Server certificate not verified"},
		{"4.7.5", "server certificate names no reference identifier"},
		{"4.0.0", "TLS session: certificate verification failed"},
		{"4.0.0", "tls handshake: dane verification: no matching tlsa record"},
		{"5.0.0", "No matching TLSA records"},
	},
	ResultCertificateNotTrusted: {
		{"4.7.323", "tlsa-invalid: The domain failed DANE validation"},
		{"4.7.5", "Server certificate not verified"},
		{"4.7.5", "server certificate chain does not validate to the TLSA trust anchor"},
		{"4.0.0", "TLS session: certificate verification failed"},
		{"4.0.0", "tls handshake: dane verification: no matching tlsa record"},
		{"5.0.0", "No matching TLSA records"},
	},
	ResultValidationFailure: {
		{"4.7.323", "tlsa-invalid: The domain failed DANE validation"},
		{"4.7.5", "Cannot start TLS: handshake failure"},
		{"4.7.5", "TLS handshake failure"},
		{"4.0.0", "TLS session: handshake failed"},
		{"4.0.0", "tls handshake failed"},
		{"5.0.0", "TLS is required but unsupported or failed (enforced by DANE)"},
	},
	ResultDANERequired: {
		{"4.7.323", "tlsa-invalid: The domain failed DANE validation"},
		{"4.7.5", "Server certificate not verified"},
		{"4.7.5", "DANE required but no secure TLSA records"},
		{"4.0.0", "TLS session: certificate verification failed"},
		{"4.0.0", "tls handshake: dane verification: no usable tlsa record"},
		{"5.0.0", "No matching TLSA records"},
	},
	ResultDNSSECInvalid: {
		{"4.7.324", "dnssec-invalid: Destination domain returned invalid DNSSEC records"},
		{"4.7.5", "TLSA lookup error"},
		{"4.7.5", "TLSA lookup failed (bogus or indeterminate)"},
		{"4.0.0", "TLSA lookup failed"},
		{"4.0.0", "looking up tlsa records: dnssec bogus or server failure"},
		{"4.0.0", "TLSA lookup error (temporary)"},
	},
	ResultDNSFailure: {
		{"4.4.312", "DNS query failed"},
		{"4.4.3", "Name service error: Host not found, try again"},
		{"4.4.3", "DNS lookup failed (bogus or indeterminate)"},
		{"4.0.0", "host lookup did not complete"},
		{"4.0.0", "looking up mx records: server failure"},
		{"4.0.0", "MX lookup error"},
	},
	ResultConnect: {
		{"4.4.316", "Connection refused or timed out"},
		{"4.4.1", "connect: Connection refused"},
		{"4.4.1", "no answer from host"},
		{"4.0.0", "Connection refused"},
		{"4.0.0", "dial: connection refused"},
		{"4.0.0", "No usable MXs: connection refused"},
	},
	ResultNullMX: {
		{"5.1.10", "RESOLVER.ADR.RecipientDomainNotAcceptingMail; domain does not accept mail (null MX)"},
		// Postfix 3.7 says 5.1.0, not RFC 7505's 5.1.10 (measured: integration/postfix_fixture_test.go).
		{"5.1.0", "Domain does not accept mail"},
		{"5.1.10", "domain does not accept mail (null MX, RFC 7505)"},
		{"5.0.0", "an MX or SRV record indicated no SMTP service"},
		{"5.0.0", "domain does not accept email as indicated with single dot for mx record"},
		{"5.0.0", "Domain does not accept email (null MX)"},
	},
}

// Lookup returns the code table cell of a profile (one of ProfileNames) and class.
func Lookup(profile, result string) (CodeEntry, bool) {
	col, ok := map[string]column{"exchange": colExchange, "postfix": colPostfix, "rfc": colRFC, "exim": colExim,
		"mox": colMox, "maddy": colMaddy}[profile]
	if !ok {
		return CodeEntry{}, false
	}
	row, ok := codeTable[result]
	if !ok {
		return CodeEntry{}, false
	}
	return row[col], true
}

// withClass replaces the class digit of an enhanced status code ("4.7.323" -> "5.7.323").
func withClass(code string, class byte) string {
	if len(code) < 2 || code[1] != '.' {
		return code
	}
	return string(class) + code[1:]
}

func replyFor(code string) string {
	switch {
	case strings.HasPrefix(code, "2."):
		return "250"
	case strings.HasPrefix(code, "5."):
		return "550"
	default:
		return "450"
	}
}

// clean keeps diagnostics on one line.
func clean(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// status computes the attempt status of column col; final turns a temporary code permanent
// unless keep4 (Postfix keeps the 4.x.x status of the last attempt in the DSN).
func status(col column, o Outcome, final, keep4 bool, diagType string) Status {
	if o.Delivered {
		return Status{Code: "2.0.0", DiagnosticType: "smtp", Diagnostic: "250 2.0.0 Ok"}
	}
	class := byte('4')
	if o.Permanent || (final && !keep4) {
		class = '5'
	}
	var code, text string
	dtype := diagType
	if row, ok := codeTable[o.Result]; ok {
		code, text = row[col].Code, row[col].Text
		if !strings.HasPrefix(code, "5.") { // 5.1.10 stays permanent
			code = withClass(code, class)
		}
	} else {
		// ResultSMTPReply or an unknown class: the remote/sender's own code, else 4.0.0.
		dtype = "smtp"
		code = o.Status
		if code == "" {
			code = "4.0.0"
		}
		if o.Permanent || (final && !keep4) {
			code = withClass(code, '5')
		}
		if o.Result == ResultSMTPReply && o.Detail != "" {
			return Status{Code: code, DiagnosticType: dtype, Diagnostic: clean(o.Detail)}
		}
		text = o.Result
	}
	diag := text
	if dtype == "smtp" {
		diag = replyFor(code) + " " + code + " " + text
	}
	if o.Host != "" {
		diag += " (host " + o.Host + ")"
	}
	if o.Detail != "" {
		diag += " [" + o.Detail + "]"
	}
	return Status{Code: code, DiagnosticType: dtype, Diagnostic: clean(diag)}
}

// ExchangeProfile is Exchange Online: retries 15 min after the first failure, again after 15
// and 15 min, then hourly; 24 h after submission the message expires with an NDR carrying the
// 5.x.x version of the last code. Attempts fall strictly before the expiry.
type ExchangeProfile struct{}

// Name returns "exchange".
func (ExchangeProfile) Name() string { return "exchange" }

// ExchangeLifetime is the Exchange Online retry window.
const ExchangeLifetime = 24 * time.Hour

// Next implements Profile.
func (ExchangeProfile) Next(attempt int, age time.Duration) Step {
	d := time.Hour
	if attempt <= 3 {
		d = 15 * time.Minute
	}
	if age+d >= ExchangeLifetime {
		return Step{At: ExchangeLifetime, Expire: true}
	}
	return Step{At: age + d}
}

// Status implements Profile.
func (ExchangeProfile) Status(o Outcome) Status { return status(colExchange, o, false, false, "smtp") }

// Final implements Profile.
func (ExchangeProfile) Final(o Outcome) Status { return status(colExchange, o, true, false, "smtp") }

// PostfixProfile is Postfix 3.7 with default timers: after a failure the next try is after the
// message's age, clamped to [MinimalBackoff, MaximalBackoff]; when a delivery fails temporarily
// and the message's age has reached MaximalQueueLifetime, it is returned to the sender with
// the 4.x.x status of the last attempt (e.g. 4.7.5). Zero fields take the defaults. The
// deferred-queue scan (queue_run_delay, 300 s) is not modelled: attempts are exactly on time.
type PostfixProfile struct {
	MinimalBackoff       time.Duration // minimal_backoff_time, default 300 s
	MaximalBackoff       time.Duration // maximal_backoff_time, default 4000 s
	MaximalQueueLifetime time.Duration // maximal_queue_lifetime, default 5 days
}

// Postfix defaults.
const (
	PostfixMinimalBackoff       = 300 * time.Second
	PostfixMaximalBackoff       = 4000 * time.Second
	PostfixMaximalQueueLifetime = 5 * 24 * time.Hour
)

func (p PostfixProfile) params() (lo, hi, life time.Duration) {
	lo, hi, life = p.MinimalBackoff, p.MaximalBackoff, p.MaximalQueueLifetime
	if lo == 0 {
		lo = PostfixMinimalBackoff
	}
	if hi == 0 {
		hi = PostfixMaximalBackoff
	}
	if life == 0 {
		life = PostfixMaximalQueueLifetime
	}
	return
}

// Name returns "postfix".
func (PostfixProfile) Name() string { return "postfix" }

// Next implements Profile.
func (p PostfixProfile) Next(attempt int, age time.Duration) Step {
	lo, hi, life := p.params()
	if age >= life {
		return Step{At: age, Expire: true}
	}
	return Step{At: age + min(max(age, lo), hi)}
}

// Status implements Profile.
func (PostfixProfile) Status(o Outcome) Status {
	return status(colPostfix, o, false, true, "X-Postfix")
}

// Final implements Profile.
func (PostfixProfile) Final(o Outcome) Status { return status(colPostfix, o, true, true, "X-Postfix") }

// RFCProfile is a plain RFC 7672 / RFC 5321 sender with exponential backoff: the n-th retry
// comes Initial*Factor^(n-1) (at most Max) after the n-th failure; at Lifetime the message
// expires with the 5.x.x version of the last code (RFC 3463 generic codes). Zero fields take
// the defaults (30 min, 2, 4 h, 5 days; RFC 5321 §4.5.4.1).
type RFCProfile struct {
	Initial  time.Duration
	Factor   float64
	Max      time.Duration
	Lifetime time.Duration
}

func (p RFCProfile) params() (RFCProfile, error) {
	if p.Initial == 0 {
		p.Initial = 30 * time.Minute
	}
	if p.Factor == 0 {
		p.Factor = 2
	}
	if p.Max == 0 {
		p.Max = 4 * time.Hour
	}
	if p.Lifetime == 0 {
		p.Lifetime = 5 * 24 * time.Hour
	}
	if p.Initial < 0 || p.Factor < 1 || p.Max < p.Initial || p.Lifetime < 0 {
		return p, fmt.Errorf("queue: invalid rfc profile %+v", p)
	}
	return p, nil
}

// Name returns "rfc".
func (RFCProfile) Name() string { return "rfc" }

// Next implements Profile.
func (p RFCProfile) Next(attempt int, age time.Duration) Step {
	p, _ = p.params() // invalid values are rejected by ProfileByName / New
	d := float64(p.Initial) * math.Pow(p.Factor, float64(max(attempt-1, 0)))
	delay := p.Max
	if d < float64(p.Max) {
		delay = time.Duration(d)
	}
	if age+delay >= p.Lifetime {
		return Step{At: max(p.Lifetime, age), Expire: true}
	}
	return Step{At: age + delay}
}

// Status implements Profile.
func (RFCProfile) Status(o Outcome) Status { return status(colRFC, o, false, false, "smtp") }

// Final implements Profile.
func (RFCProfile) Final(o Outcome) Status { return status(colRFC, o, true, false, "smtp") }

// ProfileNames are the sender profiles, in the order help texts list them.
var ProfileNames = []string{"exchange", "postfix", "rfc", "exim", "mox", "maddy"}

// ProfileByName returns the profile of one of ProfileNames (with default backoff).
func ProfileByName(name string) (Profile, error) {
	switch name {
	case "exchange":
		return ExchangeProfile{}, nil
	case "postfix":
		return PostfixProfile{}, nil
	case "rfc":
		return RFCProfile{}, nil
	case "exim":
		return EximProfile{}, nil
	case "mox":
		return MoxProfile{}, nil
	case "maddy":
		return MaddyProfile{}, nil
	}
	return nil, fmt.Errorf("queue: unknown sender profile %q", name)
}

// EximProfile is Exim 4.96 with the retry rule of its default configure file (upstream's and
// Debian's exim4-config): `* * F,2h,15m; G,16h,1h,1.5; F,4d,6h`: every 15 min for the first
// 2 h, then intervals growing from 1 h by 1.5 until 16 h, then every 6 h; an address that
// fails after 4 days (the retry timeout) is returned to the sender with 5.0.0. Rules, when
// set, replace the default (the integration test uses `F,2m,10s`).
type EximProfile struct {
	Rules []EximRetryRule
}

// EximRetryRule is one retry rule item: F (fixed Interval) or G (geometric, from Interval,
// times Factor) until the message's age reaches Until.
type EximRetryRule struct {
	Until    time.Duration
	Interval time.Duration
	Factor   float64 // G rules only; 0 for F
}

// EximDefaultRules is `F,2h,15m; G,16h,1h,1.5; F,4d,6h`.
var EximDefaultRules = []EximRetryRule{
	{Until: 2 * time.Hour, Interval: 15 * time.Minute},
	{Until: 16 * time.Hour, Interval: time.Hour, Factor: 1.5},
	{Until: 4 * 24 * time.Hour, Interval: 6 * time.Hour},
}

// Name returns "exim".
func (EximProfile) Name() string { return "exim" }

// Next implements Profile. The item that applies is the one whose time the message's age
// (Exim: the time since the first failure, the same here as the first attempt is at
// submission) has not reached; a G item's interval grows by Factor with each retry made under
// it. Past the last item's time the address has timed out: Exim bounces it after the first
// attempt that fails beyond the cutoff, not at the cutoff itself.
func (p EximProfile) Next(attempt int, age time.Duration) Step {
	rules := p.Rules
	if len(rules) == 0 {
		rules = EximDefaultRules
	}
	if age >= rules[len(rules)-1].Until {
		return Step{At: age, Expire: true}
	}
	var start time.Duration
	for _, r := range rules {
		if age >= r.Until {
			start = r.Until
			continue
		}
		d := r.Interval
		if r.Factor > 0 {
			for u := start; u+d <= age; d = time.Duration(float64(d) * r.Factor) {
				u += d
			}
		}
		return Step{At: age + d}
	}
	panic("unreachable")
}

// Status implements Profile.
func (EximProfile) Status(o Outcome) Status { return status(colExim, o, false, false, "smtp") }

// Final implements Profile.
func (EximProfile) Final(o Outcome) Status { return status(colExim, o, true, false, "smtp") }

// MoxProfile is mox v0.0.15 (queue/queue.go, queue/dsn.go): the n-th retry comes 7.5 min ×
// 2^(n-1) after the n-th failure (7.5m, 15m, 30m, 1h, 2h, 4h, 8h; mox jitters the 7.5 min by
// -5..+4 s before doubling, which is not modelled);
// the 8th failed attempt, at 15h52m30s, returns the message with the 5.x.x version of the last
// status (a delay DSN after the 5th attempt is a warning, not an outcome).
type MoxProfile struct{}

// MoxAttempts is mox's fixed number of delivery attempts for a submitted message.
const MoxAttempts = 8

// Name returns "mox".
func (MoxProfile) Name() string { return "mox" }

// Next implements Profile.
func (MoxProfile) Next(attempt int, age time.Duration) Step {
	if attempt >= MoxAttempts {
		return Step{At: age, Expire: true}
	}
	return Step{At: age + 450*time.Second<<(attempt-1)}
}

// Status implements Profile.
func (MoxProfile) Status(o Outcome) Status { return status(colMox, o, false, false, "smtp") }

// Final implements Profile.
func (MoxProfile) Final(o Outcome) Status { return status(colMox, o, true, false, "smtp") }

// MaddyProfile is maddy 0.8.1's queue (internal/target/queue/queue.go): after the n-th failed
// attempt the next comes 15 min × int(1.25^(n-1)) later (the factor is truncated to an
// integer: 15m four times, then 30m, 45m, 45m, 1h, ...); the attempt that reaches MaxTries
// (max_tries, default 20) and fails returns the message, keeping the temporary 4.0.0 status.
type MaddyProfile struct {
	MaxTries int
}

// MaddyMaxTries is maddy's default max_tries.
const MaddyMaxTries = 20

// Name returns "maddy".
func (MaddyProfile) Name() string { return "maddy" }

// Next implements Profile.
func (p MaddyProfile) Next(attempt int, age time.Duration) Step {
	tries := p.MaxTries
	if tries <= 0 {
		tries = MaddyMaxTries
	}
	if attempt >= tries {
		return Step{At: age, Expire: true}
	}
	return Step{At: age + 15*time.Minute*time.Duration(math.Pow(1.25, float64(attempt-1)))}
}

// Status implements Profile.
func (MaddyProfile) Status(o Outcome) Status { return status(colMaddy, o, false, true, "smtp") }

// Final implements Profile.
func (MaddyProfile) Final(o Outcome) Status { return status(colMaddy, o, true, true, "smtp") }

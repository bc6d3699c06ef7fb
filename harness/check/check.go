// Package check answers, for one mail domain, what a DANE sender will do and which record to
// fix: the DNSSEC chain, the MX and its hosts, their TLSA records and the certificates they
// serve, rollover readiness, MTA-STS and TLS-RPT, Exchange Online's inbound preflight, and the
// verdicts of Exchange Online's and Postfix's senders, decided by the harness's own sender in a
// dry run (never a second copy of the rules).
package check

import (
	"context"
	"crypto/x509"
	"net"
	"time"

	"github.com/danelab/danelab/harness/resolver"
)

// Verdict is the judgement of one check.
type Verdict string

// The verdicts, from best to worst; Info is a fact that needs no action.
const (
	Info Verdict = "info"
	Pass Verdict = "pass"
	Warn Verdict = "warn"
	Fail Verdict = "fail"
)

func (v Verdict) rank() int {
	switch v {
	case Warn:
		return 1
	case Fail:
		return 2
	}
	return 0
}

// Item is one check: what was checked, the verdict, the evidence, and for a warning or a
// failure the fix in one sentence.
type Item struct {
	Group    string   `json:"group"` // "dnssec", "mx", "host mx1.example.test", "mta-sts", "tls-rpt", "exchange"
	Name     string   `json:"name"`
	Verdict  Verdict  `json:"verdict"`
	Detail   string   `json:"detail,omitempty"`
	Evidence []string `json:"evidence,omitempty"` // records, signature dates, certificates, codes
	Fix      string   `json:"fix,omitempty"`
	Code     string   `json:"code,omitempty"` // a code of the checker it mirrors (EX002, ...)
}

// Prediction is what a sender would do with mail to the domain now.
type Prediction struct {
	Sender string `json:"sender"` // "exchange", "postfix"
	// Action: "deliver" (with TLS as Security says), "defer", "bounce", or "none" (a null
	// MX: the domain accepts no mail).
	Action   string `json:"action"`
	Security string `json:"security,omitempty"` // dane, encrypt, may (TLS), none (plaintext)
	Code     string `json:"code,omitempty"`     // the enhanced status code of a deferral/bounce
	Reason   string `json:"reason"`             // the sender's reason, one line
	Host     string `json:"host,omitempty"`     // the MX host the attempt ended at
	Matched  string `json:"matched,omitempty"`  // the TLSA record that authenticated it
}

// Report is the result of a check.
type Report struct {
	Domain      string        `json:"domain"`
	Started     time.Time     `json:"started"`
	Took        time.Duration `json:"took_ns"`
	Resolution  string        `json:"resolution"` // how names were resolved
	Items       []Item        `json:"items"`
	Predictions []Prediction  `json:"predictions"`
}

// Worst returns the worst verdict of the report: of its items, and a failure when a sender
// would not deliver (whatever the items say, the mail does not arrive).
func (r *Report) Worst() Verdict {
	w := Pass
	for _, it := range r.Items {
		if it.Verdict.rank() > w.rank() {
			w = it.Verdict
		}
	}
	for _, p := range r.Predictions {
		if p.Action == "defer" || p.Action == "bounce" {
			w = Fail
		}
	}
	return w
}

// ExitStatus is 0 when everything passes, 1 with warnings, 2 with failures.
func (r *Report) ExitStatus() int { return r.Worst().rank() }

// Config says how to check.
type Config struct {
	// Resolver resolves and validates (the harness's iterative resolver from a trust anchor,
	// or an upstream validating resolver whose AD bit is trusted).
	Resolver resolver.Interface
	// Iterative reports whether Resolver iterates from the root itself: then the chain of
	// trust is checked link by link; an upstream resolver only says secure or not.
	Iterative bool
	// Resolution says how names are resolved, for the report.
	Resolution string
	MXHost     string        // check this host only, as if it were the only MX
	Port       int           // SMTP port; default 25
	ExpectMX   string        // Exchange Online's DnssecMxValue, for its inbound preflight (EX codes)
	Timeout    time.Duration // per network step; default 10 s
	Now        func() time.Time
	// Dial connects to SMTP servers and HTTPS (MTA-STS) hosts; default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HTTPS fetches an MTA-STS policy: GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
	// Default: an http.Client with Timeout and the system roots. Tests set their own.
	HTTPS func(ctx context.Context, url string) ([]byte, error)
	// Roots are the CAs MTA-STS senders trust (RFC 8461 §4.2: the Web PKI); nil: the system's.
	Roots *x509.CertPool
}

// STSPolicy is a domain's MTA-STS policy (RFC 8461 §3.2), as fetched.
type STSPolicy struct {
	Mode   string   `json:"mode"` // enforce, testing, none
	MX     []string `json:"mx"`   // patterns: "mx1.example.test", "*.example.test"
	MaxAge int      `json:"max_age"`
}

package queue

import (
	"context"
	"time"

	"github.com/danelab/danelab/harness/tlsrpt"
)

// Outcome is the result of one delivery attempt of one message to its recipient domain, as
// classified by the sender (the Attempter). It is profile-neutral: the sender profile turns it
// into an enhanced status code (Profile.Status) through the code table in profile.go.
type Outcome struct {
	Delivered bool // the message was accepted by an MX host
	Permanent bool // a permanent failure (e.g. null MX, 5xx from the server): bounce now
	// Status is an enhanced status code the sender observed itself, used only when Result does
	// not name a class of the code table: the remote server's code for ResultSMTPReply.
	Status string
	// Result is the failure class: an RFC 8460 result type (ResultSTARTTLSNotSupported ...) for
	// TLS/DANE failures, or one of the harness classes (ResultDNSFailure, ResultConnect,
	// ResultNullMX, ResultSMTPReply). Empty when Delivered.
	Result string
	Detail string // free text: what exactly failed (put into diagnostics, sanitised)
	Host   string // MX host tried last ("" when no host was reached, e.g. MX lookup failed)
	TLS    string // security level used or required: TLSDane, TLSEncrypt, TLSMay, TLSNone
	// Matched is the TLSA record that authenticated the server, in presentation form without
	// owner ("3 1 1 <hex>"), when the attempt reached DANE authentication and it succeeded.
	Matched string
	// TLSInfo describes the TLS session when one came up: "TLS1.3 TLS_AES_128_GCM_SHA256".
	TLSInfo string
	// Sessions are the TLS sessions (one per MX host tried) of this attempt, for TLS-RPT. The
	// queue stamps a zero Time with the attempt time; Queue.Sessions collects them all.
	Sessions []tlsrpt.Attempt
}

// Security levels for Outcome.TLS.
const (
	TLSDane    = "dane"    // DANE-authenticated TLS
	TLSEncrypt = "encrypt" // mandatory, unauthenticated TLS (usable TLSA absent but TLSA secure)
	TLSMay     = "may"     // opportunistic TLS
	TLSNone    = "none"    // plaintext
)

// Failure classes for Outcome.Result. The first group are RFC 8460 §4.3 result types.
const (
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure" // incl. handshake failure, TLS < 1.2
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid" // the TLSA lookup was bogus/SERVFAIL/...
	ResultDANERequired            = "dane-required"

	// Harness classes (not RFC 8460 result types).
	ResultDNSFailure = "dns-failure" // MX or address lookup bogus/indeterminate (not TLSA)
	ResultConnect    = "connection-failure"
	ResultNullMX     = "null-mx"    // RFC 7505: permanent
	ResultSMTPReply  = "smtp-reply" // the server answered 4xx/5xx; Status/Detail hold its reply
)

// Message is one queued message for one recipient domain.
type Message struct {
	ID     string   // queue id; Submit assigns one when empty
	From   string   // envelope sender; the DSN goes there. "" (null reverse-path): no DSN
	To     []string // envelope recipients, all in Domain
	Domain string   // recipient domain (next hop)
	Data   []byte   // the RFC 5322 message (its header goes back in the DSN)
	// Submitted is the arrival time; Submit sets it from the queue clock when zero. Message age,
	// and so every schedule, counts from it.
	Submitted time.Time
}

// Attempter performs one delivery attempt of msg to msg.Domain: MX lookup, DANE decisions, SMTP
// to one MX host after another, and classifies the result. It must redo every DNS lookup (its
// caches may keep answers for their virtual TTL, read from the queue's clock) and must not
// retry on its own: the queue owns the schedule. It should return promptly when ctx ends.
type Attempter interface {
	Attempt(ctx context.Context, msg *Message) Outcome
}

// AttempterFunc adapts a function to Attempter.
type AttempterFunc func(ctx context.Context, msg *Message) Outcome

// Attempt calls f.
func (f AttempterFunc) Attempt(ctx context.Context, msg *Message) Outcome { return f(ctx, msg) }

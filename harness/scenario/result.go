package scenario

import "time"

// Observed is one attempt as it happened.
type Observed struct {
	N      int           `json:"n"`
	Age    time.Duration `json:"age_ns"`
	At     string        `json:"at"` // FormatAge(Age)
	Status string        `json:"status"`
	TLS    string        `json:"tls,omitempty"`
	Result string        `json:"result,omitempty"`
	Host   string        `json:"host,omitempty"`
	Detail string        `json:"detail,omitempty"`
	// Matched is the TLSA record that authenticated the server ("3 1 1 <hex>"); MatchedAs
	// names it as scenarios do ("3 1 1 current", "3 1 1 next") when it was computed.
	Matched   string `json:"matched,omitempty"`
	MatchedAs string `json:"matched_as,omitempty"`
	TLSInfo   string `json:"tls_info,omitempty"` // "TLS1.3 TLS_AES_128_GCM_SHA256"
}

// Label is the status, "delivered" for 2.0.0.
func (o Observed) Label() string {
	if o.Status == "2.0.0" {
		return "delivered"
	}
	return o.Status
}

// Verdicts.
const (
	Pass  = "pass"
	Fail  = "fail"  // ran, but not as expected
	Error = "error" // could not run
)

// Result is the run of one scenario.
type Result struct {
	Name        string        `json:"name"`
	File        string        `json:"file"`
	Profile     string        `json:"profile"`
	Description string        `json:"description,omitempty"`
	Verdict     string        `json:"verdict"`
	Expected    string        `json:"expected"` // one-line summary
	Observed    string        `json:"observed"` // one-line summary
	Diffs       []string      `json:"diffs,omitempty"`
	Err         string        `json:"error,omitempty"`
	Attempts    []Observed    `json:"attempts"`
	FinalState  string        `json:"final_state,omitempty"` // delivered, ndr, queued
	FinalCode   string        `json:"final_code,omitempty"`
	FinalAge    time.Duration `json:"final_age_ns,omitempty"`
	// Warmup is the warm-up message's delivery (Sender.Warmup).
	Warmup *Observed `json:"warmup,omitempty"`
	// NDR is what reached the sender's mailbox when the message was returned.
	NDR  *NDR          `json:"ndr,omitempty"`
	Wall time.Duration `json:"wall_ns"`
}

// NDR is the non-delivery report as the sender's mailbox received it.
type NDR struct {
	Delivered bool   `json:"delivered"`
	Status    string `json:"status,omitempty"` // the Status: field of the delivery-status part
	Action    string `json:"action,omitempty"`
	TLS       bool   `json:"tls"` // the mailbox received it over TLS
	Err       string `json:"error,omitempty"`
}

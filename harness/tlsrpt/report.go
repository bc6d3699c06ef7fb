// Package tlsrpt implements SMTP TLS Reporting (RFC 8460) for the harness's sender: aggregate
// reports per policy domain and UTC day built from recorded TLS sessions (§4), their gzip
// encoding and file name (§5.1, §5.2), the _smtp._tls TXT record (§3), and delivery by
// mail (§5.3) or HTTPS POST (§5.4).
package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"sort"
	"strings"
	"time"
)

// Result types (RFC 8460 §4.3) and the success marker of Attempt.Result.
const (
	Success = "success"

	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid"
	ResultDANERequired            = "dane-required"
	ResultSTSPolicyFetchError     = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        = "sts-webpki-invalid"
)

// Policy types (RFC 8460 §4.4).
const (
	PolicyTLSA          = "tlsa"
	PolicySTS           = "sts"
	PolicyNoPolicyFound = "no-policy-found"
)

// Attempt is one TLS session (one connection to one MX host) as recorded by the sender.
type Attempt struct {
	Time            time.Time
	PolicyDomain    string   // the recipient (policy) domain
	PolicyType      string   // PolicyTLSA, PolicySTS or PolicyNoPolicyFound
	PolicyString    []string // the TLSA records in presentation format ("3 1 1 ab12...")
	MXHost          string
	SendingMTAIP    string
	ReceivingIP     string
	ReceivingMXHelo string
	Result          string // Success or a result type
	// FailureDetail is the TLS error code or message: the report's failure-reason-code
	// (RFC 8460 §4.4, "a text field to include a TLS-related error code or error message").
	FailureDetail string
	// AdditionalInformation is an optional URI pointing to more about the failure
	// (additional-information, §4.4).
	AdditionalInformation string
}

// Report is the RFC 8460 §4.4 aggregate report.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// DateRange is the report's time range (RFC 3339 date-times, UTC).
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is one element of "policies".
type PolicyResult struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details,omitempty"`
}

// Policy describes the policy applied.
type Policy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts sessions.
type Summary struct {
	Successful int `json:"total-successful-session-count"`
	Failure    int `json:"total-failure-session-count"`
}

// FailureDetail aggregates failed sessions with identical details.
type FailureDetail struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo       string `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string `json:"receiving-ip,omitempty"`
	FailedSessionCount    int    `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information,omitempty"`
	FailureReasonCode     string `json:"failure-reason-code,omitempty"`
}

// Build aggregates attempts into one report per policy domain and UTC day. With a non-zero
// day only the attempts of that UTC day are reported; with a zero day every day present gets
// its reports. Within a report, sessions are grouped into policies by (policy type, policy
// strings, MX host), and failures by all failure-detail fields. Report ids are
// "<reportID>.<YYYY-MM-DD>.<policy-domain>" (unique per report). The date range is the whole
// UTC day: 00:00:00Z to 23:59:59Z (as in the RFC's example). Reports come sorted by day, then
// domain.
func Build(orgName, contact, reportID string, day time.Time, attempts []Attempt) []Report {
	type rkey struct {
		day    time.Time
		domain string
	}
	type pkey struct {
		typ, strs, mx string
	}
	type fkey struct{ result, sip, mx, helo, rip, info, code string }
	type pacc struct {
		policy   Policy
		sum      Summary
		failures map[fkey]int
		forder   []fkey
	}
	type racc struct {
		policies map[pkey]*pacc
		porder   []pkey
	}
	var want time.Time
	if !day.IsZero() {
		want = truncDay(day)
	}
	reports := map[rkey]*racc{}
	for _, a := range attempts {
		d := truncDay(a.Time)
		if !want.IsZero() && !d.Equal(want) {
			continue
		}
		domain := strings.ToLower(strings.TrimSuffix(a.PolicyDomain, "."))
		rk := rkey{d, domain}
		r := reports[rk]
		if r == nil {
			r = &racc{policies: map[pkey]*pacc{}}
			reports[rk] = r
		}
		typ := a.PolicyType
		if typ == "" {
			typ = PolicyNoPolicyFound
		}
		mx := strings.ToLower(strings.TrimSuffix(a.MXHost, "."))
		strs := slices.Clone(a.PolicyString)
		sort.Strings(strs)
		pk := pkey{typ, strings.Join(strs, "\n"), mx}
		p := r.policies[pk]
		if p == nil {
			p = &pacc{policy: Policy{Type: typ, String: strs, Domain: domain}, failures: map[fkey]int{}}
			if mx != "" {
				p.policy.MXHost = []string{mx}
			}
			r.policies[pk] = p
			r.porder = append(r.porder, pk)
		}
		if a.Result == Success || a.Result == "" {
			p.sum.Successful++
			continue
		}
		p.sum.Failure++
		fk := fkey{a.Result, a.SendingMTAIP, mx, a.ReceivingMXHelo, a.ReceivingIP, a.AdditionalInformation, a.FailureDetail}
		if _, ok := p.failures[fk]; !ok {
			p.forder = append(p.forder, fk)
		}
		p.failures[fk]++
	}
	keys := make([]rkey, 0, len(reports))
	for k := range reports {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if !keys[i].day.Equal(keys[j].day) {
			return keys[i].day.Before(keys[j].day)
		}
		return keys[i].domain < keys[j].domain
	})
	out := make([]Report, 0, len(keys))
	for _, k := range keys {
		r := reports[k]
		rep := Report{
			OrganizationName: orgName,
			DateRange:        DateRange{Start: k.day, End: k.day.Add(24*time.Hour - time.Second)},
			ContactInfo:      contact,
			ReportID:         fmt.Sprintf("%s.%s.%s", reportID, k.day.Format("2006-01-02"), k.domain),
			Policies:         []PolicyResult{},
		}
		for _, pk := range r.porder {
			p := r.policies[pk]
			pr := PolicyResult{Policy: p.policy, Summary: p.sum}
			for _, fk := range p.forder {
				pr.FailureDetails = append(pr.FailureDetails, FailureDetail{
					ResultType: fk.result, SendingMTAIP: fk.sip, ReceivingMXHostname: fk.mx,
					ReceivingMXHelo: fk.helo, ReceivingIP: fk.rip, FailedSessionCount: p.failures[fk],
					AdditionalInformation: fk.info, FailureReasonCode: fk.code,
				})
			}
			rep.Policies = append(rep.Policies, pr)
		}
		out = append(out, rep)
	}
	return out
}

func truncDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// PolicyDomain returns the policy domain of the report (that of its first policy).
func (r *Report) PolicyDomain() string {
	if len(r.Policies) == 0 {
		return ""
	}
	return r.Policies[0].Policy.Domain
}

// JSON returns the report as JSON.
func (r *Report) JSON() ([]byte, error) { return json.Marshal(r) }

// Encode returns the gzip-compressed JSON report (§5.2).
func Encode(r *Report) ([]byte, error) {
	j, err := r.JSON()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(j); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode reverses Encode (gzip or plain JSON).
func Decode(data []byte) (*Report, error) {
	var rd io.Reader = bytes.NewReader(data)
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		rd = zr
	}
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("tlsrpt: decode report: %w", err)
	}
	return &r, nil
}

// Sender returns the "sender" of §5.1: the domain of the contact-info address (a mailto: URI or
// an address), else the contact-info or organization name itself if it looks like a domain.
func (r *Report) Sender() string {
	c := strings.TrimPrefix(strings.TrimSpace(r.ContactInfo), "mailto:")
	if a, err := mail.ParseAddress(c); err == nil {
		c = a.Address
	}
	if at := strings.LastIndexByte(c, '@'); at >= 0 {
		return strings.ToLower(c[at+1:])
	}
	if isDomain(c) {
		return strings.ToLower(c)
	}
	return strings.ToLower(r.OrganizationName)
}

func isDomain(s string) bool {
	if s == "" || !strings.Contains(s, ".") {
		return false
	}
	for _, c := range s {
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Filename returns the §5.1 file name of the gzip-compressed report:
// sender!policy-domain!begin-timestamp!end-timestamp[!unique-id].json.gz, where unique-id
// (optional, ALPHA/DIGIT only; other characters are dropped) distinguishes parallel reports.
func (r *Report) Filename(uniqueID string) string {
	name := fmt.Sprintf("%s!%s!%d!%d", r.Sender(), r.PolicyDomain(),
		r.DateRange.Start.Unix(), r.DateRange.End.Unix())
	u := strings.Map(func(c rune) rune {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			return c
		}
		return -1
	}, uniqueID)
	if u != "" {
		name += "!" + u
	}
	return name + ".json.gz"
}

// Package scenario owns danelab's scenario files: the format, loading and validating them with
// errors that name the file and the field, the result of a run, and comparing it with what the
// file expects. Turning a scenario into a running world is harness/world's; running it is
// harness/runner's (in process) and harness/fixture's (for another MTA).
//
// # Format
//
// A scenario is one JSON file (JSON rather than YAML: the module's go.mod lists no YAML
// library directly). Unknown fields are errors. Example:
//
//	{
//	  "name": "retry-heals",
//	  "description": "TLSA SERVFAIL for the first two attempts, then fixed",
//	  "profile": "exchange",
//	  "dns": {
//	    "domain": "example.test",
//	    "mx": [{"host": "mx1", "personality": "self-signed", "tlsa": ["3 1 1"]}]
//	  },
//	  "faults": [{"mode": "servfail", "name": "_25._tcp.mx1.example.test", "type": "TLSA",
//	              "start": 0, "heal": 30}],
//	  "expect": [
//	    {"at": 0, "status": "4.7.324"},
//	    {"at": 15, "status": "4.7.324"},
//	    {"at": 30, "status": "delivered", "tls": "dane"}
//	  ],
//	  "final": {"state": "delivered", "at": 30}
//	}
//
// The fields are documented in harness/scenarios/README.md. In short: name, description,
// profile (exchange, postfix, rfc, exim) and profiles (other profiles' expect and final, run as
// variants); submit (when the message is submitted); sender (cache, warmup, dns_timeout); dns
// (domain, unsigned, mx hosts with personality, tlsa entries computed from the receiver's
// certificate or given, tlsa_owner, tlsa_ttl, renew; null_mx, records, zones); faults with start
// and heal; expect (at, status, tls, result, tlsa, repeat); final (state, code, at). Every time
// is scenario time: virtual minutes (or a duration string) since the scenario's start.
package scenario

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// Scenario is one scenario file.
type Scenario struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Profile     string    `json:"profile,omitempty"`
	Submit      *Minutes  `json:"submit,omitempty"`
	Sender      Sender    `json:"sender"`
	DNS         DNS       `json:"dns"`
	Faults      []Fault   `json:"faults,omitempty"`
	Expect      []Attempt `json:"expect"`
	Final       Final     `json:"final"`
	// Profiles holds the expectations of other sender profiles for the same world, where they
	// differ from the main profile's; each is run as a scenario of its own.
	Profiles map[string]*Expectation `json:"profiles,omitempty"`

	File string `json:"-"` // where it was loaded from
}

// Sender tunes the sender of a scenario.
type Sender struct {
	// Cache keeps DNS answers for their TTL on the virtual clock (default: every attempt asks
	// the lab afresh). Signatures are then judged at virtual time too.
	Cache bool `json:"cache,omitempty"`
	// Warmup delivers one message at time 0, before the scenario's message, so that caches
	// hold the world as it was then. It must be delivered.
	Warmup bool `json:"warmup,omitempty"`
	// DNSTimeout bounds each DNS query (default 2s); short for dropped-query scenarios.
	DNSTimeout fault.Duration `json:"dns_timeout,omitempty"`
}

// Expectation is what one profile is expected to do.
type Expectation struct {
	Expect []Attempt `json:"expect"`
	Final  Final     `json:"final"`
}

// Renewal is a certificate renewal of a receiver during the scenario.
type Renewal struct {
	At *Minutes `json:"at"`
	// Key is "new" (a key rollover, the default) or "same" (a re-issue with the same key).
	Key string `json:"key,omitempty"`
	// Staged publishes the renewed certificate's records (for every computed usage 3 entry)
	// from the start, beside the current ones: the rollover done right.
	Staged bool `json:"staged,omitempty"`
	// Publish says when the zone follows an unstaged renewal: "renewal" (the default: the
	// computed records are replaced by the new certificate's when it is deployed) or "never"
	// (the records are left stale).
	Publish string `json:"publish,omitempty"`
}

// Renewal keys and publish modes.
const (
	KeyNew          = "new"
	KeySame         = "same"
	PublishRenewal  = "renewal"
	PublishNever    = "never"
	MailboxDomain   = "sender.test" // the sender's own domain: its mailbox receives the NDRs
	MailboxSender   = "alice@" + MailboxDomain
	mailboxReserved = "is the sender's own domain (its mailbox gets the NDRs): choose another"
)

// DNS is the lab world of a scenario.
type DNS struct {
	Domain   string `json:"domain,omitempty"`
	Unsigned bool   `json:"unsigned,omitempty"`
	// Denial is the domain's denial of existence, as danezone's denial directive spells it:
	// nsec (default), minimal, nsec3 [iterations N] [salt HEX] [optout], nsec3-narrow, compact.
	Denial  string   `json:"denial,omitempty"`
	MX      []Host   `json:"mx,omitempty"`
	NullMX  bool     `json:"null_mx,omitempty"`
	Records []string `json:"records,omitempty"`
	Zones   []Zone   `json:"zones,omitempty"`
}

// Host is one MX host and its receiver.
type Host struct {
	Host        string      `json:"host"`
	Zone        string      `json:"zone,omitempty"`
	Preference  int         `json:"preference,omitempty"`
	Personality string      `json:"personality,omitempty"`
	TLSA        []TLSAEntry `json:"tlsa,omitempty"`
	TLSAOwner   string      `json:"tlsa_owner,omitempty"`
	NoReceiver  bool        `json:"no_receiver,omitempty"`
	NoMX        bool        `json:"no_mx,omitempty"`
	TLSATTL     uint32      `json:"tlsa_ttl,omitempty"`
	Renew       *Renewal    `json:"renew,omitempty"`
}

// Zone is an extra lab domain.
type Zone struct {
	Name     string   `json:"name"`
	Unsigned bool     `json:"unsigned,omitempty"`
	Denial   string   `json:"denial,omitempty"` // as DNS.Denial
	Records  []string `json:"records,omitempty"`
}

// Fault is a danezone fault in place between two virtual times.
type Fault struct {
	Mode  string         `json:"mode"`
	Name  string         `json:"name"`
	Type  string         `json:"type,omitempty"`
	Zone  string         `json:"zone,omitempty"`
	Count int            `json:"count,omitempty"`
	Share float64        `json:"share,omitempty"`
	Delay fault.Duration `json:"delay,omitempty"`
	// Iterations is the NSEC3 iteration count of the nsec3-iterations mode.
	Iterations int      `json:"iterations,omitempty"`
	Start      *Minutes `json:"start,omitempty"`
	Heal       *Minutes `json:"heal,omitempty"`
}

// Spec returns the danezone fault spec.
func (f Fault) Spec() fault.Spec {
	return fault.Spec{Mode: fault.Mode(f.Mode), Name: f.Name, Type: f.Type, Zone: f.Zone,
		Count: f.Count, Share: f.Share, Delay: f.Delay, Iterations: f.Iterations}
}

// Active reports whether the fault is in place at virtual age t.
func (f Fault) Active(t time.Duration) bool {
	if f.Start != nil && t < time.Duration(*f.Start) {
		return false
	}
	return f.Heal == nil || t < time.Duration(*f.Heal)
}

// Attempt is one expected attempt.
type Attempt struct {
	At     *Minutes `json:"at,omitempty"`
	Status string   `json:"status"`
	TLS    string   `json:"tls,omitempty"`
	Result string   `json:"result,omitempty"`
	TLSA   string   `json:"tlsa,omitempty"`
	Host   string   `json:"host,omitempty"` // the MX host tried last: a dns.mx[].host label
	Repeat bool     `json:"repeat,omitempty"`
}

// Final is the expected end of the message.
type Final struct {
	State string   `json:"state"`
	Code  string   `json:"code,omitempty"`
	At    *Minutes `json:"at,omitempty"`
}

// Final states.
const (
	StateDelivered = "delivered"
	StateNDR       = "ndr"
)

// Minutes is a virtual time since submission. In JSON: a number of minutes or a duration
// string ("90s", "66m40s", "2d").
type Minutes time.Duration

// MaxTime bounds every scenario time: far past the longest queue lifetime (Postfix, 5 days).
const MaxTime = 30 * 24 * time.Hour

// UnmarshalJSON reads a number of minutes or a duration string.
func (m *Minutes) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	var d time.Duration
	if strings.HasPrefix(s, `"`) {
		var err error
		if d, err = duration.Parse(strings.Trim(s, `"`)); err != nil {
			return fmt.Errorf("%s is not a duration (like \"15m\" or \"66m40s\"): %v", s, err)
		}
	} else {
		var f float64
		if _, err := fmt.Sscan(s, &f); err != nil || f < 0 || math.IsNaN(f) {
			return fmt.Errorf("%s is not a number of minutes or a duration string", s)
		}
		if f > MaxTime.Minutes() {
			return fmt.Errorf("%s minutes is later than %s", s, FormatAge(MaxTime))
		}
		d = time.Duration(f * float64(time.Minute))
	}
	if d > MaxTime {
		return fmt.Errorf("%s is later than %s", s, FormatAge(MaxTime))
	}
	*m = Minutes(d)
	return nil
}

// MarshalJSON writes whole minutes as a number, anything else as a duration string.
func (m Minutes) MarshalJSON() ([]byte, error) {
	d := time.Duration(m)
	if d%time.Minute == 0 {
		return []byte(fmt.Sprint(int64(d / time.Minute))), nil
	}
	return []byte(`"` + d.String() + `"`), nil
}

// String formats the time as minutes ("15m", "66m40s").
func (m Minutes) String() string { return FormatAge(time.Duration(m)) }

// FormatAge formats a virtual age compactly: "0", "15m", "24h", "23h45m", "1h6m40s".
func FormatAge(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d > time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// FieldError is a problem with one field of a scenario file.
type FieldError struct {
	File  string
	Field string // "expect[1].status"; "" for the whole file
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.File + ": " + e.Msg
	}
	return e.File + ": " + e.Field + ": " + e.Msg
}

// Load reads and validates one scenario file.
func Load(file string) (*Scenario, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, b)
}

// Parse decodes and validates a scenario; file names it in errors.
func Parse(file string, b []byte) (*Scenario, error) {
	s := &Scenario{}
	if err := decode(file, b, s); err != nil {
		return nil, err
	}
	s.File = file
	if err := s.validate(); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadDir loads every *.json file of dir, sorted by name. It returns every file's errors
// together (errors.Join), and fails on two scenarios with one name.
func LoadDir(dir string) ([]*Scenario, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no scenario files (*.json)", dir)
	}
	sort.Strings(files)
	var out []*Scenario
	var errs []error
	seen := map[string]string{}
	for _, f := range files {
		s, err := Load(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[strings.ToLower(s.Name)]; dup {
			errs = append(errs, &FieldError{f, "name", fmt.Sprintf("%q is also the name of %s (names are compared without case)", s.Name, prev)})
			continue
		}
		seen[strings.ToLower(s.Name)] = f
		out = append(out, s.Variants()...)
	}
	return out, errors.Join(errs...)
}

// Variants returns the scenario once per profile with expectations: itself for its main
// profile, then one copy per entry of Profiles (sorted by name), each without Profiles.
func (s *Scenario) Variants() []*Scenario {
	main := *s
	main.Profiles = nil
	out := []*Scenario{&main}
	names := make([]string, 0, len(s.Profiles))
	for p := range s.Profiles {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		v := main
		v.Profile, v.Expect, v.Final = p, s.Profiles[p].Expect, s.Profiles[p].Final
		out = append(out, &v)
	}
	return out
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Result classes an expectation may name (queue.Outcome.Result).
var resultClasses = []string{
	queue.ResultSTARTTLSNotSupported, queue.ResultCertificateHostMismatch, queue.ResultCertificateExpired,
	queue.ResultCertificateNotTrusted, queue.ResultValidationFailure, queue.ResultTLSAInvalid,
	queue.ResultDNSSECInvalid, queue.ResultDANERequired, queue.ResultDNSFailure, queue.ResultConnect,
	queue.ResultNullMX, queue.ResultSMTPReply,
}

// receiverCodes are the codes the rejecting receiver personalities answer with.
var receiverCodes = []string{"4.2.1", "5.1.1", "4.3.0", "5.6.0"}

// KnownCodes returns the status codes profile can give: its code table (4.x.x and 5.x.x),
// the receivers' reply codes, and 2.0.0.
func KnownCodes(profile string) map[string]bool {
	out := map[string]bool{"2.0.0": true}
	for _, r := range resultClasses {
		if e, ok := queue.Lookup(profile, r); ok {
			out[e.Code] = true
			out["5"+e.Code[1:]] = true
		}
	}
	for _, c := range receiverCodes {
		out[c] = true
	}
	return out
}

var tlsLevels = []string{queue.TLSDane, queue.TLSEncrypt, queue.TLSMay, queue.TLSNone}

func (s *Scenario) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{s.File, field, fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		bad("name", "is required")
	} else if !nameRE.MatchString(s.Name) || strings.Contains(s.Name, "..") || strings.HasSuffix(s.Name, ".") {
		bad("name", "%q: use letters, digits, '-', '_' and single dots between them", s.Name)
	} else {
		for _, l := range strings.Split(s.Name, ".") {
			if len(l) > 63 {
				bad("name", "%q: a part between dots is longer than 63 characters (it becomes a DNS label)", s.Name)
				break
			}
		}
	}
	if s.Profile == "" {
		s.Profile = "exchange"
	}
	if _, err := queue.ProfileByName(s.Profile); err != nil {
		bad("profile", "%q is not a profile: %s", s.Profile, strings.Join(queue.ProfileNames, ", "))
	}
	// DNS.
	if s.DNS.Domain == "" {
		s.DNS.Domain = "example.test"
	}
	s.DNS.Domain = strings.TrimSuffix(strings.ToLower(s.DNS.Domain), ".")
	if _, ok := dns.IsDomainName(s.DNS.Domain); !ok || !strings.HasSuffix(s.DNS.Domain, ".test") {
		bad("dns.domain", "%q is not a domain under test.", s.DNS.Domain)
	} else if underMailbox(s.DNS.Domain) {
		bad("dns.domain", "%q %s", s.DNS.Domain, mailboxReserved)
	}
	zones := map[string]bool{}
	for i, z := range s.DNS.Zones {
		f := fmt.Sprintf("dns.zones[%d]", i)
		n := strings.TrimSuffix(strings.ToLower(z.Name), ".")
		if _, ok := dns.IsDomainName(n); !ok || n == "" || !strings.HasSuffix(n, ".test") {
			bad(f+".name", "%q is not a domain under test.", z.Name)
		}
		if n == s.DNS.Domain || zones[n] {
			bad(f+".name", "%q is given twice", z.Name)
		}
		if underMailbox(n) {
			bad(f+".name", "%q %s", z.Name, mailboxReserved)
		}
		zones[n] = true
		s.DNS.Zones[i].Name = n
		for j, r := range z.Records {
			if err := checkRecord(r, n); err != nil {
				bad(fmt.Sprintf("%s.records[%d]", f, j), "%v", err)
			}
		}
	}
	labels := map[string]bool{}
	for i, h := range s.DNS.MX {
		f := fmt.Sprintf("dns.mx[%d]", i)
		if h.Host == "" {
			bad(f+".host", "is required")
		} else if _, ok := dns.IsDomainName(h.Host); !ok || strings.HasSuffix(h.Host, ".") {
			bad(f+".host", "%q is not a label relative to its zone (\"mx1\")", h.Host)
		}
		if h.Zone != "" {
			h.Zone = strings.TrimSuffix(strings.ToLower(h.Zone), ".")
			s.DNS.MX[i].Zone = h.Zone
			if !zones[h.Zone] && h.Zone != s.DNS.Domain {
				bad(f+".zone", "%q is not the domain nor one of dns.zones", h.Zone)
			}
		}
		key := h.Host + "." + h.Zone
		if labels[key] {
			bad(f+".host", "%q is given twice", h.Host)
		}
		labels[key] = true
		if h.Personality == "" {
			s.DNS.MX[i].Personality = string(receiver.SelfSigned)
		} else if !knownPersonality(h.Personality) {
			names := make([]string, len(receiver.Personalities))
			for k, p := range receiver.Personalities {
				names[k] = string(p)
			}
			bad(f+".personality", "%q is not a personality: %s", h.Personality, strings.Join(names, ", "))
		}
		if o := h.TLSAOwner; o != "" {
			if _, ok := dns.IsDomainName(o); !ok || strings.ContainsAny(o, " \t") {
				bad(f+".tlsa_owner", "%q is not a domain name", o)
			} else if strings.HasSuffix(o, ".") && !s.inZones(o) {
				bad(f+".tlsa_owner", "%q is not in dns.domain or dns.zones", o)
			}
		}
		if h.Preference < 0 || h.Preference > 65535 {
			bad(f+".preference", "%d is not 0..65535", h.Preference)
		}
		for j, t := range h.TLSA {
			switch {
			case t.Kind != Computed:
			case h.NoReceiver:
				bad(fmt.Sprintf("%s.tlsa[%d]", f, j), "%q is computed from the receiver's certificate, but no_receiver is set", t)
			case t.Usage == 2 && knownPersonality(s.DNS.MX[i].Personality) && !receiver.Personality(s.DNS.MX[i].Personality).CAIssued():
				bad(fmt.Sprintf("%s.tlsa[%d]", f, j), "%q names the issuing CA, but the %s personality has none: use a CA-issued one (ca-chain, ...)", t, s.DNS.MX[i].Personality)
			}
		}
		if r := h.Renew; r != nil {
			switch {
			case h.NoReceiver:
				bad(f+".renew", "there is no receiver to renew (no_receiver)")
			case r.At == nil:
				bad(f+".renew.at", "is required: when the new certificate is deployed")
			}
			switch r.Key {
			case "":
				s.DNS.MX[i].Renew.Key = KeyNew
			case KeyNew, KeySame:
			default:
				bad(f+".renew.key", "%q: want new or same", r.Key)
			}
			switch r.Publish {
			case "":
				s.DNS.MX[i].Renew.Publish = PublishRenewal
			case PublishRenewal, PublishNever:
			default:
				bad(f+".renew.publish", "%q: want renewal or never", r.Publish)
			}
			if r.Staged && r.Publish == PublishNever {
				bad(f+".renew.publish", "never, but staged publishes the new records from the start")
			}
			if r.Staged && r.Key == KeySame {
				bad(f+".renew.staged", "a renewal with the same key has nothing new to stage for \"3 1 x\" records")
			}
			if r.Staged && !HasComputed(h.TLSA, 3) {
				bad(f+".renew.staged", "no computed usage 3 record (\"3 1 1\") to stage")
			}
		}
	}
	for j, r := range s.DNS.Records {
		if err := checkRecord(r, s.DNS.Domain); err != nil {
			bad(fmt.Sprintf("dns.records[%d]", j), "%v", err)
		}
	}
	if err := checkDenial(s.DNS.Denial, s.DNS.Unsigned); err != nil {
		bad("dns.denial", "%v", err)
	}
	for j, z := range s.DNS.Zones {
		if err := checkDenial(z.Denial, z.Unsigned); err != nil {
			bad(fmt.Sprintf("dns.zones[%d].denial", j), "%v", err)
		}
	}
	if len(s.DNS.MX) == 0 && !s.DNS.NullMX && !hasMX(s.DNS.Records) {
		bad("dns.mx", "no MX hosts: give dns.mx, dns.null_mx or MX records in dns.records")
	}
	// Faults.
	for i, ft := range s.Faults {
		f := fmt.Sprintf("faults[%d]", i)
		if _, err := fault.ParseMode(ft.Mode); err != nil {
			bad(f+".mode", "%v", err)
		}
		if ft.Name == "" {
			bad(f+".name", "is required (an owner name, or a pattern with *)")
		} else if !s.inZones(strings.TrimLeft(ft.Name, "*")) {
			bad(f+".name", "%q is not in dns.domain or dns.zones", ft.Name)
		}
		if ft.Type != "" {
			if _, ok := dns.StringToType[strings.ToUpper(ft.Type)]; !ok {
				bad(f+".type", "%q is not a record type", ft.Type)
			}
		}
		if ft.Zone != "" && !s.isZone(ft.Zone) {
			bad(f+".zone", "%q is not dns.domain nor one of dns.zones", ft.Zone)
		}
		if ft.Start != nil && ft.Heal != nil && *ft.Heal <= *ft.Start {
			bad(f+".heal", "%s is not after start %s", *ft.Heal, *ft.Start)
		}
	}
	if s.Sender.DNSTimeout < 0 {
		bad("sender.dns_timeout", "must not be negative")
	}
	if s.Sender.Warmup && (s.Submit == nil || *s.Submit == 0) {
		bad("submit", "the warm-up message is delivered at 0: submit the scenario's message later (submit > 0)")
	}
	if s.Sender.Warmup && !s.Sender.Cache {
		bad("sender.warmup", "warms nothing without sender.cache")
	}
	// Expectations: the main profile's, then the others'.
	s.validateExpect("", s.Profile, s.Expect, s.Final, bad)
	for p, e := range s.Profiles {
		f := "profiles." + p
		if _, err := queue.ProfileByName(p); err != nil {
			bad(f, "%q is not a profile: %s", p, strings.Join(queue.ProfileNames, ", "))
			continue
		}
		if p == s.Profile {
			bad(f, "is the main profile: its expectations are expect and final")
			continue
		}
		if e == nil {
			bad(f, "is empty: give expect and final")
			continue
		}
		s.validateExpect(f+".", p, e.Expect, e.Final, bad)
	}
	return errors.Join(errs...)
}

// validateExpect checks the expectations of one profile; prefix names them in errors.
func (s *Scenario) validateExpect(prefix, profile string, expect []Attempt, final Final, bad func(string, string, ...any)) {
	known := KnownCodes(profile)
	if len(expect) == 0 {
		bad(prefix+"expect", "is required: the attempts the %s profile makes", profile)
	}
	var last time.Duration = -1
	for i, a := range expect {
		f := fmt.Sprintf("%sexpect[%d]", prefix, i)
		switch {
		case a.Status == "":
			bad(f+".status", "is required: a status code like \"4.7.324\" or \"delivered\"")
		case a.Status == "delivered" || a.Status == "2.0.0":
			expect[i].Status = "delivered"
			if i != len(expect)-1 {
				bad(f+".status", "delivered must be the last attempt")
			}
		case !known[a.Status]:
			bad(f+".status", "%q is not a known code of the %s profile", a.Status, profile)
		}
		if a.TLS != "" && !contains(tlsLevels, a.TLS) {
			bad(f+".tls", "%q is not a TLS level: %s", a.TLS, strings.Join(tlsLevels, ", "))
		}
		if a.Result != "" && !contains(resultClasses, a.Result) {
			bad(f+".result", "%q is not a result: %s", a.Result, strings.Join(resultClasses, ", "))
		}
		if a.TLSA != "" {
			if err := checkMatched(a.TLSA); err != nil {
				bad(f+".tlsa", "%v", err)
			}
		}
		if a.Host != "" && !s.hasHost(a.Host) {
			bad(f+".host", "%q is not one of dns.mx[].host", a.Host)
		}
		if a.Repeat && i != len(expect)-1 {
			bad(f+".repeat", "only the last attempt may repeat")
		}
		if a.At != nil {
			switch {
			case s.Submit != nil && *a.At < *s.Submit:
				bad(f+".at", "%s is before the submission at %s", *a.At, *s.Submit)
			case time.Duration(*a.At) <= last:
				bad(f+".at", "%s is not after the previous attempt's %s", *a.At, FormatAge(last))
			}
			last = time.Duration(*a.At)
		}
	}
	switch final.State {
	case "":
		bad(prefix+"final.state", "is required: delivered or ndr")
	case StateDelivered:
		if final.Code != "" && final.Code != "2.0.0" {
			bad(prefix+"final.code", "%q: a delivered message has no NDR code", final.Code)
		}
		if n := len(expect); n > 0 && expect[n-1].Status != "delivered" {
			bad(prefix+"final.state", "delivered, but the last expected attempt is %s", expect[n-1].Status)
		}
	case StateNDR:
		if n := len(expect); n > 0 && expect[n-1].Status == "delivered" {
			bad(prefix+"final.state", "ndr, but the last expected attempt is delivered")
		}
		if final.Code == "" {
			bad(prefix+"final.code", "is required for an NDR")
		} else if !known[final.Code] {
			bad(prefix+"final.code", "%q is not a known code of the %s profile", final.Code, profile)
		}
	default:
		bad(prefix+"final.state", "%q: want delivered or ndr", final.State)
	}
}

// zonesOf are the scenario's zones, lowercase, without the final dot.
func (s *Scenario) zonesOf() []string {
	out := []string{s.DNS.Domain}
	for _, z := range s.DNS.Zones {
		out = append(out, z.Name)
	}
	return out
}

// inZones reports whether name (a glob's tail is fine) lies in one of the scenario's zones.
func (s *Scenario) inZones(name string) bool {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	for _, z := range s.zonesOf() {
		if n == z || strings.HasSuffix(n, "."+z) || strings.HasSuffix(n, z) && strings.HasPrefix(name, "*") {
			return true
		}
	}
	return false
}

func (s *Scenario) isZone(name string) bool {
	n := strings.TrimSuffix(strings.ToLower(name), ".")
	for _, z := range s.zonesOf() {
		if n == z {
			return true
		}
	}
	return false
}

func (s *Scenario) hasHost(label string) bool {
	for _, h := range s.DNS.MX {
		if strings.EqualFold(h.Host, label) {
			return true
		}
	}
	return false
}

// checkMatched checks an expected matched TLSA record: "U S M" (any record with these
// parameters), "U S M current" or "U S M next" (computed from the certificate served first,
// or from its renewal), or "U S M <hex>".
func checkMatched(m string) error {
	f := strings.Fields(m)
	if len(f) != 3 && len(f) != 4 {
		return fmt.Errorf("%q: want \"U S M\", \"U S M current\", \"U S M next\" or \"U S M <hex>\"", m)
	}
	if _, err := tlsa.ParseParam(strings.Join(f[:3], " ")); err != nil {
		return fmt.Errorf("%q: %v", m, err)
	}
	if len(f) == 4 && f[3] != "current" && f[3] != "next" {
		if _, err := hex.DecodeString(f[3]); err != nil {
			return fmt.Errorf("%q: %q is not current, next or hex", m, f[3])
		}
	}
	return nil
}

func knownPersonality(p string) bool {
	for _, k := range receiver.Personalities {
		if string(k) == p {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func underMailbox(name string) bool {
	return name == MailboxDomain || strings.HasSuffix(name, "."+MailboxDomain)
}

func hasMX(records []string) bool {
	for _, r := range records {
		for _, f := range strings.Fields(r) {
			if strings.EqualFold(f, "MX") {
				return true
			}
		}
	}
	return false
}

// checkRecord parses a record in zone file syntax relative to origin.
func checkRecord(r, origin string) error {
	zp := dns.NewZoneParser(strings.NewReader(r), dns.Fqdn(origin), "")
	zp.SetDefaultTTL(60) // the lab's zone files start with $TTL: a record may omit its TTL
	if _, ok := zp.Next(); !ok {
		if err := zp.Err(); err != nil {
			return fmt.Errorf("%q: %v", r, err)
		}
		return fmt.Errorf("%q: no record", r)
	}
	return nil
}

// checkDenial checks a denial mode with danezone's own parser.
func checkDenial(mode string, unsigned bool) error {
	if mode == "" {
		return nil
	}
	if unsigned {
		return fmt.Errorf("an unsigned zone has no denial of existence")
	}
	_, rest, err := denial.ParseMode(strings.Fields(mode))
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("%q: zones are not named here", strings.Join(rest, " "))
	}
	return err
}

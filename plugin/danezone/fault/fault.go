// Package fault owns danezone's fault injection: fault specifications, their scope (zone,
// owner name or pattern, type) and limits (first N queries, time window, share), and the
// registry that matches queries against them. The transformations themselves live where the
// data is: response faults in the handler, data faults as alternate zone snapshots.
package fault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/miekg/dns"
)

// Mode is what a fault does.
type Mode string

// The modes. Transport and rcode faults replace the response; DNSSEC faults damage its
// signatures or proofs; data faults serve a changed, correctly signed zone.
const (
	ServFail      Mode = "servfail"
	Refused       Mode = "refused"
	NotImp        Mode = "notimp"
	FormErr       Mode = "formerr"
	Drop          Mode = "drop"
	Delay         Mode = "delay"
	Truncate      Mode = "truncate"
	TruncateNoTCP Mode = "truncate-no-tcp"
	ExpiredSig    Mode = "expired-sig"
	FutureSig     Mode = "future-sig"
	BadSig        Mode = "bad-sig"
	NoSig         Mode = "no-sig"
	WrongKey      Mode = "wrong-key"
	DSMismatch    Mode = "ds-mismatch"
	NoDenial      Mode = "no-denial"
	BadDenial     Mode = "bad-denial"
	Insecure      Mode = "insecure"
	TLSAMismatch  Mode = "tlsa-mismatch"
	TLSAUnusable  Mode = "tlsa-unusable"
	TLSAAbsent    Mode = "tlsa-absent"
)

// Modes lists every mode with what it does.
var Modes = []struct {
	Mode Mode
	Does string
}{
	{ServFail, "answer SERVFAIL"},
	{Refused, "answer REFUSED"},
	{NotImp, "answer NOTIMP (what some large hosting providers answer to TLSA)"},
	{FormErr, "answer FORMERR"},
	{Drop, "no answer at all: the client times out"},
	{Delay, "answer after a delay (delay DURATION)"},
	{Truncate, "TC=1 with no records over UDP; TCP answers"},
	{TruncateNoTCP, "TC=1 over UDP, and the TCP connection is closed unanswered"},
	{ExpiredSig, "RRSIGs re-made with an expiration in the past"},
	{FutureSig, "RRSIGs re-made with an inception in the future"},
	{BadSig, "RRSIG signature bytes corrupted"},
	{NoSig, "RRSIGs stripped"},
	{WrongKey, "RRSIGs made by a key that is not in the DNSKEY set"},
	{DSMismatch, "the parent serves a DS that matches no key of the child (name the child zone)"},
	{NoDenial, "NXDOMAIN/NODATA without NSEC records"},
	{BadDenial, "NSEC records that do not cover or match the name (validly signed)"},
	{Insecure, "the parent stops serving the DS: the child becomes provably unsigned (name the child zone)"},
	{TLSAMismatch, "TLSA data replaced by a digest that matches nothing (validly signed)"},
	{TLSAUnusable, "TLSA records turned into usage 0/1 (PKIX) records only (validly signed)"},
	{TLSAAbsent, "TLSA RRset removed, with a valid denial"},
}

// ParseMode checks a mode name; the error lists the valid ones.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m.Mode) == strings.ToLower(s) {
			return m.Mode, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m.Mode)
	}
	return "", fmt.Errorf("unknown fault mode %q: valid modes are %s", s, strings.Join(names, ", "))
}

// Data reports whether the mode changes zone data (served from an alternate snapshot).
func (m Mode) Data() bool {
	switch m {
	case DSMismatch, Insecure, TLSAMismatch, TLSAUnusable, TLSAAbsent:
		return true
	}
	return false
}

// DataType returns the type a data mode changes: DS or TLSA.
func (m Mode) DataType() uint16 {
	if m == DSMismatch || m == Insecure {
		return dns.TypeDS
	}
	return dns.TypeTLSA
}

// Duration is a time.Duration that reads and writes as "90s", "15m", "2d".
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string ("90s", "2d") or a number of seconds. Negative,
// non-finite and out-of-range values are refused (duration.Parse, duration.Seconds); how long
// a fault's window or delay may be is checked when the fault is added.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v time.Duration
	var err error
	if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, `"`) {
		var str string
		if err = json.Unmarshal(b, &str); err == nil {
			v, err = duration.Parse(str)
		}
	} else if json.Valid(b) && s != "" && (s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		v, err = duration.Seconds(s)
	} else {
		err = fmt.Errorf("duration must be a string like \"90s\" or a number of seconds, not %s", s)
	}
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// The longest fault windows and delays. A window ("after", "for") of more than a year
// belongs to no lab or test run; a delay beyond a minute is past every DNS client's timeout
// (the drop mode is for that), and would hold a goroutine per query.
const (
	MaxWindow = 365 * duration.Day
	MaxDelay  = time.Minute
)

// Spec describes a fault, as written in a Corefile or sent to the control API.
type Spec struct {
	Mode Mode   `json:"mode"`
	Zone string `json:"zone,omitempty"` // limit to this zone; empty: any zone served
	// Name is an owner name, or a pattern in which "*" stands for any run of characters
	// (dots included): "*.example.test" is every name below example.test.
	Name string `json:"name"`
	Type string `json:"type,omitempty"` // a type, or empty/ANY for every type
	// Count limits the fault to the first Count queries it matches.
	Count int `json:"count,omitempty"`
	// Share applies the fault to this fraction (0..1] of the queries it matches.
	Share float64 `json:"share,omitempty"`
	// After and For make a window relative to the fault's creation: active from created+After
	// for For. From and Until are absolute bounds.
	After Duration   `json:"after,omitempty"`
	For   Duration   `json:"for,omitempty"`
	From  *time.Time `json:"from,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// Delay is the wait of the delay mode.
	Delay Duration `json:"delay,omitempty"`
}

// UnmarshalJSON reads a spec strictly (unknown fields are errors), and names the field of a
// duration that cannot be read: "for: invalid duration ...".
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec // the same fields, without this method
	var v struct {
		plain
		After json.RawMessage `json:"after"`
		For   json.RawMessage `json:"for"`
		Delay json.RawMessage `json:"delay"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) { // "Go struct field Spec.count", not ".plain.count"
			te.Struct, te.Field = "Spec", strings.TrimPrefix(te.Field, "plain.")
		}
		return err
	}
	out := Spec(v.plain)
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		to   *Duration
	}{{"after", v.After, &out.After}, {"for", v.For, &out.For}, {"delay", v.Delay, &out.Delay}} {
		if f.raw == nil {
			continue
		}
		if err := f.to.UnmarshalJSON(f.raw); err != nil {
			return fmt.Errorf("%s: %v", f.name, err)
		}
	}
	*s = out
	return nil
}

// Fault is a registered fault.
type Fault struct {
	ID      string    `json:"id"`
	Spec    Spec      `json:"spec"`
	Created time.Time `json:"created"`

	qtype       uint16
	zone        string
	name        string // canonical name or pattern
	pattern     bool
	from, until time.Time

	matched atomic.Int64 // queries in scope (name, type, window)
	applied atomic.Int64
}

// View is the state of a fault for the API.
type View struct {
	*Fault
	Matched int64 `json:"matched"`
	Applied int64 `json:"applied"`
	Active  bool  `json:"active"`
}

// Type returns the type the fault is limited to, 0 for any.
func (f *Fault) Type() uint16 { return f.qtype }

// Mode returns the fault's mode.
func (f *Fault) Mode() Mode { return f.Spec.Mode }

// MatchName reports whether name (any case) is in the fault's scope.
func (f *Fault) MatchName(name string) bool {
	name = strings.ToLower(dns.Fqdn(name))
	if !f.pattern {
		return name == f.name
	}
	return glob(f.name, name)
}

// Zone returns the zone the fault is limited to, "" for any.
func (f *Fault) Zone() string { return f.zone }

// glob matches s against a pattern in which '*' stands for any run of characters.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			if c := pattern[px]; c == '*' {
				nextPx, nextSx = px, sx+1
				px++
				continue
			} else if sx < len(s) && s[sx] == c {
				px++
				sx++
				continue
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// check validates spec and returns the fault it describes.
func (s Spec) compile(now time.Time) (*Fault, error) {
	f := &Fault{Spec: s, Created: now}
	if s.Mode == "" {
		return nil, fmt.Errorf("mode is required")
	}
	m, err := ParseMode(string(s.Mode))
	if err != nil {
		return nil, err
	}
	f.Spec.Mode = m
	if s.Name == "" {
		return nil, fmt.Errorf("name is required (an owner name, or a pattern with *)")
	}
	f.name = strings.ToLower(dns.Fqdn(s.Name))
	f.pattern = strings.Contains(f.name, "*")
	if !f.pattern {
		if _, ok := dns.IsDomainName(f.name); !ok {
			return nil, fmt.Errorf("invalid name %q", s.Name)
		}
	}
	if s.Zone != "" {
		if _, ok := dns.IsDomainName(s.Zone); !ok {
			return nil, fmt.Errorf("invalid zone %q", s.Zone)
		}
		f.zone = strings.ToLower(dns.Fqdn(s.Zone))
	}
	if s.Type != "" && !strings.EqualFold(s.Type, "ANY") {
		t, ok := dns.StringToType[strings.ToUpper(s.Type)]
		if !ok {
			return nil, fmt.Errorf("unknown type %q", s.Type)
		}
		f.qtype = t
	}
	if m.Data() && s.Type == "" {
		// A data fault counts the questions for the data it changes; the other answers that
		// carry that data (referrals with the DS) are served changed too, uncounted (DataFor).
		f.qtype = m.DataType()
	}
	switch {
	case s.Count < 0:
		return nil, fmt.Errorf("count must not be negative")
	case s.Share < 0 || s.Share > 1:
		return nil, fmt.Errorf("share must be between 0 and 1")
	case m == Delay && s.Delay <= 0:
		return nil, fmt.Errorf("the delay mode needs a positive delay")
	case m != Delay && s.Delay != 0:
		return nil, fmt.Errorf("delay is only for the delay mode")
	}
	for _, b := range []struct {
		name string
		d    Duration
		max  time.Duration
	}{{"after", s.After, MaxWindow}, {"for", s.For, MaxWindow}, {"delay", s.Delay, MaxDelay}} {
		if err := duration.Within(time.Duration(b.d), 0, b.max); err != nil {
			if b.d < 0 { // only a Spec made in Go can hold a negative duration
				err = fmt.Errorf("%s must not be negative", duration.Format(time.Duration(b.d)))
			}
			return nil, fmt.Errorf("%s %v", b.name, err)
		}
	}
	f.from = now.Add(time.Duration(s.After))
	if s.From != nil {
		f.from = *s.From
	}
	if s.For > 0 {
		f.until = f.from.Add(time.Duration(s.For))
	}
	if s.Until != nil {
		f.until = *s.Until
	}
	if !f.until.IsZero() && !f.until.After(f.from) {
		return nil, fmt.Errorf("the window ends before it starts")
	}
	return f, nil
}

// Registry holds the faults of one danezone instance; safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	faults []*Fault
	next   int
	count  atomic.Int32 // len(faults), read without the lock on the hot path
	// Now is the clock of the time windows.
	Now func() time.Time
	// OnChange, if set, is called after every change (the handler drops cached alternates).
	OnChange func()
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{Now: time.Now} }

// Add registers a fault.
func (r *Registry) Add(s Spec) (*Fault, error) {
	f, err := s.compile(r.Now())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.next++
	f.ID = strconv.Itoa(r.next)
	r.faults = append(r.faults, f)
	r.count.Store(int32(len(r.faults)))
	r.mu.Unlock()
	r.changed()
	return f, nil
}

// Remove deletes a fault by ID.
func (r *Registry) Remove(id string) bool {
	r.mu.Lock()
	found := false
	for i, f := range r.faults {
		if f.ID == id {
			r.faults = append(r.faults[:i:i], r.faults[i+1:]...)
			found = true
			break
		}
	}
	r.count.Store(int32(len(r.faults)))
	r.mu.Unlock()
	if found {
		r.changed()
	}
	return found
}

// Reset removes every fault.
func (r *Registry) Reset() {
	r.mu.Lock()
	r.faults = nil
	r.count.Store(0)
	r.mu.Unlock()
	r.changed()
}

func (r *Registry) changed() {
	if r.OnChange != nil {
		r.OnChange()
	}
}

// List returns the faults in the order they were added.
func (r *Registry) List() []View {
	now := r.Now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]View, len(r.faults))
	for i, f := range r.faults {
		out[i] = View{Fault: f, Matched: f.matched.Load(), Applied: f.applied.Load(), Active: f.live(now)}
	}
	return out
}

// live reports whether the fault can still apply: inside its window, count not used up.
func (f *Fault) live(now time.Time) bool {
	if now.Before(f.from) || (!f.until.IsZero() && !now.Before(f.until)) {
		return false
	}
	return f.Spec.Count == 0 || f.matched.Load() < int64(f.Spec.Count)
}

// DataFor returns a live DS fault (ds-mismatch, insecure) whose DS appears in the answer for
// qname without being asked for: a referral at or below the delegation carries the DS. The
// query is not counted; share-limited faults are left out. TLSA faults change only the
// answers to TLSA questions: other types at the name answer as before.
func (r *Registry) DataFor(zone, qname string) *Fault {
	if r.count.Load() == 0 {
		return nil
	}
	now := r.Now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, f := range r.faults {
		if !f.Spec.Mode.Data() || f.Spec.Mode.DataType() != dns.TypeDS || f.Spec.Share > 0 ||
			(f.zone != "" && !strings.EqualFold(f.zone, zone)) || !f.live(now) {
			continue
		}
		for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
			if f.MatchName(qname[off:]) {
				return f
			}
		}
	}
	return nil
}

// Match returns the first fault that applies to this query, counting it, or nil.
func (r *Registry) Match(zone, qname string, qtype uint16) *Fault {
	if r.count.Load() == 0 {
		return nil
	}
	now := r.Now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, f := range r.faults {
		if f.zone != "" && !strings.EqualFold(f.zone, zone) {
			continue
		}
		if f.qtype != 0 && f.qtype != qtype {
			continue
		}
		if !f.MatchName(qname) {
			continue
		}
		if now.Before(f.from) || (!f.until.IsZero() && !now.Before(f.until)) {
			continue
		}
		n := f.matched.Add(1)
		if f.Spec.Count > 0 && n > int64(f.Spec.Count) {
			continue
		}
		if f.Spec.Share > 0 && f.Spec.Share < 1 && rand.Float64() >= f.Spec.Share {
			continue
		}
		f.applied.Add(1)
		return f
	}
	return nil
}

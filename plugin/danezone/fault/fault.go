// Package fault owns danezone's fault injection: fault specifications, their scope (zone,
// owner name or pattern, type) and limits (first N queries, time window, share), and the
// registry that matches queries against them. The transformations themselves live where the
// data is: response faults in the handler, data faults as alternate zone snapshots.
package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
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
	// The denial faults of the NSEC3 and compact modes.
	NSEC3Iterations     Mode = "nsec3-iterations"
	CompactNoNXNAME     Mode = "compact-no-nxname"
	CompactTypeInBitmap Mode = "compact-type-in-bitmap"
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
	{NSEC3Iterations, "denial by NSEC3 with many iterations (iterations N, default 500), validly signed: validators following RFC 9276 treat the answer as insecure (Unbound, BIND: above 150) or bogus"},
	{CompactNoNXNAME, "compact denial's NSEC for a name that does not exist without NXNAME (validly signed): the NXDOMAIN cannot be told from NODATA"},
	{CompactTypeInBitmap, "the NSEC at the name asked lists the type asked (validly signed): the NODATA proof fails, bogus"},
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
	case DSMismatch, Insecure, TLSAMismatch, TLSAUnusable, TLSAAbsent, NSEC3Iterations:
		return true
	}
	return false
}

// DataType returns the type a data mode changes: DS or TLSA; 0 for nsec3-iterations, which
// changes the denial of every type.
func (m Mode) DataType() uint16 {
	switch m {
	case DSMismatch, Insecure:
		return dns.TypeDS
	case NSEC3Iterations:
		return 0
	}
	return dns.TypeTLSA
}

// The NSEC3 iterations of the nsec3-iterations mode: by default more than validators accept
// (RFC 9276 §3.2; Unbound and BIND 9.18 treat more than 150 as insecure), at most RFC 5155's
// ceiling for the largest keys.
const (
	DefaultNSEC3Iterations = 500
	MaxNSEC3Iterations     = 2500
)

// Iterations is the NSEC3 iteration count of an nsec3-iterations fault.
func (f *Fault) Iterations() uint16 {
	if f.Spec.Iterations == 0 {
		return DefaultNSEC3Iterations
	}
	return uint16(f.Spec.Iterations)
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
	// Iterations is the NSEC3 iteration count of the nsec3-iterations mode (0: the default).
	Iterations int `json:"iterations,omitempty"`
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
	head, tail  string // of a pattern: the text before its first '*' and after its last
	from, until time.Time

	seq  int           // order of addition: the first fault added wins when several match
	reg  *Registry     // where it is registered (nil for a spec only checked); see Hold
	done chan struct{} // closed when the fault is removed: releases the queries it delays

	matched atomic.Int64 // queries in scope (name, type, window)
	applied atomic.Int64
	dropped atomic.Int64 // delayed queries dropped because MaxDelayed were waiting
}

// View is the state of a fault for the API.
type View struct {
	*Fault
	Matched int64 `json:"matched"`
	Applied int64 `json:"applied"`
	Dropped int64 `json:"dropped,omitempty"`
	Active  bool  `json:"active"`
}

// Type returns the type the fault is limited to, 0 for any.
func (f *Fault) Type() uint16 { return f.qtype }

// Mode returns the fault's mode.
func (f *Fault) Mode() Mode { return f.Spec.Mode }

// MatchName reports whether name (any case) is in the fault's scope.
func (f *Fault) MatchName(name string) bool {
	return f.matchCanonical(strings.ToLower(dns.Fqdn(name)))
}

// matchCanonical is MatchName for a name already lower case and fully qualified.
func (f *Fault) matchCanonical(name string) bool {
	if !f.pattern {
		return name == f.name
	}
	// Most patterns fail on their fixed ends, in a few nanoseconds instead of a glob's
	// backtracking: this keeps a long list of patterns cheap.
	return len(name) >= len(f.head)+len(f.tail) && strings.HasPrefix(name, f.head) &&
		strings.HasSuffix(name, f.tail) && glob(f.name, name)
}

// Zone returns the zone the fault is limited to, "" for any.
func (f *Fault) Zone() string { return f.zone }

// ends returns the fixed text of a pattern before its first '*' and after its last.
func ends(pattern string) (head, tail string) {
	return pattern[:strings.IndexByte(pattern, '*')], pattern[strings.LastIndexByte(pattern, '*')+1:]
}

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
	f := &Fault{Spec: s, Created: now, done: make(chan struct{})}
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
	if f.pattern {
		f.head, f.tail = ends(f.name)
	} else if _, ok := dns.IsDomainName(f.name); !ok {
		return nil, fmt.Errorf("invalid name %q", s.Name)
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
	case !(s.Share >= 0 && s.Share <= 1): // NaN too
		return nil, fmt.Errorf("share must be between 0 and 1")
	case m == Delay && s.Delay <= 0:
		return nil, fmt.Errorf("the delay mode needs a positive delay")
	case m != Delay && s.Delay != 0:
		return nil, fmt.Errorf("delay is only for the delay mode")
	case m != NSEC3Iterations && s.Iterations != 0:
		return nil, fmt.Errorf("iterations is only for the nsec3-iterations mode")
	case s.Iterations < 0 || s.Iterations > MaxNSEC3Iterations:
		return nil, fmt.Errorf("iterations %d: want 1 to %d", s.Iterations, MaxNSEC3Iterations)
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

// The default limits of a registry. A lab or a test run uses a handful of faults, a generated
// scenario a few hundred; beyond that a fault list is a mistake or an attack on the control
// API, and List, alternates and memory grow with it. A delayed query holds a goroutine and
// its request (235 MB for 20.8k of them, about 11 KB each): a thousand is 1000 queries per
// second delayed by a second, more than a test of a client's timeout needs, in about 11 MB.
const (
	DefaultMaxFaults  = 1000
	DefaultMaxDelayed = 1000
)

// ErrTooMany is returned (wrapped) by Add when the registry holds MaxFaults faults.
var ErrTooMany = errors.New("too many faults")

// Registry holds the faults of one danezone instance; safe for concurrent use.
//
// Faults are indexed so that a query costs the same with 10 faults or 1000: faults on an
// exact name are found by that name, patterns (a short list in practice) by their zone.
// Wherever several faults match, the first one added wins, as if they were scanned in order.
type Registry struct {
	mu     sync.RWMutex
	faults []*Fault            // in the order they were added
	exact  map[string][]*Fault // by canonical name; each list in the order added
	globs  map[string][]*Fault // patterns by zone, "" for any zone; in the order added
	// DS data faults the referrals carry (DataFor): by name, and the patterns.
	dsExact map[string][]*Fault
	dsGlobs []*Fault
	next    int
	count   atomic.Int32   // len(faults), read without the lock on the hot path
	dsCount atomic.Int32   // faults in dsExact and dsGlobs, likewise
	delayed atomic.Int64   // queries waiting in Hold
	rnd     func() float64 // the draws of share (a seeded source in tests)

	// Now is the clock of the time windows.
	Now func() time.Time
	// OnChange, if set, is called after every change (the handler drops cached alternates).
	OnChange func()
	// MaxFaults is the most faults registered at once (0: DefaultMaxFaults), and MaxDelayed
	// the most queries a delay fault holds at once (0: DefaultMaxDelayed); set before use.
	MaxFaults, MaxDelayed int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{Now: time.Now, rnd: rand.Float64} }

// Add registers a fault; beyond MaxFaults it refuses with ErrTooMany.
func (r *Registry) Add(s Spec) (*Fault, error) {
	f, err := s.compile(r.Now())
	if err != nil {
		return nil, err
	}
	limit := r.MaxFaults
	if limit <= 0 {
		limit = DefaultMaxFaults
	}
	r.mu.Lock()
	if len(r.faults) >= limit {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: at most %d at once; remove some first", ErrTooMany, limit)
	}
	r.next++
	f.ID, f.seq, f.reg = strconv.Itoa(r.next), r.next, r
	r.faults = append(r.faults, f)
	r.index(f, true)
	r.count.Store(int32(len(r.faults)))
	r.mu.Unlock()
	r.changed()
	return f, nil
}

// dataDS reports whether DataFor considers f: a DS fault, not limited to a share (share 1
// is every query, as no share is).
func (f *Fault) dataDS() bool {
	return f.Spec.Mode.Data() && f.Spec.Mode.DataType() == dns.TypeDS && (f.Spec.Share == 0 || f.Spec.Share >= 1)
}

// index adds f to the lookup maps, or removes it; r.mu must be held for writing.
func (r *Registry) index(f *Fault, add bool) {
	if r.exact == nil {
		r.exact, r.globs, r.dsExact = map[string][]*Fault{}, map[string][]*Fault{}, map[string][]*Fault{}
	}
	m, key := r.exact, f.name
	if f.pattern {
		m, key = r.globs, f.zone
	}
	update(m, key, f, add)
	if !f.dataDS() {
		return
	}
	if f.pattern {
		r.dsGlobs = edit(r.dsGlobs, f, add)
	} else {
		update(r.dsExact, f.name, f, add)
	}
	if add {
		r.dsCount.Add(1)
	} else {
		r.dsCount.Add(-1)
	}
}

func update(m map[string][]*Fault, key string, f *Fault, add bool) {
	if l := edit(m[key], f, add); len(l) > 0 {
		m[key] = l
	} else {
		delete(m, key)
	}
}

// edit appends f to l, or removes it keeping the order. Readers never hold l outside the
// registry's lock, so it is changed in place.
func edit(l []*Fault, f *Fault, add bool) []*Fault {
	if add {
		return append(l, f)
	}
	if i := slices.Index(l, f); i >= 0 {
		return slices.Delete(l, i, i+1)
	}
	return l
}

// Remove deletes a fault by ID. The queries it is delaying are answered at once (Hold).
func (r *Registry) Remove(id string) bool {
	r.mu.Lock()
	var found *Fault
	for i, f := range r.faults {
		if f.ID == id {
			r.faults = append(r.faults[:i:i], r.faults[i+1:]...)
			found = f
			break
		}
	}
	if found != nil {
		r.index(found, false)
		close(found.done)
	}
	r.count.Store(int32(len(r.faults)))
	r.mu.Unlock()
	if found != nil {
		r.changed()
	}
	return found != nil
}

// Reset removes every fault, releasing the queries they delay.
func (r *Registry) Reset() {
	r.mu.Lock()
	for _, f := range r.faults {
		close(f.done)
	}
	r.faults, r.exact, r.globs, r.dsExact, r.dsGlobs = nil, nil, nil, nil, nil
	r.count.Store(0)
	r.dsCount.Store(0)
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
		out[i] = View{Fault: f, Matched: f.matched.Load(), Applied: f.applied.Load(), Dropped: f.dropped.Load(), Active: f.live(now)}
	}
	return out
}

// Delayed returns the number of queries the delay faults hold now.
func (r *Registry) Delayed() int { return int(r.delayed.Load()) }

// live reports whether the fault can still apply: inside its window, count not used up.
func (f *Fault) live(now time.Time) bool {
	if !f.inWindow(now) {
		return false
	}
	return f.Spec.Count == 0 || f.matched.Load() < int64(f.Spec.Count)
}

func (f *Fault) inWindow(now time.Time) bool {
	return !now.Before(f.from) && (f.until.IsZero() || now.Before(f.until))
}

// clock reads r.Now once per query, and only for a query some fault could apply to.
type clock struct {
	r   *Registry
	now time.Time
	set bool
}

func (c *clock) get() time.Time {
	if !c.set {
		c.now, c.set = c.r.Now(), true
	}
	return c.now
}

// Empty reports that no fault is registered, pending or live: what the answer cache needs to
// know to serve without asking Match and DataFor (whose counting it must not disturb).
func (r *Registry) Empty() bool { return r.count.Load() == 0 && r.dsCount.Load() == 0 }

// DataFor returns a live DS fault (ds-mismatch, insecure) whose DS appears in the answer for
// qname without being asked for: a referral at or below the delegation carries the DS. The
// query is not counted; share-limited faults are left out. TLSA faults change only the
// answers to TLSA questions: other types at the name answer as before.
func (r *Registry) DataFor(zone, qname string) *Fault {
	if r.dsCount.Load() == 0 {
		return nil
	}
	name, zone := strings.ToLower(dns.Fqdn(qname)), strings.ToLower(zone)
	c := clock{r: r}
	r.mu.RLock()
	defer r.mu.RUnlock()
	// The first added of the faults on any of the names from qname up, or patterns matching one.
	var best *Fault
	better := func(f *Fault) bool {
		return (best == nil || f.seq < best.seq) && (f.zone == "" || f.zone == zone) && f.live(c.get())
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		for _, f := range r.dsExact[name[off:]] {
			if best != nil && f.seq > best.seq {
				break
			}
			if better(f) {
				best = f
				break
			}
		}
	}
	for _, f := range r.dsGlobs {
		if best != nil && f.seq > best.seq {
			break
		}
		if !better(f) {
			continue
		}
		for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
			if f.matchCanonical(name[off:]) {
				return f
			}
		}
	}
	return best
}

// Match returns the first fault that applies to this query, counting it, or nil. Every fault
// added before it whose scope and window hold the query counts it too (matched), as when the
// faults were scanned in the order they were added.
func (r *Registry) Match(zone, qname string, qtype uint16) *Fault {
	if r.count.Load() == 0 {
		return nil
	}
	name, zone := strings.ToLower(dns.Fqdn(qname)), strings.ToLower(zone)
	c := clock{r: r}
	r.mu.RLock()
	defer r.mu.RUnlock()
	// The candidates: faults on the name, patterns of any zone, patterns of this zone.
	a, b, z := r.exact[name], r.globs[""], []*Fault(nil)
	if zone != "" {
		z = r.globs[zone]
	}
	for {
		f := first(&a, &b, &z)
		if f == nil {
			return nil
		}
		if f.zone != "" && f.zone != zone {
			continue
		}
		if f.qtype != 0 && f.qtype != qtype {
			continue
		}
		if !f.matchCanonical(name) {
			continue
		}
		if !f.inWindow(c.get()) {
			continue
		}
		n := f.matched.Add(1)
		if f.Spec.Count > 0 && n > int64(f.Spec.Count) {
			continue
		}
		if f.Spec.Share > 0 && f.Spec.Share < 1 && r.rnd() >= f.Spec.Share {
			continue
		}
		f.applied.Add(1)
		return f
	}
}

// first takes the earliest added fault off the heads of three lists, each in the order added.
func first(a, b, c *[]*Fault) *Fault {
	p := a
	if len(*p) == 0 || len(*b) > 0 && (*b)[0].seq < (*p)[0].seq {
		p = b
	}
	if len(*p) == 0 || len(*c) > 0 && (*c)[0].seq < (*p)[0].seq {
		p = c
	}
	if len(*p) == 0 {
		return nil
	}
	f := (*p)[0]
	*p = (*p)[1:]
	return f
}

// Hold waits out the delay of a delay fault for one query, and reports whether to answer it.
// It answers when the delay has passed, and at once when the fault is removed: a removed
// fault delays nothing, and the clients still waiting get the answer they would get now. It
// drops the query when the client's context ends, or when MaxDelayed queries are already
// held: a delayed answer looks like no answer to the client anyway, and a flood of queries
// must not pile up goroutines. Then dropped is the fault's count of such drops, this one
// included (0: not dropped for the limit).
func (f *Fault) Hold(ctx context.Context) (answer bool, dropped int64) {
	if r := f.reg; r != nil {
		limit := r.MaxDelayed
		if limit <= 0 {
			limit = DefaultMaxDelayed
		}
		if r.delayed.Add(1) > int64(limit) {
			r.delayed.Add(-1)
			return false, f.dropped.Add(1)
		}
		defer r.delayed.Add(-1)
	}
	t := time.NewTimer(time.Duration(f.Spec.Delay))
	defer t.Stop()
	select {
	case <-t.C:
		return true, 0
	case <-f.done:
		return true, 0
	case <-ctx.Done():
		return false, 0
	}
}

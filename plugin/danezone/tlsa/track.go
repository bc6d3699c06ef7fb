package tlsa

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/atomicfile"
)

// Host is one MX host whose TLSA records follow its certificate.
type Host struct {
	Name   string  // the MX host name; records live at _PORT._tcp.NAME
	Ports  []int   // default 25
	Params []Param // default 3 1 1
	Source Source
	// Next is a key file, or a directory of them, staged for the next certificate: published
	// as 3 1 1 ahead of use (RFC 7671 §8.1).
	Next string
	TTL  uint32
	// Hold keeps the records of a replaced certificate published this long, so that no cache
	// sees the new certificate without its TLSA (default 2× TTL).
	Hold time.Duration
	// Every is how often the source is read (0: at every poll).
	Every time.Duration
	// Warn is how long before expiry a certificate is reported (default 14 days).
	Warn time.Duration
}

// entry is one TLSA association, independent of port.
type entry struct {
	P    Param
	Data string
}

func (e entry) String() string { return e.P.String() + " " + e.Data }

type held struct {
	entry
	until time.Time
}

// Tracker keeps the TLSA records of one host: current certificate, staged next keys and
// records held after a change. Safe for concurrent use.
type Tracker struct {
	Host
	mu      sync.Mutex
	chain   []*x509.Certificate
	current []entry
	next    []entry
	held    []held
	// incoming are the records of a certificate about to be installed (Expect): published
	// before it is used, like staged keys.
	incoming  []held               // until: when the gate that expects it gives up
	published map[string]time.Time // entry -> when first published
	lastErr   string
	warnings  []string
	unstaged  string // why the last change was unsafe, "" if it was not
	// unstagedUntil is when the unstaged warning ends: once the old records are withdrawn and
	// at least an hour has passed, the risky moment is over.
	unstagedUntil time.Time
	lastPublished []string
	nextFetch     time.Time
	lastFetch     time.Time
}

// NewTracker returns a tracker for h with defaults filled in.
func NewTracker(h Host) *Tracker {
	if len(h.Ports) == 0 {
		h.Ports = []int{25}
	}
	if len(h.Params) == 0 {
		h.Params = DefaultParams
	}
	if h.TTL == 0 {
		h.TTL = 300
	}
	if h.Hold == 0 {
		h.Hold = 2 * time.Duration(h.TTL) * time.Second
	}
	if h.Warn == 0 {
		h.Warn = 14 * 24 * time.Hour
	}
	h.Name = strings.ToLower(dns.Fqdn(h.Name))
	return &Tracker{Host: h, published: map[string]time.Time{}}
}

// Update reads the source when due and updates the records. It reports whether the records
// changed, and the error of a source or staged key that could not be used: the last good
// records then keep serving.
func (t *Tracker) Update(ctx context.Context, now time.Time) (changed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() {
		// Compare with what was last published, not with a moment ago: a hold-down that
		// ends exactly now is a change too.
		after := t.entries(now)
		changed = !slices.Equal(t.lastPublished, after)
		for e := range t.published {
			if !slices.Contains(after, e) { // withdrawn: publishing it again starts afresh
				delete(t.published, e)
			}
		}
		t.lastPublished = after
		for _, e := range after {
			if _, ok := t.published[e]; !ok {
				t.published[e] = now
			}
		}
		t.refreshWarnings(now)
	}()
	t.expireHeld(now)
	if now.Before(t.nextFetch) {
		return false, nil
	}
	t.nextFetch = now.Add(t.Every)
	t.lastFetch = now
	var errs []string
	if t.Next != "" {
		if next, err := t.staged(); err != nil {
			errs = append(errs, err.Error())
		} else {
			t.next = next
		}
	}
	chain, err := t.Source.Fetch(ctx)
	if err == nil && now.After(chain[0].NotAfter) {
		err = fmt.Errorf("%s: certificate %q expired on %s", t.Source, chain[0].Subject, chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	var cur []entry
	if err == nil {
		cur, err = t.compute(t.Source.String(), chain)
	}
	if err != nil {
		errs = append(errs, err.Error())
	} else if !slices.Equal(cur, t.current) {
		t.replace(chain, cur, now)
	} else {
		t.chain = chain
	}
	t.lastErr = strings.Join(errs, "; ")
	if t.lastErr != "" {
		return false, fmt.Errorf("%s", t.lastErr)
	}
	return false, nil
}

// replace installs a new certificate: the old records are held, and a new key that was not
// published at least one TTL ago is reported (RFC 7671 §8.1).
func (t *Tracker) replace(chain []*x509.Certificate, cur []entry, now time.Time) {
	// The very first certificate is only judged when records were published before (a restart
	// with state): then the certificate may have been renewed while danezone was down.
	judge := t.current != nil || len(t.published) > 0
	for _, old := range t.current {
		if !slices.Contains(cur, old) {
			t.held = append(t.held, held{old, now.Add(t.Hold)})
		}
	}
	t.unstaged = ""
	if judge {
		// One record for the new certificate published at least a TTL ago is enough: a
		// sender with the old RRset cached matches it (RFC 7671 §8.1).
		ttl := time.Duration(t.TTL) * time.Second
		safe := false
		var newest entry
		var newestWhen string
		for _, e := range cur {
			since, ok := t.published[e.String()]
			if ok && now.Sub(since) >= ttl {
				safe = true
				break
			}
			newest, newestWhen = e, "was never published before use"
			if ok {
				newestWhen = "was published only " + now.Sub(since).Round(time.Second).String() + " before use, less than the TTL (" + ttl.String() + ")"
			}
		}
		if !safe {
			t.unstaged = fmt.Sprintf("new certificate for %s at %s: its TLSA %s %s: DANE senders holding the old TLSA will defer mail (4.7.323) until their caches expire; stage the next key (next PATH) to avoid this",
				strings.TrimSuffix(t.Name, "."), now.UTC().Format(time.RFC3339), newest, newestWhen)
			t.unstagedUntil = now.Add(max(t.Hold, time.Hour))
		}
	}
	t.chain, t.current = chain, cur
	t.expireHeld(now)
}

func (t *Tracker) expireHeld(now time.Time) {
	t.held = slices.DeleteFunc(t.held, func(h held) bool { return !now.Before(h.until) || slices.Contains(t.current, h.entry) })
	t.incoming = slices.DeleteFunc(t.incoming, func(h held) bool { return !now.Before(h.until) || slices.Contains(t.current, h.entry) })
}

func (t *Tracker) compute(source string, chain []*x509.Certificate) ([]entry, error) {
	var out []entry
	for _, p := range t.Params {
		c, err := Subject(chain, p.Usage)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", source, err)
		}
		d, err := Data(c, p.Selector, p.Matching)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{p, d})
	}
	return out, nil
}

// staged returns the DANE-EE records of the staged keys: for every DANE-EE SPKI parameter
// (3 1 1 by default), the digest of each staged key.
func (t *Tracker) staged() ([]entry, error) {
	spkis, err := StagedKeys(t.Next)
	if err != nil {
		return nil, err
	}
	params := []Param{}
	for _, p := range t.Params {
		if p.Usage == 3 && p.Selector == 1 {
			params = append(params, p)
		}
	}
	if len(params) == 0 { // only DANE-EE SPKI records can name a bare key
		params = DefaultParams
	}
	var out []entry
	for _, p := range params {
		for _, spki := range spkis {
			d, _ := Digest(spki, p.Matching)
			out = append(out, entry{p, d})
		}
	}
	return out, nil
}

// entries returns every association published now, sorted: current, next, held.
func (t *Tracker) entries(now time.Time) []string {
	seen := map[string]bool{}
	var out []string
	add := func(e entry) {
		if s := e.String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, e := range t.current {
		add(e)
	}
	for _, e := range t.next {
		add(e)
	}
	for _, h := range t.incoming {
		if now.Before(h.until) {
			add(h.entry)
		}
	}
	for _, h := range t.held {
		if now.Before(h.until) {
			add(h.entry)
		}
	}
	sort.Strings(out)
	return out
}

// Records returns the TLSA RRsets to publish, by owner name. Empty until a certificate has
// been read.
func (t *Tracker) Records(now time.Time) map[string][]dns.RR {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string][]dns.RR{}
	if t.current == nil && len(t.incoming) == 0 { // nothing read yet: publish nothing
		return out
	}
	for _, port := range t.Ports {
		owner := Owner(t.Name, port)
		for _, s := range t.entries(now) {
			rr, err := dns.NewRR(owner + " " + fmt.Sprint(t.TTL) + " IN TLSA " + s)
			if err == nil {
				out[owner] = append(out[owner], rr)
			}
		}
	}
	return out
}

func (t *Tracker) refreshWarnings(now time.Time) {
	t.warnings = nil
	if t.unstaged != "" && !now.Before(t.unstagedUntil) {
		t.unstaged = ""
	}
	if t.unstaged != "" {
		t.warnings = append(t.warnings, t.unstaged)
	}
	if len(t.chain) > 0 {
		if left := t.chain[0].NotAfter.Sub(now); left < t.Warn {
			t.warnings = append(t.warnings, fmt.Sprintf("certificate for %s expires on %s (in %s)",
				strings.TrimSuffix(t.Name, "."), t.chain[0].NotAfter.UTC().Format(time.RFC3339), left.Round(time.Minute)))
		}
	}
	if t.lastErr != "" {
		t.warnings = append(t.warnings, "last good records kept: "+t.lastErr)
	}
}

// Status is what a tracker reports (control API, danelab status).
type Status struct {
	Host        string    `json:"host"`
	Source      string    `json:"source"`
	Subject     string    `json:"subject,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	Current     []string  `json:"current"`
	Next        []string  `json:"next"`
	Held        []string  `json:"held"`
	Owners      []string  `json:"owners"`
	LastFetch   time.Time `json:"last_fetch,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Unstaged    bool      `json:"unstaged_key"`
	Warnings    []string  `json:"warnings"`
	ExpiresSoon bool      `json:"expires_soon"`
}

// Status returns the tracker's state.
func (t *Tracker) Status(now time.Time) Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{Host: t.Name, Source: t.Source.String(), LastFetch: t.lastFetch, LastError: t.lastErr,
		Unstaged: t.unstaged != "", Warnings: append([]string{}, t.warnings...), Current: []string{}, Next: []string{}, Held: []string{}}
	if len(t.chain) > 0 {
		s.Subject, s.NotAfter = t.chain[0].Subject.String(), t.chain[0].NotAfter
		s.ExpiresSoon = t.chain[0].NotAfter.Sub(now) < t.Warn
	}
	for _, e := range t.current {
		s.Current = append(s.Current, e.String())
	}
	for _, e := range t.next {
		s.Next = append(s.Next, e.String())
	}
	for _, h := range t.held {
		s.Held = append(s.Held, h.String()+" until "+h.until.UTC().Format(time.RFC3339))
	}
	for _, p := range t.Ports {
		s.Owners = append(s.Owners, Owner(t.Name, p))
	}
	return s
}

// Expect publishes the records of chain (read from source), a certificate about to replace
// the current one, until the given time or until it is the current one: the ACME deploy gate
// (danelab tlsa gate) publishes a renewed certificate's records before the mail server uses
// it (RFC 7671 §8.1). They are kept in the state, so that another run of the tracker (a sync
// daemon) keeps them too. nil withdraws them.
func (t *Tracker) Expect(source string, chain []*x509.Certificate, until time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if chain == nil {
		t.incoming = nil
		return nil
	}
	in, err := t.compute(source, chain)
	if err != nil {
		return err
	}
	t.incoming = nil
	for _, e := range in {
		t.incoming = append(t.incoming, held{e, until})
	}
	return nil
}

// Expected returns the records of the certificate given to Expect, as "U S M DATA".
func (t *Tracker) Expected() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, h := range t.incoming {
		out = append(out, h.String())
	}
	return out
}

// SetPublished counts records as published from at: a record the DNS server had lost and
// that was added again starts afresh.
func (t *Tracker) SetPublished(records []string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range records {
		t.published[r] = at
	}
}

// Published returns when the record ("U S M DATA") was first published, if it is.
func (t *Tracker) Published(record string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.published[record]
	return at, ok
}

// NotPublished tells the tracker that records it counted as published are not: publishing
// them failed (a refused dynamic update). The next Update counts them from then on, so a
// record is never judged older than it is.
func (t *Tracker) NotPublished(records []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range records {
		delete(t.published, r)
	}
	t.lastPublished = slices.DeleteFunc(t.lastPublished, func(e string) bool { return slices.Contains(records, e) })
}

// state is what survives restarts, per host: when each record was first published (so that a
// renewal right after a restart is still judged correctly), the current certificate's
// records (so that a certificate renewed while nothing ran is seen as a change) and the held
// records with the end of their hold-down.
type state struct {
	Version int                   `json:"version"`
	Hosts   map[string]*hostState `json:"hosts"`
}

type hostState struct {
	Published map[string]time.Time `json:"published"`
	Current   []string             `json:"current,omitempty"`
	Held      []heldState          `json:"held,omitempty"`
	Incoming  []heldState          `json:"incoming,omitempty"`
}

type heldState struct {
	Record string    `json:"record"`
	Until  time.Time `json:"until"`
}

// parseEntry reads "U S M DATA".
func parseEntry(s string) (entry, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return entry{}, fmt.Errorf("record %q: want USAGE SELECTOR MATCHING DATA", s)
	}
	p, err := ParseParam(f[0] + f[1] + f[2])
	if err != nil {
		return entry{}, fmt.Errorf("record %q: %v", s, err)
	}
	return entry{p, strings.ToLower(f[3])}, nil
}

// LoadState restores the trackers' state from path (missing file: nothing). The first format
// (a map of host to record to publication time) is read too.
func LoadState(path string, trackers []*Tracker) error {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil || st.Version == 0 {
		var old map[string]map[string]time.Time
		if oerr := json.Unmarshal(data, &old); oerr != nil {
			if err == nil {
				err = oerr
			}
			return fmt.Errorf("%s: %v", path, err)
		}
		st = state{Version: 2, Hosts: map[string]*hostState{}}
		for h, m := range old {
			st.Hosts[h] = &hostState{Published: m}
		}
	}
	if st.Version != 2 {
		return fmt.Errorf("%s: state version %d, this program knows 2", path, st.Version)
	}
	for _, t := range trackers {
		hs := st.Hosts[t.Name]
		if hs == nil {
			continue
		}
		var cur []entry
		var hld, inc []held
		for _, s := range hs.Current {
			e, err := parseEntry(s)
			if err != nil {
				return fmt.Errorf("%s: %s: %v", path, t.Name, err)
			}
			cur = append(cur, e)
		}
		for _, h := range hs.Held {
			e, err := parseEntry(h.Record)
			if err != nil {
				return fmt.Errorf("%s: %s: %v", path, t.Name, err)
			}
			hld = append(hld, held{e, h.Until})
		}
		for _, h := range hs.Incoming {
			e, err := parseEntry(h.Record)
			if err != nil {
				return fmt.Errorf("%s: %s: %v", path, t.Name, err)
			}
			inc = append(inc, held{e, h.Until})
		}
		t.mu.Lock()
		t.published = map[string]time.Time{}
		for e, at := range hs.Published {
			t.published[e] = at
		}
		t.current, t.held, t.incoming = cur, hld, inc
		t.mu.Unlock()
	}
	return nil
}

// SaveState writes the trackers' state atomically. Hosts of the file that none of trackers
// follows are kept: another program (a gate for one host, a sync of several) shares the file.
func SaveState(path string, trackers []*Tracker) error {
	st := state{Version: 2, Hosts: map[string]*hostState{}}
	if data, err := os.ReadFile(path); err == nil {
		var old state
		if json.Unmarshal(data, &old) == nil && old.Version == 2 {
			for h, hs := range old.Hosts {
				st.Hosts[h] = hs
			}
		}
	}
	for _, t := range trackers {
		t.mu.Lock()
		hs := &hostState{Published: map[string]time.Time{}}
		for e, at := range t.published {
			hs.Published[e] = at
		}
		for _, e := range t.current {
			hs.Current = append(hs.Current, e.String())
		}
		for _, h := range t.held {
			hs.Held = append(hs.Held, heldState{h.String(), h.until})
		}
		for _, h := range t.incoming {
			hs.Incoming = append(hs.Incoming, heldState{h.String(), h.until})
		}
		st.Hosts[t.Name] = hs
		t.mu.Unlock()
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

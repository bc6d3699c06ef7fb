package tlsasync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// Syncer keeps the TLSA records of its trackers published on the zones' primaries.
type Syncer struct {
	Trackers []*tlsa.Tracker
	// State is the trackers' state file (publication times, current and held records), kept
	// across runs like danezone's.
	State string
	// Zone and Server, if set, are the zone and primary of every owner; else each owner's are
	// discovered from its SOA through Resolver (host:port).
	Zone, Server string
	Resolver     string
	Key          *Key
	Timeout      time.Duration
	// Logf reports what happened (nil: nothing).
	Logf func(format string, args ...any)
	// Prepare, if set, runs in each Run after the state is read and before the certificates
	// are: the gate adds the records it expects there.
	Prepare func(now time.Time) error

	mu      sync.Mutex
	targets map[string]Target // owner -> target (discovered once)
}

// Result is what one run did for one owner.
type Result struct {
	Host   string
	Owner  string
	Target Target
	Change Change
	Err    error
}

// Check refuses two trackers with one owner: each would remove the other's records at every
// run (publish both certificates' records from one tlsa line instead).
func (s *Syncer) Check() error {
	seen := map[string]string{}
	for _, t := range s.Trackers {
		for _, p := range t.Ports {
			o := tlsa.Owner(t.Name, p)
			if prev, ok := seen[o]; ok {
				return fmt.Errorf("%s is published by two tlsa lines (%s and %s): one line per host and port", o, prev, t.Source)
			}
			seen[o] = t.Source.String()
		}
	}
	return nil
}

func (s *Syncer) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// target returns where owner's records are changed.
func (s *Syncer) target(ctx context.Context, owner string) (Target, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.targets[owner]; ok {
		return t, nil
	}
	t := Target{Zone: s.Zone, Server: s.Server, Key: s.Key, Timeout: s.Timeout}
	if t.Zone == "" || t.Server == "" {
		zone, primary, err := Discover(ctx, owner, s.Resolver, t.timeout())
		if err != nil {
			return t, err
		}
		if t.Zone == "" {
			t.Zone = zone
		}
		if t.Server == "" {
			t.Server = primary
		}
	}
	t.Zone = dns.CanonicalName(t.Zone)
	if !dns.IsSubDomain(t.Zone, owner) {
		return t, fmt.Errorf("%s is not in zone %s", owner, t.Zone)
	}
	if s.targets == nil {
		s.targets = map[string]Target{}
	}
	s.targets[owner] = t
	return t, nil
}

// Run reads every tracker's certificate and makes each owner's TLSA RRset on its primary
// equal to the tracker's records: minimal updates, guarded by prerequisites. A certificate
// that cannot be read keeps the last good records (those of the state file), and a tracker
// that never read one changes nothing. The state is saved after the run. The error joins
// every failure; each Result says what happened to its owner.
func (s *Syncer) Run(ctx context.Context, now time.Time) ([]Result, error) {
	var out []Result
	var errs []error
	if s.State != "" {
		// The state is read again at every run, under a lock: a gate and a sync daemon on
		// one state file see each other's records.
		if err := os.MkdirAll(filepath.Dir(s.State), 0o700); err != nil {
			return nil, fmt.Errorf("state: %v", err)
		}
		unlock, err := lockState(s.State)
		if err != nil {
			return nil, err
		}
		defer unlock()
		if err := tlsa.LoadState(s.State, s.Trackers); err != nil {
			return nil, fmt.Errorf("state: %v", err)
		}
	}
	if s.Prepare != nil {
		if err := s.Prepare(now); err != nil {
			return nil, err
		}
	}
	for _, t := range s.Trackers {
		host := strings.TrimSuffix(t.Name, ".")
		if _, err := t.Update(ctx, now); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", host, err))
		}
		records := t.Records(now)
		if len(records) == 0 {
			continue // no certificate read yet: leave the DNS alone
		}
		owners := make([]string, 0, len(records))
		for o := range records {
			owners = append(owners, o)
		}
		sort.Strings(owners)
		for _, owner := range owners {
			res := Result{Host: host, Owner: owner}
			res.Target, res.Err = s.target(ctx, owner)
			if res.Err == nil {
				res.Change, res.Err = res.Target.Replace(ctx, owner, records[owner])
			}
			if res.Err != nil {
				// A record first published by this run was not: it does not count as published
				// (it would look older than it is at the next renewal).
				var fresh []string
				for _, r := range texts(records[owner]) {
					if at, ok := t.Published(r); ok && at.Equal(now) {
						fresh = append(fresh, r)
					}
				}
				t.NotPublished(append(fresh, res.Change.Added...))
				errs = append(errs, fmt.Errorf("%s: %w", host, res.Err))
				s.logf("TLSA %s: %v", owner, res.Err)
			} else if !res.Change.Unchanged() {
				// Added now: what the server had lost starts afresh.
				t.SetPublished(res.Change.Added, now)
				s.logf("TLSA %s in %s: added %v, removed %v%s", owner, res.Target, res.Change.Added, res.Change.Removed, ttlNote(res.Change))
			}
			out = append(out, res)
		}
	}
	if s.State != "" {
		if err := tlsa.SaveState(s.State, s.Trackers); err != nil {
			errs = append(errs, fmt.Errorf("state %s: %v", s.State, err))
		}
	}
	return out, errors.Join(errs...)
}

func ttlNote(c Change) string {
	if c.TTLTo == 0 {
		return ""
	}
	return fmt.Sprintf(", TTL %d -> %d", c.TTLFrom, c.TTLTo)
}

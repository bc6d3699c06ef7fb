package keys

// Key timing: when a key's DNSKEY is published and withdrawn, when it signs and stops, and when
// its CDS/CDNSKEY appear and go. The times are BIND's key timing metadata, in the .key file's
// comments and the .private file (as dnssec-keygen -P/-A/-I/-D and dnssec-settime write them),
// so a key directory moves between danezone and BIND with its schedule, and a restart resumes
// a rollover where it was: the schedule is in the files (RFC 7583 §3.1 names the events).

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/atomicfile"
)

// Timing is a key's schedule. A zero time is unset.
type Timing struct {
	Created     time.Time `json:"created,omitzero"`
	Publish     time.Time `json:"publish,omitzero"`      // the DNSKEY is in the zone from then
	Activate    time.Time `json:"activate,omitzero"`     // the key signs from then
	Inactive    time.Time `json:"inactive,omitzero"`     // the key no longer signs from then
	Delete      time.Time `json:"delete,omitzero"`       // the DNSKEY is withdrawn then
	SyncPublish time.Time `json:"sync_publish,omitzero"` // CDS and CDNSKEY for the key from then (RFC 7344)
	SyncDelete  time.Time `json:"sync_delete,omitzero"`  // and no longer from then
}

// timingFields are the metadata names, in the order BIND writes them.
var timingFields = []struct {
	name string
	at   func(*Timing) *time.Time
}{
	{"Created", func(t *Timing) *time.Time { return &t.Created }},
	{"Publish", func(t *Timing) *time.Time { return &t.Publish }},
	{"Activate", func(t *Timing) *time.Time { return &t.Activate }},
	{"Inactive", func(t *Timing) *time.Time { return &t.Inactive }},
	{"Delete", func(t *Timing) *time.Time { return &t.Delete }},
	{"SyncPublish", func(t *Timing) *time.Time { return &t.SyncPublish }},
	{"SyncDelete", func(t *Timing) *time.Time { return &t.SyncDelete }},
}

// Scheduled says whether any time but Created is set: a key without a schedule (made by a tool
// that writes none) is published and signs from the moment it is loaded.
func (t *Timing) Scheduled() bool {
	// Field by field, not through timingFields: this runs for every key of every signed answer.
	return !t.Publish.IsZero() || !t.Activate.IsZero() || !t.Inactive.IsZero() || !t.Delete.IsZero() ||
		!t.SyncPublish.IsZero() || !t.SyncDelete.IsZero()
}

// Events are the set times after now, ascending.
func (t Timing) Events(after time.Time) []time.Time {
	var out []time.Time
	for _, f := range timingFields[1:] {
		if at := *f.at(&t); !at.IsZero() && at.After(after) {
			out = append(out, at)
		}
	}
	return out
}

// String lists the set times, e.g. "Publish 2026-12-02T15:00:00Z, Activate ...".
func (t Timing) String() string {
	var parts []string
	for _, f := range timingFields {
		if at := *f.at(&t); !at.IsZero() {
			parts = append(parts, f.name+" "+at.UTC().Format(time.RFC3339))
		}
	}
	return strings.Join(parts, ", ")
}

// within says whether at is in [from, until), an unset bound being open; an unset from is
// given by open.
func within(at, from, until time.Time, open bool) bool {
	if from.IsZero() {
		if !open {
			return false
		}
	} else if at.Before(from) {
		return false
	}
	return until.IsZero() || at.Before(until)
}

// Published says whether the key's DNSKEY is in the zone at t. A key activated without a
// publication time is published when it starts signing (as BIND does).
func (k *Key) Published(t time.Time) bool {
	from := k.Timing.Publish
	if from.IsZero() {
		from = k.Timing.Activate
	}
	return within(t, from, k.Timing.Delete, !k.Timing.Scheduled())
}

// Active says whether the key signs at t. A key whose DNSKEY was deleted stops signing then
// too, unless an Inactive time says otherwise (an algorithm rollover keeps the old
// signatures one DNSKEY TTL longer than the old DNSKEYs, RFC 6781 §4.1.4).
func (k *Key) Active(t time.Time) bool {
	until := k.Timing.Inactive
	if until.IsZero() {
		until = k.Timing.Delete
	}
	return within(t, k.Timing.Activate, until, !k.Timing.Scheduled())
}

// Synced says whether the key's CDS and CDNSKEY are in the zone at t.
func (k *Key) Synced(t time.Time) bool {
	return within(t, k.Timing.SyncPublish, k.Timing.SyncDelete, false)
}

// parseTime parses a BIND timing value, "20261202150405" (UTC), the rest of the line ignored.
func parseTime(v string) (time.Time, error) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return time.Time{}, errors.New("empty")
	}
	if f[0] == "0" { // dnssec-settime writes "none" as unset; 0 is BIND's zero
		return time.Time{}, nil
	}
	return time.ParseInLocation(timeFormat, f[0], time.UTC)
}

// readTiming reads the schedule from the .private file's "Name: value" lines, BIND's own
// source; only a .private file without any (written by a tool that keeps the schedule in
// the .key file alone) has it read from the .key file's "; Name: value" comments. The two are
// never mixed: SetTiming writes the .private file first, and a field cleared there must not
// come back from a .key file not rewritten yet.
func readTiming(keyData, privData []byte, keyPath, privPath string) (Timing, error) {
	var t Timing
	fromKey := map[string]string{}
	for _, line := range strings.Split(string(keyData), "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, ";"); ok {
			if name, v, ok := strings.Cut(strings.TrimSpace(rest), ":"); ok {
				fromKey[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(v)
			}
		}
	}
	fromPriv := privateFields(privData)
	src, path := fromKey, keyPath
	for _, f := range timingFields {
		if fromPriv[strings.ToLower(f.name)] != "" {
			src, path = fromPriv, privPath
		}
	}
	for _, f := range timingFields {
		v := src[strings.ToLower(f.name)]
		if v == "" {
			continue
		}
		at, err := parseTime(v)
		if err != nil {
			return t, fmt.Errorf("%s: bad %s %q: want YYYYMMDDHHMMSS (UTC)", path, f.name, v)
		}
		*f.at(&t) = at
	}
	return t, nil
}

// timingLines renders t for a .key file (comments, with the human-readable date BIND adds)
// or a .private file.
func timingLines(t Timing, comment bool) string {
	var b strings.Builder
	for _, f := range timingFields {
		at := *f.at(&t)
		if at.IsZero() {
			continue
		}
		at = at.UTC()
		if comment {
			fmt.Fprintf(&b, "; %s: %s (%s)\n", f.name, at.Format(timeFormat), at.Format("Mon Jan _2 15:04:05 2006"))
		} else {
			fmt.Fprintf(&b, "%s: %s\n", f.name, at.Format(timeFormat))
		}
	}
	return b.String()
}

// isTimingLine says whether a .private line is timing metadata.
func isTimingLine(line string) bool {
	name, _, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok {
		return false
	}
	for _, f := range timingFields {
		if strings.EqualFold(strings.TrimSpace(name), f.name) {
			return true
		}
	}
	return false
}

// SetTiming writes t as k's schedule into its .private and .key files (each replaced
// atomically, the key material as it was) and into k. Times are kept to the second.
func SetTiming(k *Key, t Timing) error {
	for _, f := range timingFields {
		if p := f.at(&t); !p.IsZero() {
			*p = p.UTC().Truncate(time.Second)
		}
	}
	privPath := strings.TrimSuffix(k.File, ".key") + ".private"
	priv, err := os.ReadFile(privPath)
	if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimRight(string(priv), "\n"), "\n") {
		if !isTimingLine(line) {
			kept = append(kept, line)
		}
	}
	newPriv := strings.Join(kept, "\n") + "\n" + timingLines(t, false)
	newKey := keyFileText(k.IsKSK(), k.Tag, k.DNSKEY, t)
	if err := replaceFile(privPath, []byte(newPriv), 0o600); err != nil {
		return err
	}
	if err := replaceFile(k.File, []byte(newKey), 0o644); err != nil {
		return err
	}
	k.Timing = t
	return nil
}

// replaceFile writes data to path atomically (a new file renamed over the old one), with the
// old file's mode if it exists, else mode.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, mode)
}

// GenerateScheduled creates a key for zone like Generate (a KSK with the SEP flag, or a ZSK),
// with DNSKEY TTL ttl (seconds; 0: DefaultTTL) and schedule t (its Created is now), and
// writes it to dir.
func GenerateScheduled(dir, zone string, alg uint8, ksk bool, ttl uint32, t Timing) (*Key, error) {
	genMu.Lock()
	defer genMu.Unlock()
	flags := uint16(dns.ZONE)
	if ksk {
		flags |= dns.SEP
	}
	now := time.Now()
	t.Created = now
	return generateWith(dir, zone, alg, flags, ttl, &t, now)
}

// keyFileText is a .key file as dnssec-keygen writes it: the comments (kind, timing) and the
// DNSKEY, with its TTL when it is not DefaultTTL.
func keyFileText(ksk bool, tag uint16, d *dns.DNSKEY, t Timing) string {
	kind := "key-signing"
	if !ksk {
		kind = "zone-signing"
	}
	ttl := ""
	if d.Hdr.Ttl != DefaultTTL {
		ttl = fmt.Sprintf(" %d", d.Hdr.Ttl)
	}
	return fmt.Sprintf("; This is a %s key, keyid %d, for %s\n%s%s%s IN DNSKEY %d %d %d %s\n",
		kind, tag, d.Hdr.Name, timingLines(t, true), d.Hdr.Name, ttl, d.Flags, d.Protocol, d.Algorithm, d.PublicKey)
}

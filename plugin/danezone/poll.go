package danezone

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
)

// expiryScan is how often the earliest-expiry metric is recomputed.
const expiryScan = 30 * time.Second

// poll watches zone files, the zone directory and key files, and reloads what changed. A
// version that fails to load is logged and counted, and the last good one keeps serving.
func (d *DaneZone) poll(cfg *config, stop <-chan struct{}) {
	d.updateExpiry()
	var tick, tlsaTick <-chan time.Time
	if cfg.reload > 0 {
		t := time.NewTicker(cfg.reload)
		defer t.Stop()
		tick = t.C
	}
	if len(d.trackers) > 0 { // certificates are followed even when zone reloading is off
		every := cfg.reload
		if every == 0 {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		tlsaTick = t.C
	}
	scan := time.NewTicker(expiryScan)
	defer scan.Stop()
	failed := map[string]string{} // last error per file, so a broken file is logged once
	for {
		select {
		case <-stop:
			return
		case <-scan.C:
			d.updateExpiry()
		case <-tick:
			d.check(cfg, failed)
		case <-tlsaTick:
			d.updateTLSA(context.Background(), time.Now())
		}
	}
}

// check runs one poll round.
func (d *DaneZone) check(cfg *config, failed map[string]string) {
	report := func(key string, err error) {
		if err == nil {
			if failed[key] != "" {
				log.Infof("%s loads again", key)
			}
			delete(failed, key)
			return
		}
		if failed[key] != err.Error() {
			log.Errorf("Not reloading, the last good version keeps serving: %v", err)
		}
		failed[key] = err.Error()
	}
	now := time.Now()
	set := d.zones.Load()
	next := set
	files, err := zoneFiles(cfg.path, cfg.origins, cfg.dir)
	if cfg.dir { // a single file is listed without reading anything: its problems are its own
		report(cfg.path, err) // an unreadable directory drops nothing
	}
	if err == nil {
		if served, changed := d.checkZones(cfg, set, files, now, report); changed {
			next = newZoneSet(served)
			d.zones.Store(next)
			d.zonesChanged(set, next)
		}
	}
	for _, sz := range next.byName {
		if !sz.unsigned && d.rollKeys(cfg, sz, now) {
			sz.keyStamp = "" // a scheduled key event passed, or the policy wrote keys: reload them
		}
		if !sz.unsigned && d.checkKeys(cfg, sz, failed, report) {
			continue
		}
		d.checkFile(cfg, sz, now, report)
	}
	if cfg.followCDS {
		d.followCDS(next)
	}
}

// checkZones returns the zones to serve now, and whether they changed. A zone whose file is
// missing keeps serving, with the records added over the control API, until the file has been
// gone for the grace period: tools that delete a file and write it again must not drop it. A
// zone file that appears is loaded at once (a new inode: see settled).
func (d *DaneZone) checkZones(cfg *config, set *zoneSet, files map[string]string, now time.Time, report func(string, error)) ([]*servedZone, bool) {
	var served []*servedZone
	changed := false
	replaced := map[string]*servedZone{}
	for origin, sz := range set.byName {
		if files[origin] != sz.file && files[origin] != "" {
			replaced[origin] = sz // served from another file now: opened below
			continue
		}
		_, err := stampOf(sz.file) // a path that is not a regular file is not missing: checkFile
		if files[origin] == "" || errors.Is(err, fs.ErrNotExist) {
			if sz.missingSince.IsZero() {
				sz.missingSince = now
				log.Warningf("Zone file %s of %s is gone; the last good version keeps serving, and stops after %s unless the file returns",
					sz.file, origin, duration.Format(cfg.grace))
			}
			if now.Sub(sz.missingSince) >= cfg.grace {
				log.Warningf("Zone file %s of %s has been gone for %s: no longer serving %s", sz.file, origin, duration.Format(cfg.grace), origin)
				changed = true
				continue
			}
		} else if !sz.missingSince.IsZero() {
			sz.missingSince = time.Time{}
			if err == nil {
				log.Infof("Zone file %s of %s is back", sz.file, origin)
			}
		}
		served = append(served, sz)
	}
	for origin, file := range files {
		if sz := set.byName[origin]; sz != nil && sz.file == file {
			continue
		}
		st, err := stampOf(file) // before open, which makes keys for the zone
		if err == nil && !d.settledNew(file, st, now, settleFor(cfg.reload)) {
			err = errUnsettled // a new file, maybe half written: not yet
		}
		if err != nil {
			// Not a regular file: an error for a zone served from it (its last good version
			// keeps serving); an entry never served (a backup.zone/ directory) is no zone.
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errUnsettled) && replaced[origin] != nil {
				report(file, fileError(file, err))
			}
			if replaced[origin] != nil {
				served = append(served, replaced[origin])
			}
			continue
		}
		delete(d.newFiles, file)
		sz, err := cfg.open(origin, file)
		report(file, err)
		switch {
		case err == nil:
			served = append(served, sz)
			changed = true
		case replaced[origin] != nil: // the last good version keeps serving
			served = append(served, replaced[origin])
		}
	}
	for file := range d.newFiles { // gone before they settled
		if files[originOf(filepath.Base(file))] != file {
			delete(d.newFiles, file)
		}
	}
	return served, changed
}

// settledNew reports whether a zone file not served yet may be opened: like a changed file, it
// may be half written (a zone file copied into the zone directory).
func (d *DaneZone) settledNew(file string, st fileStamp, now time.Time, settle time.Duration) bool {
	if d.newFiles == nil {
		d.newFiles = map[string]*settling{}
	}
	s := d.newFiles[file]
	if s == nil {
		s = &settling{}
		d.newFiles[file] = s
	}
	return s.settled(fileStamp{}, st, now, settle)
}

// checkFile reloads the zone file of sz when it changed and has settled. A path that is not a
// regular file (a directory put in its place) is an error, and the last good version keeps
// serving; a missing file is checkZones' business.
func (d *DaneZone) checkFile(cfg *config, sz *servedZone, now time.Time, report func(string, error)) {
	st, err := stampOf(sz.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		sz.notRegular = true
		report(sz.file, fileError(sz.file, err))
		return
	case sz.notRegular:
		sz.notRegular = false
		if st == sz.stamp { // the loaded version is back: nothing to reload to say so
			report(sz.file, nil)
		}
	}
	// A version that failed is not parsed again until it changes: a large zone with a typo
	// would cost a full parse at every poll, and count a failure each time.
	if st == sz.stamp || st == sz.broken || !sz.pending.settled(sz.stamp, st, now, settleFor(cfg.reload)) {
		return
	}
	err = sz.reload()
	if errors.Is(err, errUnsettled) {
		return
	}
	sz.broken = fileStamp{}
	if err != nil {
		sz.broken = st
	}
	report(sz.file, err)
	if err == nil {
		log.Infof("Reloaded %s from %s: serial %d", sz.origin, sz.file, sz.cur.Load().z.Serial)
	}
}

// keyFilesStamp summarises the key files of a zone (names, sizes, times).
func keyFilesStamp(dir, origin string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	text, err := keys.FileNameText(origin)
	if err != nil {
		return "error: " + err.Error()
	}
	prefix := strings.ToLower("K" + text + "+")
	var b strings.Builder
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(strings.ToLower(e.Name()), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if fi, err := os.Stat(dir + "/" + n); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", n, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

// updateExpiry sets the earliest-expiry gauge of every zone.
func (d *DaneZone) updateExpiry() {
	now := time.Now()
	for _, sz := range d.zones.Load().byName {
		if t, ok := earliest(sz.signer, sz.cur.Load(), now); ok {
			earliestExpiry.WithLabelValues(sz.origin).Set(float64(t.Unix()))
		}
	}
}

func earliest(s *signer.Signer, snap *snapshot, now time.Time) (time.Time, bool) {
	var min time.Time
	found := false
	visit := func(set *zone.RRset) {
		if t, ok := s.Serving(set, now); ok && (!found || t.Before(min)) {
			min, found = t, true
		}
	}
	snap.z.Sets(visit)
	// The proofs made so far: asking for the rest would make them.
	if c, ok := snap.d.(interface{ Made(func(*zone.RRset)) }); ok {
		c.Made(visit)
	}
	return min, found
}

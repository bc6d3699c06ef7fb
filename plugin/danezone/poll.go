package danezone

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

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
	set := d.zones.Load()
	next := set
	files, err := zoneFiles(cfg.path, cfg.origins)
	report(cfg.path, err)
	if err == nil && !sameZones(set, files) {
		var served []*servedZone
		for origin, file := range files {
			if sz := set.byName[origin]; sz != nil && sz.file == file {
				served = append(served, sz)
				continue
			}
			sz, err := cfg.open(origin, file)
			report(file, err)
			if err == nil {
				served = append(served, sz)
			}
		}
		for origin := range set.byName {
			if files[origin] == "" {
				log.Infof("Zone file for %s is gone: no longer serving %s", origin, origin)
			}
		}
		next = newZoneSet(served)
		d.zones.Store(next)
	}
	for _, sz := range next.byName {
		keyStamp := keyFilesStamp(cfg.keyDir, sz.origin)
		if keyStamp != sz.keyStamp && !sz.unsigned {
			ks, err := keys.Load(cfg.keyDir, sz.origin)
			if err == nil && len(ks.Keys) == 0 {
				err = fmt.Errorf("%s: no keys left for %s", cfg.keyDir, sz.origin)
			}
			report(cfg.keyDir+" "+sz.origin, err)
			if err != nil {
				continue
			}
			// The new DNSKEY set is published by the same snapshot swap that starts using the
			// keys; if that version does not load, the old keys and data keep serving.
			if err := sz.reloadWithKeys(ks); err != nil {
				report(sz.file, err)
				continue
			}
			report(sz.file, nil)
			sz.keyStamp = keyStamp
			if _, err := keys.WriteDSSet(cfg.keyDir, ks); err != nil {
				log.Errorf("Writing the DS set of %s: %v", sz.origin, err)
			}
			log.Infof("Keys of %s changed: %d keys, re-signed", sz.origin, len(ks.Keys))
			continue
		}
		st, err := stampOf(sz.file)
		if err != nil || st == sz.stamp {
			continue
		}
		err = sz.reload()
		report(sz.file, err)
		if err == nil {
			log.Infof("Reloaded %s from %s: serial %d", sz.origin, sz.file, sz.cur.Load().z.Serial)
		}
	}
}

func sameZones(set *zoneSet, files map[string]string) bool {
	if len(files) != len(set.byName) {
		return false
	}
	for origin, file := range files {
		if sz := set.byName[origin]; sz == nil || sz.file != file {
			return false
		}
	}
	return true
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
	if c, ok := snap.d.(interface{ Sets() []*zone.RRset }); ok {
		for _, set := range c.Sets() {
			visit(set)
		}
	}
	return min, found
}

package danezone

// The TLSA overlay: the records that follow the certificates of the `tlsa` lines (computed by
// package tlsa) are published as managed RRsets over the zone data, replacing what the zone
// file has at those owners. The `tlsa` lines themselves are read in setup.go.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// startTLSA checks that every TLSA owner is in a served zone, restores the publication times
// and reads every source once, so the records are there from the first query.
func (d *DaneZone) startTLSA(cfg *config) error {
	if len(cfg.tlsa) == 0 {
		return nil
	}
	set := d.zones.Load()
	owners := map[string]bool{}
	for _, h := range cfg.tlsa {
		t := tlsa.NewTracker(h)
		for _, p := range t.Ports {
			o := tlsa.Owner(t.Name, p)
			if set.origin(o) == "" {
				return fmt.Errorf("tlsa %s: %s is in no zone served here", h.Name, o)
			}
			if owners[o] { // each line replaces the RRset: the last would win
				return fmt.Errorf("tlsa %s: %s is published by another tlsa line: one line per host and port", h.Name, o)
			}
			owners[o] = true
		}
		d.trackers = append(d.trackers, t)
	}
	d.tlsaState = filepath.Join(cfg.keyDir, "tlsa-state.json")
	if err := tlsa.LoadState(d.tlsaState, d.trackers); err != nil {
		log.Warningf("TLSA state: %v (starting afresh)", err)
	}
	d.updateTLSA(context.Background(), time.Now())
	return nil
}

// updateTLSA runs the trackers and publishes what changed. A source that fails keeps the last
// good records; the failure is logged once per distinct error and counted.
func (d *DaneZone) updateTLSA(ctx context.Context, now time.Time) {
	changed := false
	for _, t := range d.trackers {
		c, err := t.Update(ctx, now)
		st := t.Status(now)
		host := strings.TrimSuffix(t.Name, ".")
		if err != nil {
			if d.tlsaLogged[host] != err.Error() { // count and log each new problem once
				tlsaErrors.WithLabelValues(host).Inc()
				log.Errorf("TLSA for %s: %v", host, err)
			}
			d.tlsaLogged[host] = err.Error()
		} else {
			delete(d.tlsaLogged, host)
		}
		if !st.NotAfter.IsZero() {
			certExpiry.WithLabelValues(host).Set(float64(st.NotAfter.Unix()))
		}
		unstaged := 0.0
		if st.Unstaged {
			unstaged = 1
		}
		tlsaUnstaged.WithLabelValues(host).Set(unstaged)
		if c {
			changed = true
			tlsaChanges.WithLabelValues(host).Inc()
			log.Infof("TLSA for %s now: current %v, next %v, held %v", host, st.Current, st.Next, st.Held)
			for _, w := range st.Warnings {
				if st.Unstaged && strings.HasPrefix(w, "new certificate") {
					log.Warningf("%s", w)
				}
			}
		}
		if st.ExpiresSoon && d.expiryLogged[host].Before(now.Add(-24*time.Hour)) {
			log.Warningf("Certificate for %s expires on %s", host, st.NotAfter.UTC().Format(time.RFC3339))
			d.expiryLogged[host] = now
		}
	}
	if !changed {
		return
	}
	if err := tlsa.SaveState(d.tlsaState, d.trackers); err != nil {
		log.Errorf("TLSA state: %v", err)
	}
	d.publishTLSA(now)
}

// publishTLSA replaces the managed TLSA RRsets of every zone by the trackers' records.
func (d *DaneZone) publishTLSA(now time.Time) {
	set := d.zones.Load()
	byZone := map[*servedZone][]zone.Edit{}
	for _, t := range d.trackers {
		for owner, rrs := range t.Records(now) {
			sz := set.byName[set.origin(owner)]
			if sz == nil {
				continue
			}
			byZone[sz] = append(byZone[sz], zone.Edit{Op: zone.Replace, Name: owner, Type: dns.TypeTLSA, RRs: rrs})
		}
	}
	for sz, edits := range byZone {
		if err := sz.setManaged(func(m *managedSets) *[]zone.Edit { return &m.tlsa }, edits); err != nil {
			log.Errorf("Publishing TLSA in %s: %v", sz.origin, err)
		}
	}
}

// TLSAStatus reports every tracker (control API: GET /tlsa; danelab status).
func (d *DaneZone) TLSAStatus() []tlsa.Status {
	now := time.Now()
	out := []tlsa.Status{}
	for _, t := range d.trackers {
		out = append(out, t.Status(now))
	}
	return out
}

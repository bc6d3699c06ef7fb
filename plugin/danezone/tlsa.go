package danezone

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// parseTLSA reads `tlsa HOST (cert FILE | probe ADDR [tls]) [ports P,..] [records 311,..]
// [next PATH] [ttl N] [hold D] [interval D] [warn D]`.
func parseTLSA(args []string) (tlsa.Host, error) {
	var h tlsa.Host
	if len(args) < 3 {
		return h, fmt.Errorf("tlsa HOST (cert FILE | probe ADDRESS [tls]) [ports P,...] [records 311,...] [next PATH] [ttl N] [hold D] [interval D] [warn D]")
	}
	if _, ok := dns.IsDomainName(args[0]); !ok {
		return h, fmt.Errorf("invalid host %q", args[0])
	}
	h.Name = args[0]
	rest := args[1:]
	for len(rest) > 0 {
		k := rest[0]
		if k == "tls" {
			p, ok := h.Source.(tlsa.Probe)
			if !ok {
				return h, fmt.Errorf("tls goes after probe ADDRESS")
			}
			p.Implicit = true
			h.Source = p
			rest = rest[1:]
			continue
		}
		if len(rest) < 2 {
			return h, fmt.Errorf("%q needs a value", k)
		}
		v := rest[1]
		rest = rest[2:]
		var err error
		switch k {
		case "cert":
			h.Source = tlsa.File{Path: v}
		case "probe":
			h.Source = tlsa.Probe{Addr: v, ServerName: h.Name}
		case "ports":
			for _, p := range strings.Split(v, ",") {
				n, perr := strconv.Atoi(p)
				if perr != nil || n < 1 || n > 65535 {
					return h, fmt.Errorf("ports: %q is not a port", p)
				}
				h.Ports = append(h.Ports, n)
			}
		case "records":
			for _, p := range strings.Split(v, ",") {
				var param tlsa.Param
				if param, err = tlsa.ParseParam(p); err != nil {
					return h, err
				}
				h.Params = append(h.Params, param)
			}
		case "next":
			h.Next = v
		case "ttl":
			var n int
			if n, err = strconv.Atoi(v); err == nil && (n < 1 || n > 86400) {
				err = fmt.Errorf("out of range 1..86400")
			}
			h.TTL = uint32(n)
		case "hold", "interval", "warn":
			var d time.Duration
			if d, err = ParseDuration(v); err == nil {
				switch k {
				case "hold":
					h.Hold = d
				case "interval":
					h.Every = d
				default:
					h.Warn = d
				}
			}
		default:
			return h, fmt.Errorf("unknown option %q (cert, probe, tls, ports, records, next, ttl, hold, interval, warn)", k)
		}
		if err != nil {
			return h, fmt.Errorf("%s %q: %v", k, v, err)
		}
	}
	if h.Source == nil {
		return h, fmt.Errorf("tlsa %s: a source is needed: cert FILE or probe ADDRESS", h.Name)
	}
	if p, ok := h.Source.(tlsa.Probe); ok && h.Every == 0 {
		h.Every = time.Hour // probes are re-run hourly; files are read at every poll
		h.Source = p
	}
	return h, nil
}

// startTLSA checks that every TLSA owner is in a served zone, restores the publication times
// and reads every source once, so the records are there from the first query.
func (d *DaneZone) startTLSA(cfg *config) error {
	if len(cfg.tlsa) == 0 {
		return nil
	}
	set := d.zones.Load()
	for _, h := range cfg.tlsa {
		t := tlsa.NewTracker(h)
		for _, p := range t.Ports {
			if set.origin(tlsa.Owner(t.Name, p)) == "" {
				return fmt.Errorf("tlsa %s: %s is in no zone served here", h.Name, tlsa.Owner(t.Name, p))
			}
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
		if err := sz.setManaged(edits); err != nil {
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

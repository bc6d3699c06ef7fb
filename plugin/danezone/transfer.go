package danezone

// Zone transfers: danezone as a (hidden) primary. CoreDNS's transfer plugin answers AXFR and
// IXFR requests (after the tsig plugin checked their TSIG) and sends NOTIFY; danezone gives it
// the zone as a secondary must serve it: signed ahead of time, with the NSEC chain, under a
// serial that grows with every change (package xfr, package serial).

import (
	"errors"
	"time"

	"github.com/coredns/coredns/plugin/transfer"
	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/xfr"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// batch is how many records go to the transfer plugin at a time (it packs them into messages
// of up to 64 KB itself).
const batch = 500

// waitBuild bounds how long a transfer request waits for the version of the snapshot being
// served to be signed (a large zone just loaded); past it, the last version built is sent.
const waitBuild = 60 * time.Second

// Transfer implements transfer.Transferer: the records of an AXFR (serial 0), or of an IXFR
// from serial: the differences from the journal, one SOA when the secondary is up to date,
// or the whole zone when the journal does not reach back (RFC 1995 §4).
func (d *DaneZone) Transfer(name string, have uint32) (<-chan []dns.RR, error) {
	sz := d.zones.Load().byName[zone.Canonical(name)]
	if sz == nil {
		return nil, transfer.ErrNotAuthoritative
	}
	v, err := sz.current()
	if err != nil {
		return nil, err
	}
	kind, deltas := "axfr", []*xfr.Delta(nil)
	if have != 0 {
		kind = "ixfr_full"
		if v.UpToDate(have) {
			kind = "ixfr_uptodate"
		} else if ds, ok := sz.journal.Since(have, v.Serial); ok {
			n := 0
			for _, d := range ds {
				n += d.Len()
			}
			// Differences are mostly signatures, larger than the average record: past half
			// the zone's records, the whole zone is the smaller answer.
			if 2*n < v.Records {
				kind, deltas = "ixfr", ds
			}
		}
	}
	transfers.WithLabelValues(sz.origin, kind).Inc()
	ch := make(chan []dns.RR)
	// The transfer plugin reads ch until it is closed, even when the secondary goes away, so
	// this goroutine ends; it holds no lock, so a secondary that stops reading holds up
	// nothing but its own transfer.
	go func() {
		defer close(ch)
		send := func(rrs []dns.RR) bool { ch <- rrs; return true }
		switch kind {
		case "ixfr_uptodate":
			send([]dns.RR{v.SOA})
		case "ixfr":
			xfr.IXFR(v.SOA, deltas, batch, send)
		default:
			v.AXFR(batch, send)
		}
	}()
	return ch, nil
}

// current returns the version for transfer of the snapshot being served, building it if it
// is not there yet (bounded by waitBuild while another build runs).
func (sz *servedZone) current() (*xfr.Version, error) {
	snap := sz.cur.Load()
	due := time.Now().Add(sz.signer.Policy().Ahead())
	if v := sz.version.Load(); v != nil && v.Serial == snap.z.Serial && v.Keys == sz.keysFor(snap) &&
		(v.RefreshAt.IsZero() || due.Before(v.RefreshAt)) {
		return v, nil
	}
	done := make(chan struct{})
	var v *xfr.Version
	var err error
	go func() {
		defer close(done)
		v, _, err = sz.publish(time.Now())
	}()
	select {
	case <-done:
		return v, err
	case <-time.After(waitBuild):
		if v := sz.version.Load(); v != nil {
			return v, nil
		}
		return nil, errors.New("the zone is still being signed for transfer")
	}
}

// keysFor is the key set a version of snap is signed with (nil for an unsigned zone).
func (sz *servedZone) keysFor(snap *snapshot) *keys.Set {
	if snap.unsigned() {
		return nil
	}
	return snap.keys
}

// publishSoon asks the zone's publisher to build the version of the new snapshot. It never
// blocks: one pending request stands for any number.
func (sz *servedZone) publishSoon() {
	select {
	case sz.poke <- struct{}{}:
	default:
	}
}

// publish builds the version for transfer of the snapshot being served, and reports whether
// it is new. Signatures that would need refreshing before now + the policy's Ahead are made
// anew; when there are such signatures in the last version of the same snapshot, the zone
// first gets a new serial (a secondary must see every new signature as a new version). The
// new version's difference from the last one goes to the journal.
func (sz *servedZone) publish(now time.Time) (*xfr.Version, bool, error) {
	sz.pubMu.Lock()
	defer sz.pubMu.Unlock()
	ahead := sz.signer.Policy().Ahead()
	due := now.Add(ahead)     // a version with a signature due by then is replaced
	horizon := due.Add(ahead) // and then every signature due by this is made anew
	for range 3 {
		sz.mu.Lock() // the snapshot and its keys, together
		snap := sz.cur.Load()
		prev := sz.version.Load()
		if prev != nil && prev.Serial == snap.z.Serial {
			if prev.Keys == sz.keysFor(snap) && (prev.RefreshAt.IsZero() || due.Before(prev.RefreshAt)) {
				sz.mu.Unlock()
				return prev, false, nil
			}
			// Same data, new signatures: a new serial.
			sz.serve(snap.z, true)
			resigns.WithLabelValues(sz.origin).Inc()
			sz.mu.Unlock()
			continue
		}
		sz.mu.Unlock()
		start := time.Now()
		v, err := xfr.Build(snap.z, snap.d, sz.keysFor(snap), sz.signer, horizon, prev)
		if err != nil {
			return nil, false, err
		}
		if sz.cur.Load().keys != snap.keys {
			continue // new keys while it was signed: the next snapshot has them
		}
		buildSeconds.WithLabelValues(sz.origin).Observe(time.Since(start).Seconds())
		if prev != nil && serial.Less(prev.Serial, v.Serial) {
			sz.journal.Add(xfr.Diff(prev, v), v.Records)
		}
		sz.version.Store(v)
		return v, true, nil
	}
	return nil, false, errors.New("the zone kept changing while it was signed for transfer")
}

// publisher builds the versions for transfer of a zone as it changes, re-signs the zone ahead
// of time in the background (a secondary serves what it got until the next transfer, not
// only what queries here refresh), and sends NOTIFY for every new version.
func (d *DaneZone) publisher(sz *servedZone, notify func(string) error) {
	var notifying chan struct{}
	if notify != nil {
		notifying = make(chan struct{}, 1)
		go d.notifier(sz, notify, notifying)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	expire := uint32(0) // the SOA EXPIRE last checked
	for {
		select {
		case <-sz.quit:
			return
		case <-sz.poke:
		case <-timer.C:
		}
		v, fresh, err := sz.publish(time.Now())
		// At least hourly, whatever the signatures say: the timer counts monotonic time, which
		// stands still while the machine is suspended, and signatures expire by the clock.
		wait := time.Hour
		switch {
		case err != nil:
			failures++
			if failures == 1 {
				log.Errorf("Zone %s: not published for transfer: %v (retrying)", sz.origin, err)
			}
			wait = min(time.Duration(failures)*10*time.Second, 5*time.Minute)
		default:
			if failures > 0 {
				log.Infof("Zone %s: published for transfer again", sz.origin)
			}
			failures = 0
			if !v.RefreshAt.IsZero() {
				wait = min(max(time.Until(v.RefreshAt.Add(-sz.signer.Policy().Ahead())), time.Second), time.Hour)
			}
			if fresh {
				log.Infof("Zone %s: serial %d ready for transfer (%d records)", sz.origin, v.Serial, v.Records)
				if notify != nil && v.Expire() != expire { // transfers are on: see checkExpire
					expire = v.Expire()
					checkExpire(sz, expire)
				}
				if notifying != nil {
					select {
					case notifying <- struct{}{}:
					default:
					}
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// notifyBackoff is when NOTIFY is sent again after a round that some secondary did not
// acknowledge (the transfer plugin itself tries each one three times). A new version starts
// over; past the last, the secondaries' SOA refresh timers take over (RFC 1996 §4.7).
var notifyBackoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// notifier sends NOTIFY (RFC 1996) for each new version of sz, retrying with backoff.
func (d *DaneZone) notifier(sz *servedZone, notify func(string) error, wake <-chan struct{}) {
	var retry <-chan time.Time
	attempt := 0
	for {
		select {
		case <-sz.quit:
			return
		case <-wake:
			attempt = 0
		case <-retry:
		}
		retry = nil
		if err := notify(sz.origin); err != nil {
			notifies.WithLabelValues(sz.origin, "failed").Inc()
			if attempt < len(notifyBackoff) {
				log.Warningf("NOTIFY for %s: %v (again in %s)", sz.origin, err, notifyBackoff[attempt])
				retry = time.After(notifyBackoff[attempt])
				attempt++
			} else {
				log.Warningf("NOTIFY for %s: %v (giving up: the secondaries' refresh timers will find serial %d)", sz.origin, err, sz.cur.Load().z.Serial)
			}
			continue
		}
		notifies.WithLabelValues(sz.origin, "ok").Inc()
	}
}

// startPublishing starts a publisher for every zone; notify (nil: none) sends NOTIFY.
func (d *DaneZone) startPublishing(notify func(string) error) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.publishing, d.notify = true, notify
	for _, sz := range d.zones.Load().byName {
		go d.publisher(sz, notify)
	}
}

// stopPublishing stops every publisher.
func (d *DaneZone) stopPublishing() {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if !d.publishing {
		return
	}
	d.publishing = false
	for _, sz := range d.zones.Load().byName {
		sz.stop()
	}
}

// zonesChanged starts the publishers of zones new in next and stops those of zones gone.
func (d *DaneZone) zonesChanged(prev, next *zoneSet) {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	for o, sz := range prev.byName {
		if next.byName[o] != sz {
			sz.stop()
		}
	}
	if !d.publishing {
		return
	}
	for o, sz := range next.byName {
		if prev.byName[o] != sz {
			go d.publisher(sz, d.notify)
		}
	}
}

// stop ends the zone's publisher and notifier.
func (sz *servedZone) stop() { sz.stopOnce.Do(func() { close(sz.quit) }) }

// checkExpire warns when a secondary cut off from this primary would serve expired
// signatures before it stops answering: signatures are renewed with refresh + Ahead of their
// validity left, and a secondary keeps serving for the SOA EXPIRE after its last refresh (RFC
// 1035 §3.3.13). It also warns when the policy re-signs the whole zone more than hourly: each
// time a new serial and a transfer for every secondary.
func checkExpire(sz *servedZone, expireSecs uint32) {
	if sz.unsigned {
		return
	}
	p := sz.signer.Policy()
	left := p.Refresh + p.Ahead()
	expire := time.Duration(expireSecs) * time.Second
	if expire > left {
		log.Warningf("Zone %s: the SOA EXPIRE (%s) is longer than the signature validity a secondary may be left with (%s: refresh %s + %s ahead): "+
			"a secondary cut off from this primary would serve expired signatures before it stops answering. Lower EXPIRE, or raise validity and refresh.",
			sz.origin, duration.Format(expire), duration.Format(left), duration.Format(p.Refresh), duration.Format(p.Ahead()))
	}
	if every := p.Validity - p.Refresh - p.Ahead(); every < time.Hour {
		log.Warningf("Zone %s: validity %s with refresh %s re-signs the whole zone about every %s, each time a new serial and a transfer to every secondary",
			sz.origin, duration.Format(p.Validity), duration.Format(p.Refresh), duration.Format(every))
	}
}

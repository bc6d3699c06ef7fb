package danezone

// Key rollovers (package roll decides, this file acts): on the poll goroutine, each signed
// zone's keys are planned when due, new keys and schedules are written to the key directory,
// and the keys in use are reloaded when a scheduled event passes (a DNSKEY published, a key
// that starts or stops signing, CDS for another key). follow_cds keeps the DS RRsets of parent
// zones served here equal to their children's CDS, as a registry would (RFC 7344 §6).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/coredns/coredns/plugin"

	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/roll"
	"github.com/danelab/danelab/plugin/danezone/zone"
)

var (
	keyStates = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "keys",
		Help: "Keys of a zone by state: published (DNSKEY in the zone), active (signing), synced (named by CDS/CDNSKEY).",
	}, []string{"zone", "state"})
	keyNextEvent = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "key_next_event_timestamp_seconds",
		Help: "Unix time of the next scheduled key event of a zone (0: none).",
	}, []string{"zone"})
	keyParentWait = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "key_parent_wait_seconds",
		Help: "How long a KSK or CSK roll has waited for the parent to serve the new DS (0: none waits).",
	}, []string{"zone"})
	keyActions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace, Subsystem: "danezone", Name: "key_actions_total",
		Help: "Counter of key policy actions: a new key (generate) or a new schedule (retime); failed ones by result.",
	}, []string{"zone", "action", "result"})
)

// RequestRoll asks for a roll of a zone's role (csk, ksk, zsk) at the next poll, whatever the
// lifetimes say (control API: POST /keys/roll).
func (d *DaneZone) RequestRoll(zoneName, role string) error {
	sz := d.zones.Load().byName[zone.Canonical(zoneName)]
	if sz == nil {
		return fmt.Errorf("no zone %s is served", zoneName)
	}
	if sz.unsigned {
		return fmt.Errorf("%s is served unsigned: it has no keys", sz.origin)
	}
	switch {
	case role == "csk" && d.keyPolicy.Split, (role == "ksk" || role == "zsk") && !d.keyPolicy.Split:
		return fmt.Errorf("role %s does not fit the policy (rollover %s)", role, map[bool]string{true: "split", false: "csk"}[d.keyPolicy.Split])
	case role != "csk" && role != "ksk" && role != "zsk":
		return fmt.Errorf("role %q: want csk, ksk or zsk", role)
	}
	if !d.rolling {
		return errors.New("key rolls need the poll: `reload` is 0 in this danezone block")
	}
	if d.insecure[sz.origin] {
		return fmt.Errorf("%s is going insecure (the insecure directive): no key rolls", sz.origin)
	}
	sz.rollReq.Store(role)
	return nil
}

// rollKeys runs the key policy of sz when due (poll goroutine). It returns true when the keys
// in use no longer match what the key files say now, for checkKeys to reload them.
func (d *DaneZone) rollKeys(cfg *config, sz *servedZone, now time.Time) bool {
	req, _ := sz.rollReq.Swap("").(string)
	if req == "" && now.Before(sz.rollNext) && !sz.parent.answered.Swap(false) {
		return false
	}
	ks, err := keys.Load(cfg.keyDir, sz.origin)
	if err != nil || len(ks.Keys) == 0 {
		return false // checkKeys reports it
	}
	var known map[string]bool
	if had, ok, err := keys.Recorded(cfg.keyDir, sz.origin); err == nil && ok {
		known = map[string]bool{}
		for _, k := range had.Keys {
			known[k] = true
		}
	}
	checker := roll.Checker{Agents: cfg.agents}
	res := roll.Plan(cfg.keyPolicy, roll.Input{Keys: ks.Keys, Now: now, MaxTTL: sz.maxTTL(), Known: known, Roll: req,
		SeenSince: sz.parentSeen, Insecure: cfg.insecure[sz.origin], DeleteDS: ks.DeleteDS, ParentTTL: sz.parentTTL,
		Parent: func() roll.Parent {
			return sz.parent.take(func() roll.Parent {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				dss, ttl, err := checker.ParentDS(ctx, sz.origin)
				return roll.Parent{DS: dss, TTL: ttl, Err: err}
			})
		}})
	sz.parentSeen, sz.parentTTL = res.Seen, res.ParentTTL
	if res.ParentPending && sz.waiting != "" {
		res.Waiting = sz.waiting // no news: what the last answer said stands
	}
	for _, w := range res.Warnings {
		if w != sz.warned {
			sz.warned = w
			log.Warningf("Key policy of %s: %s", sz.origin, w)
		}
	}
	changed := false
	// DELETE is recorded before the keys stop being named by CDS, so that CDS never names
	// nothing in a signed zone (a parent following CDS would keep a DS from its file).
	if res.DeleteDS && !ks.DeleteDS {
		if !setDeleteDS(cfg, sz, true) {
			res.Actions = nil // CDS naming nothing at all would leave a parent's DS as it is
		}
		changed = true
	}
	for _, a := range res.Actions {
		kind := "retime"
		if a.Key == nil {
			kind = "generate"
			_, err = keys.GenerateScheduled(cfg.keyDir, sz.origin, cfg.keyPolicy.Algorithm, a.KSK, uint32(cfg.keyPolicy.DNSKEYTTL/time.Second), a.Timing)
		} else {
			err = keys.SetTiming(a.Key, a.Timing)
		}
		if err != nil {
			keyActions.WithLabelValues(sz.origin, kind, "failed").Inc()
			log.Errorf("Key policy of %s: %s: %v; the keys in use keep signing", sz.origin, a, err)
			continue
		}
		keyActions.WithLabelValues(sz.origin, kind, "ok").Inc()
		log.Infof("Key policy of %s: %s", sz.origin, a)
		changed = true
	}
	if !res.DeleteDS && ks.DeleteDS {
		changed = setDeleteDS(cfg, sz, false) || changed
	}
	if res.DeleteDS && ks.View(now).Unsigned() {
		// Every key withdrawn: insecure on purpose, the key files may go.
		if err := keys.MarkUnsigned(cfg.keyDir, sz.origin); err != nil {
			log.Errorf("Key policy of %s: %v", sz.origin, err)
		}
	}
	sz.rollNext = res.Next
	if sz.rollNext.IsZero() {
		sz.rollNext = now.Add(time.Hour) // nothing scheduled: look again (a lifetime may be set by then)
	}
	keyNextEvent.WithLabelValues(sz.origin).Set(float64(unixOrZero(res.Next)))
	d.reportParentWait(cfg, sz, res, now)
	sz.rollShown.Store(&rollStatus{Next: res.Next, Waiting: res.Waiting})
	if changed {
		if ks, err = keys.Load(cfg.keyDir, sz.origin); err != nil {
			return false
		}
		// The keys the policy made are the zone's own from now on, not keys added by hand.
		if err := keys.Remember(cfg.keyDir, ks); err != nil {
			log.Errorf("Key policy of %s: %v", sz.origin, err)
		}
	}
	cur := sz.signer.Keys()
	return viewKey(ks) != viewKey(cur)
}

// setDeleteDS records whether sz asks its parent to remove its DS, and reports whether it did.
func setDeleteDS(cfg *config, sz *servedZone, on bool) bool {
	action := map[bool]string{true: "delete-ds", false: "sign-again"}[on]
	if err := keys.SetDeleteDS(cfg.keyDir, sz.origin, on); err != nil {
		keyActions.WithLabelValues(sz.origin, action, "failed").Inc()
		log.Errorf("Key policy of %s: %v", sz.origin, err)
		return false
	}
	keyActions.WithLabelValues(sz.origin, action, "ok").Inc()
	if on {
		log.Infof("Key policy of %s: going insecure: CDS and CDNSKEY ask the parent to remove the DS (RFC 8078 DELETE)", sz.origin)
	} else {
		log.Infof("Key policy of %s: secure again: CDS and CDNSKEY name the zone's keys", sz.origin)
	}
	return true
}

// reportParentWait logs a KSK roll that waits for the parent: once when it starts waiting, and
// loudly, hourly, past the policy's parent-warn.
func (d *DaneZone) reportParentWait(cfg *config, sz *servedZone, res roll.Result, now time.Time) {
	if res.Waiting == "" {
		keyParentWait.WithLabelValues(sz.origin).Set(0)
		sz.waiting, sz.waitWarned = "", time.Time{}
		return
	}
	waited := now.Sub(res.Since)
	keyParentWait.WithLabelValues(sz.origin).Set(waited.Seconds())
	if res.Waiting != sz.waiting {
		sz.waiting = res.Waiting
		log.Infof("Key policy of %s: %s", sz.origin, res.Waiting)
	}
	if waited >= cfg.keyPolicy.ParentWarn && now.Sub(sz.waitWarned) >= time.Hour {
		sz.waitWarned = now
		if cfg.insecure[sz.origin] {
			log.Warningf("Key policy of %s: going insecure has waited %v for the parent to remove the DS: %s. Have the parent remove it (CDS and CDNSKEY DELETE ask for it), or check parental_agents",
				sz.origin, waited.Round(time.Second), res.Waiting)
		} else {
			log.Warningf("Key policy of %s: the KSK roll has waited %v for the parent: %s. Give the parent the new DS (CDS and CDNSKEY name it; dsset file in %s), or check parental_agents",
				sz.origin, waited.Round(time.Second), res.Waiting, cfg.keyDir)
		}
	}
}

// viewKey is what a key view publishes and signs with, for comparing two views.
func viewKey(s *keys.Set) string {
	if s == nil {
		return ""
	}
	var b strings.Builder
	for _, k := range s.Published() {
		fmt.Fprintf(&b, "p%d/%d ", k.Tag, k.DNSKEY.Hdr.Ttl)
	}
	for _, k := range s.KSKs() {
		fmt.Fprintf(&b, "k%d ", k.Tag)
	}
	for _, k := range s.ZSKs() {
		fmt.Fprintf(&b, "z%d ", k.Tag)
	}
	for _, c := range s.CDS() {
		fmt.Fprintf(&b, "c%d/%d ", c.(*dns.CDS).KeyTag, c.(*dns.CDS).Algorithm)
	}
	return b.String()
}

// recordKeyStates sets the keys gauge of a zone from the keys in use.
func recordKeyStates(origin string, s *keys.Set) {
	keyStates.WithLabelValues(origin, "published").Set(float64(len(s.Published())))
	active := map[*keys.Key]bool{}
	for _, k := range append(s.KSKs(), s.ZSKs()...) {
		active[k] = true
	}
	keyStates.WithLabelValues(origin, "active").Set(float64(len(active)))
	keyStates.WithLabelValues(origin, "synced").Set(float64(len(s.CDSKeys())))
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// maxTTL is the largest TTL of the data a ZSK signs, negative answers (SOA minimum, RFC 2308
// §5) included: how long a signature a ZSK made may be cached. The DNSKEY, CDS and CDNSKEY
// RRsets are the KSK's.
func (sz *servedZone) maxTTL() time.Duration {
	snap := sz.cur.Load()
	if snap == nil {
		return 0
	}
	var ttl uint32
	snap.z.Sets(func(s *zone.RRset) {
		if s.Type == dns.TypeDNSKEY || s.Type == dns.TypeCDS || s.Type == dns.TypeCDNSKEY {
			return
		}
		ttl = max(ttl, s.TTL)
		if s.Type == dns.TypeSOA {
			for _, rr := range s.RRs {
				if soa, ok := rr.(*dns.SOA); ok {
					ttl = max(ttl, min(soa.Minttl, s.TTL))
				}
			}
		}
	})
	return time.Duration(ttl) * time.Second
}

// followCDS sets, in each parent zone served here, the DS RRset of each child zone served here
// to the child's CDS (RFC 7344 §6: a parent that follows its children's CDS), when it changed.
// A child without CDS keeps whatever its parent's file says.
func (d *DaneZone) followCDS(set *zoneSet) {
	byParent := map[*servedZone][]zone.Edit{}
	for _, child := range set.byName {
		if child.unsigned || child.origin == "." {
			continue
		}
		parentName := zone.Canonical(strings.Join(dns.SplitDomainName(child.origin)[1:], "."))
		parent := set.byName[set.origin(parentName)]
		if parent == nil || parent == child {
			continue
		}
		// The DS keeps the TTL the parent gives it (its file's), else the CDS's.
		ttl := uint32(0)
		if snap := parent.cur.Load(); snap != nil {
			if n := snap.z.Node(child.origin); n != nil && n.Set(dns.TypeDS) != nil {
				ttl = n.Set(dns.TypeDS).TTL
			}
		}
		var dss []dns.RR
		ks := child.signer.Keys()
		cds := ks.CDS()
		if ks.Unsigned() || len(cds) == 1 && isDelete(cds[0]) {
			// DELETE (RFC 8078 §4), or a child taken insecure: no DS.
			byParent[parent] = append(byParent[parent], zone.Edit{Op: zone.Replace, Name: child.origin, Type: dns.TypeDS})
			continue
		}
		for _, c := range cds {
			ds := c.(*dns.CDS).DS
			ds.Hdr.Rrtype = dns.TypeDS
			if ttl != 0 {
				ds.Hdr.Ttl = ttl
			}
			dss = append(dss, &ds)
		}
		if len(dss) == 0 {
			continue
		}
		byParent[parent] = append(byParent[parent], zone.Edit{Op: zone.Replace, Name: child.origin, Type: dns.TypeDS, RRs: dss})
	}
	for parent, edits := range byParent {
		sort.Slice(edits, func(i, j int) bool { return edits[i].Name < edits[j].Name })
		key := fmt.Sprint(edits)
		if key == parent.followed {
			continue
		}
		if err := parent.setManaged(func(m *managedSets) *[]zone.Edit { return &m.ds }, edits); err != nil {
			log.Errorf("follow_cds: the DS of %s's children: %v", parent.origin, err)
			continue
		}
		parent.followed = key
		log.Infof("follow_cds: %s serves the DS its children's CDS name: %s", parent.origin, dsSummary(edits))
	}
}

func dsSummary(edits []zone.Edit) string {
	var parts []string
	for _, e := range edits {
		tags := []string{"none"}
		if len(e.RRs) > 0 {
			tags = nil
		}
		for _, rr := range e.RRs {
			tags = append(tags, fmt.Sprint(rr.(*dns.DS).KeyTag))
		}
		parts = append(parts, e.Name+" DS "+strings.Join(tags, ","))
	}
	return strings.Join(parts, "; ")
}

// parentProbe asks a zone's parental agents off the poll goroutine: agents that do not answer
// would otherwise hold up every zone's reloads for the check's timeout. A plan that needs the
// parent takes the answer that came in since it last asked, or starts asking and gets
// Pending; the answer makes the next poll plan again (answered).
type parentProbe struct {
	mu       sync.Mutex
	running  bool
	ready    *roll.Parent
	answered atomic.Bool
}

func (p *parentProbe) take(ask func() roll.Parent) roll.Parent {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready != nil {
		r := *p.ready
		p.ready = nil
		return r
	}
	if !p.running {
		p.running = true
		go func() {
			r := ask()
			p.mu.Lock()
			p.ready, p.running = &r, false
			p.mu.Unlock()
			p.answered.Store(true)
		}()
	}
	return roll.Parent{Pending: true}
}

// rollStatus is what the last plan of a zone said.
type rollStatus struct {
	Next    time.Time
	Waiting string
}

// KeyStatus reports every signed zone's keys as the key files say now.
func (d *DaneZone) KeyStatus(cfg *config) []roll.ZoneKeys {
	now := time.Now()
	out := []roll.ZoneKeys{}
	set := d.zones.Load()
	names := make([]string, 0, len(set.byName))
	for n := range set.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sz := set.byName[n]
		if sz.unsigned {
			continue
		}
		zk := roll.ZoneKeys{Zone: n, Policy: map[bool]string{true: "split", false: "csk"}[cfg.keyPolicy.Split], Keys: []roll.KeyInfo{}}
		if st := sz.rollShown.Load(); st != nil {
			zk.Next, zk.Waiting = st.Next.UTC(), st.Waiting
		}
		ks := sz.signer.Keys().View(now)
		switch {
		case ks.Unsigned():
			zk.DNSSEC = "insecure"
		case cfg.insecure[n]:
			zk.DNSSEC = "going insecure"
		case ks.DeleteDS && len(ks.CDSKeys()) == 0:
			zk.DNSSEC = "going secure"
		default:
			zk.DNSSEC = "signed"
		}
		for _, k := range ks.Keys {
			role := "zsk"
			if k.IsKSK() {
				role = "ksk"
			}
			zk.Keys = append(zk.Keys, roll.KeyInfo{Tag: k.Tag, Role: role, Algorithm: dns.AlgorithmToString[k.DNSKEY.Algorithm],
				File: k.File, Published: k.Published(now), Active: k.Active(now), Synced: slices.Contains(ks.CDSKeys(), k), Timing: k.Timing})
		}
		out = append(out, zk)
	}
	return out
}

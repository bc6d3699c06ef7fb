package roll

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// Action is one change Plan decides: a new key with its schedule (Key nil), or a new schedule
// for an existing key.
type Action struct {
	Key    *keys.Key // nil: generate
	KSK    bool      // for a new key: the SEP flag
	Timing keys.Timing
	Why    string
}

func (a Action) String() string {
	if a.Key == nil {
		role := "ZSK"
		if a.KSK {
			role = "KSK"
		}
		return fmt.Sprintf("new %s (%s): %s", role, a.Why, a.Timing)
	}
	return fmt.Sprintf("key %d (%s): %s", a.Key.Tag, a.Why, a.Timing)
}

// Parent is what the zone's parental agents serve: the DS RRset every one of them agrees on,
// or the error that kept the check from saying.
type Parent struct {
	DS  []*dns.DS
	TTL time.Duration // the DS RRset's TTL as the parent serves it
	Err error
	// Pending: the agents are being asked; no news yet (the caller plans again once the
	// answer is in).
	Pending bool
}

// has says whether the parent's DS set names k.
func (p Parent) has(k *keys.Key) bool {
	for _, ds := range p.DS {
		if ds.KeyTag != k.Tag || ds.Algorithm != k.DNSKEY.Algorithm {
			continue
		}
		if mine := k.DNSKEY.ToDS(ds.DigestType); mine != nil && strings.EqualFold(mine.Digest, ds.Digest) {
			return true
		}
	}
	return false
}

// Input is what Plan works on.
type Input struct {
	Keys   []*keys.Key
	Now    time.Time
	MaxTTL time.Duration // the largest TTL the zone serves now, negative answers included
	// Known are the keys (base names) the zone had before: a key that is not among them
	// appeared by hand. Nil: no record (every key is taken as known).
	Known map[string]bool
	// Roll asks for a roll of the role now ("ksk", "zsk", "csk"), whatever the lifetimes say.
	Roll string
	// Parent asks the parental agents; Plan calls it only while a KSK roll waits for them.
	Parent func() Parent
	// SeenSince is when the parent was first seen serving the new DS only (Result.Seen of
	// the plan before; zero: not seen yet).
	SeenSince time.Time
	// Insecure: the zone is to go insecure (RFC 8078 §4; the Corefile's `insecure`). DeleteDS:
	// it has asked its parent to remove its DS and no key has been named by CDS since
	// (keys.Set.DeleteDS).
	Insecure, DeleteDS bool
	// ParentTTL is the largest TTL of the DS the parent served while the zone waited for it
	// to go (Result.ParentTTL of the plan before).
	ParentTTL time.Duration
}

// Result is Plan's decision.
type Result struct {
	Actions []Action
	// Next is when Plan must run again: the next event of a schedule, a lifetime's end, or
	// the next check of the parent.
	Next time.Time
	// Waiting says what a KSK roll waits for ("" when none waits); Since is since when.
	Waiting string
	Since   time.Time
	// Seen is when the parent was first seen serving the new DS only, for the next plan's
	// Input.SeenSince (zero: not seen).
	Seen time.Time
	// Warnings are problems the plan works around, for the log.
	Warnings []string
	// DeleteDS is Input.DeleteDS as it must be from now on.
	DeleteDS bool
	// ParentPending: a wait for the parent had no news (Parent.Pending); Waiting then says
	// only what is waited for.
	ParentPending bool
	// ParentTTL is for the next plan's Input.ParentTTL.
	ParentTTL time.Duration
}

// ParentCheckEvery is how often a KSK roll asks the parental agents while it waits: every
// propagation delay, from a second to a minute.
func (p Policy) ParentCheckEvery() time.Duration {
	return min(max(p.Propagation, time.Second), time.Minute)
}

// role is one role of a policy: the CSK, or the KSK, or the ZSK.
type role struct {
	name     string
	sep      bool
	lifetime time.Duration
	syncs    bool // its keys are named by CDS/CDNSKEY (KSK, CSK)
}

func (p Policy) roles() []role {
	if !p.Split {
		return []role{{name: "csk", sep: true, lifetime: p.KSKLifetime, syncs: true}}
	}
	return []role{{name: "ksk", sep: true, lifetime: p.KSKLifetime, syncs: true},
		{name: "zsk", sep: false, lifetime: p.ZSKLifetime}}
}

// Plan decides what the keys of a zone need now under policy p.
func Plan(p Policy, in Input) Result {
	r := Result{DeleteDS: in.DeleteDS}
	next := func(t time.Time) {
		if !t.IsZero() && t.After(in.Now) && (r.Next.IsZero() || t.Before(r.Next)) {
			r.Next = t
		}
	}
	now := in.Now.UTC().Truncate(time.Second)
	retimed := map[*keys.Key]keys.Timing{}
	timing := func(k *keys.Key) keys.Timing {
		if t, ok := retimed[k]; ok {
			return t
		}
		return k.Timing
	}
	set := func(k *keys.Key, t keys.Timing, why string) {
		if !k.Timing.Scheduled() {
			// A key without a schedule is published and signs from when it was loaded; once
			// it has one, from its Publish and Activate: they must say so (keys.Key.Published).
			since := k.Timing.Created
			if since.IsZero() || since.After(now) {
				since = now
			}
			if t.Publish.IsZero() {
				t.Publish = since
			}
			if t.Activate.IsZero() {
				t.Activate = since
			}
		}
		retimed[k] = t
		r.Actions = append(r.Actions, Action{Key: k, Timing: t, Why: why})
	}
	// Ipub counts with the DNSKEY RRset's TTL as caches hold it: the policy's, or the
	// larger TTL of keys already published (made before the policy, or by hand).
	pp := p
	for _, k := range in.Keys {
		if k.Published(in.Now) {
			pp.DNSKEYTTL = max(pp.DNSKEYTTL, time.Duration(k.DNSKEY.Hdr.Ttl)*time.Second)
		}
	}
	ipub := pp.PublishWait()

	// A key that appeared by hand signs only once its DNSKEY has been published for Ipub.
	for _, k := range in.Keys {
		name := baseName(k)
		t := k.Timing
		if in.Known == nil || in.Known[name] || !t.Delete.IsZero() && !t.Delete.After(now) {
			continue
		}
		activate := t.Activate
		if !t.Scheduled() {
			activate = now
		}
		publish := t.Publish
		if publish.IsZero() || publish.Before(now) {
			publish = now // not published before danezone saw it
		}
		if !activate.IsZero() && activate.Before(publish.Add(ipub)) {
			t.Publish, t.Activate = publish, publish.Add(ipub)
			if k.IsKSK() && !t.SyncPublish.IsZero() && t.SyncPublish.Before(t.Activate) {
				t.SyncPublish = t.Activate
			}
			set(k, t, "added by hand: signs once its DNSKEY has been published for "+ipub.String())
		}
	}

	// An algorithm rollover (RFC 6781 §4.1.4): when no key that is not retiring has the
	// policy's algorithm, new keys of it for every role sign everything at once, but their
	// DNSKEYs are published only once the RRsets signed by the old algorithm alone have
	// expired from every cache (a validator holding a DNSKEY RRset of both algorithms wants
	// signatures of both, RFC 4035 §2.2); CDS names the new KSK once its DNSKEY is in every
	// cache. The old keys go once the parent serves the new DS only: their DNSKEYs after the
	// old DS has expired from caches, their signatures one DNSKEY TTL later.
	if in.Insecure && insecure(p, in, &r, timing, set, next, now, ipub) {
		events(in, r.Actions, timing, next)
		return r
	}
	started := algorithmRoll(p, in.Keys, timing, now)
	if started {
		wait := p.Propagation + max(in.MaxTTL, p.MaxTTL, pp.DNSKEYTTL) + p.Safety
		publish := now.Add(wait)
		why := fmt.Sprintf("algorithm rollover to %s", dns.AlgorithmToString[p.Algorithm])
		for _, ro := range p.roles() {
			t := keys.Timing{Publish: publish, Activate: now}
			if ro.syncs {
				t.SyncPublish = publish.Add(ipub)
			}
			r.Actions = append(r.Actions, Action{KSK: ro.sep, Timing: t, Why: why})
		}
		for _, k := range in.Keys {
			t := timing(k)
			if k.IsKSK() && t.Inactive.IsZero() && (t.Delete.IsZero() || t.Delete.After(now)) {
				if t.SyncPublish.IsZero() {
					t.SyncPublish = start(t)
				}
				t.SyncDelete = publish.Add(ipub)
				set(k, t, why+": the old KSK is named by CDS until the new one's DNSKEY is in every cache")
			}
		}
	}

	for _, ro := range p.roles() {
		if started {
			break // the new keys are generated from this plan; the next one follows them
		}
		var pending []*keys.Key // neither retiring nor gone: the current key and its successor
		for _, k := range in.Keys {
			t := timing(k)
			if k.IsKSK() != ro.sep || !t.Inactive.IsZero() || !t.Delete.IsZero() && !t.Delete.After(now) {
				continue
			}
			pending = append(pending, k)
		}
		// Oldest first: by when they sign, or, for the roles CDS names, by when CDS names
		// them (a new KSK signs from the second it is made, like the one it replaces).
		order := func(k *keys.Key) time.Time {
			if t := timing(k); ro.syncs && !t.SyncPublish.IsZero() {
				return t.SyncPublish
			}
			return start(timing(k))
		}
		sort.SliceStable(pending, func(i, j int) bool { return order(pending[i]).Before(order(pending[j])) })
		switch {
		case len(pending) == 0:
			// No key of the role (a new split policy, or every key retiring): one now,
			// published at once when nothing of the role is in the zone yet.
			if in.DeleteDS {
				// Going insecure cancelled after its keys were given their end: the newest of
				// the role, still published, keeps signing, and CDS names it again.
				if k := revivable(in.Keys, ro.sep, timing, now); k != nil {
					t := timing(k)
					t.Inactive, t.Delete = time.Time{}, time.Time{}
					if ro.syncs {
						t.SyncDelete = time.Time{}
					}
					set(k, t, fmt.Sprintf("going insecure cancelled: key %d keeps signing", k.Tag))
					continue
				}
			}
			t := keys.Timing{Publish: now, Activate: now}
			if in.DeleteDS && !anyPublished(in.Keys, now) {
				// Back from insecure (RFC 8078 §3): CDS names the key only once the signed
				// zone has reached every secondary and cache.
				if ro.syncs {
					t.SyncPublish = now.Add(pp.SecureAgainWait(in.MaxTTL))
				}
				r.Actions = append(r.Actions, Action{KSK: ro.sep, Timing: t, Why: "the policy's " + ro.name + ", signing again"})
				continue
			}
			if anyPublished(in.Keys, now) {
				// Caches may hold the DNSKEY RRset without it: it signs only once its DNSKEY
				// is in every cache.
				t.Activate = now.Add(ipub)
			}
			if ro.syncs {
				t.SyncPublish = t.Activate
				if anyPublished(in.Keys, now) {
					t.SyncPublish = t.Activate.Add(ipub) // its DNSKEY signature in every cache first
				}
			}
			r.Actions = append(r.Actions, Action{KSK: ro.sep, Timing: t, Why: "the policy's " + ro.name})
		case len(pending) == 1:
			cur := pending[0]
			ct := timing(cur)
			// A roll whose other key is gone (its file deleted): repair what is left. A key
			// that was to hand over keeps signing and is named by CDS again; a successor that
			// was not to sign yet signs now, as no key signs at all.
			if ro.syncs && !ct.SyncDelete.IsZero() {
				ct.SyncDelete = time.Time{}
				set(cur, ct, fmt.Sprintf("the successor of key %d is gone (its files deleted?): CDS names key %d again", cur.Tag, cur.Tag))
			}
			// Only when no key at all signs: a ZSK waiting for Ipub while a CSK signs the data
			// (the first ZSK of a split policy) is not a repair, its wait is the point.
			if ct.Activate.After(now) && !anyActive(in.Keys, now) {
				ct.Activate = now
				if ro.syncs && ct.SyncPublish.After(now) {
					ct.SyncPublish = now
				}
				set(cur, ct, fmt.Sprintf("no other %s signs (its files deleted?): key %d signs now", strings.ToUpper(ro.name), cur.Tag))
			}
			end := time.Time{}
			if ro.lifetime > 0 {
				end = start(ct).Add(ro.lifetime)
			}
			forced := in.Roll == ro.name
			lead := ipub // the successor is published this long before the lifetime ends
			if !forced && (end.IsZero() || now.Before(end.Add(-lead))) {
				next(end.Add(-lead))
				continue
			}
			why := fmt.Sprintf("%s roll: key %d reached its lifetime", strings.ToUpper(ro.name), cur.Tag)
			if forced {
				why = fmt.Sprintf("%s roll asked for: successor of key %d", strings.ToUpper(ro.name), cur.Tag)
			}
			nt := keys.Timing{Publish: now, Activate: now.Add(ipub)}
			if !forced && end.After(nt.Activate) {
				nt.Activate = end
			}
			if ro.syncs {
				// Double-KSK (RFC 7583 §3.3.2): a KSK signs the DNSKEY RRset from its
				// publication; a CSK, which signs the data too, from Ipub. CDS names it
				// instead of the current key only once its signature over the DNSKEY RRset
				// is in every cache and secondary, Ipub later: a parent acting on CDS at
				// once then serves a DS every DNSKEY RRset around validates with.
				if ro.name == "ksk" {
					nt.Activate = now
				}
				nt.SyncPublish = later(nt.Activate, now).Add(ipub)
				if ct.SyncPublish.IsZero() {
					ct.SyncPublish = start(ct)
				}
				ct.SyncDelete = nt.SyncPublish
			} else {
				// Pre-publication: the current key stops when the successor starts, and
				// its DNSKEY goes once its signatures have expired from every cache.
				ct.Inactive = nt.Activate
				ct.Delete = nt.Activate.Add(p.RetireWait(in.MaxTTL))
			}
			// The successor first: if it cannot be made, the current key's schedule stays.
			r.Actions = append(r.Actions, Action{KSK: ro.sep, Timing: nt, Why: why})
			set(cur, ct, why)
		default:
			if len(pending) > 2 {
				var tags []string
				for _, k := range pending {
					tags = append(tags, fmt.Sprint(k.Tag))
				}
				r.Warnings = append(r.Warnings, fmt.Sprintf("%d %s keys neither retiring nor gone (%s): one roll at a time has two; "+
					"did two signers run the key policy on one key directory, or were keys added by hand?", len(pending), strings.ToUpper(ro.name), strings.Join(tags, " ")))
			}
			// A roll under way. For the ZSK it is all in the schedules already; a KSK or
			// CSK waits for the parent before its predecessor goes.
			if !ro.syncs {
				continue
			}
			succ := pending[len(pending)-1]
			st := timing(succ)
			for _, cur := range pending[:len(pending)-1] {
				ct := timing(cur)
				if st.SyncPublish.IsZero() || now.Before(st.SyncPublish) {
					next(st.SyncPublish)
					continue
				}
				parent := Parent{Err: fmt.Errorf("no parental agents to ask")}
				if in.Parent != nil {
					parent = in.Parent()
				}
				if parent.Pending {
					r.ParentPending, r.Seen, r.Since = true, in.SeenSince, st.SyncPublish
					r.Waiting = fmt.Sprintf("%s roll: waiting for the parent to serve the DS of key %d instead of key %d's", strings.ToUpper(ro.name), succ.Tag, cur.Tag)
					next(now.Add(p.ParentCheckEvery()))
					continue
				}
				swapped := parent.Err == nil && parent.has(succ) && !parent.has(cur)
				if swapped && in.SeenSince.IsZero() {
					// First seen: it must hold for the parent's propagation delay too,
					// asked again (one answer may be a stale or forged one).
					r.Seen = now
					r.Waiting = fmt.Sprintf("%s roll: the parent serves the DS of key %d instead of key %d's; confirming after %v",
						strings.ToUpper(ro.name), succ.Tag, cur.Tag, p.ParentPropagation)
					r.Since = st.SyncPublish
					next(now.Add(max(p.ParentPropagation, time.Second)))
					continue
				}
				if swapped && now.Before(in.SeenSince.Add(p.ParentPropagation)) {
					r.Seen = in.SeenSince
					r.Waiting = fmt.Sprintf("%s roll: the parent serves the DS of key %d instead of key %d's since %s; confirming",
						strings.ToUpper(ro.name), succ.Tag, cur.Tag, in.SeenSince.Format(time.RFC3339))
					r.Since = st.SyncPublish
					next(in.SeenSince.Add(p.ParentPropagation))
					continue
				}
				if swapped {
					why := fmt.Sprintf("the parent serves the DS of key %d and no longer that of key %d", succ.Tag, cur.Tag)
					// The old DS leaves caches after its TTL (the larger of the policy's and
					// what the parent serves); the old key's own signatures after theirs:
					// the DNSKEY RRset's for a KSK, all the data's for a CSK.
					dsWait := p.DSWait() + max(0, parent.TTL-p.ParentDSTTL)
					sigWait := pp.PublishWait()
					if ro.name == "csk" {
						sigWait = p.RetireWait(in.MaxTTL)
					}
					retire := later(now.Add(dsWait), later(st.Activate, now).Add(sigWait))
					if cur.DNSKEY.Algorithm == succ.DNSKEY.Algorithm {
						ct.Inactive = retire
						ct.Delete = ct.Inactive
						set(cur, ct, why)
						continue
					}
					// The end of an algorithm rollover: every key of the old algorithm goes,
					// the DNSKEYs first, the signatures one DNSKEY TTL later.
					for _, k := range in.Keys {
						kt := timing(k)
						if k.DNSKEY.Algorithm != cur.DNSKEY.Algorithm || !kt.Inactive.IsZero() {
							continue
						}
						kt.Delete = now.Add(dsWait)
						kt.Inactive = kt.Delete.Add(ipub)
						set(k, kt, why+": the old algorithm goes")
					}
					continue
				}
				r.Waiting = fmt.Sprintf("%s roll: waiting for the parent to serve the DS of key %d instead of key %d's", strings.ToUpper(ro.name), succ.Tag, cur.Tag)
				if parent.Err != nil {
					r.Waiting += " (" + parent.Err.Error() + ")"
				} else {
					r.Waiting += fmt.Sprintf(" (it serves %s)", dsTags(parent.DS))
				}
				r.Since = st.SyncPublish
				next(now.Add(p.ParentCheckEvery()))
			}
		}
	}
	// Back from insecure once CDS names a key again.
	if v, _ := viewAt(in.Keys, timing, now); r.DeleteDS && len(v.CDSKeys()) > 0 {
		r.DeleteDS = false
	}
	events(in, r.Actions, timing, next)
	return r
}

// events passes the times to come of every schedule, the new ones included, to next.
func events(in Input, actions []Action, timing func(*keys.Key) keys.Timing, next func(time.Time)) {
	for _, k := range in.Keys {
		for _, e := range timing(k).Events(in.Now) {
			next(e)
		}
	}
	for _, a := range actions {
		for _, e := range a.Timing.Events(in.Now) {
			next(e)
		}
	}
}

// insecure takes a zone insecure (RFC 8078 §4, RFC 6781 §4.3.2): CDS and CDNSKEY become the
// DELETE records, every key in use keeps signing until the parent serves no DS (asked twice,
// like a KSK roll), that DS has expired from every cache and so have the DNSKEY RRsets it
// made secure; then the DNSKEYs and signatures go, and the zone is served unsigned. It
// returns false when a KSK roll under way must end first (the plan goes on with it).
func insecure(p Policy, in Input, r *Result, timing func(*keys.Key) keys.Timing, set func(*keys.Key, keys.Timing, string),
	next func(time.Time), now time.Time, ipub time.Duration) bool {
	var live []*keys.Key // keys not retiring: they keep the zone signed until the parent lets go
	ksks := 0
	for _, k := range in.Keys {
		t := timing(k)
		if t.Inactive.IsZero() && (t.Delete.IsZero() || t.Delete.After(now)) {
			live = append(live, k)
			if k.IsKSK() {
				ksks++
			}
		}
	}
	if len(live) == 0 {
		return true // insecure, or the last keys retiring on their schedule
	}
	if !in.DeleteDS && ksks > 1 {
		// A KSK roll under way ends first: going insecure, cancelled, then has one key for
		// CDS to name again.
		return false
	}
	r.DeleteDS = true
	// CDS names no key from now: every key it names (by the one rule, keys.Set.CDSKeys, which
	// also covers keys without any sync schedule) or is to name stops being named.
	v, orig := viewAt(in.Keys, timing, now)
	named := map[*keys.Key]bool{}
	for _, c := range v.CDSKeys() {
		named[orig[c]] = true
	}
	synced := false
	for _, k := range live {
		t := timing(k)
		later := !t.SyncPublish.IsZero() && t.SyncPublish.After(now) && (t.SyncDelete.IsZero() || t.SyncDelete.After(t.SyncPublish))
		if !later && !named[k] {
			continue
		}
		synced = true
		if t.SyncPublish.IsZero() || t.SyncPublish.After(now) {
			t.SyncPublish = start(t)
			if t.SyncPublish.IsZero() || t.SyncPublish.After(now) {
				t.SyncPublish = now
			}
		}
		t.SyncDelete = now
		set(k, t, "going insecure: CDS and CDNSKEY ask the parent to remove the DS (RFC 8078 DELETE)")
	}
	if synced || !in.DeleteDS {
		// DELETE is published by the keys just retimed and the state the caller records;
		// the parent is asked from the next plan on.
		next(now.Add(time.Second))
		return true
	}
	// Since when the zone has asked: its keys stopped being named by CDS then.
	since := time.Time{}
	for _, k := range in.Keys {
		if t := timing(k); !t.SyncDelete.After(now) && t.SyncDelete.After(since) {
			since = t.SyncDelete
		}
	}
	if since.IsZero() {
		since = now
	}
	r.Since = since
	r.ParentTTL = in.ParentTTL
	parent := Parent{Err: fmt.Errorf("no parental agents to ask")}
	if in.Parent != nil {
		parent = in.Parent()
	}
	gone := parent.Err == nil && len(parent.DS) == 0
	switch {
	case parent.Pending:
		r.ParentPending, r.Seen = true, in.SeenSince
		r.Waiting = "going insecure: waiting for the parent to remove the DS"
		next(now.Add(p.ParentCheckEvery()))
	case gone && in.SeenSince.IsZero():
		r.Seen = now
		r.Waiting = fmt.Sprintf("going insecure: the parent serves no DS; confirming after %v", p.ParentPropagation)
		next(now.Add(max(p.ParentPropagation, time.Second)))
	case gone && now.Before(in.SeenSince.Add(p.ParentPropagation)):
		r.Seen = in.SeenSince
		r.Waiting = "going insecure: the parent serves no DS since " + in.SeenSince.Format(time.RFC3339) + "; confirming"
		next(in.SeenSince.Add(p.ParentPropagation))
	case gone:
		// The DS leaves caches after its TTL (the larger of the policy's and the one the
		// parent served); a validator that made its DNSKEY RRset secure with it just before
		// keeps that a DNSKEY TTL longer, and wants signatures until then. Then every key
		// goes, DNSKEY and signatures together (a ZSK retiring from a roll, an old algorithm's
		// key too, none later than the rest): every state is a whole zone.
		end := now.Add(p.DSWait() + max(0, in.ParentTTL-p.ParentDSTTL) + ipub)
		for _, k := range in.Keys {
			t := timing(k)
			if !t.Delete.IsZero() && !t.Delete.After(now) && !t.Inactive.After(now) {
				continue // gone already
			}
			if t.Delete.IsZero() || t.Delete.After(end) {
				t.Delete = end
			}
			if t.Inactive.IsZero() || t.Inactive.After(end) {
				t.Inactive = end
			}
			set(k, t, "going insecure: the parent serves no DS")
		}
		r.ParentTTL = 0
	default:
		r.ParentTTL = max(in.ParentTTL, parent.TTL)
		r.Waiting = "going insecure: waiting for the parent to remove the DS"
		if parent.Err != nil {
			r.Waiting += " (" + parent.Err.Error() + ")"
		} else {
			r.Waiting += fmt.Sprintf(" (it serves %s)", dsTags(parent.DS))
		}
		next(now.Add(p.ParentCheckEvery()))
	}
	return true
}

// revivable is the newest key of a role (SEP flag sep) that still is published and signs but
// has an end: one that going insecure retired.
func revivable(ks []*keys.Key, sep bool, timing func(*keys.Key) keys.Timing, now time.Time) *keys.Key {
	var best *keys.Key
	for _, k := range ks {
		t := timing(k)
		if k.IsKSK() != sep || t.Delete.IsZero() || !t.Delete.After(now) || !t.Inactive.After(now) {
			continue
		}
		if best == nil || start(t).After(start(timing(best))) {
			best = k
		}
	}
	return best
}

// viewAt is the keys with the schedules of this plan as a key set at now, for the rules
// keys.Set owns (which keys CDS names).
func viewAt(ks []*keys.Key, timing func(*keys.Key) keys.Timing, now time.Time) (*keys.Set, map[*keys.Key]*keys.Key) {
	s := &keys.Set{At: now}
	orig := map[*keys.Key]*keys.Key{}
	for _, k := range ks {
		c := *k
		c.Timing = timing(k)
		s.Keys = append(s.Keys, &c)
		orig[&c] = k
	}
	return s, orig
}

// start is when a key started signing, or will: Activate, else Publish, else Created.
func start(t keys.Timing) time.Time {
	for _, at := range []time.Time{t.Activate, t.Publish, t.Created} {
		if !at.IsZero() {
			return at
		}
	}
	return time.Time{}
}

// algorithmRoll says whether an algorithm rollover must start: some key is in use, and no key
// that is not retiring has the policy's algorithm.
func algorithmRoll(p Policy, ks []*keys.Key, timing func(*keys.Key) keys.Timing, now time.Time) bool {
	if p.Algorithm == 0 {
		return false
	}
	inUse := false
	for _, k := range ks {
		t := timing(k)
		if !t.Inactive.IsZero() || !t.Delete.IsZero() && !t.Delete.After(now) {
			continue
		}
		if k.DNSKEY.Algorithm == p.Algorithm {
			return false
		}
		inUse = true
	}
	return inUse
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// anyActive says whether a key signs at now.
func anyActive(ks []*keys.Key, now time.Time) bool {
	for _, k := range ks {
		if k.Active(now) {
			return true
		}
	}
	return false
}

// anyPublished says whether a key is published at now.
func anyPublished(ks []*keys.Key, now time.Time) bool {
	for _, k := range ks {
		if k.Published(now) {
			return true
		}
	}
	return false
}

func baseName(k *keys.Key) string {
	name := k.File
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSuffix(name, ".key")
}

func dsTags(dss []*dns.DS) string {
	if len(dss) == 0 {
		return "no DS"
	}
	var tags []string
	for _, ds := range dss {
		tags = append(tags, fmt.Sprintf("DS %d", ds.KeyTag))
	}
	return strings.Join(tags, ", ")
}

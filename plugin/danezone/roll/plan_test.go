package roll

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// sec is a policy of seconds, as the tests of real rolls use.
func sec() Policy {
	return Policy{Algorithm: dns.ECDSAP256SHA256, DNSKEYTTL: 2 * time.Second, MaxTTL: 3 * time.Second,
		Propagation: time.Second, Safety: time.Second, ParentDSTTL: 2 * time.Second, ParentPropagation: time.Second, ParentWarn: time.Minute}
}

// world plays Plan's actions on real key files, as danezone does, and answers for a parent
// that follows the zone's CDS at once.
type world struct {
	t      *testing.T
	dir    string
	p      Policy
	now    time.Time
	parent []*dns.DS
	seen   time.Time // Result.Seen of the last plan
	// insecure is the Corefile's `insecure` for the zone.
	insecure bool
}

func (w *world) keys() []*keys.Key {
	s, err := keys.Load(w.dir, "example.test.")
	if err != nil {
		w.t.Fatal(err)
	}
	return s.Keys
}

func (w *world) set() *keys.Set {
	s, err := keys.Load(w.dir, "example.test.")
	if err != nil {
		w.t.Fatal(err)
	}
	return s.View(w.now)
}

func (w *world) step(roll string) Result {
	w.t.Helper()
	s := w.set()
	r := Plan(w.p, Input{Keys: s.Keys, Now: w.now, MaxTTL: 2 * time.Second, Roll: roll, SeenSince: w.seen,
		Insecure: w.insecure, DeleteDS: s.DeleteDS,
		Parent: func() Parent { return Parent{DS: w.parent} }})
	w.seen = r.Seen
	if r.DeleteDS != s.DeleteDS {
		w.t.Logf("%v: DeleteDS %v", w.now.Format("15:04:05"), r.DeleteDS)
		if err := keys.SetDeleteDS(w.dir, "example.test.", r.DeleteDS); err != nil {
			w.t.Fatal(err)
		}
	}
	for _, a := range r.Actions {
		w.t.Logf("%v: %v", w.now.Format("15:04:05"), a)
		if a.Key == nil {
			if _, err := keys.GenerateScheduled(w.dir, "example.test.", w.p.Algorithm, a.KSK, uint32(w.p.DNSKEYTTL/time.Second), a.Timing); err != nil {
				w.t.Fatal(err)
			}
		} else if err := keys.SetTiming(a.Key, a.Timing); err != nil {
			w.t.Fatal(err)
		}
	}
	return r
}

// view is the zone's keys at the world's time: published, signing and CDS tags.
func (w *world) view() (pub, sign, cds []uint16) {
	s := w.set()
	for _, k := range s.Published() {
		pub = append(pub, k.Tag)
	}
	for _, k := range append(s.KSKs(), s.ZSKs()...) {
		sign = append(sign, k.Tag)
	}
	for _, c := range s.CDS() {
		cds = append(cds, c.(*dns.CDS).KeyTag)
	}
	return
}

// run advances to each event Plan names until none is left or until stop, following the
// zone's CDS at the parent when follow.
func (w *world) run(until time.Time, follow bool) {
	for i := 0; i < 100; i++ {
		r := w.step("")
		if follow {
			w.parent = nil
			for _, c := range w.set().CDS() {
				ds := c.(*dns.CDS).DS
				if ds.Algorithm == 0 { // DELETE (RFC 8078 §4)
					break
				}
				w.parent = append(w.parent, &ds)
			}
		}
		if r.Next.IsZero() || r.Next.After(until) {
			return
		}
		w.now = r.Next
	}
	w.t.Fatal("no end after 100 steps")
}

func newWorld(t *testing.T, p Policy) *world {
	w := &world{t: t, dir: t.TempDir(), p: p, now: time.Now().UTC().Truncate(time.Second)}
	w.step("") // the policy's first keys
	return w
}

// TestZSKRoll: pre-publication. The successor is published, signs only after Ipub, and the
// old DNSKEY stays until its signatures have expired from caches.
func TestZSKRoll(t *testing.T) {
	p := sec()
	p.Split = true
	w := newWorld(t, p)
	if ks := w.keys(); len(ks) != 2 {
		t.Fatalf("split policy: %d keys", len(ks))
	}
	_, sign0, _ := w.view()
	w.step("zsk")
	start := w.now
	pub, sign, _ := w.view()
	if len(pub) != 3 || len(sign) != 2 || sign[1] != sign0[1] {
		t.Fatalf("at the start of the roll: published %v signing %v (before: %v)", pub, sign, sign0)
	}
	w.now = start.Add(p.PublishWait() - time.Second)
	if _, sign, _ = w.view(); sign[1] != sign0[1] {
		t.Fatalf("the successor signs before Ipub: %v", sign)
	}
	w.now = start.Add(p.PublishWait())
	pub, sign, _ = w.view()
	if sign[1] == sign0[1] || len(pub) != 3 {
		t.Fatalf("at Ipub: published %v signing %v: want the successor signing, the old DNSKEY still there", pub, sign)
	}
	w.now = start.Add(p.PublishWait() + p.RetireWait(2*time.Second))
	w.run(w.now.Add(time.Minute), false)
	if pub, _, _ = w.view(); len(pub) != 2 {
		t.Fatalf("after the roll: published %v", pub)
	}
}

// TestKSKRoll: double-KSK with CDS. CDS moves to the successor after Ipub; the old KSK waits
// for the parent's DS, then for the DS TTL.
func TestKSKRoll(t *testing.T) {
	for _, split := range []bool{false, true} {
		p := sec()
		p.Split = split
		w := newWorld(t, p)
		w.run(w.now, true)
		_, _, cds0 := w.view()
		if len(cds0) != 1 {
			t.Fatalf("split %v: CDS %v", split, cds0)
		}
		role := "csk"
		if split {
			role = "ksk"
		}
		w.step(role)
		start := w.now
		pub, _, cds := w.view()
		if len(cds) != 1 || cds[0] != cds0[0] {
			t.Fatalf("split %v at the start: CDS %v, want the old key's %v", split, cds, cds0)
		}
		// The parent never follows: the old key stays, and Plan says what it waits for.
		w.now = start.Add(10 * p.PublishWait())
		r := w.step("")
		if !strings.Contains(r.Waiting, "waiting for the parent to serve the DS") || r.Next != w.now.Add(p.ParentCheckEvery()) {
			t.Fatalf("split %v: waiting %q next %v", split, r.Waiting, r.Next)
		}
		if pub2, _, cds := w.view(); len(pub2) != len(pub) || len(cds) != 1 || cds[0] == cds0[0] {
			t.Fatalf("split %v waiting: published %v (was %v) CDS %v", split, pub2, pub, cds)
		}
		// The parent follows the CDS: the old key goes after the DS wait.
		w.run(w.now.Add(time.Hour), true)
		pub, _, cds = w.view()
		want := 1
		if split {
			want = 2
		}
		if len(pub) != want || len(cds) != 1 || cds[0] == cds0[0] {
			t.Fatalf("split %v after the roll: published %v CDS %v (old %v)", split, pub, cds, cds0)
		}
	}
}

// TestHandAddedKey: a key that appears in the directory, active at once by its own files
// (dnssec-keygen's default), signs only after Ipub.
func TestHandAddedKey(t *testing.T) {
	p := sec()
	w := newWorld(t, p)
	known := map[string]bool{}
	for _, k := range w.keys() {
		known[baseName(k)] = true
	}
	if _, err := keys.GenerateScheduled(w.dir, "example.test.", p.Algorithm, false, 2, keys.Timing{Publish: w.now, Activate: w.now}); err != nil {
		t.Fatal(err)
	}
	r := Plan(p, Input{Keys: w.keys(), Now: w.now, Known: known})
	if len(r.Actions) != 1 || !strings.Contains(r.Actions[0].Why, "added by hand") || !r.Actions[0].Timing.Activate.Equal(w.now.Add(p.PublishWait())) {
		t.Fatalf("actions %v", r.Actions)
	}
}

// TestPolicyCheck: a lifetime shorter than a roll is refused, naming both.
func TestPolicyCheck(t *testing.T) {
	p := sec()
	p.Split, p.ZSKLifetime, p.KSKLifetime = true, 3*time.Second, 4*time.Second
	err := p.Check()
	if err == nil || !strings.Contains(err.Error(), "zsk lifetime 3s is shorter than a ZSK roll takes") || !strings.Contains(err.Error(), "ksk lifetime 4s") {
		t.Fatalf("err = %v", err)
	}
	p.ZSKLifetime, p.KSKLifetime = time.Hour, time.Hour
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestKeyDeletedMidRoll: a CSK roll whose successor's files are deleted hands CDS back to the
// old key; one whose old key's files are deleted has the successor sign at once.
func TestKeyDeletedMidRoll(t *testing.T) {
	for _, gone := range []string{"successor", "current"} {
		p := sec()
		w := newWorld(t, p)
		old := w.keys()[0]
		w.step("csk")
		var succ *keys.Key
		for _, k := range w.keys() {
			if k.Tag != old.Tag {
				succ = k
			}
		}
		w.now = w.now.Add(time.Second) // the successor neither signs nor is in CDS yet
		del := succ
		if gone == "current" {
			del = old
		}
		for _, ext := range []string{".key", ".private"} {
			if err := os.Remove(strings.TrimSuffix(del.File, ".key") + ext); err != nil {
				t.Fatal(err)
			}
		}
		r := w.step("")
		if len(r.Actions) == 0 {
			t.Fatalf("%s deleted: no repair", gone)
		}
		_, sign, cds := w.view()
		left := old.Tag
		if gone == "current" {
			left = succ.Tag
		}
		if len(sign) != 2 || sign[0] != left || len(cds) != 1 || cds[0] != left {
			t.Errorf("%s deleted: signing %v CDS %v, want key %d for both (%v)", gone, sign, cds, left, r.Actions)
		}
	}
}

// invariants checks what a validator needs at every moment (RFC 4035 §2.2): each algorithm of
// the DNSKEY RRset signs the DNSKEY RRset and the zone's data, and CDS names published keys.
func (w *world) invariants() {
	w.t.Helper()
	s := (&keys.Set{Zone: "example.test.", Keys: w.keys()}).View(w.now)
	algs := map[uint8]bool{}
	for _, k := range s.Published() {
		algs[k.DNSKEY.Algorithm] = true
	}
	for alg := range algs {
		for role, signers := range map[string][]*keys.Key{"DNSKEY": s.KSKs(), "data": s.ZSKs()} {
			ok := false
			for _, k := range signers {
				ok = ok || k.DNSKEY.Algorithm == alg
			}
			if !ok {
				w.t.Errorf("%s: algorithm %d is in the DNSKEY RRset but does not sign the %s", w.now.Format("15:04:05"), alg, role)
			}
		}
	}
	pub := map[uint16]bool{}
	for _, k := range s.Published() {
		pub[k.Tag] = true
	}
	for _, c := range s.CDS() {
		if !pub[c.(*dns.CDS).KeyTag] {
			w.t.Errorf("%s: CDS names key %d, which is not published", w.now.Format("15:04:05"), c.(*dns.CDS).KeyTag)
		}
	}
}

// TestAlgorithmRoll: ECDSAP256SHA256 to ED25519, for a CSK and for a KSK and ZSK: the zone
// holds every invariant at every event, and ends with the new algorithm only.
func TestAlgorithmRoll(t *testing.T) {
	for _, split := range []bool{false, true} {
		p := sec()
		p.Split = split
		w := newWorld(t, p)
		w.run(w.now, true)
		w.p.Algorithm = dns.ED25519
		start := w.now
		for i := 0; i < 100; i++ {
			r := w.step("")
			w.parent = nil
			for _, c := range w.set().CDS() {
				ds := c.(*dns.CDS).DS
				if ds.Algorithm == 0 { // DELETE (RFC 8078 §4)
					break
				}
				w.parent = append(w.parent, &ds)
			}
			w.invariants()
			if r.Next.IsZero() || r.Next.After(start.Add(time.Hour)) {
				break
			}
			w.now = r.Next
		}
		s := (&keys.Set{Zone: "example.test.", Keys: w.keys()}).View(w.now)
		want := 1
		if split {
			want = 2
		}
		if pub := s.Published(); len(pub) != want || pub[0].DNSKEY.Algorithm != dns.ED25519 || len(s.ZSKs()) == 0 || s.ZSKs()[0].DNSKEY.Algorithm != dns.ED25519 {
			t.Fatalf("split %v after the roll (%v): published %d keys", split, w.now.Sub(start), len(pub))
		}
		t.Logf("split %v: algorithm rollover in %v of zone time", split, w.now.Sub(start))
	}
}

// TestTooManyPending: three keys of a role that neither retire nor go (two signers running the
// policy on one directory) are reported.
func TestTooManyPending(t *testing.T) {
	p := sec()
	w := newWorld(t, p)
	for range 2 {
		if _, err := keys.GenerateScheduled(w.dir, "example.test.", p.Algorithm, true, 2, keys.Timing{Publish: w.now, Activate: w.now}); err != nil {
			t.Fatal(err)
		}
	}
	r := Plan(p, Input{Keys: w.keys(), Now: w.now})
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "3 CSK keys neither retiring nor gone") {
		t.Errorf("warnings %q", r.Warnings)
	}
}

// TestFirstZSKWaits: a split policy over a zone with a CSK pre-publishes its first ZSK: it
// signs only after Ipub, the CSK signing meanwhile (no repair makes it sign early).
func TestFirstZSKWaits(t *testing.T) {
	p := sec()
	w := newWorld(t, p) // a CSK
	w.p.Split = true
	w.step("")
	w.now = w.now.Add(time.Second)
	r := w.step("")
	for _, a := range r.Actions {
		t.Errorf("unexpected action: %v", a)
	}
	_, sign, _ := w.view()
	ks := w.keys()
	for _, k := range ks {
		if !k.IsKSK() && k.Active(w.now) {
			t.Errorf("the new ZSK %d signs %v after it was published, before Ipub (%v)", k.Tag, time.Second, p.PublishWait())
		}
	}
	if len(sign) != 2 {
		t.Errorf("signing %v, want the CSK for both roles", sign)
	}
}

// TestInsecureAndBack: the zone goes insecure (RFC 8078 DELETE), the keys go only after the
// parent has removed the DS and it has expired from caches; then it is signed again, and CDS
// names the new key only once the signed zone has reached every cache.
func TestInsecureAndBack(t *testing.T) {
	for _, split := range []bool{false, true} {
		p := sec()
		p.Split = split
		w := newWorld(t, p)
		w.run(w.now, true)
		if len(w.parent) != 1 {
			t.Fatalf("split %v: parent DS %v", split, w.parent)
		}
		w.insecure = true
		w.step("")
		s := w.set()
		if cds, cdnskey := s.CDS(), s.CDNSKEY(); !s.DeleteDS || len(cds) != 1 || cds[0].String() != "example.test.\t2\tIN\tCDS\t0 0 0 00" ||
			len(cdnskey) != 1 || cdnskey[0].String() != "example.test.\t2\tIN\tCDNSKEY\t0 3 0 AA==" {
			t.Fatalf("split %v going insecure: DeleteDS %v CDS %v CDNSKEY %v", split, s.DeleteDS, cds, cdnskey)
		}
		// The parent does not act: the keys stay.
		w.now = w.now.Add(time.Hour)
		r := w.step("")
		if pub, sign, _ := w.view(); !strings.Contains(r.Waiting, "waiting for the parent to remove the DS") || len(pub) == 0 || len(sign) == 0 {
			t.Fatalf("split %v: waiting %q, published %v signing %v", split, r.Waiting, pub, sign)
		}
		// The parent follows: the DS goes now.
		gone := w.now
		var unpublished, unsigned time.Time
		for i := 0; i < 100 && unsigned.IsZero(); i++ {
			r := w.step("")
			w.parent = nil
			pub, sign, _ := w.view()
			if len(pub) == 0 && unpublished.IsZero() {
				unpublished = w.now
			}
			if len(pub) == 0 && len(sign) == 0 {
				unsigned = w.now
				break
			}
			if r.Next.IsZero() {
				t.Fatalf("split %v: no next event, published %v signing %v", split, pub, sign)
			}
			w.now = r.Next
		}
		if !w.set().Unsigned() {
			t.Fatalf("split %v: never unsigned", split)
		}
		// Confirmed after the parent's propagation, then the DS TTL in caches and the DNSKEY
		// TTL of the RRsets it made secure; DNSKEYs and signatures go together.
		if min := gone.Add(p.ParentPropagation + p.DSWait() + p.PublishWait()); unpublished.Before(min) {
			t.Errorf("split %v: DNSKEYs gone at %v, before %v", split, unpublished, min)
		}
		if !unsigned.Equal(unpublished) {
			t.Errorf("split %v: DNSKEYs gone at %v, signatures at %v", split, unpublished, unsigned)
		}
		if r := w.step(""); len(r.Actions) != 0 || !r.DeleteDS {
			t.Fatalf("split %v: insecure, the plan still acts: %+v", split, r)
		}
		// Back: new keys sign at once; CDS stays DELETE until the signed zone is in every cache.
		w.insecure = false
		back := w.now
		w.step("")
		pub, sign, cds := w.view()
		if len(pub) == 0 || len(sign) == 0 || len(cds) != 1 || cds[0] != 0 {
			t.Fatalf("split %v back: published %v signing %v CDS %v", split, pub, sign, cds)
		}
		w.run(back.Add(time.Hour), true)
		s = w.set()
		if _, _, cds = w.view(); len(cds) != 1 || cds[0] == 0 || s.DeleteDS || len(w.parent) != 1 {
			t.Fatalf("split %v back: CDS %v DeleteDS %v parent %v", split, cds, s.DeleteDS, w.parent)
		}
		for _, k := range s.CDSKeys() {
			if wait := p.Propagation + p.MaxTTL + p.Safety; k.Timing.SyncPublish.Before(back.Add(wait)) {
				t.Errorf("split %v: CDS names key %d from %v, before %v", split, k.Tag, k.Timing.SyncPublish, back.Add(wait))
			}
		}
	}
}

// TestUnscheduledKeyRetimed: a key without a schedule (made before rollovers, or by a tool
// that writes none) keeps being published and signing when a roll gives it one.
func TestUnscheduledKeyRetimed(t *testing.T) {
	dir := t.TempDir()
	k, err := keys.Generate(dir, "example.test.", dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.SetTiming(k, keys.Timing{Created: k.Timing.Created}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, p: sec(), now: time.Now().UTC().Truncate(time.Second)}
	w.step("csk")
	pub, sign, cds := w.view()
	if len(pub) != 2 || len(sign) != 2 || sign[0] != k.Tag || sign[1] != k.Tag || len(cds) != 1 || cds[0] != k.Tag {
		t.Fatalf("after a roll began: published %v signing %v CDS %v; want key %d published, signing and in CDS", pub, sign, cds, k.Tag)
	}
}

// TestInsecureCancelledDuringKSKRoll: `insecure` set while a KSK roll waits for the parent,
// then removed: going insecure waits for the roll, and CDS never stays DELETE.
func TestInsecureCancelledDuringKSKRoll(t *testing.T) {
	for _, split := range []bool{false, true} {
		p := sec()
		p.Split = split
		w := newWorld(t, p)
		w.run(w.now, true)
		role := "csk"
		if split {
			role = "ksk"
		}
		w.step(role)
		// advance past the successor's SyncPublish, parent does not follow
		w.now = w.now.Add(10 * p.PublishWait())
		w.step("")
		_, _, cds := w.view()
		t.Logf("split %v: mid roll CDS %v parent %v", split, cds, w.parent)
		w.insecure = true
		w.step("")
		_, _, cds = w.view()
		t.Logf("split %v: insecure CDS %v", split, cds)
		w.now = w.now.Add(time.Second)
		w.step("")
		// cancel
		w.insecure = false
		for i := 0; i < 20; i++ {
			r := w.step("")
			if r.Next.IsZero() {
				break
			}
			w.now = r.Next
		}
		s := w.set()
		_, _, cds = w.view()
		t.Logf("split %v: after cancel CDS %v DeleteDS %v", split, cds, s.DeleteDS)
		if len(cds) == 0 || cds[0] == 0 || s.DeleteDS {
			t.Errorf("split %v: cancelled, but CDS is %v (DeleteDS %v)", split, cds, s.DeleteDS)
		}
		// The roll goes on: the parent follows, the old key goes.
		w.run(w.now.Add(time.Hour), true)
		if pub, _, cds := w.view(); len(cds) != 1 || cds[0] == 0 || len(pub) != map[bool]int{false: 1, true: 2}[split] {
			t.Errorf("split %v: after the roll: published %v CDS %v", split, pub, cds)
		}
	}
}

// TestInsecureAfterKSKRoll: `insecure` set while a KSK roll waits for the parent: the roll
// ends first (the parent follows), then the zone goes insecure.
func TestInsecureAfterKSKRoll(t *testing.T) {
	p := sec()
	w := newWorld(t, p)
	w.run(w.now, true)
	w.step("csk")
	w.now = w.now.Add(10 * p.PublishWait())
	w.insecure = true
	if r := w.step(""); !strings.Contains(r.Waiting, "waiting for the parent to serve the DS") {
		t.Fatalf("insecure during a roll: waiting %q, want the roll's", r.Waiting)
	}
	if s := w.set(); s.DeleteDS {
		t.Fatal("DELETE during a KSK roll")
	}
	w.run(w.now.Add(time.Hour), true)
	if pub, sign, _ := w.view(); len(pub) != 0 || len(sign) != 0 || !w.set().Unsigned() {
		t.Fatalf("after the roll and going insecure: published %v signing %v", pub, sign)
	}
}

// TestInsecureCancelledAfterDSGone: cancelled after the parent removed the DS and the keys
// were given their end: the same keys sign on, and CDS names only a key published for Ipub.
func TestInsecureCancelledAfterDSGone(t *testing.T) {
	for _, split := range []bool{false, true} {
		p := sec()
		p.Split = split
		w := newWorld(t, p)
		w.run(w.now, true)
		w.insecure = true
		w.step("")
		w.parent = nil
		var end time.Time
		for i := 0; i < 50; i++ {
			r := w.step("")
			for _, k := range w.keys() {
				if !k.Timing.Delete.IsZero() {
					end = k.Timing.Delete
				}
			}
			if !end.IsZero() {
				break
			}
			w.now = r.Next
		}
		// cancel one second before the end
		w.now = end.Add(-time.Second)
		w.insecure = false
		cancel := w.now
		nkeys := len(w.keys())
		for i := 0; i < 50; i++ {
			r := w.step("")
			pub, sign, cds := w.view()
			t.Logf("split %v %s: pub %v sign %v cds %v", split, w.now.Sub(cancel), pub, sign, cds)
			if len(cds) == 1 && cds[0] != 0 {
				s := w.set()
				for _, k := range s.CDSKeys() {
					if since := w.now.Sub(k.Timing.Publish); since < p.PublishWait() {
						t.Errorf("split %v: CDS names key %d %v after its DNSKEY was published (< Ipub %v)", split, k.Tag, since, p.PublishWait())
					}
				}
				if n := len(w.keys()); n != nkeys || s.DeleteDS {
					t.Errorf("split %v: %d keys after the cancel (%d before), DeleteDS %v: want the same keys signing on", split, n, nkeys, s.DeleteDS)
				}
				break
			}
			if r.Next.IsZero() {
				t.Fatalf("split %v: CDS never names a key again after the cancel", split)
			}
			w.now = r.Next
		}
	}
}

// TestInsecureLegacyKeyWithoutSEP: a key without the SEP flag and without any schedule, which
// CDS names as the key that signs the DNSKEY RRset, gives way to DELETE like any other.
func TestInsecureLegacyKeyWithoutSEP(t *testing.T) {
	dir := t.TempDir()
	k, err := keys.GenerateScheduled(dir, "example.test.", 13, false, 2, keys.Timing{})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.SetTiming(k, keys.Timing{}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, p: sec(), now: time.Now().UTC().Truncate(time.Second), insecure: true}
	_, _, cds := w.view()
	t.Logf("before: CDS %v", cds)
	for i := 0; i < 5; i++ {
		r := w.step("")
		w.now = w.now.Add(2 * time.Second)
		_, _, cds = w.view()
		t.Logf("CDS %v waiting %q", cds, r.Waiting)
	}
	if len(cds) != 1 || cds[0] != 0 {
		t.Errorf("CDS %v, want DELETE", cds)
	}
}

// TestInsecureDuringZSKRoll: going insecure in the middle of a ZSK roll: the retiring ZSK
// goes with the rest, never leaving a DNSKEY RRset no key signs with.
func TestInsecureDuringZSKRoll(t *testing.T) {
	p := sec()
	p.Split = true
	p.MaxTTL = time.Hour // long RetireWait
	w := newWorld(t, p)
	w.run(w.now, true)
	w.step("zsk")
	w.now = w.now.Add(p.PublishWait() + time.Second)
	w.insecure = true
	w.step("")
	w.parent = nil
	var unpub time.Time
	for i := 0; i < 100; i++ {
		r := w.step("")
		pub, sign, _ := w.view()
		if unpub.IsZero() && len(pub) < 3 {
			t.Logf("%v: pub %v sign %v", w.now, pub, sign)
		}
		if len(pub) == 0 && len(sign) == 0 {
			t.Logf("unsigned at %v", w.now)
			break
		}
		if len(pub) == 1 && unpub.IsZero() {
			unpub = w.now
			t.Logf("only one key left at %v: pub %v sign %v", w.now, pub, sign)
		}
		if r.Next.IsZero() {
			break
		}
		w.now = r.Next
	}
	if !unpub.IsZero() {
		t.Errorf("the zone was partly signed from %v (one key of three left)", unpub)
	}
}

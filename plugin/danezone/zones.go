package danezone

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/wire"
	"github.com/danelab/danelab/plugin/danezone/xfr"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// snapshot is one served version of a zone: the data, its denial proofs, and the keys it is
// signed with.
type snapshot struct {
	z    *zone.Zone
	d    denial.Denier
	keys *keys.Set
	// bare: no key in use (unsigned, or taken insecure): served without DNSSEC. Fixed with
	// the keys' view, so worked out once, not per query.
	bare bool
	// answers is the answer cache of this version (nil: off); it goes with the version.
	answers *wire.Cache
}

func newSnapshot(z *zone.Zone, d denial.Denier, ks *keys.Set, cacheSize int) *snapshot {
	s := &snapshot{z: z, d: d, keys: ks, bare: ks.Unsigned()}
	if cacheSize > 0 {
		s.answers = wire.New(cacheSize)
	}
	return s
}

// unsigned says whether the snapshot is served without DNSSEC: its zone has no key in use.
func (s *snapshot) unsigned() bool { return s.bare }

// servedZone is one zone: its file, keys, signer and the snapshot being served.
type servedZone struct {
	origin   string
	file     string
	mode     denial.Mode
	unsigned bool // served without DNSSEC: no keys, no signatures, no proofs
	signer   *signer.Signer
	cur      atomic.Pointer[snapshot]

	stamp    fileStamp // of the file behind cur
	keyStamp string    // of the key files behind the signer

	mu          sync.Mutex                   // serialises loads and edits
	fileZone    *zone.Zone                   // the file's data, before edits
	edits       zone.Log                     // runtime record changes, their net effect, re-applied after every reload
	managed     managedSets                  // records danezone keeps in the zone, applied before edits
	maxRecords  int                          // zone.Limits.MaxRecords
	answerCache int                          // the answer cache's bound per version (0: off)
	counters    atomic.Pointer[zoneCounters] // per-query counters for the last server label seen

	// The key policy (rollover.go). rollReq is set by the control API; the rest is the poll
	// goroutine's.
	rollReq    atomic.Value               // string: a role to roll now
	rollNext   time.Time                  // when to plan again
	waiting    string                     // what a KSK roll waits for, as last logged
	waitWarned time.Time                  // when the wait was last logged loudly
	followed   string                     // the DS edits follow_cds last applied (parent zones)
	parentSeen time.Time                  // when the parent was first seen serving the new DS only
	parent     parentProbe                // the parental agents, asked in the background
	parentTTL  time.Duration              // the largest DS TTL the parent served while going insecure
	warned     string                     // the last plan warning logged
	rollShown  atomic.Pointer[rollStatus] // the last plan, for GET /keys

	// The poll's view of the file; only the poll goroutine touches these.
	pending      settling  // a changed version of the file, waiting to settle
	broken       fileStamp // the last version that failed to load
	missingSince time.Time // when the file was found missing (zero: it is there)
	notRegular   bool      // the path was last found to be something other than a regular file

	alts      alternates // snapshots served by data faults
	wrongOnce sync.Once
	wrong     *keys.Key // the key of the wrong-key fault
	wrongErr  error

	// The serial (under mu): the policy, the last one served and where it is kept.
	policy     serial.Policy
	serials    *serial.State // nil: not kept (unit tests)
	last       uint32
	haveLast   bool
	fileSerial uint32 // of the zone file behind cur, to see an operator's bump (serial file)

	// What secondaries receive (transfer.go).
	version  atomic.Pointer[xfr.Version] // the last version built for transfer
	journal  xfr.Journal
	pubMu    sync.Mutex    // serialises building versions
	poke     chan struct{} // a new snapshot to publish (buffered, 1)
	quit     chan struct{} // closed when the zone stops being served
	stopOnce sync.Once
}

// zoneSet is the immutable set of zones being served; a directory change swaps in a new one.
type zoneSet struct {
	origins plugin.Zones  // sorted longest first, so the first match is the most specific
	served  []*servedZone // served[i] is the zone of origins[i]
	byName  map[string]*servedZone
	// gen numbers the sets: the answer cache keeps it, not the set, so that a cached answer
	// never holds a set (and the zones that left it) in memory.
	gen uint64
}

var zoneSetGen atomic.Uint64

func newZoneSet(zones []*servedZone) *zoneSet {
	s := &zoneSet{byName: map[string]*servedZone{}, gen: zoneSetGen.Add(1)}
	for _, z := range zones {
		s.byName[z.origin] = z
		s.origins = append(s.origins, z.origin)
	}
	sort.Slice(s.origins, func(i, j int) bool { return dns.CountLabel(s.origins[i]) > dns.CountLabel(s.origins[j]) })
	for _, o := range s.origins {
		s.served = append(s.served, s.byName[o])
	}
	return s
}

// origin returns the most specific zone containing name, or "".
func (s *zoneSet) origin(name string) string {
	if i := s.index(name); i >= 0 {
		return s.origins[i]
	}
	return ""
}

// index returns the position in origins of the most specific zone containing name, or -1.
func (s *zoneSet) index(name string) int {
	for i, o := range s.origins {
		if zone.Below(o, name) {
			return i
		}
	}
	return -1
}

// match returns the zone that answers qname/qtype. DS at a zone apex is answered by the
// parent zone when it is served here too (RFC 4035 §3.1.4.1).
func (s *zoneSet) match(qname string, qtype uint16) *servedZone {
	i := s.index(qname)
	if i < 0 {
		return nil
	}
	o := s.origins[i]
	if qtype != dns.TypeDS {
		return s.served[i] // by position: a query costs no map lookup here
	}
	if strings.EqualFold(o, qname) && o != "." {
		off, _ := dns.NextLabel(qname, 0)
		parent := qname[off:]
		if parent == "" {
			parent = "."
		}
		if p := s.origin(parent); p != "" {
			o = p
		}
	}
	return s.byName[o]
}

// fileStamp identifies a version of a file cheaply for polling: its size and time, and its
// inode, which a file renamed into place changes.
type fileStamp struct {
	mod      time.Time
	size     int64
	dev, ino uint64
	changed  time.Time // the inode's change time
}

// stampOf returns the stamp of the regular file at path; a missing file is an error for which
// errors.Is(err, fs.ErrNotExist) holds, and anything but a regular file is an error naming it.
func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	if err := zone.Regular(path, fi); err != nil {
		return fileStamp{}, err
	}
	dev, ino, changed := zone.FileID(fi)
	return fileStamp{fi.ModTime(), fi.Size(), dev, ino, changed}, nil
}

// errUnsettled is a zone file that changed while it was read: it is tried again at the next
// poll, not reported as broken.
var errUnsettled = errors.New("changed while it was read; trying again at the next poll")

// maxSettle bounds settleFor: with slow polls, two polls apart is quiet enough.
const maxSettle = 5 * time.Second

// settleFor is how long a zone file written in place must stay unchanged before it is loaded:
// three poll intervals (3 s at the default 1 s), at most maxSettle. A half-written file is
// usually a valid zone that lacks its end (a TLSA name would get a validly signed NXDOMAIN),
// so a change is not loaded while it may still be going on.
func settleFor(reload time.Duration) time.Duration { return min(3*reload, maxSettle) }

// settling is a version of a zone file waiting to settle; only the poll goroutine uses it.
type settling struct {
	seen   fileStamp // the version
	seenAt time.Time // when the poll first saw it
}

// settled reports whether the version st of a zone file may be loaded now, prev being the
// version in use (zero for a file not served yet). A file renamed into place is complete by
// construction (the safe way to edit, README). Any other may be half done: it is loaded once it
// has not changed for settle, counted from its modification time, or from when the poll first
// saw this version if that is earlier (a clock ahead, a time set by hand).
func (s *settling) settled(prev, st fileStamp, now time.Time, settle time.Duration) bool {
	// A new inode changed after its last write was renamed into place: complete. A new inode
	// without that (deleted and written again, cp, install) may be half written like any other.
	if (st.ino != prev.ino || st.dev != prev.dev) && st.changed.After(st.mod) {
		return true
	}
	if st != s.seen {
		s.seen, s.seenAt = st, now
	}
	quiet := s.seenAt
	if st.mod.Before(quiet) {
		quiet = st.mod
	}
	return now.Sub(quiet) >= settle
}

// limits returns the bounds of the zone signed with ks: each RRset must fit one DNS message
// with the RRSIGs of every key that signs it (the zone signing keys; the DNSKEY, CDS and
// CDNSKEY sets that the KSKs sign are danezone's own).
func (sz *servedZone) limits(ks *keys.Set) zone.Limits {
	lim := zone.Limits{MaxRecords: sz.maxRecords}
	if sz.unsigned || ks == nil {
		return lim
	}
	for _, k := range ks.ZSKs() {
		lim.SigSize += zone.RRSIGSize(sz.origin, signatureLen(k))
	}
	return lim
}

// signatureLen is the length of a signature by k: the modulus for RSA (RFC 3110 §3), r and s
// for ECDSA (RFC 6605 §4), 64 octets for Ed25519 (RFC 8080 §4).
func signatureLen(k *keys.Key) int {
	if k.Signer != nil {
		switch pub := k.Signer.Public().(type) {
		case *rsa.PublicKey:
			return pub.Size()
		case *ecdsa.PublicKey:
			return 2 * ((pub.Curve.Params().BitSize + 7) / 8)
		case ed25519.PublicKey:
			return ed25519.SignatureSize
		}
	}
	return 512 // as long as RSA-4096's
}

// apexSets returns the DNSKEY, CDS, CDNSKEY and (denying with NSEC3) NSEC3PARAM RRsets
// danezone adds at the apex of a zone signed with ks.
func (sz *servedZone) apexSets(ks *keys.Set) []*zone.RRset {
	var out []*zone.RRset
	for _, rrs := range [][]dns.RR{ks.DNSKEYs(), ks.CDS(), ks.CDNSKEY()} {
		if len(rrs) > 0 {
			out = append(out, zone.NewRRset(rrs))
		}
	}
	if sz.mode.Hashed() && !sz.unsigned && !ks.Unsigned() {
		out = append(out, zone.NewRRset([]dns.RR{sz.mode.ForTransfer().NSEC3PARAM(sz.origin)}))
	}
	return out
}

// load reads the zone file and builds a new version of the zone data with the runtime edits
// applied, keeping what did not change from the current one. It does not serve it. The caller
// holds sz.mu. A file that changes while it is read is read again (at start there is no poll
// to wait for).
func (sz *servedZone) load() (z, fz *zone.Zone, st fileStamp, err error) {
	for range 3 {
		if z, fz, st, err = sz.loadWith(sz.signer.Keys()); !errors.Is(err, errUnsettled) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return z, fz, st, err
}

// loadWith is load with the apex key sets of ks, once.
func (sz *servedZone) loadWith(ks *keys.Set) (*zone.Zone, *zone.Zone, fileStamp, error) {
	st, err := stampOf(sz.file)
	if err != nil {
		return nil, nil, st, fileError(sz.file, err)
	}
	var prevZone *zone.Zone
	if prev := sz.cur.Load(); prev != nil {
		prevZone = prev.z
	}
	fz, err := zone.LoadFile(sz.origin, sz.file, prevZone, sz.limits(ks), sz.apexSets(ks)...)
	if err != nil {
		return nil, nil, st, err
	}
	// Written while it was read, the data may mix two versions.
	if after, err := stampOf(sz.file); err != nil || after != st {
		return nil, nil, st, fmt.Errorf("%s: %w", sz.file, errUnsettled)
	}
	all := append(sz.managed.edits(), sz.edits.Edits()...)
	z, err := fz.Apply(all, len(all))
	if err != nil {
		return nil, nil, st, fmt.Errorf("%s: the runtime record changes no longer apply to the new version: %v", sz.file, err)
	}
	return z, fz, st, nil
}

// fileError is err of a stat of file as a zone.Error, without the path twice.
func fileError(file string, err error) error {
	var ze *zone.Error
	if errors.As(err, &ze) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &zone.Error{File: file, Msg: err.Error()}
}

// reload loads and installs a new version; on failure the current one keeps serving.
func (sz *servedZone) reload() error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	z, fz, st, err := sz.loadWith(sz.signer.Keys())
	if err != nil {
		if !errors.Is(err, errUnsettled) {
			reloads.WithLabelValues(sz.origin, "failed").Inc()
		}
		return err
	}
	sz.install(z, fz, st)
	return nil
}

// reloadWithKeys loads a version publishing the DNSKEY set of ks and, if it loads, serves it
// and signs with ks from then on.
func (sz *servedZone) reloadWithKeys(ks *keys.Set) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	z, fz, st, err := sz.loadWith(ks)
	if err != nil {
		if !errors.Is(err, errUnsettled) {
			reloads.WithLabelValues(sz.origin, "failed").Inc()
		}
		return err
	}
	// The keys change with the snapshot, under mu: a version for transfer is built from a
	// snapshot and the keys that go with it (publish).
	sz.signer.SetKeys(ks)
	sz.install(z, fz, st)
	return nil
}

// install serves z, loaded from the version st of the zone file, whose own data is fz.
func (sz *servedZone) install(z, fz *zone.Zone, st fileStamp) {
	sz.fileZone = fz
	sz.stamp = st
	sz.serve(z, false)
	reloads.WithLabelValues(sz.origin, "ok").Inc()
}

// serve makes z the snapshot served, with the serial of the policy when what a secondary
// would receive changed (the data, its keys, the file's serial under `serial file`, or, when
// resign is set, its signatures), the current one otherwise. The caller holds sz.mu.
func (sz *servedZone) serve(z *zone.Zone, resign bool) {
	prev := sz.cur.Load()
	var prevZone *zone.Zone
	var prevDenial denial.Denier
	if prev != nil {
		prevZone, prevDenial = prev.z, prev.d
	}
	same := prev != nil && !resign && zone.SameData(prevZone, z) &&
		(sz.policy != serial.File || sz.fileZone.Serial == sz.fileSerial) &&
		(sz.unsigned || sz.signer.Keys() == prev.keys)
	n := sz.last
	if !same {
		n = sz.nextSerial()
	}
	z = z.WithSerial(n, prevZone)
	sz.fileSerial = sz.fileZone.Serial
	sz.cur.Store(newSnapshot(z, denial.New(sz.mode, z, prevDenial), sz.signer.Keys(), sz.answerCache))
	serialGauge.WithLabelValues(sz.origin).Set(float64(n))
	sz.publishSoon()
}

// nextSerial picks the serial of a new version and records it before it is served. A state
// file that cannot be written is logged: the zone keeps serving, but a restart may then
// repeat a serial. The caller holds sz.mu.
func (sz *servedZone) nextSerial() uint32 {
	now := time.Now()
	n := sz.policy.Next(sz.last, sz.haveLast, sz.fileZone.Serial, now)
	if sz.serials != nil {
		var err error
		if n, err = sz.serials.Next(sz.origin, sz.policy, sz.last, sz.haveLast, sz.fileZone.Serial, now); err != nil {
			log.Errorf("Serial state of %s: %v (a restart may serve an old serial again)", sz.origin, err)
		}
	}
	if sz.policy == serial.File && sz.haveLast && n != sz.fileZone.Serial && sz.fileZone.Serial != sz.fileSerial {
		log.Warningf("The serial %d of %s is not greater than %d, the last served for %s: serving %d. Raise the file's serial above %d.",
			sz.fileZone.Serial, sz.file, n-1, sz.origin, n, n)
	}
	sz.last, sz.haveLast = n, true
	return n
}

// edit applies runtime record changes on top of the data being served and serves the result.
// The served snapshot is the file's data with the managed records and every edit so far, so
// the new edits apply to it directly: a change costs the same however many came before it.
// The log kept for reloads holds the net effect of the changes (zone.Log), not their history.
func (sz *servedZone) edit(edits []zone.Edit, reset bool) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	if reset {
		m := sz.managed.edits()
		if err := sz.rebuild(m, nil, len(m)); err != nil {
			return err
		}
		sz.edits = zone.Log{}
		return nil
	}
	z, err := sz.cur.Load().z.Apply(edits, 0)
	if err != nil {
		return err
	}
	sz.serve(z, false)
	sz.edits.Append(edits)
	return nil
}

// managedSets are the records danezone keeps in a zone over its file, by what keeps them: the
// TLSA records that follow certificates, and, in a parent zone under follow_cds, the DS
// RRsets that follow its children's CDS.
type managedSets struct {
	tlsa, ds []zone.Edit
}

func (m managedSets) edits() []zone.Edit {
	return append(append([]zone.Edit{}, m.tlsa...), m.ds...)
}

// setManaged replaces the managed records of one kind: *tlsa or *ds of sz.managed, as set
// picks.
func (sz *servedZone) setManaged(set func(*managedSets) *[]zone.Edit, edits []zone.Edit) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	next := sz.managed
	*set(&next) = edits
	m, rec := next.edits(), sz.edits.Edits()
	if err := sz.rebuild(m, rec, len(m)+len(rec)); err != nil {
		return err
	}
	sz.managed = next
	return nil
}

// rebuild serves the file's data with managed records and edits applied. The caller holds sz.mu.
func (sz *servedZone) rebuild(managed, edits []zone.Edit, strict int) error {
	z, err := sz.fileZone.Apply(append(append([]zone.Edit{}, managed...), edits...), strict)
	if err != nil {
		return err
	}
	if z != sz.fileZone { // Apply without edits returns the file's snapshot itself: never modify it
		z.Reuse(sz.cur.Load().z)
	}
	sz.serve(z, false)
	return nil
}

// startFiles lists the zones to serve at start, and decides for good whether the path is a
// directory of zone files or one file: a path that changes kind later is an error to report,
// not a new configuration (a directory put in place of the zone file must not drop the zone).
func (cfg *config) startFiles() (map[string]string, error) {
	fi, err := os.Stat(cfg.path)
	if err != nil {
		return nil, err
	}
	cfg.dir = fi.IsDir()
	files, err := zoneFiles(cfg.path, cfg.origins, cfg.dir)
	if err != nil {
		return nil, err
	}
	if cfg.dir {
		for _, o := range cfg.origins {
			if files[o] == "" {
				return nil, fmt.Errorf("%s: no zone file %s.zone for zone %s", cfg.path, strings.TrimSuffix(o, "."), o)
			}
		}
	}
	for origin, file := range files { // before keys are made for a zone that is not a file
		if _, err := stampOf(file); err != nil {
			// A directory serves every <origin>.zone in it: one that is not a regular file
			// (a backup.zone/ directory) is skipped at start, as before; a zone named in
			// the Corefile, or the one file, must be there.
			if cfg.dir && len(cfg.origins) == 0 && !errors.Is(err, fs.ErrNotExist) {
				log.Warningf("Skipping %s: %v", file, err)
				delete(files, origin)
				continue
			}
			return nil, fileError(file, err)
		}
	}
	return files, nil
}

// zoneFiles lists the zones of path: the <origin>.zone entries of a directory (whatever they
// are: one that is not a regular file is reported when it is loaded), or the one file.
func zoneFiles(path string, origins []string, dir bool) (map[string]string, error) {
	files := map[string]string{}
	if !dir {
		origin := originOf(filepath.Base(path))
		if len(origins) > 0 {
			origin = zone.Canonical(origins[0])
		}
		files[origin] = path
		return files, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, o := range origins {
		want[zone.Canonical(o)] = true
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".zone") {
			continue
		}
		origin := originOf(e.Name())
		if _, ok := dns.IsDomainName(origin); !ok {
			continue
		}
		if len(want) > 0 && !want[origin] {
			continue
		}
		files[origin] = filepath.Join(path, e.Name())
	}
	return files, nil
}

var errNoZones = errors.New("no zone files")

// originOf returns the origin a zone file name stands for: <origin>.zone, and root.zone for
// the root zone (a lab's own root).
func originOf(file string) string {
	name := strings.TrimSuffix(file, ".zone")
	if name == "root" {
		return "."
	}
	return zone.Canonical(name)
}

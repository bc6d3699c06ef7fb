package danezone

import (
	"errors"
	"fmt"
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
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// snapshot is one served version of a zone: the data and its denial proofs.
type snapshot struct {
	z *zone.Zone
	d denial.Denier
}

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

	mu       sync.Mutex  // serialises loads and edits
	fileZone *zone.Zone  // the file's data, before edits
	edits    []zone.Edit // runtime record changes, re-applied after every reload
	managed  []zone.Edit // TLSA records that follow certificates, applied before edits

	alts      alternates // snapshots served by data faults
	wrongOnce sync.Once
	wrong     *keys.Key // the key of the wrong-key fault
	wrongErr  error
}

// zoneSet is the immutable set of zones being served; a directory change swaps in a new one.
type zoneSet struct {
	origins plugin.Zones // sorted longest first, so the first match is the most specific
	byName  map[string]*servedZone
}

func newZoneSet(zones []*servedZone) *zoneSet {
	s := &zoneSet{byName: map[string]*servedZone{}}
	for _, z := range zones {
		s.byName[z.origin] = z
		s.origins = append(s.origins, z.origin)
	}
	sort.Slice(s.origins, func(i, j int) bool { return dns.CountLabel(s.origins[i]) > dns.CountLabel(s.origins[j]) })
	return s
}

// origin returns the most specific zone containing name, or "".
func (s *zoneSet) origin(name string) string {
	for _, o := range s.origins {
		if dns.IsSubDomain(o, name) {
			return o
		}
	}
	return ""
}

// match returns the zone that answers qname/qtype. DS at a zone apex is answered by the
// parent zone when it is served here too (RFC 4035 §3.1.4.1).
func (s *zoneSet) match(qname string, qtype uint16) *servedZone {
	o := s.origin(qname)
	if o == "" {
		return nil
	}
	if qtype == dns.TypeDS && strings.EqualFold(o, qname) && o != "." {
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

// fileStamp identifies a version of a file cheaply for polling.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// apexSets returns the DNSKEY, CDS and CDNSKEY RRsets danezone adds at the apex.
func apexSets(ks *keys.Set) []*zone.RRset {
	var out []*zone.RRset
	for _, rrs := range [][]dns.RR{ks.DNSKEYs(), ks.CDS(), ks.CDNSKEY()} {
		if len(rrs) > 0 {
			out = append(out, zone.NewRRset(rrs))
		}
	}
	return out
}

// load reads the zone file and builds a new snapshot with the runtime edits applied,
// keeping what did not change from the current one. It does not install it. The caller holds
// sz.mu.
func (sz *servedZone) load() (*snapshot, *zone.Zone, fileStamp, error) {
	return sz.loadWith(sz.signer.Keys())
}

// loadWith is load with the apex key sets of ks.
func (sz *servedZone) loadWith(ks *keys.Set) (*snapshot, *zone.Zone, fileStamp, error) {
	st, err := stampOf(sz.file)
	if err != nil {
		return nil, nil, st, &zone.Error{File: sz.file, Msg: err.Error()}
	}
	prev := sz.cur.Load()
	var prevZone *zone.Zone
	var prevDenial denial.Denier
	if prev != nil {
		prevZone, prevDenial = prev.z, prev.d
	}
	fz, err := zone.LoadFile(sz.origin, sz.file, prevZone, apexSets(ks)...)
	if err != nil {
		return nil, nil, st, err
	}
	all := append(append([]zone.Edit{}, sz.managed...), sz.edits...)
	z, err := fz.Apply(all, len(all))
	if err != nil {
		return nil, nil, st, fmt.Errorf("%s: the runtime record changes no longer apply to the new version: %v", sz.file, err)
	}
	return &snapshot{z: z, d: denial.New(sz.mode, z, prevDenial)}, fz, st, nil
}

// reload loads and installs a new version; on failure the current one keeps serving.
func (sz *servedZone) reload() error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	snap, fz, st, err := sz.load()
	if err != nil {
		reloads.WithLabelValues(sz.origin, "failed").Inc()
		return err
	}
	sz.install(snap, fz, st)
	return nil
}

// reloadWithKeys loads a version publishing the DNSKEY set of ks and, if it loads, serves it
// and signs with ks from then on.
func (sz *servedZone) reloadWithKeys(ks *keys.Set) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	snap, fz, st, err := sz.loadWith(ks)
	if err != nil {
		reloads.WithLabelValues(sz.origin, "failed").Inc()
		return err
	}
	sz.install(snap, fz, st)
	sz.signer.SetKeys(ks)
	return nil
}

func (sz *servedZone) install(snap *snapshot, fz *zone.Zone, st fileStamp) {
	sz.cur.Store(snap)
	sz.fileZone = fz
	sz.stamp = st
	reloads.WithLabelValues(sz.origin, "ok").Inc()
	serial.WithLabelValues(sz.origin).Set(float64(snap.z.Serial))
}

// edit applies runtime record changes on top of the file's data and serves the result.
func (sz *servedZone) edit(edits []zone.Edit, reset bool) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	all := append(append([]zone.Edit{}, sz.edits...), edits...)
	if reset {
		all = nil
	}
	if err := sz.rebuild(sz.managed, all, len(sz.managed)+len(sz.edits)); err != nil {
		return err
	}
	sz.edits = all
	return nil
}

// setManaged replaces the TLSA records that follow certificates.
func (sz *servedZone) setManaged(managed []zone.Edit) error {
	sz.mu.Lock()
	defer sz.mu.Unlock()
	if err := sz.rebuild(managed, sz.edits, len(managed)+len(sz.edits)); err != nil {
		return err
	}
	sz.managed = managed
	return nil
}

// rebuild serves the file's data with managed records and edits applied. The caller holds sz.mu.
func (sz *servedZone) rebuild(managed, edits []zone.Edit, strict int) error {
	z, err := sz.fileZone.Apply(append(append([]zone.Edit{}, managed...), edits...), strict)
	if err != nil {
		return err
	}
	prev := sz.cur.Load()
	if z != sz.fileZone { // Apply without edits returns the file's snapshot itself: never modify it
		z.Reuse(prev.z)
	}
	sz.cur.Store(&snapshot{z: z, d: denial.New(sz.mode, z, prev.d)})
	return nil
}

// zoneFiles lists the zones of path: a directory of <origin>.zone files, or one file.
func zoneFiles(path string, origins []string) (map[string]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	if !fi.IsDir() {
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
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".zone") {
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
	for o := range want {
		if files[o] == "" {
			return nil, fmt.Errorf("%s: no zone file %s.zone for zone %s", path, strings.TrimSuffix(o, "."), o)
		}
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

package danezone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/miekg/dns"
)

// openKeys loads the keys of a signed zone, or generates one when it never had any. Keys that
// the state file says the zone had but the key directory lacks are not replaced (the parent's
// DS names them) unless `regenerate` names the zone: the zone is then not served, with an
// error that says what to do.
func (cfg *config) openKeys(origin string) (*keys.Set, error) {
	if cfg.insecure[origin] {
		// Insecure and without keys (never signed, or its withdrawn key files removed):
		// served unsigned, no key generated.
		if ks, err := keys.Load(cfg.keyDir, origin); err == nil && len(ks.Keys) == 0 && withoutKeys(cfg, origin) {
			keysMissing.WithLabelValues(origin).Set(0)
			return ks, nil
		}
	}
	o, err := keys.Open(cfg.keyDir, origin, cfg.algorithm, cfg.regen[origin])
	countKeyFailure(cfg.keyDir, origin, err)
	if err != nil {
		var lost *keys.LostError
		if errors.As(err, &lost) {
			keysMissing.WithLabelValues(origin).Set(1)
		}
		return nil, err
	}
	keysMissing.WithLabelValues(origin).Set(0)
	ks := o.Set
	for _, w := range ks.Warnings {
		log.Warning(w)
	}
	switch {
	case o.Replaced != nil:
		keysGenerated.WithLabelValues(origin).Inc()
		log.Warningf("Replaced the lost keys of %s (%s; DS %s) with a new key %s in %s, as `regenerate` says: validators "+
			"that trust the old DS reject %s until the parent publishes the new DS (below, and in the dsset file). "+
			"Remove `regenerate` for %s from the Corefile now", origin, strings.Join(o.Replaced.Keys, ", "),
			strings.Join(o.Replaced.DS, ", "), baseName(o.Generated), cfg.keyDir, origin, origin)
	case o.Generated != nil:
		keysGenerated.WithLabelValues(origin).Inc()
		log.Infof("Generated a key (CSK, %s) for %s in %s", dns.AlgorithmToString[cfg.algorithm], origin, cfg.keyDir)
		// The key policy's DNSKEY TTL (the timing directive), which its rolls count with.
		t := o.Generated.Timing
		if ttl := uint32(cfg.keyPolicy.DNSKEYTTL / time.Second); ttl != 0 {
			o.Generated.DNSKEY.Hdr.Ttl = ttl
		}
		if ks.DeleteDS {
			// Signed again after being insecure: CDS names the key once the signed zone is in
			// every cache (as the key policy schedules it, with the policy's largest TTL).
			t.SyncPublish = time.Now().Add(cfg.keyPolicy.SecureAgainWait(0))
			log.Infof("%s is signed again: CDS and CDNSKEY name key %d from %s", origin, o.Generated.Tag, t.SyncPublish.UTC().Format(time.RFC3339))
		}
		if err := keys.SetTiming(o.Generated, t); err != nil {
			return nil, err
		}
	case cfg.regen[origin]:
		log.Warningf("`regenerate` names %s, whose keys are in %s: remove it from the Corefile, or the next time "+
			"these keys go missing they are replaced without asking", origin, cfg.keyDir)
	}
	return ks, nil
}

// baseName is the key's file name without directory and extension.
func baseName(k *keys.Key) string { return strings.TrimSuffix(filepath.Base(k.File), ".key") }

// keyFailures is the last key error counted per key directory and zone. A zone kept down by its
// keys is opened again at every poll: each distinct failure is counted once.
var keyFailures = struct {
	sync.Mutex
	last map[string]string
}{last: map[string]string{}}

// countKeyFailure counts err in reloads_total{result="failed"} unless it repeats the last one
// counted for the zone; a success forgets it.
func countKeyFailure(dir, origin string, err error) {
	keyFailures.Lock()
	defer keyFailures.Unlock()
	id := dir + "\x00" + origin
	if err == nil {
		delete(keyFailures.last, id)
		return
	}
	if keyFailures.last[id] == err.Error() {
		return
	}
	keyFailures.last[id] = err.Error()
	reloads.WithLabelValues(origin, "failed").Inc()
}

// checkKeys reloads the keys of sz when its key files changed, and reports whether the poll is
// done with sz: the zone was reloaded with the new keys, or that failed on the zone file.
//
// A version of the key files that does not load is logged and counted in
// reloads_total{result="failed"} once, and not tried again until the files change; meanwhile
// the keys in use keep signing and changes of the zone file still load. When the key files
// return to the version in use, the failure is forgotten, so a broken file that is removed and
// added again is a new failure, logged and counted again.
func (d *DaneZone) checkKeys(cfg *config, sz *servedZone, failed map[string]string, report func(string, error)) bool {
	id := "keys\x00" + sz.origin // cannot collide with report's keys, which are paths
	stamp := keyFilesStamp(cfg.keyDir, sz.origin)
	if stamp == sz.keyStamp {
		if _, ok := failed[id]; ok {
			delete(failed, id)
			keysMissing.WithLabelValues(sz.origin).Set(0)
			log.Infof("The key files of %s in %s are back to the ones in use", sz.origin, cfg.keyDir)
		}
		return false
	}
	fst, _ := stampOf(sz.file)
	keyTry, zoneTry := "keys "+stamp, fmt.Sprintf("zone %s %v", stamp, fst)
	switch failed[id] {
	case keyTry: // these key files failed: the zone file may still change, with the keys in use
		return false
	case zoneTry: // the zone did not load with these keys and this zone file
		return true
	}
	ks, err := keys.Load(cfg.keyDir, sz.origin)
	lost := err == nil && len(ks.Keys) == 0 && !(cfg.insecure[sz.origin] && withoutKeys(cfg, sz.origin))
	if lost {
		err = keys.Missing(cfg.keyDir, sz.origin)
		keysMissing.WithLabelValues(sz.origin).Set(1)
	}
	if err != nil {
		failed[id] = keyTry
		reloads.WithLabelValues(sz.origin, "failed").Inc()
		if lost {
			log.Errorf("Keys of %s lost: the keys in memory keep signing, but CoreDNS will not start or reload with them missing. %v", sz.origin, err)
		} else {
			log.Errorf("Not using the key files of %s, the keys in use keep signing: %v", sz.origin, err)
		}
		return false
	}
	// The new DNSKEY set is published by the same snapshot swap that starts using the keys; if
	// that version does not load, the old keys and data keep serving.
	if err := sz.reloadWithKeys(ks); err != nil { // counted by reloadWithKeys
		failed[id] = zoneTry
		report(sz.file, err)
		return true
	}
	delete(failed, id)
	keysMissing.WithLabelValues(sz.origin).Set(0)
	report(sz.file, nil)
	sz.keyStamp = stamp
	sz.rollNext = time.Time{} // the files changed (by the policy or by hand): plan again now
	for _, w := range ks.Warnings {
		log.Warning(w)
	}
	writeDSSet(cfg, ks)
	if err := keys.Remember(cfg.keyDir, ks); err != nil {
		log.Errorf("%v; danezone cannot tell later whether these keys were lost: make the directory holding %s writable", err, cfg.keyDir)
	}
	recordKeyStates(sz.origin, ks)
	log.Infof("Keys of %s changed: %s", sz.origin, keySummary(ks))
	return true
}

// keySummary says which keys a view publishes, signs with and names in CDS.
func keySummary(s *keys.Set) string {
	var pub, sign, cds []string
	for _, k := range s.Published() {
		pub = append(pub, fmt.Sprint(k.Tag))
	}
	seen := map[*keys.Key]bool{}
	for _, k := range append(s.KSKs(), s.ZSKs()...) {
		if !seen[k] {
			seen[k] = true
			sign = append(sign, fmt.Sprint(k.Tag))
		}
	}
	for _, c := range s.CDS() {
		if isDelete(c) {
			cds = append(cds, "DELETE")
			continue
		}
		cds = append(cds, fmt.Sprint(c.(*dns.CDS).KeyTag))
	}
	return fmt.Sprintf("DNSKEY %s, signing %s, CDS %s", orNone(pub), orNone(sign), orNone(cds))
}

func orNone(tags []string) string {
	if len(tags) == 0 {
		return "none"
	}
	return strings.Join(tags, " ")
}

// isDelete says whether a CDS record is the DELETE record (RFC 8078 §4: algorithm 0).
func isDelete(rr dns.RR) bool {
	c, ok := rr.(*dns.CDS)
	return ok && c.Algorithm == 0
}

// withoutKeys says whether a zone may be served without key files: its state records none, or
// records that it withdrew them on purpose (insecure). Otherwise missing keys are lost keys,
// whose DS the parent may still serve.
func withoutKeys(cfg *config, origin string) bool {
	had, ok, err := keys.Recorded(cfg.keyDir, origin)
	return err == nil && (!ok || had.Unsigned)
}

// writeDSSet writes the dsset file for the parent, or, while CDS names no key (going insecure,
// insecure, or signed again but not named yet), removes it: a script uploading it would put
// a withdrawn DS back.
func writeDSSet(cfg *config, ks *keys.Set) (string, error) {
	if len(ks.DS(dns.SHA256)) == 0 && (ks.DeleteDS || ks.Unsigned()) {
		if name, err := keys.DSSetName(ks.Zone); err == nil {
			os.Remove(filepath.Join(cfg.keyDir, name))
		}
		return "", nil
	}
	path, err := keys.WriteDSSet(cfg.keyDir, ks)
	if err != nil {
		log.Errorf("Writing the DS set of %s: %v", ks.Zone, err)
	}
	return path, err
}

package keys

// The state file: which zones have had keys in a key directory. A zone whose keys are lost (the
// directory not mounted, deleted, restored from an old backup) must not quietly get a new key:
// the DS at the parent names the old one, and every validator that trusts that DS would reject
// the zone (RFC 4035 §5). The record lives beside the key directory, not in it, so that it
// survives the loss of the directory.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/atomicfile"
)

// ZoneState is what the state file records of one zone.
type ZoneState struct {
	Keys []string `json:"keys"`         // base names of the key files, e.g. "Kexample.test.+013+12345"
	DS   []string `json:"ds,omitempty"` // the SHA-256 DS of each KSK, as given to the parent
	// DeleteDS: the zone has asked its parent to remove its DS (CDS/CDNSKEY DELETE, RFC 8078
	// §4) to go insecure, and no key has been named by CDS since.
	DeleteDS bool `json:"delete_ds,omitempty"`
	// Unsigned: with DeleteDS, the zone has since withdrawn all its keys (the parent removed
	// the DS): it is insecure on purpose, and its key files may go.
	Unsigned bool `json:"unsigned,omitempty"`
}

// state is the content of the state file.
type state struct {
	About string               `json:"about"`
	Zones map[string]ZoneState `json:"zones"`
}

const stateAbout = "Zones that have had DNSSEC keys in the key directory beside this file, written by danezone. " +
	"When the keys of a zone listed here are missing, danezone does not generate new ones (the DS at the parent names these): " +
	"restore the key files, or set `regenerate ZONE` in the danezone block."

// stateMu serialises read-modify-write of state files within this process.
var stateMu sync.Mutex

// StatePath returns the state file of the key directory dir: "<dir>-state.json" beside it
// (".state/keys-state.json" for the default ".state/keys").
func StatePath(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = filepath.Clean(dir)
	}
	if filepath.Dir(abs) == abs { // the root directory has nothing beside it
		return filepath.Join(abs, "danezone-keys-state.json")
	}
	return abs + "-state.json"
}

// readState reads the state file at path; a missing file is an empty state.
func readState(path string) (*state, error) {
	st := &state{Zones: map[string]ZoneState{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err // *PathError names the file
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Zones == nil {
		st.Zones = map[string]ZoneState{}
	}
	return st, nil
}

// Recorded returns what the state file of dir records of zone, and whether it records that the
// zone had keys.
func Recorded(dir, zone string) (ZoneState, bool, error) {
	z, err := normalizeZone(zone)
	if err != nil {
		return ZoneState{}, false, err
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	st, err := readState(StatePath(dir))
	if err != nil {
		return ZoneState{}, false, err
	}
	zs, ok := st.Zones[z]
	return zs, ok && len(zs.Keys) > 0, nil
}

// zoneState returns the record of s.
func zoneState(s *Set) ZoneState {
	var zs ZoneState
	for _, k := range s.Keys {
		zs.Keys = append(zs.Keys, strings.TrimSuffix(filepath.Base(k.File), ".key"))
	}
	sort.Strings(zs.Keys)
	for _, ds := range s.DS(dns.SHA256) {
		zs.DS = append(zs.DS, fmt.Sprintf("%d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest)))
	}
	return zs
}

// Remember records in the state file of dir that s.Zone has the keys of s. A state file that
// cannot be read is left as it is (an error says so): overwriting it could lose the record of
// other zones. An empty set is not recorded.
func Remember(dir string, s *Set) error {
	if s == nil || len(s.Keys) == 0 {
		return nil
	}
	return updateZone(dir, s.Zone, "the keys", func(zs *ZoneState) bool {
		now := zoneState(s)
		if len(zs.Keys) > 0 && slices.Equal(zs.Keys, now.Keys) && slices.Equal(zs.DS, now.DS) {
			return false
		}
		now.DeleteDS, now.Unsigned = zs.DeleteDS, zs.Unsigned
		*zs = now
		return true
	})
}

// SetDeleteDS records in the state file of dir whether zone asks its parent to remove its DS
// (Set.DeleteDS): set when the key policy takes the zone insecure, cleared (with Unsigned)
// once CDS names a key again. A state file that cannot be read is left as it is.
func SetDeleteDS(dir, zone string, on bool) error {
	return updateZone(dir, zone, "whether it asks to remove its DS", func(zs *ZoneState) bool {
		if zs.DeleteDS == on && (on || !zs.Unsigned) {
			return false
		}
		zs.DeleteDS = on
		if !on {
			zs.Unsigned = false
		}
		return true
	})
}

// MarkUnsigned records in the state file of dir that zone, which asked its parent to remove
// its DS, has withdrawn all its keys on purpose: key files missing then are not lost keys.
func MarkUnsigned(dir, zone string) error {
	return updateZone(dir, zone, "that its keys are withdrawn", func(zs *ZoneState) bool {
		if zs.Unsigned || !zs.DeleteDS {
			return false
		}
		zs.Unsigned = true
		return true
	})
}

// updateZone changes the record of zone in the state file of dir with change, which reports
// whether it changed anything; what says what is recorded, for the error.
func updateZone(dir, zone, what string, change func(*ZoneState) bool) error {
	z, err := normalizeZone(zone)
	if err != nil {
		return err
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	path := StatePath(dir)
	st, err := readState(path)
	if err != nil {
		return fmt.Errorf("not recording %s of %s: %w", what, z, err)
	}
	zs := st.Zones[z]
	if !change(&zs) {
		return nil
	}
	st.Zones[z] = zs
	return writeState(path, st)
}

// writeState replaces the state file at path with st. The caller holds stateMu.
func writeState(path string, st *state) error {
	st.About = stateAbout
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// LostError says that a key directory has no keys for a zone whose state records that it had
// keys. Its message tells the operator what to do.
type LostError struct {
	Dir, Zone, State string
	Had              ZoneState
}

func (e *LostError) Error() string {
	var files []string
	for _, k := range e.Had.Keys {
		files = append(files, k+".key/.private")
	}
	ds := ""
	if len(e.Had.DS) > 0 {
		ds = " (DS " + strings.Join(e.Had.DS, ", ") + ")"
	}
	return fmt.Sprintf("%s has no keys for %s, but %s records that it had %s%s: not signing it with new keys, "+
		"which every validator that trusts the DS at the parent would reject. Restore %s into %s; "+
		"or, to replace the keys on purpose, add `regenerate %s` to the danezone block, restart CoreDNS "+
		"and give the new DS to the parent",
		e.Dir, e.Zone, e.State, strings.Join(e.Had.Keys, ", "), ds, strings.Join(files, " and "), e.Dir, zoneArg(e.Zone))
}

// zoneArg spells zone as an operator writes it in a Corefile.
func zoneArg(zone string) string {
	if zone == "." {
		return zone
	}
	return strings.TrimSuffix(zone, ".")
}

// Missing returns the error for a key directory without keys for zone: a *LostError when the
// state file records keys for it.
func Missing(dir, zone string) error {
	z, err := normalizeZone(zone)
	if err != nil {
		return err
	}
	had, ok, err := Recorded(dir, z)
	if err != nil {
		return fmt.Errorf("%s: no keys for %s (and its state file: %v)", dir, z, err)
	}
	if !ok {
		return fmt.Errorf("%s: no keys for %s", dir, z)
	}
	return &LostError{Dir: dir, Zone: z, State: StatePath(dir), Had: had}
}

// Opened is the result of Open.
type Opened struct {
	Set       *Set
	Generated *Key       // the key generated because there was none, or nil
	Replaced  *ZoneState // with Generated: the lost keys it replaces (regenerate), or nil
}

// Open loads the keys of zone from dir and records them in the state file (StatePath). When
// dir has none it generates one CSK with algorithm alg — unless the state file records that
// the zone had keys: then they were lost, and Open returns a *LostError rather than a key the
// DS at the parent does not match, except with regenerate. A state file that cannot be read
// stops generation too (the zone might have had keys), and otherwise only adds a warning.
func Open(dir, zone string, alg uint8, regenerate bool) (*Opened, error) {
	genMu.Lock()
	defer genMu.Unlock()
	set, err := Load(dir, zone)
	if err != nil {
		return nil, err
	}
	o := &Opened{Set: set}
	if len(set.Keys) == 0 {
		had, ok, err := Recorded(dir, set.Zone)
		switch {
		case err != nil && !regenerate:
			return nil, fmt.Errorf("%s has no keys for %s, and its state file cannot be read, so it may have had keys: %w. "+
				"Not generating new ones: restore the key files, or repair or remove the state file if %s never had keys, "+
				"or add `regenerate %s` to the danezone block", dir, set.Zone, err, set.Zone, zoneArg(set.Zone))
		case ok && had.Unsigned:
			// Insecure on purpose, its withdrawn keys removed: a fresh start (the DS went).
		case ok && !regenerate:
			return nil, &LostError{Dir: dir, Zone: set.Zone, State: StatePath(dir), Had: had}
		case ok:
			o.Replaced = &had
		}
		k, err := generate(dir, set.Zone, alg, dns.ZONE|dns.SEP, time.Now())
		if err != nil {
			return nil, err
		}
		// A view of now: Load's moment came before the key's creation (see LoadOrGenerate).
		set.Keys, set.At, o.Generated = []*Key{k}, time.Now(), k
	}
	if err := Remember(dir, set); err != nil {
		set.Warnings = append(set.Warnings, err.Error()+"; danezone cannot tell later whether these keys were lost")
	}
	return o, nil
}

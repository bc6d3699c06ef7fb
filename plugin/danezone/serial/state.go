package serial

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/danelab/danelab/internal/atomicfile"
)

// State is the file that keeps the last serial served of each zone, so that a restart never
// serves a serial that is not greater than one served before (secondaries would ignore the
// new version until theirs expired). One State per path in a process.
type State struct {
	path string
	mu   sync.Mutex
	last map[string]uint32
}

type stateFile struct {
	About  string            `json:"about"`
	Serial map[string]uint32 `json:"serial"`
}

const stateAbout = "The last SOA serial danezone served for each zone. A restart serves a greater one. " +
	"Deleting this file lets serials go back to the zone file's or the clock's, and secondaries then ignore the zone until theirs expire."

var (
	statesMu sync.Mutex
	states   = map[string]*State{}
)

// Open returns the state kept in path, read once per process; a missing file is an empty
// state, an unreadable one an error that names it.
func Open(path string) (*State, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	statesMu.Lock()
	defer statesMu.Unlock()
	if s := states[abs]; s != nil {
		return s, nil
	}
	s := &State{path: abs, last: map[string]uint32{}}
	data, err := os.ReadFile(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		var f stateFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", abs, err)
		}
		for z, v := range f.Serial {
			s.last[z] = v
		}
	}
	states[abs] = s
	return s, nil
}

// Path is the file.
func (s *State) Path() string { return s.path }

// Last returns the last serial recorded for zone.
func (s *State) Last(zone string) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.last[zone]
	return v, ok
}

// Next picks the serial of a new version of zone with p and records it before it is served.
// The last serial is the greater (RFC 1982) of last (have: there is one) and the one recorded:
// everything that serves the zone from this state file (two server blocks, the old and the
// new instance during a reload) takes serials from one sequence, and none goes back. The
// serial is returned even when it cannot be recorded, with the error.
func (s *State) Next(zone string, p Policy, last uint32, have bool, file uint32, now time.Time) (uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.last[zone]; ok && (!have || Less(last, l)) {
		last, have = l, true
	}
	n := p.Next(last, have, file, now)
	return n, s.save(zone, n)
}

// Save records serial as the last of zone.
func (s *State) Save(zone string, serial uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.save(zone, serial)
}

// save writes the state with serial as the last of zone, to a temporary file renamed into
// place, so a crash leaves the old state or the new one. The caller holds s.mu.
func (s *State) save(zone string, serial uint32) error {
	s.last[zone] = serial
	data, err := json.MarshalIndent(stateFile{About: stateAbout, Serial: s.last}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(data, '\n'), 0o600)
}

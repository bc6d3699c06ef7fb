package scenario

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

// TLSAKind says where the data of a host's TLSA entry comes from.
type TLSAKind int

// TLSA entry kinds.
const (
	// Computed: from the receiver's certificate ("3 1 1"): its leaf for usage 3, its issuing
	// CA for usage 2.
	Computed TLSAKind = iota
	// Wrong: from a certificate unrelated to everything served ("3 1 1 wrong", "wrong").
	Wrong
	// Given: the association data as the file gives it ("3 1 1 <hex>", any parameters).
	Given
)

// TLSAEntry is one entry of a host's tlsa list, decoded once when the file is loaded.
// In JSON it is a string: "U S M" (computed), "U S M wrong" or "wrong", "U S M <hex>".
type TLSAEntry struct {
	tlsa.Param
	Kind TLSAKind
	Data string // the hex, for Given
}

// ParseTLSAEntry reads a tlsa entry of a host.
func ParseTLSAEntry(s string) (TLSAEntry, error) {
	f := strings.Fields(s)
	if len(f) == 1 && f[0] == "wrong" {
		return TLSAEntry{Param: tlsa.Param{Usage: 3, Selector: 1, Matching: 1}, Kind: Wrong}, nil
	}
	if len(f) != 3 && len(f) != 4 {
		return TLSAEntry{}, fmt.Errorf("%q: want \"U S M\", \"U S M wrong\" or \"U S M <hex>\"", s)
	}
	if len(f) == 4 && f[3] != "wrong" { // published as given: any parameters
		var v [3]uint8
		for i, x := range f[:3] {
			n, err := strconv.Atoi(x)
			if err != nil || n < 0 || n > 255 {
				return TLSAEntry{}, fmt.Errorf("%q: %q is not a number 0..255", s, x)
			}
			v[i] = uint8(n)
		}
		if _, err := hex.DecodeString(f[3]); err != nil {
			return TLSAEntry{}, fmt.Errorf("%q: %q is not hex", s, f[3])
		}
		return TLSAEntry{Param: tlsa.Param{Usage: v[0], Selector: v[1], Matching: v[2]}, Kind: Given,
			Data: strings.ToLower(f[3])}, nil
	}
	p, err := tlsa.ParseParam(strings.Join(f[:3], " "))
	if err != nil {
		return TLSAEntry{}, err
	}
	e := TLSAEntry{Param: p, Kind: Computed}
	if len(f) == 4 {
		e.Kind = Wrong
	}
	return e, nil
}

// String is the entry as a scenario file writes it.
func (e TLSAEntry) String() string {
	p := fmt.Sprintf("%d %d %d", e.Usage, e.Selector, e.Matching)
	switch e.Kind {
	case Wrong:
		return p + " wrong"
	case Given:
		return p + " " + e.Data
	}
	return p
}

// UnmarshalJSON reads the entry from its string form.
func (e *TLSAEntry) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a string like \"3 1 1\", got %s", b)
	}
	v, err := ParseTLSAEntry(s)
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// MarshalJSON writes the entry's string form.
func (e TLSAEntry) MarshalJSON() ([]byte, error) { return json.Marshal(e.String()) }

// HasComputed reports whether entries hold a record computed from the receiver's
// certificate with the given usage.
func HasComputed(entries []TLSAEntry, usage uint8) bool {
	for _, e := range entries {
		if e.Kind == Computed && e.Usage == usage {
			return true
		}
	}
	return false
}

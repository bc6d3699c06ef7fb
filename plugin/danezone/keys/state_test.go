package keys

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestStatePath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(dir, "keys"), filepath.Join(dir, "keys-state.json")},
		{filepath.Join(dir, "keys") + "/", filepath.Join(dir, "keys-state.json")},
		{"/", "/danezone-keys-state.json"},
	} {
		if got := StatePath(tc.dir); got != tc.want {
			t.Errorf("StatePath(%q) = %q, want %q", tc.dir, got, tc.want)
		}
	}
	wd, _ := os.Getwd()
	if got, want := StatePath(".state/keys"), filepath.Join(wd, ".state", "keys-state.json"); got != want {
		t.Errorf("StatePath(.state/keys) = %q, want %q", got, want)
	}
}

// Open generates a key for a new zone and records it beside the key directory; once the
// directory is lost it refuses to generate another, unless told to regenerate.
func TestOpenLostKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	o, err := Open(dir, "example.test", dns.ECDSAP256SHA256, false)
	if err != nil || o.Generated == nil || o.Replaced != nil || len(o.Set.Keys) != 1 {
		t.Fatalf("first Open: %+v, %v", o, err)
	}
	first := strings.TrimSuffix(filepath.Base(o.Generated.File), ".key")
	had, ok, err := Recorded(dir, zone)
	if err != nil || !ok || len(had.Keys) != 1 || had.Keys[0] != first || len(had.DS) != 1 {
		t.Fatalf("state after the first Open: %+v %v %v", had, ok, err)
	}

	o, err = Open(dir, zone, dns.ECDSAP256SHA256, false)
	if err != nil || o.Generated != nil || len(o.Set.Keys) != 1 || !strings.Contains(o.Set.Keys[0].File, first) {
		t.Fatalf("second Open: %+v, %v", o, err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, zone, dns.ECDSAP256SHA256, false)
	var lost *LostError
	if !errors.As(err, &lost) {
		t.Fatalf("Open with the keys gone: %v, want a *LostError", err)
	}
	for _, want := range []string{dir, first + ".key", StatePath(dir), "regenerate example.test", had.DS[0]} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Open touched the key directory: %v", err)
	}
	if err := Missing(dir, zone); !errors.As(err, &lost) {
		t.Errorf("Missing: %v, want a *LostError", err)
	}

	o, err = Open(dir, zone, dns.ECDSAP256SHA256, true)
	if err != nil || o.Generated == nil || o.Replaced == nil || o.Replaced.Keys[0] != first {
		t.Fatalf("Open with regenerate: %+v, %v", o, err)
	}
	now, _, _ := Recorded(dir, zone)
	if len(now.Keys) != 1 || now.Keys[0] == first {
		t.Errorf("state after regenerating: %v, want the new key only", now.Keys)
	}
	if _, err := Open(dir, zone, dns.ECDSAP256SHA256, false); err != nil {
		t.Errorf("Open after regenerating: %v", err)
	}
}

// Each zone has its own record: another zone's keys do not stand in for a lost one's.
func TestOpenLostKeysPerZone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := Open(dir, "a.test", dns.ED25519, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, "b.test", dns.ED25519, false); err != nil {
		t.Fatal(err)
	}
	for _, k := range a.Set.Keys {
		os.Remove(k.File)
		os.Remove(strings.TrimSuffix(k.File, ".key") + ".private")
	}
	var lost *LostError
	if _, err := Open(dir, "a.test", dns.ED25519, false); !errors.As(err, &lost) || lost.Zone != "a.test." {
		t.Errorf("a.test with its keys deleted: %v", err)
	}
	if _, err := Open(dir, "b.test", dns.ED25519, false); err != nil {
		t.Errorf("b.test: %v", err)
	}
	if _, err := Open(dir, "c.test", dns.ED25519, false); err != nil {
		t.Errorf("a new zone c.test: %v", err)
	}
}

// A state file that does not parse is never overwritten; it stops generation (the zone might
// have had keys) but not the use of keys that are there.
func TestOpenCorruptState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	state := StatePath(dir)
	if err := os.WriteFile(state, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, zone, dns.ED25519, false)
	if err == nil || !strings.Contains(err.Error(), state) || !strings.Contains(err.Error(), "regenerate example.test") {
		t.Fatalf("Open with a corrupt state and no keys: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused Open touched the key directory: %v", err)
	}
	if _, err := Generate(dir, zone, dns.ED25519); err != nil {
		t.Fatal(err)
	}
	o, err := Open(dir, zone, dns.ED25519, false)
	if err != nil {
		t.Fatalf("Open with a corrupt state and keys: %v", err)
	}
	if len(o.Set.Warnings) != 1 || !strings.Contains(o.Set.Warnings[0], state) {
		t.Errorf("warnings %q, want one naming %s", o.Set.Warnings, state)
	}
	if b, _ := os.ReadFile(state); string(b) != "{not json" {
		t.Errorf("the corrupt state file was overwritten: %q", b)
	}
}

// Remember writes only when the record changes, and keeps the other zones' records.
func TestRemember(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, _, err := LoadOrGenerate(dir, "a.test", dns.ED25519)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := LoadOrGenerate(dir, "b.test", dns.ED25519)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{a, b} {
		if err := Remember(dir, s); err != nil {
			t.Fatal(err)
		}
	}
	fi1, _ := os.Stat(StatePath(dir))
	if err := Remember(dir, b); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(StatePath(dir))
	if !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("an unchanged record was written again")
	}
	if err := Remember(dir, &Set{Zone: "c.test."}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Recorded(dir, "c.test"); ok {
		t.Error("an empty set was recorded as having keys")
	}
	for _, z := range []string{"a.test", "b.test"} {
		if _, ok, _ := Recorded(dir, z); !ok {
			t.Errorf("%s not recorded", z)
		}
	}
}

func TestLoadWarnings(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate(dir, zone, dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, zone)
	if err != nil || len(set.Warnings) != 0 {
		t.Fatalf("0600: warnings %q, %v", set.Warnings, err)
	}
	priv := privPath(k.File)
	if err := os.Chmod(priv, 0o604); err != nil {
		t.Fatal(err)
	}
	set, err = Load(dir, zone)
	if err != nil || len(set.Warnings) != 1 || !strings.Contains(set.Warnings[0], priv) || !strings.Contains(set.Warnings[0], "0604") {
		t.Fatalf("0604: warnings %q, %v", set.Warnings, err)
	}
}

func TestRSABits(t *testing.T) {
	for _, tc := range []struct {
		pub  []byte
		want int
	}{
		{append([]byte{3, 1, 0, 1}, make([]byte, 128)...), 0},                // a zero modulus
		{append([]byte{3, 1, 0, 1, 0x80}, make([]byte, 127)...), 1024},       // short exponent form
		{append([]byte{0, 0, 3, 1, 0, 1, 0x80}, make([]byte, 255)...), 2048}, // long exponent form
		{[]byte{3, 1, 0, 1}, 0}, // no modulus
		{[]byte{0, 1}, 0},       // cut short
		{nil, 0},
	} {
		k := &dns.DNSKEY{PublicKey: base64.StdEncoding.EncodeToString(tc.pub)}
		if got := rsaBits(k); got != tc.want {
			t.Errorf("rsaBits(% x...) = %d, want %d", tc.pub[:min(len(tc.pub), 8)], got, tc.want)
		}
	}
}

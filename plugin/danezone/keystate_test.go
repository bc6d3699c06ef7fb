package danezone

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/roll"
	"github.com/miekg/dns"
)

func TestParseRegenerate(t *testing.T) {
	for _, tc := range []struct {
		input string
		err   string
		want  []string
	}{
		{"danezone zones/ {\n regenerate example.test b.test.\n}", "", []string{"example.test.", "b.test."}},
		{"danezone zones/ {\n regenerate a.test\n regenerate B.test\n}", "", []string{"a.test.", "b.test."}},
		{"danezone zones/ {\n regenerate\n}", "regenerate needs the zones", nil},
		{"danezone zones/ {\n regenerate a..test\n}", `invalid zone name "a..test"`, nil},
	} {
		cfg, err := parse(caddy.NewTestController("dns", tc.input))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: want error %q, got %v", tc.input, tc.err, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.input, err)
			continue
		}
		if len(cfg.regen) != len(tc.want) {
			t.Errorf("%q: regenerate %v, want %v", tc.input, cfg.regen, tc.want)
		}
		for _, z := range tc.want {
			if !cfg.regen[z] {
				t.Errorf("%q: regenerate %v lacks %s", tc.input, cfg.regen, z)
			}
		}
	}
}

// With `regenerate`, lost keys are replaced, loudly; the new key is recorded, so the next
// start needs no `regenerate`, and one left in the Corefile is pointed out.
func TestRegenerateLostKeys(t *testing.T) {
	lb := captureLog(t)
	const origin = "regen.test."
	cfg := signedZone(t, origin)
	if _, err := start(cfg); err != nil {
		t.Fatal(err)
	}
	had := keyFiles(t, cfg.keyDir)
	if err := os.RemoveAll(cfg.keyDir); err != nil {
		t.Fatal(err)
	}
	before, _ := metricValue(t, "coredns_danezone_keys_generated_total", map[string]string{"zone": origin})
	lb.Reset()
	cfg.regen = map[string]bool{origin: true}
	if _, err := start(cfg); err != nil {
		t.Fatalf("start with regenerate: %v", err)
	}
	now := keyFiles(t, cfg.keyDir)
	if len(now) != 1 || now[0] == had[0] {
		t.Fatalf("key files %v after regenerating %v", now, had)
	}
	if !strings.Contains(lb.String(), "[WARNING]") || !strings.Contains(lb.String(), had[0]) || !strings.Contains(lb.String(), now[0]) {
		t.Errorf("want a WARNING naming the lost key %s and the new one %s; log:\n%s", had[0], now[0], lb)
	}
	if after, _ := metricValue(t, "coredns_danezone_keys_generated_total", map[string]string{"zone": origin}); after != before+1 {
		t.Errorf("coredns_danezone_keys_generated_total grew by %v, want 1", after-before)
	}

	lb.Reset()
	if _, err := start(cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(lb.String(), "`regenerate` names "+origin) {
		t.Errorf("a regenerate left in place is not pointed out; log:\n%s", lb)
	}
	cfg.regen = nil
	if _, err := start(cfg); err != nil {
		t.Fatalf("start without regenerate after the keys were replaced: %v", err)
	}
}

// Keys changed while running are recorded, so a later loss names the keys in use.
func TestPollRecordsNewKeys(t *testing.T) {
	const origin = "rolled.test."
	cfg := signedZone(t, origin)
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keys.Generate(cfg.keyDir, origin, dns.ED25519)
	if err != nil {
		t.Fatal(err)
	}
	d.check(cfg, map[string]string{})
	had, ok, err := keys.Recorded(cfg.keyDir, origin)
	if err != nil || !ok || len(had.Keys) != 2 || !strings.Contains(strings.Join(had.Keys, " "), strings.TrimSuffix(filepath.Base(k.File), ".key")) {
		t.Fatalf("state after adding a key: %+v %v %v", had, ok, err)
	}
}

// TestInsecureKeysLostOrWithdrawn: `insecure` does not turn off the lost-keys check: a zone
// whose keys go missing before it withdrew them on purpose (its parent may still serve the DS)
// is not served unsigned. Once it has withdrawn them, the key files may go: served unsigned
// with `insecure`; without it, signed again with a new key that CDS names only after the
// signed zone is in every cache.
func TestInsecureKeysLostOrWithdrawn(t *testing.T) {
	const origin = "withdrawn.test."
	cfg := signedZone(t, origin)
	cfg.keyPolicy = roll.DefaultPolicy()
	if _, err := start(cfg); err != nil {
		t.Fatal(err)
	}
	if err := keys.SetDeleteDS(cfg.keyDir, origin, true); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cfg.keyDir); err != nil {
		t.Fatal(err)
	}
	cfg.insecure = map[string]bool{origin: true}
	_, err := start(cfg)
	var lost *keys.LostError
	if !errors.As(err, &lost) {
		t.Fatalf("insecure, DS asked to go but keys lost before they were withdrawn: %v, want the lost-keys error", err)
	}
	if err := keys.MarkUnsigned(cfg.keyDir, origin); err != nil {
		t.Fatal(err)
	}
	d, err := start(cfg)
	if err != nil {
		t.Fatalf("insecure with its keys withdrawn and their files removed: %v", err)
	}
	if snap := d.zones.Load().byName[origin].cur.Load(); !snap.unsigned() {
		t.Fatal("not served unsigned")
	}
	cfg.insecure = nil
	before := time.Now()
	d, err = start(cfg)
	if err != nil {
		t.Fatalf("signed again after the withdrawn key files were removed: %v", err)
	}
	ks := d.zones.Load().byName[origin].signer.Keys()
	if len(ks.Keys) != 1 || !ks.DeleteDS || len(ks.CDSKeys()) != 0 {
		t.Fatalf("signed again: %d keys, DeleteDS %v, CDS names %d (%v at %v)", len(ks.Keys), ks.DeleteDS, len(ks.CDSKeys()), ks.Keys[0].Timing, ks.At)
	}
	if sp, want := ks.Keys[0].Timing.SyncPublish, before.Add(cfg.keyPolicy.SecureAgainWait(0)).Truncate(time.Second); sp.Before(want) {
		t.Errorf("CDS names the new key from %v, want not before %v", sp, want)
	}
	if cds := ks.CDS(); len(cds) != 1 || cds[0].(*dns.CDS).Algorithm != 0 {
		t.Errorf("CDS while signed again: %v, want DELETE until the key is named", cds)
	}
}

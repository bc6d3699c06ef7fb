package danezone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/miekg/dns"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		input string
		err   string
		check func(*config) bool
	}{
		{"danezone zones/", "", func(c *config) bool {
			return c.path == "zones/" && c.keyDir == ".state/keys" && c.mode == denial.NSEC && c.reload == time.Second &&
				c.policy.Validity == 14*24*time.Hour && c.policy.Refresh == 7*24*time.Hour && c.policy.Inception == time.Hour
		}},
		{"danezone db.example example.test {\n keys /k\n algorithm ed25519\n denial minimal\n validity 30d\n refresh 10d\n jitter 2h\n inception 30m\n reload 0\n}", "", func(c *config) bool {
			return c.origins[0] == "example.test." && c.keyDir == "/k" && c.algorithm == dns.ED25519 && c.mode == denial.Minimal &&
				c.policy.Validity == 30*24*time.Hour && c.policy.Refresh == 10*24*time.Hour && c.policy.Jitter == 2*time.Hour &&
				c.policy.Inception == 30*time.Minute && c.reload == 0
		}},
		{"danezone zones/ {\n denial minimal a.test b.test\n}", "", func(c *config) bool {
			return c.mode == denial.NSEC && c.modes["a.test."] == denial.Minimal && c.modes["b.test."] == denial.Minimal
		}},
		{"danezone zones/ {\n validity 2h\n}", "", func(c *config) bool {
			return c.policy.Refresh == time.Hour && c.policy.Jitter == 30*time.Minute
		}},
		{"danezone", "Wrong argument count", nil},
		{"danezone zones/ {\n denial nsec5\n}", `unknown denial mode "nsec5": valid are nsec, minimal`, nil},
		{"danezone zones/ {\n algorithm dsa\n}", "ecdsap256sha256", nil},
		{"danezone zones/ {\n validity soon\n}", `invalid duration "soon"`, nil},
		{"danezone zones/ {\n validity 10m\n}", "too short", nil},
		{"danezone zones/ {\n validity 1d\n refresh 2d\n}", "shorter than validity", nil},
		{"danezone zones/ {\n colour blue\n}", `unknown property "colour"`, nil},
		{"danezone zones/ {\n keys\n}", "keys takes one argument", nil},
	}
	for _, tc := range tests {
		c := caddy.NewTestController("dns", tc.input)
		cfg, err := parse(c)
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
		if !tc.check(cfg) {
			t.Errorf("%q: wrong config %+v", tc.input, cfg)
		}
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.test.zone"), []byte("$ORIGIN bad.test.\n@ 60 SOA ns h 1 1 1 1 1\n@ 60 NS ns\nwww 60 A 1.2.3\n"), 0o644)
	c := caddy.NewTestController("dns", "danezone "+dir+" {\n keys "+filepath.Join(dir, "keys")+"\n}")
	err := setup(c)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "bad.test.zone")+":4:") {
		t.Fatalf("want an error naming the file and line 4, got %v", err)
	}
	c = caddy.NewTestController("dns", "danezone "+t.TempDir())
	if err := setup(c); err == nil || !strings.Contains(err.Error(), "no zone files") {
		t.Fatalf("empty directory: %v", err)
	}
}

// TestDirectoryPoll covers the poll loop: a changed file is reloaded, a broken one keeps the
// last good version, a new file adds a zone, a key change re-signs.
func TestDirectoryPoll(t *testing.T) {
	dir := t.TempDir()
	zoneText := func(serial, extra string) string {
		return "$ORIGIN a.test.\n$TTL 60\n@ SOA ns h " + serial + " 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n" + extra
	}
	file := filepath.Join(dir, "a.test.zone")
	os.WriteFile(file, []byte(zoneText("1", "")), 0o644)
	cfg := &config{path: dir, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, mode: denial.NSEC,
		modes: map[string]denial.Mode{"b.test.": denial.Minimal}, policy: signer.DefaultPolicy()}
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]string{}
	serialOf := func(origin string) uint32 { return d.zones.Load().byName[origin].cur.Load().z.Serial }

	os.WriteFile(file, []byte(zoneText("2", "www A 127.0.0.2\n")), 0o644)
	d.check(cfg, failed)
	if serialOf("a.test.") != 2 {
		t.Fatal("changed file not reloaded")
	}
	os.WriteFile(file, []byte(zoneText("3", "www CNAME ns\nwww A 127.0.0.3\n")), 0o644)
	d.check(cfg, failed)
	if serialOf("a.test.") != 2 || !strings.Contains(failed[file], "a.test.zone:7: CNAME and other data") {
		t.Fatalf("broken file: serial %d, error %q", serialOf("a.test."), failed[file])
	}
	os.WriteFile(filepath.Join(dir, "b.test.zone"), []byte(strings.ReplaceAll(zoneText("9", ""), "a.test.", "b.test.")), 0o644)
	d.check(cfg, failed)
	if sz := d.zones.Load().byName["b.test."]; sz == nil || sz.mode != denial.Minimal || serialOf("a.test.") != 2 {
		t.Fatal("new zone file not picked up with its denial mode")
	}
	os.Remove(filepath.Join(dir, "b.test.zone"))
	d.check(cfg, failed)
	if d.zones.Load().byName["b.test."] != nil {
		t.Fatal("removed zone still served")
	}
}

// TestConcurrentQueriesAndReloads runs queries while the zone is reloaded; with -race it
// proves responses never touch data shared with the zone.
func TestConcurrentQueriesAndReloads(t *testing.T) {
	for _, mode := range []denial.Mode{denial.NSEC, denial.Minimal} {
		d, file := newTestZone(t, mode)
		sz := d.zones.Load().byName["example.test."]
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				names := []string{"mx1.example.test.", "Nope.example.test.", "x.users.example.test.", "webmail.example.test.", "x.sub.example.test."}
				for j := 0; ; j++ {
					select {
					case <-stop:
						return
					default:
					}
					m := new(dns.Msg)
					m.SetQuestion(names[(i+j)%len(names)], dns.TypeA)
					m.SetEdns0(1232, true)
					rec := dnstest.NewRecorder(&test.ResponseWriter{})
					d.ServeDNS(context.Background(), rec, m)
					if _, err := rec.Msg.Pack(); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		for i := range 20 {
			data, _ := os.ReadFile(file)
			os.WriteFile(file, append(data, []byte("r"+string(rune('a'+i))+" A 127.0.0.1\n")...), 0o644)
			if err := sz.reload(); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
	}
}

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
	"github.com/danelab/danelab/plugin/danezone/serial"
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
		// The key policy.
		{"danezone zones/", "", func(c *config) bool {
			return !c.keyPolicy.Split && c.keyPolicy.KSKLifetime == 0 && c.keyPolicy.DNSKEYTTL == time.Hour && c.keyPolicy.Algorithm == dns.ECDSAP256SHA256
		}},
		{"danezone zones/ {\n rollover split\n lifetime zsk 90d\n lifetime ksk 365d\n algorithm ed25519\n timing dnskey-ttl 300s propagation 10m\n parental_agents 192.0.2.1 [2001:db8::1]:5353\n follow_cds\n}", "", func(c *config) bool {
			p := c.keyPolicy
			return p.Split && p.ZSKLifetime == 90*24*time.Hour && p.KSKLifetime == 365*24*time.Hour && p.Algorithm == dns.ED25519 &&
				p.DNSKEYTTL == 300*time.Second && p.Propagation == 10*time.Minute && len(c.agents) == 2 && c.followCDS
		}},
		{"danezone zones/ {\n rollover double\n}", `rollover "double": want csk`, nil},
		{"danezone zones/ {\n lifetime zsk 90d\n}", "lifetime zsk needs rollover split", nil},
		{"danezone zones/ {\n lifetime kek 90d\n}", `lifetime "kek": want csk, ksk or zsk`, nil},
		{"danezone zones/ {\n lifetime csk soon\n}", "lifetime csk", nil},
		{"danezone zones/ {\n timing dnskey-ttl\n}", "timing takes pairs", nil},
		{"danezone zones/ {\n timing ttl 1h\n}", `timing "ttl": want one of dnskey-ttl`, nil},
		{"danezone zones/ {\n parental_agents ns1.example.net\n}", `parental_agents: "ns1.example.net" is not an IP address`, nil},
		{"danezone zones/ {\n rollover split\n lifetime zsk 1h\n}", "key policy: zsk lifetime 1h0m0s is shorter than a ZSK roll takes", nil},
		{"danezone zones/ {\n lifetime csk 1d\n}", "key policy: csk lifetime 24h0m0s is shorter than a roll takes at the least", nil},
		{"danezone zones/ {\n denial nsec3 iterations 0 salt - optout a.test\n denial nsec3-narrow\n}", "", func(c *config) bool {
			return c.mode == denial.NSEC3Narrow && c.modes["a.test."] == denial.Mode{Kind: "nsec3", OptOut: true}
		}},
		{"danezone zones/ {\n denial nsec3 iterations 500\n}", "want 0 to 100", nil},
		{"danezone zones/ {\n insecure a.test B.test.\n}", "", func(c *config) bool { return c.insecure["a.test."] && c.insecure["b.test."] }},
		{"danezone zones/ {\n insecure\n}", "insecure needs the zones", nil},
		{"danezone zones/ {\n insecure .\n}", "the root zone has no parent", nil},
		{"danezone zones/ {\n insecure a.test\n unsigned a.test\n}", "a.test. is both unsigned", nil},
		{"danezone zones/ {\n insecure a.test\n reload 0\n}", "insecure needs the poll", nil},
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

func TestStaticFaults(t *testing.T) {
	c := caddy.NewTestController("dns", "danezone zones/ {\n fault servfail _25._tcp.mx1.example.test TLSA count 2\n fault delay *.example.test delay 2s after 1m for 10m share 0.5\n fault nsec3-iterations *.example.test iterations 151\n}")
	cfg, err := parse(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.faults) != 3 || cfg.faults[2].Iterations != 151 || cfg.faults[0].Count != 2 || cfg.faults[0].Type != "TLSA" || time.Duration(cfg.faults[1].Delay) != 2*time.Second ||
		cfg.faults[1].Share != 0.5 || time.Duration(cfg.faults[1].For) != 10*time.Minute {
		t.Fatalf("%+v", cfg.faults)
	}
	for _, bad := range []struct{ in, err string }{
		{"fault explode x", "valid modes are"},
		{"fault servfail", "needs a mode and a name"},
		{"fault servfail x count", `"count" needs a value`},
		{"fault servfail x colour red", `unknown option "colour"`},
		{"fault delay x", "positive delay"},
		{"fault servfail x iterations 5", "only for the nsec3-iterations mode"},
		{"fault nsec3-iterations x iterations many", `iterations "many"`},
		{"control 0.0.0.0:8053", "set a token"},
	} {
		c := caddy.NewTestController("dns", "danezone zones/ {\n "+bad.in+"\n}")
		if _, err := parse(c); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("%s: want %q, got %v", bad.in, bad.err, err)
		}
	}
}

// TestParseDurationBounds checks that every duration in the Corefile is read by the one
// parser and bounded to what it means, with an error naming the directive and its line.
func TestParseDurationBounds(t *testing.T) {
	const tlsaLine = "tlsa mx1.example.test cert /x.pem "
	tests := []struct {
		line string
		err  string // "" for none
	}{
		{"validity 730d", ""},
		{"validity 30000d", "validity 30000d is too long (at most 730d)"},
		{"validity 200000d", `validity: invalid duration "200000d": out of range`},
		{"validity -14d", `validity: invalid duration "-14d": negative`},
		{"validity 14", `validity: invalid duration "14": a unit is missing`},
		{"validity 59m", "validity 59m is too short (at least 1h)"},
		{"refresh 9999999h", `refresh: invalid duration "9999999h": out of range`},
		{"refresh 731d", "refresh 731d is too long (at most 730d)"},
		{"jitter 731d", "jitter 731d is too long (at most 730d)"},
		{"inception 7d", ""},
		{"inception 8d", "inception 8d is too long (at most 7d)"},
		{"reload 10ms", ""},
		{"reload 0", ""},
		{"reload 1ms", "reload 1ms is too short (at least 10ms; 0 turns reloading off)"},
		{"reload 2d", "reload 2d is too long (at most 1d)"},
		{"fault servfail x after 365d for 365d", ""},
		{"fault delay x delay 1m", ""},
		{"fault servfail x for 200000d", `fault: for: invalid duration "200000d": out of range (at most 106751d)`},
		{"fault servfail x after 200000d", `fault: after: invalid duration "200000d": out of range`},
		{"fault servfail x for 366d", "fault: for 366d is too long (at most 365d)"},
		{"fault servfail x after 400d", "fault: after 400d is too long (at most 365d)"},
		{"fault servfail x for -10m", `fault: for: invalid duration "-10m": negative`},
		{"fault delay x delay 61s", "fault: delay 1m1s is too long (at most 1m)"},
		{"fault delay x delay 9999999h", `fault: delay: invalid duration "9999999h": out of range`},
		{tlsaLine + "hold 30d interval 1d warn 365d", ""},
		{tlsaLine + "hold 31d", "tlsa: hold 31d is too long (at most 30d)"},
		{tlsaLine + "hold 200000d", `tlsa: hold: invalid duration "200000d": out of range`},
		{tlsaLine + "interval 25h", "tlsa: interval 25h is too long (at most 1d)"},
		{tlsaLine + "warn 400d", "tlsa: warn 400d is too long (at most 365d)"},
		{tlsaLine + "warn soon", `tlsa: warn: invalid duration "soon"`},
		{"serial increment", ""},
		{"serial dateserial", `unknown serial policy "dateserial": valid are unixtime, increment, file`},
		{"serial", "serial takes one argument"},
	}
	for _, tc := range tests {
		c := caddy.NewTestController("dns", "danezone zones/ {\n "+tc.line+"\n}")
		_, err := parse(c)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.line, err)
			}
			continue
		}
		// c.Errf: the file and the line of the directive.
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "Testfile:2 - Error during parsing") {
			t.Errorf("%s: want an error on line 2 with %q, got %v", tc.line, tc.err, err)
		}
	}
	// Jitter is random extra validity: at most the validity itself.
	c := caddy.NewTestController("dns", "danezone zones/ {\n validity 2d\n jitter 3d\n}")
	if _, err := parse(c); err == nil || !strings.Contains(err.Error(), "jitter 3d must not be longer than validity 2d") {
		t.Errorf("jitter beyond validity: %v", err)
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
	cfg := &config{path: dir, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: serial.File, mode: denial.NSEC,
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

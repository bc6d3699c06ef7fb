package danezone

import (
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

// FuzzSetup feeds arbitrary text to the Corefile parser as the danezone block: it must never
// panic, and whatever it accepts must make a consistent configuration.
func FuzzSetup(f *testing.F) {
	for _, seed := range []string{
		"zones/",
		"db.example example.test {\n keys /k\n algorithm ed25519\n denial minimal\n validity 30d\n refresh 10d\n jitter 2h\n inception 30m\n reload 0\n}",
		"zones/ {\n denial minimal a.test b.test\n unsigned c.test\n regenerate a.test\n}",
		"zones/ {\n fault servfail _25._tcp.mx1.example.test TLSA count 2\n fault delay *.example.test delay 2s after 1m for 10m share 0.5\n}",
		"zones/ {\n tlsa mx1.example.test cert /x.pem next /n ports 25,465 records 311,211 ttl 300 hold 1h interval 0 warn 14d\n}",
		"zones/ {\n tlsa mx2.example.test probe 192.0.2.25:25 tls\n control 127.0.0.1:8053 tok\n}",
		"zones/ {\n validity\n}",
		"zones/ {\n fault\n tlsa\n denial\n}",
		"zones/ {\n reload 106751d\n}",
		"\"zones/\" {\n keys \"k\"\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, block string) {
		cfg, err := parse(caddy.NewTestController("dns", "danezone "+block))
		if err != nil {
			return
		}
		if cfg.path == "" || cfg.keyDir == "" {
			t.Fatalf("accepted %q with an empty PATH or key directory: %+v", block, cfg)
		}
		if err := cfg.policy.Check(); err != nil {
			t.Fatalf("accepted %q with a bad signing policy: %v", block, err)
		}
	})
}

// Empty strings where a path belongs are refused when the Corefile is read (FuzzSetup).
func TestParseEmptyPaths(t *testing.T) {
	for input, want := range map[string]string{
		`danezone ""`:                      "danezone needs a PATH",
		"danezone zones/ {\n keys \"\"\n}": "keys needs a directory",
	} {
		if _, err := parse(caddy.NewTestController("dns", input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", input, err, want)
		}
	}
}

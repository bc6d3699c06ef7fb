package danezone

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	golog "log"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// logBuf collects what clog writes.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// captureLog sends the log to a buffer until the test ends.
func captureLog(t *testing.T) *logBuf {
	t.Helper()
	lb := &logBuf{}
	golog.SetOutput(lb)
	t.Cleanup(func() { golog.SetOutput(os.Stderr) })
	return lb
}

// metricValue returns the value of the counter or gauge name with the given labels.
func metricValue(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// signedZone writes a zone file for origin (which names the test's metric series) in a new
// directory and returns a configuration serving it, with keys in DIR/keys.
func signedZone(t *testing.T, origin string) *config {
	t.Helper()
	dir := t.TempDir()
	text := "$ORIGIN " + origin + "\n$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, origin+"zone"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return &config{path: dir, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: serial.File, mode: denial.NSEC,
		modes: map[string]denial.Mode{}, unsigned: map[string]bool{}, policy: signer.DefaultPolicy()}
}

// keyFiles lists the K*.key files of dir, without the extension.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "K*.key"))
	for i := range m {
		m[i] = strings.TrimSuffix(filepath.Base(m[i]), ".key")
	}
	sort.Strings(m)
	return m
}

// A zone whose key directory is lost is not signed with a new key behind the operator's back:
// the running server keeps its keys and says so, a restart refuses to start the zone and says
// what to do, and restoring the keys brings it back with the same key.
func TestLostKeysNotReplaced(t *testing.T) {
	lb := captureLog(t)
	const origin = "lost.test."
	cfg := signedZone(t, origin)
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	had := keyFiles(t, cfg.keyDir)
	if len(had) != 1 {
		t.Fatalf("first start: key files %v, want one generated key", had)
	}
	backup := filepath.Join(t.TempDir(), "keys")
	if err := os.Rename(cfg.keyDir, backup); err != nil {
		t.Fatal(err)
	}

	// While running: the keys in memory keep signing, with an ERROR naming the directory and
	// the lost key, and the keys_missing gauge.
	d.check(cfg, map[string]string{})
	sz := d.zones.Load().byName[origin]
	if ks := sz.signer.Keys(); len(ks.Keys) != 1 || !strings.Contains(ks.Keys[0].File, had[0]) {
		t.Errorf("running server no longer signs with %s", had[0])
	}
	logText := lb.String()
	if !strings.Contains(logText, "[ERROR]") || !strings.Contains(logText, cfg.keyDir) || !strings.Contains(logText, had[0]) {
		t.Errorf("key directory gone while running: want an ERROR naming %s and the lost key %s; log:\n%s", cfg.keyDir, had[0], logText)
	}
	if v, ok := metricValue(t, "coredns_danezone_keys_missing", map[string]string{"zone": origin}); !ok || v != 1 {
		t.Errorf("coredns_danezone_keys_missing{zone=%q} = %v (present %v), want 1", origin, v, ok)
	}

	// A restart does not generate a key the parent's DS does not match.
	_, err = start(cfg)
	if err == nil {
		t.Fatalf("restart with the key directory gone succeeded: key files now %v, the lost key was %s; "+
			"validators trusting the DS of %s would reject the zone", keyFiles(t, cfg.keyDir), had[0], had[0])
	}
	for _, want := range []string{cfg.keyDir, had[0], "regenerate lost.test"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("restart refused with %q, which does not say %q", err, want)
		}
	}
	if got := keyFiles(t, cfg.keyDir); len(got) != 0 {
		t.Errorf("refused restart still wrote key files %v", got)
	}

	// Restored keys serve again, the same key.
	if err := os.Rename(backup, cfg.keyDir); err != nil {
		t.Fatal(err)
	}
	d2, err := start(cfg)
	if err != nil {
		t.Fatalf("restart with the keys restored: %v", err)
	}
	if ks := d2.zones.Load().byName[origin].signer.Keys(); len(ks.Keys) != 1 || !strings.Contains(ks.Keys[0].File, had[0]) {
		t.Errorf("after restoring, the zone is not signed with %s", had[0])
	}
	if v, _ := metricValue(t, "coredns_danezone_keys_missing", map[string]string{"zone": origin}); v != 0 {
		t.Errorf("coredns_danezone_keys_missing{zone=%q} = %v after restoring, want 0", origin, v)
	}
}

// A key file that fails to load is counted in reloads_total{result="failed"} and logged once per
// appearance: polling it again is not a new failure, but removing it and adding it again is.
func TestKeyLoadFailuresCounted(t *testing.T) {
	lb := captureLog(t)
	const origin = "badkey.test."
	cfg := signedZone(t, origin)
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := keyFiles(t, cfg.keyDir)
	// A broken key: the .key of another key of the zone, without its .private.
	k, err := keys.Generate(t.TempDir(), origin, dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(k.File)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(cfg.keyDir, filepath.Base(k.File))
	badName := strings.TrimSuffix(filepath.Base(k.File), ".key")
	failedLoads := func() float64 {
		v, _ := metricValue(t, "coredns_danezone_reloads_total", map[string]string{"zone": origin, "result": "failed"})
		return v
	}
	failed := map[string]string{}
	for round := 1; round <= 2; round++ {
		lb.Reset()
		before := failedLoads()
		if err := os.WriteFile(bad, data, 0o644); err != nil {
			t.Fatal(err)
		}
		d.check(cfg, failed)
		d.check(cfg, failed) // an identical repeat: neither logged nor counted again
		if n := strings.Count(lb.String(), badName); n != 1 {
			t.Errorf("round %d: the broken key %s is in the log %d times, want once; log:\n%s", round, badName, n, lb)
		}
		if got := failedLoads() - before; got != 1 {
			t.Errorf("round %d: coredns_danezone_reloads_total{result=\"failed\"} grew by %v, want 1", round, got)
		}
		if ks := d.zones.Load().byName[origin].signer.Keys(); len(ks.Keys) != 1 || !strings.Contains(ks.Keys[0].File, served[0]) {
			t.Errorf("round %d: the broken key changed the keys in use", round)
		}
		if err := os.Remove(bad); err != nil {
			t.Fatal(err)
		}
		d.check(cfg, failed)
	}
}

// writeRSAKey writes a BIND RSASHA256 key pair of the given size for zone into dir and returns
// the .key file. Sizes under 1024 bits, which crypto/rsa no longer generates, are made by hand.
func writeRSAKey(t *testing.T, dir, zone string, bits int) string {
	t.Helper()
	dnskey := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.RSASHA256}
	var priv *rsa.PrivateKey
	if bits >= 1024 {
		p, err := dnskey.Generate(bits)
		if err != nil {
			t.Fatal(err)
		}
		priv = p.(*rsa.PrivateKey)
	} else {
		one := big.NewInt(1)
		for priv == nil {
			p, _ := rand.Prime(rand.Reader, bits/2)
			q, _ := rand.Prime(rand.Reader, bits/2)
			n := new(big.Int).Mul(p, q)
			phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
			d := new(big.Int).ModInverse(big.NewInt(65537), phi)
			if d == nil || n.BitLen() != bits || p.Cmp(q) == 0 {
				continue
			}
			priv = &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
			priv.Precompute()
		}
		// RFC 3110 §2: exponent length, exponent, modulus.
		dnskey.PublicKey = base64.StdEncoding.EncodeToString(append([]byte{3, 1, 0, 1}, priv.N.Bytes()...))
	}
	base, err := keys.BaseName(zone, dns.RSASHA256, dnskey.KeyTag())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, base+".key")
	if err := os.WriteFile(keyFile, []byte(dnskey.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, base+".private"), []byte(dnskey.PrivateKeyString(priv)), 0o600); err != nil {
		t.Fatal(err)
	}
	return keyFile
}

// Key files that work but should not be used as they are get a WARNING naming the file; an RSA
// key too small to sign with is refused with an error naming it.
func TestKeyFileWarnings(t *testing.T) {
	for _, tc := range []struct {
		name   string
		origin string
		keys   func(t *testing.T, dir, origin string) string // writes the keys, returns the file to name
		warn   string                                        // in a WARNING with the file; "" for none
		err    string                                        // start fails naming the file
	}{
		{"private 0600", "mode600.test.", func(t *testing.T, dir, origin string) string {
			k, err := keys.Generate(dir, origin, dns.ECDSAP256SHA256)
			if err != nil {
				t.Fatal(err)
			}
			return k.File
		}, "", ""},
		{"private readable by all", "mode644.test.", chmodPrivate(0o644), "mode 0644", ""},
		{"private with a group bit", "mode640.test.", chmodPrivate(0o640), "mode 0640", ""},
		{"private writable by others", "mode602.test.", chmodPrivate(0o602), "mode 0602", ""},
		{"RSA 2048", "rsa2048.test.", func(t *testing.T, dir, origin string) string {
			return writeRSAKey(t, dir, origin, 2048)
		}, "", ""},
		{"RSA 1024", "rsa1024.test.", func(t *testing.T, dir, origin string) string {
			return writeRSAKey(t, dir, origin, 1024)
		}, "1024 bits", ""},
		{"RSA 512", "rsa512.test.", func(t *testing.T, dir, origin string) string {
			return writeRSAKey(t, dir, origin, 512)
		}, "", "512 bits refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lb := captureLog(t)
			cfg := signedZone(t, tc.origin)
			file := tc.keys(t, cfg.keyDir, tc.origin)
			_, err := start(cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("start: %v; want an error naming %s and saying %q", err, file, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			for _, line := range strings.Split(lb.String(), "\n") {
				if strings.Contains(line, "[WARNING]") {
					warnings = append(warnings, line)
				}
			}
			if tc.warn == "" {
				if len(warnings) > 0 {
					t.Errorf("unexpected warnings: %q", warnings)
				}
				return
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0], file) || !strings.Contains(warnings[0], tc.warn) {
				t.Errorf("want one WARNING naming %s and saying %q, got %q", file, tc.warn, warnings)
			}
		})
	}
}

// chmodPrivate generates an ECDSA key and gives its .private file mode; the warning names it.
func chmodPrivate(mode os.FileMode) func(t *testing.T, dir, origin string) string {
	return func(t *testing.T, dir, origin string) string {
		k, err := keys.Generate(dir, origin, dns.ECDSAP256SHA256)
		if err != nil {
			t.Fatal(err)
		}
		priv := strings.TrimSuffix(k.File, ".key") + ".private"
		if err := os.Chmod(priv, mode); err != nil {
			t.Fatal(err)
		}
		return priv
	}
}

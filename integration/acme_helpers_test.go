package integration

// ACME: pebble (a test CA) and lego (a client), for the tests that renew certificates
// (TestTLSAACMERenewal, and `danelab tlsa sync` run from a lego hook).
//
// pebble runs with PEBBLE_VA_ALWAYS_VALID=1 (every challenge passes: nothing needs to answer
// on the challenge ports), PEBBLE_VA_NOSLEEP=1, PEBBLE_WFE_NONCEREJECT=0 (no random bad
// nonces) and PEBBLE_AUTHZREUSE=0, over HTTPS with a certificate made by the test; lego
// trusts it through LEGO_CA_CERTIFICATES.
//
// lego (Debian 12: lego 4.9.1, `lego --version` prints "dev"), measured by TestLegoHooks:
//
//   - `lego run --run-hook CMD` and `lego renew --renew-hook CMD`; each flag is unknown to the
//     other command (exit 1, "flag provided but not defined: -renew-hook").
//   - CMD is split at white space and run without a shell (quotes stay literal: "h a1 'a 2'"
//     gives the arguments a1, 'a, 2'), in lego's working directory, with lego's environment
//     plus:
//     LEGO_ACCOUNT_EMAIL  the --email
//     LEGO_CERT_DOMAIN    the first domain (of --domains, or of the CSR)
//     LEGO_CERT_PATH      PATH/certificates/DOMAIN.crt
//     LEGO_CERT_KEY_PATH  PATH/certificates/DOMAIN.key
//     and, from `renew` without --csr only, LEGO_CERT_PEM_PATH and LEGO_CERT_PFX_PATH
//     (DOMAIN.pem, DOMAIN.pfx) even without --pem/--pfx, when no such file exists.
//     The hook's standard output shows in lego's output.
//   - Both hooks run after lego has written the new DOMAIN.crt, DOMAIN.issuer.crt,
//     DOMAIN.json (and DOMAIN.key): the hook reads the new certificate. A hook that fails
//     makes lego exit with the hook's exit code, the new files already written.
//   - `lego renew` renews (and runs the hook) only when the certificate expires within
//     --days (pebble's certificates last 1825 days: --days 9999 forces it); otherwise it
//     exits 0, prints "no renewal" and runs no hook.
//   - `lego renew --csr FILE` works (as does `lego run --csr FILE`, without --domains): the
//     new certificate has the CSR's key; lego writes no key file, yet LEGO_CERT_KEY_PATH still
//     names DOMAIN.key, which then holds the key of an earlier run without --csr (stale), or
//     does not exist.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/internal/peer"
)

// pebbleCA is a running pebble.
type pebbleCA struct {
	Dir    string // the ACME directory URL, https://127.0.0.1:PORT/dir
	CACert string // PEM file of pebble's own HTTPS certificate (for LEGO_CA_CERTIFICATES)
	Log    string // pebble's output

	dir  string
	proc *process
}

// startPebble starts pebble on free loopback ports (ACME, management, and the challenge
// ports it would validate on) and waits (15s) until it accepts connections; it stops it when
// the test ends. It skips the test if pebble is not installed (fails it under CI=true).
func startPebble(tb testing.TB) *pebbleCA {
	tb.Helper()
	bin := peer.Need(tb, "pebble")
	dir := tb.TempDir()
	tlsCert := tlMakeCert(tb, tlCertOpts{CN: "pebble", DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile := tlWriteTemp(tb, dir, "pebble-cert.pem", tlsCert.CertPEM)
	keyFile := tlWriteTemp(tb, dir, "pebble-key.pem", tlsCert.KeyPEM)
	ports := make([]int, 4)
	for i := range ports {
		var err error
		if ports[i], err = FreePort(); err != nil {
			tb.Fatal(err)
		}
	}
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       ports[2],
		"tlsPort":                        ports[3],
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
	}})
	cfgFile := tlWriteTemp(tb, dir, "pebble.json", cfg)
	ca := &pebbleCA{Dir: fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0]), CACert: certFile,
		Log: filepath.Join(dir, "pebble.log"), dir: dir}
	var err error
	ca.proc, err = startProcess("pebble", dir, ca.Log, "env",
		"PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0",
		bin, "-config", cfgFile)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ca.proc.stop)
	if m := waitFor(15*time.Second, func() string {
		if !ca.proc.running() {
			return "pebble exited"
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), time.Second)
		if err != nil {
			return err.Error()
		}
		c.Close()
		return ""
	}); m != "" {
		tb.Fatalf("pebble: %s\n%s", m, tail(ca.Log, 2000))
	}
	return ca
}

// LogTail returns at most the last n bytes of pebble's output.
func (ca *pebbleCA) LogTail(n int) string { return tail(ca.Log, n) }

// Lego runs lego against the CA: see LegoEnv.
func (ca *pebbleCA) Lego(tb testing.TB, legoDir string, timeout time.Duration, args ...string) (out string, code int) {
	tb.Helper()
	return ca.LegoEnv(tb, legoDir, timeout, nil, args...)
}

// LegoEnv runs `lego --accept-tos --email hostmaster@example.test --server DIR --path legoDir
// --http --http.port 127.0.0.1:FREEPORT ARGS...` with LEGO_CA_CERTIFICATES naming the CA's
// certificate and env (KEY=VALUE) added to the test's environment. args hold the rest:
// --domains or --csr, --key-type, the command and its options. It returns lego's combined
// output and exit code without judging them; a lego still running after timeout is killed
// (with its process group, hooks included) and reported as code -1. It skips the test if
// lego is not installed (fails it under CI=true).
func (ca *pebbleCA) LegoEnv(tb testing.TB, legoDir string, timeout time.Duration, env []string, args ...string) (out string, code int) {
	tb.Helper()
	bin := peer.Need(tb, "lego")
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	argv := append([]string{"--accept-tos", "--email", "hostmaster@example.test", "--server", ca.Dir,
		"--path", legoDir, "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", port)}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = append(append(os.Environ(), "LEGO_CA_CERTIFICATES="+ca.CACert), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	out = buf.String()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return out + fmt.Sprintf("\n(lego killed: no exit within %v)", timeout), -1
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	case err != nil:
		return out + "\n(" + err.Error() + ")", -1
	}
	return out, 0
}

// legoHookScript records each run of a lego hook into $HOOK_OUT: its arguments, the LEGO_*
// variables, and the SHA-256 of the certificate and key files as the hook sees them; it
// prints a line to standard output and exits with $HOOK_EXIT (default 0).
const legoHookScript = `#!/bin/sh
{
echo "RUN"
for a in "$@"; do echo "ARG=$a"; done
env | grep '^LEGO_CERT\|^LEGO_ACCOUNT' | sort
echo "CRT_SHA=$(sha256sum < "$LEGO_CERT_PATH" | cut -d' ' -f1)"
echo "KEY_SHA=$(sha256sum < "$LEGO_CERT_KEY_PATH" | cut -d' ' -f1)"
} >> "$HOOK_OUT"
echo "hook-stdout-marker"
exit ${HOOK_EXIT:-0}
`

// legoHookRun is one run of legoHookScript.
type legoHookRun struct {
	Args []string
	Env  map[string]string // LEGO_CERT_*, LEGO_ACCOUNT_*
	Crt  string            // SHA-256 of LEGO_CERT_PATH when the hook ran
	Key  string            // SHA-256 of LEGO_CERT_KEY_PATH ("" if missing)
}

func legoHookRuns(tb testing.TB, path string) []legoHookRun {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		tb.Fatal(err)
	}
	var runs []legoHookRun
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch {
		case line == "RUN":
			runs = append(runs, legoHookRun{Env: map[string]string{}})
		case len(runs) == 0 || line == "":
		case k == "ARG":
			runs[len(runs)-1].Args = append(runs[len(runs)-1].Args, v)
		case k == "CRT_SHA":
			runs[len(runs)-1].Crt = v
		case k == "KEY_SHA":
			if v != sha256Hex(nil) {
				runs[len(runs)-1].Key = v
			}
		default:
			runs[len(runs)-1].Env[k] = v
		}
	}
	return runs
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256Hex(b)
}

// TestLegoHooks checks the facts about lego's hooks stated at the top of this file, which
// the tests of `danelab tlsa sync` run as a hook rely on.
func TestLegoHooks(t *testing.T) {
	peer.Need(t, "lego")
	peer.Need(t, "openssl")
	t.Parallel()
	ca := startPebble(t)
	dir := t.TempDir()
	legoDir := filepath.Join(dir, "lego")
	hook := tlWriteTemp(t, dir, "hook.sh", []byte(legoHookScript))
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	hookOut := filepath.Join(dir, "hook.out")
	crt := filepath.Join(legoDir, "certificates", "mx1.example.test.crt")
	keyPath := filepath.Join(legoDir, "certificates", "mx1.example.test.key")
	domains := []string{"--domains", "mx1.example.test", "--domains", "mx2.example.test"}
	// lego runs args with HOOK_OUT set (and env) and returns the hook's runs.
	lego := func(what string, wantCode int, env []string, args ...string) (string, []legoHookRun) {
		t.Helper()
		if err := os.WriteFile(hookOut, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		out, code := ca.LegoEnv(t, legoDir, 60*time.Second, append([]string{"HOOK_OUT=" + hookOut}, env...), args...)
		if code != wantCode {
			t.Fatalf("%s: lego %v: exit %d, want %d\n%s\npebble:\n%s", what, args, code, wantCode, out, ca.LogTail(2000))
		}
		runs := legoHookRuns(t, hookOut)
		t.Logf("%s: lego exit %d after %v, hook ran %d times", what, code, time.Since(t0).Round(time.Millisecond), len(runs))
		return out, runs
	}
	checkEnv := func(what string, r legoHookRun, extra ...string) {
		t.Helper()
		want := map[string]string{
			"LEGO_ACCOUNT_EMAIL": "hostmaster@example.test",
			"LEGO_CERT_DOMAIN":   "mx1.example.test",
			"LEGO_CERT_PATH":     crt,
			"LEGO_CERT_KEY_PATH": keyPath,
		}
		for _, k := range extra {
			want[k] = filepath.Join(legoDir, "certificates", "mx1.example.test."+strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(k, "LEGO_CERT_"), "_PATH")))
		}
		if !maps.Equal(r.Env, want) {
			t.Errorf("%s: hook environment %v, want %v", what, r.Env, want)
		}
	}

	// run --run-hook: arguments split at white space (no shell), after the files are written.
	out, runs := lego("run", 0, nil, append(domains, "run", "--run-hook", hook+" a1 'a 2'")...)
	if len(runs) != 1 {
		t.Fatalf("run --run-hook: hook ran %d times, want once\n%s", len(runs), out)
	}
	if want := []string{"a1", "'a", "2'"}; !slices.Equal(runs[0].Args, want) {
		t.Errorf("run hook arguments %q, want %q", runs[0].Args, want)
	}
	checkEnv("run", runs[0])
	first := fileSHA(t, crt)
	if runs[0].Crt != first || runs[0].Key != fileSHA(t, keyPath) {
		t.Errorf("run hook saw certificate %s / key %s, lego left %s / %s", runs[0].Crt, runs[0].Key, first, fileSHA(t, keyPath))
	}
	if !strings.Contains(out, "hook-stdout-marker") {
		t.Errorf("run: the hook's standard output is not in lego's output:\n%s", out)
	}

	// The hook flag of one command is unknown to the other.
	for _, c := range [][]string{{"run", "--renew-hook", hook}, {"renew", "--run-hook", hook}} {
		out, runs := lego(c[0]+" "+c[1], 1, nil, append(domains, c...)...)
		if !strings.Contains(out, "flag provided but not defined: -"+strings.TrimPrefix(c[1], "--")) || len(runs) != 0 {
			t.Errorf("lego %v: hook ran %d times\n%s", c, len(runs), out)
		}
	}

	// renew --renew-hook, not due: no renewal, no hook, exit 0.
	out, runs = lego("renew, not due", 0, nil, append(domains, "renew", "--days", "1", "--no-random-sleep", "--renew-hook", hook)...)
	if len(runs) != 0 || fileSHA(t, crt) != first || !strings.Contains(out, "no renewal") {
		t.Errorf("renew not due: hook ran %d times, certificate changed %v\n%s", len(runs), fileSHA(t, crt) != first, out)
	}
	// Due: the hook runs after the new files are written. (renew also sets the PEM and PFX
	// paths, without --pem/--pfx.)
	_, runs = lego("renew", 0, nil, append(domains, "renew", "--days", "9999", "--no-random-sleep", "--renew-hook", hook)...)
	second := fileSHA(t, crt)
	if len(runs) != 1 || second == first || runs[0].Crt != second || runs[0].Key != fileSHA(t, keyPath) {
		t.Fatalf("renew: hook runs %+v; certificate %s -> %s", runs, first, second)
	}
	checkEnv("renew", runs[0], "LEGO_CERT_PEM_PATH", "LEGO_CERT_PFX_PATH")
	// A failing hook: lego exits with its code, after writing the files.
	_, runs = lego("renew, hook fails", 3, []string{"HOOK_EXIT=3"}, append(domains, "renew", "--days", "9999", "--no-random-sleep", "--renew-hook", hook)...)
	third := fileSHA(t, crt)
	if len(runs) != 1 || third == second || runs[0].Crt != third {
		t.Errorf("renew with a failing hook: hook runs %+v; certificate %s -> %s", runs, second, third)
	}

	// renew --csr: the certificate has the CSR's key; the hook's LEGO_CERT_KEY_PATH names the
	// key file of the earlier run, which lego leaves alone.
	keyBefore := fileSHA(t, keyPath)
	csrKey := filepath.Join(dir, "next.key")
	csr := filepath.Join(dir, "next.csr")
	if out, code := tlRun(t, 20*time.Second, exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", csrKey, "-out", csr, "-subj", "/CN=mx1.example.test", "-addext", "subjectAltName=DNS:mx1.example.test")); code != 0 {
		t.Fatalf("openssl req: %s", out)
	}
	_, runs = lego("renew --csr", 0, nil, "--csr", csr, "renew", "--days", "9999", "--no-random-sleep", "--renew-hook", hook)
	if len(runs) != 1 || runs[0].Crt != fileSHA(t, crt) {
		t.Fatalf("renew --csr: hook runs %+v", runs)
	}
	checkEnv("renew --csr", runs[0])
	if got, want := tlOpenSSLCertSPKI(t, crt), tlOpenSSLKeySPKI(t, csrKey); got != want {
		t.Errorf("renew --csr: certificate key %s, CSR key %s", got, want)
	}
	if runs[0].Key != keyBefore || fileSHA(t, keyPath) != keyBefore {
		t.Errorf("renew --csr: the key file changed (hook saw %s, before %s)", runs[0].Key, keyBefore)
	}
}

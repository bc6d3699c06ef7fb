package peer

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNeedHelper is the test that TestNeed runs in a child process of the test binary, with
// PEER_TEST_PROGRAM naming the peer to need. Run directly, it does nothing.
func TestNeedHelper(t *testing.T) {
	prog := os.Getenv("PEER_TEST_PROGRAM")
	if prog == "" {
		return
	}
	p := Need(t, prog)
	t.Logf("found %s", p)
}

// TestNeed runs Need in a child process, as a test of its own, and checks that a missing
// peer fails it under CI=true and skips it otherwise, and that a present one passes.
func TestNeed(t *testing.T) {
	const missing = "danelab-no-such-peer"
	for _, tc := range []struct {
		program, ci string
		fail        bool
		want        []string
	}{
		{missing, "true", true, []string{"--- FAIL: TestNeedHelper", `peer "` + missing + `" is not installed`, "CI=true: a missing peer fails the test"}},
		{missing, "1", true, []string{"--- FAIL: TestNeedHelper"}},
		{missing, "", false, []string{"--- SKIP: TestNeedHelper", `peer "` + missing + `" is not installed; CI installs it via .ci/run`}},
		{missing, "false", false, []string{"--- SKIP: TestNeedHelper"}},
		{"sh", "true", false, []string{"--- PASS: TestNeedHelper", "found /"}},
		{"sh", "", false, []string{"--- PASS: TestNeedHelper", "found /"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestNeedHelper$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "PEER_TEST_PROGRAM="+tc.program, "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.fail {
			t.Errorf("Need(%q) with CI=%q: failed %v (%v), want %v; output:\n%s", tc.program, tc.ci, failed, err, tc.fail, out)
		}
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("running the test binary: %v", err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("Need(%q) with CI=%q: output lacks %q:\n%s", tc.program, tc.ci, w, out)
			}
		}
	}
}

// withPath makes Look search only path (for PATH) and then dirs (for the sbin directories).
func withPath(t *testing.T, path string, dirs ...string) {
	t.Setenv("PATH", path)
	old := sbin
	sbin = dirs
	t.Cleanup(func() { sbin = old })
}

func TestLook(t *testing.T) {
	bin, other := t.TempDir(), t.TempDir()
	for name, mode := range map[string]os.FileMode{"exe": 0o755, "plain": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(bin, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	withPath(t, other, bin) // found in an sbin directory, not in PATH
	if p, err := Look("exe"); err != nil || p != filepath.Join(bin, "exe") {
		t.Errorf("Look(exe) = %q, %v; want %s", p, err, filepath.Join(bin, "exe"))
	}
	for _, name := range []string{"plain", "dir", "nope"} {
		if p, err := Look(name); err == nil {
			t.Errorf("Look(%s) = %q, want an error", name, p)
		}
	}
	withPath(t, bin) // found in PATH
	if p, err := Look("exe"); err != nil || p != filepath.Join(bin, "exe") {
		t.Errorf("Look(exe) in PATH = %q, %v", p, err)
	}
}

func TestMissing(t *testing.T) {
	path, dirs := os.Getenv("PATH"), sbin
	withPath(t, t.TempDir())
	for program, want := range map[string]string{
		"delv":   `peer "delv" is not installed (Debian package bind9-dnsutils); CI installs it via .ci/run`,
		"frobnz": `peer "frobnz" is not installed; CI installs it via .ci/run`,
	} {
		if got := Missing(program); got != want {
			t.Errorf("Missing(%s) = %q, want %q", program, got, want)
		}
	}
	withPath(t, path, dirs...)
	if got := Missing("sh"); got != "" {
		t.Errorf("Missing(sh) = %q, want \"\"", got)
	}
}

// TestPackagesInstalledByCI: every package of Packages is one that .ci/run installs, or part
// of the base system. Under CI=true a peer the tests need and CI lacks fails them.
func TestPackagesInstalledByCI(t *testing.T) {
	b, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PACKAGES=\(([^)]*)\)`).FindSubmatch(b)
	if m == nil {
		t.Fatal(".ci/run has no PACKAGES=(...) line")
	}
	installed := map[string]bool{}
	for _, p := range strings.Fields(string(m[1])) {
		installed[p] = true
	}
	for program, pkg := range Packages {
		if !installed[pkg] && !Base[pkg] {
			t.Errorf("peer %s: its package %s is not in .ci/run's PACKAGES", program, pkg)
		}
	}
}

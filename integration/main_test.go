package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	// coreDNSBin is the server under test, built once by TestMain (or DANELAB_COREDNS).
	coreDNSBin string
	// moduleRoot is the directory holding go.mod.
	moduleRoot string

	exitMu    sync.Mutex
	exitFuncs []func()
)

// atExit registers f to run after all tests, in reverse order. It is for fixtures shared
// between tests (see sharedLab); per-test resources use t.Cleanup.
func atExit(f func()) {
	exitMu.Lock()
	defer exitMu.Unlock()
	exitFuncs = append(exitFuncs, f)
}

func runAtExit() {
	exitMu.Lock()
	fs := exitFuncs
	exitFuncs = nil
	exitMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func TestMain(m *testing.M) {
	code := func() int {
		defer runAtExit()
		if err := buildServer(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: %v\n", err)
			return 1
		}
		code := m.Run()
		runAtExit() // stop shared servers now, so that their race reports are in
		if r := raceReports(); len(r) > 0 {
			fmt.Fprintf(os.Stderr, "integration: the server under test reported data races:\n%s\n", strings.Join(r, "\n\n"))
			code = 1
		}
		return code
	}()
	os.Exit(code)
}

// buildServer builds ./cmd/coredns into a temporary directory, unless DANELAB_COREDNS names
// a binary to use.
func buildServer() error {
	if p := os.Getenv("DANELAB_COREDNS"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("DANELAB_COREDNS: %w", err)
		}
		coreDNSBin = abs
		return nil
	}
	root, err := findModuleRoot()
	if err != nil {
		return err
	}
	moduleRoot = root
	dir, err := os.MkdirTemp("", "danelab-it-bin-")
	if err != nil {
		return err
	}
	atExit(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "coredns")
	goTool := goCommand()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if serverRace() {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, goTool, append(args, "./cmd/coredns")...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the server under test (go build ./cmd/coredns in %s) failed: %v\n%s", root, err, out.String())
	}
	fmt.Fprintf(os.Stderr, "integration: built %s (%s) in %v\n", strings.Join(args, " "), bin, time.Since(start).Round(time.Millisecond))
	coreDNSBin = bin
	return nil
}

// serverRace says whether to build the server with -race: when the tests run with -race,
// unless DANELAB_IT_SERVER_RACE=0 (or =1 to force it).
func serverRace() bool {
	switch os.Getenv("DANELAB_IT_SERVER_RACE") {
	case "0":
		return false
	case "1":
		return true
	}
	return raceEnabled
}

var (
	raceMu   sync.Mutex
	raceLogs []string
)

func addRaceReport(s string) {
	raceMu.Lock()
	defer raceMu.Unlock()
	raceLogs = append(raceLogs, s)
}

func raceReports() []string {
	raceMu.Lock()
	defer raceMu.Unlock()
	return slices.Clone(raceLogs)
}

// goCommand is the go tool to build with: the one running the tests if known, else PATH's.
func goCommand() string {
	if gr := os.Getenv("GOROOT"); gr != "" {
		p := filepath.Join(gr, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// findModuleRoot returns the directory of the main module's go.mod: `go env GOMOD` first,
// then the parent of the package directory (tests run in integration/).
func findModuleRoot() (string, error) {
	out, err := exec.Command(goCommand(), "env", "GOMOD").Output()
	if err == nil {
		gomod := strings.TrimSpace(string(out))
		if gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

package integration

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
)

// servedFixture is a running `danelab serve` of every shipped scenario, for a real MTA.
type servedFixture struct {
	URL   string
	Info  fixture.Info
	Start time.Time // when serve was started
}

// startServe runs `danelab serve` with the shipped scenarios on the loopback net (its own per
// test: harness/fixture's TestFixtureNetsDistinct), Unbound on resolverIP:53 and a scenario
// minute of one second, stops it when the test ends, and returns once its scenario clock runs:
// /scenarios answers before that, and a message sent then meets no fault yet (seen:
// dnssec-heals delivered at "+-0.0s"), so it waits for /health too.
func startServe(t *testing.T, bin, dir, loopbackNet, resolverIP string) *servedFixture {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := l.Addr().String()
	l.Close()
	f := &servedFixture{URL: "http://" + api}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	serve := exec.Command(bin, "serve", "-scenarios", filepath.Join(moduleRoot, "harness", "scenarios"), "-dir", filepath.Join(dir, "fixture"),
		"-resolver", "unbound", "-resolver-addr", resolverIP+":53", "-net", loopbackNet, "-listen", api, "-minute", "1s", "-v")
	serve.Stdout, serve.Stderr = logf, logf
	f.Start = time.Now()
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			serve.Process.Kill()
			<-done
		}
		logf.Close()
	})
	fail := func(what string, err error) {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("danelab serve not %s after %v: %v\n%s", what, time.Since(f.Start), err, b)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := getFixture(f.URL+"/scenarios", &f.Info)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || serve.ProcessState != nil {
			fail("up", err)
		}
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(f.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("healthy", err)
		}
	}
	t.Logf("fixture up in %v: %d scenarios, lab DNS %s, Unbound on %s:53", time.Since(f.Start).Round(time.Millisecond), len(f.Info.Scenarios), f.Info.DNS, resolverIP)
	return f
}

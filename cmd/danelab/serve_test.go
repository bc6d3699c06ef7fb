package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/sender"
)

// TestServeExpect runs `danelab serve` (Go resolver) and `danelab expect` as a CI job would:
// nothing sent yet fails with "no outcome"; a DANE delivery by the harness's sender through
// the served resolver then passes; the rollover scenario is listed as not judged.
func TestServeExpect(t *testing.T) {
	dir := t.TempDir()
	port, err := receiver.FreePort([]string{"127.7.0.250", "127.7.1.11", "127.7.2.11"})
	if err != nil {
		t.Fatal(err)
	}
	resAddr := freeUDPTCP(t) // the resolver serves both
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := l.Addr().String()
	l.Close()
	out, errOut := &lockedBuffer{}, &lockedBuffer{}
	oldOut, oldErr := stdout, stderr
	stdout, stderr = out, errOut
	serveStop = make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "-scenarios", shipped, "-run", "^(tlsa-311-match|rollover-ta)$", "-dir", dir,
			"-resolver", "go", "-resolver-addr", resAddr, "-smtp-port", fmt.Sprint(port), "-net", "127.7", "-listen", api})
	}()
	t.Cleanup(func() {
		close(serveStop)
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d\n%s", code, errOut)
		}
		stdout, stderr = oldOut, oldErr
	})
	url := "http://" + api
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy: %v\n%s\n%s", err, out, errOut)
		}
	}
	guide := out.String()
	for _, want := range []string{"bob@tlsa-311-match.example.test", "validating resolver (go)", resAddr, "rollover-ta", "changes over time",
		filepath.Join(dir, "resolv.conf")} {
		if !strings.Contains(guide, want) {
			t.Errorf("guide lacks %q:\n%s", want, guide)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "resolv.conf")); err != nil || !strings.Contains(string(b), "nameserver 127.0.0.1") {
		t.Errorf("resolv.conf: %q %v", b, err)
	}
	// danelab check on a served domain predicts a DANE delivery (the fixture's anchor, root
	// and SMTP port come from -fixture).
	{
		var co, ce lockedBuffer
		stdout, stderr = &co, &ce
		code := run([]string{"check", "-fixture", url, "-json", "tlsa-311-match.example.test"})
		stdout, stderr = out, errOut
		var rep struct {
			Predictions []struct{ Sender, Action, Security string } `json:"predictions"`
		}
		if err := json.Unmarshal([]byte(co.String()), &rep); err != nil || code == 2 || len(rep.Predictions) != 2 {
			t.Errorf("check -fixture: exit %d, %v\n%s%s", code, err, co.String(), ce.String())
		}
		for _, p := range rep.Predictions {
			if p.Action != "deliver" || p.Security != "dane" {
				t.Errorf("check -fixture: %s predicted %s %s, want deliver over DANE\n%s", p.Sender, p.Action, p.Security, co.String())
			}
		}
	}
	expect := func(args ...string) (int, string) {
		var eo, ee lockedBuffer
		stdout, stderr = &eo, &ee
		defer func() { stdout, stderr = out, errOut }()
		code := run(append([]string{"expect", "-fixture", url, "-profile", "exchange"}, args...))
		return code, eo.String() + ee.String()
	}
	code, text := expect()
	if code != 1 || !regexp.MustCompile(`no outcome: no delivery, no DSN \d+s after the fixture started \(expect waited 0s\): nothing yet`).MatchString(text) || !strings.Contains(text, "not judged: rollover-ta") {
		t.Errorf("nothing sent: exit %d\n%s", code, text)
	}
	// The harness's sender, resolving through the served resolver (trusting its AD bit).
	snd := sender.New(sender.Config{Resolver: resolver.NewUpstream(resAddr, 5*time.Second), Port: port, Timeout: 5 * time.Second})
	o := snd.Attempt(context.Background(), &queue.Message{From: "alice@sender.test", To: []string{"bob@tlsa-311-match.example.test"},
		Domain: "tlsa-311-match.example.test", Data: []byte("Subject: hi\r\n\r\nhi\r\n")})
	if !o.Delivered || o.TLS != queue.TLSDane {
		t.Fatalf("delivery through the fixture: %+v", o)
	}
	code, text = expect("-run", "tlsa-311-match", "-json", filepath.Join(dir, "e.json"))
	if code != 0 || !strings.Contains(text, "pass ✓") || !strings.Contains(text, "certificate authenticates") {
		t.Errorf("after a DANE delivery: exit %d\n%s", code, text)
	}
	if _, err := os.Stat(filepath.Join(dir, "e.json")); err != nil {
		t.Error(err)
	}
}

// freeUDPTCP returns a loopback address whose port is free for both UDP and TCP now (a port
// free for UDP only was seen taken for TCP by a parallel test).
func freeUDPTCP(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	return ""
}

package danezone_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns/caddy"

	_ "github.com/danelab/danelab/server" // our CoreDNS build, with danezone in its directives
)

// A CoreDNS reload (a new instance started before the old one stops) keeps the control API.
func TestReloadKeepsControlAPI(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.test.zone"), []byte("$ORIGIN a.test.\n$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n"), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctl := ln.Addr().String()
	ln.Close()
	corefile := ".:0 {\n bind 127.0.0.1\n danezone " + dir + " {\n  keys " + filepath.Join(dir, "keys") + "\n  control " + ctl + "\n }\n}\n"
	input := caddy.CaddyfileInput{Contents: []byte(corefile), ServerTypeName: "dns"}
	inst, err := caddy.Start(input)
	if err != nil {
		t.Fatal(err)
	}
	inst2, err := inst.Restart(input)
	if err != nil {
		t.Fatalf("reload with a control API: %v", err)
	}
	defer inst2.Stop()
	var resp *http.Response
	for range 20 {
		if resp, err = http.Get("http://" + ctl + "/health"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("control API after reload: %v", err)
	}
	resp.Body.Close()
}

package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "not a domain!"},
		{"check", "-resolver", "127.0.0.1:53", "-fixture", "http://127.0.0.1:1", "example.test"},
		{"check", "-timeout", "0s", "example.test"},
		{"check", "-expect-mx", "not a host", "example.test"},
	} {
		_, errOut := capture(t)
		if code := run(args); code != 2 || !strings.Contains(errOut.String(), "usage: danelab check") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// A resolver that answers nothing: the report says so, in JSON and HTML too, and the exit
// status is 2 (failures).
func TestCheckDeadResolver(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	html := filepath.Join(t.TempDir(), "report.html")
	out, _ := capture(t)
	code := run([]string{"check", "-json", "-html", html, "-timeout", "300ms", "-resolver", pc.LocalAddr().String(), "example.test"})
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	var rep struct {
		Domain string `json:"domain"`
		Items  []struct {
			Verdict, Detail string
		} `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Domain != "example.test" {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	// The step's timeout or the resolver client's, whichever comes first.
	if !strings.Contains(out.String(), "no answer within 300ms") && !strings.Contains(out.String(), "i/o timeout") {
		t.Errorf("the report does not say the resolver did not answer:\n%s", out)
	}
	b, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(b), "example.test") || !strings.Contains(string(b), "Failures") {
		t.Errorf("HTML report: %v", err)
	}
}

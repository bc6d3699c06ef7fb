package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

// TestStatus asks a fake control API: the records and warnings of each host are printed, a
// warning makes the command fail, the token is sent, and no tracked host is not an error.
func TestStatus(t *testing.T) {
	var hosts []tlsa.Status
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tlsa" {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(hosts)
	}))
	defer srv.Close()

	out, _ := capture(t)
	if err := commands["status"].run([]string{"-api", srv.URL}); err != nil {
		t.Fatalf("no hosts: %v", err)
	}
	if !strings.Contains(out.String(), "no TLSA records follow certificates") {
		t.Errorf("no hosts: printed %q", out)
	}

	hosts = []tlsa.Status{{Host: "mx1.example.test.", Source: "file /etc/mx1.pem", Subject: "CN=mx1.example.test",
		NotAfter: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Owners: []string{"_25._tcp.mx1.example.test."},
		Current: []string{"3 1 1 aa"}, Next: []string{"3 1 1 bb"}, Warnings: []string{"expires in 5 days"}}}
	out, _ = capture(t)
	err := commands["status"].run([]string{"-api", srv.URL + "/", "-token", "s3cret"})
	if err == nil || err.Error() != "1 warning(s)" {
		t.Errorf("err = %v, want 1 warning(s)", err)
	}
	if auth != "Bearer s3cret" {
		t.Errorf("Authorization %q", auth)
	}
	for _, want := range []string{"mx1.example.test  (file /etc/mx1.pem)\n", "certificate  CN=mx1.example.test, valid until 2030-01-02T03:04:05Z",
		"current      3 1 1 aa", "next         3 1 1 bb", "WARNING      expires in 5 days"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	capture(t)
	if err := commands["status"].run([]string{"-api", srv.URL + "/nope"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong API path: err = %v, want a 404", err)
	}
}

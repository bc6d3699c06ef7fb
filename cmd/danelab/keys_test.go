package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/roll"
)

// TestKeysCommand: danelab keys prints the zones of GET /keys, and -roll posts the roll first.
func TestKeysCommand(t *testing.T) {
	at := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	var rolled string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "missing or wrong token", http.StatusUnauthorized)
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "POST /keys/roll":
			b, _ := io.ReadAll(r.Body)
			rolled = string(b)
			if !strings.Contains(rolled, `"role":"zsk"`) {
				http.Error(w, "role zsk does not fit the policy (rollover csk)", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		case "GET /keys":
			json.NewEncoder(w).Encode([]roll.ZoneKeys{{Zone: "example.test.", Policy: "split", Next: at.Add(time.Hour),
				Waiting: "KSK roll: waiting for the parent to serve the DS of key 2 instead of key 1's",
				Keys: []roll.KeyInfo{
					{Tag: 1, Role: "ksk", Algorithm: "ECDSAP256SHA256", Published: true, Active: true,
						Timing: keys.Timing{Publish: at, Activate: at, SyncPublish: at, SyncDelete: at.Add(time.Minute)}},
					{Tag: 2, Role: "ksk", Algorithm: "ECDSAP256SHA256", Published: true, Active: true, Synced: true,
						Timing: keys.Timing{Publish: at, SyncPublish: at.Add(time.Minute)}},
					{Tag: 3, Role: "zsk", Algorithm: "ECDSAP256SHA256", Timing: keys.Timing{Delete: at}}}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var out strings.Builder
	old := stdout
	stdout = &out
	defer func() { stdout = old }()
	if err := commands["keys"].run([]string{"-api", srv.URL, "-token", "s3cret", "-roll", "example.test.", "zsk"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ZSK roll of example.test. asked for", "example.test.  (policy split, next event 2026-12-02T16:00:00Z",
		"waiting: KSK roll: waiting for the parent", "KSK 1     ECDSAP256SHA256  published, signing\n", "KSK 2     ECDSAP256SHA256  published, signing, CDS",
		"sync delete  2026-12-02T15:01:00Z", "ZSK 3     ECDSAP256SHA256  not in the zone", "delete       2026-12-02T15:00:00Z"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(rolled, `"zone":"example.test."`) {
		t.Errorf("posted %s", rolled)
	}
	err := commands["keys"].run([]string{"-api", srv.URL, "-token", "s3cret", "-roll", "example.test.", "csk"})
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: role zsk does not fit") {
		t.Errorf("refused roll: %v", err)
	}
	if err := commands["keys"].run([]string{"-api", srv.URL, "-roll", "example.test."}); err == nil || !strings.Contains(err.Error(), "needs the role") {
		t.Errorf("-roll without role: %v", err)
	}
}

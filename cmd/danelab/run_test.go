package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const shipped = "../../harness/scenarios"

// TestRunShipped runs every shipped scenario: all must pass, with JSON and JUnit written.
func TestRunShipped(t *testing.T) {
	out, errOut := capture(t)
	dir := t.TempDir()
	jf, xf := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml")
	if code := run([]string{"run", "-scenarios", shipped, "-json", jf, "-junit", xf}); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("\n%s", out)
	// One run per scenario file and per extra profile in it, counted from the files.
	files, _ := filepath.Glob(filepath.Join(shipped, "*.json"))
	runs := 0
	var rows []string
	for _, f := range files {
		var s struct {
			Name     string
			Profile  string
			Profiles map[string]json.RawMessage
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.Profile == "" {
			s.Profile = "exchange"
		}
		rows = append(rows, s.Name+" "+s.Profile)
		for p := range s.Profiles {
			rows = append(rows, s.Name+" "+p)
		}
		runs += 1 + len(s.Profiles)
	}
	var doc struct {
		Summary struct{ Total, Passed int }
		Results []struct{ Name, Verdict string }
	}
	b, err := os.ReadFile(jf)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary.Total != runs || doc.Summary.Passed != runs {
		t.Errorf("JSON summary %+v, want %d passed", doc.Summary, runs)
	}
	matrix := strings.Join(strings.Fields(out.String()), " ")
	for _, r := range rows {
		if !strings.Contains(matrix, r+" ") {
			t.Errorf("matrix lacks the row %q", r)
		}
	}
	x, err := os.ReadFile(xf)
	if err != nil {
		t.Fatal(err)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
	}
	if err := xml.Unmarshal(x, &suites); err != nil || suites.Tests != runs || suites.Failures != 0 {
		t.Errorf("JUnit %+v (%v):\n%s", suites, err, x)
	}
	if !strings.Contains(errOut.String(), "["+itoa(runs)+"/"+itoa(runs)+"]") {
		t.Errorf("no progress lines on stderr:\n%s", errOut)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestRunMismatch: a scenario whose expectation is wrong makes run exit 1, and the matrix
// says what differs.
func TestRunMismatch(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "wrong.json", `{
  "name": "wrong-expectation",
  "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1 wrong"]}]},
  "expect": [{"at": 0, "status": "delivered", "tls": "dane"}],
  "final": {"state": "delivered"}
}`)
	write(t, dir, "right.json", `{
  "name": "right-expectation",
  "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"]}]},
  "expect": [{"status": "delivered", "tls": "dane"}],
  "final": {"state": "delivered"}
}`)
	out, errOut := capture(t)
	jf := filepath.Join(t.TempDir(), "out.json")
	code := run([]string{"run", "-scenarios", dir, "-json", jf})
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	m := out.String()
	for _, want := range []string{
		"wrong-expectation", "FAIL ✗",
		"attempt 1 (+0): status 4.7.323, want delivered",
		"final: ndr 5.7.323 at +24h, want delivered",
		"right-expectation", "pass ✓",
		"2 scenarios: 1 passed, 1 failed, 0 errors",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("matrix lacks %q:\n%s", want, m)
		}
	}
	if !strings.Contains(errOut.String(), "some scenarios did not go as expected") {
		t.Errorf("stderr: %s", errOut)
	}
	if _, err := os.Stat(jf); err != nil {
		t.Errorf("JSON not written on failure: %v", err)
	}
	// -run selects; the passing one alone exits 0.
	out.Reset()
	if code := run([]string{"run", "-scenarios", dir, "-run", "^right"}); code != 0 || strings.Contains(out.String(), "wrong-expectation") {
		t.Errorf("-run ^right: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.json", `{"name": "bad", "dns": {"mx": [{"host": "mx1"}]},
  "expect": [{"status": "4.7.999"}], "final": {"state": "delivered"}}`)
	_, errOut := capture(t)
	if code := run([]string{"run", "-scenarios", dir}); code != 1 {
		t.Errorf("bad scenario: exit %d, want 1", code)
	}
	if want := filepath.Join(dir, "bad.json") + `: expect[0].status: "4.7.999" is not a known code of the exchange profile`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	errOut.Reset()
	if code := run([]string{"run", "-scenarios", shipped, "-run", "("}); code != 2 {
		t.Errorf("bad pattern: exit %d, want 2", code)
	}
	if code := run([]string{"run", "-scenarios", shipped, "-profile", "nosuch"}); code != 1 {
		t.Errorf("no match: exit %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "no scenario in") {
		t.Errorf("stderr: %s", errOut)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

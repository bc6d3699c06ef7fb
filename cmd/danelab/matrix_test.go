package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two hand-made expect results: Postfix with one deviation, Exim without the scenario it was
// not sent and one result from before expect recorded the MTA.
const (
	matrixPostfix = `{"profile": "postfix", "mta": "Postfix 3.7.11", "date": "2026-12-02T13:00:00Z",
 "summary": {"total": 3, "passed": 2, "failed": 1, "errors": 0},
 "results": [
  {"name": "tlsa-311-match", "profile": "postfix", "verdict": "pass", "expected": "delivered/dane",
   "observed": "delivered via mx1.tlsa-311-match.test at +2.1s (TLS 1.3, certificate authenticates)"},
  {"name": "mx-mixed-fallback", "profile": "postfix", "verdict": "pass", "expected": "delivered/dane via mx2",
   "observed": "delivered via mx2.mx-mixed-fallback.test at +3.0s (TLS 1.3, certificate authenticates)"},
  {"name": "tlsa-mismatch", "profile": "postfix", "verdict": "fail", "expected": "no delivery, DSN 4.7.5",
   "observed": "DSN 5.7.5 (failed) at +130s", "diffs": ["DSN Status: 5.7.5, want 4.7.5 (x)"]}
 ]}`
	matrixExim = `{"summary": {"total": 2, "passed": 2, "failed": 0, "errors": 0},
 "results": [
  {"name": "tlsa-mismatch", "profile": "exim", "verdict": "pass", "expected": "no delivery, DSN 5.0.0",
   "observed": "DSN 5.0.0 (failed) at +125s"},
  {"name": "tlsa-311-match", "profile": "exim", "verdict": "pass", "expected": "delivered/dane",
   "observed": "delivered via mx1.tlsa-311-match.test at +1.0s (plaintext)"}
 ]}`
)

func TestMatrix(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{"postfix.json": matrixPostfix, "exim.json": matrixExim, "notes.txt": "not a result"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "m.md")
	_, errOut := capture(t)
	if code := run([]string{"expect", "-matrix", dir, "-o", out}); code != 0 {
		t.Fatalf("expect -matrix: exit %d; stderr:\n%s", code, errOut)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, tc := range []struct{ what, want string }{
		// exim.json sorts first; the document without an MTA is named by its profile.
		{"header", "Tested: exim (profile `exim`): 2 of 2 scenarios as expected; Postfix 3.7.11 (profile `postfix`, 2026-12-02): 2 of 3 scenarios as expected.\n"},
		{"columns", "| scenario | exim | Postfix 3.7.11 |\n|---|---|---|\n"},
		{"fallback row, not sent", "| `mx-mixed-fallback` | — | delivered dane via mx2 |\n"},
		{"dane and plaintext", "| `tlsa-311-match` | delivered plaintext | delivered dane |\n"},
		{"bounce, deviation", "| `tlsa-mismatch` | 5.0.0 → bounce | 5.7.5 → bounce ✗ |\n"},
		{"deviation", "\n## Deviations\n\n- `tlsa-mismatch`, Postfix 3.7.11: expected no delivery, DSN 4.7.5, observed DSN 5.7.5 (failed) at +130s: DSN Status: 5.7.5, want 4.7.5 (x)\n"},
	} {
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: the matrix lacks %q:\n%s", tc.what, tc.want, got)
		}
	}
	if !strings.HasPrefix(got, matrixMarker) {
		t.Errorf("the matrix does not begin with the marker:\n%s", got)
	}
	// Regenerating keeps what stands above the marker, and only that.
	if err := os.WriteFile(out, []byte("# intro\n\n"+matrixMarker+"old table\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"expect", "-matrix", dir, "-o", out}); code != 0 {
		t.Fatalf("expect -matrix again: exit %d; stderr:\n%s", code, errOut)
	}
	if b, _ := os.ReadFile(out); string(b) != "# intro\n\n"+got {
		t.Errorf("regenerated:\n%s\nwant the intro and then:\n%s", b, got)
	}
	// Rows come sorted, one per scenario.
	if i, j, k := strings.Index(got, "`mx-mixed-fallback` |"), strings.Index(got, "`tlsa-311-match` |"), strings.Index(got, "`tlsa-mismatch` |"); !(i >= 0 && i < j && j < k) {
		t.Errorf("rows not sorted:\n%s", got)
	}
	if n := strings.Count(got, "\n- "); n != 1 {
		t.Errorf("%d deviations listed, want 1:\n%s", n, got)
	}
}

func TestMatrixErrors(t *testing.T) {
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "x.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	if err := os.WriteFile(filepath.Join(good, "exim.json"), []byte(matrixExim), 0o644); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(good, "README.md") // someone's file, no marker
	if err := os.WriteFile(mine, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		code    int
		wantErr string
	}{
		{[]string{"expect", "-matrix", t.TempDir()}, 1, "no *.json"},
		{[]string{"expect", "-matrix", bad}, 1, "x.json"},
		{[]string{"expect", "-profile", "postfix", "-o", "f.md"}, 2, "-o goes with -matrix"},
		{[]string{"expect", "-matrix", good, "-o", mine}, 1, "not overwritten"},
	} {
		_, errOut := capture(t)
		if code := run(tc.args); code != tc.code || !strings.Contains(errOut.String(), tc.wantErr) {
			t.Errorf("run(%q) = %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.wantErr)
		}
	}
	if b, _ := os.ReadFile(mine); string(b) != "mine\n" {
		t.Errorf("-o overwrote a file without the marker: %q", b)
	}
}

package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/scenario"
)

func results() []scenario.Result {
	return []scenario.Result{
		{Name: "tlsa-311-match", Profile: "exchange", Verdict: scenario.Pass, Expected: "delivered/dane@0 ⇒ delivered",
			Observed: "delivered/dane@0 ⇒ delivered@0", Wall: 60 * time.Millisecond},
		{Name: "tlsa-mismatch", Profile: "exchange", Verdict: scenario.Fail, Expected: "4.7.324@0 … ⇒ NDR 5.7.324",
			Observed: "4.7.323@0..23h45m ×27 ⇒ NDR 5.7.323@24h", Diffs: []string{"attempt 1 (+0): status 4.7.323, want 4.7.324"},
			Wall: 300 * time.Millisecond},
		{Name: "broken", Profile: "postfix", Verdict: scenario.Error, Err: "lab: no port <&>", Observed: "error: lab: no port"},
	}
}

func TestMatrix(t *testing.T) {
	var b bytes.Buffer
	if err := Matrix(&b, results()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"SCENARIO", "VERDICT", "tlsa-311-match", "pass ✓", "FAIL ✗",
		"    ✗ attempt 1 (+0): status 4.7.323, want 4.7.324", "    ! lab: no port <&>",
		"3 scenarios: 1 passed, 1 failed, 1 errors"} {
		if !strings.Contains(out, want) {
			t.Errorf("matrix lacks %q:\n%s", want, out)
		}
	}
	// Columns line up: OBSERVED starts at the same rune column in the header and each row.
	lines := strings.Split(out, "\n")
	runeIndex := func(s, sub string) int { return len([]rune(s[:strings.Index(s, sub)])) }
	col := runeIndex(lines[0], "OBSERVED")
	for _, r := range results()[:2] {
		for _, l := range lines {
			if strings.HasPrefix(l, r.Name+" ") {
				if got := runeIndex(l, r.Observed); got != col {
					t.Errorf("row %s: observed at column %d, header at %d", r.Name, got, col)
				}
			}
		}
	}
}

func TestJSON(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, results()); err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Summary != (Summary{Total: 3, Passed: 1, Failed: 1, Errors: 1}) || len(doc.Results) != 3 || doc.Results[1].Diffs[0] == "" {
		t.Errorf("doc %+v", doc)
	}
}

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := JUnit(&b, results()); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Tests != 3 || doc.Failures != 1 || doc.Errors != 1 || len(doc.Suites) != 2 {
		t.Fatalf("doc %+v", doc)
	}
	c := doc.Suites[0].Cases[1]
	if c.Failure == nil || !strings.Contains(c.Failure.Text, "want 4.7.324") || c.Classname != "danelab.exchange" {
		t.Errorf("failing case %+v", c)
	}
	if e := doc.Suites[1].Cases[0].Error; e == nil || e.Message != "lab: no port <&>" {
		t.Errorf("error case %+v", doc.Suites[1].Cases[0])
	}
}

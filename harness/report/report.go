// Package report turns scenario results into what people and CI read: a terminal matrix
// (scenario · profile · expected · observed · verdict, with the differences under each
// failing row), a JSON document and JUnit XML.
package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danelab/danelab/harness/scenario"
)

// Summary counts results by verdict.
type Summary struct {
	Total  int `json:"total"`
	Passed int `json:"passed"`
	Failed int `json:"failed"`
	Errors int `json:"errors"`
}

// OK reports whether every scenario passed.
func (s Summary) OK() bool { return s.Failed == 0 && s.Errors == 0 }

// Summarize counts results.
func Summarize(rs []scenario.Result) Summary {
	s := Summary{Total: len(rs)}
	for _, r := range rs {
		switch r.Verdict {
		case scenario.Pass:
			s.Passed++
		case scenario.Fail:
			s.Failed++
		default:
			s.Errors++
		}
	}
	return s
}

// Matrix writes the results as a table; failing rows are followed by their differences.
func Matrix(w io.Writer, rs []scenario.Result) error {
	head := []string{"SCENARIO", "PROFILE", "EXPECTED", "OBSERVED", "VERDICT"}
	rows := [][]string{head}
	for _, r := range rs {
		v := strings.ToUpper(r.Verdict)
		if r.Verdict == scenario.Fail {
			v = "FAIL ✗"
		} else if r.Verdict == scenario.Pass {
			v = "pass ✓"
		}
		rows = append(rows, []string{r.Name, r.Profile, r.Expected, r.Observed, v})
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteString("\n")
	}
	line(rows[0])
	for i, r := range rs {
		line(rows[i+1])
		for _, d := range r.Diffs {
			b.WriteString("    ✗ " + d + "\n")
		}
		if r.Err != "" {
			b.WriteString("    ! " + r.Err + "\n")
		}
	}
	s := Summarize(rs)
	fmt.Fprintf(&b, "\n%d scenarios: %d passed, %d failed, %d errors\n", s.Total, s.Passed, s.Failed, s.Errors)
	_, err := io.WriteString(w, b.String())
	return err
}

// Document is the JSON report.
type Document struct {
	// Profile, MTA and Date say whom a result file judged and when, so that files saved
	// from several MTAs can be laid side by side (`danelab expect -matrix`); `danelab
	// expect` fills them in, `danelab run` (many profiles, no external MTA) leaves them out.
	Profile string            `json:"profile,omitempty"`
	MTA     string            `json:"mta,omitempty"`  // name and version, e.g. "Postfix 3.7.11"
	Date    string            `json:"date,omitempty"` // RFC 3339, when the results were judged
	Summary Summary           `json:"summary"`
	Results []scenario.Result `json:"results"`
}

// JSON writes the results as an indented JSON document.
func JSON(w io.Writer, rs []scenario.Result) error {
	return WriteDocument(w, Document{Results: rs})
}

// WriteDocument writes d as an indented JSON document, its summary counted from its results.
func WriteDocument(w io.Writer, d Document) error {
	if d.Results == nil {
		d.Results = []scenario.Result{}
	}
	d.Summary = Summarize(d.Results)
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(d)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// JUnit writes the results as JUnit XML: one test suite per profile, one test case per
// scenario; a mismatch is a failure whose text lists expected, observed and the differences.
func JUnit(w io.Writer, rs []scenario.Result) error {
	doc := junitSuites{}
	index := map[string]int{}
	var total time.Duration
	for _, r := range rs {
		i, ok := index[r.Profile]
		if !ok {
			i = len(doc.Suites)
			index[r.Profile] = i
			doc.Suites = append(doc.Suites, junitSuite{Name: "danelab." + r.Profile})
		}
		s := &doc.Suites[i]
		c := junitCase{Name: r.Name, Classname: "danelab." + r.Profile, File: r.File, Time: secs(r.Wall),
			SystemOut: "expected: " + r.Expected + "\nobserved: " + r.Observed + "\n"}
		switch r.Verdict {
		case scenario.Pass:
		case scenario.Fail:
			c.Failure = &junitProblem{Message: fmt.Sprintf("%d difference(s): %s", len(r.Diffs), first(r.Diffs)), Type: "mismatch",
				Text: "expected: " + r.Expected + "\nobserved: " + r.Observed + "\n" + strings.Join(r.Diffs, "\n") + "\n"}
			s.Failures++
			doc.Failures++
		default:
			c.Error = &junitProblem{Message: r.Err, Type: "error", Text: r.Err}
			s.Errors++
			doc.Errors++
		}
		s.Tests++
		doc.Tests++
		s.Cases = append(s.Cases, c)
		total += r.Wall
	}
	for i := range doc.Suites {
		var d time.Duration
		for _, r := range rs {
			if "danelab."+r.Profile == doc.Suites[i].Name {
				d += r.Wall
			}
		}
		doc.Suites[i].Time = secs(d)
	}
	doc.Time = secs(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	e := xml.NewEncoder(w)
	e.Indent("", "  ")
	if err := e.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

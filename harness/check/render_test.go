package check

import (
	"bytes"
	"encoding/json"
	"html"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Digests and a certificate of the sample report.
var (
	renderDS   = strings.Repeat("0123456789abcdef", 4)
	renderSPKI = "ab12cd34" + strings.Repeat("9f", 28)
	renderCert = "3082" + strings.Repeat("0a1b2c3d", 40) + "beef"
)

// renderSample is a report with every verdict, groups whose items are interleaved, a
// deferral, a DANE delivery and evidence too wide for a terminal.
func renderSample() *Report {
	return &Report{
		Domain:     "example.test",
		Started:    time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Took:       2345678 * time.Microsecond,
		Resolution: "iterative from the root trust anchor",
		Items: []Item{
			{Group: "dnssec", Name: "DS of example.test", Verdict: Pass, Detail: "secure",
				Evidence: []string{"example.test. 3600 IN DS 12345 13 2 " + renderDS}},
			{Group: "mx", Name: "MX", Verdict: Pass, Detail: "secure, 1 host",
				Evidence: []string{"example.test. 300 IN MX 10 mx1.example.test."}},
			{Group: "dnssec", Name: "signature lifetime", Verdict: Warn, Detail: "the MX RRSIG expires in 2 days",
				Fix: "re-sign example.test before 2025-03-03"},
			{Group: "host mx1.example.test", Name: "TLSA at _25._tcp.mx1.example.test", Verdict: Fail,
				Detail: "bogus: RRSIG expired", Code: "EX002",
				Evidence: []string{"_25._tcp.mx1.example.test. 300 IN TLSA 3 0 0 " + renderCert, "RRSIG TLSA 13 5 300 20250228000000 20250214000000"},
				Fix:      "re-sign the zone so that the TLSA RRset validates"},
			{Group: "host mx1.example.test", Name: "certificate", Verdict: Info, Detail: "CN=mx1.example.test",
				Fix: "a fix on an info item is not shown"},
		},
		Predictions: []Prediction{
			{Sender: "exchange", Action: "defer", Code: "4.7.324", Host: "mx1.example.test",
				Reason: "TLSA lookup at _25._tcp.mx1.example.test bogus: RRSIG expired"},
			{Sender: "postfix", Action: "deliver", Security: "dane", Host: "mx1.example.test",
				Matched: "3 1 1 " + renderSPKI, Reason: "DANE-authenticated TLS (TLS 1.3 TLS_AES_128_GCM_SHA256)"},
		},
	}
}

// renderSampleText is renderSample as Text writes it without colour.
var renderSampleText = `danelab check: example.test
  when      2025-03-01 12:00:00 UTC
  resolved  iterative from the root trust anchor
  took      2.35s

Verdict: Failures
  Exchange Online: defer 4.7.324 — TLSA lookup at _25._tcp.mx1.example.test bogus: RRSIG expired
  Postfix (dane): deliver over DANE to mx1.example.test (matched 3 1 1 ab12cd34…)

dnssec
  PASS  DS of example.test: secure
        example.test. 3600 IN DS 12345 13 2 0123456789abcdef0123456789ab…56789abcdef0123456789abcdef
  WARN  signature lifetime: the MX RRSIG expires in 2 days
        fix: re-sign example.test before 2025-03-03

mx
  PASS  MX: secure, 1 host
        example.test. 300 IN MX 10 mx1.example.test.

host mx1.example.test
  FAIL  TLSA at _25._tcp.mx1.example.test [EX002]: bogus: RRSIG expired
        _25._tcp.mx1.example.test. 300 IN TLSA 3 0 0 30820a1b2c3d0a1b2c3d0a1…c3d0a1b2c3d0a1b2c3dbeef
        RRSIG TLSA 13 5 300 20250228000000 20250214000000
        fix: re-sign the zone so that the TLSA RRset validates
  INFO  certificate: CN=mx1.example.test

Summary: 2 pass, 1 warn, 1 fail, 1 info — exit status 2: failures
`

func TestRenderText(t *testing.T) {
	var b bytes.Buffer
	if err := renderSample().Text(&b, false); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != renderSampleText {
		t.Errorf("Text:\n%s\nwant:\n%s", got, renderSampleText)
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Error("Text without colour has an escape code")
	}
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func TestRenderTextColor(t *testing.T) {
	var b bytes.Buffer
	if err := renderSample().Text(&b, true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"\x1b[32mPASS\x1b[0m", "\x1b[33mWARN\x1b[0m", "\x1b[31mFAIL\x1b[0m", "\x1b[90mINFO\x1b[0m",
		"\x1b[31mFailures\x1b[0m", "\x1b[33mdefer\x1b[0m 4.7.324", "\x1b[32mdeliver\x1b[0m over DANE"} {
		if !strings.Contains(out, want) {
			t.Errorf("coloured Text lacks %q:\n%s", want, out)
		}
	}
	// The colours are all it adds.
	if plain := ansiEscape.ReplaceAllString(out, ""); plain != renderSampleText {
		t.Errorf("coloured Text without its escapes:\n%s\nwant:\n%s", plain, renderSampleText)
	}
}

// TestRenderTextVerdicts: the verdict line and the summary follow Report.Worst, and an
// empty report still reads as one.
func TestRenderTextVerdicts(t *testing.T) {
	for _, tc := range []struct {
		items []Item
		want  []string
	}{
		{nil, []string{"Verdict: All checks pass\n  (no prediction)\n", "Summary: 0 pass, 0 warn, 0 fail, 0 info — exit status 0: every check passes"}},
		{[]Item{{Group: "mx", Name: "MX", Verdict: Info}}, []string{"Verdict: All checks pass", "0 pass, 0 warn, 0 fail, 1 info — exit status 0"}},
		{[]Item{{Group: "mx", Name: "MX", Verdict: Pass}, {Group: "mx", Name: "MX", Verdict: Warn, Fix: "f"}},
			[]string{"Verdict: Warnings", "  WARN  MX\n        fix: f\n", "1 pass, 1 warn, 0 fail, 0 info — exit status 1: warnings, no failures"}},
	} {
		var b bytes.Buffer
		if err := (&Report{Domain: "example.test", Items: tc.items}).Text(&b, false); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("Text of %v lacks %q:\n%s", tc.items, w, b.String())
			}
		}
		if !strings.Contains(b.String(), "when      unknown\n  resolved  unknown\n  took      unknown\n") {
			t.Errorf("Text of a report without times:\n%s", b.String())
		}
	}
}

func TestRenderTextPredictions(t *testing.T) {
	for _, tc := range []struct {
		p    Prediction
		want string
	}{
		{Prediction{Sender: "postfix", Action: "deliver", Security: "dane", Matched: "3 1 1 " + renderSPKI, Reason: "DANE-authenticated TLS"},
			"Postfix (dane): deliver over DANE (matched 3 1 1 ab12cd34…)"},
		{Prediction{Sender: "exchange", Action: "deliver", Security: "may", Host: "mx2.example.test", Reason: "opportunistic TLS: no secure, usable TLSA"},
			"Exchange Online: deliver over opportunistic TLS to mx2.example.test — opportunistic TLS: no secure, usable TLSA"},
		{Prediction{Sender: "postfix", Action: "deliver", Security: "none", Reason: "plaintext"},
			"Postfix (dane): deliver in plaintext — plaintext"},
		{Prediction{Sender: "exchange", Action: "defer", Code: "4.7.321", Host: "mx1.example.test", Reason: "STARTTLS not offered"},
			"Exchange Online: defer 4.7.321 at mx1.example.test — STARTTLS not offered"},
		{Prediction{Sender: "rfc", Action: "bounce", Code: "5.1.2", Reason: "550 5.1.2 domain example.test does not exist"},
			"rfc: bounce 5.1.2 — 550 5.1.2 domain example.test does not exist"},
	} {
		var b bytes.Buffer
		if err := (&Report{Predictions: []Prediction{tc.p}}).Text(&b, false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "\n  "+tc.want+"\n") {
			t.Errorf("Text of %+v lacks the line %q:\n%s", tc.p, tc.want, b.String())
		}
	}
}

// TestRenderTextHex: hex is shortened in the middle, and only as far as the line needs to fit
// in 100 columns; JSON keeps every digit.
func TestRenderTextHex(t *testing.T) {
	fits := "example.test. 3600 IN DS 12345 13 2 " + renderDS[:56] // 100 columns with the indent
	wide := "_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 " + renderSPKI
	r := &Report{Items: []Item{{Group: "g", Name: "n", Verdict: Pass, Evidence: []string{fits, wide, renderCert + " " + renderCert}}}}
	var b bytes.Buffer
	if err := r.Text(&b, false); err != nil {
		t.Fatal(err)
	}
	var ev []string
	for l := range strings.SplitSeq(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "        "); ok {
			ev = append(ev, rest)
		}
	}
	if len(ev) != 3 {
		t.Fatalf("evidence lines %q, want 3", ev)
	}
	if ev[0] != fits {
		t.Errorf("a line of 100 columns was changed: %q", ev[0])
	}
	if n := utf8.RuneCountInString("        " + ev[1]); n != 100 || !strings.Contains(ev[1], "…") ||
		!strings.HasPrefix(ev[1], "_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 ab12cd349f") || !strings.HasSuffix(ev[1], "9f9f9f") {
		t.Errorf("wide line shortened to %d columns: %q", n, ev[1])
	}
	if n := utf8.RuneCountInString("        " + ev[2]); n > 100 || strings.Count(ev[2], "…") != 2 {
		t.Errorf("two certificates shortened to %d columns: %q", n, ev[2])
	}
	var j bytes.Buffer
	if err := r.JSON(&j); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(j.String(), renderCert+" "+renderCert) || strings.Contains(j.String(), "…") {
		t.Error("JSON shortened the hex")
	}
}

// TestRenderTextControl: a server's reply cannot drive the terminal.
func TestRenderTextControl(t *testing.T) {
	r := &Report{Domain: "example.test", Items: []Item{{Group: "host", Name: "banner", Verdict: Warn,
		Detail: "220 hi\x1b[2J\x07", Evidence: []string{"S: 250\r"}, Fix: "f\u009b31m\x9b"}}}
	var b bytes.Buffer
	if err := r.Text(&b, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07\r\u009b") || !utf8.ValidString(out) {
		t.Errorf("Text passes control characters through: %q", out)
	}
	for _, want := range []string{`banner: 220 hi\u001b[2J\u0007`, `S: 250\u000d`, `fix: f\u009b31m\x9b`} {
		if !strings.Contains(out, want) {
			t.Errorf("Text lacks %q: %q", want, out)
		}
	}
}

func TestRenderJSON(t *testing.T) {
	r := renderSample()
	r.Items[0].Detail = "a <b> & c"
	var b bytes.Buffer
	if err := r.JSON(&b); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, r) {
		t.Errorf("JSON round trip:\n%+v\nwant\n%+v", got, *r)
	}
	for _, want := range []string{"{\n  \"domain\": \"example.test\",\n", `"took_ns": 2345678000,`,
		`"started": "2025-03-01T12:00:00Z"`, `"detail": "a <b> & c"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %q:\n%s", want, b.String())
		}
	}
}

// renderHTML renders r as HTML and checks that it is self-contained: nothing that loads a
// resource, runs a script or links anywhere.
func renderHTML(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.HTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lower := strings.ToLower(out)
	for _, bad := range []string{"http://", "https://", "src=", "<link", "<script", "href", "url(", "@import", "<img", "<iframe"} {
		if strings.Contains(lower, bad) {
			t.Errorf("HTML has %q", bad)
		}
	}
	for _, want := range []string{"<!DOCTYPE html>\n<html lang=\"en\">", `<meta name="viewport" content="width=device-width, initial-scale=1">`,
		"<title>danelab check: " + html.EscapeString(r.Domain) + "</title>", "</html>\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	return out
}

func TestRenderHTML(t *testing.T) {
	r := renderSample()
	r.Items[3].Detail = `<script>alert("x")</script> & more`
	out := renderHTML(t, r)
	for _, want := range []string{
		`<div class="banner fail" role="status">Failures<small>2 pass, 1 warn, 1 fail, 1 info — exit status 2: failures</small></div>`,
		`<h1>danelab check: example.test</h1>`,
		`<dd>2025-03-01 12:00:00 UTC</dd>`, `<dd>iterative from the root trust anchor</dd>`, `<dd>2.35s</dd>`,
		`<li class="defer"><b>Exchange Online</b>: defer 4.7.324 — TLSA lookup at _25._tcp.mx1.example.test bogus: RRSIG expired</li>`,
		`<li class="deliver"><b>Postfix (dane)</b>: deliver over DANE to mx1.example.test (matched 3 1 1 ab12cd34…)</li>`,
		`<span class="detail">&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more</span>`,
		"<pre>_25._tcp.mx1.example.test. 300 IN TLSA 3 0 0 " + renderCert + "\nRRSIG TLSA 13 5 300 20250228000000 20250214000000</pre>",
		`<p class="fix"><b>fix:</b> re-sign the zone so that the TLSA RRset validates</p>`,
		`<span class="mark info">INFO</span>`, `<span class="code">[EX002]</span>`,
		`<p class="summary">Summary: 2 pass, 1 warn, 1 fail, 1 info — exit status 2: failures</p>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	// Groups in order of first appearance, each once.
	d, m, h := strings.Index(out, "<h2>dnssec</h2>"), strings.Index(out, "<h2>mx</h2>"), strings.Index(out, "<h2>host mx1.example.test</h2>")
	if d < 0 || m < d || h < m || strings.Count(out, "<h2>dnssec</h2>") != 1 {
		t.Errorf("groups at %d, %d, %d", d, m, h)
	}
	if strings.Contains(out, "a fix on an info item") {
		t.Error("HTML shows the fix of an info item")
	}
}

func TestRenderHTMLBanner(t *testing.T) {
	for _, tc := range []struct {
		v    Verdict
		want string
	}{
		{Pass, `<div class="banner pass" role="status">All checks pass<small>`},
		{Info, `<div class="banner pass" role="status">All checks pass<small>`},
		{Warn, `<div class="banner warn" role="status">Warnings<small>`},
		{Fail, `<div class="banner fail" role="status">Failures<small>`},
	} {
		out := renderHTML(t, &Report{Domain: "a&b.test", Items: []Item{{Group: "g", Name: "n", Verdict: tc.v}}})
		if !strings.Contains(out, tc.want) || !strings.Contains(out, "<h1>danelab check: a&amp;b.test</h1>") {
			t.Errorf("HTML with a %s item lacks %q:\n%s", tc.v, tc.want, out)
		}
	}
}

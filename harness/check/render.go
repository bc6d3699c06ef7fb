package check

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// This file renders a Report three ways: Text for a terminal, JSON for programs and HTML for
// a browser. Text and HTML are built from one view (newReportView), so they say the same things.

// evidenceWidth is the width, in columns, past which an evidence line has its long hex runs
// shortened in the middle (text only: JSON and HTML keep every digit).
const evidenceWidth = 100

// reportView is what Text and HTML show: the report's strings, ordered, grouped and counted.
type reportView struct {
	Domain, When, Resolution, Took string
	Worst                          Verdict
	Banner                         string // "All checks pass", "Warnings", "Failures"
	Status                         int
	Predictions                    []predictionView
	Groups                         []groupView
	Summary                        string
}

type predictionView struct {
	Sender string // "Exchange Online"
	Action string // deliver, defer, bounce (a class in HTML, a colour in text)
	Text   string // the rest of the line: "defer 4.7.324 — TLSA lookup ..."
}

type groupView struct {
	Name  string
	Items []itemView
}

type itemView struct {
	Marker   string // PASS, WARN, FAIL, INFO
	Class    string // pass, warn, fail, info, unknown
	Name     string
	Code     string
	Detail   string
	Evidence []string
	Fix      string // only for a warning or a failure
}

// bannerWords are the overall verdict's words, by Report.Worst.
var bannerWords = map[Verdict]string{Pass: "All checks pass", Warn: "Warnings", Fail: "Failures"}

// statusMeaning says what each exit status (Report.ExitStatus) means.
var statusMeaning = []string{"every check passes", "warnings, no failures", "failures"}

func newReportView(r *Report) reportView {
	v := reportView{
		Domain:     r.Domain,
		When:       "unknown",
		Resolution: r.Resolution,
		Took:       tookText(r.Took),
		Worst:      r.Worst(),
		Status:     r.ExitStatus(),
	}
	v.Banner = bannerWords[v.Worst]
	if !r.Started.IsZero() {
		v.When = r.Started.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if v.Resolution == "" {
		v.Resolution = "unknown"
	}
	for _, p := range r.Predictions {
		v.Predictions = append(v.Predictions, newPredictionView(p))
	}
	index := map[string]int{}
	counts := map[Verdict]int{}
	for _, it := range r.Items {
		i, ok := index[it.Group]
		if !ok {
			i = len(v.Groups)
			index[it.Group] = i
			v.Groups = append(v.Groups, groupView{Name: it.Group})
		}
		counts[it.Verdict]++
		iv := itemView{Marker: "????", Class: "unknown", Name: it.Name, Code: it.Code, Detail: it.Detail, Evidence: it.Evidence}
		switch it.Verdict {
		case Pass, Warn, Fail, Info:
			iv.Marker, iv.Class = strings.ToUpper(string(it.Verdict)), string(it.Verdict)
		}
		if it.Verdict == Warn || it.Verdict == Fail {
			iv.Fix = it.Fix
		}
		v.Groups[i].Items = append(v.Groups[i].Items, iv)
	}
	v.Summary = fmt.Sprintf("%d pass, %d warn, %d fail, %d info — exit status %d: %s",
		counts[Pass], counts[Warn], counts[Fail], counts[Info], v.Status, statusMeaning[v.Status])
	return v
}

// senderNames are the senders as a person knows them; the harness's Postfix profile is a
// Postfix with smtp_tls_security_level = dane.
var senderNames = map[string]string{"exchange": "Exchange Online", "postfix": "Postfix (dane)"}

// securityPhrases complete "deliver ..." for each security level of a delivery.
var securityPhrases = map[string]string{
	"dane":    "over DANE",
	"encrypt": "over unauthenticated TLS (encrypt)",
	"may":     "over opportunistic TLS",
	"none":    "in plaintext",
}

func newPredictionView(p Prediction) predictionView {
	pv := predictionView{Sender: p.Sender, Action: p.Action}
	if n, ok := senderNames[p.Sender]; ok {
		pv.Sender = n
	}
	var words []string
	if p.Action != "" {
		words = append(words, p.Action)
	}
	if p.Action == "deliver" {
		if s, ok := securityPhrases[p.Security]; ok {
			words = append(words, s)
		} else if p.Security != "" {
			words = append(words, "("+p.Security+")")
		}
		if p.Host != "" {
			words = append(words, "to "+p.Host)
		}
		if p.Matched != "" {
			words = append(words, "(matched "+shortMatched(p.Matched)+")")
		}
		// Over DANE the matched record says why; every other level needs its reason.
		if p.Reason != "" && (p.Security != "dane" || p.Matched == "") {
			words = append(words, "— "+p.Reason)
		}
	} else {
		if p.Code != "" {
			words = append(words, p.Code)
		}
		if p.Host != "" && !strings.Contains(p.Reason, p.Host) {
			words = append(words, "at "+p.Host)
		}
		if p.Reason != "" {
			words = append(words, "— "+p.Reason)
		}
	}
	pv.Text = strings.Join(words, " ")
	return pv
}

// shortMatched shortens a TLSA record's association data to its first 8 digits: on the
// verdict line they tell the records apart; the item's evidence has every digit.
func shortMatched(m string) string {
	f := strings.Fields(m)
	if n := len(f); n > 0 && len(f[n-1]) > 12 && strings.Trim(f[n-1], "0123456789abcdefABCDEF") == "" {
		f[n-1] = f[n-1][:8] + "…"
	}
	return strings.Join(f, " ")
}

func tookText(d time.Duration) string {
	switch {
	case d <= 0:
		return "unknown"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// longHex is a run of hex digits long enough to be a digest, key or certificate.
var longHex = regexp.MustCompile(`[0-9A-Fa-f]{24,}`)

// shortenHex shortens the longest hex runs of line in the middle ("3082…0a1b") until line is
// at most width columns, keeping at least 8 digits on each side of a cut.
func shortenHex(line string, width int) string {
	excess := utf8.RuneCountInString(line) - width
	for excess > 0 {
		runs := longHex.FindAllStringIndex(line, -1)
		best := -1
		for i, r := range runs {
			if r[1]-r[0] > 17 && (best < 0 || r[1]-r[0] > runs[best][1]-runs[best][0]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		a, b := runs[best][0], runs[best][1]
		cut := min(excess+1, b-a-16) // the ellipsis takes one column back
		keep := b - a - cut
		line = line[:a+(keep+1)/2] + "…" + line[b-keep/2:]
		excess -= cut - 1
	}
	return line
}

// printable makes text from the network (server replies, certificate names) safe to print on
// a terminal: control characters and invalid UTF-8 become Go escapes, so no reply can move the
// cursor or recolour the screen. Tabs stay.
func printable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func isControl(r rune) bool {
	return r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0))
}

// The ANSI colours of the text report.
const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiGrey   = "\x1b[90m"
)

var (
	verdictColours = map[string]string{"pass": ansiGreen, "warn": ansiYellow, "fail": ansiRed, "info": ansiGrey}
	actionColours  = map[string]string{"deliver": ansiGreen, "defer": ansiYellow, "bounce": ansiRed}
	worstColours   = map[Verdict]string{Pass: ansiGreen, Warn: ansiYellow, Fail: ansiRed}
)

// Text writes the report for a person at a terminal: the header, the verdict (what each
// sender would do now), the checks by group, and a summary line. With color, verdicts are
// coloured with ANSI escapes; without, the output has none.
func (r *Report) Text(w io.Writer, color bool) error {
	v := newReportView(r)
	paint := func(code, s string) string {
		if !color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	var b strings.Builder
	line := func(indent string, s string) {
		for l := range strings.SplitSeq(s, "\n") {
			b.WriteString(indent + printable(l) + "\n")
		}
	}
	b.WriteString(paint(ansiBold, "danelab check: "+printable(v.Domain)) + "\n")
	line("  when      ", v.When)
	line("  resolved  ", v.Resolution)
	line("  took      ", v.Took)
	b.WriteString("\n" + paint(ansiBold, "Verdict: ") + paint(worstColours[v.Worst], v.Banner) + "\n")
	if len(v.Predictions) == 0 {
		b.WriteString("  (no prediction)\n")
	}
	for _, p := range v.Predictions {
		text := printable(p.Text)
		if rest, ok := strings.CutPrefix(text, p.Action); ok && p.Action != "" {
			text = paint(actionColours[p.Action], p.Action) + rest
		}
		b.WriteString("  " + printable(p.Sender) + ": " + text + "\n")
	}
	for _, g := range v.Groups {
		b.WriteString("\n" + paint(ansiBold, printable(g.Name)) + "\n")
		for _, it := range g.Items {
			head := it.Name
			if it.Code != "" {
				head += " [" + it.Code + "]"
			}
			if it.Detail != "" {
				head += ": " + it.Detail
			}
			first, rest, _ := strings.Cut(head, "\n")
			b.WriteString("  " + paint(verdictColours[it.Class], it.Marker) + "  " + printable(first) + "\n")
			if rest != "" {
				line("        ", rest)
			}
			for _, e := range it.Evidence {
				for l := range strings.SplitSeq(e, "\n") {
					b.WriteString(paint(ansiGrey, shortenHex("        "+printable(l), evidenceWidth)) + "\n")
				}
			}
			if it.Fix != "" {
				line("        fix: ", it.Fix)
			}
		}
	}
	b.WriteString("\n" + paint(worstColours[v.Worst], "Summary: "+v.Summary) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// JSON writes the report as indented JSON, as its struct tags say (Took in nanoseconds).
// Characters such as < and & stay as they are: the document is not meant for inclusion in HTML.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// HTML writes the report as one self-contained HTML5 document: inline CSS, no script, and
// nothing fetched from anywhere (its Content-Security-Policy forbids it too), so it can be
// mailed or archived and opened offline, on a phone as well.
func (r *Report) HTML(w io.Writer) error {
	return htmlReport.Execute(w, newReportView(r))
}

var htmlReport = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>danelab check: {{.Domain}}</title>
<style>
*{box-sizing:border-box}
body{margin:0;background:#f5f5f3;color:#1c1c1c;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:62rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.25rem 0 .75rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem;overflow-wrap:anywhere}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:0 0 1rem;color:#444}
.meta dd{margin:0;overflow-wrap:anywhere}
.banner{border-radius:.5rem;padding:1rem 1.25rem;margin:0 0 1rem;font-size:1.75rem;font-weight:700;line-height:1.2}
.banner small{display:block;margin-top:.35rem;font-size:1rem;font-weight:400}
.banner.pass{background:#1e7b34;color:#fff}
.banner.warn{background:#f2a900;color:#1c1c1c}
.banner.fail{background:#c62828;color:#fff}
ul{list-style:none;margin:0;padding:0}
.predictions li{background:#fff;border-left:.4rem solid #888;border-radius:.25rem;padding:.5rem .75rem;margin:.35rem 0;overflow-wrap:anywhere}
.predictions li.deliver{border-color:#1e7b34}
.predictions li.defer{border-color:#f2a900}
.predictions li.bounce{border-color:#c62828}
.item{background:#fff;border-radius:.25rem;padding:.5rem .75rem;margin:.35rem 0;overflow-wrap:anywhere}
.mark{display:inline-block;min-width:3.4rem;text-align:center;border-radius:.25rem;padding:0 .35rem;margin-right:.5rem;font:700 .8rem/1.6 ui-monospace,"DejaVu Sans Mono",monospace;color:#fff;background:#777}
.mark.pass{background:#1e7b34}
.mark.warn{background:#f2a900;color:#1c1c1c}
.mark.fail{background:#c62828}
.name{font-weight:600}
.code{color:#555;font-size:.9rem}
pre{margin:.4rem 0 0;padding:.4rem .6rem;background:#f0f0ec;border-radius:.25rem;font:.8rem/1.4 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;overflow-wrap:anywhere}
.fix{margin:.4rem 0 0;padding:.3rem .6rem;border-left:.25rem solid #c62828;background:#fdf1f0}
.item.warn .fix{border-color:#f2a900;background:#fff8e6}
.summary{margin:1.5rem 0 .5rem;font-weight:600}
@media (max-width:30rem){main{padding:.5rem}.banner{font-size:1.4rem}.meta{grid-template-columns:1fr}.meta dt{font-weight:600}}
</style>
</head>
<body>
<main>
<h1>danelab check: {{.Domain}}</h1>
<div class="banner {{.Worst}}" role="status">{{.Banner}}<small>{{.Summary}}</small></div>
<dl class="meta">
<dt>when</dt><dd>{{.When}}</dd>
<dt>resolved</dt><dd>{{.Resolution}}</dd>
<dt>took</dt><dd>{{.Took}}</dd>
</dl>
<h2>Verdict: what senders do now</h2>
<ul class="predictions">
{{- range .Predictions}}
<li class="{{.Action}}"><b>{{.Sender}}</b>: {{.Text}}</li>
{{- else}}
<li>no prediction</li>
{{- end}}
</ul>
{{- range .Groups}}
<section>
<h2>{{.Name}}</h2>
<ul>
{{- range .Items}}
<li class="item {{.Class}}"><span class="mark {{.Class}}">{{.Marker}}</span><span class="name">{{.Name}}</span>
{{- with .Code}} <span class="code">[{{.}}]</span>{{end}}
{{- with .Detail}}: <span class="detail">{{.}}</span>{{end}}
{{- with .Evidence}}
<pre>{{range $i, $e := .}}{{if $i}}
{{end}}{{$e}}{{end}}</pre>
{{- end}}
{{- with .Fix}}
<p class="fix"><b>fix:</b> {{.}}</p>
{{- end}}
</li>
{{- end}}
</ul>
</section>
{{- end}}
<p class="summary">Summary: {{.Summary}}</p>
</main>
</body>
</html>
`))

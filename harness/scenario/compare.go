package scenario

import (
	"fmt"
	"strings"
	"time"
)

// Compare returns the differences between what s expects and what res observed, one
// readable line each ("attempt 2 (+15m): status 4.7.323, want 4.7.324"); none means pass.
func Compare(s *Scenario, res Result) []string {
	var diffs []string
	if w := res.Warmup; w != nil && w.Label() != "delivered" {
		diffs = append(diffs, fmt.Sprintf("warm-up message at +0: %s, want delivered", w.describe()))
	}
	obs := res.Attempts
	i := 0
	for k, e := range s.Expect {
		if e.Repeat {
			if i >= len(obs) {
				diffs = append(diffs, fmt.Sprintf("expect[%d]: want at least one more attempt %s, got none", k, e.describe()))
				break
			}
			for j := i; j < len(obs); j++ {
				at := e.At
				if j > i {
					at = nil
				}
				diffs = append(diffs, matchAttempt(e, at, obs[j])...)
			}
			i = len(obs)
			break
		}
		if i >= len(obs) {
			diffs = append(diffs, fmt.Sprintf("expect[%d]: want an attempt %s, got no more attempts", k, e.describe()))
			i++
			continue
		}
		diffs = append(diffs, matchAttempt(e, e.At, obs[i])...)
		i++
	}
	// Unexpected attempts, runs of alike ones folded into one line.
	for i < len(obs) {
		j := i
		for j+1 < len(obs) && obs[j+1].describe() == obs[i].describe() {
			j++
		}
		if j == i {
			diffs = append(diffs, fmt.Sprintf("attempt %d (+%s): unexpected: %s", obs[i].N, obs[i].At, obs[i].describe()))
		} else {
			diffs = append(diffs, fmt.Sprintf("attempts %d..%d (+%s..+%s, %d attempts): unexpected: %s", obs[i].N, obs[j].N,
				obs[i].At, obs[j].At, j-i+1, obs[i].describe()))
		}
		i = j + 1
	}
	f := s.Final
	switch {
	case res.FinalState != f.State:
		diffs = append(diffs, fmt.Sprintf("final: %s, want %s", res.finalString(), f.describe()))
	case f.State == StateNDR && f.Code != "" && res.FinalCode != f.Code:
		diffs = append(diffs, fmt.Sprintf("final: NDR code %s, want %s", res.FinalCode, f.Code))
	}
	if f.At != nil && res.FinalState == f.State && res.FinalAge != time.Duration(*f.At) {
		diffs = append(diffs, fmt.Sprintf("final: at +%s, want +%s", FormatAge(res.FinalAge), *f.At))
	}
	// An NDR must reach the sender's mailbox, over TLS, saying what the queue decided.
	if n := res.NDR; res.FinalState == StateNDR && n != nil {
		switch {
		case !n.Delivered:
			diffs = append(diffs, fmt.Sprintf("NDR: not received by the sender's mailbox (%s)", n.Err))
		case n.Status != res.FinalCode || n.Action != "failed":
			diffs = append(diffs, fmt.Sprintf("NDR: the sender's mailbox got Status: %s, Action: %s; want Status: %s, Action: failed",
				n.Status, n.Action, res.FinalCode))
		case !n.TLS:
			diffs = append(diffs, "NDR: delivered to the sender's mailbox without TLS")
		}
	}
	return diffs
}

// matchedOK compares an expected matched TLSA record ("U S M", "U S M current|next",
// "U S M <hex>") with the observed one.
func matchedOK(want string, o Observed) bool {
	w := strings.Fields(strings.ToLower(want))
	got := strings.Fields(strings.ToLower(o.Matched))
	if len(got) != 4 || len(w) < 3 || strings.Join(w[:3], " ") != strings.Join(got[:3], " ") {
		return false
	}
	switch {
	case len(w) == 3:
		return true
	case w[3] == "current" || w[3] == "next":
		return strings.EqualFold(o.MatchedAs, want)
	}
	return w[3] == got[3]
}

func matchAttempt(e Attempt, at *Minutes, o Observed) []string {
	var d []string
	where := fmt.Sprintf("attempt %d (+%s)", o.N, o.At)
	if at != nil && o.Age != time.Duration(*at) {
		d = append(d, fmt.Sprintf("%s: made at +%s, want +%s", where, o.At, *at))
	}
	if o.Label() != e.Status {
		d = append(d, fmt.Sprintf("%s: status %s, want %s%s", where, o.Label(), e.Status, o.why()))
	}
	if e.TLS != "" && o.TLS != e.TLS {
		d = append(d, fmt.Sprintf("%s: tls %q, want %q", where, o.TLS, e.TLS))
	}
	if e.Result != "" && o.Result != e.Result {
		d = append(d, fmt.Sprintf("%s: result %q, want %q", where, o.Result, e.Result))
	}
	if e.Host != "" && !strings.HasPrefix(strings.ToLower(o.Host), strings.ToLower(e.Host)+".") {
		d = append(d, fmt.Sprintf("%s: host %s, want %s", where, strings.TrimSuffix(o.Host, "."), e.Host))
	}
	if e.TLSA != "" && !matchedOK(e.TLSA, o) {
		got := o.Matched
		if o.MatchedAs != "" {
			got = o.MatchedAs + " (" + o.Matched + ")"
		}
		if got == "" {
			got = "none"
		}
		d = append(d, fmt.Sprintf("%s: matched TLSA %s, want %s", where, got, e.TLSA))
	}
	return d
}

func (o Observed) why() string {
	var parts []string
	if o.Result != "" {
		parts = append(parts, o.Result)
	}
	if o.Detail != "" {
		parts = append(parts, o.Detail)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ": ") + ")"
}

func (o Observed) describe() string {
	s := o.Label()
	if o.TLS != "" {
		s += " tls=" + o.TLS
	}
	return s + o.why()
}

func (e Attempt) describe() string {
	s := e.Status
	if e.At != nil {
		s += " at +" + e.At.String()
	}
	if e.TLS != "" {
		s += " tls=" + e.TLS
	}
	return s
}

func (f Final) describe() string {
	s := f.State
	if f.Code != "" {
		s += " " + f.Code
	}
	if f.At != nil {
		s += " at +" + f.At.String()
	}
	return s
}

func (r Result) finalString() string {
	s := r.FinalState
	if r.FinalCode != "" {
		s += " " + r.FinalCode
	}
	if r.FinalState == StateDelivered || r.FinalState == StateNDR {
		s += " at +" + FormatAge(r.FinalAge)
	}
	return s
}

// Summary is the expectation in one line, runs of equal attempts folded: "4.7.324@0,15m
// delivered/dane@30m ⇒ delivered@30m"; "…" marks a repeating last entry.
func (s *Scenario) Summary() string {
	var parts []string
	for i := 0; i < len(s.Expect); {
		e := s.Expect[i]
		p := e.Status
		if e.TLS != "" {
			p += "/" + e.TLS
		}
		var ats []string
		repeat := false
		j := i
		for ; j < len(s.Expect) && s.Expect[j].Status == e.Status && s.Expect[j].TLS == e.TLS; j++ {
			if at := s.Expect[j].At; at != nil {
				ats = append(ats, at.String())
			}
			if s.Expect[j].Repeat {
				repeat = true
			}
		}
		n := j - i
		more := ""
		if repeat {
			more = ",…"
		}
		switch {
		case len(ats) == 0 && n > 1:
			p += fmt.Sprintf(" ×%d", n)
		case len(ats) > 5: // a long schedule: its start, its end and the count
			p += "@" + strings.Join(ats[:3], ",") + ",…," + ats[len(ats)-1] + more
			if !repeat {
				p += fmt.Sprintf(" ×%d", n)
			}
		case len(ats) > 0:
			p += "@" + strings.Join(ats, ",") + more
		case repeat:
			p += "@…"
		}
		parts = append(parts, p)
		i = j
	}
	return strings.Join(parts, " ") + " ⇒ " + s.Final.describe2()
}

func (f Final) describe2() string {
	s := f.State
	if f.State == StateNDR {
		s = "NDR"
	}
	if f.Code != "" {
		s += " " + f.Code
	}
	if f.At != nil {
		s += "@" + f.At.String()
	}
	return s
}

// SummarizeObserved is the observation in one line, runs of equal attempts folded:
// "4.7.323@0..23h45m ×27 ⇒ NDR 5.7.323@24h".
func SummarizeObserved(r Result) string {
	var parts []string
	obs := r.Attempts
	for i := 0; i < len(obs); {
		j := i
		for j+1 < len(obs) && obs[j+1].Label() == obs[i].Label() && obs[j+1].TLS == obs[i].TLS {
			j++
		}
		p := obs[i].Label()
		if obs[i].Label() == "delivered" && obs[i].TLS != "" {
			p += "/" + obs[i].TLS
		}
		if j-i >= 2 {
			p += fmt.Sprintf("@%s..%s ×%d", obs[i].At, obs[j].At, j-i+1)
		} else {
			p += "@" + obs[i].At
			if j > i {
				p += " " + obs[j].Label() + "@" + obs[j].At
			}
		}
		parts = append(parts, p)
		i = j + 1
	}
	final := r.FinalState
	switch r.FinalState {
	case StateNDR:
		final = "NDR " + r.FinalCode + "@" + FormatAge(r.FinalAge)
	case StateDelivered:
		final = "delivered@" + FormatAge(r.FinalAge)
	}
	return strings.Join(parts, " ") + " ⇒ " + final
}

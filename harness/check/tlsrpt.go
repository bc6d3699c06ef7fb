package check

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/danelab/danelab/harness/tlsrpt"
)

// checkTLSRPT checks the domain's TLS-RPT record (RFC 8460 §3) with the rules the harness's
// own reporter applies (package tlsrpt), so that a pass here means reports are delivered.
func checkTLSRPT(ctx context.Context, cfg Config, domain string) []Item {
	const g = "tls-rpt"
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	name := "_smtp._tls." + d + "."
	example := fmt.Sprintf("publish %s TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\" (or rua=https://...): senders then report failed TLS sessions daily (RFC 8460 §3)", name, d)
	item := func(v Verdict, detail, fix string, ev ...string) Item {
		return Item{Group: g, Name: "TLS-RPT record", Verdict: v, Detail: detail, Evidence: ev, Fix: fix}
	}

	ans, err := lookupPolicyTXT(ctx, cfg, name)
	if err != nil {
		return []Item{item(Fail, err.Error(),
			fmt.Sprintf("make TXT %s answer (or not exist) with a valid or insecure answer: senders cannot find where to report", name))}
	}
	// §3: records not beginning with "v=TLSRPTv1" are discarded; exactly one must remain.
	// tlsrpt.SelectRecord of one record says whether it is a candidate and parses it.
	var cands, near []string
	var parsed []tlsrpt.Record
	var errs []error
	for _, t := range ans.txts {
		rec, err := tlsrpt.SelectRecord([]string{t})
		switch {
		case errors.Is(err, tlsrpt.ErrNoRecord):
			if strings.HasPrefix(strings.ToLower(t), "v=tlsrptv1") {
				near = append(near, t)
			}
			continue
		case err != nil:
			errs = append(errs, err)
		default:
			errs = append(errs, nil)
		}
		cands = append(cands, t)
		parsed = append(parsed, rec)
	}
	switch {
	case len(cands) == 0 && len(near) > 0:
		return []Item{item(Fail, fmt.Sprintf("TXT %s %q does not begin with \"v=TLSRPTv1;\": senders ignore it (RFC 8460 §3)", name, near[0]),
			example, quoteTXTs(name, near)...)}
	case len(cands) == 0:
		return []Item{item(Info, "no TLS-RPT record: you will not hear about failed deliveries", example,
			fmt.Sprintf("%s TXT: %s", name, ans.none()))}
	case len(cands) > 1:
		return []Item{item(Fail, fmt.Sprintf("%d v=TLSRPTv1 records at %s: senders use none of them (RFC 8460 §3)", len(cands), name),
			fmt.Sprintf("keep exactly one v=TLSRPTv1 TXT record at %s", name), quoteTXTs(name, cands)...)}
	}
	ev := fmt.Sprintf("%s TXT %q", name, cands[0])
	if errs[0] != nil {
		return []Item{item(Fail, fmt.Sprintf("TXT %s: %s: senders ignore it (RFC 8460 §3)", name, strings.TrimPrefix(errs[0].Error(), "tlsrpt: ")),
			"correct the record: "+example, ev)}
	}
	rec := parsed[0]
	items := []Item{item(Pass, "reports go to "+strings.Join(rec.RUA, ", "), "", ev)}
	// Other URI schemes are valid syntax but no sender reports there.
	for _, u := range rec.Ignored {
		items = append(items, Item{Group: g, Name: "TLS-RPT rua " + u, Verdict: Warn,
			Detail:   fmt.Sprintf("rua URI %q is neither mailto: nor https:: senders ignore it (RFC 8460 §3)", u),
			Evidence: []string{ev},
			Fix:      fmt.Sprintf("remove %q from the rua of TXT %s, or replace it by a mailto: or https: URI", u, name)})
	}
	return items
}

package check

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// Exchange Online's inbound DANE preflight. The codes are those Microsoft lists for
// Get-DnssecStatusForVerifiedDomain (Exchange Online's "SMTP DANE with DNSSEC" documentation,
// as of 2024); what each checks below is danelab's reading of those one-line descriptions,
// not Microsoft's code. The expected MX is the domain's DnssecMxValue.
//
//	ED003  no DNSSEC-authentic MX record found (the MX answer is not secure)
//	EX002  the expected MX is not among the MX records
//	EX003  the expected MX is the only MX, with a priority other than 0
//	EX004  another MX has the same preference as the expected one
//	EX005  another MX has a lower preference value (is preferred to the expected one)
//	EX006  another MX has a higher preference value (a fallback)
//	EX007  no MX record: the name exists (NODATA)
//	EX008  the expected MX has the lowest preference, but not 0
//	EX009  the expected MX has a preference other than 0, and another MX a lower one
//	EX010  unknown DNS error (the lookup failed, or its answer is bogus or indeterminate)
//	EX012  no MX record: the name does not exist (NXDOMAIN)
//	EX013  the expected MX value is not a host name
//	ES001  an MTA-STS policy in enforce mode does not list the expected MX
//	ES002  an MTA-STS policy exists but there is no expected MX to compare it with
const (
	exNoAuthenticMX   = "ED003"
	exNotExpected     = "EX002"
	exPriorityNotZero = "EX003"
	exSamePreference  = "EX004"
	exPreferredOther  = "EX005"
	exFallbackOther   = "EX006"
	exNoMX            = "EX007"
	exLowestNotZero   = "EX008"
	exNotLowest       = "EX009"
	exDNSError        = "EX010"
	exNoDomain        = "EX012"
	exBadExpected     = "EX013"
	exSTSMissing      = "ES001"
	exSTSNoExpected   = "ES002"
)

// checkExchange mirrors Exchange Online's inbound preflight for the expected MX (nothing when
// expect is empty), from the domain's MX answer and its MTA-STS policy (nil if none).
func checkExchange(expect string, mxRes *resolver.Result, mxErr error, sts *STSPolicy) []Item {
	if expect == "" {
		return nil
	}
	var items []Item
	add := func(code string, v Verdict, name, detail, fix string, ev ...string) {
		items = append(items, Item{Group: "exchange", Name: code + " " + name, Verdict: v, Detail: detail,
			Evidence: slices.Clone(ev), Fix: fix, Code: code})
	}
	domain := "the domain"
	if mxRes != nil && mxRes.Msg != nil && len(mxRes.Msg.Question) > 0 {
		domain = strings.TrimSuffix(strings.ToLower(mxRes.Msg.Question[0].Name), ".")
	}
	want := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(expect), "."))
	wantOK := exchangeHostName(want)
	if !wantOK {
		add(exBadExpected, Fail, "expected MX", fmt.Sprintf("the expected MX %q is not a host name", expect),
			fmt.Sprintf("set the expected MX to the DnssecMxValue that Get-DnssecStatusForVerifiedDomain reports for %s", domain))
		if sts != nil {
			add(exSTSNoExpected, Warn, "MTA-STS policy", "an MTA-STS policy exists but there is no valid expected MX to compare its mx lines with",
				"fix the expected MX (EX013); then its MX must be listed in the MTA-STS policy", "policy mx: "+strings.Join(sts.MX, ", "))
		}
	}

	// The MX answer itself.
	switch {
	case mxErr != nil:
		add(exDNSError, Fail, "DNS error", fmt.Sprintf("unknown DNS error: the MX lookup failed: %v", mxErr),
			fmt.Sprintf("make the name servers of %s answer the MX query", domain))
		return items
	case mxRes == nil || mxRes.Msg == nil:
		add(exDNSError, Fail, "DNS error", fmt.Sprintf("unknown DNS error: no answer to MX %s", domain),
			fmt.Sprintf("make the name servers of %s answer the MX query", domain))
		return items
	case mxRes.Verdict == resolver.Bogus || mxRes.Verdict == resolver.Indeterminate:
		add(exDNSError, Fail, "DNS error", fmt.Sprintf("unknown DNS error: the MX answer of %s is %s: %s", domain, mxRes.Verdict, mxRes.Reason),
			fmt.Sprintf("make the MX answer of %s validate: correct the zone's signatures and the DS at the parent (senders defer mail meanwhile)", domain),
			"MX "+domain+": "+mxRes.Verdict.String())
		return items
	}
	mxs, ttl, ev := exchangeMX(mxRes)
	if mxRes.Verdict != resolver.Secure {
		add(exNoAuthenticMX, Fail, "DNSSEC", fmt.Sprintf("no DNSSEC-authentic MX for %s: the answer is %s: %s", domain, mxRes.Verdict, mxRes.Reason),
			fmt.Sprintf("sign the zone of %s with DNSSEC and publish its DS at the parent, so that the MX answer validates", domain),
			slices.Concat(ev, []string{"MX " + domain + ": " + mxRes.Verdict.String()})...)
	}
	rcode := mxRes.Msg.Rcode
	publish := fmt.Sprintf("`%s. MX 0 %s.`", domain, want)
	switch {
	case rcode == dns.RcodeNameError:
		add(exNoDomain, Fail, "no MX", fmt.Sprintf("%s does not exist (NXDOMAIN): no MX record", domain),
			fmt.Sprintf("create the zone of %s, signed, with %s", domain, publish), "MX "+domain+": NXDOMAIN")
		return items
	case rcode != dns.RcodeSuccess:
		add(exDNSError, Fail, "DNS error", fmt.Sprintf("unknown DNS error: MX %s answered %s", domain, dns.RcodeToString[rcode]),
			fmt.Sprintf("make the name servers of %s answer the MX query", domain))
		return items
	case len(mxs) == 0:
		add(exNoMX, Fail, "no MX", fmt.Sprintf("%s has no MX record (NODATA)", domain),
			"publish "+publish, "MX "+domain+": NODATA")
		return items
	}
	if !wantOK {
		return items
	}

	// The expected MX among the MX records. An MX change is seen by senders only when the
	// old RRset expires from their caches, hence the TTL first.
	ttlFirst := fmt.Sprintf("lower the MX TTL first (not under 30 s) before changing the MX, and wait the old TTL (%d s); then ", ttl)
	exp := -1
	for i, mx := range mxs {
		if mxHostName(mx) == want && (exp < 0 || mx.Preference < mxs[exp].Preference) {
			exp = i
		}
	}
	if exp < 0 {
		add(exNotExpected, Fail, "MX value", fmt.Sprintf("the MX records of %s do not include the expected %s", domain, want),
			ttlFirst+fmt.Sprintf("publish %s in place of the current MX records", publish), ev...)
	} else {
		pref := mxs[exp].Preference
		var others []*dns.MX
		lowest := true
		for _, mx := range mxs {
			if mxHostName(mx) != want {
				others = append(others, mx)
				lowest = lowest && pref <= mx.Preference
			}
		}
		if pref != 0 {
			zero := ttlFirst + fmt.Sprintf("set the preference of %s to 0: %s", want, publish)
			switch {
			case len(others) == 0:
				add(exPriorityNotZero, Fail, "MX priority", fmt.Sprintf("the expected MX %s is the only MX, with priority %d, not 0", want, pref), zero, ev...)
			case lowest:
				add(exLowestNotZero, Fail, "MX preference", fmt.Sprintf("the expected MX %s has the lowest preference, %d, but not 0", want, pref), zero, ev...)
			default:
				add(exNotLowest, Fail, "MX preference", fmt.Sprintf("the expected MX %s has preference %d, not 0, and another MX has a lower one", want, pref),
					zero+", and remove the MX records preferred to it", ev...)
			}
		}
		for _, mx := range others {
			rr := fmt.Sprintf("`%s. MX %d %s`", domain, mx.Preference, mx.Mx)
			host := mxHostName(mx)
			switch {
			case mx.Preference == pref:
				add(exSamePreference, Fail, "MX "+host, fmt.Sprintf("%s has the same preference as the expected MX (%d) and takes part of the mail: no fallback MX during the switch", host, pref),
					ttlFirst+fmt.Sprintf("remove %s, or give it a higher preference value than %s", rr, want), ev...)
			case mx.Preference < pref:
				add(exPreferredOther, Fail, "MX "+host, fmt.Sprintf("%s has a lower preference value (%d) than the expected MX (%d): senders prefer it", host, mx.Preference, pref),
					ttlFirst+fmt.Sprintf("remove %s, or give it a higher preference value than %s", rr, want), ev...)
			default:
				add(exFallbackOther, Warn, "MX "+host, fmt.Sprintf("%s has a higher preference value (%d) than the expected MX (%d): a fallback", host, mx.Preference, pref),
					"remove it once inbound DANE works; during the switch it takes mail if the new MX fails", ev...)
			}
		}
	}

	// ES001: an MTA-STS sender in enforce mode would refuse the expected MX (RFC 8461 §4.1).
	if sts != nil && sts.Mode == "enforce" {
		listed := false
		for _, pat := range sts.MX {
			listed = listed || stsMatch(pat, want)
		}
		if !listed {
			add(exSTSMissing, Fail, "MTA-STS policy", fmt.Sprintf("the MTA-STS policy of %s is in enforce mode and does not list the expected MX %s: MTA-STS senders would not deliver to it", domain, want),
				fmt.Sprintf("add `mx: %s` to the policy at https://mta-sts.%s%s and change the id of TXT _mta-sts.%s, before changing the MX", want, domain, stsPolicyLoc, domain),
				"policy mx: "+strings.Join(sts.MX, ", "))
		}
	}

	for _, it := range items {
		if it.Verdict == Fail {
			return items
		}
	}
	return append(items, Item{Group: "exchange", Name: "Exchange Online inbound preflight", Verdict: Pass,
		Detail: "Exchange Online inbound preflight: MX as expected", Evidence: ev})
}

// exchangeMX returns the MX records of the answer, the RRset's TTL (the least, as resolvers
// cache the RRset by it) and the evidence: the records and the TTL.
func exchangeMX(res *resolver.Result) ([]*dns.MX, uint32, []string) {
	var mxs []*dns.MX
	var ev []string
	var ttl uint32
	for _, rr := range res.Msg.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			if len(mxs) == 0 || mx.Hdr.Ttl < ttl {
				ttl = mx.Hdr.Ttl
			}
			mxs = append(mxs, mx)
			ev = append(ev, mx.String())
		}
	}
	if len(mxs) > 0 {
		ev = append(ev, fmt.Sprintf("MX TTL %d s", ttl))
	}
	return mxs, ttl, ev
}

// mxHostName is the MX target in lower case without the trailing dot ("" for a null MX).
func mxHostName(mx *dns.MX) string {
	return strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
}

// exchangeHostName reports whether s (lower case, no trailing dot) is a host name of at least
// two LDH labels, as an MX target must be; an address is not.
func exchangeHostName(s string) bool {
	if s == "" || len(s) > 253 || net.ParseIP(s) != nil {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !stsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

package check

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

func TestCheckExchange(t *testing.T) {
	const exp = "example-test.mx.exchange.test"
	mx := func(v resolver.Verdict, rcode int, rrs ...string) *resolver.Result {
		res := cannedResult("example.test.", dns.TypeMX, v, rcode)
		for _, s := range rrs {
			rr, err := dns.NewRR("example.test. 3600 IN MX " + s)
			if err != nil {
				t.Fatal(err)
			}
			res.Msg.Answer = append(res.Msg.Answer, rr)
		}
		return res
	}
	secure := func(rrs ...string) *resolver.Result { return mx(resolver.Secure, dns.RcodeSuccess, rrs...) }
	ttlFirst := "lower the MX TTL first (not under 30 s) before changing the MX, and wait the old TTL (3600 s)"
	tests := []struct {
		name   string
		expect string
		res    *resolver.Result
		err    error
		sts    *STSPolicy
		codes  []string // "" for the final pass
		want   []Verdict
		has    []string
	}{
		{name: "no expectation", expect: "", res: secure("10 other.example.test.")},
		{name: "as expected", expect: exp, res: secure("0 " + exp + "."), codes: []string{""}, want: []Verdict{Pass},
			has: []string{"Exchange Online inbound preflight: MX as expected", "MX TTL 3600 s"}},
		{name: "case and dots", expect: " Example-Test.MX.Exchange.Test. ", res: secure("0 EXAMPLE-TEST.mx.exchange.test."), codes: []string{""}, want: []Verdict{Pass}},
		{name: "not secure", expect: exp, res: mx(resolver.Insecure, dns.RcodeSuccess, "0 "+exp+"."), codes: []string{"ED003"}, want: []Verdict{Fail},
			has: []string{"no DNSSEC-authentic MX for example.test: the answer is insecure: unsigned delegation", "sign the zone of example.test"}},
		{name: "lookup error", expect: exp, err: errors.New("example.test MX: no answer within 10s"), codes: []string{"EX010"}, want: []Verdict{Fail},
			has: []string{"unknown DNS error: the MX lookup failed: example.test MX: no answer within 10s"}},
		{name: "bogus", expect: exp, res: mx(resolver.Bogus, dns.RcodeSuccess, "0 "+exp+"."), codes: []string{"EX010"}, want: []Verdict{Fail},
			has: []string{"the MX answer of example.test is bogus: RRSIG expired"}},
		{name: "indeterminate", expect: exp, res: mx(resolver.Indeterminate, dns.RcodeServerFailure), codes: []string{"EX010"}, want: []Verdict{Fail},
			has: []string{"is indeterminate: no reachable authority"}},
		{name: "refused", expect: exp, res: mx(resolver.Insecure, dns.RcodeRefused), codes: []string{"ED003", "EX010"}, want: []Verdict{Fail, Fail},
			has: []string{"MX example.test answered REFUSED"}},
		{name: "NXDOMAIN", expect: exp, res: mx(resolver.Secure, dns.RcodeNameError), codes: []string{"EX012"}, want: []Verdict{Fail},
			has: []string{"example.test does not exist (NXDOMAIN)", "create the zone of example.test, signed, with `example.test. MX 0 " + exp + ".`"}},
		{name: "NODATA", expect: exp, res: secure(), codes: []string{"EX007"}, want: []Verdict{Fail},
			has: []string{"example.test has no MX record (NODATA)", "publish `example.test. MX 0 " + exp + ".`"}},
		{name: "other MX", expect: exp, res: secure("10 mail.example.test."), codes: []string{"EX002"}, want: []Verdict{Fail},
			has: []string{"do not include the expected " + exp, ttlFirst, "example.test.\t3600\tIN\tMX\t10 mail.example.test.", "MX TTL 3600 s"}},
		{name: "null MX", expect: exp, res: secure("0 ."), codes: []string{"EX002"}, want: []Verdict{Fail}},
		{name: "only MX, priority 10", expect: exp, res: secure("10 " + exp + "."), codes: []string{"EX003"}, want: []Verdict{Fail},
			has: []string{"is the only MX, with priority 10, not 0", ttlFirst + "; then set the preference of " + exp + " to 0"}},
		{name: "lowest but not 0, fallback", expect: exp, res: secure("10 "+exp+".", "20 old.example.test."), codes: []string{"EX008", "EX006"}, want: []Verdict{Fail, Warn},
			has: []string{"has the lowest preference, 10, but not 0", "remove it once inbound DANE works; during the switch it takes mail if the new MX fails"}},
		{name: "another preferred", expect: exp, res: secure("10 "+exp+".", "5 old.example.test."), codes: []string{"EX009", "EX005"}, want: []Verdict{Fail, Fail},
			has: []string{"has preference 10, not 0, and another MX has a lower one", "old.example.test has a lower preference value (5)", "remove `example.test. MX 5 old.example.test.`"}},
		{name: "same preference", expect: exp, res: secure("0 "+exp+".", "0 old.example.test."), codes: []string{"EX004"}, want: []Verdict{Fail},
			has: []string{"no fallback MX during the switch", ttlFirst}},
		{name: "same preference, not 0", expect: exp, res: secure("10 "+exp+".", "10 old.example.test."), codes: []string{"EX008", "EX004"}, want: []Verdict{Fail, Fail}},
		{name: "fallback only", expect: exp, res: secure("0 "+exp+".", "10 old.example.test."), codes: []string{"EX006", ""}, want: []Verdict{Warn, Pass}},
		{name: "least TTL of the RRset", expect: exp, res: func() *resolver.Result {
			r := secure("10 mail.example.test.")
			rr, _ := dns.NewRR("example.test. 300 IN MX 20 mail2.example.test.")
			r.Msg.Answer = append(r.Msg.Answer, rr)
			return r
		}(), codes: []string{"EX002"}, want: []Verdict{Fail}, has: []string{"MX TTL 300 s", "wait the old TTL (300 s)"}},
		{name: "malformed expectation", expect: "not a host!", res: secure("0 " + exp + "."), codes: []string{"EX013"}, want: []Verdict{Fail},
			has: []string{`the expected MX "not a host!" is not a host name`, "DnssecMxValue"}},
		{name: "address as expectation", expect: "192.0.2.1", res: secure("0 " + exp + "."), codes: []string{"EX013"}, want: []Verdict{Fail}},
		{name: "single label expectation", expect: "mx", res: secure("0 " + exp + "."), codes: []string{"EX013"}, want: []Verdict{Fail}},
		{name: "malformed expectation with MTA-STS", expect: "-bad-.example.test", res: secure("0 " + exp + "."), sts: &STSPolicy{Mode: "enforce", MX: []string{exp}},
			codes: []string{"EX013", "ES002"}, want: []Verdict{Fail, Warn}, has: []string{"no valid expected MX to compare"}},
		{name: "MTA-STS lacks it", expect: exp, res: secure("0 " + exp + "."), sts: &STSPolicy{Mode: "enforce", MX: []string{"old.example.test"}},
			codes: []string{"ES001"}, want: []Verdict{Fail},
			has: []string{"does not list the expected MX " + exp, "add `mx: " + exp + "` to the policy at https://mta-sts.example.test/.well-known/mta-sts.txt"}},
		{name: "MTA-STS wildcard lists it", expect: exp, res: secure("0 " + exp + "."), sts: &STSPolicy{Mode: "enforce", MX: []string{"*.mx.exchange.test"}},
			codes: []string{""}, want: []Verdict{Pass}},
		{name: "MTA-STS testing is not checked", expect: exp, res: secure("0 " + exp + "."), sts: &STSPolicy{Mode: "testing", MX: []string{"old.example.test"}},
			codes: []string{""}, want: []Verdict{Pass}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items := checkExchange(tc.expect, tc.res, tc.err, tc.sts)
			checkItems(t, items, "exchange", tc.want, tc.has...)
			var codes []string
			for _, it := range items {
				codes = append(codes, it.Code)
				if it.Code != "" && !strings.HasPrefix(it.Name, it.Code+" ") {
					t.Errorf("item %q does not start with its code %s", it.Name, it.Code)
				}
			}
			if !slices.Equal(codes, tc.codes) {
				t.Errorf("codes %q, want %q:\n%s", codes, tc.codes, dumpItems(items))
			}
		})
	}
	// MX changes come with the TTL advice, and its evidence.
	for _, res := range []*resolver.Result{secure("10 mail.example.test."), secure("10 " + exp + "."), secure("10 "+exp+".", "5 old.example.test.")} {
		for _, it := range checkExchange(exp, res, nil, nil) {
			if it.Verdict == Fail && !strings.Contains(it.Fix, ttlFirst) {
				t.Errorf("%s: fix %q lacks the TTL advice", it.Code, it.Fix)
			}
			if !slices.Contains(it.Evidence, "MX TTL 3600 s") {
				t.Errorf("%s: evidence %q lacks the TTL", it.Code, it.Evidence)
			}
		}
	}
}

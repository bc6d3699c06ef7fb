package check

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

func TestCheckTLSRPT(t *testing.T) {
	const name = "_smtp._tls.example.test."
	tests := []struct {
		name    string
		txt     []string // nil: NXDOMAIN
		nodata  bool
		verdict resolver.Verdict // default Secure
		err     error
		block   bool
		want    []Verdict
		has     []string
	}{
		{name: "NXDOMAIN", want: []Verdict{Info},
			has: []string{"no TLS-RPT record: you will not hear about failed deliveries", name + " TXT: NXDOMAIN", `publish ` + name + ` TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"`}},
		{name: "NODATA", nodata: true, want: []Verdict{Info}, has: []string{"no TLS-RPT record", "NODATA"}},
		{name: "other TXT only", txt: []string{"v=spf1 -all"}, want: []Verdict{Info}, has: []string{"no TLS-RPT record", "no policy record among 1 TXT records"}},
		{name: "mailto", txt: []string{"v=TLSRPTv1; rua=mailto:tlsrpt@example.test"}, want: []Verdict{Pass},
			has: []string{"reports go to mailto:tlsrpt@example.test", name + ` TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"`}},
		{name: "mailto and https, extension, other TXT", txt: []string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.test,https://reports.example.test/v1; ext=1;"},
			want: []Verdict{Pass}, has: []string{"reports go to mailto:a@example.test, https://reports.example.test/v1"}},
		{name: "insecure is fine", txt: []string{"v=TLSRPTv1; rua=https://reports.example.test/"}, verdict: resolver.Insecure, want: []Verdict{Pass}},
		{name: "ignored scheme", txt: []string{"v=TLSRPTv1; rua=mailto:a@example.test,ftp://x.example.test/r"}, want: []Verdict{Pass, Warn},
			has: []string{`rua URI "ftp://x.example.test/r" is neither mailto: nor https:`, "remove \"ftp://x.example.test/r\""}},
		{name: "several", txt: []string{"v=TLSRPTv1; rua=mailto:a@example.test", "v=TLSRPTv1; rua=mailto:b@example.test"}, want: []Verdict{Fail},
			has: []string{"2 v=TLSRPTv1 records at " + name, "keep exactly one"}},
		{name: "no rua", txt: []string{"v=TLSRPTv1; ruf=mailto:a@example.test"}, want: []Verdict{Fail}, has: []string{"record without rua", "correct the record"}},
		{name: "bad address", txt: []string{"v=TLSRPTv1; rua=mailto:not-an-address"}, want: []Verdict{Fail}, has: []string{"bad address in mailto URI"}},
		{name: "https without host", txt: []string{"v=TLSRPTv1; rua=https:reports"}, want: []Verdict{Fail}, has: []string{"bad https URI"}},
		{name: "only other schemes", txt: []string{"v=TLSRPTv1; rua=ftp://x.example.test/r"}, want: []Verdict{Fail}, has: []string{"no mailto: or https: URI"}},
		{name: "near miss", txt: []string{"v=TLSRPTv1 rua=mailto:a@example.test"}, want: []Verdict{Fail}, has: []string{`does not begin with "v=TLSRPTv1;"`}},
		{name: "bogus", txt: []string{"v=TLSRPTv1; rua=mailto:a@example.test"}, verdict: resolver.Bogus, want: []Verdict{Fail},
			has: []string{"looking up TXT " + name + ": bogus: RRSIG expired"}},
		{name: "resolver error", err: errors.New("resolver: invalid name"), want: []Verdict{Fail}, has: []string{"looking up TXT " + name + ": resolver: invalid name"}},
		{name: "timeout", block: true, want: []Verdict{Fail}, has: []string{"looking up TXT " + name + ": timeout after 50ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &stsResolver{block: tc.block}
			v := tc.verdict
			if v == 0 {
				v = resolver.Secure
			}
			if tc.txt != nil || tc.nodata {
				r.set(name, dns.TypeTXT, v, dns.RcodeSuccess, txtRRs(name, tc.txt...)...)
			}
			if tc.err != nil {
				r.errs = map[string]error{name + "|TXT": tc.err}
			}
			items := checkTLSRPT(context.Background(), Config{Resolver: r, Timeout: 50 * time.Millisecond}, "example.test")
			checkItems(t, items, "tls-rpt", tc.want, tc.has...)
		})
	}
}

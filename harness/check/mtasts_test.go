package check

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// stsResolver is a resolver.Interface with canned answers by "name|TYPE"; other names are a
// secure NXDOMAIN. With block it waits for the context, as a resolver that gets no answer.
type stsResolver struct {
	answers map[string]*resolver.Result
	errs    map[string]error
	block   bool

	mu    sync.Mutex
	asked []string
}

func (r *stsResolver) Resolve(ctx context.Context, name string, qtype uint16) (*resolver.Result, error) {
	key := strings.ToLower(dns.Fqdn(name)) + "|" + dns.TypeToString[qtype]
	r.mu.Lock()
	r.asked = append(r.asked, key)
	r.mu.Unlock()
	if r.block {
		<-ctx.Done()
		return cannedResult(name, qtype, resolver.Indeterminate, dns.RcodeServerFailure), nil
	}
	if err := r.errs[key]; err != nil {
		return nil, err
	}
	if res := r.answers[key]; res != nil {
		return res, nil
	}
	return cannedResult(name, qtype, resolver.Secure, dns.RcodeNameError), nil
}

// set stores an answer of records (in zone file syntax) for name and qtype.
func (r *stsResolver) set(name string, qtype uint16, v resolver.Verdict, rcode int, rrs ...string) *stsResolver {
	if r.answers == nil {
		r.answers = map[string]*resolver.Result{}
	}
	res := cannedResult(name, qtype, v, rcode)
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			panic(err)
		}
		res.Msg.Answer = append(res.Msg.Answer, rr)
	}
	r.answers[strings.ToLower(dns.Fqdn(name))+"|"+dns.TypeToString[qtype]] = res
	return r
}

func cannedResult(name string, qtype uint16, v resolver.Verdict, rcode int) *resolver.Result {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Response, m.Rcode, m.AuthenticatedData = true, rcode, v == resolver.Secure
	return &resolver.Result{Msg: m, Verdict: v, Reason: map[resolver.Verdict]string{
		resolver.Bogus: "RRSIG expired", resolver.Indeterminate: "no reachable authority", resolver.Insecure: "unsigned delegation",
	}[v]}
}

// txtRRs renders TXT records at name, each split in strings of at most 255 octets.
func txtRRs(name string, txts ...string) []string {
	var out []string
	for _, t := range txts {
		var parts []string
		for len(t) > 255 {
			parts = append(parts, `"`+t[:255]+`"`)
			t = t[255:]
		}
		parts = append(parts, `"`+t+`"`)
		out = append(out, name+" 300 IN TXT "+strings.Join(parts, " "))
	}
	return out
}

const (
	stsTXTName = "_mta-sts.example.test."
	stsURL     = "https://mta-sts.example.test/.well-known/mta-sts.txt"
	stsGood    = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmx: *.mail.example.test\nmax_age: 604800\n"
)

func verdicts(items []Item) []Verdict {
	var out []Verdict
	for _, it := range items {
		out = append(out, it.Verdict)
	}
	return out
}

func itemText(it Item) string {
	return it.Name + "\n" + it.Detail + "\n" + it.Fix + "\n" + strings.Join(it.Evidence, "\n")
}

// checkItems checks the verdicts, the group, that every warning and failure has a fix, and
// that the items' text has each of want.
func checkItems(t *testing.T, items []Item, group string, want []Verdict, contains ...string) {
	t.Helper()
	if got := verdicts(items); !slices.Equal(got, want) {
		t.Fatalf("verdicts %v, want %v; items:\n%s", got, want, dumpItems(items))
	}
	all := ""
	for _, it := range items {
		if it.Group != group {
			t.Errorf("item %q: group %q, want %q", it.Name, it.Group, group)
		}
		if (it.Verdict == Fail || it.Verdict == Warn) && it.Fix == "" {
			t.Errorf("item %q (%s) has no fix", it.Name, it.Verdict)
		}
		all += itemText(it) + "\n"
	}
	for _, c := range contains {
		if !strings.Contains(all, c) {
			t.Errorf("items lack %q:\n%s", c, dumpItems(items))
		}
	}
}

func dumpItems(items []Item) string {
	var b strings.Builder
	for _, it := range items {
		b.WriteString("  [" + string(it.Verdict) + "] " + it.Code + " " + strings.ReplaceAll(itemText(it), "\n", " | ") + "\n")
	}
	return b.String()
}

func TestFetchSTS(t *testing.T) {
	enforce := &STSPolicy{Mode: "enforce", MX: []string{"mx1.example.test", "*.mail.example.test"}, MaxAge: 604800}
	tests := []struct {
		name    string
		txt     []string // TXT records at _mta-sts; nil: NXDOMAIN
		nodata  bool
		verdict resolver.Verdict // of the TXT answer; default Secure
		block   bool             // the resolver never answers
		body    string
		err     error // of the fetch
		hang    bool  // the fetch never answers
		want    []Verdict
		policy  *STSPolicy
		has     []string
	}{
		{name: "NXDOMAIN", want: []Verdict{Info}, has: []string{"no MTA-STS policy", stsTXTName + " TXT: NXDOMAIN"}},
		{name: "NODATA", nodata: true, want: []Verdict{Info}, has: []string{"no MTA-STS policy", "NODATA"}},
		{name: "other TXT only", txt: []string{"v=spf1 -all"}, want: []Verdict{Info}, has: []string{"no MTA-STS policy"}},
		{name: "near miss", txt: []string{"v=STSv1 id=20260101"}, want: []Verdict{Fail}, has: []string{`does not begin with "v=STSv1;"`, "v=STSv1 id=20260101"}},
		{name: "several", txt: []string{"v=STSv1; id=1", "v=STSv1; id=2"}, want: []Verdict{Fail}, has: []string{"2 v=STSv1 records at " + stsTXTName, "keep exactly one"}},
		{name: "no id", txt: []string{"v=STSv1; foo=bar"}, want: []Verdict{Fail}, has: []string{"no id= field"}},
		{name: "id too long", txt: []string{"v=STSv1; id=" + strings.Repeat("a", 33)}, want: []Verdict{Fail}, has: []string{"is not 1 to 32 letters and digits"}},
		{name: "id punctuation", txt: []string{"v=STSv1; id=2026-01-01"}, want: []Verdict{Fail}, has: []string{`id "2026-01-01"`}},
		{name: "empty field", txt: []string{"v=STSv1;; id=1"}, want: []Verdict{Fail}, has: []string{"empty field"}},
		{name: "bogus TXT", txt: []string{"v=STSv1; id=1"}, verdict: resolver.Bogus, want: []Verdict{Fail}, has: []string{"looking up TXT " + stsTXTName + ": bogus: RRSIG expired"}},
		{name: "resolver timeout", block: true, want: []Verdict{Fail}, has: []string{"looking up TXT " + stsTXTName + ": timeout after 50ms"}},
		{name: "enforce", txt: []string{"v=STSv1; id=20260101T000000; ext=1;"}, body: stsGood, want: []Verdict{Pass}, policy: enforce,
			has: []string{stsTXTName + ` TXT "v=STSv1; id=20260101T000000; ext=1;"`, stsURL + ":", "mode: enforce", "mx: *.mail.example.test"}},
		{name: "insecure TXT is fine", txt: []string{"v=STSv1; id=1"}, verdict: resolver.Insecure, body: stsGood, want: []Verdict{Pass}, policy: enforce},
		{name: "TXT in several strings", txt: []string{"v=STSv1; ext=" + strings.Repeat("x", 300) + "; id=abc"}, body: stsGood, want: []Verdict{Pass}, policy: enforce},
		{name: "CRLF, blank line, extension, spaces", txt: []string{"v=STSv1; id=1"},
			body:   "version: STSv1\r\nmode:enforce \r\n\r\nmx: MX1.example.test\r\nextension_1: anything at all\r\nmax_age:\t604800\r\nmx: *.mail.example.test",
			want:   []Verdict{Pass},
			policy: enforce},
		{name: "first of repeated keys", txt: []string{"v=STSv1; id=1"}, body: "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.test\nmax_age: 86400\nmax_age: 1\n",
			want: []Verdict{Info}, policy: &STSPolicy{Mode: "testing", MX: []string{"a.example.test"}, MaxAge: 86400}, has: []string{"mode testing"}},
		{name: "testing", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "enforce", "testing", 1), want: []Verdict{Info},
			policy: &STSPolicy{Mode: "testing", MX: enforce.MX, MaxAge: 604800}, has: []string{"mode testing: senders report failures"}},
		{name: "none without mx", txt: []string{"v=STSv1; id=1"}, body: "version: STSv1\nmode: none\nmax_age: 0\n", want: []Verdict{Info},
			policy: &STSPolicy{Mode: "none", MaxAge: 0}, has: []string{"mode none"}},
		{name: "short max_age", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "604800", "3600", 1), want: []Verdict{Pass, Warn},
			policy: &STSPolicy{Mode: "enforce", MX: enforce.MX, MaxAge: 3600}, has: []string{"max_age 3600 s is under a day", "max_age: 1209600"}},
		{name: "short max_age in testing", txt: []string{"v=STSv1; id=1"}, body: "version: STSv1\nmode: testing\nmx: a.example.test\nmax_age: 60\n", want: []Verdict{Info},
			policy: &STSPolicy{Mode: "testing", MX: []string{"a.example.test"}, MaxAge: 60}},
		{name: "max_age over a year", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "604800", "31557601", 1), want: []Verdict{Fail},
			has: []string{"policy at " + stsURL + ": line 5: max_age \"31557601\""}},
		{name: "max_age negative", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "604800", "-1", 1), want: []Verdict{Fail}, has: []string{"max_age"}},
		{name: "bad mode", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "enforce", "Enforce", 1), want: []Verdict{Fail}, has: []string{`mode "Enforce" is not enforce, testing or none`}},
		{name: "bad version", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "STSv1", "STSv2", 1), want: []Verdict{Fail}, has: []string{`version "STSv2"`}},
		{name: "no version", txt: []string{"v=STSv1; id=1"}, body: strings.Replace(stsGood, "version: STSv1\n", "", 1), want: []Verdict{Fail}, has: []string{"no version: line"}},
		{name: "no mx in enforce", txt: []string{"v=STSv1; id=1"}, body: "version: STSv1\nmode: enforce\nmax_age: 86400\n", want: []Verdict{Fail}, has: []string{"no mx: line in mode enforce"}},
		{name: "double wildcard", txt: []string{"v=STSv1; id=1"}, body: stsGood + "mx: *.*.example.test\n", want: []Verdict{Fail}, has: []string{`mx "*.*.example.test" is not a host name`}},
		{name: "underscore in mx", txt: []string{"v=STSv1; id=1"}, body: stsGood + "mx: mail_1.example.test\n", want: []Verdict{Fail}, has: []string{"mail_1.example.test"}},
		{name: "trailing dot in mx", txt: []string{"v=STSv1; id=1"}, body: stsGood + "mx: mx2.example.test.\n", want: []Verdict{Fail}, has: []string{"ends with a dot"}},
		{name: "not key: value", txt: []string{"v=STSv1; id=1"}, body: "<html>\n", want: []Verdict{Fail}, has: []string{`line 1 "<html>" is not "key: value"`}},
		{name: "empty policy", txt: []string{"v=STSv1; id=1"}, body: "\n", want: []Verdict{Fail}, has: []string{"empty policy"}},
		{name: "over 64 KB", txt: []string{"v=STSv1; id=1"}, body: stsGood + strings.Repeat("x: y\n", 14000), want: []Verdict{Fail}, has: []string{"over 64 KB", "under 64 KB"}},
		{name: "fetch error", txt: []string{"v=STSv1; id=1"}, err: errors.New("connection refused"), want: []Verdict{Fail},
			has: []string{"fetching " + stsURL + ": connection refused", "over HTTPS with a publicly trusted certificate for mta-sts.example.test"}},
		{name: "fetch timeout", txt: []string{"v=STSv1; id=1"}, hang: true, want: []Verdict{Fail},
			has: []string{"fetching " + stsURL + ": timeout after 50ms", "answer HTTPS on port 443"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &stsResolver{block: tc.block}
			v := tc.verdict
			if v == 0 {
				v = resolver.Secure
			}
			if tc.txt != nil || tc.nodata {
				r.set(stsTXTName, dns.TypeTXT, v, dns.RcodeSuccess, txtRRs(stsTXTName, tc.txt...)...)
			}
			var fetched []string
			cfg := Config{Resolver: r, Timeout: 50 * time.Millisecond,
				HTTPS: func(ctx context.Context, u string) ([]byte, error) {
					fetched = append(fetched, u)
					if tc.hang {
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return []byte(tc.body), tc.err
				}}
			p, items := fetchSTS(context.Background(), cfg, "Example.TEST.")
			checkItems(t, items, "mta-sts", tc.want, tc.has...)
			if tc.policy == nil && p != nil || tc.policy != nil && (p == nil || p.Mode != tc.policy.Mode || p.MaxAge != tc.policy.MaxAge || !slices.Equal(p.MX, tc.policy.MX)) {
				t.Errorf("policy %+v, want %+v", p, tc.policy)
			}
			if len(fetched) > 0 && fetched[0] != stsURL {
				t.Errorf("fetched %q, want %q", fetched[0], stsURL)
			}
		})
	}
}

func TestSTSMatch(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mx1.example.test", "mx1.example.test", true},
		{"mx1.example.test", "MX1.Example.Test.", true},
		{"mx1.example.test", "mx2.example.test", false},
		{"*.example.test", "mx1.example.test", true},
		{"*.example.test", "mx1.example.test.", true},
		{"*.example.test", "example.test", false},       // §4.1: exactly one label
		{"*.example.test", "a.mx1.example.test", false}, // not two
		{"*.example.test", ".example.test", false},
		{"*.Example.Test", "mx.example.test", true},
		{"example.test", "mx.example.test", false},
	}
	for _, tc := range tests {
		if got := stsMatch(tc.pattern, tc.host); got != tc.want {
			t.Errorf("stsMatch(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}

func TestCheckSTSMX(t *testing.T) {
	pats := []string{"mx1.example.test", "*.mail.example.test"}
	tests := []struct {
		name  string
		p     *STSPolicy
		hosts []string
		want  []Verdict
		has   []string
	}{
		{name: "no policy", hosts: []string{"mx1.example.test."}},
		{name: "mode none", p: &STSPolicy{Mode: "none"}, hosts: []string{"mx1.example.test."}},
		{name: "all listed", p: &STSPolicy{Mode: "enforce", MX: pats}, hosts: []string{"MX1.example.test.", "a.mail.example.test"},
			want: []Verdict{Pass}, has: []string{"mx1.example.test matches mx: mx1.example.test", "a.mail.example.test matches mx: *.mail.example.test"}},
		{name: "enforce, one missing", p: &STSPolicy{Mode: "enforce", MX: pats}, hosts: []string{"mx1.example.test.", "mx2.example.test.", "a.b.mail.example.test"},
			want: []Verdict{Fail, Fail},
			has: []string{"mail to mx2.example.test would not be delivered by MTA-STS senders: add `mx: mx2.example.test` to the policy",
				"add `mx: a.b.mail.example.test`", "change the id of the _mta-sts TXT record"}},
		{name: "testing, one missing", p: &STSPolicy{Mode: "testing", MX: pats}, hosts: []string{"mx2.example.test"},
			want: []Verdict{Warn}, has: []string{"mx2.example.test matches no mx of the policy", "add `mx: mx2.example.test`"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkItems(t, checkSTSMX(tc.p, tc.hosts), "mta-sts", tc.want, tc.has...)
		})
	}
}

// stsTestServer starts an HTTPS server with a certificate for names from a CA of its own; it
// returns the server and a pool with the CA.
func stsTestServer(t *testing.T, names []string, h http.HandlerFunc) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "danelab test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return srv, pool
}

// TestSTSDefaultFetch runs fetchSTS with the default HTTPS client against a local server: the
// host's address comes from the resolver and the dialer sends it to the server.
func TestSTSDefaultFetch(t *testing.T) {
	policy := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(stsGood))
	}
	tests := []struct {
		name      string
		certNames []string
		handler   http.HandlerFunc
		systemCAs bool          // validate with the system roots instead of the test CA
		noAddr    bool          // mta-sts.example.test has no address
		timeout   time.Duration // the check's timeout; 5 s when zero
		want      []Verdict
		has       []string
	}{
		{name: "valid", handler: policy, want: []Verdict{Pass}, has: []string{"mode: enforce"}},
		{name: "wildcard certificate", certNames: []string{"*.example.test"}, handler: policy, want: []Verdict{Pass}},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://www.example.test/mta-sts.txt", http.StatusMovedPermanently)
		}, want: []Verdict{Fail}, has: []string{"fetching " + stsURL + ": HTTP 301 Moved Permanently redirecting to", "senders do not follow redirects (RFC 8461 §3.3)"}},
		{name: "not found", handler: http.NotFound, want: []Verdict{Fail}, has: []string{"HTTP 404 Not Found, not 200", "with status 200"}},
		{name: "HTML", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(stsGood))
		}, want: []Verdict{Fail}, has: []string{`Content-Type "text/html", not text/plain`, "as text/plain"}},
		{name: "over 64 KB", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(stsGood + strings.Repeat("x: y\n", 14000)))
		}, want: []Verdict{Fail}, has: []string{"over 64 KB"}},
		{name: "certificate for another name", certNames: []string{"www.example.test"}, handler: policy, want: []Verdict{Fail},
			has: []string{"fetching " + stsURL + ": tls: failed to verify certificate", "mta-sts.example.test", "serve a certificate for mta-sts.example.test"}},
		{name: "system roots", handler: policy, systemCAs: true, want: []Verdict{Fail},
			has: []string{"certificate signed by unknown authority", "chains to a public root"}},
		{name: "slow", handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, timeout: 300 * time.Millisecond, want: []Verdict{Fail}, has: []string{"fetching " + stsURL + ": timeout after 300ms"}},
		{name: "no address", handler: policy, noAddr: true, want: []Verdict{Fail}, has: []string{"mta-sts.example.test has no A or AAAA record"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names := tc.certNames
			if names == nil {
				names = []string{"mta-sts.example.test"}
			}
			srv, pool := stsTestServer(t, names, tc.handler)
			if tc.systemCAs {
				pool = nil
			}
			r := (&stsResolver{}).set(stsTXTName, dns.TypeTXT, resolver.Secure, dns.RcodeSuccess, txtRRs(stsTXTName, "v=STSv1; id=1")...)
			if !tc.noAddr {
				r.set("mta-sts.example.test", dns.TypeA, resolver.Insecure, dns.RcodeSuccess, "mta-sts.example.test. 300 IN A 192.0.2.80")
				r.set("mta-sts.example.test", dns.TypeAAAA, resolver.Insecure, dns.RcodeSuccess)
			}
			var mu sync.Mutex
			var dialed []string
			// A generous timeout but for the case about it: a TLS handshake with a test
			// server took longer than 300 ms on a loaded CI machine.
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			cfg := Config{Resolver: r, Timeout: timeout,
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					dialed = append(dialed, addr)
					mu.Unlock()
					var d net.Dialer
					return d.DialContext(ctx, network, srv.Listener.Addr().String())
				}}
			_, items := fetchSTSRoots(context.Background(), cfg, "example.test", pool)
			checkItems(t, items, "mta-sts", tc.want, tc.has...)
			mu.Lock()
			defer mu.Unlock()
			if !tc.noAddr && (len(dialed) == 0 || dialed[0] != "192.0.2.80:443") {
				t.Errorf("dialed %v, want 192.0.2.80:443 first", dialed)
			}
		})
	}
}

package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	day1 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	day2 = day1.Add(24 * time.Hour)
)

func sampleAttempts() []Attempt {
	tlsa := []string{"3 1 1 0a0b", "3 1 1 0c0d"}
	base := Attempt{PolicyDomain: "Example.TEST.", PolicyType: PolicyTLSA, PolicyString: tlsa,
		MXHost: "mx1.example.test.", SendingMTAIP: "127.0.0.2", ReceivingIP: "127.0.0.11",
		ReceivingMXHelo: "mx1.example.test"}
	var out []Attempt
	add := func(at time.Time, mod func(*Attempt)) {
		a := base
		a.Time = at
		mod(&a)
		out = append(out, a)
	}
	for i := range 3 {
		add(day1.Add(time.Duration(i)*time.Hour), func(a *Attempt) { a.Result = Success })
	}
	for i := range 2 {
		add(day1.Add(time.Duration(8+i)*time.Hour), func(a *Attempt) {
			a.Result, a.FailureDetail = ResultTLSAInvalid, "no TLSA record matches the certificate"
			a.AdditionalInformation = "https://lab.example/info#tlsa"
		})
	}
	add(day1.Add(23*time.Hour+59*time.Minute+59*time.Second), func(a *Attempt) {
		a.MXHost, a.ReceivingIP, a.ReceivingMXHelo = "mx2.example.test", "::1", "mx2"
		a.PolicyString = []string{"2 1 1 beef"}
		a.Result = ResultSTARTTLSNotSupported
	})
	add(day1.Add(12*time.Hour), func(a *Attempt) { a.Result = ResultCertificateExpired })
	// Another domain the first day, in a time zone other than UTC.
	add(day1.Add(10*time.Hour).In(time.FixedZone("X", -5*3600)), func(a *Attempt) {
		a.PolicyDomain, a.MXHost = "other.test", "mx.other.test"
		a.Result = Success
	})
	// Day 2.
	add(day2.Add(time.Minute), func(a *Attempt) {
		a.PolicyType, a.PolicyString, a.MXHost = PolicyNoPolicyFound, nil, "mx3.example.test"
		a.Result = Success
	})
	add(day2.Add(2*time.Hour), func(a *Attempt) {
		a.Result, a.FailureDetail = ResultDNSSECInvalid, "TLSA lookup: SERVFAIL"
	})
	return out
}

// checkSchema validates a report's JSON against the RFC 8460 §4.4 field definitions, on the
// decoded generic JSON (independent of the Report types).
func checkSchema(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	str := func(m map[string]any, k string, required bool) (string, bool) {
		v, ok := m[k]
		if !ok {
			if required {
				t.Errorf("missing %q in %v", k, m)
			}
			return "", false
		}
		s, ok := v.(string)
		if !ok || (required && s == "") {
			t.Errorf("%q must be a non-empty string: %#v", k, v)
		}
		return s, ok
	}
	obj := func(v any, what string) map[string]any {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s must be an object: %#v", what, v)
		}
		return m
	}
	arr := func(v any, what string) []any {
		a, ok := v.([]any)
		if !ok {
			t.Fatalf("%s must be an array: %#v", what, v)
		}
		return a
	}
	count := func(m map[string]any, k string, minimum float64) float64 {
		n, ok := m[k].(float64)
		if !ok || n != math.Trunc(n) || n < minimum {
			t.Errorf("%q must be an integer >= %v: %#v", k, minimum, m[k])
		}
		return n
	}
	for _, k := range []string{"organization-name", "contact-info", "report-id"} {
		str(doc, k, true)
	}
	dr := obj(doc["date-range"], "date-range")
	s, _ := str(dr, "start-datetime", true)
	e, _ := str(dr, "end-datetime", true)
	start, err1 := time.Parse(time.RFC3339, s)
	end, err2 := time.Parse(time.RFC3339, e)
	if err1 != nil || err2 != nil || !start.Before(end) {
		t.Errorf("date-range %q..%q not RFC 3339 or not increasing", s, e)
	}
	pols := arr(doc["policies"], "policies")
	if len(pols) == 0 {
		t.Error("no policies")
	}
	resultTypes := map[string]bool{"starttls-not-supported": true, "certificate-host-mismatch": true,
		"certificate-expired": true, "certificate-not-trusted": true, "validation-failure": true,
		"tlsa-invalid": true, "dnssec-invalid": true, "dane-required": true,
		"sts-policy-fetch-error": true, "sts-policy-invalid": true, "sts-webpki-invalid": true}
	hostname := regexp.MustCompile(`^([a-z0-9*]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	for _, pv := range pols {
		pr := obj(pv, "policies[]")
		p := obj(pr["policy"], "policy")
		typ, _ := str(p, "policy-type", true)
		if typ != "tlsa" && typ != "sts" && typ != "no-policy-found" {
			t.Errorf("policy-type %q", typ)
		}
		dom, _ := str(p, "policy-domain", true)
		if !hostname.MatchString(dom) {
			t.Errorf("policy-domain %q", dom)
		}
		if v, ok := p["policy-string"]; ok || typ != "no-policy-found" {
			ps := arr(v, "policy-string")
			if len(ps) == 0 && typ != "no-policy-found" {
				t.Errorf("policy-string empty for %s", typ)
			}
			for _, x := range ps {
				if _, ok := x.(string); !ok {
					t.Errorf("policy-string element %#v", x)
				}
			}
		}
		if v, ok := p["mx-host"]; ok {
			for _, x := range arr(v, "mx-host") {
				if h, ok := x.(string); !ok || !hostname.MatchString(h) {
					t.Errorf("mx-host element %#v", x)
				}
			}
		}
		sum := obj(pr["summary"], "summary")
		count(sum, "total-successful-session-count", 0)
		failures := count(sum, "total-failure-session-count", 0)
		var failed float64
		if v, ok := pr["failure-details"]; ok {
			for _, fv := range arr(v, "failure-details") {
				f := obj(fv, "failure-details[]")
				rt, _ := str(f, "result-type", true)
				if !resultTypes[rt] {
					t.Errorf("result-type %q not in the RFC 8460 registry", rt)
				}
				failed += count(f, "failed-session-count", 1)
				for _, k := range []string{"sending-mta-ip", "receiving-ip"} {
					if ip, ok := str(f, k, false); ok && net.ParseIP(ip) == nil {
						t.Errorf("%s %q is not an IP address", k, ip)
					}
				}
				if h, ok := str(f, "receiving-mx-hostname", false); ok && !hostname.MatchString(h) {
					t.Errorf("receiving-mx-hostname %q", h)
				}
				str(f, "receiving-mx-helo", false)
				str(f, "failure-reason-code", false)
				if u, ok := str(f, "additional-information", false); ok {
					if pu, err := url.Parse(u); err != nil || !pu.IsAbs() {
						t.Errorf("additional-information %q is not a URI", u)
					}
				}
			}
		}
		if failed != failures {
			t.Errorf("failure-details count %v != total-failure-session-count %v", failed, failures)
		}
	}
	return doc
}

func TestBuildTwoDays(t *testing.T) {
	reps := Build("danelab", "mailto:tlsrpt@mta.sender.test", "lab-1", time.Time{}, sampleAttempts())
	if len(reps) != 3 {
		t.Fatalf("%d reports", len(reps))
	}
	// Sorted by day then domain: example.test day 1, other.test day 1, example.test day 2.
	if reps[0].PolicyDomain() != "example.test" || reps[1].PolicyDomain() != "other.test" ||
		reps[2].PolicyDomain() != "example.test" || !reps[2].DateRange.Start.Equal(day2) {
		t.Fatalf("report order: %+v", reps)
	}
	ids := map[string]bool{}
	for i := range reps {
		raw, err := reps[i].JSON()
		if err != nil {
			t.Fatal(err)
		}
		doc := checkSchema(t, raw)
		dr := doc["date-range"].(map[string]any)
		if i != 2 && (dr["start-datetime"] != "2026-03-02T00:00:00Z" || dr["end-datetime"] != "2026-03-02T23:59:59Z") {
			t.Errorf("date-range %v", dr)
		}
		ids[reps[i].ReportID] = true
	}
	if len(ids) != 3 {
		t.Errorf("report ids not unique: %v", ids)
	}
	r := reps[0]
	if len(r.Policies) != 2 {
		t.Fatalf("policies %+v", r.Policies)
	}
	p := r.Policies[0]
	if p.Policy.Type != "tlsa" || p.Policy.MXHost[0] != "mx1.example.test" || p.Policy.Domain != "example.test" ||
		p.Summary != (Summary{Successful: 3, Failure: 3}) || len(p.FailureDetails) != 2 {
		t.Fatalf("mx1 policy %+v", p)
	}
	f := p.FailureDetails[0]
	if f.ResultType != "tlsa-invalid" || f.FailedSessionCount != 2 || f.ReceivingIP != "127.0.0.11" ||
		f.FailureReasonCode != "no TLSA record matches the certificate" || f.AdditionalInformation != "https://lab.example/info#tlsa" {
		t.Fatalf("failure detail %+v", f)
	}
	if q := r.Policies[1]; q.Policy.MXHost[0] != "mx2.example.test" || q.Summary.Failure != 1 || q.FailureDetails[0].ResultType != "starttls-not-supported" {
		t.Fatalf("mx2 policy %+v", q)
	}
	d2 := reps[2]
	if len(d2.Policies) != 2 || d2.Policies[0].Policy.Type != "no-policy-found" || d2.Policies[0].Policy.String != nil ||
		d2.Policies[1].FailureDetails[0].ResultType != "dnssec-invalid" {
		t.Fatalf("day 2 %+v", d2)
	}
	// A chosen day.
	only := Build("danelab", "mailto:tlsrpt@mta.sender.test", "lab-1", day2.Add(5*time.Hour), sampleAttempts())
	if len(only) != 1 || !only[0].DateRange.Start.Equal(day2) {
		t.Fatalf("day filter: %+v", only)
	}
}

func TestEncodeRoundTripAndFilename(t *testing.T) {
	r := Build("danelab", "mailto:tlsrpt@MTA.sender.test", "lab-1", day1, sampleAttempts())[0]
	gz, err := Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	checkSchema(t, raw)
	back, err := Decode(gz)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.JSON()
	got, _ := back.JSON()
	if !bytes.Equal(want, got) {
		t.Fatalf("round trip:\n%s\n%s", want, got)
	}
	if _, err := Decode([]byte("{")); err == nil {
		t.Error("bad JSON decoded")
	}
	wantName := fmt.Sprintf("mta.sender.test!example.test!%d!%d!x1.json.gz", day1.Unix(), day1.Unix()+86399)
	if n := r.Filename("x-1"); n != wantName {
		t.Errorf("filename %q, want %q", n, wantName)
	}
	if !strings.HasSuffix(r.Filename(""), "!1772495999.json.gz") {
		t.Errorf("filename without id %q", r.Filename(""))
	}
	if s := (&Report{ContactInfo: "ops@lab.test"}).Sender(); s != "lab.test" {
		t.Errorf("sender %q", s)
	}
	if s := (&Report{ContactInfo: "call us", OrganizationName: "lab.org"}).Sender(); s != "lab.org" {
		t.Errorf("sender %q", s)
	}
}

func TestParseRecord(t *testing.T) {
	good := []struct {
		txt  string
		rua  []string
		ext  map[string]string
		skip int
	}{
		{"v=TLSRPTv1; rua=mailto:reports@example.test", []string{"mailto:reports@example.test"}, nil, 0},
		{"v=TLSRPTv1;rua=mailto:a@example.test,https://rpt.example.test/v1/tlsrpt;",
			[]string{"mailto:a@example.test", "https://rpt.example.test/v1/tlsrpt"}, nil, 0},
		{"v=TLSRPTv1 ; rua=https://r.example.test/x , mailto:b@example.test%2Cc@example.test; ext_1=val",
			[]string{"https://r.example.test/x", "mailto:b@example.test%2Cc@example.test"}, map[string]string{"ext_1": "val"}, 0},
		{"v=TLSRPTv1; rua=ftp://x.example.test/r,mailto:a@example.test", []string{"mailto:a@example.test"}, nil, 1},
	}
	for _, g := range good {
		rec, err := ParseRecord(g.txt)
		if err != nil {
			t.Errorf("%q: %v", g.txt, err)
			continue
		}
		if fmt.Sprint(rec.RUA) != fmt.Sprint(g.rua) || len(rec.Ignored) != g.skip || fmt.Sprint(rec.Extensions) != fmt.Sprint(map[string]string(g.ext)) {
			t.Errorf("%q: %+v", g.txt, rec)
		}
	}
	bad := []string{
		"", "v=TLSRPTv2; rua=mailto:a@example.test", "v=tlsrptv1; rua=mailto:a@example.test",
		"rua=mailto:a@example.test; v=TLSRPTv1", "v=TLSRPTv1", "v=TLSRPTv1;", "v=TLSRPTv1; ext=1",
		"v=TLSRPTv1; rua=mailto:", "v=TLSRPTv1; rua=mailto:not an address", "v=TLSRPTv1; rua=https:///path",
		"v=TLSRPTv1; rua=ftp://only.example.test/", "v=TLSRPTv1; rua=mailto:a@example.test; rua=mailto:b@example.test",
		"v=TLSRPTv1; rua=mailto:a@example.test;; x=1", "v=TLSRPTv1; rua=nonsense", "v=TLSRPTv1; rua=mailto:a@example.test; bad name=1",
		"v=TLSRPTv1; rua=mailto:a@example.test; v=TLSRPTv1",
	}
	for _, b := range bad {
		if rec, err := ParseRecord(b); err == nil {
			t.Errorf("%q accepted: %+v", b, rec)
		}
	}
	if rec, err := SelectRecord([]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.test"}); err != nil || len(rec.RUA) != 1 {
		t.Errorf("select: %+v %v", rec, err)
	}
	for _, set := range [][]string{nil, {"v=spf1 -all"}, {"v=TLSRPTv1; rua=mailto:a@x.test", "v=TLSRPTv1;rua=mailto:b@x.test"}, {"v=TLSRPTv10; rua=mailto:a@x.test"}} {
		if _, err := SelectRecord(set); err == nil {
			t.Errorf("select %q accepted", set)
		}
	}
}

func TestDeliverHTTPS(t *testing.T) {
	r := Build("danelab", "mailto:tlsrpt@mta.sender.test", "lab-1", day1, sampleAttempts())[0]
	want, _ := r.JSON()
	var mu sync.Mutex
	var got []byte
	var method, ctype string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		method, ctype = req.Method, req.Header.Get("Content-Type")
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got, _ = io.ReadAll(zr)
		if req.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-client case below logs a handshake error
	srv.StartTLS()
	defer srv.Close()
	if err := Deliver(context.Background(), &r, []string{srv.URL + "/v1/tlsrpt"}, nil, srv.Client()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if method != http.MethodPost || ctype != "application/tlsrpt+gzip" || !bytes.Equal(got, want) {
		t.Fatalf("%s %s %s", method, ctype, got)
	}
	mu.Unlock()
	checkSchema(t, got)
	if err := Deliver(context.Background(), &r, []string{srv.URL + "/fail"}, nil, srv.Client()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("failure not reported: %v", err)
	}
	// Without the test CA the lab endpoint is not trusted.
	if err := Deliver(context.Background(), &r, []string{srv.URL}, nil, &http.Client{Timeout: 5 * time.Second}); err == nil {
		t.Fatal("untrusted https accepted")
	}
}

func TestDeliverMailto(t *testing.T) {
	r := Build("danelab", "mailto:tlsrpt@mta.sender.test", "lab-1", day1, sampleAttempts())[0]
	want, _ := r.JSON()
	type sent struct {
		to  string
		msg []byte
	}
	var box []sent
	mailer := func(to string, msg []byte) error {
		box = append(box, sent{to, msg})
		return nil
	}
	rua := []string{"mailto:tls-reports@example.test", "mailto:a@example.test%2Cb@example.test"}
	if err := Deliver(context.Background(), &r, rua, mailer, nil); err != nil {
		t.Fatal(err)
	}
	if len(box) != 3 || box[0].to != "tls-reports@example.test" || box[2].to != "b@example.test" {
		t.Fatalf("sent %v", box)
	}
	m, err := mail.ReadMessage(bytes.NewReader(box[0].msg))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	wantSubj := "Report Domain: example.test Submitter: mta.sender.test Report-ID: <" + r.ReportID + ">"
	if h.Get("Subject") != wantSubj || h.Get("TLS-Report-Domain") != "example.test" ||
		h.Get("TLS-Report-Submitter") != "mta.sender.test" || h.Get("MIME-Version") != "1.0" {
		t.Fatalf("headers %v", h)
	}
	if to, err := mail.ParseAddress(h.Get("To")); err != nil || to.Address != "tls-reports@example.test" {
		t.Fatalf("To %q", h.Get("To"))
	}
	if _, err := mail.ParseDate(h.Get("Date")); err != nil {
		t.Fatalf("Date %q", h.Get("Date"))
	}
	if !strings.Contains(h.Get("Content-Type"), `report-type="tlsrpt"`) {
		t.Errorf("content type %q", h.Get("Content-Type"))
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("content type %q", h.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	text, err := mr.NextPart()
	if err != nil || !strings.HasPrefix(text.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("first part %v %v", text, err)
	}
	att, err := mr.NextPart()
	if err != nil {
		t.Fatal(err)
	}
	if att.Header.Get("Content-Type") != "application/tlsrpt+gzip" || att.Header.Get("Content-Transfer-Encoding") != "base64" {
		t.Fatalf("attachment header %v", att.Header)
	}
	disp, dp, err := mime.ParseMediaType(att.Header.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || dp["filename"] != r.Filename("") || att.FileName() != r.Filename("") {
		t.Fatalf("disposition %q", att.Header.Get("Content-Disposition"))
	}
	b64, _ := io.ReadAll(att)
	gz, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b64)), ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b64), "\r\n") {
		if len(line) > 76 {
			t.Fatalf("base64 line of %d characters", len(line))
		}
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, want) {
		t.Fatalf("attachment %s", got)
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("extra part: %v", err)
	}
	// Errors are reported per URI, and the other URIs are still served.
	box = nil
	failing := func(to string, msg []byte) error {
		if to == "a@example.test" {
			return fmt.Errorf("452 mailbox full")
		}
		return mailer(to, msg)
	}
	err = Deliver(context.Background(), &r, append(rua, "ftp://x.example.test/"), failing, nil)
	if err == nil || !strings.Contains(err.Error(), "mailbox full") || !strings.Contains(err.Error(), "unsupported") || len(box) != 2 {
		t.Fatalf("err %v, %d sent", err, len(box))
	}
	if err := Deliver(context.Background(), &r, rua[:1], nil, nil); err == nil {
		t.Fatal("mailto without a mail function accepted")
	}
}

package danezone

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/danelab/danelab/plugin/danezone/control"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/miekg/dns"
)

func newControl(t *testing.T, token string) (*DaneZone, *httptest.Server) {
	d, _ := newTestZone(t, denial.NSEC)
	d.history = control.NewHistory(100)
	s := control.NewServer(control.Backend{Faults: d.faults, Records: d, History: d.history, Token: token})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return d, ts
}

func call(t *testing.T, ts *httptest.Server, method, path, body, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func query(t *testing.T, d *DaneZone, name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	return serve(t, d, m)
}

func TestControlFaults(t *testing.T) {
	d, ts := newControl(t, "")
	if code, body := call(t, ts, "GET", "/health", "", ""); code != 200 || !strings.Contains(body, `"example.test.": 2026112201`) {
		t.Fatalf("health: %d %s", code, body)
	}
	code, body := call(t, ts, "POST", "/faults", `{"mode":"servfail","name":"_25._tcp.mx1.example.test","type":"TLSA","count":1}`, "")
	if code != 201 || !strings.Contains(body, `"id": "1"`) {
		t.Fatalf("add: %d %s", code, body)
	}
	if r := query(t, d, "_25._tcp.mx1.example.test.", dns.TypeTLSA); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("first TLSA query: %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, d, "_25._tcp.mx1.example.test.", dns.TypeTLSA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
		t.Fatalf("second TLSA query should have healed: %s", r)
	}
	var views []map[string]any
	_, body = call(t, ts, "GET", "/faults", "", "")
	json.Unmarshal([]byte(body), &views)
	if len(views) != 1 || views[0]["applied"].(float64) != 1 || views[0]["active"].(bool) {
		t.Fatalf("list: %s", body)
	}
	if code, _ := call(t, ts, "DELETE", "/faults/1", "", ""); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, body := call(t, ts, "DELETE", "/faults/1", "", ""); code != 404 || !strings.Contains(body, `no fault with id \"1\"`) {
		t.Fatalf("delete again: %d %s", code, body)
	}
	for _, tc := range []struct{ body, err string }{
		{`{"mode":"explode","name":"x"}`, "valid modes are servfail"},
		{`{"mode":"servfail"}`, "name is required"},
		{`{"mode":"servfail","name":"x","colour":"red"}`, `unknown field \"colour\"`},
		{`not json`, "bad JSON"},
		{``, "empty body"},
		{`{"mode":"delay","name":"x","delay":"soon"}`, "invalid duration"},
	} {
		if code, body := call(t, ts, "POST", "/faults", tc.body, ""); code != 400 || !strings.Contains(body, tc.err) {
			t.Errorf("%s: want 400 %q, got %d %s", tc.body, tc.err, code, body)
		}
	}
	if code, body := call(t, ts, "GET", "/faults/modes", "", ""); code != 200 || !strings.Contains(body, "tlsa-mismatch") {
		t.Errorf("modes: %d %s", code, body)
	}
	// DELETE /faults removes them all; DELETE /history forgets the questions.
	call(t, ts, "POST", "/faults", `{"mode":"refused","name":"*"}`, "")
	call(t, ts, "POST", "/faults", `{"mode":"servfail","name":"*"}`, "")
	if code, _ := call(t, ts, "DELETE", "/faults", "", ""); code != 204 {
		t.Fatalf("delete all: %d", code)
	}
	if _, body := call(t, ts, "GET", "/faults", "", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("faults left: %s", body)
	}
	if r := query(t, d, "mx1.example.test.", dns.TypeA); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("fault still applied: %s", dns.RcodeToString[r.Rcode])
	}
	if _, body := call(t, ts, "GET", "/history", "", ""); !strings.Contains(body, `"mx1.example.test."`) {
		t.Fatalf("history lacks the query: %s", body)
	}
	if code, _ := call(t, ts, "DELETE", "/history", "", ""); code != 204 {
		t.Fatalf("delete history: %d", code)
	}
	if _, body := call(t, ts, "GET", "/history", "", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("history not forgotten: %s", body)
	}
	if code, body := call(t, ts, "GET", "/tlsa", "", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("tlsa without trackers: %d %s", code, body)
	}
}

// TestControlFaultDurations: a fault's after, for and delay, as a string or a number of
// seconds, are refused with 400 when negative, not finite, beyond a time.Duration, or beyond
// what the field means; nothing is registered.
func TestControlFaultDurations(t *testing.T) {
	_, ts := newControl(t, "")
	for _, tc := range []struct{ body, err string }{
		{`{"mode":"servfail","name":"x","after":-60}`, "after: invalid duration -60 seconds: negative"},
		{`{"mode":"servfail","name":"x","after":1e300}`, "after: invalid duration 1e300 seconds: out of range"},
		{`{"mode":"servfail","name":"x","after":"200000d"}`, `after: invalid duration \"200000d\": out of range`},
		{`{"mode":"servfail","name":"x","for":-1}`, "for: invalid duration -1 seconds: negative"},
		{`{"mode":"servfail","name":"x","for":1e400}`, "for: invalid duration 1e400 seconds: out of range"},
		{`{"mode":"servfail","name":"x","for":"200000d"}`, `for: invalid duration \"200000d\": out of range`},
		{`{"mode":"servfail","name":"x","for":"-5m"}`, "negative"},
		{`{"mode":"servfail","name":"x","for":"400d"}`, "for 400d is too long (at most 365d)"},
		{`{"mode":"servfail","name":"x","after":31622400}`, "after 366d is too long (at most 365d)"},
		{`{"mode":"delay","name":"x","delay":-0.5}`, "delay: invalid duration -0.5 seconds: negative"},
		{`{"mode":"delay","name":"x","delay":1e300}`, "delay: invalid duration 1e300 seconds: out of range"},
		{`{"mode":"delay","name":"x","delay":"9999999h"}`, `delay: invalid duration \"9999999h\": out of range`},
		{`{"mode":"delay","name":"x","delay":3600}`, "delay 1h is too long (at most 1m)"},
		{`{"mode":"delay","name":"x","delay":true}`, "a number of seconds"},
	} {
		if code, body := call(t, ts, "POST", "/faults", tc.body, ""); code != 400 || !strings.Contains(body, tc.err) {
			t.Errorf("%s: want 400 %q, got %d %s", tc.body, tc.err, code, body)
		}
	}
	if _, body := call(t, ts, "GET", "/faults", "", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("a refused fault was registered: %s", body)
	}
	for _, body := range []string{
		`{"mode":"servfail","name":"x","after":30,"for":"365d"}`,
		`{"mode":"delay","name":"x","delay":0.25}`,
		`{"mode":"delay","name":"x","delay":"1m","after":"0s"}`,
	} {
		if code, resp := call(t, ts, "POST", "/faults", body, ""); code != 201 {
			t.Errorf("%s: want 201, got %d %s", body, code, resp)
		}
	}
}

func TestControlRecordsAndHistory(t *testing.T) {
	d, ts := newControl(t, "")
	tlsa := `_25._tcp.mx9.example.test. 300 IN TLSA 3 1 1 0102030405060708091011121314151617181920212223242526272829303132`
	if code, body := call(t, ts, "POST", "/records", `{"records":["`+tlsa+`"]}`, ""); code != 200 {
		t.Fatalf("add: %d %s", code, body)
	}
	r := query(t, d, "_25._tcp.mx9.example.test.", dns.TypeTLSA)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.TLSA).Certificate != "0102030405060708091011121314151617181920212223242526272829303132" {
		t.Fatalf("added TLSA not served signed: %v", r.Answer)
	}
	q := new(dns.Msg)
	q.SetQuestion("_25._tcp.mx9.example.test.", dns.TypeTLSA)
	q.SetEdns0(1232, true)
	judge(t, d, modelAfter(t, d), q, r)
	repl := strings.Replace(tlsa, "3 1 1 01", "3 1 1 ff", 1)
	if code, body := call(t, ts, "PUT", "/records", `{"records":["`+repl+`"]}`, ""); code != 200 {
		t.Fatalf("replace: %d %s", code, body)
	}
	if r := query(t, d, "_25._tcp.mx9.example.test.", dns.TypeTLSA); len(r.Answer) != 2 || !strings.HasPrefix(r.Answer[0].(*dns.TLSA).Certificate, "ff") {
		t.Fatalf("replaced TLSA: %v", r.Answer)
	}
	// The change survives a reload of the zone file.
	sz := d.zones.Load().byName["example.test."]
	sz.stamp = fileStamp{}
	if err := sz.reload(); err != nil {
		t.Fatal(err)
	}
	if r := query(t, d, "_25._tcp.mx9.example.test.", dns.TypeTLSA); len(r.Answer) != 2 {
		t.Fatal("runtime record lost on reload")
	}
	if code, body := call(t, ts, "DELETE", "/records", `{"name":"_25._tcp.mx9.example.test","type":"TLSA"}`, ""); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if r := query(t, d, "_25._tcp.mx9.example.test.", dns.TypeTLSA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("removed TLSA: %s", dns.RcodeToString[r.Rcode])
	}
	for _, tc := range []struct{ method, body, err string }{
		{"POST", `{"records":["www.example.test. 300 IN CNAME mx1.example.test."]}`, ""},
		{"POST", `{"records":["www.example.test. 300 IN A 127.0.0.1"]}`, "CNAME and other data"},
		{"POST", `{"records":["www.other.test. 300 IN A 127.0.0.1"]}`, "in no zone served here"},
		{"POST", `{"records":["x.example.test. 300 IN RRSIG A 13 3 300 20261201000000 20261101000000 1 example.test. AAAA"]}`, "generated by danezone"},
		{"POST", `{"records":["x.example.test. 300 IN A"]}`, "records[0]"},
		{"POST", `{"records":[]}`, "records is required"},
		{"PUT", `{"name":"x.example.test"}`, "type is required"},
		{"DELETE", `{"name":"example.test","type":"SOA"}`, "must keep its SOA"},
		{"PUT", `{"records":["x.example.test. 300 IN A 127.0.0.1"],"type":"TXT"}`, "is not"},
	} {
		code, body := call(t, ts, tc.method, "/records", tc.body, "")
		if tc.err == "" && code != 200 || tc.err != "" && (code != 400 || !strings.Contains(body, tc.err)) {
			t.Errorf("%s %s: want %q, got %d %s", tc.method, tc.body, tc.err, code, body)
		}
	}
	// History: what was asked, with the fault that answered.
	call(t, ts, "POST", "/faults", `{"mode":"refused","name":"mx1.example.test","type":"MX"}`, "")
	query(t, d, "MX1.example.test.", dns.TypeMX)
	query(t, d, "mx1.example.test.", dns.TypeA)
	_, body := call(t, ts, "GET", "/history?name=mx1.example.test&type=MX", "", "")
	var h []control.Query
	json.Unmarshal([]byte(body), &h)
	if len(h) != 1 || h[0].Rcode != "REFUSED" || h[0].Mode != "refused" || h[0].Name != "mx1.example.test." {
		t.Fatalf("history: %s", body)
	}
	if code, body := call(t, ts, "GET", "/history?type=NOPE", "", ""); code != 400 || !strings.Contains(body, "unknown type") {
		t.Errorf("bad history type: %d %s", code, body)
	}
	// Reset: no faults, no runtime records, no history.
	if code, _ := call(t, ts, "POST", "/reset", "", ""); code != 200 {
		t.Fatal("reset")
	}
	if r := query(t, d, "www.example.test.", dns.TypeCNAME); r.Rcode != dns.RcodeNameError {
		t.Error("runtime CNAME survived reset")
	}
	if r := query(t, d, "mx1.example.test.", dns.TypeMX); r.Rcode != dns.RcodeSuccess {
		t.Error("fault survived reset")
	}
	if _, body := call(t, ts, "GET", "/history?type=MX", "", ""); strings.Count(body, `"name"`) != 1 {
		t.Errorf("history not reset: %s", body)
	}
}

// modelAfter reads the model of the zone as the handler now serves it.
func modelAfter(t *testing.T, d *DaneZone) *model {
	md := &model{origin: "example.test.", types: map[string]map[uint16]bool{}, exists: map[string]bool{}}
	z := d.zones.Load().byName["example.test."].cur.Load().z
	for _, n := range z.Chain() {
		md.types[n.Name] = map[uint16]bool{}
		for _, s := range n.RRsets() {
			md.types[n.Name][s.Type] = true
		}
		md.exists[n.Name] = true
	}
	return md
}

func TestControlToken(t *testing.T) {
	if err := control.CheckAddress("0.0.0.0:8053", ""); err == nil || !strings.Contains(err.Error(), "set a token") {
		t.Errorf("non-loopback without token: %v", err)
	}
	for _, a := range []string{"127.0.0.1:8053", "[::1]:8053", "localhost:8053"} {
		if err := control.CheckAddress(a, ""); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	if err := control.CheckAddress("0.0.0.0:8053", "s3cret"); err != nil {
		t.Error(err)
	}
	_, ts := newControl(t, "s3cret")
	if code, body := call(t, ts, "GET", "/faults", "", ""); code != 401 || !strings.Contains(body, "Bearer") {
		t.Errorf("no token: %d %s", code, body)
	}
	if code, _ := call(t, ts, "GET", "/faults", "", "wrong"); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := call(t, ts, "GET", "/faults", "", "s3cret"); code != 200 {
		t.Errorf("right token: %d", code)
	}
}

// TestControlConcurrent changes faults and records while queries run; -race judges.
func TestControlConcurrent(t *testing.T) {
	d, ts := newControl(t, "")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, q := range []string{"_25._tcp.mx1.example.test.", "x.users.example.test.", "signed.example.test."} {
					r := query(t, d, q, dns.TypeTLSA)
					if _, err := r.Pack(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	modes := []string{"tlsa-mismatch", "expired-sig", "bad-denial", "no-sig", "ds-mismatch", "insecure", "wrong-key"}
	for i := range 40 {
		call(t, ts, "POST", "/faults", `{"mode":"`+modes[i%len(modes)]+`","name":"*.example.test"}`, "")
		call(t, ts, "POST", "/records", `{"records":["r`+string(rune('a'+i%26))+`.example.test. 60 IN A 127.0.0.1"]}`, "")
		call(t, ts, "GET", "/history", "", "")
		if i%5 == 4 {
			call(t, ts, "POST", "/reset", "", "")
		}
	}
	close(stop)
	wg.Wait()
}

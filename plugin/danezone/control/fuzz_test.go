package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
)

// FuzzControlAPI sends arbitrary bodies to every endpoint that reads JSON, through the API's
// handler: no panic; 2xx, 400 or 413 only; 2xx only for a body that is one JSON object with
// known fields and nothing after it; a fault registered only with the limits it was sent
// (share in (0, 1], count and for not zero when sent).
func FuzzControlAPI(f *testing.F) {
	for _, seed := range []string{
		`{"mode":"servfail","name":"_25._tcp.mx1.example.test","type":"TLSA","count":2}`,
		`{"mode":"delay","name":"*.example.test","delay":"1s","share":0.5,"after":30,"for":"10m"}`,
		`{"mode":"refused","name":"x.example.test","share":0}`,
		`{"records":["t.example.test. 60 IN TXT \"x\""]} garbage`,
		`{"name":"t.example.test","type":"TXT","records":[]}`,
		`{"mode":"servfail","name":"x","from":"2026-11-22T10:00:00Z","until":"2026-11-22T11:00:00Z"}`,
		`null`, ``,
	} {
		f.Add([]byte(seed))
	}
	b := testBackend("")
	h := NewServer(b).Handler()
	endpoints := []struct{ method, path string }{{"POST", "/faults"}, {"POST", "/records"}, {"PUT", "/records"}, {"DELETE", "/records"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range endpoints {
			b.Faults.Reset()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body)))
			code := w.Code
			switch {
			case code == http.StatusCreated && ep.path == "/faults", code == http.StatusOK && ep.path == "/records":
			case code == http.StatusBadRequest, code == http.StatusRequestEntityTooLarge:
				continue
			default:
				t.Fatalf("%s %s %q: status %d %s", ep.method, ep.path, body, code, w.Body)
			}
			if len(body) > maxBody {
				t.Fatalf("%s %s: a body of %d bytes accepted", ep.method, ep.path, len(body))
			}
			var v any = &recordsBody{}
			if ep.path == "/faults" {
				v = &fault.Spec{}
			}
			if !strictJSON(body, v) {
				t.Fatalf("%s %s %q: %d for a body that does not decode strictly", ep.method, ep.path, body, code)
			}
			if ep.path == "/faults" {
				checkRegistered(t, b.Faults, body)
			}
		}
	})
}

// strictJSON decodes body into v the way the API promises: one JSON object, known fields only,
// nothing but white space after it.
func strictJSON(body []byte, v any) bool {
	if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil
}

// checkRegistered checks the one fault registered from body: a limit it was sent is a limit.
func checkRegistered(t *testing.T, r *fault.Registry, body []byte) {
	t.Helper()
	views := r.List()
	if len(views) != 1 {
		t.Fatalf("%q: %d faults registered, want 1", body, len(views))
	}
	spec := views[0].Spec
	var fields map[string]json.RawMessage
	json.Unmarshal(body, &fields)
	sent := func(name string) bool { // field names match in any case, as encoding/json does
		for k, v := range fields {
			if strings.EqualFold(k, name) && string(v) != "null" {
				return true
			}
		}
		return false
	}
	if spec.Share < 0 || spec.Share > 1 || spec.Share != spec.Share || spec.Share == 0 && sent("share") {
		t.Fatalf("%q: registered with share %v", body, spec.Share)
	}
	if spec.Count < 0 || spec.Count == 0 && sent("count") {
		t.Fatalf("%q: registered with count %d", body, spec.Count)
	}
	if spec.For == 0 && sent("for") {
		t.Fatalf("%q: registered with for 0", body)
	}
}

// fakeRecords accepts every change, and checks what the handlers pass on.
type fakeRecords struct {
	mu  sync.Mutex
	got [][]dns.RR
}

func (f *fakeRecords) note(rrs []dns.RR) error {
	f.mu.Lock()
	f.got = append(f.got, rrs)
	f.mu.Unlock()
	for _, rr := range rrs {
		if rr == nil || !dns.IsFqdn(rr.Header().Name) {
			return errors.New("the handler passed on a bad record")
		}
	}
	return nil
}

func (f *fakeRecords) AddRecords(rrs []dns.RR) error { return f.note(rrs) }
func (f *fakeRecords) ReplaceRecords(name string, _ uint16, rrs []dns.RR) error {
	if _, ok := dns.IsDomainName(name); !ok || !dns.IsFqdn(name) {
		return errors.New("the handler passed on a bad name")
	}
	return f.note(rrs)
}
func (f *fakeRecords) RemoveRecords(name string, qtype uint16, rrs []dns.RR) error {
	return f.ReplaceRecords(name, qtype, rrs)
}
func (f *fakeRecords) ResetRecords()            {}
func (f *fakeRecords) Zones() map[string]uint32 { return map[string]uint32{"example.test.": 1} }

func testBackend(token string) Backend {
	return Backend{Faults: fault.NewRegistry(), Records: &fakeRecords{}, History: NewHistory(10), Token: token}
}

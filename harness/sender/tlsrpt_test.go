package sender_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/tlsrpt"
)

// TestReportsDelivered: the sessions of real attempts become RFC 8460 reports, delivered per
// the recipient domain's _smtp._tls record: by SMTP (through the sender, over DANE) to the
// mailbox on a lab receiver, and by HTTPS POST to a lab endpoint.
func TestReportsDelivered(t *testing.T) {
	var mu sync.Mutex
	var posted []byte
	var contentType string
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		posted, _ = io.ReadAll(r.Body)
		contentType = r.Header.Get("Content-Type")
	}))
	defer ts.Close()
	s := newScene(t, sceneConfig{
		Hosts:   []host{{Label: "mx1", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}}, {Label: "mx2", Pers: receiver.SelfSigned, WrongTLSA: []string{"3 1 1"}}},
		MX:      []string{"10 mx2", "20 mx1"},
		Records: []string{`_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test,` + ts.URL + `/report"`},
	})
	o := s.attempt() // mx2 fails DANE, mx1 delivers
	if !o.Delivered || len(o.Sessions) != 2 {
		t.Fatalf("attempt: delivered=%v sessions=%d", o.Delivered, len(o.Sessions))
	}
	for i := range o.Sessions {
		o.Sessions[i].Time = time.Now()
	}
	reports := tlsrpt.Build("danelab", "mailto:postmaster@sender.test", "r1", time.Time{}, o.Sessions)
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	before := len(s.deliveries("mx1"))
	if err := s.Snd.DeliverReports(context.Background(), reports, "postmaster@sender.test", ts.Client()); err != nil {
		t.Fatal(err)
	}
	// By SMTP: the report mail reached the mailbox host (mx1, over TLS; mx2 is refused by DANE).
	d := s.deliveries("mx1")
	if len(d) != before+1 || !d[len(d)-1].TLS || d[len(d)-1].To[0] != "tlsrpt@example.test" {
		t.Fatalf("report mail not delivered over TLS to tlsrpt@example.test: %+v", d)
	}
	body := string(d[len(d)-1].Data)
	if !strings.Contains(body, `report-type="tlsrpt"`) || !strings.Contains(body, "TLS-Report-Domain: example.test") {
		t.Errorf("report mail is not an RFC 8460 §5.3 message:\n%s", body[:min(len(body), 600)])
	}
	// By HTTPS: a gzip JSON report with one success and one failure session.
	mu.Lock()
	defer mu.Unlock()
	if contentType != "application/tlsrpt+gzip" {
		t.Fatalf("POST content type %q", contentType)
	}
	zr, err := gzip.NewReader(bytes.NewReader(posted))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	var rep struct {
		Policies []struct {
			Summary struct {
				Success int `json:"total-successful-session-count"`
				Failure int `json:"total-failure-session-count"`
			} `json:"summary"`
			FailureDetails []struct {
				ResultType string `json:"result-type"`
			} `json:"failure-details"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	succ, fail := 0, 0
	var types []string
	for _, p := range rep.Policies {
		succ += p.Summary.Success
		fail += p.Summary.Failure
		for _, f := range p.FailureDetails {
			types = append(types, f.ResultType)
		}
	}
	if succ != 1 || fail != 1 || len(types) != 1 || types[0] != "tlsa-invalid" {
		t.Fatalf("report: %d successes, %d failures %v; want 1, 1 [tlsa-invalid]\n%s", succ, fail, types, raw)
	}
}

package runner

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/danelab/danelab/harness/scenario"
)

// syncBuffer is a transcript written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTranscript: the -v transcript of retry-heals shows, per attempt, the DNS questions with
// their verdicts, what the lab answered and which fault it applied, the SMTP dialogue, the TLS
// session and the matched record. (Every shipped scenario runs in cmd/danelab's tests.)
func TestTranscript(t *testing.T) {
	s, err := scenario.Load("../scenarios/retry-heals.json")
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	r := Run(context.Background(), s, Options{Log: &log})
	if r.Verdict != scenario.Pass {
		t.Fatalf("%s: %v %s", r.Verdict, r.Diffs, r.Err)
	}
	tr := log.String()
	for _, want := range []string{
		"[retry-heals] +0 fault 0 on: servfail _25._tcp.mx1.example.test TLSA",
		"dns  +0 TLSA _25._tcp.mx1.example.test.: SERVFAIL",
		"lab  udp TLSA _25._tcp.mx1.example.test. -> SERVFAIL  fault servfail",
		"+30m fault 0 healed",
		"dns  +30m TLSA _25._tcp.mx1.example.test.: NOERROR, 2 answer record(s), secure",
		"smtp S: 250-STARTTLS",
		"smtp C: STARTTLS",
		"smtp TLS up: TLS 1.3",
		`SNI "mx1.example.test"`,
		"smtp C(tls): MAIL FROM:<alice@sender.test>",
		"smtp S(tls): 250 2.0.0 OK: queued",
		`matched="3 1 1 `,
	} {
		if !strings.Contains(tr, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(tr)
	}
	if a := r.Attempts[len(r.Attempts)-1]; a.MatchedAs != "3 1 1 current" || !strings.HasPrefix(a.TLSInfo, "TLS 1.3 ") {
		t.Errorf("last attempt: matched %q (%q), TLS %q", a.Matched, a.MatchedAs, a.TLSInfo)
	}
}

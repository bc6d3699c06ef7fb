package sender_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// dsnSink delivers DSNs with the sender itself, to the domain of the DSN's recipient.
func dsnSink(s *scene) queue.DSNSink {
	return queue.DSNSinkFunc(func(ctx context.Context, d *queue.DSN) error {
		at := strings.LastIndexByte(d.To, '@')
		if at < 0 {
			return fmt.Errorf("DSN recipient %q has no domain", d.To)
		}
		o := s.Snd.Attempt(ctx, &queue.Message{From: d.From, To: []string{d.To}, Domain: d.To[at+1:], Data: d.Data})
		if !o.Delivered {
			return fmt.Errorf("DSN not delivered: %s %s", o.Result, o.Detail)
		}
		return nil
	})
}

// queueScene is a DANE host mx1.example.test and the sender's own mailbox host
// mbox.sender.test (DANE too), with a queue on a virtual clock using the exchange profile. The
// resolver judges signatures in real time (the lab signs in real time); only the schedule is
// virtual.
func queueScene(t *testing.T) (*scene, *queue.Queue, *queue.VirtualClock) {
	s := newScene(t, sceneConfig{
		MX: []string{"10 mx1"},
		Hosts: []host{
			{Label: "mx1", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
			{Label: "mbox", Domain: "sender.test", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
		},
		Extra: []lab.Domain{{Name: "sender.test", Records: []string{"@ MX 10 mbox"}}},
	})
	clock := queue.NewVirtualClock(time.Now().Truncate(time.Second))
	q, err := queue.New(queue.Config{Clock: clock, Profile: queue.ExchangeProfile{}, Attempter: s.Snd,
		Sink: dsnSink(s), Hostname: "danelab.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	return s, q, clock
}

func ages(e queue.Entry) []time.Duration {
	var out []time.Duration
	for _, r := range e.Attempts {
		out = append(out, r.Age)
	}
	return out
}

// TestQueueRetryHeals is retry-heals: the TLSA lookup fails (SERVFAIL) for the first two
// attempts, then works. Exchange: 4.7.324 at 0 and +15m, delivered at +30m; each attempt asks
// the DNS again.
func TestQueueRetryHeals(t *testing.T) {
	t.Parallel()
	s, q, clock := queueScene(t)
	start := clock.Now()
	// The resolver asks the TLSA once per attempt (no cache, one server, no retry after a
	// SERVFAIL): checked below from the lab's history.
	s.fault(fault.Spec{Mode: fault.ServFail, Name: tlsaName, Type: "TLSA", Count: 2})
	id, err := q.Submit(s.msg())
	if err != nil {
		t.Fatal(err)
	}
	realStart := time.Now()
	if err := q.Run(context.Background(), start.Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("ran in %v", time.Since(realStart))
	e, _ := q.Entry(id)
	if e.State != queue.Delivered {
		t.Fatalf("state %s, attempts %+v", e.State, e.Attempts)
	}
	want := []time.Duration{0, 15 * time.Minute, 30 * time.Minute}
	if got := ages(e); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attempt ages %v, want %v", got, want)
	}
	for i, code := range []string{"4.7.324", "4.7.324", "2.0.0"} {
		if got := e.Attempts[i].Status.Code; got != code {
			t.Errorf("attempt %d: status %s (%s), want %s", i+1, got, e.Attempts[i].Outcome.Detail, code)
		}
	}
	if !e.Done.Equal(start.Add(30 * time.Minute)) {
		t.Errorf("delivered at %v, want +30m", e.Done.Sub(start))
	}
	tl := s.history(tlsaName, "TLSA")
	if len(tl) != 3 || tl[0].Rcode != "SERVFAIL" || tl[1].Rcode != "SERVFAIL" || tl[2].Rcode != "NOERROR" {
		t.Errorf("TLSA queries %+v, want SERVFAIL, SERVFAIL, NOERROR (one per attempt)", tl)
	}
	if mx := s.history("example.test", "MX"); len(mx) != 3 {
		t.Errorf("%d MX queries, want one per attempt (3)", len(mx))
	}
	ds := s.deliveries("mx1")
	if len(ds) != 1 || !ds[0].TLS || ds[0].SNI != "mx1.example.test" {
		t.Errorf("deliveries %+v, want one over DANE", ds)
	}
	if got := s.deliveries("mbox"); len(got) != 0 {
		t.Errorf("%d DSNs for a delivered message", len(got))
	}
}

// TestQueueRetryExpires is retry-expires: a TLSA that matches nothing, forever. Exchange:
// 4.7.323 at 0, +15m, +30m, +45m, then hourly; at 24 h the message expires and the NDR with
// 5.7.323 goes to the sender's mailbox, delivered by the sender itself over DANE.
func TestQueueRetryExpires(t *testing.T) {
	t.Parallel()
	s, q, clock := queueScene(t)
	start := clock.Now()
	s.fault(fault.Spec{Mode: fault.TLSAMismatch, Name: tlsaName, Type: "TLSA"})
	id, err := q.Submit(s.msg())
	if err != nil {
		t.Fatal(err)
	}
	realStart := time.Now()
	if err := q.Run(context.Background(), start.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Logf("ran in %v", time.Since(realStart))
	e, _ := q.Entry(id)
	if e.State != queue.Expired {
		t.Fatalf("state %s, want expired", e.State)
	}
	want := []time.Duration{0, 15 * time.Minute, 30 * time.Minute, 45 * time.Minute}
	for a := 105 * time.Minute; a < 24*time.Hour; a += time.Hour {
		want = append(want, a)
	}
	if got := ages(e); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("attempt ages %v,\nwant %v", got, want)
	}
	for _, r := range e.Attempts {
		if r.Status.Code != "4.7.323" || r.Outcome.Result != queue.ResultTLSAInvalid {
			t.Fatalf("attempt %d: %s %s (%s), want 4.7.323 tlsa-invalid", r.N, r.Status.Code, r.Outcome.Result, r.Outcome.Detail)
		}
	}
	if !e.Done.Equal(start.Add(24*time.Hour)) || e.Final.Code != "5.7.323" {
		t.Errorf("expired at +%v with %s, want +24h with 5.7.323", e.Done.Sub(start), e.Final.Code)
	}
	if e.DSNErr != nil {
		t.Fatalf("DSN: %v", e.DSNErr)
	}
	if got := len(s.history(tlsaName, "TLSA")); got != len(want) {
		t.Errorf("%d TLSA queries for %d attempts: every attempt must redo DNS", got, len(want))
	}
	if n := len(s.deliveries("mx1")); n != 0 {
		t.Errorf("mx1 got %d deliveries", n)
	}
	ds := s.deliveries("mbox")
	if len(ds) != 1 {
		t.Fatalf("sender's mailbox got %d messages, want the NDR", len(ds))
	}
	d := ds[0]
	if d.From != "" || len(d.To) != 1 || d.To[0] != "alice@sender.test" {
		t.Errorf("NDR envelope from %q to %v, want <> to alice@sender.test", d.From, d.To)
	}
	if !d.TLS || d.SNI != "mbox.sender.test" {
		t.Errorf("NDR not delivered over DANE: TLS=%v SNI=%q", d.TLS, d.SNI)
	}
	body := string(d.Data)
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Status: 5.7.323",
		"Final-Recipient: rfc822; bob@example.test", "Action: failed", "5.7.323", "tlsa-invalid"} {
		if !strings.Contains(body, want) {
			t.Errorf("NDR lacks %q:\n%s", want, body)
		}
	}
}

// TestQueuePermanent: a 5xx from a DANE-authenticated server bounces at once, with the
// server's code in the DSN.
func TestQueuePermanent(t *testing.T) {
	t.Parallel()
	s := newScene(t, sceneConfig{
		MX: []string{"10 mx1"},
		Hosts: []host{
			{Label: "mx1", Pers: receiver.RejectRCPT5xx, TLSA: []string{"3 1 1"}},
			{Label: "mbox", Domain: "sender.test", Pers: receiver.SelfSigned, TLSA: []string{"3 1 1"}},
		},
		Extra: []lab.Domain{{Name: "sender.test", Records: []string{"@ MX 10 mbox"}}},
	})
	clock := queue.NewVirtualClock(time.Now())
	q, err := queue.New(queue.Config{Clock: clock, Attempter: s.Snd, Sink: dsnSink(s)})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := q.Submit(s.msg())
	if err := q.Run(context.Background(), clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e, _ := q.Entry(id)
	if e.State != queue.Failed || len(e.Attempts) != 1 || e.Final.Code != "5.1.1" {
		t.Fatalf("state %s, %d attempts, final %s; want failed after 1 attempt with 5.1.1", e.State, len(e.Attempts), e.Final.Code)
	}
	ds := s.deliveries("mbox")
	if len(ds) != 1 || !strings.Contains(string(ds[0].Data), "Status: 5.1.1") {
		t.Fatalf("NDR: %d messages", len(ds))
	}
}

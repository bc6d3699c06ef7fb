package queue

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/tlsrpt"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

const origMsg = "From: Alice <alice@sender.test>\r\nTo: bob@example.test, carol@example.test\r\n" +
	"Subject: hello\r\nMessage-ID: <m1@sender.test>\r\nDate: Mon, 02 Mar 2026 08:00:00 +0000\r\n\r\nbody\r\n"

func newMsg() *Message {
	return &Message{From: "alice@sender.test", To: []string{"bob@example.test", "carol@example.test"}, Data: []byte(origMsg)}
}

// script is an Attempter whose n-th call (1-based) returns out(n); it records the clock's time.
type script struct {
	clock Clock
	out   func(msg *Message, n int) Outcome
	mu    sync.Mutex
	calls map[string][]time.Time
	all   []time.Time
}

func (s *script) Attempt(ctx context.Context, msg *Message) Outcome {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string][]time.Time{}
	}
	now := s.clock.Now()
	s.calls[msg.ID] = append(s.calls[msg.ID], now)
	s.all = append(s.all, now)
	n := len(s.calls[msg.ID])
	s.mu.Unlock()
	return s.out(msg, n)
}

func failWith(result string) func(*Message, int) Outcome {
	return func(*Message, int) Outcome {
		return Outcome{Result: result, Host: "mx1.example.test", TLS: TLSDane, Detail: "no TLSA record matched"}
	}
}

type sinkRec struct {
	clock Clock
	mu    sync.Mutex
	dsns  []*DSN
	at    []time.Time
}

func (r *sinkRec) DeliverDSN(ctx context.Context, d *DSN) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dsns = append(r.dsns, d)
	r.at = append(r.at, r.clock.Now())
	return nil
}

func setup(t *testing.T, p Profile, out func(*Message, int) Outcome) (*Queue, *VirtualClock, *script, *sinkRec) {
	t.Helper()
	clock := NewVirtualClock(t0)
	att := &script{clock: clock, out: out}
	sink := &sinkRec{clock: clock}
	q, err := New(Config{Clock: clock, Profile: p, Attempter: att, Sink: sink, Hostname: "mta.sender.test"})
	if err != nil {
		t.Fatal(err)
	}
	return q, clock, att, sink
}

func ages(ts []time.Time, from time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, x := range ts {
		out[i] = x.Sub(from)
	}
	return out
}

func TestExchangeScheduleAndNDR(t *testing.T) {
	start := time.Now()
	q, clock, att, sink := setup(t, ExchangeProfile{}, failWith(ResultTLSAInvalid))
	id, err := q.Submit(newMsg())
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Run(context.Background(), t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if real := time.Since(start); real > time.Second {
		t.Errorf("24 h schedule took %v of real time", real)
	}
	got := ages(att.calls[id], t0)
	min := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	// The list, literally.
	if !slices.Equal(got[:6], []time.Duration{0, min(15), min(30), min(45), min(105), min(165)}) {
		t.Fatalf("first attempts at %v", got[:6])
	}
	// Independently from the rule: three 15-minute gaps, then hourly, while before 24 h.
	var want []time.Duration
	for a, gap := time.Duration(0), 0; a < 24*time.Hour; gap++ {
		want = append(want, a)
		if gap < 3 {
			a += 15 * time.Minute
		} else {
			a += time.Hour
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("attempts at %v, want %v", got, want)
	}
	e, _ := q.Entry(id)
	if e.State != Expired || !e.Done.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("state %v done %v", e.State, e.Done.Sub(t0))
	}
	for _, r := range e.Attempts {
		if r.Status.Code != "4.7.323" || !strings.HasPrefix(r.Status.Diagnostic, "450 4.7.323 tlsa-invalid") {
			t.Fatalf("attempt %d status %+v", r.N, r.Status)
		}
	}
	if len(sink.dsns) != 1 || !sink.at[0].Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("dsns %d at %v", len(sink.dsns), sink.at)
	}
	d := sink.dsns[0]
	if d.To != "alice@sender.test" || d.From != "" || d.Status.Code != "5.7.323" {
		t.Fatalf("dsn %+v", d)
	}
	if !clock.Now().Equal(t0.Add(48 * time.Hour)) {
		t.Errorf("clock at %v after Run", clock.Now())
	}
	checkDSN(t, d.Data, "5.7.323", "smtp; 550 5.7.323 tlsa-invalid", "dns; mx1.example.test")
}

func TestExchangeHealsAfterTwoFailures(t *testing.T) {
	q, _, att, sink := setup(t, ExchangeProfile{}, func(_ *Message, n int) Outcome {
		if n <= 2 {
			return Outcome{Result: ResultDNSSECInvalid, Host: "mx1.example.test", TLS: TLSDane}
		}
		return Outcome{Delivered: true, Host: "mx1.example.test", TLS: TLSDane}
	})
	id, _ := q.Submit(newMsg())
	if err := q.Run(context.Background(), t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := ages(att.calls[id], t0); !slices.Equal(got, []time.Duration{0, 15 * time.Minute, 30 * time.Minute}) {
		t.Fatalf("attempts at %v", got)
	}
	e, _ := q.Entry(id)
	if e.State != Delivered || !e.Done.Equal(t0.Add(30*time.Minute)) || len(sink.dsns) != 0 {
		t.Fatalf("entry %+v, %d dsns", e, len(sink.dsns))
	}
	codes := []string{e.Attempts[0].Status.Code, e.Attempts[1].Status.Code, e.Attempts[2].Status.Code}
	if !slices.Equal(codes, []string{"4.7.324", "4.7.324", "2.0.0"}) {
		t.Fatalf("codes %v", codes)
	}
}

func TestPostfixScheduleAndDSN(t *testing.T) {
	start := time.Now()
	q, _, att, sink := setup(t, PostfixProfile{}, failWith(ResultTLSAInvalid))
	id, _ := q.Submit(newMsg())
	if err := q.Run(context.Background(), t0.Add(10*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if real := time.Since(start); real > time.Second {
		t.Errorf("5 day schedule took %v", real)
	}
	// From the rule, in seconds: delay = clamp(age, 300, 4000); the attempt at which the age
	// has reached 5 days is the last one, and its failure returns the message.
	var want []time.Duration
	for age := int64(0); ; {
		want = append(want, time.Duration(age)*time.Second)
		if age >= 5*86400 {
			break
		}
		age += max(300, min(age, 4000))
	}
	got := ages(att.calls[id], t0)
	if !slices.Equal(got, want) {
		t.Fatalf("attempts at %v\nwant %v", got, want)
	}
	if want[1] != 300*time.Second || want[2] != 600*time.Second || want[3] != 1200*time.Second {
		t.Fatalf("rule misread: %v", want[:4])
	}
	e, _ := q.Entry(id)
	last := want[len(want)-1]
	if e.State != Expired || e.Done.Sub(t0) != last || last < 5*24*time.Hour || last >= 5*24*time.Hour+4000*time.Second {
		t.Fatalf("state %v done at %v", e.State, e.Done.Sub(t0))
	}
	if len(sink.dsns) != 1 || sink.dsns[0].Status.Code != "4.7.5" {
		t.Fatalf("dsns %+v", sink.dsns)
	}
	checkDSN(t, sink.dsns[0].Data, "4.7.5", "X-Postfix; Server certificate not verified", "dns; mx1.example.test")
}

func TestRFCBackoff(t *testing.T) {
	p := RFCProfile{Initial: 10 * time.Minute, Factor: 2, Max: time.Hour, Lifetime: 6 * time.Hour}
	q, _, att, sink := setup(t, p, failWith(ResultSTARTTLSNotSupported))
	id, _ := q.Submit(newMsg())
	if err := q.Run(context.Background(), t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var want []time.Duration
	for a, d := time.Duration(0), 10*time.Minute; a < 6*time.Hour; d = min(2*d, time.Hour) {
		want = append(want, a)
		a += d
	}
	if got := ages(att.calls[id], t0); !slices.Equal(got, want) {
		t.Fatalf("attempts %v want %v", got, want)
	}
	e, _ := q.Entry(id)
	if e.Done.Sub(t0) != 6*time.Hour || sink.dsns[0].Status.Code != "5.7.4" {
		t.Fatalf("done %v status %v", e.Done.Sub(t0), sink.dsns[0].Status)
	}
	if _, err := New(Config{Attempter: att, Profile: RFCProfile{Factor: 0.5}}); err == nil {
		t.Fatal("factor < 1 accepted")
	}
}

func TestManyMessagesInTimeOrder(t *testing.T) {
	q, clock, att, sink := setup(t, ExchangeProfile{}, func(msg *Message, n int) Outcome {
		if msg.To[0] == "heal@example.test" && n == 3 {
			return Outcome{Delivered: true}
		}
		return Outcome{Result: ResultSTARTTLSNotSupported, Host: "mx." + msg.Domain}
	})
	var ids []string
	for i, rcpt := range []string{"a@one.test", "heal@example.test", "b@two.test"} {
		clock.Set(t0.Add(time.Duration(i) * 7 * time.Minute))
		id, err := q.Submit(&Message{From: "s@sender.test", To: []string{rcpt}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := q.Run(context.Background(), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(att.all, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("attempts out of time order: %v", att.all)
	}
	if q.Pending() != 2 {
		t.Fatalf("pending %d", q.Pending())
	}
	e, _ := q.Entry(ids[2])
	if e.Message.Domain != "two.test" || len(e.Attempts) != 5 || e.Attempts[4].Age != 105*time.Minute {
		t.Fatalf("third message: %+v", e.Attempts)
	}
	// Resume to the end: two NDRs, each 24 h after its own submission.
	if err := q.Run(context.Background(), t0.Add(3*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(sink.dsns) != 2 || !sink.at[0].Equal(t0.Add(24*time.Hour)) || !sink.at[1].Equal(t0.Add(24*time.Hour+14*time.Minute)) {
		t.Fatalf("dsn times %v", sink.at)
	}
	if es := q.Entries(); es[1].State != Delivered || es[0].State != Expired || es[0].Final.Code != "5.7.321" {
		t.Fatalf("states %v %v %v", es[0].State, es[1].State, es[0].Final)
	}
}

func TestPermanentAndNullSender(t *testing.T) {
	q, _, att, sink := setup(t, ExchangeProfile{}, func(*Message, int) Outcome {
		return Outcome{Result: ResultNullMX} // not flagged Permanent: the 5.1.10 code decides
	})
	id, _ := q.Submit(newMsg())
	nullID, _ := q.Submit(&Message{To: []string{"x@example.test"}})
	if err := q.Run(context.Background(), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(att.calls[id]) != 1 || len(att.calls[nullID]) != 1 {
		t.Fatalf("calls %v", att.calls)
	}
	e, _ := q.Entry(id)
	if e.State != Failed || e.Final.Code != "5.1.10" || len(sink.dsns) != 1 || !e.Done.Equal(t0) {
		t.Fatalf("entry %+v dsns %d", e, len(sink.dsns))
	}
	checkDSN(t, sink.dsns[0].Data, "5.1.10", "smtp; 550 5.1.10", "")
	if n, _ := q.Entry(nullID); n.State != Failed || n.DSN != nil {
		t.Fatalf("null sender got a DSN: %+v", n)
	}
}

func TestRemoteReplyPassthrough(t *testing.T) {
	q, _, _, sink := setup(t, PostfixProfile{}, func(_ *Message, n int) Outcome {
		if n == 1 {
			return Outcome{Result: ResultSMTPReply, Status: "4.2.0", Detail: "450 4.2.0 mailbox busy", Host: "mx1.example.test"}
		}
		return Outcome{Result: ResultSMTPReply, Status: "5.1.1", Permanent: true, Detail: "550 5.1.1 no such user", Host: "mx1.example.test"}
	})
	id, _ := q.Submit(newMsg())
	if err := q.Run(context.Background(), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e, _ := q.Entry(id)
	if e.Attempts[0].Status.Code != "4.2.0" || e.Final.Code != "5.1.1" || e.Done.Sub(t0) != 300*time.Second {
		t.Fatalf("%+v final %+v", e.Attempts, e.Final)
	}
	checkDSN(t, sink.dsns[0].Data, "5.1.1", "smtp; 550 5.1.1 no such user", "dns; mx1.example.test")
}

func TestCodeTable(t *testing.T) {
	// The exchange column of docs/scenario-matrix.md and the Postfix words of
	// docs/sender-behaviour.md ("Postfix as a sender"); Postfix's null MX code as real Postfix
	// 3.7 gave it.
	cases := []struct{ result, exchange, postfix, rfc string }{
		{ResultSTARTTLSNotSupported, "4.7.321", "4.7.4", "4.7.4"},
		{ResultCertificateExpired, "4.7.322", "4.7.5", "4.7.5"},
		{ResultTLSAInvalid, "4.7.323", "4.7.5", "4.7.5"},
		{ResultCertificateHostMismatch, "4.7.323", "4.7.5", "4.7.5"},
		{ResultValidationFailure, "4.7.323", "4.7.5", "4.7.5"},
		{ResultDNSSECInvalid, "4.7.324", "4.7.5", "4.7.5"},
		{ResultDNSFailure, "4.4.312", "4.4.3", "4.4.3"},
		{ResultNullMX, "5.1.10", "5.1.0", "5.1.10"},
	}
	for _, c := range cases {
		o := Outcome{Result: c.result, Host: "mx.example.test"}
		for _, pc := range []struct {
			p          Profile
			want, fin  string
			diagPrefix string
		}{
			{ExchangeProfile{}, c.exchange, "5" + c.exchange[1:], "smtp; 550 5" + c.exchange[1:]},
			{PostfixProfile{}, c.postfix, c.postfix, "X-Postfix; "},
			{RFCProfile{}, c.rfc, "5" + c.rfc[1:], "smtp; 550 5" + c.rfc[1:]},
		} {
			if got := pc.p.Status(o).Code; got != pc.want {
				t.Errorf("%s %s: %s, want %s", pc.p.Name(), c.result, got, pc.want)
			}
			f := pc.p.Final(o)
			if f.Code != pc.fin || !strings.HasPrefix(f.DiagnosticCode(), pc.diagPrefix) {
				t.Errorf("%s %s final: %+v", pc.p.Name(), c.result, f)
			}
			if e, ok := Lookup(pc.p.Name(), c.result); !ok || e.Code != pc.want {
				t.Errorf("Lookup(%s, %s) = %v", pc.p.Name(), c.result, e)
			}
		}
	}
	if s := (ExchangeProfile{}).Status(Outcome{Result: ResultDNSSECInvalid}); s.Diagnostic != "450 4.7.324 dnssec-invalid: Destination domain returned invalid DNSSEC records" {
		t.Errorf("exchange diagnostic %q", s.Diagnostic)
	}
	if s := (ExchangeProfile{}).Status(Outcome{Result: "x", Detail: "a\r\nb"}); s.Code != "4.0.0" || strings.ContainsAny(s.Diagnostic, "\r\n") {
		t.Errorf("unknown class: %+v", s)
	}
	for _, name := range ProfileNames {
		if p, err := ProfileByName(name); err != nil || p.Name() != name {
			t.Errorf("ProfileByName(%s) = %v, %v", name, p, err)
		}
	}
	if _, err := ProfileByName("sendmail"); err == nil {
		t.Error("unknown profile accepted")
	}
}

func TestCancelKeepsMessageQueued(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	q, _, att, _ := setup(t, ExchangeProfile{}, func(*Message, int) Outcome {
		cancel()
		return Outcome{Result: ResultConnect}
	})
	id, _ := q.Submit(newMsg())
	if err := q.Run(ctx, t0.Add(time.Hour)); err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	e, _ := q.Entry(id)
	if len(att.calls[id]) != 1 || len(e.Attempts) != 0 || e.State != Queued || q.Pending() != 1 {
		t.Fatalf("after cancel: %+v", e)
	}
}

func TestRealClockDueNow(t *testing.T) {
	att := &script{clock: RealClock{}, out: func(*Message, int) Outcome { return Outcome{Delivered: true} }}
	q, err := New(Config{Attempter: att})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := q.Submit(newMsg())
	if err := q.Run(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if e, _ := q.Entry(id); e.State != Delivered {
		t.Fatalf("state %v", e.State)
	}
	if _, err := q.Submit(&Message{}); err == nil {
		t.Fatal("message without recipients accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("queue without attempter")
	}
}

func TestSessionsForTLSRPT(t *testing.T) {
	q, _, _, _ := setup(t, ExchangeProfile{}, func(_ *Message, n int) Outcome {
		s := tlsrpt.Attempt{PolicyDomain: "example.test", PolicyType: tlsrpt.PolicyTLSA,
			PolicyString: []string{"3 1 1 aa"}, MXHost: "mx1.example.test", Result: tlsrpt.ResultTLSAInvalid}
		if n == 3 {
			s.Result = tlsrpt.Success
			return Outcome{Delivered: true, Sessions: []tlsrpt.Attempt{s}}
		}
		return Outcome{Result: ResultTLSAInvalid, Sessions: []tlsrpt.Attempt{s}}
	})
	q.Submit(newMsg())
	q.Run(context.Background(), t0.Add(time.Hour))
	ss := q.Sessions()
	if len(ss) != 3 || !ss[1].Time.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("sessions %+v", ss)
	}
	reps := tlsrpt.Build("Lab", "mailto:tlsrpt@sender.test", "r", time.Time{}, ss)
	if len(reps) != 1 || reps[0].Policies[0].Summary != (tlsrpt.Summary{Successful: 1, Failure: 2}) {
		t.Fatalf("reports %+v", reps)
	}
}

// checkDSN parses a DSN back with the standard library and checks the RFC 3464 structure.
func checkDSN(t *testing.T, data []byte, status, diagPrefix, remoteMTA string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if to, err := mail.ParseAddress(m.Header.Get("To")); err != nil || to.Address != "alice@sender.test" {
		t.Fatalf("To %q", m.Header.Get("To"))
	}
	if m.Header.Get("References") != "<m1@sender.test>" || m.Header.Get("Auto-Submitted") != "auto-replied" {
		t.Errorf("headers %v", m.Header)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var status5 []textproto.MIMEHeader
	var orig []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.Split(ct, ";")[0])
		body, _ := io.ReadAll(p)
		switch {
		case strings.HasPrefix(ct, "message/delivery-status"):
			r := textproto.NewReader(bufio.NewReader(bytes.NewReader(body)))
			for {
				h, err := r.ReadMIMEHeader()
				if len(h) > 0 {
					status5 = append(status5, h)
				}
				if err != nil {
					break
				}
			}
		case strings.HasPrefix(ct, "text/rfc822-headers"):
			orig = body
		}
	}
	if !slices.Equal(types, []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}) {
		t.Fatalf("parts %v", types)
	}
	if len(status5) != 3 {
		t.Fatalf("delivery-status groups: %v", status5)
	}
	if status5[0].Get("Reporting-MTA") != "dns; mta.sender.test" || status5[0].Get("Arrival-Date") == "" {
		t.Errorf("per-message fields %v", status5[0])
	}
	for i, rcpt := range []string{"bob@example.test", "carol@example.test"} {
		h := status5[i+1]
		if h.Get("Final-Recipient") != "rfc822; "+rcpt || h.Get("Action") != "failed" || h.Get("Status") != status ||
			!strings.HasPrefix(h.Get("Diagnostic-Code"), diagPrefix) || h.Get("Remote-MTA") != remoteMTA ||
			h.Get("Last-Attempt-Date") == "" {
			t.Errorf("recipient fields %v", h)
		}
	}
	om, err := mail.ReadMessage(bytes.NewReader(append(orig, '\r', '\n')))
	if err != nil || om.Header.Get("Subject") != "hello" || om.Header.Get("Message-Id") != "<m1@sender.test>" {
		t.Errorf("original headers %q (%v)", orig, err)
	}
}

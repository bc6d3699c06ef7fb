// Package queue is the harness's mail queue: per-message retries on a sender profile's schedule
// (Exchange Online, Postfix, plain RFC 7672), driven by an injected clock so that a 24-hour or
// 5-day schedule runs in milliseconds on a VirtualClock, and a DSN (RFC 3464) back to the sender
// when a message expires or fails permanently. One delivery attempt is the Attempter's job (the
// DANE-aware SMTP sender); the queue records every attempt and its profile status.
package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/danelab/danelab/harness/tlsrpt"
)

// State of a queued message.
type State int

// Message states.
const (
	Queued    State = iota // waiting for its next attempt (or its expiry)
	Delivered              // accepted by an MX host
	Expired                // the profile's lifetime ended: DSN sent
	Failed                 // permanent failure: DSN sent
)

func (s State) String() string {
	return [...]string{"queued", "delivered", "expired", "failed"}[s]
}

// Record is one attempt of one message.
type Record struct {
	N       int           // 1-based attempt number
	Time    time.Time     // when it was made (queue clock)
	Age     time.Duration // Time - Message.Submitted
	Outcome Outcome
	Status  Status // the profile's status for it
}

// Entry is the queue's view of one message.
type Entry struct {
	Message  *Message
	State    State
	Attempts []Record
	Next     time.Time // next event (attempt, or expiry when NextIsExpiry) while Queued
	// NextIsExpiry: the next event ends the message without another attempt.
	NextIsExpiry bool
	Done         time.Time // when it was delivered or bounced
	Final        Status    // the DSN status when Expired or Failed
	DSN          *DSN      // the DSN handed to the sink (nil for a null sender)
	DSNErr       error     // what the sink returned

	seq   uint64
	index int
}

// DSN is a delivery status notification for the sink.
type DSN struct {
	From    string // envelope sender: always "" (null reverse-path, RFC 5321 §4.5.5)
	To      string // envelope recipient: the original message's envelope sender
	Data    []byte // the RFC 3464 multipart/report message
	Message *Message
	Status  Status
}

// DSNSink delivers DSNs (in the lab: to the sender's mailbox on a lab receiver).
type DSNSink interface {
	DeliverDSN(ctx context.Context, d *DSN) error
}

// DSNSinkFunc adapts a function to DSNSink.
type DSNSinkFunc func(ctx context.Context, d *DSN) error

// DeliverDSN calls f.
func (f DSNSinkFunc) DeliverDSN(ctx context.Context, d *DSN) error { return f(ctx, d) }

// Config configures a Queue.
type Config struct {
	Clock     Clock     // default RealClock; use a *VirtualClock for simulated time
	Profile   Profile   // default ExchangeProfile
	Attempter Attempter // required
	Sink      DSNSink   // nil: DSNs are built and kept in the Entry but not sent
	Hostname  string    // reporting MTA name in DSNs, default "localhost"
}

// Queue holds messages and runs their attempts in time order. Methods are safe for concurrent
// use; Run must not be called concurrently with itself.
type Queue struct {
	cfg Config

	mu      sync.Mutex
	entries map[string]*Entry
	order   []*Entry // submission order
	pending entryHeap
	seq     uint64
}

// New returns a queue.
func New(cfg Config) (*Queue, error) {
	if cfg.Attempter == nil {
		return nil, errors.New("queue: Config.Attempter is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Profile == nil {
		cfg.Profile = ExchangeProfile{}
	}
	if p, ok := cfg.Profile.(RFCProfile); ok {
		if _, err := p.params(); err != nil {
			return nil, err
		}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	return &Queue{cfg: cfg, entries: map[string]*Entry{}}, nil
}

// Profile returns the queue's sender profile.
func (q *Queue) Profile() Profile { return q.cfg.Profile }

// Submit queues msg for an immediate first attempt (at msg.Submitted, default now) and returns
// its queue id.
func (q *Queue) Submit(msg *Message) (string, error) {
	if msg == nil || len(msg.To) == 0 {
		return "", errors.New("queue: message without recipients")
	}
	if msg.Domain == "" {
		at := strings.LastIndexByte(msg.To[0], '@')
		if at < 0 {
			return "", fmt.Errorf("queue: recipient %q has no domain", msg.To[0])
		}
		msg.Domain = msg.To[0][at+1:]
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.seq++
	if msg.ID == "" {
		msg.ID = fmt.Sprintf("Q%06d", q.seq)
	}
	if _, dup := q.entries[msg.ID]; dup {
		return "", fmt.Errorf("queue: duplicate message id %q", msg.ID)
	}
	if msg.Submitted.IsZero() {
		msg.Submitted = q.cfg.Clock.Now()
	}
	e := &Entry{Message: msg, State: Queued, Next: msg.Submitted, seq: q.seq}
	q.entries[msg.ID] = e
	q.order = append(q.order, e)
	heap.Push(&q.pending, e)
	return msg.ID, nil
}

// Run processes every event due at or before until, in time order (ties: submission order).
// With a Setter clock it moves the clock to each event and finally to until (never backwards),
// without sleeping; with another clock it waits in real time. It returns ctx.Err() when ctx
// ends; the interrupted message stays queued.
func (q *Queue) Run(ctx context.Context, until time.Time) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q.mu.Lock()
		if len(q.pending) == 0 || q.pending[0].Next.After(until) {
			q.mu.Unlock()
			break
		}
		e := heap.Pop(&q.pending).(*Entry)
		due := e.Next
		q.mu.Unlock()
		if err := q.waitUntil(ctx, due); err != nil {
			q.requeue(e)
			return err
		}
		if err := q.process(ctx, e); err != nil {
			return err
		}
	}
	if s, ok := q.cfg.Clock.(Setter); ok && s.Now().Before(until) {
		s.Set(until)
	}
	return nil
}

func (q *Queue) requeue(e *Entry) {
	q.mu.Lock()
	heap.Push(&q.pending, e)
	q.mu.Unlock()
}

func (q *Queue) waitUntil(ctx context.Context, t time.Time) error {
	if s, ok := q.cfg.Clock.(Setter); ok {
		if s.Now().Before(t) {
			s.Set(t)
		}
		return nil
	}
	d := t.Sub(q.cfg.Clock.Now())
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *Queue) process(ctx context.Context, e *Entry) error {
	now := q.cfg.Clock.Now()
	msg := e.Message
	if e.NextIsExpiry {
		q.bounce(ctx, e, Expired, now)
		return nil
	}
	o := q.cfg.Attempter.Attempt(ctx, msg)
	if err := ctx.Err(); err != nil { // interrupted: not an attempt
		q.requeue(e)
		return err
	}
	for i := range o.Sessions {
		if o.Sessions[i].Time.IsZero() {
			o.Sessions[i].Time = now
		}
	}
	st := q.cfg.Profile.Status(o)
	age := now.Sub(msg.Submitted)

	q.mu.Lock()
	n := len(e.Attempts) + 1
	e.Attempts = append(e.Attempts, Record{N: n, Time: now, Age: age, Outcome: o, Status: st})
	switch {
	case o.Delivered:
		e.State, e.Done = Delivered, now
		q.mu.Unlock()
		return nil
	case o.Permanent || strings.HasPrefix(st.Code, "5."):
		q.mu.Unlock()
		q.bounce(ctx, e, Failed, now)
		return nil
	}
	step := q.cfg.Profile.Next(n, age)
	if step.Expire && step.At <= age {
		q.mu.Unlock()
		q.bounce(ctx, e, Expired, now)
		return nil
	}
	if step.At <= age { // a profile must move forward
		step.At = age + time.Second
	}
	e.Next = msg.Submitted.Add(step.At)
	e.NextIsExpiry = step.Expire
	heap.Push(&q.pending, e)
	q.mu.Unlock()
	return nil
}

func (q *Queue) bounce(ctx context.Context, e *Entry, state State, now time.Time) {
	q.mu.Lock()
	var last Record
	if len(e.Attempts) > 0 {
		last = e.Attempts[len(e.Attempts)-1]
	}
	final := q.cfg.Profile.Final(last.Outcome)
	e.State, e.Done, e.Final, e.NextIsExpiry = state, now, final, false
	msg := e.Message
	q.mu.Unlock()
	if msg.From == "" { // never a DSN to the null reverse-path
		return
	}
	data, err := BuildDSN(DSNInfo{
		ReportingMTA: q.cfg.Hostname, Message: msg, Final: final, Last: last,
		Date: now, Expired: state == Expired,
	})
	d := &DSN{To: msg.From, Data: data, Message: msg, Status: final}
	if err == nil && q.cfg.Sink != nil {
		err = q.cfg.Sink.DeliverDSN(ctx, d)
	}
	q.mu.Lock()
	e.DSN, e.DSNErr = d, err
	q.mu.Unlock()
}

// Entry returns a snapshot of the message with queue id id.
func (q *Queue) Entry(id string) (Entry, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[id]
	if !ok {
		return Entry{}, false
	}
	return e.snapshot(), true
}

// Entries returns snapshots of all messages in submission order.
func (q *Queue) Entries() []Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Entry, len(q.order))
	for i, e := range q.order {
		out[i] = e.snapshot()
	}
	return out
}

// Pending returns how many messages are still queued.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Sessions returns the TLS sessions of every attempt of every message, for tlsrpt.Build.
func (q *Queue) Sessions() []tlsrpt.Attempt {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []tlsrpt.Attempt
	for _, e := range q.order {
		for _, r := range e.Attempts {
			out = append(out, r.Outcome.Sessions...)
		}
	}
	return out
}

func (e *Entry) snapshot() Entry {
	c := *e
	c.Attempts = append([]Record(nil), e.Attempts...)
	c.index = -1
	return c
}

// entryHeap orders entries by next event time, then submission order.
type entryHeap []*Entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].Next.Equal(h[j].Next) {
		return h[i].Next.Before(h[j].Next)
	}
	return h[i].seq < h[j].seq
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*Entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// Package control owns danezone's runtime control API: HTTP with JSON over the fault
// registry, the records added at runtime, and the query history.
package control

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Query is one question danezone answered.
type Query struct {
	Time   time.Time `json:"time"`
	Zone   string    `json:"zone"`
	Name   string    `json:"name"` // lowercase
	Type   string    `json:"type"`
	Proto  string    `json:"proto"`
	Remote string    `json:"remote"`
	Rcode  string    `json:"rcode"`
	Fault  string    `json:"fault,omitempty"` // ID of the fault applied
	Mode   string    `json:"mode,omitempty"`
}

// History is a bounded log of queries, newest last; safe for concurrent use.
type History struct {
	mu   sync.Mutex
	buf  []Query
	next int
	full bool
}

// NewHistory keeps the last size queries.
func NewHistory(size int) *History { return &History{buf: make([]Query, size)} }

// Record appends q. A zero q.Time is stamped under the lock, so that the log's order is its
// times' order even when two handlers record at once.
func (h *History) Record(q Query) {
	h.mu.Lock()
	if q.Time.IsZero() {
		q.Time = time.Now()
	}
	h.buf[h.next] = q
	h.next++
	if h.next == len(h.buf) {
		h.next, h.full = 0, true
	}
	h.mu.Unlock()
}

// Reset forgets everything.
func (h *History) Reset() {
	h.mu.Lock()
	clear(h.buf)
	h.next, h.full = 0, false
	h.mu.Unlock()
}

// Find returns the queries for name (any case; "" for all) and type (0 for all) at or after
// since, oldest first.
func (h *History) Find(name string, qtype uint16, since time.Time) []Query {
	name = strings.ToLower(name)
	if name != "" {
		name = dns.Fqdn(name)
	}
	t := ""
	if qtype != 0 {
		t = dns.TypeToString[qtype]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var all []Query
	if h.full {
		all = append(all, h.buf[h.next:]...)
	}
	all = append(all, h.buf[:h.next]...)
	out := []Query{}
	for _, q := range all {
		if (name == "" || q.Name == name) && (t == "" || q.Type == t) && !q.Time.Before(since) {
			out = append(out, q)
		}
	}
	return out
}

package queue

import (
	"sync"
	"time"
)

// Clock is the time source of the queue. Every schedule decision reads it; nothing in the package
// calls time.Now directly.
type Clock interface {
	Now() time.Time
}

// Setter is a Clock the queue may move forward itself. When the queue's clock implements it, Run
// jumps from one due event to the next without sleeping; otherwise Run waits in real time.
type Setter interface {
	Clock
	Set(t time.Time)
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// VirtualClock is a settable clock, safe for concurrent use. The queue advances it from event
// to event; an Attempter (and its DNS caches) can read the same clock to see virtual TTLs expire.
type VirtualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewVirtualClock returns a clock that reads start until it is moved.
func NewVirtualClock(start time.Time) *VirtualClock { return &VirtualClock{now: start} }

// Now returns the current virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (backwards too: the caller decides).
func (c *VirtualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d and returns the new time.
func (c *VirtualClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

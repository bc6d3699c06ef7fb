package control

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limits bound what clients can hold of the control API, authenticated or not: without them
// every connection that sent one request stays open for good, and enough of them exhaust the
// process's file descriptors, which DNS over TCP needs too.
type limits struct {
	// maxConns is how many connections are open at once; more wait in the kernel's accept
	// queue until one closes. A lab's API has a handful of clients (the harness, curl).
	maxConns int
	// readHeaderTimeout bounds the request line and headers, and a new connection that sends
	// nothing: such a connection holds a slot for at most this long.
	readHeaderTimeout time.Duration
	// readTimeout bounds the whole request, body (at most maxBody) included.
	readTimeout time.Duration
	// writeTimeout bounds the response; the largest is GET /history (historySize queries).
	writeTimeout time.Duration
	// idleTimeout closes a kept-alive connection that sends no next request.
	idleTimeout time.Duration
	// maxHeaderBytes bounds the request line and headers (Go's default is 1 MB); more is 431.
	maxHeaderBytes int
}

var defaultLimits = limits{
	maxConns:          64,
	readHeaderTimeout: 5 * time.Second,
	readTimeout:       30 * time.Second,
	writeTimeout:      30 * time.Second,
	idleTimeout:       30 * time.Second,
	maxHeaderBytes:    16 << 10,
}

// maxBody bounds a request body: a megabyte holds thousands of records.
const maxBody = 1 << 20

// limitListener accepts at most cap(sem) connections at once. It waits for a slot before
// accepting, so the connections beyond the cap cost no file descriptor here (the kernel queues
// them, and drops new ones once its backlog is full). x/net/netutil.LimitListener does the
// same, but is an indirect dependency only; this one also counts, for the tests.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	open      atomic.Int64 // connections accepted and not yet closed
	peak      atomic.Int64 // the most open at once
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	n := l.open.Add(1)
	for {
		if p := l.peak.Load(); n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &limitConn{Conn: c, l: l}, nil
}

// Close stops accepting; a blocked Accept returns.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once sync.Once
	l    *limitListener
}

// Close frees the connection's slot, once.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.sem
	})
	return err
}

// CloseWrite lets net/http half-close before it closes a connection whose request body it did
// not read (a 413): the client then reads the answer instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

package control

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLimitsReapIdle: with a cap of 4 and short timeouts, 12 connections that send nothing
// never hold more than 4 descriptors here; each is closed by the server after the header
// timeout, and a client with the token is served once they are gone. A connection kept alive
// after a request is closed after the idle timeout.
func TestLimitsReapIdle(t *testing.T) {
	s := NewServer(testBackend("s3cret"))
	s.limits = limits{maxConns: 4, readHeaderTimeout: 300 * time.Millisecond, readTimeout: time.Second,
		writeTimeout: time.Second, idleTimeout: 300 * time.Millisecond, maxHeaderBytes: 4 << 10}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()

	const n = 12
	closed := make(chan time.Duration, n)
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := c.Read(make([]byte, 1))
			if errors.Is(err, io.EOF) || err != nil && strings.Contains(err.Error(), "reset") {
				closed <- time.Since(start)
			} else {
				closed <- -1
			}
		}()
	}
	for wait := time.Now().Add(2 * time.Second); s.ln.open.Load() != 4 && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	if open := s.ln.open.Load(); open != 4 {
		t.Errorf("%d connections open with 12 idle clients and a cap of 4, want 4", open)
	}
	// The client with the token waits behind the idle ones, and is served once they are reaped.
	req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/health", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request with the token: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("request with the token: %s", resp.Status)
	}
	for range n {
		if d := <-closed; d < 0 {
			t.Error("an idle connection was not closed by the server")
		}
	}
	if peak := s.ln.peak.Load(); peak > 4 {
		t.Errorf("%d connections open at once, cap 4", peak)
	}
	// The client's connection, kept alive, is closed after the idle timeout.
	deadline := time.Now().Add(5 * time.Second)
	for s.ln.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if open := s.ln.open.Load(); open != 0 {
		t.Errorf("%d connections still open after the idle timeout", open)
	}
}

// TestLimitsSlowRequest: a client that sends its headers or its body too slowly is cut off
// by the read timeouts, and headers over the limit get 431.
func TestLimitsSlowRequest(t *testing.T) {
	s := NewServer(testBackend(""))
	s.limits = limits{maxConns: 4, readHeaderTimeout: 200 * time.Millisecond, readTimeout: 500 * time.Millisecond,
		writeTimeout: time.Second, idleTimeout: time.Second, maxHeaderBytes: 4 << 10}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, tc := range []struct {
		name, first string // first is sent at once; then nothing
	}{
		{"headers", "GET /health HTTP/1.1\r\nHost: x\r\n"},
		{"body", "POST /faults HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mode\":"},
	} {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.first)
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.Copy(io.Discard, c) // until the server closes (a 400 for the body may come first)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: a stalled request held its connection for %v", tc.name, d)
		}
		c.Close()
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("8 KiB header with a limit of 4 KiB: %s", resp.Status)
	}
}

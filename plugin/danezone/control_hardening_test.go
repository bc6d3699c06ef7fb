package danezone

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/control"
	"github.com/danelab/danelab/plugin/danezone/denial"
)

// startControl starts the control API of a test zone on a free loopback port, as setup does.
func startControl(t *testing.T, token string) (*DaneZone, string) {
	t.Helper()
	d, _ := newTestZone(t, denial.NSEC)
	d.history = control.NewHistory(100)
	s := control.NewServer(control.Backend{Faults: d.faults, Records: d, History: d.history, Token: token})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return d, s.Addr()
}

// rawRequest writes one HTTP/1.1 request (kept alive) on c.
func rawRequest(t *testing.T, c net.Conn, method, path, auth string) {
	t.Helper()
	req := method + " " + path + " HTTP/1.1\r\nHost: control\r\n"
	if auth != "" {
		req += "Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
}

// closedBy reports whether the server closed c within d.
func closedBy(c net.Conn, br *bufio.Reader, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) ||
		err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestControlAuthBearer: only "Bearer TOKEN" (scheme in any case, RFC 6750 §2.1) passes; the
// token alone, another scheme or a wrong token get 401 with a challenge, and the server closes
// the connection, so that refused clients cannot keep connections open.
func TestControlAuthBearer(t *testing.T) {
	_, addr := startControl(t, "s3cret")
	for _, tc := range []struct {
		auth string
		ok   bool
	}{
		{"", false}, {"s3cret", false}, {"Basic s3cret", false}, {"Bearer wrong", false}, {"Bearers3cret", false},
		{"Bearer ", false}, {"Bearer s3cret2", false}, {"Bearer s3cre", false},
		{"Bearer s3cret", true}, {"bearer s3cret", true}, {"BEARER  s3cret", true},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		rawRequest(t, c, "GET", "/faults", tc.auth)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.auth, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if tc.ok {
			if resp.StatusCode != 200 {
				t.Errorf("%q: want 200, got %s", tc.auth, resp.Status)
			} else if closedBy(c, br, 200*time.Millisecond) {
				t.Errorf("%q: the server closed an authenticated keep-alive connection", tc.auth)
			}
		} else {
			if resp.StatusCode != 401 {
				t.Errorf("%q: want 401, got %s", tc.auth, resp.Status)
			} else if !closedBy(c, br, 2*time.Second) {
				t.Errorf("%q: after a 401 the connection is still open 2s later", tc.auth)
			}
			if resp.StatusCode == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%q: 401 without a Bearer challenge (RFC 9110 §15.5.2): %v", tc.auth, resp.Header)
			}
		}
		c.Close()
	}
}

// TestControlConnectionsCapped: clients that send one request and then stay idle do not get a
// connection each: beyond the cap they wait (in the kernel's queue, with no descriptor here)
// and are served as soon as others close.
func TestControlConnectionsCapped(t *testing.T) {
	_, addr := startControl(t, "s3cret")
	const n = 100 // more than the cap
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i], readers[i] = c, bufio.NewReader(c)
		rawRequest(t, c, "GET", "/health", "Bearer s3cret")
	}
	// answer reads the responses of the connections not answered yet, until the deadline.
	answered := make([]bool, n)
	answer := func(wait time.Duration) int {
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := 0
		for i, c := range conns {
			if answered[i] {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetReadDeadline(time.Now().Add(wait))
				resp, err := http.ReadResponse(readers[i], nil)
				if err != nil {
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				answered[i] = resp.StatusCode == 200
				count++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return count
	}
	first := answer(2 * time.Second)
	if first == n {
		t.Fatalf("all %d idle connections were served at once: no cap on connections", n)
	}
	if first == 0 {
		t.Fatal("no connection was served")
	}
	for i, c := range conns {
		if answered[i] {
			c.Close()
		}
	}
	if rest := answer(10 * time.Second); first+rest != n {
		t.Fatalf("%d connections served at first, %d more once they closed; want %d in all", first, rest, n)
	}
}

// TestControlBodyTooLarge: a body over the limit gets 413 on every JSON endpoint, whether its
// length is declared (100 MB, refused before it is read) or not (chunked).
func TestControlBodyTooLarge(t *testing.T) {
	_, addr := startControl(t, "")
	for _, ep := range []string{"POST /faults", "POST /records", "PUT /records", "DELETE /records"} {
		method, path, _ := strings.Cut(ep, " ")
		for _, chunked := range []bool{false, true} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			head := method + " " + path + " HTTP/1.1\r\nHost: control\r\nContent-Type: application/json\r\n"
			if chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += "Content-Length: 100000000\r\n\r\n"
			}
			io.WriteString(c, head)
			// The body: a string that never ends, written until the server stops reading.
			go func() {
				for i := range 100 << 20 / (64 << 10) {
					chunk := []byte(strings.Repeat("a", 64<<10))
					if i == 0 {
						chunk = []byte(`{"records":["`)
					}
					if chunked {
						chunk = fmt.Appendf(nil, "%x\r\n%s\r\n", len(chunk), chunk)
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("%s chunked=%v: %v", ep, chunked, err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 413 || !strings.Contains(string(b), "too large") {
				t.Errorf("%s chunked=%v: want 413 too large, got %s %s", ep, chunked, resp.Status, b)
			}
			c.Close()
		}
	}
}

// TestControlStrictJSON: every JSON endpoint refuses an object followed by anything but white
// space, and a body that is not an object; nothing is changed.
func TestControlStrictJSON(t *testing.T) {
	d, ts := newControl(t, "")
	fault := `{"mode":"servfail","name":"x.example.test"}`
	rec := `{"records":["t.example.test. 60 IN TXT \"x\""]}`
	for _, tc := range []struct{ method, path, body, err string }{
		{"POST", "/faults", fault + ` garbage`, "after the object"},
		{"POST", "/faults", fault + fault, "after the object"},
		{"POST", "/faults", fault + `]`, "after the object"},
		{"POST", "/faults", `[` + fault + `]`, "send a JSON object"},
		{"POST", "/faults", `null`, "send a JSON object"},
		{"POST", "/records", rec + `x`, "after the object"},
		{"PUT", "/records", rec + `{}`, "after the object"},
		{"DELETE", "/records", `{"name":"t.example.test","type":"TXT"} 1`, "after the object"},
		{"DELETE", "/records", `{"name":"t..example.test"}`, "invalid name"},
	} {
		if code, body := call(t, ts, tc.method, tc.path, tc.body, ""); code != 400 || !strings.Contains(body, tc.err) {
			t.Errorf("%s %s %s: want 400 %q, got %d %s", tc.method, tc.path, tc.body, tc.err, code, body)
		}
	}
	if len(d.faults.List()) != 0 {
		t.Errorf("a refused fault was registered: %v", d.faults.List())
	}
	if code, body := call(t, ts, "POST", "/faults", fault+" \r\n\t ", ""); code != 201 {
		t.Errorf("trailing white space: %d %s", code, body)
	}
}

// TestControlFaultLimitsExplicit: a limit sent with the value that means "no limit" in a fault
// is refused, naming the field: share 0 would apply the fault to every query, count 0 to
// every query, for 0 for ever. Left out (or null), they mean no limit.
func TestControlFaultLimitsExplicit(t *testing.T) {
	d, ts := newControl(t, "")
	for _, tc := range []struct{ limit, err string }{
		{`"share":0`, "share 0 is not in (0, 1]"},
		{`"share":0.0`, "share 0.0 is not in (0, 1]"},
		{`"share":-0`, "share -0 is not in (0, 1]"},
		{`"share":1e-400`, "share 1e-400 is not in (0, 1]"},
		{`"share":-0.5`, "share -0.5 is not in (0, 1]"},
		{`"share":1.5`, "share 1.5 is not in (0, 1]"},
		{`"share":NaN`, "bad JSON"},
		{`"share":"NaN"`, "Spec.share"},
		{`"share":1e999`, "bad JSON"},
		{`"count":0`, "count 0"},
		{`"count":-1`, "count must not be negative"},
		{`"for":0`, "for 0 is an empty window"},
		{`"for":"0s"`, `for \"0s\" is an empty window`},
	} {
		body := `{"mode":"servfail","name":"x.example.test",` + tc.limit + `}`
		if code, resp := call(t, ts, "POST", "/faults", body, ""); code != 400 || !strings.Contains(resp, tc.err) {
			t.Errorf("%s: want 400 %q, got %d %s", body, tc.err, code, resp)
		}
	}
	if len(d.faults.List()) != 0 {
		t.Fatalf("a refused fault was registered: %v", d.faults.List())
	}
	for _, limit := range []string{`"share":1`, `"share":0.25`, `"share":null`, `"count":1`, `"count":null`, `"for":"1s"`} {
		body := `{"mode":"servfail","name":"x.example.test",` + limit + `}`
		if code, resp := call(t, ts, "POST", "/faults", body, ""); code != 201 {
			t.Errorf("%s: want 201, got %d %s", body, code, resp)
		}
	}
}

// TestControlTooManyFaults: past the registry's limit a fault is refused with 409 Conflict
// (the request is fine, the state is full), and the message says what to do.
func TestControlTooManyFaults(t *testing.T) {
	d, ts := newControl(t, "")
	d.faults.MaxFaults = 3
	for i := range 3 {
		if code, resp := call(t, ts, "POST", "/faults", fmt.Sprintf(`{"mode":"servfail","name":"n%d.example.test"}`, i), ""); code != 201 {
			t.Fatalf("fault %d: %d %s", i+1, code, resp)
		}
	}
	code, resp := call(t, ts, "POST", "/faults", `{"mode":"servfail","name":"more.example.test"}`, "")
	if code != 409 || !strings.Contains(resp, "remove some first") {
		t.Errorf("fault 4: want 409 too many faults, got %d %s", code, resp)
	}
}

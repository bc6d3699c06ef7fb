package check

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

func TestNotADomain(t *testing.T) {
	for _, d := range []string{"", ".", "exa mple.test", "192.0.2.1", "[2001:db8::1]", "user@example.test", "a..b", "http://example.test", strings.Repeat("a", 64) + ".test"} {
		if _, err := Run(context.Background(), d, Config{Resolver: &stsResolver{}}); !errors.Is(err, ErrNotDomain) {
			t.Errorf("%q: %v, want ErrNotDomain", d, err)
		}
	}
}

// A resolver that never answers: every lookup is an item naming the step and the timeout,
// and the check ends in bounded time.
func TestResolverTimeout(t *testing.T) {
	start := time.Now()
	rep, err := Run(context.Background(), "example.test", Config{Resolver: &stsResolver{block: true}, Iterative: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a check with a dead resolver took %v", took)
	}
	if rep.ExitStatus() != 2 {
		t.Errorf("exit status %d, want 2", rep.ExitStatus())
	}
	found := false
	for _, it := range rep.Items {
		found = found || it.Verdict == Fail && strings.Contains(it.Detail, "no answer within 200ms")
	}
	if !found {
		t.Errorf("no item says the resolver timed out: %+v", rep.Items)
	}
	for _, p := range rep.Predictions {
		if p.Action != "defer" {
			t.Errorf("%s: %s with a dead resolver, want defer", p.Sender, p.Action)
		}
	}
}

// An MX host that accepts the connection and says nothing: the STARTTLS item says which
// step timed out.
func TestHostHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent
		}
	}()
	port, _ := strconv.Atoi(strings.Split(ln.Addr().String(), ":")[1])
	r := (&stsResolver{}).
		set("example.test.", dns.TypeMX, resolver.Secure, dns.RcodeSuccess, "example.test. 300 IN MX 10 mx.example.test.").
		set("mx.example.test.", dns.TypeA, resolver.Secure, dns.RcodeSuccess, "mx.example.test. 300 IN A 127.0.0.1").
		set("mx.example.test.", dns.TypeAAAA, resolver.Secure, dns.RcodeSuccess).
		set("_25._tcp.mx.example.test.", dns.TypeTLSA, resolver.Secure, dns.RcodeSuccess,
			"_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1")
	start := time.Now()
	rep, err := Run(context.Background(), "example.test", Config{Resolver: r, Port: port, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a check of a silent host took %v", took)
	}
	var got *Item
	for i, it := range rep.Items {
		if it.Name == "STARTTLS" {
			got = &rep.Items[i]
		}
	}
	if got == nil || got.Verdict != Fail || !strings.Contains(got.Detail, "reading the greeting of 127.0.0.1:"+strconv.Itoa(port)+": no answer within 300ms") {
		t.Fatalf("STARTTLS item: %+v", got)
	}
	for _, p := range rep.Predictions {
		if p.Action != "defer" {
			t.Errorf("%s: %s to a silent host, want defer", p.Sender, p.Action)
		}
	}
}

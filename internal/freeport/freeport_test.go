package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestGet: 300 ports, all different, each free for UDP and TCP when handed out, below the
// ephemeral range.
func TestGet(t *testing.T) {
	lo, hi := window()
	seen := map[int]bool{}
	for range 300 {
		p, err := Get("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < lo || p >= hi {
			t.Fatalf("port %d: handed out twice, or outside [%d, %d)", p, lo, hi)
		}
		seen[p] = true
	}
	p, _ := Get("127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	for _, n := range []string{"tcp", "udp"} {
		var err error
		if n == "tcp" {
			var l net.Listener
			if l, err = net.Listen(n, addr); err == nil {
				l.Close()
			}
		} else {
			var c net.PacketConn
			if c, err = net.ListenPacket(n, addr); err == nil {
				c.Close()
			}
		}
		if err != nil {
			t.Errorf("%s %s not free: %v", n, addr, err)
		}
	}
}

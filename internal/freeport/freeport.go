// Package freeport hands out ports for the servers a test or a lab starts: free for both UDP
// and TCP when handed out, and never handed out twice in one process.
//
// Never twice: CoreDNS listens with SO_REUSEPORT, so two servers given the same port both
// bind it and the kernel shares the queries between them (a validator then saw one lab's
// DS signed by a key of the other's). Below the kernel's ephemeral range: a port from that
// range can go to any process's outgoing socket (Unbound's own queries, a client in a parallel
// test package) between the check and the server's bind, which then fails with "address
// already in use".
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Get returns a port of host free for both UDP and TCP now, that no earlier Get of this
// process returned.
func Get(host string) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	lo, hi := window()
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if handed[port] {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", addr)
		tl.Close()
		if err != nil {
			continue
		}
		ul.Close()
		handed[port] = true
		return port, nil
	}
	return 0, errors.New("no free UDP+TCP port found on " + host)
}

// window is the range Get draws from: the 12 000 ports below the ephemeral range
// (net.ipv4.ip_local_port_range, 32768 when it cannot be read).
func window() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 13024 {
				hi = n
			}
		}
	}
	return hi - 12000, hi
}

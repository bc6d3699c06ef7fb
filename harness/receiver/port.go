package receiver

import (
	"fmt"
	"net"
)

// FreePort returns a TCP port free on every one of ips, so that receivers on several
// loopback addresses can share one port (a sender uses one SMTP port for every MX host).
func FreePort(ips []string) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		ln.Close()
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on every address of %v", ips)
}

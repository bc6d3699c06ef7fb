package danezone_test

import (
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"

	_ "github.com/danelab/danelab/server" // our CoreDNS build, with danezone in its directives
)

// startUDP runs CoreDNS with danezone serving pkt.test on a free UDP port of 127.0.0.1 and
// returns that address.
func startUDP(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	zone := "$ORIGIN pkt.test.\n$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, "pkt.test.zone"), []byte(zone), 0o644); err != nil {
		t.Fatal(err)
	}
	corefile := ".:0 {\n bind 127.0.0.1\n danezone " + dir + " {\n  keys " + filepath.Join(dir, "keys") + "\n }\n}\n"
	_, udp := startCoreDNS(t, corefile)
	return udp
}

// startCoreDNS runs our CoreDNS build with corefile (on port 0) until the test ends, and
// returns its TCP and UDP addresses.
func startCoreDNS(t *testing.T, corefile string) (tcp, udp string) {
	t.Helper()
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), ServerTypeName: "dns"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		inst.Stop()
		inst.ShutdownCallbacks()
	})
	for _, s := range inst.Servers() {
		if a := s.Addr(); a != nil {
			tcp = a.String()
		}
		if a := s.LocalAddr(); a != nil {
			udp = a.String()
		}
	}
	if tcp == "" || udp == "" {
		t.Fatal("no TCP or UDP listener")
	}
	return tcp, udp
}

// exchangeRaw sends wire bytes over UDP and returns the raw response.
func exchangeRaw(t *testing.T, addr string, wire []byte) []byte {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	return buf[:n]
}

// Wire-format pieces, written out by hand so that no library fixes the message up.
func header(id uint16, opcode int, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], uint16(opcode)<<11)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	return b
}

var (
	qSOA = []byte("\x03pkt\x04test\x00\x00\x06\x00\x01") // pkt.test. SOA IN
	qA   = []byte("\x02ns\x03pkt\x04test\x00\x00\x01\x00\x01")
	// OPT: root owner, type 41, UDP size 1232, extended rcode 0, version 0, DO, no options.
	opt = []byte("\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00")
)

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Malformed and unsupported requests over a real socket, through CoreDNS's server and danezone:
// each gets the rcode the RFCs ask for, and the server keeps answering.
func TestMalformedPackets(t *testing.T) {
	addr := startUDP(t)
	for _, tc := range []struct {
		name   string
		wire   []byte
		rcode  int
		opcode int
	}{
		{"valid query", cat(header(1, dns.OpcodeQuery, 1, 0, 0, 1), qA, opt), dns.RcodeSuccess, dns.OpcodeQuery},
		// RFC 6891 §6.1.1: more than one OPT RR is a FORMERR.
		{"two OPT records", cat(header(2, dns.OpcodeQuery, 1, 0, 0, 2), qA, opt, opt), dns.RcodeFormatError, dns.OpcodeQuery},
		// RFC 6891 §6.1.1: the OPT RR belongs in the additional section.
		{"OPT in the answer section", cat(header(3, dns.OpcodeQuery, 1, 1, 0, 0), qA, opt), dns.RcodeFormatError, dns.OpcodeQuery},
		{"OPT in the authority section", cat(header(4, dns.OpcodeQuery, 1, 0, 1, 0), qA, opt), dns.RcodeFormatError, dns.OpcodeQuery},
		// danezone has no secondaries to notify it (RFC 1996): not implemented, not a query.
		{"NOTIFY", cat(header(5, dns.OpcodeNotify, 1, 0, 0, 0), qSOA), dns.RcodeNotImplemented, dns.OpcodeNotify},
		{"NOTIFY with EDNS", cat(header(6, dns.OpcodeNotify, 1, 0, 0, 1), qSOA, opt), dns.RcodeNotImplemented, dns.OpcodeNotify},
		// Answered by miekg/dns before CoreDNS sees them.
		{"UPDATE", cat(header(7, dns.OpcodeUpdate, 1, 0, 0, 0), qSOA), dns.RcodeNotImplemented, dns.OpcodeUpdate},
		{"two questions", cat(header(8, dns.OpcodeQuery, 2, 0, 0, 0), qSOA, qA), dns.RcodeFormatError, dns.OpcodeQuery},
		{"question cut short", cat(header(9, dns.OpcodeQuery, 1, 0, 0, 0), qSOA[:5]), dns.RcodeFormatError, dns.OpcodeQuery},
		// A header claiming a question and carrying none unpacks as a message without a
		// question, which CoreDNS's server answers with SERVFAIL before any plugin runs
		// (core/dnsserver/server.go, Server.ServeDNS). FORMERR would be right (RFC 1035 §4.1.1);
		// this pins the behaviour the README documents, so that a CoreDNS change shows here.
		{"QDCOUNT 1 without a question", header(10, dns.OpcodeQuery, 1, 0, 0, 0), dns.RcodeServerFailure, dns.OpcodeQuery},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := exchangeRaw(t, addr, tc.wire)
			m := new(dns.Msg)
			if err := m.Unpack(raw); err != nil {
				t.Fatalf("response does not unpack: %v (% x)", err, raw)
			}
			if m.Id != binary.BigEndian.Uint16(tc.wire) || !m.Response {
				t.Errorf("response id %d, QR %v: not a response to the request", m.Id, m.Response)
			}
			if m.Rcode != tc.rcode || m.Opcode != tc.opcode {
				t.Errorf("rcode %s opcode %s, want rcode %s opcode %s\n%s", dns.RcodeToString[m.Rcode], dns.OpcodeToString[m.Opcode],
					dns.RcodeToString[tc.rcode], dns.OpcodeToString[tc.opcode], m)
			}
			if tc.rcode != dns.RcodeSuccess && (len(m.Answer) > 0 || len(m.Ns) > 0) {
				t.Errorf("an error response with records:\n%s", m)
			}
		})
	}
	// Still serving.
	m := new(dns.Msg)
	m.SetQuestion("ns.pkt.test.", dns.TypeA)
	r, err := dns.Exchange(m, addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("after the malformed packets: %v %v", err, r)
	}
}

package danezone_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/plugin/danezone/keys"
)

// TestSilentParentHoldsUpNothing: a parental agent that accepts connections and never answers
// (each check runs into its timeout) holds up no reload: the parent is asked off the poll, so
// a zone file renamed into place is served at the next poll while the zone waits for it.
func TestSilentParentHoldsUpNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	dir := t.TempDir()
	writeZone(t, dir, xZone)
	// A signed zone: its key made before the start.
	if _, err := keys.Generate(filepath.Join(dir, "keys"), "x.test.", dns.ECDSAP256SHA256); err != nil {
		t.Fatal(err)
	}
	corefile := fmt.Sprintf(`.:0 {
 bind 127.0.0.1
 danezone %s {
  keys %s
  reload 50ms
  timing dnskey-ttl 1s max-zone-ttl 1s propagation 1s safety 1s parent-ds-ttl 1s parent-propagation 1s
  parental_agents %s
  insecure x.test
 }
}
`, filepath.Join(dir, "zones"), filepath.Join(dir, "keys"), ln.Addr())
	tcp, _ := startCoreDNS(t, corefile)
	c := &dns.Client{Net: "tcp", Timeout: time.Second}
	// The zone asks for its DS to go, and its plan asks the silent parent from then on, every
	// second, each time for the checker's 3 s timeout.
	time.Sleep(1500 * time.Millisecond)
	for i := range 4 {
		name := fmt.Sprintf("new%d.x.test.", i)
		writeZone(t, dir, xZone+fmt.Sprintf("new%d A 192.0.2.%d\n", i, 100+i))
		written := time.Now()
		for {
			m := new(dns.Msg)
			m.SetQuestion(name, dns.TypeA)
			r, _, err := c.Exchange(m, tcp)
			if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
				break
			}
			if time.Since(written) > time.Second {
				t.Fatalf("%s not served %v after the file was renamed into place: the poll is held up", name, time.Since(written))
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(700 * time.Millisecond)
	}
}

package integration

import (
	"net"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

func TestZZPostfixTwo(t *testing.T) {
	ips := pfSpareIPs(t, 25, 1, false, "127.0.0.71", "127.0.0.72")
	rip := pfSpareIPs(t, 53, 1, true, "127.0.0.56", "127.0.0.160")[0]
	r, err := receiver.Start(receiver.Config{Addr: net.JoinHostPort(ips[0], "25"), Hostname: "mx1.good.test", Personality: receiver.SelfSigned})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	d, _ := tlsa.Data(r.Identity().Leaf, 1, 1)
	l, err := lab.Start(lab.Config{Domains: []lab.Domain{{Name: "good.test", Records: []string{"@ MX 10 mx1", "mx1 A " + ips[0], "_25._tcp.mx1 TLSA 3 1 1 " + d}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	pfLabUnbound(t, l, rip)
	var ms []*postfixMTA
	for i := range 2 {
		t.Run("start", func(t *testing.T) {})
		_ = i
	}
	for _, h := range []string{"one.sender.test", "two.sender.test"} {
		ms = append(ms, startPostfix(t, postfixOptions{ResolverIP: rip, MyHostname: h}))
	}
	for _, m := range ms {
		q, err := m.Send("a@"+m.MyHostname, "b@good.test", "x", "y")
		if err != nil {
			t.Fatal(err)
		}
		d, err := m.WaitDelivery(q, "b@good.test", 30*time.Second, "sent")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s %v", m.MyHostname, d.Raw, d.TLS != nil)
		t.Logf("procs %v", m.Processes())
	}
	ms[0].Stop()
	t.Logf("after stop: %v; other: %d", ms[0].Processes(), len(ms[1].Processes()))
	if _, err := ms[0].Queue(); err == nil {
		t.Errorf("queue of a stopped instance")
	} else {
		t.Logf("queue after stop: %v", err)
	}
	if len(r.Deliveries()) != 2 {
		t.Errorf("deliveries %d", len(r.Deliveries()))
	}
}

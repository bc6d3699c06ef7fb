package integration

import (
	"syscall"
	"testing"
	"time"
)

func TestZZPostfixStop(t *testing.T) {
	// a resolver that validates nothing: must fail early with a clear message
	t.Run("noresolver", func(t *testing.T) {
		startPostfix(t, postfixOptions{ResolverIP: "127.0.0.201"})
	})
	// no probe: starts without a resolver
	m := startPostfix(t, postfixOptions{ResolverIP: "127.0.0.201", Settings: map[string]string{"dnssec_probe": ""}})
	q, err := m.Send("a@sender.test", "b@good.test", "x", "y")
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.WaitDelivery(q, "b@good.test", 30*time.Second)
	t.Logf("%s %v", d.Raw, err)
	qq, err := m.Queue()
	t.Logf("%+v %v", qq, err)
	_ = syscall.Kill(m.MasterPID, syscall.SIGSTOP)
	start := time.Now()
	m.Stop()
	t.Logf("stop took %v; left %v", time.Since(start), m.Processes())
}

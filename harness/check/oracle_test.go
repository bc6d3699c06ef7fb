package check_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/check"
	"github.com/danelab/danelab/harness/scenario"
)

// unpredictable are the scenarios whose first attempt a check at the start cannot foresee,
// with the reason.
var unpredictable = map[string]string{}

// TestOracle: in fixture mode every shipped scenario has its own domain; danelab check on it at
// the scenario's start must predict its first expected attempt, for every profile the
// scenario states (exchange, postfix).
func TestOracle(t *testing.T) {
	f, newResolver := labFixture(t, "127.10", func(string) bool { return true })
	in := f.Info()

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	start := time.Now()
	var slowest time.Duration
	checked, compared := 0, 0
	for _, sc := range in.Scenarios {
		first := map[string]scenario.Attempt{}
		for prof, e := range sc.Profiles {
			if len(e.Expect) > 0 && (e.Expect[0].At == nil || *e.Expect[0].At == 0) {
				first[prof] = e.Expect[0]
			}
		}
		if len(first) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rep, err := check.Run(context.Background(), sc.Domain, check.Config{Resolver: newResolver(), Iterative: true, Port: in.SMTPPort, Timeout: 3 * time.Second})
			mu.Lock()
			defer mu.Unlock()
			checked++
			if err != nil {
				t.Errorf("%s: %v", sc.Name, err)
				return
			}
			slowest = max(slowest, rep.Took)
			// The items agree with the predictions: mail that would not be delivered has a
			// failure to fix, at the host the attempt ended at (or in the MX).
			for _, pr := range rep.Predictions {
				if pr.Action != "defer" && pr.Action != "bounce" {
					continue
				}
				found := false
				for _, it := range rep.Items {
					found = found || it.Verdict == check.Fail && (it.Group == "mx" || it.Group == "dnssec" || it.Group == "host "+pr.Host)
				}
				if !found {
					t.Errorf("%s (%s): predicted %s %s at %s, and no failing item says why", sc.Name, pr.Sender, pr.Action, pr.Code, pr.Host)
				}
			}
			for _, pr := range rep.Predictions {
				want, ok := first[pr.Sender]
				if !ok {
					continue
				}
				compared++
				got := pr.Code
				if pr.Action == "deliver" {
					got = "delivered"
				}
				if got == want.Status && (want.TLS == "" || pr.Action != "deliver" || want.TLS == pr.Security) {
					continue
				}
				if why, ok := unpredictable[sc.Name]; ok {
					t.Logf("%s (%s): predicted %s %s, the scenario says %s: %s", sc.Name, pr.Sender, got, pr.Security, want.Status, why)
					continue
				}
				t.Errorf("%s (%s): predicted %s (%s %s: %s), the first attempt is %s %s", sc.Name, pr.Sender, got, pr.Action, pr.Security, pr.Reason, want.Status, want.TLS)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d scenarios checked, %d first attempts predicted, in %v (slowest check %v)", checked, compared, time.Since(start).Round(time.Millisecond), slowest.Round(time.Millisecond))
	if compared < checked {
		t.Errorf("%d predictions compared for %d scenarios", compared, checked)
	}
	if checked < len(in.Scenarios)/2 {
		t.Errorf("only %d of %d scenarios checked", checked, len(in.Scenarios))
	}
}

// BenchmarkCheckTwoMX is a whole check of a lab domain with two MX hosts (both with TLSA,
// both answering STARTTLS): the DNSSEC chain from the lab root, every lookup, both TLS
// handshakes and the dry run of a delivery.
func BenchmarkCheckTwoMX(b *testing.B) {
	f, newResolver := labFixture(b, "127.12", func(name string) bool { return name == "mx-mixed-fallback" })
	in := f.Info()
	for b.Loop() {
		// A new resolver each time: nothing cached, as for a person running danelab check.
		rep, err := check.Run(context.Background(), in.Scenarios[0].Domain, check.Config{Resolver: newResolver(), Iterative: true, Port: in.SMTPPort})
		if err != nil {
			b.Fatal(err)
		}
		hosts := map[string]bool{}
		for _, it := range rep.Items {
			if strings.HasPrefix(it.Group, "host ") {
				hosts[it.Group] = true
			}
		}
		if len(hosts) != 2 {
			b.Fatalf("%d hosts checked, want 2", len(hosts))
		}
	}
}

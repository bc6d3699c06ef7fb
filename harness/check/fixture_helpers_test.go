package check_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/scenario"
)

// labFixture serves the shipped scenarios that pick accepts on the loopback net loopbackNet
// (each test its own: harness/fixture's TestFixtureNetsDistinct), with the scenario clock
// running an hour per minute so that nothing changes during a check. It returns the fixture,
// and a function that makes a fresh validating resolver for its lab (nothing cached).
func labFixture(tb testing.TB, loopbackNet string, pick func(name string) bool) (*fixture.Fixture, func() *resolver.Resolver) {
	tb.Helper()
	all, err := scenario.LoadDir("../scenarios")
	if err != nil {
		tb.Fatal(err)
	}
	var chosen []*scenario.Scenario // every profile's variant, as the fixture wants them
	for _, s := range all {
		if pick(s.Name) {
			chosen = append(chosen, s)
		}
	}
	port, err := receiver.FreePort([]string{loopbackNet + ".0.250", loopbackNet + ".1.11", loopbackNet + ".1.12", loopbackNet + ".2.11"})
	if err != nil {
		tb.Fatal(err)
	}
	f, err := fixture.Start(fixture.Config{Scenarios: chosen, SMTPPort: port, Net: loopbackNet, Listen: "127.0.0.1:0", Minute: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.Stop)
	if err := f.Ready(); err != nil {
		tb.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(f.Lab.Addr)
	var dnsPort int
	fmt.Sscan(p, &dnsPort)
	return f, func() *resolver.Resolver {
		return resolver.New(resolver.Config{TrustAnchors: f.Lab.Anchor, Roots: []string{f.Lab.Addr}, Port: dnsPort, Timeout: 2 * time.Second})
	}
}

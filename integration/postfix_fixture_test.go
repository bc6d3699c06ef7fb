package integration

// Postfix 3.7 (Debian's package) in fixture mode (mta_fixtures_test.go): a private instance in
// a mount namespace whose resolv.conf names the fixture's Unbound (postfix_helpers_test.go),
// short retries and a 2-minute lifetime. Every scenario must go as the postfix profile
// expects; the differences between real Postfix and RFC 7672 are in the scenarios' postfix
// expectations (docs/mta-conformance.md).

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/internal/peer"
)

func init() {
	registerMTAFixture(mtaFixture{Profile: "postfix", Net: "127.6",
		ResolverIPs: []string{"127.0.0.57", "127.0.0.58", "127.0.0.59", "127.0.0.61"},
		Start: func(t *testing.T, dir, resolverIP string, _ fixture.Info) fixtureMTA {
			for _, p := range []string{"postfix", "unbound", "unshare", "mount"} {
				peer.Need(t, p)
			}
			if os.Geteuid() != 0 {
				t.Fatal("needs root: receivers on port 25, mount namespaces (CI runs as root)")
			}
			return postfixFixtureMTA{startPostfix(t, postfixOptions{Dir: dir, ResolverIP: resolverIP, MyHostname: "mta.sender.test"})}
		}})
}

// postfixFixtureMTA adapts the Postfix helper to fixtureMTA.
type postfixFixtureMTA struct{ m *postfixMTA }

func (p postfixFixtureMTA) Send(_ *testing.T, from, rcpt, subject, mid string) error {
	_, err := p.m.SendMail(postfixMail{From: from, To: []string{rcpt}, Subject: subject,
		Body: "scenario " + strings.TrimPrefix(subject, "danelab ") + "\n", MessageID: mid})
	return err
}

func (p postfixFixtureMTA) Version() string {
	v, _ := exec.Command("postconf", "-h", "mail_version").Output()
	return strings.TrimSpace("Postfix " + string(v))
}

func (p postfixFixtureMTA) Log() string { return p.m.Log() }

package integration

// Exim 4.96 in fixture mode (mta_fixtures_test.go): Debian's exim4-daemon-light, unpacked by
// .ci/install-exim beside Postfix (whose package conflicts with exim4's), its queue runner in
// a mount namespace whose resolv.conf names the fixture's Unbound. Where Exim departs from RFC
// 7672 the scenario files say so in their exim expectations (docs/mta-conformance.md).

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/internal/peer"
)

// eximDefaultPath is where .ci/install-exim unpacks Exim; env DANELAB_EXIM overrides it. An
// exim4 in PATH is not used: it would be the machine's MTA with its own configuration.
const eximDefaultPath = "/opt/danelab-exim/usr/sbin/exim4"

// eximConfigure is the test's Exim configure file: a DANE sender (RFC 7672: DANE where the
// TLSA records are secure, hosts_try_dane) with nothing local, so bounces leave by SMTP to the
// fixture's mailbox like any other mail. Short retries like the Postfix test's: every 10 s,
// retry timeout 2 minutes (the last fault heals 40 s after the start). Placeholders: %[1]s the
// work directory, %[2]s the exim binary.
const eximConfigure = `# written by integration/exim_fixture_test.go
primary_hostname = mta.sender.test
qualify_domain = sender.test
domainlist local_domains =
exim_path = %[2]s
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
pid_file_path = %[1]s/exim.pid
log_selector = +tls_certificate_verified +tls_peerdn +tls_sni +outgoing_port +deliver_time +dnssec +delivery_size +received_recipients
# DNSSEC: set the DO bit and believe the AD bit of the (validating, loopback) resolver.
dns_dnssec_ok = 1
dns_retrans = 2s
dns_retry = 2
# No listener: messages come in on the command line; the daemon only runs the queue.
daemon_smtp_ports =
local_interfaces =
# No delay warnings: the only DSN for a message is its bounce.
delay_warning =
keep_environment =
remote_max_parallel = 4
queue_run_max = 10

begin routers

dnslookup:
  driver = dnslookup
  transport = remote_smtp
  dnssec_request_domains = *
  no_more

begin transports

remote_smtp:
  driver = smtp
  hosts_try_dane = *
  # RFC 8996: no TLS 1.0/1.1. Exim 4.96 with Debian's GnuTLS (priority NORMAL) negotiates
  # TLS 1.0 with a server that offers nothing newer, and DANE-authenticates it (measured).
  tls_require_ciphers = NORMAL:-VERS-TLS1.0:-VERS-TLS1.1
  connect_timeout = 10s
  command_timeout = 30s

begin retry

*   *   F,2m,10s

begin rewrite

begin authenticators
`

// eximMTA is a running Exim: its queue-runner daemon inside a mount namespace whose
// resolv.conf names the fixture's resolver.
type eximMTA struct {
	bin, dir, conf, resolverIP string
	daemon                     *exec.Cmd
	done                       chan struct{}
}

func startExim(t *testing.T, bin, dir, resolverIP string) *eximMTA {
	t.Helper()
	u, err := user.Lookup("Debian-exim")
	if err != nil {
		peer.Absent(t, "no user Debian-exim (Exim's compiled-in exim_user): run .ci/install-exim")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pfTraversable(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"spool", "log"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	m := &eximMTA{bin: bin, dir: dir, conf: filepath.Join(dir, "configure"), resolverIP: resolverIP, done: make(chan struct{})}
	if err := os.WriteFile(m.conf, []byte(fmt.Sprintf(eximConfigure, dir, bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := output(30*time.Second, "", bin, "-C", m.conf, "-bV"); err != nil {
		t.Fatalf("exim -bV: %v\n%s", err, out)
	} else if !strings.Contains(string(out), " DANE") {
		t.Fatalf("this Exim has no DANE support:\n%s", out)
	}
	// -bdf: stay in the foreground, so the test holds the PID; -q5s: a queue run every 5 s
	// (retries are due every 10 s).
	m.daemon = tlInLabResolver(t, dir, resolverIP, bin, "-C", m.conf, "-bdf", "-q5s")
	lf, err := os.Create(filepath.Join(dir, "daemon.out"))
	if err != nil {
		t.Fatal(err)
	}
	m.daemon.Stdout, m.daemon.Stderr = lf, lf
	m.daemon.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.daemon.Wait(); lf.Close(); close(m.done) }()
	t.Cleanup(func() {
		// The daemon and the deliveries it forked share its process group.
		stopGroup(m.daemon.Process.Pid, m.done, 10*time.Second)
	})
	return m
}

// Send submits a message and has it delivered at once in the background (-odb), inside the
// lab resolver's namespace like the daemon.
func (m *eximMTA) Send(t *testing.T, from, to, subject, mid string) error {
	cmd := tlInLabResolver(t, m.dir, m.resolverIP, m.bin, "-C", m.conf, "-odb", "-i", "-f", from, "--", to)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("From: <%s>\nTo: <%s>\nSubject: %s\nMessage-ID: %s\n\nscenario %s\n", from, to, subject, mid, subject))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("exim -odb %s: %v\n%s", to, err, out)
	}
	return nil
}

// Version returns "Exim 4.96" from the first line of exim -bV ("Exim version 4.96 #2 built …").
func (m *eximMTA) Version() string {
	out, _ := output(30*time.Second, "", m.bin, "-C", m.conf, "-bV")
	if f := strings.Fields(strings.SplitN(string(out), "\n", 2)[0]); len(f) >= 3 && f[1] == "version" {
		return "Exim " + f[2]
	}
	return "Exim"
}

// Log returns Exim's main log and panic log.
func (m *eximMTA) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "log", "mainlog"))
	p, _ := os.ReadFile(filepath.Join(m.dir, "log", "paniclog"))
	d, _ := os.ReadFile(filepath.Join(m.dir, "daemon.out"))
	return string(b) + string(p) + string(d)
}

// eximDiffers holds the scenarios where Exim 4.96 does what RFC 7672 allows but danelab's own
// sender (and so the expectations, which `danelab run` also plays with that sender) does not.
// They are not sent; the reason is logged.
var eximDiffers = map[string]string{
	// RFC 7672 §3.2.3: with DANE-TA the TLSA base domain is the reference identifier; the
	// next-hop domain MAY be accepted too. Exim checks the MX host name only ("certificate
	// invalid"), danelab's sender accepts the next-hop domain: Exim defers until the bounce.
	"tlsa-211-nexthop-name": "Exim accepts only the MX host name as reference identifier for DANE-TA (RFC 7672 §3.2.3 lets a sender add the next-hop domain; danelab's sender does)",
}

func init() {
	registerMTAFixture(mtaFixture{Profile: "exim", Net: "127.15",
		ResolverIPs: []string{"127.0.0.62", "127.0.0.63", "127.0.0.64", "127.0.0.65"},
		Differs:     eximDiffers,
		Start: func(t *testing.T, dir, resolverIP string, _ fixture.Info) fixtureMTA {
			for _, p := range []string{"unbound", "unshare", "mount"} {
				peer.Need(t, p)
			}
			exim := mtaBinary(t, eximDefaultPath, "DANELAB_EXIM", "run .ci/install-exim (make deps does)")
			if os.Geteuid() != 0 {
				t.Fatal("needs root: receivers on port 25, mount namespaces (CI runs as root)")
			}
			return startExim(t, exim, dir, resolverIP)
		}})
}

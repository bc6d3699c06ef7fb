package integration

// mox v0.0.15 in fixture mode (mta_fixtures_test.go), built by .ci/install-gomtas from its
// own module (integration/mtas/mox). A private instance: configuration and data in the test's
// directory, `mox serve` inside a mount namespace whose resolv.conf names the fixture's
// Unbound (mox's resolver, github.com/mjl-/adns, reads it and trusts the AD bit of a loopback
// or trust-ad resolver), messages submitted by SMTP as the account alice@sender.test.
//
// Two things of mox's own are bridged, and nothing else:
//   - Time. mox retries 7.5 min × 2^n after a failure and gives up after 8 attempts (~16 h),
//     with no setting to shorten it. The test runs `mox queue schedule -now 0` every
//     moxKickEvery, which brings each deferred message's next attempt forward without
//     touching its attempt count: the 8 attempts happen in about two minutes.
//   - DSNs. mox delivers the DSNs of its own accounts' messages into the account's Inbox,
//     never by SMTP (queue/dsn.go: "we are delivering to local users"). The test reads the
//     Inbox over IMAP (curl) and hands each DSN, unchanged, to the fixture's mailbox by SMTP
//     over STARTTLS with the null sender, as a forwarding MTA would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/internal/peer"
)

// goMTAPrefix is where .ci/install-gomtas puts the Go MTAs (env DANELAB_MTAS_PREFIX there).
const goMTAPrefix = "/opt/danelab-mtas/bin"

const (
	moxPassword = "danelab-fixture-alice"
	// Longer than an attempt takes (each DNS query gives up after 5 s): a kick during an
	// attempt would make mox retry at once after it, spending attempts faster.
	moxKickEvery = 20 * time.Second
	moxDSNPoll   = 3 * time.Second
)

// moxConf is mox.conf: %[1]s the data directory, %[2]s the listener's IP. mox starts as root to
// bind, then runs as User; NoFixPermissions keeps it from changing the working directory's
// owner and mode.
const moxConf = `DataDir: %[1]s
User: nobody
NoFixPermissions: true
LogLevel: info
PackageLogLevels:
	smtpclient: debug
	queue: debug
Hostname: mta.sender.test
Postmaster:
	Account: alice
	Mailbox: Inbox
Listeners:
	local:
		IPs:
			- %[2]s
		Submission:
			Enabled: true
			Port: 587
			NoRequireSTARTTLS: true
		IMAP:
			Enabled: true
			Port: 143
			NoRequireSTARTTLS: true
`

// moxDomains is domains.conf. DKIM: mox sends TLS-RPT reports only from a domain that signs.
const moxDomains = `Domains:
	sender.test:
		DKIM:
			Selectors:
				danelab:
					PrivateKeyFile: dkim.pem
			Sign:
				- danelab
Accounts:
	alice:
		Domain: sender.test
		Destinations:
			alice@sender.test: nil
		KeepRetiredMessagePeriod: 24h
`

func init() {
	registerMTAFixture(mtaFixture{Profile: "mox", Net: "127.16",
		ResolverIPs: []string{"127.0.0.66", "127.0.0.67", "127.0.0.68", "127.0.0.69"},
		After:       moxTLSRPT,
		Start: func(t *testing.T, dir, resolverIP string, in fixture.Info) fixtureMTA {
			for _, p := range []string{"unbound", "unshare", "mount", "curl"} {
				peer.Need(t, p)
			}
			bin := mtaBinary(t, goMTAPrefix+"/mox", "DANELAB_MOX", "run .ci/install-gomtas (make deps does)")
			if os.Geteuid() != 0 {
				t.Fatal("needs root: receivers on port 25, mount namespaces (CI runs as root)")
			}
			return startMox(t, bin, dir, resolverIP, in)
		}})
}

// moxMTA is a running mox with the test's queue kicker and DSN relay.
type moxMTA struct {
	bin, dir, conf, resolverIP, ip string
	mailbox, sender                string

	mu      sync.Mutex
	proc    *exec.Cmd
	done    chan struct{}
	logFile *os.File
	relayed map[string]bool // IMAP UIDs handed to the fixture
	down    atomic.Bool     // mox is being restarted: the kicker and the relay wait
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

func startMox(t *testing.T, bin, dir, resolverIP string, in fixture.Info) *moxMTA {
	t.Helper()
	ip, err := tlSpareLoopback(587, false, "127.0.0.76", "127.0.0.77", "127.0.0.78")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("mox runs as nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	m := &moxMTA{bin: bin, dir: dir, conf: filepath.Join(dir, "config", "mox.conf"), resolverIP: resolverIP, ip: ip,
		mailbox: in.Mailbox, sender: in.Sender, relayed: map[string]bool{}}
	data := filepath.Join(dir, "data")
	for _, d := range []string{filepath.Join(dir, "config"), data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(data, uid, gid); err != nil {
		t.Fatal(err)
	}
	key, err := output(30*time.Second, "", bin, "dkim", "gened25519")
	if err != nil {
		t.Fatalf("mox dkim gened25519: %v", err)
	}
	for name, content := range map[string]string{
		"mox.conf":     fmt.Sprintf(moxConf, data, ip),
		"domains.conf": moxDomains,
		"dkim.pem":     string(key),
	} {
		if err := os.WriteFile(filepath.Join(dir, "config", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := output(30*time.Second, "", bin, "-config", m.conf, "config", "test"); err != nil {
		t.Fatalf("mox config test: %v\n%s", err, out)
	}
	if m.logFile, err = os.Create(filepath.Join(dir, "mox.log")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	t.Cleanup(func() {
		cancel()
		m.wg.Wait()
		m.halt()
		m.logFile.Close()
	})
	m.run(t)
	// The account's password, set through the running server's control socket.
	if out, err := output(30*time.Second, moxPassword+"\n", bin, "-config", m.conf, "setaccountpassword", "alice"); err != nil {
		t.Fatalf("mox setaccountpassword: %v\n%s", err, out)
	}
	m.wg.Add(2)
	go m.kick(t, ctx)
	go m.relayDSNs(t, ctx)
	return m
}

// run starts `mox serve` in the lab resolver's namespace and waits for its submission port.
func (m *moxMTA) run(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := tlInLabResolver(t, m.dir, m.resolverIP, m.bin, "-config", m.conf, "serve")
	cmd.Stdout, cmd.Stderr = m.logFile, m.logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.proc, m.done = cmd, done
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// Up: the submission listener answers and the control socket (for the CLI) exists.
		c, err := net.DialTimeout("tcp", net.JoinHostPort(m.ip, "587"), time.Second)
		if err == nil {
			c.Close()
			if _, err := os.Stat(filepath.Join(m.dir, "data", "ctl")); err == nil {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("mox serve exited: %v\n%s", cmd.ProcessState, lastLines(m.Log(), 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mox serve: no submission listener on %s:587 or control socket after 30s\n%s", m.ip, lastLines(m.Log(), 40))
		}
	}
}

// halt stops mox (SIGTERM to its process group: it re-executes itself as nobody).
func (m *moxMTA) halt() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return
	}
	stopGroup(m.proc.Process.Pid, m.done, 15*time.Second)
	m.proc = nil
}

// kick brings every deferred message's next attempt forward (see the file comment).
func (m *moxMTA) kick(t *testing.T, ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(moxKickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if m.down.Load() {
			continue
		}
		out, err := output(10*time.Second, "", m.bin, "-config", m.conf, "queue", "schedule", "-now", "0")
		if err != nil && ctx.Err() == nil {
			t.Logf("mox queue schedule -now 0: %v: %s", err, bytes.TrimSpace(out))
		}
	}
}

var imapSearchRE = regexp.MustCompile(`(?m)^\* SEARCH((?: \d+)*)`)

// relayDSNs hands the DSNs mox put in alice's Inbox to the fixture's mailbox.
func (m *moxMTA) relayDSNs(t *testing.T, ctx context.Context) {
	defer m.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(moxDSNPoll):
		}
		if m.down.Load() {
			continue
		}
		out, err := m.curl(ctx, "imap://"+m.ip+"/INBOX", "-X", "UID SEARCH ALL")
		if err != nil {
			if ctx.Err() == nil {
				t.Logf("mox IMAP search: %v", err)
			}
			continue
		}
		sm := imapSearchRE.FindStringSubmatch(string(out))
		if sm == nil {
			continue
		}
		for _, uid := range strings.Fields(sm[1]) {
			if m.relayed[uid] {
				continue
			}
			msg, err := m.curl(ctx, "imap://"+m.ip+"/INBOX;UID="+uid)
			if err == nil {
				err = m.forward(msg)
			}
			if err != nil {
				if ctx.Err() == nil {
					t.Logf("mox DSN UID %s: %v", uid, err)
				}
				continue
			}
			m.relayed[uid] = true
		}
	}
}

func (m *moxMTA) curl(ctx context.Context, url string, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	argv := append([]string{"-sS", "--max-time", "8", "--url", url, "-u", m.sender + ":" + moxPassword}, args...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(cctx, "curl", argv...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("curl %s: %v: %s", url, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// forward delivers msg to the fixture's mailbox as a DSN: null sender, STARTTLS. The fixture
// sees the test's relay, not mox, on the wire: for mox, a DSN's transport and time of arrival
// say nothing of mox (docs/mta-conformance.md).
func (m *moxMTA) forward(msg []byte) error {
	return smtpSend(m.mailbox, "mta.sender.test", "", m.sender, msg, true, nil)
}

// Send submits one message as alice (CRAM-MD5: the listener is plaintext on loopback).
func (m *moxMTA) Send(_ *testing.T, from, rcpt, subject, mid string) error {
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: %s\r\nDate: %s\r\n\r\nscenario %s\r\n",
		from, rcpt, subject, mid, time.Now().Format(time.RFC1123Z), strings.TrimPrefix(subject, "danelab "))
	return smtpSend(net.JoinHostPort(m.ip, "587"), "client.sender.test", from, rcpt, []byte(msg), false, smtp.CRAMMD5Auth(from, moxPassword))
}

// Version returns "mox v0.0.15" (mox version: "v0.0.15-go1.26.8").
func (m *moxMTA) Version() string {
	out, _ := output(10*time.Second, "", m.bin, "version")
	v, _, _ := strings.Cut(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), "-go")
	return strings.TrimSpace("mox " + v)
}

// Log returns mox's log.
func (m *moxMTA) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "mox.log"))
	return string(b)
}

// moxTLSRPTScenario is the scenario whose TLS-RPT report the test has mox send.
const moxTLSRPTScenario = "tlsa-mismatch"

// moxTLSRPTDeviations are where mox v0.0.15's report about moxTLSRPTScenario departs from RFC
// 8460 as danelab reads it (docs/mta-conformance.md): expect must find exactly these.
var moxTLSRPTDeviations = []struct{ diff, why string }{
	{`result type validation-failure, want only tlsa-invalid`,
		"a certificate that matches no TLSA record is reported as validation-failure (reason dane-no-match), not tlsa-invalid (RFC 8460 §4.3.2.1, the DANE policy failure: none of the records in the RRset were found to be valid); mox's source notes the gap (\"todo spec\")"},
	{`no failed session of result type tlsa-invalid`, "the same, seen from the scenario's side"},
}

// moxTLSRPT has mox send its TLS-RPT report about moxTLSRPTScenario now rather than after
// midnight UTC: mox stopped, the scenario domain's results moved to yesterday
// (mox-tlsrptday, built beside mox), mox started again, which reports past days at once.
// The report must reach the fixture's TLS-RPT mailbox, parse, and be judged by expect
// against the scenario: its TLSA policy's result types and counts, with mox's documented
// deviations.
func moxTLSRPT(t *testing.T, mta fixtureMTA, f *servedFixture, bin, dir string) {
	m := mta.(*moxMTA)
	var si fixture.ScenarioInfo
	for _, s := range f.Info.Scenarios {
		if s.Name == moxTLSRPTScenario {
			si = s
		}
	}
	if si.Name == "" {
		t.Fatalf("no scenario %s in the fixture", moxTLSRPTScenario)
	}
	tool := mtaBinary(t, goMTAPrefix+"/mox-tlsrptday", "DANELAB_MOX_TLSRPTDAY", "run .ci/install-gomtas (make deps does)")
	m.down.Store(true)
	m.halt()
	out, err := output(time.Minute, "", tool, "-db", filepath.Join(m.dir, "data", "tlsrptresult.db"), "-domain", strings.TrimSuffix(si.Domain, "."))
	if err != nil {
		t.Fatalf("mox-tlsrptday: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	restarted := time.Now()
	m.run(t)
	m.down.Store(false)

	// The report, by mail to the fixture's TLS-RPT address.
	dom := strings.TrimSuffix(si.Domain, ".")
	var reports []fixture.TLSRPT
	var lastErr error
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(2 * time.Second) {
		var obs fixture.Observations
		if lastErr = getFixture(f.URL+"/observations", &obs); lastErr == nil {
			reports = reports[:0]
			for _, r := range obs.TLSRPT {
				if r.Rejected == "" && (r.PolicyDomain == dom || strings.HasSuffix(r.PolicyDomain, "."+dom)) {
					reports = append(reports, r)
				}
			}
			if len(reports) > 0 {
				for _, r := range obs.TLSRPT {
					if r.Rejected != "" {
						t.Errorf("the fixture refused a TLS-RPT submission: %s", r.Rejected)
					}
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS-RPT report about %s from mox within 2 minutes of its restart (last error: %v)\n%s", si.Domain, lastErr, lastLines(m.Log(), 60))
		}
	}
	b, _ := json.Marshal(reports)
	t.Logf("mox's TLS-RPT report(s) about %s, %v after its restart: %s", si.Domain, time.Since(restarted).Round(time.Second), b)

	// The judge: expect compares the report's result types with the scenario's.
	jf := filepath.Join(dir, "expect-tlsrpt.json")
	cmd := exec.Command(bin, "expect", "-fixture", f.URL, "-profile", "mox", "-run", "^"+regexp.QuoteMeta(si.Name)+"$", "-json", jf, "-wait", "30s")
	res, code := tlRun(t, time.Minute, cmd)
	var doc struct {
		Results []struct {
			Name, Verdict, Observed string
			Diffs                   []string
		}
	}
	if b, err := os.ReadFile(jf); err != nil || json.Unmarshal(b, &doc) != nil || len(doc.Results) != 1 {
		t.Fatalf("expect -run %s: no result (%v)\n%s", si.Name, err, res)
	}
	r := doc.Results[0]
	if !strings.Contains(r.Observed, "TLS-RPT report") {
		t.Fatalf("expect did not judge mox's TLS-RPT report about %s: %s\n%s", si.Name, r.Observed, res)
	}
	// The verdict: the DSN as the profile expects, the report with mox's known deviations.
	seen := make([]bool, len(moxTLSRPTDeviations))
	for _, d := range r.Diffs {
		known := false
		for i, dev := range moxTLSRPTDeviations {
			if strings.Contains(d, dev.diff) {
				known, seen[i] = true, true
			}
		}
		if !known {
			t.Errorf("mox's TLS-RPT report about %s: %s", si.Name, d)
		}
	}
	for i, dev := range moxTLSRPTDeviations {
		if !seen[i] {
			t.Errorf("mox's TLS-RPT report about %s no longer shows a documented deviation (%s): update docs/mta-conformance.md and this list\n%s", si.Name, dev.why, res)
		}
	}
	if code == 0 {
		t.Errorf("expect passed mox's report, which has the deviations above")
	}
	t.Logf("expect judged mox's report: %s: %s; %d known deviation(s) of mox", r.Verdict, r.Observed, len(r.Diffs))
}

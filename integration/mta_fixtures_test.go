package integration

// The fixture proven with real MTAs: each one a private instance that the test starts and
// stops, resolving through its own fixture's Unbound (`danelab serve` as a separate process,
// on a loopback net of its own), sending one message per scenario it can play in real time,
// judged by `danelab expect -profile NAME`. The MTAs run at the same time, each against its
// own fixture: their wall time is the longest one's, not the sum (the test logs each).
//
//	go test ./integration -run 'TestMTAFixtures/(postfix|exim|mox|maddy)$' -v
//
// Where an MTA departs from RFC 7672 the scenario files say so in its profile's expectations
// (docs/mta-conformance.md lists them with the RFC sections); scenarios where it does what
// the RFC allows but danelab's own sender does not are not sent (Differs, logged).

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/internal/peer"
)

// fixtureMTA is a running MTA under test.
type fixtureMTA interface {
	// Send submits one message from the fixture's sender to rcpt, to be delivered at once.
	Send(t *testing.T, from, rcpt, subject, messageID string) error
	// Version names the MTA for the matrix ("Exim 4.96").
	Version() string
	// Log returns what the MTA logged, shown when the test fails.
	Log() string
}

// mtaFixture is one MTA's run: its profile, its fixture net and resolver addresses (distinct
// from every other test's), how to start it, and the scenarios it does not play.
type mtaFixture struct {
	Profile     string
	Net         string   // the fixture's loopback net (harness/fixture's TestFixtureNetsDistinct)
	ResolverIPs []string // candidates for the fixture's Unbound on port 53
	// Start starts the MTA (stopped by t.Cleanup) resolving through resolverIP:53, for the
	// fixture described by in.
	Start func(t *testing.T, dir, resolverIP string, in fixture.Info) fixtureMTA
	// Differs: scenario -> why the MTA's RFC-conformant behaviour differs from what danelab's
	// sender does (and so from the expectations); not sent.
	Differs map[string]string
	// Bugs: scenario -> a departure of the MTA from RFC 7672 that its profile does not model
	// (the profile's expectations are also what `danelab run` plays with danelab's own
	// sender, which follows the RFC). Sent like the others; expect must fail exactly these,
	// each with a difference containing Diff, so that a fixed MTA or a changed fixture shows.
	Bugs map[string]mtaBug
	// After, if set, runs once expect has judged every outcome (e.g. TLS-RPT from the MTA).
	After func(t *testing.T, m fixtureMTA, f *servedFixture, bin, dir string)
}

// stopGroup stops an MTA and the processes it forked (its process group, pid): SIGTERM, then
// SIGKILL if done is not closed within grace. It says whether it had to kill.
func stopGroup(pid int, done <-chan struct{}, grace time.Duration) (killed bool) {
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
		return false
	case <-time.After(grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
		return true
	}
}

// mtaBinary returns the MTA binary at env's path or def, or ends the test (fails under
// CI=true, see peer) with hint, which says how to install it.
func mtaBinary(t *testing.T, def, env, hint string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		p = def
	}
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		peer.Absent(t, fmt.Sprintf("%s is not installed (env %s): %s", p, env, hint))
	}
	return p
}

// output runs an MTA's command line tool with a timeout and returns what it printed.
func output(timeout time.Duration, stdin string, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: no exit within %v", argv[0], timeout)
	}
	return out, err
}

// smtpSend delivers msg over one SMTP session at addr, every step under one deadline: with
// STARTTLS (the certificate not verified: the receiver only records that TLS was used) and
// auth if set, MAIL FROM without SMTPUTF8 or BODY (the messages are 7-bit ASCII; net/smtp's
// Client.Mail adds SMTPUTF8 whenever it is offered, and maddy 0.8.1 passes that flag on to its
// bounce, which a mailbox without SMTPUTF8 then refuses: "address: missing at-sign").
func smtpSend(addr, helo, from, rcpt string, msg []byte, startTLS bool, auth smtp.Auth) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(time.Minute))
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if startTLS {
		if err := c.StartTLS(&tls.Config{ServerName: host, InsecureSkipVerify: true}); err != nil {
			return fmt.Errorf("STARTTLS: %v", err)
		}
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("AUTH: %v", err)
		}
	}
	id, err := c.Text.Cmd("MAIL FROM:<%s>", from)
	if err != nil {
		return err
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(250)
	c.Text.EndResponse(id)
	if err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// mtaBug is a known bug of an MTA, as expect reports it: each of expect's differences for the
// scenario must contain one of Diffs, and each of Diffs must be found; Why is the RFC section
// and what the MTA does (docs/mta-conformance.md).
type mtaBug struct {
	Diffs []string
	Why   string
}

// mtaFixtures are the MTAs of TestMTAFixtures, by profile name.
var mtaFixtures = map[string]mtaFixture{}

func registerMTAFixture(m mtaFixture) { mtaFixtures[m.Profile] = m }

// realTimeScenario says whether a real sender can play a scenario in real time (the fixture
// says so: its world does not change after time 0 except for faults that heal, no sender
// cache is involved) and it has expectations for profile.
func realTimeScenario(si fixture.ScenarioInfo, profile string) bool {
	_, ok := fixture.Applicable(si, profile)
	return ok && si.RealTime
}

func TestMTAFixtures(t *testing.T) {
	names := make([]string, 0, len(mtaFixtures))
	for n := range mtaFixtures {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 4 {
		t.Errorf("only %d MTAs registered (%v), want postfix, exim, mox and maddy", len(names), names)
	}
	start := time.Now()
	var wg sync.WaitGroup
	walls := make([]time.Duration, len(names))
	for i, n := range names {
		// t.Run from goroutines: the subtests run at once, not limited by -parallel (they
		// mostly wait for retries and DSNs).
		wg.Go(func() {
			t.Run(n, func(t *testing.T) {
				s := time.Now()
				defer func() { walls[i] = time.Since(s) }()
				runMTAFixture(t, mtaFixtures[n])
			})
		})
	}
	wg.Wait()
	var b strings.Builder
	for i, n := range names {
		if walls[i] > 0 {
			b.WriteString("\n  " + n + ": " + walls[i].Round(time.Second).String())
		}
	}
	t.Logf("wall time of each MTA (fixture start to verdict), all at once in %v:%s", time.Since(start).Round(time.Second), b.String())
}

// knownDiffs says whether every diff contains one of known and every one of known is in a diff.
func knownDiffs(diffs, known []string) bool {
	seen := make([]bool, len(known))
	for _, d := range diffs {
		ok := false
		for i, k := range known {
			if strings.Contains(d, k) {
				ok, seen[i] = true, true
			}
		}
		if !ok {
			return false
		}
	}
	return !slices.Contains(seen, false)
}

func runMTAFixture(t *testing.T, m mtaFixture) {
	bin := tlDanelab(t)
	dir := t.TempDir()
	if err := pfTraversable(dir); err != nil { // MTAs drop privileges and read their configuration here
		t.Fatal(err)
	}
	resolverIP, err := tlSpareLoopback(53, true, m.ResolverIPs...)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture: every shipped scenario, a scenario minute lasting one second (the faults
	// of retry-heals and friends heal 30-40 s after the start).
	sf := startServe(t, bin, dir, m.Net, resolverIP)
	mta := m.Start(t, filepath.Join(dir, m.Profile), resolverIP, sf.Info)
	defer func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", mta.Version(), lastLines(mta.Log(), 600))
		}
	}()
	// Scenarios whose fault heals go first: the MTA must meet the fault before it heals
	// (30-40 s after the start), and four MTAs starting at once take seconds to submit 50.
	later := func(si fixture.ScenarioInfo) int {
		if si.HealsAt > 0 {
			return 0
		}
		return 1
	}
	order := slices.Clone(sf.Info.Scenarios)
	slices.SortStableFunc(order, func(a, b fixture.ScenarioInfo) int { return cmp.Compare(later(a), later(b)) })
	exists := map[string]bool{}
	for _, si := range order {
		exists[si.Name] = true
	}
	for name := range m.Differs {
		if !exists[name] {
			t.Errorf("%s's Differs names %s, which the fixture does not have", m.Profile, name)
		}
	}
	var names []string
	for _, si := range order {
		if !realTimeScenario(si, m.Profile) || m.Differs[si.Name] != "" {
			continue
		}
		if err := mta.Send(t, sf.Info.Sender, si.Recipient, "danelab "+si.Name, "<"+si.Name+"@sender.test>"); err != nil {
			t.Fatalf("%s: %v", si.Name, err)
		}
		names = append(names, regexp.QuoteMeta(si.Name))
	}
	sort.Strings(names)
	for name, why := range m.Differs {
		t.Logf("not sent: %s: %s", name, why)
	}
	sent := time.Now()
	t.Logf("sent %d messages (every scenario a real sender can play in real time) %v after the fixture started",
		len(names), sent.Sub(sf.Start).Round(time.Millisecond))

	// The judge: danelab expect, waiting for every outcome (DSNs come at the end of each
	// MTA's shortened retry time).
	jf := filepath.Join(dir, "expect.json")
	cmd := exec.Command(bin, "expect", "-fixture", sf.URL, "-profile", m.Profile, "-run", "^("+strings.Join(names, "|")+")$",
		"-wait", "4m", "-json", jf, "-mta", mta.Version())
	out, code := tlRun(t, 6*time.Minute, cmd)
	saveForMatrix(t, jf, m.Profile+".json")
	t.Logf("danelab expect -profile %s (exit %d; %s's wall time %v from the first message to the last outcome, %v after the fixture started):\n%s",
		m.Profile, code, mta.Version(), time.Since(sent).Round(time.Second), time.Since(sf.Start).Round(time.Second), out)
	var doc struct {
		Summary struct{ Total, Passed int }
		Results []struct {
			Name, Verdict, Observed string
			Diffs                   []string
		}
	}
	if b, err := os.ReadFile(jf); err != nil {
		t.Fatalf("expect wrote no JSON: %v", err)
	} else if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("expect JSON: %v", err)
	}
	if doc.Summary.Total != len(names) {
		t.Errorf("expect judged %d scenarios, %d were sent", doc.Summary.Total, len(names))
	}
	bugs := 0
	judged := map[string]bool{}
	for _, r := range doc.Results {
		judged[r.Name] = true
		bug, isBug := m.Bugs[r.Name]
		switch {
		case !isBug && r.Verdict != scenario.Pass:
			t.Errorf("real %s did not do what the %s profile expects in %s: %s: %s %v", mta.Version(), m.Profile, r.Name, r.Verdict, r.Observed, r.Diffs)
		case isBug && (r.Verdict != scenario.Fail || !knownDiffs(r.Diffs, bug.Diffs)):
			t.Errorf("%s in %s: %s %s %v, want exactly the known bug (%s: %q): fixed? update %s's Bugs and docs/mta-conformance.md",
				mta.Version(), r.Name, r.Verdict, r.Observed, r.Diffs, bug.Why, bug.Diffs, m.Profile)
		case isBug:
			bugs++
			t.Logf("known bug of %s in %s: %s (%s)", mta.Version(), r.Name, r.Observed, bug.Why)
		}
	}
	for name := range m.Bugs {
		if !judged[name] {
			t.Errorf("known bug of %s in %s: the scenario was not judged (renamed? not real-time any more?)", mta.Version(), name)
		}
	}
	if want := min(bugs, 1); code != want {
		t.Errorf("danelab expect exit %d, want %d (%d known bugs)", code, want, bugs)
	}
	if m.After != nil && !t.Failed() {
		m.After(t, mta, sf, bin, dir)
	}
}

func getFixture(url string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// saveForMatrix copies an expect JSON into $DANELAB_MATRIX_DIR, if set, as name, for
// `danelab expect -matrix` (docs/mta-conformance.md).
func saveForMatrix(t *testing.T, jf, name string) {
	dir := os.Getenv("DANELAB_MATRIX_DIR")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(jf)
	if err == nil {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	if err != nil {
		t.Errorf("DANELAB_MATRIX_DIR: %v", err)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

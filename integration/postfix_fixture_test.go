package integration

// The proof with a real MTA: Postfix 3.7 driven through fixture mode (`danelab serve` as a
// separate process, Unbound as the validating resolver), one message per scenario that a real
// sender can play in real time, judged by `danelab expect -profile postfix`. Every scenario
// must go as the postfix profile expects; the differences between real Postfix and the profile
// are the documented ones (README: fixture mode), which this test does not ask about.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/internal/peer"
)

// realTimeScenario says whether a real sender can play a scenario in real time (the fixture
// says so: its world does not change after time 0 except for faults that heal, no sender
// cache is involved) and it has postfix expectations.
func realTimeScenario(si fixture.ScenarioInfo) bool {
	_, ok := fixture.Applicable(si, "postfix")
	return ok && si.RealTime
}

func TestPostfixFixture(t *testing.T) {
	for _, p := range []string{"postfix", "unbound", "unshare", "mount"} {
		peer.Need(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root: receivers on port 25, mount namespaces (CI runs as root)")
	}
	bin := tlDanelab(t)
	dir := t.TempDir()
	resolverIP, err := tlSpareLoopback(53, true, "127.0.0.57", "127.0.0.58", "127.0.0.59", "127.0.0.61")
	if err != nil {
		t.Fatal(err)
	}
	// The fixture: every shipped scenario, a scenario minute lasting one second (the faults
	// of retry-heals and friends heal 30-40 s after the start).
	sf := startServe(t, bin, dir, "127.6", resolverIP)
	in, url, start := sf.Info, sf.URL, sf.Start

	// Postfix, resolving through the fixture's Unbound; short retries, a 2-minute lifetime.
	mta := startPostfix(t, postfixOptions{Dir: filepath.Join(dir, "postfix"), ResolverIP: resolverIP, MyHostname: "mta.sender.test"})
	var names []string
	for _, si := range in.Scenarios {
		if !realTimeScenario(si) {
			continue
		}
		if _, err := mta.SendMail(postfixMail{From: in.Sender, To: []string{si.Recipient}, Subject: "danelab " + si.Name,
			Body: "scenario " + si.Name + "\n", MessageID: "<" + si.Name + "@sender.test>"}); err != nil {
			t.Fatalf("%s: %v", si.Name, err)
		}
		names = append(names, regexp.QuoteMeta(si.Name))
	}
	sort.Strings(names)
	t.Logf("sent %d messages (every scenario a real sender can play in real time) %v after the fixture started", len(names), time.Since(start).Round(time.Millisecond))

	// The judge: danelab expect, waiting for every outcome (a DSN comes after the 2-minute
	// lifetime, at Postfix's next queue run).
	jf := filepath.Join(dir, "expect.json")
	version, _ := exec.Command("postconf", "-h", "mail_version").Output()
	cmd := exec.Command(bin, "expect", "-fixture", url, "-profile", "postfix", "-run", "^("+strings.Join(names, "|")+")$",
		"-wait", "4m", "-json", jf, "-mta", strings.TrimSpace("Postfix "+string(version)))
	out, code := tlRun(t, 6*time.Minute, cmd)
	saveForMatrix(t, jf, "postfix.json")
	t.Logf("danelab expect -profile postfix (exit %d, %v after the fixture started):\n%s", code, time.Since(start).Round(time.Second), out)
	var doc struct {
		Summary struct{ Total, Passed int }
	}
	if b, err := os.ReadFile(jf); err != nil {
		t.Errorf("expect wrote no JSON: %v", err)
	} else if err := json.Unmarshal(b, &doc); err != nil {
		t.Errorf("expect JSON: %v", err)
	}
	if code != 0 || doc.Summary.Total != len(names) || doc.Summary.Passed != len(names) {
		t.Errorf("real Postfix did not do what the postfix profile expects: exit %d, %d of %d passed (of %d sent)",
			code, doc.Summary.Passed, doc.Summary.Total, len(names))
		t.Logf("Postfix maillog:\n%s", lastLines(mta.Log(), 400))
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

//go:build linux

package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danelab/danelab/internal/peer"
)

// TestRenderHTMLBrowser opens the HTML report of a failing domain in headless Chromium, with
// no name resolving, and checks what a person would see: the page's text has the verdict and
// the domain, the screenshot is not blank and has the red failure banner near the top, and
// the page asked for nothing from the network. A canary page that does load remote resources
// runs alongside, to prove that the two ways of seeing a request still see one.
func TestRenderHTMLBrowser(t *testing.T) {
	chromium := peer.Need(t, "chromium")
	start := time.Now()
	dir := t.TempDir()
	var page bytes.Buffer
	if err := renderSample().HTML(&page); err != nil {
		t.Fatal(err)
	}
	// Both remote loads fail (no name resolves), but Chromium logs them first: the stylesheet
	// as a request in its net log, the image as a Content-Security-Policy violation on its
	// console, which is how a request of the report's own page (whose policy forbids every
	// load) would show.
	canary := `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">` +
		`<meta http-equiv="Content-Security-Policy" content="img-src 'none'"><title>canary</title>` +
		`<link rel="stylesheet" href="https://canary.invalid/c.css"></head>` +
		`<body><img src="http://canary.invalid/i.png" alt=""></body></html>`

	// Generous: two chromium runs at once took 8.4 s on a loaded 2-core CI machine.
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	type result struct {
		b   *browsed
		err error
	}
	reportc, canaryc := make(chan result, 1), make(chan result, 1)
	for _, p := range []struct {
		name, html string
		c          chan result
	}{{"report", page.String(), reportc}, {"canary", canary, canaryc}} {
		go func() {
			b, err := browse(ctx, chromium, dir, p.name, p.html)
			p.c <- result{b, err}
		}()
	}
	rep, can := <-reportc, <-canaryc
	t.Logf("chromium: both pages in %v (report %v, canary %v)", time.Since(start).Round(time.Millisecond), durationOf(rep.b), durationOf(can.b))
	if can.err != nil {
		t.Fatalf("canary: %v", can.err)
	}
	if rep.err != nil {
		t.Fatalf("report: %v", rep.err)
	}

	if !slicesContain(can.b.requests, "https://canary.invalid/c.css") {
		t.Errorf("the net log shows the canary's requests as %q, not its stylesheet: the page requests are no longer recognised", can.b.requests)
	}
	if !slicesContain(can.b.console, "http://canary.invalid/i.png") {
		t.Errorf("the canary's console %q does not show its blocked image: blocked loads are no longer seen", can.b.console)
	}

	r := rep.b
	if len(r.requests) > 0 {
		t.Errorf("the report requested %q", r.requests)
	}
	if len(r.console) > 0 {
		t.Errorf("the report logged on the console (a blocked load?):\n%s", strings.Join(r.console, "\n"))
	}
	for _, want := range []string{"<title>danelab check: example.test</title>", "danelab check: example.test</h1>", `class="banner fail"`, ">Failures<"} {
		if !strings.Contains(r.dom, want) {
			t.Errorf("the page's DOM lacks %q:\n%s", want, r.dom)
		}
	}

	img, err := png.Decode(bytes.NewReader(r.png))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	bounds := img.Bounds()
	if bounds.Dx() != 1000 || bounds.Dy() != 1400 {
		t.Errorf("screenshot is %v, want 1000×1400", bounds.Size())
	}
	colours := map[[3]uint32]bool{}
	red, firstRed := 0, -1
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			cr, cg, cb = cr>>8, cg>>8, cb>>8
			colours[[3]uint32{cr, cg, cb}] = true
			if cr > 170 && cg < 80 && cb < 80 { // the banner's #c62828
				red++
				if firstRed < 0 {
					firstRed = y
				}
			}
		}
	}
	if len(colours) <= 3 {
		t.Errorf("screenshot has %d colours: blank", len(colours))
	}
	if red < 20000 || firstRed < 0 || firstRed > 300 {
		t.Errorf("screenshot has %d red pixels, the first in row %d: want the failure banner at the top", red, firstRed)
	}
	if t.Failed() {
		t.Logf("chromium's stderr:\n%s", r.stderr)
	}
}

// browsed is what headless Chromium made of a page.
type browsed struct {
	dom      string   // the page's DOM after loading (--dump-dom)
	png      []byte   // the screenshot
	requests []string // URLs the page requested, from the net log
	console  []string // console messages, from the log on stderr
	stderr   string
	took     time.Duration
}

func durationOf(b *browsed) time.Duration {
	if b == nil {
		return 0
	}
	return b.took.Round(time.Millisecond)
}

func slicesContain(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// browse writes html to dir/name.html and loads it in headless Chromium, with a profile,
// home and net log of its own under dir and every host name unresolvable, so that nothing can
// leave the machine.
func browse(ctx context.Context, chromium, dir, name, html string) (*browsed, error) {
	start := time.Now()
	file := filepath.Join(dir, name+".html")
	shot := filepath.Join(dir, name+".png")
	netlog := filepath.Join(dir, name+".netlog.json")
	home := filepath.Join(dir, name+"-home")
	if err := os.WriteFile(file, []byte(html), 0o600); err != nil {
		return nil, err
	}
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--no-first-run", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update",
		"--user-data-dir="+filepath.Join(dir, name+"-profile"),
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--log-net-log="+netlog,
		"--enable-logging=stderr", "--v=0",
		"--window-size=1000,1400",
		"--screenshot="+shot,
		"--dump-dom",
		(&url.URL{Scheme: "file", Path: file}).String())
	// Chromium writes crash reports under HOME and scratch dirs under TMPDIR, even when killed.
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home+"/.config", "XDG_CACHE_HOME="+home+"/.cache", "TMPDIR="+home)
	// Chromium forks a zygote, a GPU and a renderer process: on a timeout, or if any outlive
	// the browser, the whole process group goes, so none holds the temp dir or the pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	b := &browsed{dom: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		return b, fmt.Errorf("%s: %v (%v)\n%s", chromium, err, ctx.Err(), b.stderr)
	}
	if b.png, err = os.ReadFile(shot); err != nil {
		return b, fmt.Errorf("no screenshot: %v\n%s", err, b.stderr)
	}
	for l := range strings.SplitSeq(b.stderr, "\n") {
		if strings.Contains(l, ":CONSOLE") {
			b.console = append(b.console, l)
		}
	}
	b.requests, err = pageRequests(netlog)
	return b, err
}

// pageRequests returns the URLs of the requests a file:// page made, from Chromium's net log
// (--log-net-log): the browser's own requests (update checks, the clock) are not the page's,
// so a request counts when it is made for a file:// site.
func pageRequests(netlog string) ([]string, error) {
	data, err := os.ReadFile(netlog)
	if err != nil {
		return nil, err
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int            `json:"type"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		return nil, fmt.Errorf("net log %s: %v", netlog, err)
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, errors.New("net log: no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range log.Events {
		if e.Type != start {
			continue
		}
		str := func(k string) string { s, _ := e.Params[k].(string); return s }
		if strings.Contains(str("network_isolation_key")+" "+str("site_for_cookies"), "file://") || str("initiator") == "null" {
			urls = append(urls, str("url"))
		}
	}
	return urls, nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/report"
	"github.com/danelab/danelab/harness/runner"
	"github.com/danelab/danelab/harness/scenario"
)

// defaultScenarios is where the shipped scenarios live.
const defaultScenarios = "harness/scenarios"

func init() {
	register("run", command{
		group:   groupLab,
		usage:   "[-scenarios DIR] [-run PATTERN] [-profile NAME] [-json FILE] [-junit FILE] [-parallel N] [-v]",
		summary: "run DANE scenarios end to end in an in-process lab and print the matrix",
		help: "Builds, per scenario, a lab DNS world (danezone), SMTP receivers, a validating resolver\n" +
			"and the DANE sender, runs one message through the sender profile's retry schedule on a\n" +
			"virtual clock, and compares every attempt with the scenario's expectations. Prints a\n" +
			"matrix (scenario · profile · expected · observed · verdict); exits 1 on any mismatch.\n\n" +
			"Flags:\n\t-scenarios DIR\tthe scenario files, *.json (default " + defaultScenarios + ")\n" +
			"\t-run PATTERN\tonly scenarios whose name matches this regular expression\n" +
			"\t-profile NAME\tonly scenarios of this sender profile (" + strings.Join(queue.ProfileNames, ", ") + ")\n" +
			"\t-json FILE\twrite the results as JSON\n" +
			"\t-junit FILE\twrite the results as JUnit XML\n" +
			"\t-parallel N\tscenarios at once (default: the number of CPUs, at least 2)\n" +
			"\t-v\t\tprint the transcript of each scenario (world, faults, attempts) and the lab's logs",
		run: runRun,
	})
}

// errMismatch is returned when a scenario did not go as expected; the matrix says which.
var errMismatch = errors.New("some scenarios did not go as expected")

func runRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dir := fs.String("scenarios", defaultScenarios, "scenario directory")
	pattern := fs.String("run", "", "name pattern")
	profile := fs.String("profile", "", "sender profile")
	jsonFile := fs.String("json", "", "JSON report")
	junitFile := fs.String("junit", "", "JUnit XML report")
	parallel := fs.Int("parallel", max(2, runtime.NumCPU()), "scenarios at once")
	verbose := fs.Bool("v", false, "transcripts")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"run"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *parallel < 1 {
		return usagef("-parallel %d: want at least 1", *parallel)
	}
	chosen, err := selectScenarios(*dir, *pattern, *profile)
	if err != nil {
		return err
	}
	quiet(!*verbose)
	results := runScenarios(chosen, *parallel, *verbose)
	return writeReports(results, report.Document{}, *jsonFile, *junitFile)
}

// selectScenarios loads dir and keeps the runs whose name matches pattern and, when profile
// is set, whose profile is that one.
func selectScenarios(dir, pattern, profile string) ([]*scenario.Scenario, error) {
	var re *regexp.Regexp
	if pattern != "" {
		var err error
		if re, err = regexp.Compile(pattern); err != nil {
			return nil, usagef("-run: %v", err)
		}
	}
	all, err := scenario.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	var chosen []*scenario.Scenario
	for _, s := range all {
		if (re == nil || re.MatchString(s.Name)) && (profile == "" || s.Profile == profile) {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) == 0 {
		return nil, fmt.Errorf("no scenario in %s matches -run %q -profile %q", dir, pattern, profile)
	}
	return chosen, nil
}

// writeReports prints the matrix, writes the JSON (with meta's profile, MTA and date) and
// JUnit files asked for, and returns errMismatch unless every scenario passed.
func writeReports(results []scenario.Result, meta report.Document, jsonFile, junitFile string) error {
	if err := report.Matrix(stdout, results); err != nil {
		return err
	}
	if jsonFile != "" {
		meta.Results = results
		if err := writeFile(jsonFile, func(w io.Writer) error { return report.WriteDocument(w, meta) }); err != nil {
			return err
		}
	}
	if junitFile != "" {
		if err := writeFile(junitFile, func(w io.Writer) error { return report.JUnit(w, results) }); err != nil {
			return err
		}
	}
	if !report.Summarize(results).OK() {
		return errMismatch
	}
	return nil
}

var quietOnce sync.Mutex

// quiet silences the lab's CoreDNS start-up lines and logs (they go to the process's
// standard log and stdout) unless the transcript is asked for.
func quiet(on bool) {
	quietOnce.Lock()
	defer quietOnce.Unlock()
	caddy.Quiet, dnsserver.Quiet = on, on
	if on {
		log.SetOutput(io.Discard)
	} else {
		log.SetOutput(stderr)
	}
}

// runScenarios runs at most parallel scenarios at once; results come back in the
// scenarios' order. Progress goes to stderr: on a terminal one live status line (done,
// passed, failed, what is running, elapsed), otherwise a line per finished scenario. With
// verbose, each scenario's transcript is printed, whole, when it ends.
func runScenarios(ss []*scenario.Scenario, parallel int, verbose bool) []scenario.Result {
	results := make([]scenario.Result, len(ss))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	p := newProgress(stderr, len(ss), isTerminal(stderr) && !verbose)
	defer p.close()
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			label := s.Name + "/" + s.Profile
			p.start(label)
			var transcript lockedBuffer
			opt := runner.Options{}
			if verbose {
				opt.Log = &transcript
			}
			r := runner.Run(context.Background(), s, opt)
			results[i] = r
			p.finish(label, r, transcript.String())
		}()
	}
	wg.Wait()
	return results
}

// progress reports how a run goes.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	total   int
	done    int
	failed  int
	running map[string]bool
	begin   time.Time
	stop    chan struct{}
	stopped chan struct{}
}

func newProgress(w io.Writer, total int, live bool) *progress {
	p := &progress{w: w, live: live, total: total, running: map[string]bool{}, begin: time.Now(),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		if !live {
			return
		}
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *progress) start(label string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[label] = true
}

func (p *progress) finish(label string, r scenario.Result, transcript string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, label)
	p.done++
	if r.Verdict != scenario.Pass {
		p.failed++
	}
	if p.live {
		if r.Verdict != scenario.Pass { // failures stay on screen above the status line
			fmt.Fprintf(p.w, "\r\033[K%-40s %s (%v)\n", label, strings.ToUpper(r.Verdict), r.Wall.Round(time.Millisecond))
		}
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "[%d/%d] %-28s %-8s %s (%v)\n", p.done, p.total, r.Name, r.Profile, r.Verdict, r.Wall.Round(time.Millisecond))
	io.WriteString(p.w, transcript)
}

// draw rewrites the status line; p.mu is held.
func (p *progress) draw() {
	names := make([]string, 0, len(p.running))
	for n := range p.running {
		names = append(names, n)
	}
	sort.Strings(names)
	line := fmt.Sprintf("[%d/%d] %d passed, %d failed, %.1fs; running: %s", p.done, p.total, p.done-p.failed, p.failed,
		time.Since(p.begin).Seconds(), strings.Join(names, ", "))
	if r := []rune(line); len(r) > 79 { // one row of an 80-column terminal: \r rewrites it
		line = string(r[:78]) + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

func (p *progress) close() {
	close(p.stop)
	<-p.stopped
	if p.live {
		p.mu.Lock()
		p.draw()
		fmt.Fprintln(p.w)
		p.mu.Unlock()
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// lockedBuffer is a transcript written from the scenario's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/report"
	"github.com/danelab/danelab/harness/scenario"
)

func init() {
	register("expect", command{
		group:   groupLab,
		usage:   "-profile NAME [-fixture URL] [-run PATTERN] [-wait D] [-json FILE [-mta LABEL]] [-junit FILE] | -matrix DIR [-o FILE]",
		summary: "judge what an external MTA did in a running fixture against a sender profile",
		help: "Reads the fixture's world and observations (deliveries with their TLS and\n" +
			"certificate, DSNs at the sender's mailbox) and compares every scenario's outcome\n" +
			"with the expectations of -profile: delivered or returned, over which TLS, to a host\n" +
			"whose certificate authenticated against the TLSA records of the time, the host\n" +
			"expected, not before a fault healed and not without meeting it, a temporary failure\n" +
			"retried, and the DSN's status; where TLS-RPT reports about a scenario arrived, their\n" +
			"failure result types against the scenario's. Timing is the MTA's own. Scenarios a real sender\n" +
			"cannot play in real time (sender caches, later certificate changes) are listed as\n" +
			"not judged. With -wait, polls until every\n" +
			"scenario has an outcome or the time is up; a scenario still without one then fails.\n" +
			"Prints the matrix; exits 1 on any mismatch.\n\n" +
			"Flags:\n\t-profile NAME\t" + strings.Join(queue.ProfileNames, ", ") + "\n" +
			"\t-fixture URL\tthe fixture API (default http://127.0.0.1:8054)\n" +
			"\t-run PATTERN\tonly scenarios whose name matches\n" +
			"\t-wait D\t\thow long to wait for outcomes (default 0: judge now)\n" +
			"\t-min-retry D\ta DSN for a temporary failure must come at least this long after the\n\t\t\tMTA's first attempt, or it did not retry (default 30s; 0: not checked)\n" +
			"\t-json FILE\twrite the results as JSON (with the profile, -mta and the date)\n" +
			"\t-mta LABEL\tthe MTA's name and version for the JSON, e.g. \"Postfix 3.7.11\"\n" +
			"\t-junit FILE\twrite the results as JUnit XML\n\n" +
			"With -matrix DIR, judges nothing: reads the JSON results saved in DIR (*.json, one per\n" +
			"MTA) and prints a Markdown conformance matrix, scenario × MTA, each cell the observed\n" +
			"outcome marked where it deviates from the profile, then the deviations.\n" +
			"\t-matrix DIR\tthe saved results\n" +
			"\t-o FILE\t\twrite the matrix there instead of to stdout, keeping what stands\n\t\t\tabove the generated part's marker line (an introduction)",
		run: runExpect,
	})
}

func runExpect(args []string) error {
	fs := flag.NewFlagSet("expect", flag.ContinueOnError)
	url := fs.String("fixture", "http://127.0.0.1:8054", "fixture API")
	profile := fs.String("profile", "", "sender profile")
	pattern := fs.String("run", "", "name pattern")
	wait := fs.Duration("wait", 0, "how long to wait for outcomes")
	minRetry := fs.Duration("min-retry", 30*time.Second, "least time between the first attempt and the DSN of a temporary failure")
	jsonFile := fs.String("json", "", "JSON report")
	mta := fs.String("mta", "", "the MTA's name and version, for the JSON report")
	matrixDir := fs.String("matrix", "", "directory of saved JSON results to lay side by side")
	outFile := fs.String("o", "", "where -matrix writes its table")
	junitFile := fs.String("junit", "", "JUnit XML report")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"expect"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *matrixDir != "" {
		return runMatrix(*matrixDir, *outFile)
	}
	if *outFile != "" {
		return usagef("-o goes with -matrix (the results go to -json or -junit)")
	}
	if *profile == "" {
		return usagef("-profile is required: %s", strings.Join(queue.ProfileNames, ", "))
	}
	if _, err := queue.ProfileByName(*profile); err != nil {
		return usagef("-profile %q: want one of %s", *profile, strings.Join(queue.ProfileNames, ", "))
	}
	var re *regexp.Regexp
	if *pattern != "" {
		if re, err = regexp.Compile(*pattern); err != nil {
			return usagef("-run: %v", err)
		}
	}
	var in fixture.Info
	if err := getJSON(*url+"/scenarios", &in); err != nil {
		return err
	}
	began := time.Now()
	deadline := began.Add(*wait)
	var results []scenario.Result
	var skipped, fixtureErrs []string
	var lastObs fixture.Observations
	for {
		var obs fixture.Observations
		if err := getJSON(*url+"/observations", &obs); err != nil {
			return err
		}
		results, skipped = fixture.Check(in, obs, *profile, re, fixture.CheckOptions{MinRetry: *minRetry})
		lastObs = obs
		fixtureErrs = obs.Errors
		pending := 0
		for _, r := range results {
			if r.Verdict == fixture.Pending {
				pending++
			}
		}
		if pending == 0 || !time.Now().Before(deadline) {
			break
		}
		fmt.Fprintf(stderr, "danelab expect: %d of %d scenarios without an outcome yet; waiting (until %s)\n",
			pending, len(results), deadline.Format(time.TimeOnly))
		time.Sleep(min(5*time.Second, time.Until(deadline)))
	}
	for _, s := range skipped {
		fmt.Fprintf(stderr, "danelab expect: not judged: %s\n", s)
	}
	if nr := fixture.NoReports(in, lastObs, results); len(nr) > 0 {
		// Information only: TLS-RPT is optional for a sender (Postfix sends none).
		fmt.Fprintf(stderr, "danelab expect: no TLS-RPT report received (not judged) for %d scenario(s): %s\n", len(nr), strings.Join(nr, ", "))
	}
	if len(results) == 0 {
		return fmt.Errorf("no scenario of the fixture can be judged for -profile %s (and matches -run %q)", *profile, *pattern)
	}
	for i := range results {
		if results[i].Verdict == fixture.Pending {
			results[i].Verdict = scenario.Fail
			// The MTA never delivered nor returned the message: say how long it had.
			results[i].Diffs = append(results[i].Diffs, fmt.Sprintf("no outcome: no delivery, no DSN %v after the fixture started (expect waited %v): %s",
				time.Since(in.Started).Round(time.Second), time.Since(began).Round(time.Second), results[i].Observed))
		}
	}
	meta := report.Document{Profile: *profile, MTA: *mta, Date: time.Now().UTC().Format(time.RFC3339)}
	err = writeReports(results, meta, *jsonFile, *junitFile)
	for _, e := range fixtureErrs {
		fmt.Fprintf(stderr, "danelab expect: the fixture reported an error: %s\n", e)
	}
	if err == nil && len(fixtureErrs) > 0 {
		err = errors.New("the fixture reported errors while the MTA worked: its verdicts may be wrong")
	}
	return err
}

func getJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fixture: %v (is `danelab serve` running?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fixture: GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

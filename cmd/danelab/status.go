package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

func init() {
	register("status", command{
		group:   groupOperator,
		usage:   "[-api URL] [-token TOKEN]",
		summary: "show the TLSA records that follow certificates, with warnings, from a running danezone",
		help: "Asks the control API of a running danezone (GET /tlsa) and prints, per MX host,\n" +
			"the certificate, the records published (current, staged next keys, held after a\n" +
			"change) and any warning: a renewal whose key was not published ahead, an expiry\n" +
			"coming, a source that fails. Exits 1 when there is a warning.\n\n" +
			"Flags:\n\t-api URL\tthe control API (default http://127.0.0.1:8053)\n\t-token TOKEN\tits token, if set",
		run: runStatus,
	})
}

func runStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8053", "control API")
	token := fs.String("token", "", "token")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"status"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	req, err := http.NewRequest("GET", strings.TrimSuffix(*api, "/")+"/tlsa", nil)
	if err != nil {
		return err
	}
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%v (is danezone running with `control` in its Corefile block?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s/tlsa: %s", *api, resp.Status)
	}
	var hosts []tlsa.Status
	if err := json.NewDecoder(resp.Body).Decode(&hosts); err != nil {
		return fmt.Errorf("%s/tlsa: %v", *api, err)
	}
	if len(hosts) == 0 {
		fmt.Fprintln(stdout, "no TLSA records follow certificates (no `tlsa` lines in the danezone block)")
		return nil
	}
	warnings := 0
	for _, h := range hosts {
		fmt.Fprintf(stdout, "%s  (%s)\n", strings.TrimSuffix(h.Host, "."), h.Source)
		if h.Subject != "" {
			fmt.Fprintf(stdout, "  certificate  %s, valid until %s\n", h.Subject, h.NotAfter.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(stdout, "  owners       %s\n", strings.Join(h.Owners, " "))
		for _, l := range []struct {
			label string
			v     []string
		}{{"current", h.Current}, {"next", h.Next}, {"held", h.Held}} {
			for _, r := range l.v {
				fmt.Fprintf(stdout, "  %-12s %s\n", l.label, r)
			}
		}
		for _, w := range h.Warnings {
			fmt.Fprintf(stdout, "  WARNING      %s\n", w)
			warnings++
		}
	}
	if warnings > 0 {
		return fmt.Errorf("%d warning(s)", warnings)
	}
	return nil
}

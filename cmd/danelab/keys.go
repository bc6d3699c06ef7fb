package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/roll"
)

func init() {
	register("keys", command{
		group:   groupOperator,
		usage:   "[-api URL] [-token TOKEN] [-json] [-roll ZONE ROLE]",
		summary: "show each zone's keys, their states and schedules, or start a key roll, on a running danezone",
		help: "Asks the control API of a running danezone (GET /keys) and prints, per signed zone,\n" +
			"its key policy, each key (role, tag, algorithm), whether its DNSKEY is published, it\n" +
			"signs and CDS/CDNSKEY name it, its schedule (the BIND timing metadata of its files),\n" +
			"the next event of the policy, and what a KSK roll waits for. With -roll, asks for a\n" +
			"roll of ZONE's ROLE (csk, ksk or zsk) now (POST /keys/roll) and prints the keys.\n\n" +
			"Flags:\n\t-api URL\tthe control API (default http://127.0.0.1:8053)\n\t-token TOKEN\tits token, if set\n" +
			"\t-json\t\tprint the JSON of GET /keys\n\t-roll ZONE ROLE\tstart a roll first",
		run: runKeys,
	})
}

func runKeys(args []string) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8053", "control API")
	token := fs.String("token", "", "token")
	asJSON := fs.Bool("json", false, "print JSON")
	rollZone := fs.String("roll", "", "zone to roll (ROLE follows)")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"keys"})
	}
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(*api, "/")
	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path string, body []byte) ([]byte, error) {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%v (is danezone running with `control` in its Corefile block?)", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("%s %s%s: %s: %s", method, base, path, resp.Status, strings.TrimSpace(string(b)))
		}
		return b, nil
	}
	if *rollZone != "" {
		if len(pos) != 1 {
			return usagef("-roll ZONE needs the role after it: csk, ksk or zsk")
		}
		body, _ := json.Marshal(map[string]string{"zone": *rollZone, "role": pos[0]})
		if _, err := call("POST", "/keys/roll", body); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s roll of %s asked for: it starts at danezone's next poll\n", strings.ToUpper(pos[0]), *rollZone)
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	b, err := call("GET", "/keys", nil)
	if err != nil {
		return err
	}
	var zones []roll.ZoneKeys
	if err := json.Unmarshal(b, &zones); err != nil {
		return fmt.Errorf("%s/keys: %v", base, err)
	}
	if *asJSON {
		_, err := stdout.Write(append(b, '\n'))
		return err
	}
	if len(zones) == 0 {
		fmt.Fprintln(stdout, "no signed zones")
		return nil
	}
	for _, z := range zones {
		printZoneKeys(z, time.Now())
	}
	return nil
}

// printZoneKeys prints one zone's keys, one line per key and one per set time.
func printZoneKeys(z roll.ZoneKeys, now time.Time) {
	fmt.Fprintf(stdout, "%s  (policy %s", z.Zone, z.Policy)
	if z.DNSSEC != "" && z.DNSSEC != "signed" {
		fmt.Fprintf(stdout, ", %s", z.DNSSEC)
	}
	if !z.Next.IsZero() {
		fmt.Fprintf(stdout, ", next event %s, in %v", z.Next.UTC().Format(time.RFC3339), z.Next.Sub(now).Round(time.Second))
	}
	fmt.Fprintln(stdout, ")")
	if z.Waiting != "" {
		fmt.Fprintf(stdout, "  waiting: %s\n", z.Waiting)
	}
	for _, k := range z.Keys {
		var states []string
		for _, s := range []struct {
			on   bool
			name string
		}{{k.Published, "published"}, {k.Active, "signing"}, {k.Synced, "CDS"}} {
			if s.on {
				states = append(states, s.name)
			}
		}
		if len(states) == 0 {
			states = []string{"not in the zone"}
		}
		fmt.Fprintf(stdout, "  %s %-5d %-16s %s\n", strings.ToUpper(k.Role), k.Tag, k.Algorithm, strings.Join(states, ", "))
		for _, e := range timingLines(k.Timing) {
			fmt.Fprintf(stdout, "      %s\n", e)
		}
	}
}

// timingLines are a schedule's set times, "publish      2026-12-02T15:00:00Z".
func timingLines(t keys.Timing) []string {
	var out []string
	for _, f := range []struct {
		name string
		at   time.Time
	}{{"created", t.Created}, {"publish", t.Publish}, {"activate", t.Activate}, {"inactive", t.Inactive},
		{"delete", t.Delete}, {"sync publish", t.SyncPublish}, {"sync delete", t.SyncDelete}} {
		if !f.at.IsZero() {
			out = append(out, fmt.Sprintf("%-13s%s", f.name, f.at.UTC().Format(time.RFC3339)))
		}
	}
	return out
}

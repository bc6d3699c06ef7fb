package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

func init() {
	commands["tlsa"] = command{
		usage:   "[-host NAME] [-ports 25,...] [-records 311,...] [-ttl N] (-cert FILE | -probe HOST:PORT [-tls])",
		summary: "print the TLSA records danezone would publish for a certificate file or a live host",
		help: "For people who run other DNS servers: computes the TLSA records of a PEM chain\n" +
			"(-cert, e.g. certbot's fullchain.pem) or of the chain a mail server presents\n" +
			"(-probe: STARTTLS on SMTP, or implicit TLS with -tls, e.g. port 465), in zone\n" +
			"file syntax. Default: 3 1 1 (DANE-EE, SPKI, SHA-256) at _25._tcp.HOST.\n\n" +
			"Flags:\n\t-host NAME\tthe MX host (default: the probe's host, or the certificate's first DNS name)\n" +
			"\t-ports LIST\tports, comma-separated (default 25)\n" +
			"\t-records LIST\tusage/selector/matching, e.g. 311,211 (default 311)\n" +
			"\t-ttl N\t\tTTL (default 300)",
		run: runTLSA,
	}
	commands["status"] = command{
		usage:   "[-api URL] [-token TOKEN]",
		summary: "show the TLSA records that follow certificates, with warnings, from a running danezone",
		help: "Asks the control API of a running danezone (GET /tlsa) and prints, per MX host,\n" +
			"the certificate, the records published (current, staged next keys, held after a\n" +
			"change) and any warning: a renewal whose key was not published ahead, an expiry\n" +
			"coming, a source that fails. Exits 1 when there is a warning.\n\n" +
			"Flags:\n\t-api URL\tthe control API (default http://127.0.0.1:8053)\n\t-token TOKEN\tits token, if set",
		run: runStatus,
	}
}

func runTLSA(args []string) error {
	fs := flag.NewFlagSet("tlsa", flag.ContinueOnError)
	host := fs.String("host", "", "MX host")
	ports := fs.String("ports", "25", "ports")
	records := fs.String("records", "311", "records")
	ttl := fs.Int("ttl", 300, "TTL")
	certFile := fs.String("cert", "", "PEM chain")
	probe := fs.String("probe", "", "HOST:PORT")
	implicit := fs.Bool("tls", false, "implicit TLS")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"tlsa"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if (*certFile == "") == (*probe == "") {
		return usagef("give one of -cert FILE or -probe HOST:PORT")
	}
	var params []tlsa.Param
	for _, r := range strings.Split(*records, ",") {
		p, err := tlsa.ParseParam(r)
		if err != nil {
			return usagef("%v", err)
		}
		params = append(params, p)
	}
	var portList []int
	for _, p := range strings.Split(*ports, ",") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return usagef("-ports: %q is not a port", p)
		}
		portList = append(portList, n)
	}
	var src tlsa.Source = tlsa.File{Path: *certFile}
	if *probe != "" {
		h, _, err := net.SplitHostPort(*probe)
		if err != nil {
			return usagef("-probe: %v", err)
		}
		if *host == "" {
			*host = h
		}
		src = tlsa.Probe{Addr: *probe, ServerName: *host, Implicit: *implicit, Timeout: 15 * time.Second}
	}
	chain, err := src.Fetch(context.Background())
	if err != nil {
		return err
	}
	if *host == "" {
		if len(chain[0].DNSNames) == 0 {
			return usagef("the certificate names no DNS name: give -host")
		}
		*host = chain[0].DNSNames[0]
	}
	leaf := chain[0]
	fmt.Fprintf(stdout, "; %s: %s, issued by %s, valid until %s\n", src, leaf.Subject, leaf.Issuer, leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(leaf.NotAfter) {
		fmt.Fprintln(stdout, "; WARNING: this certificate has expired (DANE-EE ignores dates; DANE-TA does not)")
	}
	for _, port := range portList {
		rrs, err := tlsa.Records(tlsa.Owner(*host, port), uint32(*ttl), chain, params)
		if err != nil {
			return err
		}
		for _, rr := range rrs {
			fmt.Fprintln(stdout, rr.String())
		}
	}
	return nil
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

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

func init() {
	register("tlsa", command{
		group:   groupOperator,
		usage:   "[-host NAME] [-ports 25,...] [-records 311,...] [-ttl N] (-cert FILE | -probe HOST:PORT [-tls]) | sync ... | gate ... | next ...",
		summary: "TLSA records for a certificate: print them, keep them published by dynamic update (sync), gate a renewal on them (gate), stage the next key (next)",
		help: "danelab tlsa sync, danelab tlsa gate and danelab tlsa next keep the TLSA records of\n" +
			"a mail server's certificate right on any DNS server that takes RFC 2136 updates:\n" +
			"see danelab tlsa sync -h, danelab tlsa gate -h, danelab tlsa next -h.\n\n" +
			"Without a subcommand, for people who run other DNS servers: computes the TLSA records of a PEM chain\n" +
			"(-cert, e.g. certbot's fullchain.pem) or of the chain a mail server presents\n" +
			"(-probe: STARTTLS on SMTP, or implicit TLS with -tls, e.g. port 465), in zone\n" +
			"file syntax. Default: 3 1 1 (DANE-EE, SPKI, SHA-256) at _25._tcp.HOST.\n\n" +
			"Flags:\n\t-host NAME\tthe MX host (default: the probe's host, or the certificate's first DNS name)\n" +
			"\t-ports LIST\tports, comma-separated (default 25)\n" +
			"\t-records LIST\tusage/selector/matching, e.g. 311,211 (default 311)\n" +
			"\t-ttl N\t\tTTL (default 300)",
		run: runTLSA,
	})
}

func runTLSA(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "sync":
			return runTLSASync(args[1:])
		case "gate":
			return runTLSAGate(args[1:])
		case "next":
			return runTLSANext(args[1:])
		}
	}
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/danelab/danelab/harness/check"
	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

func init() {
	register("check", command{
		group:   groupOperator,
		usage:   "[-mx HOST] [-port N] [-anchor FILE] [-root ADDR,...] [-resolver ADDR | -fixture URL] [-expect-mx VALUE] [-json] [-html FILE] [-timeout D] DOMAIN",
		summary: "say what DANE senders (Exchange Online, Postfix) would do with mail to DOMAIN, and which record to fix",
		help: "Checks the DNSSEC chain from the root, the MX and each MX host's addresses, TLSA\n" +
			"records (and the proof of their absence), the certificate each host serves over\n" +
			"STARTTLS against them, rollover readiness, MTA-STS and TLS-RPT, and, with\n" +
			"-expect-mx, Exchange Online's inbound DANE preflight (EX/ED/ES codes). Then the\n" +
			"harness's own sender makes a dry run of a delivery (up to RCPT TO postmaster@DOMAIN,\n" +
			"no message sent) and says what Exchange Online and Postfix would do.\n\n" +
			"Resolution: by default the harness's validating resolver iterates from the root\n" +
			"servers with the IANA root trust anchor (this needs internet access: port 53 to\n" +
			"the root and the domain's servers). -anchor FILE and -root ADDR,... replace the\n" +
			"anchor (DS or DNSKEY records) and the root servers (a lab's); -resolver ADDR trusts\n" +
			"the AD bit of a validating resolver instead (no link-by-link chain then); -fixture\n" +
			"URL checks a domain of a running `danelab serve` (its anchor, root and SMTP port).\n\n" +
			"Exit status: 0 everything passes, 1 warnings, 2 failures (or bad usage).\n\n" +
			"Flags:\n\t-mx HOST\tcheck this host as if it were the only MX\n" +
			"\t-port N\t\tSMTP port to connect to (default 25; TLSA is always looked up at _25._tcp)\n" +
			"\t-expect-mx VALUE\tExchange Online's DnssecMxValue (Enable-DnssecForVerifiedDomain)\n" +
			"\t-json\t\tprint the report as JSON\n" +
			"\t-html FILE\talso write a self-contained HTML report to FILE\n" +
			"\t-timeout D\ttimeout of each network step (default 10s)",
		run: runCheck,
	})
}

// ianaRootAnchor is the root zone's trust anchor as IANA publishes it
// (https://data.iana.org/root-anchors/root-anchors.xml): KSK-2017 and KSK-2024.
var ianaRootAnchor = []string{
	". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
	". IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
}

// rootServers are the IPv4 addresses of a.root-servers.net to m.root-servers.net.
var rootServers = []string{"198.41.0.4", "170.247.170.2", "192.33.4.12", "199.7.91.13", "192.203.230.10", "192.5.5.241",
	"192.112.36.4", "198.97.190.53", "192.36.148.17", "192.58.128.30", "193.0.14.129", "199.7.83.42", "202.12.27.33"}

// statusError ends a command with an exit status that is its answer, not a failure: nothing
// more is printed.
type statusError struct{ code int }

func (e *statusError) Error() string { return "exit status " + strconv.Itoa(e.code) }

func runCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	mx := fs.String("mx", "", "MX host")
	port := fs.Int("port", 0, "SMTP port")
	anchorFile := fs.String("anchor", "", "trust anchor file")
	roots := fs.String("root", "", "root server addresses")
	upstream := fs.String("resolver", "", "validating resolver")
	fixtureURL := fs.String("fixture", "", "danelab serve URL")
	expectMX := fs.String("expect-mx", "", "DnssecMxValue")
	asJSON := fs.Bool("json", false, "JSON")
	htmlFile := fs.String("html", "", "HTML report file")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout per step")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"check"})
	}
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one DOMAIN")
	}
	if *upstream != "" && (*fixtureURL != "" || *anchorFile != "" || *roots != "") {
		return usagef("-resolver trusts another resolver: it goes without -fixture, -anchor and -root")
	}
	if v := strings.TrimSuffix(*expectMX, "."); *expectMX != "" {
		if _, ok := dns.IsDomainName(v); !ok || net.ParseIP(v) != nil || !strings.Contains(v, ".") {
			return usagef("-expect-mx %q: want the host name Enable-DnssecForVerifiedDomain printed (DnssecMxValue)", *expectMX)
		}
	}
	if *port < 0 || *port > 65535 || *timeout <= 0 {
		return usagef("-port must be a port and -timeout positive")
	}
	cfg := check.Config{MXHost: *mx, Port: *port, ExpectMX: *expectMX, Timeout: *timeout}
	if *fixtureURL != "" {
		in, err := fixtureInfo(*fixtureURL, *timeout)
		if err != nil {
			return err
		}
		anchors, err := parseRRs(strings.Join(in.Anchor, "\n"), *fixtureURL+"/scenarios")
		if err != nil {
			return err
		}
		res, err := iterative(anchors, []string{in.DNS}, *timeout)
		if err != nil {
			return err
		}
		cfg.Resolver, cfg.Iterative = res, true
		cfg.Resolution = "iterating from the lab root at " + in.DNS + " (fixture " + *fixtureURL + ")"
		if cfg.Port == 0 {
			cfg.Port = in.SMTPPort
		}
	} else {
		var err error
		if cfg.Resolver, cfg.Resolution, err = validation(*anchorFile, *roots, *upstream, *timeout); err != nil {
			return err
		}
		cfg.Iterative = *upstream == ""
	}
	rep, err := check.Run(context.Background(), pos[0], cfg)
	if errors.Is(err, check.ErrNotDomain) {
		return usagef("%v", err)
	}
	if err != nil {
		return err
	}
	if *htmlFile != "" {
		f, err := os.Create(*htmlFile)
		if err != nil {
			return err
		}
		if err := rep.HTML(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if *asJSON {
		err = rep.JSON(stdout)
	} else {
		err = rep.Text(stdout, colorful(stdout))
	}
	if err != nil {
		return err
	}
	if code := rep.ExitStatus(); code != 0 {
		return &statusError{code}
	}
	return nil
}

// validation is how DNSSEC is judged, from the flags -anchor, -root and -resolver: the AD bit
// of a validating resolver (-resolver), or the harness's resolver iterating from the root
// servers (-root, default the real ones) with a trust anchor (-anchor, default IANA's). It
// returns the resolver and a sentence saying which.
func validation(anchorFile, roots, upstream string, timeout time.Duration) (resolver.Interface, string, error) {
	if upstream != "" {
		addr := withPort(upstream)
		return resolver.NewUpstream(addr, timeout), "the AD bit of the validating resolver at " + addr, nil
	}
	text, from := strings.Join(ianaRootAnchor, "\n"), "the IANA root trust anchor"
	if anchorFile != "" {
		b, err := os.ReadFile(anchorFile)
		if err != nil {
			return nil, "", err
		}
		text, from = string(b), anchorFile
	}
	anchors, err := parseRRs(text, from)
	if err != nil {
		return nil, "", err
	}
	addrs := rootServers
	if roots != "" {
		addrs = splitList(roots)
	}
	res, err := iterative(anchors, addrs, timeout)
	if err != nil {
		return nil, "", err
	}
	return res, "iterating from the root with " + from, nil
}

// iterative is the harness's resolver from the anchors and root addresses (ip or ip:port;
// a lab's port is used for every server).
func iterative(anchors []dns.RR, roots []string, timeout time.Duration) (*resolver.Resolver, error) {
	cfg := resolver.Config{TrustAnchors: anchors, Timeout: min(timeout, 3*time.Second), Retries: 1, Cache: true}
	for _, r := range roots {
		r = strings.TrimSpace(r)
		host, p, err := net.SplitHostPort(r)
		if err != nil {
			host, p = r, "53"
		}
		if net.ParseIP(host) == nil {
			return nil, usagef("-root: %q is not an address", r)
		}
		if p != "53" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, usagef("-root: %q has no port", r)
			}
			cfg.Port = n
		}
		cfg.Roots = append(cfg.Roots, net.JoinHostPort(host, p))
	}
	return resolver.New(cfg), nil
}

// parseRRs reads trust anchor records (DS or DNSKEY) in zone file syntax.
func parseRRs(text, from string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(text), ".", from)
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr.(type) {
		case *dns.DS, *dns.DNSKEY:
			out = append(out, rr)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", from, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no DS or DNSKEY record", from)
	}
	return out, nil
}

// fixtureInfo reads a running fixture's /scenarios.
func fixtureInfo(url string, timeout time.Duration) (*fixture.Info, error) {
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(strings.TrimSuffix(url, "/") + "/scenarios")
	if err != nil {
		return nil, fmt.Errorf("-fixture: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("-fixture: %s/scenarios: %s", url, resp.Status)
	}
	var in fixture.Info
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&in); err != nil {
		return nil, fmt.Errorf("-fixture: %s/scenarios: %v", url, err)
	}
	return &in, nil
}

// colorful reports whether w is a terminal that wants colours (https://no-color.org).
func colorful(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

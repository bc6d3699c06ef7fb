package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/resolver"
)

func init() {
	register("serve", command{
		group: groupLab,
		usage: "[-scenarios DIR] [-run PATTERN] [-dir DIR] [-resolver go|unbound|none] [-resolver-addr ADDR]\n" +
			"\t[-smtp-port N] [-net A.B] [-listen ADDR] [-minute D] [-v]",
		summary: "keep the scenarios' lab running as a fixture for another MTA (fixture mode)",
		help: "Starts every scenario's DNS world in one danezone, each under its own name\n" +
			"(mx1.<scenario>.example.test), its receivers on port 25 of their own loopback\n" +
			"addresses (127.2.<n>.11, ...), the sender's mailbox that collects DSNs\n" +
			"(alice@sender.test), a validating resolver for the MTA under test, and the fixture\n" +
			"API (/scenarios, /observations). Faults and certificate renewals happen at their\n" +
			"scenario times, one scenario minute lasting -minute of real time. Prints how to\n" +
			"point an MTA at it and the recipient of every scenario; runs until interrupted.\n" +
			"Then `danelab expect` judges what the MTA did.\n\n" +
			"Flags:\n\t-scenarios DIR\tthe scenario files (default " + defaultScenarios + ")\n" +
			"\t-run PATTERN\tonly scenarios whose name matches\n" +
			"\t-dir DIR\twhere the trust anchor, resolv.conf and resolver files go (default: a new\n\t\t\ttemporary directory, printed)\n" +
			"\t-resolver R\tgo (the harness's validating resolver, default), unbound, or none\n" +
			"\t-resolver-addr A\tthe resolver's address (default 127.0.0.54:53: resolv.conf has no port)\n" +
			"\t-smtp-port N\tthe receivers' port (default 25)\n" +
			"\t-net A.B\tthe receivers' loopback prefix (default 127.2)\n" +
			"\t-listen ADDR\tthe fixture API (default 127.0.0.1:8054)\n" +
			"\t-minute D\treal time per scenario minute, for faults that heal (default 1m)\n" +
			"\t-v\t\tlog each world as built (zone records, receivers), faults, renewals and\n\t\t\tthe lab server's messages",
		run: runServe,
	})
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("scenarios", defaultScenarios, "scenario directory")
	pattern := fs.String("run", "", "name pattern")
	work := fs.String("dir", "", "working directory")
	res := fs.String("resolver", "go", "go, unbound or none")
	resAddr := fs.String("resolver-addr", "127.0.0.54:53", "resolver address")
	port := fs.Int("smtp-port", 25, "receivers' port")
	netp := fs.String("net", "127.2", "receivers' loopback prefix")
	listen := fs.String("listen", "127.0.0.1:8054", "fixture API address")
	minute := fs.Duration("minute", time.Minute, "real time per scenario minute")
	verbose := fs.Bool("v", false, "log")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return runHelp([]string{"serve"})
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *res != "go" && *res != "unbound" && *res != "none" {
		return usagef("-resolver %q: want go, unbound or none", *res)
	}
	if *minute <= 0 {
		return usagef("-minute %v: want a positive duration", *minute)
	}
	if ip := net.ParseIP(*netp + ".0.1"); ip == nil || !strings.HasPrefix(*netp, "127.") || strings.Count(*netp, ".") != 1 {
		return usagef("-net %q: want two octets of 127.0.0.0/8, like 127.2", *netp)
	}
	// Signals from here on stop the fixture cleanly (receivers, lab, resolver).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	chosen, err := selectScenarios(*dir, *pattern, "")
	if err != nil {
		return err
	}
	if *work == "" {
		if *work, err = os.MkdirTemp("", "danelab-fixture-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(*work, 0o755); err != nil {
		return err
	}
	quiet(!*verbose)
	var logw io.Writer = io.Discard
	if *verbose {
		logw = stderr
	}
	f, err := fixture.Start(fixture.Config{Scenarios: chosen, Dir: filepath.Join(*work, "lab"), SMTPPort: *port, Net: *netp,
		Listen: *listen, Minute: *minute, Log: logw, Errors: stderr})
	if err != nil {
		return err
	}
	defer f.Stop()
	anchor := filepath.Join(*work, "root.anchor")
	if err := f.Lab.WriteAnchor(anchor); err != nil {
		return err
	}
	resolvConf := filepath.Join(*work, "resolv.conf")
	host, _, err := net.SplitHostPort(*resAddr)
	if err != nil {
		return usagef("-resolver-addr: %v", err)
	}
	if err := lab.WriteResolvConf(resolvConf, host); err != nil {
		return err
	}
	stopResolver, err := startResolver(*res, *resAddr, *work, f.Lab)
	if err != nil {
		return err
	}
	defer stopResolver()
	// The scenario clock starts now that the MTA's resolver answers; /health says ok from here.
	if err := f.Ready(); err != nil {
		return err
	}
	printGuide(stdout, f, *res, *resAddr, *work, anchor, resolvConf)
	select {
	case <-sig:
	case <-serveStop:
	}
	fmt.Fprintln(stderr, "danelab serve: stopping")
	return nil
}

// serveStop, when a test sets it, ends runServe like a signal when closed.
var serveStop chan struct{}

// startResolver starts the validating resolver the MTA under test uses.
func startResolver(kind, addr, dir string, l *lab.Lab) (func(), error) {
	switch kind {
	case "none":
		return func() {}, nil
	case "go":
		_, lport, _ := net.SplitHostPort(l.Addr)
		var port int
		fmt.Sscan(lport, &port)
		// No cache: faults switch at runtime and every question should reach the lab.
		h := &resolverHandler{r: resolver.New(resolver.Config{TrustAnchors: l.Anchor, Roots: []string{l.Addr}, Port: port,
			Timeout: 2 * time.Second, Retries: 1})}
		servers, err := serveDNS(addr, h)
		if err != nil {
			return nil, err
		}
		return func() {
			for _, s := range servers {
				s.Shutdown()
			}
		}, waitResolver(addr)
	}
	bin, err := exec.LookPath("unbound")
	if err != nil {
		return nil, fmt.Errorf("-resolver unbound: %v (Debian package unbound)", err)
	}
	udir := filepath.Join(dir, "unbound")
	if err := os.MkdirAll(udir, 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		// Debian's AppArmor profile attaches to /usr/sbin/unbound and denies our directory.
		if bin, err = copyFile(bin, filepath.Join(udir, "unbound")); err != nil {
			return nil, err
		}
	}
	anchor := filepath.Join(udir, "root.anchor")
	if err := l.WriteAnchor(anchor); err != nil {
		return nil, err
	}
	conf := filepath.Join(udir, "unbound.conf")
	if err := l.WriteUnboundConfig(conf, lab.UnboundOptions{Listen: addr, AnchorFile: anchor, Dir: udir}); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	if err := waitResolver(addr); err != nil {
		stop()
		return nil, fmt.Errorf("unbound (%s, log %s): %v", conf, filepath.Join(udir, "unbound.log"), err)
	}
	return stop, nil
}

// waitResolver waits until the resolver answers a question about test. securely.
func waitResolver(addr string) error {
	c := &dns.Client{Timeout: time.Second}
	m := new(dns.Msg)
	m.SetQuestion("test.", dns.TypeSOA)
	m.SetEdns0(1232, true)
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r, _, err := c.Exchange(m, addr)
		switch {
		case err != nil:
			last = err
		case r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData:
			last = fmt.Errorf("test. SOA: %s, AD=%v", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
		default:
			return nil
		}
	}
	return fmt.Errorf("resolver on %s not ready: %v", addr, last)
}

func copyFile(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, b, 0o755)
}

// printGuide tells how to point an MTA at the fixture.
func printGuide(w io.Writer, f *fixture.Fixture, res, resAddr, dir, anchor, resolvConf string) {
	in := f.Info()
	fmt.Fprintf(w, "danelab fixture: %d scenarios, running since %s\n\n", len(in.Scenarios), in.Started.UTC().Format(time.RFC3339))
	hw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(hw, "  lab DNS (authoritative, every zone)\t%s\n", in.DNS)
	if res != "none" {
		fmt.Fprintf(hw, "  validating resolver (%s)\t%s   <- the MTA's resolver\n", res, resAddr)
	}
	fmt.Fprintf(hw, "  resolv.conf for the MTA\t%s\n", resolvConf)
	fmt.Fprintf(hw, "  trust anchor (root DS, DNSKEY)\t%s\n", anchor)
	fmt.Fprintf(hw, "  receivers\tport %d of 127.x.y.z (below)\n", in.SMTPPort)
	fmt.Fprintf(hw, "  envelope sender / DSN mailbox\t%s (mbox.sender.test, %s, DANE 3 1 1)\n", in.Sender, in.Mailbox)
	fmt.Fprintf(hw, "  fixture API\t%s/scenarios, %s/observations\n", f.URL, f.URL)
	fmt.Fprintf(hw, "  TLS-RPT reports (every domain's rua)\t%s\n", in.TLSRPT)
	fmt.Fprintf(hw, "  lab control API (faults, records)\t%s\n", in.Control)
	hw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Send one message per scenario from %s to:\n", in.Sender)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range in.Scenarios {
		note := ""
		if s.HealsAt > 0 {
			note = fmt.Sprintf("fault heals at +%.0fs", s.HealsAt)
		} else if !s.Static {
			note = "changes over time"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, s.Recipient, note)
	}
	tw.Flush()
	maxHeal := 0.0
	for _, s := range in.Scenarios {
		maxHeal = max(maxHeal, s.HealsAt)
	}
	lifetime := "2m"
	if maxHeal+60 > 120 {
		lifetime = fmt.Sprintf("%.0fs", maxHeal+120)
	}
	fmt.Fprintf(w, "\nThe last fault heals %.0fs after the start: an MTA's queue lifetime must be longer, or\n"+
		"those messages come back before they can be delivered (-minute sets the scale).\n", maxHeal)
	fmt.Fprintf(w, `
Postfix (3.7), e.g. with its own configuration directory CONF:
  main.cf:  smtp_dns_support_level = dnssec
            smtp_tls_security_level = dane
            smtp_tls_loglevel = 1
            inet_interfaces = loopback-only
            mydestination =
  Postfix reads the system resolver, and resolv.conf has no port: run it in a private mount
  namespace whose /etc/resolv.conf names the fixture's resolver (the machine's file is untouched):
    unshare -m --propagation private sh -c 'mount --bind %s /etc/resolv.conf && exec postfix -c CONF start'
  For quick retries: queue_run_delay = 10s, minimal_backoff_time = 10s, maximal_backoff_time = 60s,
  maximal_queue_lifetime = %s, bounce_queue_lifetime = %s.

When the MTA has done its work:
  danelab expect -fixture %s -profile postfix -wait 5m
`, resolvConf, lifetime, lifetime, f.URL)
}

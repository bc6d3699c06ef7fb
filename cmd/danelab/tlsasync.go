package main

// danelab tlsa sync | gate | next: the TLSA tracker of danezone for zones served elsewhere
// (package tlsasync).

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/danelab/danelab/harness/tlsasync"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

const tlsaSyncHelp = `danelab tlsa sync: keep the TLSA records of a mail server's certificate published on
any DNS server that takes RFC 2136 dynamic updates with TSIG (BIND, Knot, PowerDNS, ...).
The records are danezone's (the same tracker): current certificate, staged next keys,
records of a replaced certificate held for 2×TTL; state (publication times, held records)
is kept in -state across runs. Each run makes each TLSA RRset on the zone's primary equal
to these records with a minimal update whose prerequisite is the RRset as read, so that an
edit made meanwhile is not overwritten (the run reads again and retries).

One host by flags, or several with -config FILE: lines as danezone's Corefile takes them,
  tlsa HOST cert FILE [ports P,...] [records 311,...] [next PATH] [ttl N] [hold D]
(# comments; probe sources work too).

Flags:
	-host NAME	the MX host (records at _PORT._tcp.NAME)
	-cert FILE	the certificate chain the mail server serves (PEM)
	-next PATH	staged key(s) for the next certificate (see danelab tlsa next)
	-ports LIST	ports (default 25)
	-records LIST	usage/selector/matching (default 311)
	-ttl N		TTL of the records (default 300)
	-hold D		how long a replaced certificate's records stay (default 2×TTL)
	-config FILE	tlsa lines instead of the flags above
	-zone ZONE	the zone (default: found from the SOA of the owner)
	-server ADDR	the primary, host[:port] (default: the SOA's MNAME, port 53)
	-tsig FILE	TSIG key: BIND's key "NAME" { algorithm ...; secret "..."; }; or ALG:NAME:SECRET
	-resolver ADDR	resolver for finding zone and primary (default: /etc/resolv.conf's first)
	-state FILE	state file (default /var/lib/danelab/tlsa-state.json)
	-once		one run, then exit (cron, hooks); else run every -interval
	-interval D	how often to run (default 1m)
	-timeout D	timeout of each DNS exchange (default 10s)

Exit status (with -once): 0 done, 1 a record could not be published or a certificate
could not be read (the records on the server then stay as they were), 2 bad usage.`

const tlsaGateHelp = `danelab tlsa gate: a deploy hook for ACME clients. Before a renewed certificate is put
where the mail server reads it, its TLSA records are published (as tlsa sync does), and
the gate waits until every authoritative server of the zone serves them signed and
validating, and one TTL more (no sender then holds an RRset without them); then it
installs certificate and key (atomically, keeping file modes) and runs -reload. If the
wait runs out, or the update is refused, the old certificate stays and the gate exits 1
with the reason. A certificate whose key was staged with danelab tlsa next (and published
for 2×TTL) is installed at once.

The renewed files come from -new-cert/-new-key, or from the ACME client's environment:
certbot --deploy-hook (RENEWED_LINEAGE), lego --run-hook/--renew-hook (LEGO_CERT_PATH,
LEGO_CERT_KEY_PATH), acme.sh --reloadcmd (CERT_FULLCHAIN_PATH, CERT_KEY_PATH). Without a
key (a certificate from a CSR) the staged key of -next that matches it is used.

Flags: those of tlsa sync for one host (-cert is where the certificate is installed), and
	-install-key FILE	where the key is installed
	-new-cert FILE, -new-key FILE	the renewed chain and key (default: from the environment)
	-reload CMD	run after installing (sh -c), e.g. "systemctl reload postfix"
	-wait D		give up after this long (default 30m)
	-poll D		pause between checks (default 1s)
	-servers LIST	authoritative servers to check, host:port,... (default: the zone's NS)
	-anchor FILE, -root ADDR,..., -validator ADDR	how the zone's DNSKEY is validated: as
			danelab check's -anchor, -root and -resolver (default: from the IANA root)`

const tlsaNextHelp = `danelab tlsa next: make the key of the next certificate ahead of time, so that its TLSA
is published long before it is used (RFC 7671 §8.1) and a renewal needs no wait.

Writes -key (PKCS #8, mode 0600) and -csr (a certificate request for -domains, default the
names of -cert's certificate) and prints the key's 3 1 1 record. Point tlsa sync's -next
(or danezone's next) at the key or request, and give the request to the ACME client at
the next renewal: lego --csr FILE run, certbot certonly --csr FILE. An existing -key is
replaced only once it is the installed certificate's key (-cert).

Flags:
	-key FILE	the key to write
	-csr FILE	the certificate request to write (default: -key with .csr)
	-cert FILE	the installed certificate (its names, its key type, whether -key is in use)
	-domains LIST	names for the request (default: -cert's)
	-type T		ec256, ec384, rsa2048, rsa3072, rsa4096 (default: -cert's key type, else ec256)`

// syncFlags are the flags tlsa sync and tlsa gate share.
type syncFlags struct {
	host, cert, next, ports, records, config, zone, server, tsig, resolver, state string
	ttl                                                                           int
	hold, timeout                                                                 time.Duration
}

func (f *syncFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.host, "host", "", "MX host")
	fs.StringVar(&f.cert, "cert", "", "certificate")
	fs.StringVar(&f.next, "next", "", "staged keys")
	fs.StringVar(&f.ports, "ports", "", "ports")
	fs.StringVar(&f.records, "records", "", "records")
	fs.IntVar(&f.ttl, "ttl", 0, "TTL")
	fs.DurationVar(&f.hold, "hold", 0, "hold-down")
	fs.StringVar(&f.config, "config", "", "tlsa lines")
	fs.StringVar(&f.zone, "zone", "", "zone")
	fs.StringVar(&f.server, "server", "", "primary")
	fs.StringVar(&f.tsig, "tsig", "", "TSIG key file")
	fs.StringVar(&f.resolver, "resolver", "", "resolver")
	fs.StringVar(&f.state, "state", "/var/lib/danelab/tlsa-state.json", "state file")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout")
}

// hosts returns the tlsa lines of -config, or the one of the flags.
func (f *syncFlags) hosts() ([]tlsa.Host, error) {
	if f.config != "" {
		if f.host != "" || f.cert != "" || f.next != "" || f.ports != "" || f.records != "" || f.ttl != 0 || f.hold != 0 {
			return nil, usagef("-config goes without -host, -cert, -next, -ports, -records, -ttl and -hold (they are in its lines)")
		}
		return readTLSAConfig(f.config)
	}
	if f.host == "" || f.cert == "" {
		return nil, usagef("give -host and -cert, or -config")
	}
	args := []string{f.host, "cert", f.cert}
	for _, kv := range [][2]string{{"next", f.next}, {"ports", f.ports}, {"records", f.records}} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if f.ttl != 0 {
		args = append(args, "ttl", strconv.Itoa(f.ttl))
	}
	if f.hold != 0 {
		args = append(args, "hold", f.hold.String())
	}
	h, err := tlsa.ParseHost(args)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return []tlsa.Host{h}, nil
}

// readTLSAConfig reads tlsa lines; errors name the file and line.
func readTLSAConfig(path string) ([]tlsa.Host, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []tlsa.Host
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] != "tlsa" {
			return nil, fmt.Errorf("%s:%d: want a line tlsa HOST cert FILE ..., got %q", path, n, f[0])
		}
		h, err := tlsa.ParseHost(f[1:])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tlsa line", path)
	}
	return out, nil
}

// syncer builds the Syncer of the flags.
func (f *syncFlags) syncer() (*tlsasync.Syncer, error) {
	hosts, err := f.hosts()
	if err != nil {
		return nil, err
	}
	s := &tlsasync.Syncer{State: f.state, Timeout: f.timeout,
		Logf: log.New(stderr, "", log.LstdFlags).Printf}
	for _, h := range hosts {
		s.Trackers = append(s.Trackers, tlsa.NewTracker(h))
	}
	if f.zone != "" {
		if _, ok := dns.IsDomainName(f.zone); !ok {
			return nil, usagef("-zone %q is not a domain name", f.zone)
		}
		s.Zone = dns.CanonicalName(f.zone)
	}
	if f.server != "" {
		s.Server = withPort(f.server)
	}
	if s.Zone == "" || s.Server == "" {
		s.Resolver = f.resolver
		if s.Resolver == "" {
			cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
			if err != nil || len(cc.Servers) == 0 {
				return nil, usagef("no resolver to find the zone and its primary: give -zone and -server, or -resolver")
			}
			s.Resolver = cc.Servers[0]
		}
		s.Resolver = withPort(s.Resolver)
	}
	if f.tsig != "" {
		k, err := tlsasync.ReadKey(f.tsig)
		if err != nil {
			return nil, err
		}
		s.Key = &k
	}
	if err := s.Check(); err != nil {
		return nil, usagef("%v", err)
	}
	return s, nil
}

// withPort adds DNS's port 53 to an address without one.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return net.JoinHostPort(strings.Trim(addr, "[]"), "53")
	}
	return addr
}

func runTLSASync(args []string) error {
	fs := flag.NewFlagSet("tlsa sync", flag.ContinueOnError)
	var f syncFlags
	f.register(fs)
	once := fs.Bool("once", false, "one run")
	interval := fs.Duration("interval", time.Minute, "interval")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, tlsaSyncHelp)
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *interval < time.Second {
		return usagef("-interval must be at least 1s")
	}
	s, err := f.syncer()
	if err != nil {
		return err
	}
	if *once {
		results, err := s.Run(context.Background(), time.Now())
		printResults(results)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for {
		results, err := s.Run(ctx, time.Now())
		printResults(results)
		if err != nil {
			fmt.Fprintf(stderr, "danelab tlsa sync: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

func printResults(results []tlsasync.Result) {
	for _, r := range results {
		switch {
		case r.Err != nil:
			fmt.Fprintf(stdout, "%s: not published: %v\n", r.Owner, r.Err)
		case r.Change.Unchanged():
			fmt.Fprintf(stdout, "%s: up to date in %s (%s)\n", r.Owner, r.Target, strings.Join(r.Change.Served, ", "))
		default:
			fmt.Fprintf(stdout, "%s: updated in %s: added %v, removed %v\n", r.Owner, r.Target, r.Change.Added, r.Change.Removed)
		}
	}
}

// acmeEnv returns the renewed certificate and key the ACME client running us names in the
// environment: certbot (RENEWED_LINEAGE), lego (LEGO_CERT_PATH), acme.sh (CERT_FULLCHAIN_PATH).
func acmeEnv() (cert, key, client string) {
	if l := os.Getenv("RENEWED_LINEAGE"); l != "" {
		return filepath.Join(l, "fullchain.pem"), filepath.Join(l, "privkey.pem"), "certbot"
	}
	if c := os.Getenv("LEGO_CERT_PATH"); c != "" {
		return c, os.Getenv("LEGO_CERT_KEY_PATH"), "lego"
	}
	if c := os.Getenv("CERT_FULLCHAIN_PATH"); c != "" {
		return c, os.Getenv("CERT_KEY_PATH"), "acme.sh"
	}
	return "", "", ""
}

func runTLSAGate(args []string) error {
	fs := flag.NewFlagSet("tlsa gate", flag.ContinueOnError)
	var f syncFlags
	f.register(fs)
	installKey := fs.String("install-key", "", "installed key")
	newCert := fs.String("new-cert", "", "renewed chain")
	newKey := fs.String("new-key", "", "renewed key")
	reload := fs.String("reload", "", "reload command")
	wait := fs.Duration("wait", 30*time.Minute, "wait")
	poll := fs.Duration("poll", time.Second, "poll")
	servers := fs.String("servers", "", "servers")
	anchorFile := fs.String("anchor", "", "trust anchor file")
	roots := fs.String("root", "", "root servers")
	validator := fs.String("validator", "", "validating resolver")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, tlsaGateHelp)
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if f.config != "" {
		return usagef("the gate installs one certificate: give -host and -cert, not -config")
	}
	if *installKey == "" {
		return usagef("give -install-key: where the mail server reads its key")
	}
	if *wait <= 0 || *poll <= 0 {
		return usagef("-wait and -poll must be positive")
	}
	if *validator != "" && (*anchorFile != "" || *roots != "") {
		return usagef("-validator trusts another resolver: it goes without -anchor and -root")
	}
	cert, key := *newCert, *newKey
	if cert == "" {
		var client string
		if cert, key, client = acmeEnv(); cert == "" {
			return usagef("give -new-cert (and -new-key), or run as the deploy hook of certbot, lego or acme.sh")
		}
		if *newKey != "" {
			key = *newKey
		}
		fmt.Fprintf(stderr, "danelab tlsa gate: renewed by %s: %s\n", client, cert)
	}
	s, err := f.syncer()
	if err != nil {
		return err
	}
	res, how, err := validation(*anchorFile, *roots, *validator, f.timeout)
	if err != nil {
		return err
	}
	g := &tlsasync.Gate{Syncer: s, Tracker: s.Trackers[0], NewCert: cert, NewKey: key,
		InstallCert: f.cert, InstallKey: *installKey, Reload: *reload, Resolver: res,
		Wait: *wait, Poll: *poll, Timeout: f.timeout, Logf: s.Logf}
	if *servers != "" {
		for _, a := range splitList(*servers) {
			g.Servers = append(g.Servers, withPort(a))
		}
	}
	s.Logf("DNSSEC judged by %s", how)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := g.Run(ctx); !errors.Is(err, tlsasync.ErrNotForHost) {
		return err
	}
	return nil // certbot's hook for another certificate
}

func runTLSANext(args []string) error {
	fs := flag.NewFlagSet("tlsa next", flag.ContinueOnError)
	keyFile := fs.String("key", "", "key file")
	csrFile := fs.String("csr", "", "CSR file")
	certFile := fs.String("cert", "", "installed certificate")
	domains := fs.String("domains", "", "names")
	keyType := fs.String("type", "", "key type")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, tlsaNextHelp)
		return nil
	}
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *keyFile == "" {
		return usagef("give -key: the file to write the next key to")
	}
	if *csrFile == "" {
		*csrFile = strings.TrimSuffix(*keyFile, filepath.Ext(*keyFile)) + ".csr"
	}
	names := splitList(*domains)
	kt := *keyType
	var chain []*x509.Certificate
	if *certFile != "" {
		if chain, err = (tlsa.File{Path: *certFile}).Fetch(context.Background()); err != nil {
			return err
		}
		if len(names) == 0 {
			names = chain[0].DNSNames
		}
		if kt == "" {
			kt = tlsasync.KeyType(chain[0])
		}
	}
	if len(names) == 0 {
		return usagef("give -domains, or -cert with a certificate that names them")
	}
	st, err := tlsasync.Stage(*keyFile, *csrFile, kt, names, chain)
	if err != nil {
		return err
	}
	if st.Replaced {
		fmt.Fprintf(stdout, "; %s was the installed certificate's key: replaced by a new one\n", *keyFile)
	}
	fmt.Fprintf(stdout, "; next key %s, certificate request %s for %s\n", st.Key, st.CSR, strings.Join(names, ", "))
	fmt.Fprintf(stdout, "; publish it now (tlsa sync -next %s, or danezone's next), then at the next renewal:\n", st.Key)
	fmt.Fprintf(stdout, ";   lego --csr %s ... run    or    certbot certonly --csr %s ...\n", st.CSR, st.CSR)
	fmt.Fprintln(stdout, st.Record)
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

package tlsasync

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/atomicfile"
)

// Gate installs a renewed certificate only once its TLSA records can be seen: published on
// the primary, served signed and valid by every authoritative server of the zone, and one TTL
// later, so that no sender still holds an RRset without them (RFC 7671 §8.1). A deploy hook
// for ACME clients (danelab tlsa gate).
type Gate struct {
	Syncer  *Syncer
	Tracker *tlsa.Tracker // one of Syncer's: its source is the installed certificate
	// NewCert is the renewed chain (PEM), NewKey its private key (PEM; empty: a private key
	// among the staged keys of the tracker's next path, for a certificate from a CSR).
	NewCert, NewKey string
	// InstallCert and InstallKey are where the mail server reads them (InstallCert is the
	// tracker's source file).
	InstallCert, InstallKey string
	// Reload runs (sh -c) after the files are installed: e.g. "postfix reload".
	Reload        string
	ReloadTimeout time.Duration
	// Resolver validates the zone's DNSKEY RRset (the harness's iterative resolver, or a
	// validating resolver's AD bit) and finds the zone's servers.
	Resolver resolver.Interface
	// Servers, if set, are the authoritative servers checked (host:port), instead of the
	// addresses of the zone's NS records.
	Servers []string
	// Wait bounds the whole wait; Poll is the pause between checks.
	Wait, Poll time.Duration
	Timeout    time.Duration // each query
	Logf       func(format string, args ...any)
	Now        func() time.Time
}

// GateError is a gate that did not install the certificate: Reason says why.
type GateError struct{ Reason string }

func (e *GateError) Error() string {
	return "certificate not installed, the old one stays in place: " + e.Reason
}

func (g *Gate) logf(format string, args ...any) {
	if g.Logf != nil {
		g.Logf(format, args...)
	}
}

func (g *Gate) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// ErrNotForHost is returned for a renewed certificate that does not name the gate's host:
// certbot runs a deploy hook for every certificate it renews.
var ErrNotForHost = errors.New("not for this host")

// Run publishes the new certificate's records, waits until they can be seen, installs the
// certificate and key, reloads the mail server and publishes the records of the installed
// certificate (the old ones held for the hold-down; a later sync withdraws them). On any
// failure before the installation the files in place are untouched and the records it
// published for the new certificate are withdrawn.
func (g *Gate) Run(ctx context.Context) error {
	if err := g.checkPaths(); err != nil {
		return &GateError{err.Error()}
	}
	certPEM, keyPEM, chain, err := g.readNew()
	if err != nil {
		return &GateError{err.Error()}
	}
	host := strings.TrimSuffix(g.Tracker.Name, ".")
	if chain[0].VerifyHostname(host) != nil {
		g.logf("%s names %v, not %s: nothing to do", g.NewCert, chain[0].DNSNames, host)
		return ErrNotForHost
	}
	if old, err := os.ReadFile(g.InstallCert); err == nil && bytes.Equal(old, certPEM) {
		if k, err := os.ReadFile(g.InstallKey); err == nil && bytes.Equal(k, keyPEM) {
			g.logf("%s is already installed", g.InstallCert)
			_, err := g.Syncer.Run(ctx, g.now())
			return err
		}
	}
	maxWait := g.Wait
	if maxWait <= 0 {
		maxWait = 30 * time.Minute
	}
	deadline := g.now().Add(maxWait)
	// The expected records stay in the state until the gate gives up, so that a sync run
	// meanwhile keeps them.
	g.Syncer.Prepare = func(time.Time) error { return g.Tracker.Expect(g.NewCert, chain, deadline) }
	results, err := g.Syncer.Run(ctx, g.now())
	g.Syncer.Prepare = nil
	expected := g.Tracker.Expected()
	var owners []string
	var servedTTL uint32
	zone := ""
	for _, r := range results {
		if r.Host != host {
			continue
		}
		if r.Err != nil {
			g.withdraw(ctx)
			return &GateError{"publishing the new records: " + r.Err.Error()}
		}
		owners, zone = append(owners, r.Owner), r.Target.Zone
		servedTTL = max(servedTTL, r.Change.ServedTTL)
	}
	if len(owners) == 0 || len(expected) == 0 {
		if err == nil {
			err = errors.New("no records to publish")
		}
		g.withdraw(ctx)
		return &GateError{"publishing the new records: " + err.Error()}
	}
	if err != nil {
		// The installed certificate could not be read (missing, expired): the new one is
		// what fixes that.
		g.logf("warning: %v", err)
	}
	g.logf("published %v at %v", expected, owners)
	if err := g.wait(ctx, deadline, zone, owners, expected, time.Duration(servedTTL)*time.Second); err != nil {
		g.withdraw(ctx)
		return &GateError{err.Error()}
	}
	if err := install(g.InstallKey, keyPEM, 0o600); err != nil {
		g.withdraw(ctx)
		return &GateError{"installing the key: " + err.Error()}
	}
	if err := install(g.InstallCert, certPEM, 0o644); err != nil {
		return fmt.Errorf("installing the certificate after the key (%s holds the new key, %s the old certificate: run the gate again): %v", g.InstallKey, g.InstallCert, err)
	}
	g.logf("installed %s and %s", g.InstallCert, g.InstallKey)
	var reloadErr error
	if g.Reload != "" {
		reloadErr = g.reload(ctx)
	}
	// The installed certificate is now the current one: its records stay, the old ones are
	// held.
	g.Syncer.Prepare = func(time.Time) error { return g.Tracker.Expect("", nil, time.Time{}) }
	defer func() { g.Syncer.Prepare = nil }()
	if _, err := g.Syncer.Run(ctx, g.now()); err != nil {
		reloadErr = errors.Join(reloadErr, fmt.Errorf("certificate installed; updating the records after it: %v", err))
	}
	return reloadErr
}

// withdraw removes the records the gate published for a certificate it did not install.
func (g *Gate) withdraw(ctx context.Context) {
	g.Syncer.Prepare = func(time.Time) error { return g.Tracker.Expect("", nil, time.Time{}) }
	defer func() { g.Syncer.Prepare = nil }()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := g.Syncer.Run(ctx, g.now()); err != nil {
		g.logf("withdrawing the new certificate's records: %v", err)
	}
}

// checkPaths refuses installation paths the gate must not write: the ACME client's own files
// (certbot's live/ links: the renewed certificate would look installed already, and
// replacing a link breaks the next renewal), or one file for key and certificate.
func (g *Gate) checkPaths() error {
	if g.InstallCert == g.InstallKey {
		return fmt.Errorf("-cert and -install-key are the same file %s: give the certificate and the key their own files", g.InstallKey)
	}
	for _, p := range []string{g.InstallCert, g.InstallKey} {
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link (certbot's live/ directory?): install into the files the mail server reads, not the ACME client's", p)
		}
		for _, n := range []string{g.NewCert, g.NewKey} {
			if n == "" {
				continue
			}
			a, errA := os.Stat(p)
			b, errB := os.Stat(n)
			if errA == nil && errB == nil && os.SameFile(a, b) {
				return fmt.Errorf("%s is the ACME client's own file %s: install into the files the mail server reads", p, n)
			}
		}
	}
	return nil
}

// readNew reads the renewed certificate and its key, and checks that they belong together:
// a half-written file or a key of another certificate is refused before anything changes.
func (g *Gate) readNew() (certPEM, keyPEM []byte, chain []*x509.Certificate, err error) {
	certPEM, err = os.ReadFile(g.NewCert)
	if err != nil {
		return nil, nil, nil, err
	}
	if chain, err = tlsa.ParsePEM(g.NewCert, certPEM); err != nil {
		return nil, nil, nil, err
	}
	leaf := chain[0]
	if now := g.now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return nil, nil, nil, fmt.Errorf("%s: the certificate is valid from %s to %s, not now", g.NewCert, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if g.NewKey == "" {
		keyFile, err := g.stagedKey(leaf)
		if err != nil {
			return nil, nil, nil, err
		}
		keyPEM, err = os.ReadFile(keyFile)
		return certPEM, keyPEM, chain, err
	}
	keyPEM, err = readKeyOf(g.NewKey, leaf)
	if err != nil {
		// lego names a key file even for a certificate issued from a CSR (a stale one, or
		// none): the key may be a staged one.
		if g.Tracker.Next != "" {
			if keyFile, serr := g.stagedKey(leaf); serr == nil {
				keyPEM, err = os.ReadFile(keyFile)
				return certPEM, keyPEM, chain, err
			}
		}
		return nil, nil, nil, err
	}
	return certPEM, keyPEM, chain, nil
}

// readKeyOf reads the private key file of leaf.
func readKeyOf(path string, leaf *x509.Certificate) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := tlsa.ParsePrivateKey(path, data)
	if err != nil {
		return nil, err
	}
	if !samePublic(key.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("%s is not the key of the certificate (%s)", path, leaf.Subject)
	}
	return data, nil
}

// stagedKey finds the private key of leaf among the files of the tracker's next path: a
// certificate issued from the CSR of a staged key (danelab tlsa next) comes without one.
func (g *Gate) stagedKey(leaf *x509.Certificate) (string, error) {
	if g.Tracker.Next == "" {
		return "", fmt.Errorf("no key given for %s, and no staged keys (next) to look in", g.NewCert)
	}
	files, err := tlsa.StagedFiles(g.Tracker.Next)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		if _, err := readKeyOf(f, leaf); err == nil {
			return f, nil
		}
	}
	return "", fmt.Errorf("no key given for %s, and none of the staged keys in %s is its key", g.NewCert, g.Tracker.Next)
}

func samePublic(a, b crypto.PublicKey) bool {
	x, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && x.Equal(b)
}

// install writes data to path atomically, keeping the mode of the file it replaces.
// install writes data to path atomically, keeping the mode, owner and group of the file it
// replaces (Exim reads its key as group Debian-exim, mode 0640).
func install(path string, data []byte, mode os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return atomicfile.Write(path, data, mode)
	}
	tmp, err := atomicfile.Temp(path, data, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(tmp, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
			os.Remove(tmp)
			return fmt.Errorf("keeping the owner of %s: %v", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func (g *Gate) reload(ctx context.Context) error {
	timeout := g.ReloadTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", g.Reload)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("certificate installed, but the reload command %q failed: %v\n%s", g.Reload, err, strings.TrimSpace(string(out)))
	}
	g.logf("reloaded: %s", g.Reload)
	return nil
}

// wait returns once every authoritative server serves every expected record at every owner,
// signed and valid, and one TTL has passed since they all did (or the records were published
// long before: a staged key). It returns why not when g.Wait runs out.
func (g *Gate) wait(ctx context.Context, deadline time.Time, zone string, owners, expected []string, oldTTL time.Duration) error {
	poll := g.Poll
	if poll <= 0 {
		poll = time.Second
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var seenAll time.Time // since when every server has served them
	last, logged := "nothing checked yet", ""
	for {
		ttl, why := g.visible(ctx, zone, owners, expected)
		// Caches hold the RRset as it was for its TTL then, and the new one for its own.
		ttl = max(ttl, oldTTL)
		now := g.now()
		switch {
		case why != "":
			seenAll, last = time.Time{}, why
		case seenAll.IsZero():
			seenAll = now
			fallthrough
		default:
			if g.stagedLongAgo(expected, ttl, now) {
				g.logf("every server serves %v, published more than %s ago: no wait", expected, 2*ttl)
				return nil
			}
			if ready := seenAll.Add(ttl + ttlGrain); !now.Before(ready) {
				g.logf("every server has served %v for %s (the TTL, and a second for caches that count in whole seconds)", expected, ttl)
				return nil
			} else {
				last = fmt.Sprintf("every server serves the records; waiting until %s, one TTL (%s) after they all did", ready.UTC().Format(time.RFC3339Nano), ttl)
			}
		}
		if last != logged { // once per change, not per poll
			g.logf("%s", last)
			logged = last
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up at %s (-wait): %s", deadline.UTC().Format(time.RFC3339), last)
		case <-time.After(poll):
		}
	}
}

// ttlGrain is added to a TTL waited for: caches count TTLs in whole seconds (Unbound keeps
// an RRset fetched at 10.9 s with TTL 2 until 13 s), so a TTL can last up to a second more.
const ttlGrain = time.Second

// stagedLongAgo reports whether every expected record was published at least two TTLs ago (a
// staged key, or a renewal from an earlier attempt): caches have long seen them.
func (g *Gate) stagedLongAgo(expected []string, ttl time.Duration, now time.Time) bool {
	for _, e := range expected {
		at, ok := g.Tracker.Published(e)
		if !ok || now.Sub(at) < 2*ttl {
			return false
		}
	}
	return len(expected) > 0
}

// visible checks every server and returns the largest TTL served, or what is missing.
func (g *Gate) visible(ctx context.Context, zone string, owners, expected []string) (time.Duration, string) {
	keys, err := g.zoneKeys(ctx, zone)
	if err != nil {
		return 0, err.Error()
	}
	servers := g.Servers
	if len(servers) == 0 {
		if servers, err = g.nameServers(ctx, zone); err != nil {
			return 0, err.Error()
		}
	}
	ttl := uint32(0)
	for _, srv := range servers {
		for _, owner := range owners {
			t, err := g.check(ctx, srv, zone, owner, expected, keys)
			if err != nil {
				return 0, err.Error()
			}
			ttl = max(ttl, t)
		}
	}
	return time.Duration(ttl) * time.Second, ""
}

// zoneKeys returns the zone's DNSKEY RRset, validated by the resolver.
func (g *Gate) zoneKeys(ctx context.Context, zone string) ([]*dns.DNSKEY, error) {
	res, err := g.Resolver.Resolve(ctx, zone, dns.TypeDNSKEY)
	if err != nil {
		return nil, fmt.Errorf("zone %s DNSKEY: %v", zone, err)
	}
	if res.Verdict != resolver.Secure {
		return nil, fmt.Errorf("zone %s DNSKEY is %s (%s): DANE senders ignore TLSA records of a zone that does not validate", zone, res.Verdict, res.Reason)
	}
	var keys []*dns.DNSKEY
	for _, rr := range res.Msg.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// nameServers returns the addresses (port 53) of the zone's NS records.
func (g *Gate) nameServers(ctx context.Context, zone string) ([]string, error) {
	res, err := g.Resolver.Resolve(ctx, zone, dns.TypeNS)
	if err != nil {
		return nil, fmt.Errorf("zone %s NS: %v", zone, err)
	}
	var out []string
	for _, rr := range res.Msg.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		n := len(out)
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r, err := g.Resolver.Resolve(ctx, ns.Ns, qt)
			if err != nil {
				return nil, fmt.Errorf("zone %s: address of its name server %s: %v", zone, ns.Ns, err)
			}
			for _, a := range r.Msg.Answer {
				switch a := a.(type) {
				case *dns.A:
					out = append(out, net.JoinHostPort(a.A.String(), "53"))
				case *dns.AAAA:
					out = append(out, net.JoinHostPort(a.AAAA.String(), "53"))
				}
			}
		}
		if len(out) == n {
			// A server the gate cannot reach may be the one still serving the old RRset.
			return nil, fmt.Errorf("zone %s: its name server %s has no address: cannot check it (give -servers)", zone, ns.Ns)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("zone %s: no address for its name servers", zone)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// check asks one server for owner's TLSA RRset and returns its TTL if it holds every expected
// record with a signature that verifies with the zone's keys and is valid now.
func (g *Gate) check(ctx context.Context, server, zone, owner string, expected []string, keys []*dns.DNSKEY) (uint32, error) {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	m := new(dns.Msg)
	m.SetQuestion(owner, dns.TypeTLSA)
	m.RecursionDesired = false
	m.SetEdns0(1232, true)
	c := &dns.Client{Net: "tcp", Timeout: timeout}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return 0, fmt.Errorf("%s: %s TLSA: %v", server, owner, err)
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return 0, fmt.Errorf("%s: %s TLSA: %s, authoritative %v", server, owner, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range r.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		switch x := rr.(type) {
		case *dns.TLSA:
			set = append(set, x)
		case *dns.RRSIG:
			if x.TypeCovered == dns.TypeTLSA {
				sigs = append(sigs, x)
			}
		}
	}
	served := texts(set)
	for _, e := range expected {
		if !slices.Contains(served, e) {
			return 0, fmt.Errorf("%s serves %s TLSA without %s (yet)", server, owner, e)
		}
	}
	now := g.now()
	for _, sig := range sigs {
		for _, k := range keys {
			if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm || dns.CanonicalName(sig.SignerName) != zone {
				continue
			}
			if sig.Verify(k, set) == nil && sig.ValidityPeriod(now) {
				return min(set[0].Header().Ttl, sig.OrigTtl), nil
			}
		}
	}
	return 0, fmt.Errorf("%s serves %s TLSA without a valid signature by a key of %s (%d RRSIGs)", server, owner, zone, len(sigs))
}

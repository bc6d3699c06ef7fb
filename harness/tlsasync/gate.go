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
	"path/filepath"
	"slices"
	"strings"
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

// Run publishes the new certificate's records, waits until they can be seen, installs the
// certificate and key, reloads the mail server and withdraws what the new certificate no
// longer needs (after the hold-down). On any failure before the installation the files in
// place are untouched.
func (g *Gate) Run(ctx context.Context) error {
	certPEM, keyPEM, chain, err := g.readNew()
	if err != nil {
		return &GateError{err.Error()}
	}
	if old, err := os.ReadFile(g.InstallCert); err == nil && bytes.Equal(old, certPEM) {
		if k, err := os.ReadFile(g.InstallKey); err == nil && bytes.Equal(k, keyPEM) {
			g.logf("%s is already installed", g.InstallCert)
			_, err := g.Syncer.Run(ctx, g.now())
			return err
		}
	}
	if err := g.Tracker.Expect(chain); err != nil {
		return &GateError{err.Error()}
	}
	defer g.Tracker.Expect(nil)
	expected := g.Tracker.Expected()
	g.logf("publishing %v for %s", expected, g.InstallCert)
	results, err := g.Syncer.Run(ctx, g.now())
	if err != nil {
		return &GateError{"publishing the new records: " + err.Error()}
	}
	var owners []string
	for _, r := range results {
		if r.Host == strings.TrimSuffix(g.Tracker.Name, ".") {
			owners = append(owners, r.Owner)
		}
	}
	zone := ""
	if len(results) > 0 {
		zone = results[0].Target.Zone
	}
	if err := g.wait(ctx, zone, owners, expected); err != nil {
		return &GateError{err.Error()}
	}
	if err := install(g.InstallKey, keyPEM, 0o600); err != nil {
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
	g.Tracker.Expect(nil)
	if _, err := g.Syncer.Run(ctx, g.now()); err != nil {
		reloadErr = errors.Join(reloadErr, fmt.Errorf("certificate installed; updating the records after it: %v", err))
	}
	return reloadErr
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
	files := []string{g.Tracker.Next}
	if fi, err := os.Stat(g.Tracker.Next); err == nil && fi.IsDir() {
		entries, err := os.ReadDir(g.Tracker.Next)
		if err != nil {
			return "", err
		}
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(g.Tracker.Next, e.Name()))
			}
		}
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
func install(path string, data []byte, mode os.FileMode) error {
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	return atomicfile.Write(path, data, mode)
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
func (g *Gate) wait(ctx context.Context, zone string, owners, expected []string) error {
	maxWait := g.Wait
	if maxWait <= 0 {
		maxWait = 30 * time.Minute
	}
	poll := g.Poll
	if poll <= 0 {
		poll = time.Second
	}
	deadline := g.now().Add(maxWait)
	var seenAll time.Time // since when every server has served them
	last := "nothing checked yet"
	for {
		ttl, why := g.visible(ctx, zone, owners, expected)
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
		if now.After(deadline) {
			return fmt.Errorf("gave up after %s: %s", maxWait, last)
		}
		g.logf("%s", last)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v: %s", ctx.Err(), last)
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
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r, err := g.Resolver.Resolve(ctx, ns.Ns, qt)
			if err != nil {
				continue
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

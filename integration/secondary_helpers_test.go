package integration

// Secondaries: real knotd, nsd and named instances on loopback ports that pull zones from a
// primary over TCP with TSIG (hmac-sha256) and take NOTIFY from 127.0.0.1, to check that the
// server under test works as a hidden primary. Also zone transfers by hand (AXFR, IXFR, kdig)
// and two verifiers of a transferred signed zone (ldns-verify-zone, dnssec-verify).
//
// TestSecondaryHarness checks the harness against Knot DNS as the primary:
//
//	go test ./integration -run TestSecondaryHarness -count=1 -v

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// secondaryPeers maps the programs of this file to their Debian packages (.ci/run installs
// them).
var secondaryPeers = map[string]string{
	"knotd":            "knot",
	"knotc":            "knot",
	"kdig":             "knot-dnsutils",
	"nsd":              "nsd",
	"nsd-control":      "nsd",
	"named":            "bind9",
	"rndc":             "bind9-utils",
	"dnssec-verify":    "bind9-utils",
	"ldns-verify-zone": "ldnsutils",
}

// secondaryPeerMissing is PeerMissing naming the Debian package of the programs above.
func secondaryPeerMissing(program string) string {
	if _, err := lookPeer(program); err == nil {
		return ""
	}
	if pkg, ok := secondaryPeers[program]; ok && peer.Packages[program] == "" {
		return fmt.Sprintf("peer %q is not installed (Debian package %s); CI installs it via .ci/run", program, pkg)
	}
	return PeerMissing(program)
}

// needSecondaryPeers ends tb unless every program is installed: it skips it, or fails it
// under CI=true.
func needSecondaryPeers(tb testing.TB, programs ...string) {
	tb.Helper()
	for _, p := range programs {
		if msg := secondaryPeerMissing(p); msg != "" {
			peer.Absent(tb, msg)
		}
	}
}

// secondaryKinds are the kinds StartSecondary knows, with the daemon each runs and the tool
// Refresh uses.
var secondaryKinds = map[string]struct{ daemon, control string }{
	"knot": {"knotd", "knotc"},
	"nsd":  {"nsd", "nsd-control"},
	"bind": {"named", "rndc"},
}

// SecondaryKinds are the kinds of secondary, in a fixed order.
var SecondaryKinds = []string{"knot", "nsd", "bind"}

// ---------------------------------------------------------------------------------------------
// TSIG

// TSIGKey is an hmac-sha256 TSIG key.
type TSIGKey struct {
	Name   string // FQDN, lower case, e.g. "xfr.example."
	Secret string // base64 of 32 random bytes
}

// NewTSIGKey makes a key with a random secret.
func NewTSIGKey(name string) TSIGKey {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return TSIGKey{Name: dns.CanonicalName(name), Secret: base64.StdEncoding.EncodeToString(b)}
}

// ---------------------------------------------------------------------------------------------
// Secondaries

// Secondary is a running secondary server (Knot DNS, NSD or BIND) on 127.0.0.1.
type Secondary struct {
	Kind    string // "knot", "nsd" or "bind"
	Addr    string // 127.0.0.1:port, UDP and TCP
	Port    int
	Dir     string // temporary directory: configuration, state, logs
	LogPath string // the daemon's log
	Conf    string // its configuration file
	Zones   []string
	Primary string // host:port
	Key     TSIGKey

	outPath string   // stdout/stderr when the log is elsewhere (nsd)
	control []string // control command before its arguments (knotc/nsd-control/rndc)
	proc    *process
	cleanup func()
}

// StartSecondary starts a secondary of kind ("knot", "nsd" or "bind") for zones, pulling
// them from primary (host:port) with key, and stops it when the test ends. It skips the test
// if the daemon is not installed (fails it under CI=true). It returns once the daemon
// listens, not once it has the zones: see WaitSerial.
func StartSecondary(tb testing.TB, kind string, zones []string, primary string, key TSIGKey) *Secondary {
	tb.Helper()
	if k, ok := secondaryKinds[kind]; ok {
		needSecondaryPeers(tb, k.daemon)
	}
	s, err := NewSecondary(kind, zones, primary, key)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// NewSecondary writes the configuration of a secondary into a temporary directory, starts
// the daemon in the foreground on a free port and waits (up to 30s) until it answers a query
// for the first zone, with any rcode. The caller stops it.
//
// Every kind transfers each zone from primary over TCP with TSIG key (IXFR, falling back to
// AXFR), accepts NOTIFY for it from 127.0.0.1 on any port, unsigned or signed with key, keeps
// the refresh timers of the zone's SOA, does not sign or validate, and provides AXFR/IXFR to
// 127.0.0.1 with key or without.
func NewSecondary(kind string, zones []string, primary string, key TSIGKey) (*Secondary, error) {
	k, ok := secondaryKinds[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind of secondary %q (want knot, nsd or bind)", kind)
	}
	if len(zones) == 0 {
		return nil, errors.New("a secondary needs at least one zone")
	}
	bin, err := lookPeer(k.daemon)
	if err != nil {
		return nil, errors.New(secondaryPeerMissing(k.daemon))
	}
	host, pport, err := net.SplitHostPort(primary)
	if err != nil {
		return nil, fmt.Errorf("primary %q: %w", primary, err)
	}
	if _, err := strconv.Atoi(pport); err != nil {
		return nil, fmt.Errorf("primary %q: bad port", primary)
	}
	if key.Name == "" || key.Secret == "" {
		return nil, errors.New("secondary: empty TSIG key")
	}
	key.Name = dns.CanonicalName(key.Name)
	dir, cleanup, err := tempDir(kind)
	if err != nil {
		return nil, err
	}
	s := &Secondary{Kind: kind, Dir: dir, Primary: primary, Key: key, cleanup: cleanup}
	for _, z := range zones {
		s.Zones = append(s.Zones, dns.CanonicalName(z))
	}
	fail := func(err error) (*Secondary, error) {
		s.Stop()
		return nil, err
	}
	if s.Port, err = FreePort(); err != nil {
		return fail(err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	var argv []string
	switch kind {
	case "knot":
		argv, err = s.configureKnot(bin, host, pport)
	case "nsd":
		argv, err = s.configureNSD(bin, host, pport)
	case "bind":
		argv, err = s.configureBIND(bin, host, pport)
	}
	if err != nil {
		return fail(err)
	}
	out := s.LogPath
	if s.outPath != "" {
		out = s.outPath
	}
	if s.proc, err = startProcess(k.daemon, dir, out, argv...); err != nil {
		return fail(err)
	}
	if err := s.waitListening(30 * time.Second); err != nil {
		conf, _ := os.ReadFile(s.Conf)
		return fail(fmt.Errorf("%w\nconfiguration %s:\n%s\nlog:\n%s", err, s.Conf, conf, s.LogTail(4000)))
	}
	return s, nil
}

// configureKnot writes knot.conf. The zones live in the journal only (zonefile-load: none,
// zonefile-sync: -1, journal-content: all); the database directory must exist beforehand or
// Knot fails to store a transferred zone ("failed to store changes (not exists)").
func (s *Secondary) configureKnot(bin, host, port string) ([]string, error) {
	db := filepath.Join(s.Dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		return nil, err
	}
	s.LogPath = filepath.Join(s.Dir, "knotd.log")
	s.Conf = filepath.Join(s.Dir, "knot.conf")
	var zones strings.Builder
	for _, z := range s.Zones {
		fmt.Fprintf(&zones, "  - domain: %q\n    master: primary\n    acl: [notify_from_primary, notify_with_key, transfer_local, transfer_with_key]\n", z)
	}
	// Sections that refer to others come after them (remote before zone, key before acl).
	conf := knotServerConf(s.Port, s.Dir, db, s.Key) + fmt.Sprintf(`remote:
  - id: primary
    address: %[2]s@%[3]s
    key: %[1]q
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    action: notify
  - id: notify_with_key
    address: 127.0.0.1
    key: %[1]q
    action: notify
  - id: transfer_local
    address: 127.0.0.1
    action: transfer
  - id: transfer_with_key
    address: 127.0.0.1
    key: %[1]q
    action: transfer
template:
  - id: default
    storage: %[4]q
    zonefile-load: none
    zonefile-sync: -1
    journal-content: all
    dnssec-signing: off
zone:
%[5]s`, s.Key.Name, host, port, s.Dir, zones.String())
	if err := os.WriteFile(s.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if knotc, err := lookPeer("knotc"); err == nil {
		s.control = []string{knotc, "-c", s.Conf, "-s", filepath.Join(s.Dir, "knot.sock"), "-t", "10"}
		if out, err := exec.Command(knotc, "-c", s.Conf, "conf-check").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("knotc conf-check: %v\n%s\n%s", err, out, conf)
		}
	}
	return []string{bin, "-c", s.Conf}, nil
}

// knotServerConf is the start of a knot.conf: the server on 127.0.0.1@port with its run
// files in dir, logging to stdout, its database in storage, and the TSIG keys.
func knotServerConf(port int, dir, storage string, keys ...TSIGKey) string {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    listen: 127.0.0.1@%d
    rundir: %q
    pidfile: %q
    udp-workers: 1
    tcp-workers: 2
    background-workers: 1
log:
  - target: stdout
    any: info
database:
    storage: %q
key:
`, port, dir, filepath.Join(dir, "knot.pid"), storage)
	for _, k := range keys {
		fmt.Fprintf(&b, "  - id: %q\n    algorithm: hmac-sha256\n    secret: %s\n", k.Name, k.Secret)
	}
	return b.String()
}

// configureNSD writes nsd.conf. NSD runs in the foreground (-d) as the current user
// (username ""), without a database (database ""), logging to nsd.log; nsd-control talks to
// it over a unix socket, which needs no keys. xfrd-reload-timeout 0: by default NSD applies
// transfers at most once a second, which delays the second of two zones notified together
// by up to a second.
func (s *Secondary) configureNSD(bin, host, port string) ([]string, error) {
	s.LogPath = filepath.Join(s.Dir, "nsd.log")
	s.outPath = filepath.Join(s.Dir, "nsd.out")
	s.Conf = filepath.Join(s.Dir, "nsd.conf")
	sock := filepath.Join(s.Dir, "nsd.sock")
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
    ip-address: 127.0.0.1
    port: %[1]d
    do-ip4: yes
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: %[2]q
    database: ""
    zonelistfile: %[3]q
    xfrdfile: %[4]q
    xfrdir: %[2]q
    pidfile: %[5]q
    logfile: %[6]q
    verbosity: 2
    server-count: 1
    reuseport: no
    zonefiles-write: 0
    xfrd-reload-timeout: 0
remote-control:
    control-enable: yes
    control-interface: %[7]q
key:
    name: %[8]q
    algorithm: hmac-sha256
    secret: %[9]q
`, s.Port, s.Dir, filepath.Join(s.Dir, "zone.list"), filepath.Join(s.Dir, "xfrd.state"),
		filepath.Join(s.Dir, "nsd.pid"), s.LogPath, sock, s.Key.Name, s.Key.Secret)
	for i, z := range s.Zones {
		// request-xfr without UDP or AXFR: IXFR over TCP, falling back to AXFR.
		fmt.Fprintf(&conf, `zone:
    name: %[1]q
    zonefile: "zone%[2]d.zone"
    request-xfr: %[3]s@%[4]s %[5]s
    allow-notify: 127.0.0.1 NOKEY
    allow-notify: 127.0.0.1 %[5]s
    provide-xfr: 127.0.0.1 NOKEY
    provide-xfr: 127.0.0.1 %[5]s
`, z, i, host, port, s.Key.Name)
	}
	if err := os.WriteFile(s.Conf, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	if chk, err := lookPeer("nsd-checkconf"); err == nil {
		if out, err := exec.Command(chk, s.Conf).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nsd-checkconf: %v\n%s\n%s", err, out, conf.String())
		}
	}
	if ctl, err := lookPeer("nsd-control"); err == nil {
		s.control = []string{ctl, "-c", s.Conf}
	}
	return []string{bin, "-d", "-c", s.Conf}, nil
}

// configureBIND writes named.conf and rndc.conf. named runs in the foreground (-g, which
// logs to stderr and ignores a logging statement) without -u; rndc has a key of its own and
// a control channel on a second free port. serial-query-rate 1000: with the default 20, BIND's
// rate limiter lets one refresh through every 500ms once more are queued, so the second zone
// notified at once was transferred half a second after the first.
func (s *Secondary) configureBIND(bin, host, port string) ([]string, error) {
	s.LogPath = filepath.Join(s.Dir, "named.log")
	s.Conf = filepath.Join(s.Dir, "named.conf")
	ctlPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	rndcKey := NewTSIGKey("rndc-key")
	var conf strings.Builder
	fmt.Fprintf(&conf, `options {
    directory %[1]q;
    listen-on port %[2]d { 127.0.0.1; };
    listen-on-v6 { none; };
    pid-file %[3]q;
    session-keyfile %[4]q;
    managed-keys-directory %[1]q;
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer { 127.0.0.1; };
    serial-query-rate 1000;
};
key %[5]q { algorithm hmac-sha256; secret %[6]q; };
key "rndc-key" { algorithm hmac-sha256; secret %[7]q; };
controls { inet 127.0.0.1 port %[8]d allow { 127.0.0.1; } keys { "rndc-key"; }; };
`, s.Dir, s.Port, filepath.Join(s.Dir, "named.pid"), filepath.Join(s.Dir, "session.key"),
		s.Key.Name, s.Key.Secret, rndcKey.Secret, ctlPort)
	for i, z := range s.Zones {
		fmt.Fprintf(&conf, `zone %[1]q {
    type secondary;
    primaries port %[2]s { %[3]s key %[4]q; };
    file "zone%[5]d.db";
    allow-notify { 127.0.0.1; };
};
`, z, port, host, s.Key.Name, i)
	}
	if err := os.WriteFile(s.Conf, []byte(conf.String()), 0o644); err != nil {
		return nil, err
	}
	if chk, err := lookPeer("named-checkconf"); err == nil {
		if out, err := exec.Command(chk, s.Conf).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("named-checkconf: %v\n%s\n%s", err, out, conf.String())
		}
	}
	rndcConf := filepath.Join(s.Dir, "rndc.conf")
	if err := os.WriteFile(rndcConf, []byte(fmt.Sprintf(`key "rndc-key" { algorithm hmac-sha256; secret %q; };
options { default-key "rndc-key"; default-server 127.0.0.1; default-port %d; };
`, rndcKey.Secret, ctlPort)), 0o644); err != nil {
		return nil, err
	}
	if rndc, err := lookPeer("rndc"); err == nil {
		s.control = []string{rndc, "-c", rndcConf}
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		// Debian's AppArmor profile for /usr/sbin/named only allows its own /etc, /var
		// paths; profiles attach by path, so run a private copy of the binary.
		if cp, err := copyExecutable(bin, filepath.Join(s.Dir, "named")); err == nil {
			bin = cp
		}
	}
	return []string{bin, "-g", "-c", s.Conf}, nil
}

// waitListening waits until the daemon answers an SOA query for its first zone over UDP,
// with any rcode.
func (s *Secondary) waitListening(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !s.proc.running() {
			return fmt.Errorf("%s secondary exited before listening: %v", s.Kind, s.proc.err)
		}
		_, err := Query(s.Addr, s.Zones[0], dns.TypeSOA, QueryOpts{Timeout: 300 * time.Millisecond})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s secondary on %s did not answer within %v: %v", s.Kind, s.Addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Serial returns the serial of the SOA the secondary serves for zone; an error if it does
// not answer authoritatively with the SOA (e.g. SERVFAIL before the first transfer).
func (s *Secondary) Serial(zone string) (uint32, error) {
	return SOASerial(s.Addr, zone)
}

// WaitSerial waits until the secondary serves zone with a serial at least atLeast (RFC 1982
// serial arithmetic), polling every 20ms.
func (s *Secondary) WaitSerial(zone string, atLeast uint32, timeout time.Duration) error {
	err := WaitSerial(s.Addr, zone, atLeast, timeout)
	if err != nil {
		return fmt.Errorf("%s secondary: %w\nlog:\n%s", s.Kind, err, s.LogTail(3000))
	}
	return nil
}

// Refresh makes the secondary check the primary for zone now and transfer it if the primary
// has a newer serial (knotc zone-refresh, nsd-control transfer, rndc refresh). The daemon
// does it in the background: use WaitSerial to see the result.
func (s *Secondary) Refresh(zone string) error {
	if len(s.control) == 0 {
		return fmt.Errorf("%s secondary: %s", s.Kind, secondaryPeerMissing(secondaryKinds[s.Kind].control))
	}
	zone = dns.CanonicalName(zone)
	var args []string
	switch s.Kind {
	case "knot":
		args = []string{"zone-refresh", zone}
	case "nsd":
		args = []string{"transfer", zone}
	case "bind":
		args = []string{"refresh", zone}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	argv := append(append([]string(nil), s.control...), args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	// knotc and nsd-control exit 0 on some failures; their answer says.
	if txt := strings.ToLower(string(out)); strings.Contains(txt, "error") {
		return fmt.Errorf("%s: %s", strings.Join(argv, " "), out)
	}
	return nil
}

// Stop stops the daemon (by PID) and removes its directory.
func (s *Secondary) Stop() {
	if s == nil {
		return
	}
	s.proc.stop()
	if s.cleanup != nil {
		s.cleanup()
		s.cleanup = nil
	}
}

// LogTail returns at most the last n bytes of the daemon's log (and of its standard output
// when that goes elsewhere).
func (s *Secondary) LogTail(n int) string {
	t := tail(s.LogPath, n)
	if s.outPath != "" {
		if b, err := os.ReadFile(s.outPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
			t += "\n(stdout/stderr)\n" + tail(s.outPath, n)
		}
	}
	return t
}

// SOASerial asks addr for the SOA of zone over UDP (2s timeout) and returns its serial; an
// error unless the answer is authoritative with the SOA of zone.
func SOASerial(addr, zone string) (uint32, error) {
	zone = dns.Fqdn(zone)
	r, err := Query(addr, zone, dns.TypeSOA, QueryOpts{Timeout: 2 * time.Second})
	if err != nil {
		return 0, err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return 0, fmt.Errorf("SOA %s @%s: rcode %s, aa %v", zone, addr, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, zone) {
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("SOA %s @%s: no SOA in the answer (%d records)", zone, addr, len(r.Answer))
}

// SerialAtLeast reports whether serial s >= atLeast in RFC 1982 serial arithmetic.
func SerialAtLeast(s, atLeast uint32) bool {
	return s == atLeast || int32(s-atLeast) > 0
}

// WaitSerial polls addr every 20ms until it serves zone with a serial at least atLeast.
func WaitSerial(addr, zone string, atLeast uint32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := SOASerial(addr, zone)
		if err == nil && SerialAtLeast(s, atLeast) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("serial %d", s)
			}
			return fmt.Errorf("%s @%s: no serial >= %d within %v (last: %v)", zone, addr, atLeast, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------------------------
// Zone transfers

// xfrTimeout bounds the dial, each read and each write of a transfer.
const xfrTimeout = 10 * time.Second

func transfer(addr string, m *dns.Msg, key *TSIGKey) ([]dns.RR, error) {
	t := &dns.Transfer{DialTimeout: xfrTimeout, ReadTimeout: xfrTimeout, WriteTimeout: xfrTimeout}
	if key != nil {
		name := dns.CanonicalName(key.Name)
		t.TsigSecret = map[string]string{name: key.Secret}
		m.SetTsig(name, dns.HmacSHA256, 300, time.Now().Unix())
	}
	q := m.Question[0]
	what := fmt.Sprintf("%s %s @%s", dns.TypeToString[q.Qtype], q.Name, addr)
	ch, err := t.In(m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var rrs []dns.RR
	var xerr error
	for env := range ch { // drain the channel even after an error
		if env.Error != nil && xerr == nil {
			xerr = fmt.Errorf("%s: %w (after %d records)", what, env.Error, len(rrs))
		}
		rrs = append(rrs, env.RR...)
	}
	return rrs, xerr
}

// AXFR transfers zone from addr over TCP, signed with key unless it is nil (10s timeouts). It
// returns the records with the SOA first and once (the closing SOA is dropped).
//
// With a key, every message of the answer must carry a valid TSIG: miekg/dns does not accept
// the unsigned intermediate messages RFC 8945 §5.3.1 allows (Knot, NSD 4.6 and BIND 9.18
// sign every message; checked with a 3000-record zone in 20 messages).
func AXFR(addr, zone string, key *TSIGKey) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(dns.Fqdn(zone))
	rrs, err := transfer(addr, m, key)
	if err != nil {
		return nil, err
	}
	if len(rrs) < 2 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		return nil, fmt.Errorf("AXFR %s @%s: not framed by SOA records (%d records)", zone, addr, len(rrs))
	}
	return rrs[:len(rrs)-1], nil
}

// IXFR asks addr for the changes of zone since serial over TCP, signed with key unless it is
// nil (10s timeouts), and returns the records as sent: the current SOA, then for each
// change the old SOA, the deleted records, the new SOA and the added records, then the
// current SOA again. A server may answer with a full zone (AXFR form) instead, or with the
// current SOA alone when serial is current.
func IXFR(addr, zone string, serial uint32, key *TSIGKey) ([]dns.RR, error) {
	zone = dns.Fqdn(zone)
	m := new(dns.Msg)
	m.SetIxfr(zone, serial, ".", ".")
	return transfer(addr, m, key)
}

// KdigIXFR runs `kdig @HOST -p PORT -y hmac-sha256:NAME:SECRET ixfr=SERIAL ZONE` and returns
// its output (standard output, then standard error); an error when kdig fails (it exits 1
// on a refused transfer or a bad TSIG).
func KdigIXFR(addr, zone string, serial uint32, key TSIGKey) (string, error) {
	bin, err := lookPeer("kdig")
	if err != nil {
		return "", errors.New(secondaryPeerMissing("kdig"))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	args := []string{"@" + host, "-p", port, "-y", "hmac-sha256:" + key.Name + ":" + key.Secret,
		"+timeout=10", "+retry=0", fmt.Sprintf("ixfr=%d", serial), dns.Fqdn(zone)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := stdout.String() + stderr.String()
	if err != nil {
		return out, fmt.Errorf("kdig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// KdigRecords parses the records kdig printed, in order: every line that is not a comment
// and parses as a record, except the TSIG.
func KdigRecords(out string) []dns.RR {
	var rrs []dns.RR
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		if f := strings.Fields(line); len(f) >= 4 && (f[2] == "TSIG" || f[3] == "TSIG") {
			continue
		}
		if rr, err := dns.NewRR(line); err == nil && rr != nil {
			rrs = append(rrs, rr)
		}
	}
	return rrs
}

// ---------------------------------------------------------------------------------------------
// Verifiers of a transferred zone

var verifySeq struct {
	sync.Mutex
	n int
}

// writeZoneFile writes rrs to a new file in dir: the first SOA first, every other record
// after it in order, further SOA records (an AXFR's closing one) left out.
func writeZoneFile(rrs []dns.RR, dir, prefix string) (path, zone string, err error) {
	var soa dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeSOA {
			soa = rr
			break
		}
	}
	if soa == nil {
		return "", "", fmt.Errorf("no SOA among %d records", len(rrs))
	}
	var b strings.Builder
	b.WriteString(soa.String() + "\n")
	for _, rr := range rrs {
		switch rr.Header().Rrtype {
		case dns.TypeSOA, dns.TypeTSIG:
			continue
		}
		b.WriteString(rr.String() + "\n")
	}
	verifySeq.Lock()
	verifySeq.n++
	n := verifySeq.n
	verifySeq.Unlock()
	zone = strings.ToLower(soa.Header().Name)
	path = filepath.Join(dir, fmt.Sprintf("%s-%d-%s.zone", prefix, n, strings.TrimSuffix(zone, ".")))
	if zone == "." {
		path = filepath.Join(dir, fmt.Sprintf("%s-%d-root.zone", prefix, n))
	}
	return path, zone, os.WriteFile(path, []byte(b.String()), 0o644)
}

func runVerifier(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: timed out", filepath.Base(bin), strings.Join(args, " "))
	}
	return string(out), err
}

// LdnsVerifyZone writes rrs (a transferred zone) to a file in dir and runs ldns-verify-zone
// on it: every RRset signed (a valid signature now by a key of the zone), no signatures on
// glue, the NSEC or NSEC3 chain complete (and a ZONEMD, if present, matching). With anchors
// (DS or DNSKEY records, given with -k) the DNSKEY RRset must also be signed by an anchored
// key. It fails with ldns-verify-zone's output.
func LdnsVerifyZone(rrs []dns.RR, dir string, anchors ...dns.RR) error {
	bin, err := lookPeer("ldns-verify-zone")
	if err != nil {
		return errors.New(secondaryPeerMissing("ldns-verify-zone"))
	}
	path, zone, err := writeZoneFile(rrs, dir, "ldns")
	if err != nil {
		return fmt.Errorf("ldns-verify-zone: %w", err)
	}
	var args []string
	if len(anchors) > 0 {
		var b strings.Builder
		for _, a := range anchors {
			b.WriteString(a.String() + "\n")
		}
		ta := strings.TrimSuffix(path, ".zone") + ".anchors"
		if err := os.WriteFile(ta, []byte(b.String()), 0o644); err != nil {
			return err
		}
		args = append(args, "-k", ta)
	}
	args = append(args, path)
	out, err := runVerifier(bin, args...)
	if err != nil || !strings.Contains(out, "Zone is verified and complete") {
		return fmt.Errorf("ldns-verify-zone %s (zone %s): %v\n%s", strings.Join(args, " "), zone, err, out)
	}
	return nil
}

// DnssecVerify writes rrs (a transferred zone) to a file in dir and runs `dnssec-verify -o
// zone FILE`: for every algorithm of the DNSKEY RRset, the DNSKEY RRset self-signed by a KSK
// and every other RRset signed by a ZSK, and the NSEC or NSEC3 chain complete. A zone whose
// data no ZSK signs (a single CSK: 257) gets -z, without which dnssec-verify fails it for
// "Missing ZSK"; -x is not needed for a DNSKEY RRset signed by the KSK only. It fails with
// dnssec-verify's output.
func DnssecVerify(rrs []dns.RR, zone, dir string) error {
	bin, err := lookPeer("dnssec-verify")
	if err != nil {
		return errors.New(secondaryPeerMissing("dnssec-verify"))
	}
	path, _, err := writeZoneFile(rrs, dir, "dnssec-verify")
	if err != nil {
		return fmt.Errorf("dnssec-verify: %w", err)
	}
	args := []string{"-o", dns.Fqdn(zone), path}
	// -z unless a ZSK (no SEP flag) signs the zone's data: a KSK may sign it too (a CSK, or a
	// KSK standing in while a new ZSK is pre-published; the SEP flag is a hint, RFC 4034
	// §2.1.1), and dnssec-verify would fail that for "Missing ZSK".
	zsks := map[uint16]bool{}
	for _, rr := range rrs {
		if k, ok := rr.(*dns.DNSKEY); ok && strings.EqualFold(k.Hdr.Name, dns.Fqdn(zone)) &&
			k.Flags&dns.ZONE != 0 && k.Flags&(dns.SEP|dns.REVOKE) == 0 {
			zsks[k.KeyTag()] = true
		}
	}
	zsk := false
	for _, rr := range rrs {
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeSOA && zsks[sig.KeyTag] {
			zsk = true
		}
	}
	if !zsk {
		args = append([]string{"-z"}, args...)
	}
	out, err := runVerifier(bin, args...)
	if err != nil || !strings.Contains(out, "Zone fully signed") {
		return fmt.Errorf("dnssec-verify %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Self-test: Knot DNS as the primary

// knotPrimary is a knotd serving zones from files as a primary: transfers (AXFR, and IXFR
// from its journal) to 127.0.0.1 with the TSIG key, NOTIFY to the addresses set by Notify.
// Zones named in signed are signed by Knot (default policy: ECDSA P-256 KSK and ZSK, NSEC);
// a name with the prefix "csk:" is signed with a single key (flags 257) instead.
type knotPrimary struct {
	Addr  string
	Dir   string
	Conf  string
	Log   string
	key   TSIGKey
	zones map[string]string // FQDN -> zone file content
	sign  map[string]string // FQDN -> "kskzsk" or "csk"
	port  int
	knotc string
	proc  *process
}

func startKnotPrimary(tb testing.TB, key TSIGKey, zones map[string]string, signed ...string) *knotPrimary {
	tb.Helper()
	needSecondaryPeers(tb, "knotd", "knotc")
	dir, cleanup, err := tempDir("knot-primary")
	if err != nil {
		tb.Fatal(err)
	}
	p := &knotPrimary{Dir: dir, Conf: filepath.Join(dir, "knot.conf"), Log: filepath.Join(dir, "knotd.log"),
		key: key, zones: map[string]string{}, sign: map[string]string{}}
	p.knotc, _ = lookPeer("knotc")
	tb.Cleanup(func() {
		p.proc.stop()
		cleanup()
	})
	for z, content := range zones {
		z = dns.CanonicalName(z)
		p.zones[z] = content
		if err := os.WriteFile(p.zoneFile(z), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	for _, z := range signed {
		if c, ok := strings.CutPrefix(z, "csk:"); ok {
			p.sign[dns.CanonicalName(c)] = "csk"
		} else {
			p.sign[dns.CanonicalName(z)] = "kskzsk"
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if p.port, err = FreePort(); err != nil {
		tb.Fatal(err)
	}
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	if err := p.writeConf(nil); err != nil {
		tb.Fatal(err)
	}
	bin, _ := lookPeer("knotd")
	if p.proc, err = startProcess("knotd", dir, p.Log, bin, "-c", p.Conf); err != nil {
		tb.Fatal(err)
	}
	for z := range p.zones {
		if err := WaitSerial(p.Addr, z, 0, 30*time.Second); err != nil {
			tb.Fatalf("knot primary: %v\n%s", err, tail(p.Log, 3000))
		}
	}
	return p
}

func (p *knotPrimary) zoneFile(zone string) string {
	return filepath.Join(p.Dir, strings.TrimSuffix(zone, ".")+".zone")
}

// writeConf writes knot.conf with NOTIFY to notify (host:port addresses).
func (p *knotPrimary) writeConf(notify []string) error {
	var b strings.Builder
	b.WriteString(knotServerConf(p.port, p.Dir, filepath.Join(p.Dir, "db"), p.key))
	var ids []string
	if len(notify) > 0 {
		b.WriteString("remote:\n")
		for i, a := range notify {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				return err
			}
			id := fmt.Sprintf("secondary%d", i)
			ids = append(ids, id)
			fmt.Fprintf(&b, "  - id: %s\n    address: %s@%s\n", id, host, port)
		}
	}
	b.WriteString(`policy:
  - id: csk
    single-type-signing: on
acl:
  - id: transfer_with_key
    address: 127.0.0.1
    key: ` + strconv.Quote(p.key.Name) + `
    action: transfer
zone:
`)
	for z := range p.zones {
		fmt.Fprintf(&b, "  - domain: %q\n    file: %q\n    acl: transfer_with_key\n", z, p.zoneFile(z))
		if len(ids) > 0 {
			fmt.Fprintf(&b, "    notify: [%s]\n", strings.Join(ids, ", "))
		}
		if p.sign[z] != "" {
			// difference: Knot warns that a signed zone with outgoing transfers should
			// keep its IXFR history across edits of the zone file.
			b.WriteString("    dnssec-signing: on\n    zonefile-load: difference\n")
		}
		if p.sign[z] == "csk" {
			b.WriteString("    dnssec-policy: csk\n")
		}
	}
	return os.WriteFile(p.Conf, []byte(b.String()), 0o644)
}

func (p *knotPrimary) ctl(args ...string) error {
	argv := append([]string{"-c", p.Conf, "-s", filepath.Join(p.Dir, "knot.sock"), "-t", "10"}, args...)
	out, err := exec.Command(p.knotc, argv...).CombinedOutput()
	if err != nil || strings.Contains(strings.ToLower(string(out)), "error") {
		return fmt.Errorf("knotc %s: %v\n%s\nknotd log:\n%s", strings.Join(argv, " "), err, out, tail(p.Log, 2000))
	}
	return nil
}

// Notify makes the primary send NOTIFY to addrs from now on (a configuration reload).
func (p *knotPrimary) Notify(addrs ...string) error {
	if err := p.writeConf(addrs); err != nil {
		return err
	}
	return p.ctl("reload")
}

// Add adds records (text in zone file syntax, relative owner names) to zone in one
// transaction; Knot increments the serial (and re-signs a signed zone) and notifies.
func (p *knotPrimary) Add(zone string, records ...string) error {
	zone = dns.CanonicalName(zone)
	if err := p.ctl("zone-begin", zone); err != nil {
		return err
	}
	for _, r := range records {
		f := strings.Fields(r)
		if err := p.ctl(append([]string{"zone-set", zone}, f...)...); err != nil {
			_ = p.ctl("zone-abort", zone)
			return err
		}
	}
	return p.ctl("zone-commit", zone)
}

const harnessZone = `$ORIGIN xfr.test.
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 900 1209600 60
        IN NS  ns1
ns1     IN A   127.0.0.1
www     IN A   127.0.0.2
        IN TXT "harness"
`

const harnessSignedZone = `$ORIGIN signed.test.
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 900 1209600 60
        IN NS  ns1
ns1     IN A   127.0.0.1
www     IN A   127.0.0.3
sub     IN NS  ns.sub
ns.sub  IN A   127.0.0.4
`

func typeRRs(rrs []dns.RR, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out
}

// rrKeys returns the records as a set of their text forms (TTL included).
func rrKeys(rrs []dns.RR) map[string]bool {
	m := map[string]bool{}
	for _, rr := range rrs {
		m[rr.String()] = true
	}
	return m
}

// sameRRSet reports the difference of two record sets ("" when equal).
func sameRRSet(got, want []dns.RR) string {
	g, w := rrKeys(got), rrKeys(want)
	var b strings.Builder
	for k := range w {
		if !g[k] {
			fmt.Fprintf(&b, "  missing: %s\n", k)
		}
	}
	for k := range g {
		if !w[k] {
			fmt.Fprintf(&b, "  extra:   %s\n", k)
		}
	}
	return b.String()
}

// TestSecondaryHarness checks the secondaries against Knot DNS as the primary: the three
// kinds transfer an unsigned and a Knot-signed zone with TSIG, serve what the primary
// serves, pick a change up by NOTIFY within 5s; transfers by hand (AXFR, IXFR, kdig) and
// both verifiers work, and the verifiers reject a damaged signed zone.
func TestSecondaryHarness(t *testing.T) {
	needSecondaryPeers(t, "knotd", "knotc", "kdig", "nsd", "nsd-control", "named", "rndc",
		"ldns-verify-zone", "dnssec-verify")
	start := time.Now()
	key := NewTSIGKey("xfr.example.")
	const plain, signed = "xfr.test.", "signed.test."
	zones := []string{plain, signed}
	const csk = "csk.test."
	p := startKnotPrimary(t, key, map[string]string{plain: harnessZone, signed: harnessSignedZone,
		csk: strings.ReplaceAll(harnessSignedZone, "signed.test.", csk)}, signed, "csk:"+csk)
	t.Logf("knot primary on %s up after %v", p.Addr, time.Since(start).Round(time.Millisecond))

	var secs []*Secondary
	var addrs []string
	for _, kind := range SecondaryKinds {
		t0 := time.Now()
		s := StartSecondary(t, kind, zones, p.Addr, key)
		t.Logf("%s secondary on %s listening after %v", kind, s.Addr, time.Since(t0).Round(time.Millisecond))
		secs = append(secs, s)
		addrs = append(addrs, s.Addr)
	}
	if err := p.Notify(addrs...); err != nil {
		t.Fatal(err)
	}

	serials := map[string]uint32{}
	for _, z := range zones {
		s, err := SOASerial(p.Addr, z)
		if err != nil {
			t.Fatal(err)
		}
		serials[z] = s
	}
	waitAll := func(what string, timeout time.Duration) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(secs))
		t0 := time.Now()
		for i, s := range secs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, z := range zones {
					if err := s.WaitSerial(z, serials[z], timeout); err != nil {
						errs[i] = err
						return
					}
				}
				t.Logf("%s: %s secondary has %v after %v", what, s.Kind, serials, time.Since(t0).Round(time.Millisecond))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	waitAll("first transfer", 10*time.Second)

	compare := func(what string) map[string][]dns.RR {
		t.Helper()
		want := map[string][]dns.RR{}
		for _, z := range zones {
			rrs, err := AXFR(p.Addr, z, &key)
			if err != nil {
				t.Fatalf("%s: primary: %v", what, err)
			}
			want[z] = rrs
			for _, s := range secs {
				for _, k := range []*TSIGKey{&key, nil} {
					got, err := AXFR(s.Addr, z, k)
					if err != nil {
						t.Fatalf("%s: %s secondary (key %v): %v", what, s.Kind, k != nil, err)
					}
					if d := sameRRSet(got, rrs); d != "" {
						t.Errorf("%s: AXFR %s from the %s secondary (key %v) differs from the primary's:\n%s", what, z, s.Kind, k != nil, d)
					}
				}
			}
		}
		return want
	}
	before := compare("after the first transfer")
	if !hasType(before[signed], dns.TypeRRSIG) || !hasType(before[signed], dns.TypeNSEC) {
		t.Fatalf("Knot did not sign %s:\n%v", signed, before[signed])
	}

	// The verifiers: the signed zone passes, with its DS as the anchor; damaged, it fails.
	dir := t.TempDir()
	var anchor dns.RR
	for _, rr := range before[signed] {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags == 257 {
			anchor = k.ToDS(dns.SHA256)
		}
	}
	if anchor == nil {
		t.Fatalf("no KSK in %s", signed)
	}
	if err := LdnsVerifyZone(before[signed], dir, anchor); err != nil {
		t.Error(err)
	}
	if err := DnssecVerify(before[signed], signed, dir); err != nil {
		t.Error(err)
	}
	// A zone signed with a single key (257, no ZSK): dnssec-verify needs -z for it.
	cskZone, err := AXFR(p.Addr, csk, &key)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(typeRRs(cskZone, dns.TypeDNSKEY)); n != 1 {
		t.Errorf("%s has %d DNSKEY records, want a single CSK", csk, n)
	}
	if err := LdnsVerifyZone(cskZone, dir); err != nil {
		t.Error(err)
	}
	if err := DnssecVerify(cskZone, csk, dir); err != nil {
		t.Error(err)
	}
	if err := LdnsVerifyZone(before[plain], dir); err == nil {
		t.Error("ldns-verify-zone passed an unsigned zone")
	}
	if err := DnssecVerify(before[plain], plain, dir); err == nil {
		t.Error("dnssec-verify passed an unsigned zone")
	}
	var damaged, unsignedA []dns.RR
	for _, rr := range before[signed] {
		rr = dns.Copy(rr)
		if a, ok := rr.(*dns.A); ok && strings.HasPrefix(a.Hdr.Name, "www.") {
			a.A = net.IPv4(127, 0, 0, 99)
		}
		damaged = append(damaged, rr)
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeA && strings.HasPrefix(sig.Hdr.Name, "www.") {
			continue
		}
		unsignedA = append(unsignedA, rr)
	}
	for name, rrs := range map[string][]dns.RR{"a changed A record": damaged, "an RRset without RRSIG": unsignedA} {
		if err := LdnsVerifyZone(rrs, dir, anchor); err == nil {
			t.Errorf("ldns-verify-zone passed a zone with %s", name)
		}
		if err := DnssecVerify(rrs, signed, dir); err == nil {
			t.Errorf("dnssec-verify passed a zone with %s", name)
		}
	}
	otherKSK := &dns.DS{Hdr: dns.RR_Header{Name: signed, Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 300},
		KeyTag: anchor.(*dns.DS).KeyTag + 1, Algorithm: anchor.(*dns.DS).Algorithm, DigestType: dns.SHA256,
		Digest: strings.Repeat("ab", 32)}
	if err := LdnsVerifyZone(before[signed], dir, otherKSK); err == nil {
		t.Error("ldns-verify-zone passed a zone whose KSK does not match the anchor")
	}

	// A change at the primary reaches every secondary by NOTIFY.
	prev := map[string]uint32{}
	for z, s := range serials {
		prev[z] = s
	}
	old := prev[plain]
	t0 := time.Now()
	if err := p.Add(plain, "new 300 A 127.0.0.9"); err != nil {
		t.Fatal(err)
	}
	if err := p.Add(signed, "new 300 A 127.0.0.10"); err != nil {
		t.Fatal(err)
	}
	for _, z := range zones {
		s, err := SOASerial(p.Addr, z)
		if err != nil {
			t.Fatal(err)
		}
		if !SerialAtLeast(s, serials[z]+1) {
			t.Fatalf("primary: serial of %s %d after a change, was %d", z, s, serials[z])
		}
		serials[z] = s
	}
	t.Logf("primary changed after %v: %v", time.Since(t0).Round(time.Millisecond), serials)
	waitAll("after NOTIFY", 5*time.Second)
	// Every secondary took the change by IXFR: the primary logged one IXFR per secondary
	// and zone, and no AXFR of the new serial yet.
	plog, _ := os.ReadFile(p.Log)
	for _, z := range zones {
		ixfr := fmt.Sprintf("[%s] IXFR, outgoing", z)
		axfr := fmt.Sprintf("[%s] AXFR, outgoing", z)
		n := 0
		for _, l := range strings.Split(string(plog), "\n") {
			switch {
			case strings.Contains(l, ixfr) && strings.Contains(l, fmt.Sprintf("started, serial %d -> %d", prev[z], serials[z])):
				n++
			case strings.Contains(l, axfr) && strings.Contains(l, fmt.Sprintf("serial %d", serials[z])):
				t.Errorf("a secondary took %s by AXFR: %s", z, l)
			}
		}
		if n < len(secs) {
			t.Errorf("%d IXFR of %s to serial %d from the primary, want %d:\n%s", n, z, serials[z], len(secs), tail(p.Log, 4000))
		}
	}
	after := compare("after the change")
	if err := LdnsVerifyZone(after[signed], dir, anchor); err != nil {
		t.Error(err)
	}
	if err := DnssecVerify(after[signed], signed, dir); err != nil {
		t.Error(err)
	}

	// IXFR from the primary: by kdig and by IXFR, a difference, not the whole zone.
	isDiff := func(rrs []dns.RR) bool {
		return len(rrs) >= 4 && rrs[0].Header().Rrtype == dns.TypeSOA && rrs[1].Header().Rrtype == dns.TypeSOA &&
			rrs[1].(*dns.SOA).Serial == old && rrKeys(rrs)["new.xfr.test.\t300\tIN\tA\t127.0.0.9"]
	}
	out, err := KdigIXFR(p.Addr, plain, old, key)
	if err != nil {
		t.Fatal(err)
	}
	if rrs := KdigRecords(out); !isDiff(rrs) {
		t.Errorf("kdig IXFR=%d from the primary is not the difference:\n%s\nparsed: %v", old, out, rrs)
	}
	if _, err := KdigIXFR(p.Addr, plain, old, NewTSIGKey(key.Name)); err == nil {
		t.Error("kdig IXFR with a wrong secret succeeded")
	}
	if rrs, err := IXFR(p.Addr, plain, old, &key); err != nil || !isDiff(rrs) {
		t.Errorf("IXFR %d from the primary: %v\n%v", old, err, rrs)
	}
	if _, err := AXFR(p.Addr, plain, nil); err == nil {
		t.Error("the primary allowed an AXFR without TSIG")
	}
	// Knot and BIND keep the difference they received; NSD answers with the whole zone.
	for _, s := range secs {
		rrs, err := IXFR(s.Addr, plain, old, &key)
		if err != nil {
			t.Errorf("IXFR from the %s secondary: %v", s.Kind, err)
			continue
		}
		if s.Kind != "nsd" && !isDiff(rrs) {
			t.Errorf("IXFR %d from the %s secondary is not the difference:\n%v", old, s.Kind, rrs)
		}
		if s.Kind == "nsd" && len(rrs) == 0 {
			t.Errorf("IXFR from the nsd secondary: no records")
		}
	}

	// Refresh by the control tools.
	for _, s := range secs {
		for _, z := range zones {
			if err := s.Refresh(z); err != nil {
				t.Error(err)
			}
		}
	}
	// A secondary whose primary does not answer serves no SOA: Serial fails, WaitSerial
	// times out.
	deadPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range SecondaryKinds {
		s := StartSecondary(t, kind, []string{plain}, net.JoinHostPort("127.0.0.1", strconv.Itoa(deadPort)), key)
		if serial, err := s.Serial(plain); err == nil {
			t.Errorf("%s secondary without a primary: Serial = %d, want an error", kind, serial)
		}
		if err := s.WaitSerial(plain, 0, 100*time.Millisecond); err == nil {
			t.Errorf("%s secondary without a primary: WaitSerial succeeded", kind)
		}
		s.Stop()
	}
	t.Logf("harness self-test done in %v", time.Since(start).Round(time.Millisecond))
}

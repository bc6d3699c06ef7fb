package integration

// Reusable harness: free ports, the server under test, a private Unbound, delv, direct
// queries and trust anchors. Functions taking a testing.TB fail it on error; the New*/Start*
// variants that return an error are for fixtures shared between tests (see sharedLab).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/freeport"
	"github.com/danelab/danelab/internal/peer"
)

// ---------------------------------------------------------------------------------------------
// Ports and temporary directories

// FreePort returns a loopback port free for both UDP and TCP now and never handed out before
// in this process (freeport, which the lab's servers use too).
func FreePort() (int, error) { return freeport.Get("127.0.0.1") }

// tempDir makes a temporary directory removed by cleanup, unless DANELAB_IT_KEEP is set.
func tempDir(prefix string) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "danelab-it-"+prefix+"-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		if os.Getenv("DANELAB_IT_KEEP") != "" {
			fmt.Fprintf(os.Stderr, "integration: kept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}, nil
}

// RepoZone returns the content of a zone file of the repository (zones/NAME).
func RepoZone(tb testing.TB, name string) string {
	tb.Helper()
	root := moduleRoot
	if root == "" {
		var err error
		if root, err = findModuleRoot(); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "zones", name))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// tail returns at most the last n bytes of a file, for failure messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	if len(b) > n {
		b = append([]byte("...\n"), b[len(b)-n:]...)
	}
	return string(b)
}

// process is a started daemon whose output goes to a log file.
type process struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // valid after exited is closed
}

func startProcess(name, dir, logPath string, argv ...string) (*process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the process by its PID: SIGTERM, then SIGKILL after a grace period.
func (p *process) stop() {
	if p == nil || !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// ---------------------------------------------------------------------------------------------
// The server under test

// ServerConfig describes one server under test: one danezone directive over a directory of
// <origin>.zone files.
type ServerConfig struct {
	Zones  map[string]string // origin (no trailing dot) -> zone file content
	Denial string            // "nsec", "minimal" or "" (default); may name zones: "minimal lab2.test"
	Reload string            // reload interval; "" means 200ms
	Extra  []string          // extra lines inside the danezone block
	KeyDir string            // use this key directory (e.g. to restart with the same keys)

	// The danezone arguments. By default PATH is the zone directory and there are no ORIGINS.
	Files   map[string]string // extra files for the zone directory: name -> content
	Path    string            // PATH relative to the zone directory ("" = the directory itself)
	Origins []string          // ORIGINS after PATH
	Serve   []string          // zones expected to be served (default: every key of Zones)

	Block []string // extra lines in the server block before the danezone directive (multi-line ok)
	Port  int      // listen on this port rather than a free one (e.g. to restart at the same address)
}

// ModeFor returns the denial mode the configuration sets for zone: "denial MODE ZONES..."
// applies MODE to the named zones only; the rest get the default, nsec.
func (c ServerConfig) ModeFor(zone string) string {
	f := strings.Fields(c.Denial)
	if len(f) == 0 {
		return "nsec"
	}
	if len(f) == 1 {
		return f[0]
	}
	for _, z := range f[1:] {
		if strings.EqualFold(dns.Fqdn(z), dns.Fqdn(zone)) {
			return f[0]
		}
	}
	return "nsec"
}

// Server is a running cmd/coredns with danezone.
type Server struct {
	Port    int
	Addr    string // 127.0.0.1:port
	Dir     string // temp dir: Corefile, zones/, keys/, coredns.log
	ZoneDir string
	KeyDir  string
	LogPath string
	Origins []string // FQDNs

	proc    *process
	cleanup func()
}

// StartServer starts a server for cfg and stops it when the test ends.
func StartServer(tb testing.TB, cfg ServerConfig) *Server {
	tb.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		n := len(raceReports())
		s.Stop()
		if r := raceReports(); len(r) > n {
			tb.Errorf("data race in the server under test:\n%s", r[len(r)-1])
		}
	})
	return s
}

// NewServer writes the zones and a Corefile into a temporary directory, starts the server and
// waits until it answers SOA for every zone and has written the key files.
func NewServer(cfg ServerConfig) (*Server, error) {
	if coreDNSBin == "" {
		return nil, errors.New("server binary not built (TestMain did not run?)")
	}
	dir, cleanup, err := tempDir("coredns")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, ZoneDir: filepath.Join(dir, "zones"), KeyDir: filepath.Join(dir, "keys"),
		LogPath: filepath.Join(dir, "coredns.log"), cleanup: cleanup}
	if cfg.KeyDir != "" {
		s.KeyDir = cfg.KeyDir
	}
	fail := func(err error) (*Server, error) {
		s.Stop()
		return nil, err
	}
	if err := os.MkdirAll(s.ZoneDir, 0o755); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(s.KeyDir, 0o700); err != nil {
		return fail(err)
	}
	for origin, content := range cfg.Zones {
		origin = strings.TrimSuffix(origin, ".")
		if err := os.WriteFile(s.ZoneFile(origin), []byte(content), 0o644); err != nil {
			return fail(err)
		}
		s.Origins = append(s.Origins, dns.Fqdn(origin))
	}
	for name, content := range cfg.Files {
		if err := os.WriteFile(filepath.Join(s.ZoneDir, name), []byte(content), 0o644); err != nil {
			return fail(err)
		}
	}
	if cfg.Serve != nil {
		s.Origins = nil
		for _, o := range cfg.Serve {
			s.Origins = append(s.Origins, dns.Fqdn(o))
		}
	}
	sort.Strings(s.Origins)
	pathArg := s.ZoneDir
	if cfg.Path != "" {
		pathArg = filepath.Join(s.ZoneDir, cfg.Path)
	}
	for _, o := range cfg.Origins {
		pathArg += " " + o
	}
	if s.Port = cfg.Port; s.Port == 0 {
		if s.Port, err = FreePort(); err != nil {
			return fail(err)
		}
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	reload := cfg.Reload
	if reload == "" {
		reload = "200ms"
	}
	var block strings.Builder
	fmt.Fprintf(&block, "        keys %s\n", s.KeyDir)
	if cfg.Denial != "" {
		fmt.Fprintf(&block, "        denial %s\n", cfg.Denial)
	}
	fmt.Fprintf(&block, "        reload %s\n", reload)
	// The zone model compares answers with the zone file, SOA serial included: serve the
	// file's serial unless a test chooses a policy (with no state yet, `serial file` does).
	if !slices.ContainsFunc(cfg.Extra, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "serial ") }) {
		block.WriteString("        serial file\n")
	}
	for _, l := range cfg.Extra {
		fmt.Fprintf(&block, "        %s\n", l)
	}
	var pre strings.Builder
	for _, l := range cfg.Block {
		for _, line := range strings.Split(strings.TrimRight(l, "\n"), "\n") {
			fmt.Fprintf(&pre, "    %s\n", line)
		}
	}
	corefile := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
%s    danezone %s {
%s    }
    log
    errors
}
`, s.Port, pre.String(), pathArg, block.String())
	conf := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(conf, []byte(corefile), 0o644); err != nil {
		return fail(err)
	}
	s.proc, err = startProcess("coredns", dir, s.LogPath, coreDNSBin, "-conf", conf)
	if err != nil {
		return fail(err)
	}
	if err := s.waitReady(30 * time.Second); err != nil {
		return fail(fmt.Errorf("%w\nCorefile:\n%s\ncoredns log (%s):\n%s", err, corefile, s.LogPath, tail(s.LogPath, 4000)))
	}
	return s, nil
}

// ZoneFile is the path of the zone file for origin.
func (s *Server) ZoneFile(origin string) string {
	return filepath.Join(s.ZoneDir, strings.TrimSuffix(origin, ".")+".zone")
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pending := append([]string(nil), s.Origins...)
	var lastErr error
	for len(pending) > 0 {
		if !s.proc.running() {
			return fmt.Errorf("coredns exited before answering: %v", s.proc.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("coredns on %s did not answer SOA for %v within %v (last: %v)", s.Addr, pending, timeout, lastErr)
		}
		origin := pending[0]
		r, err := Query(s.Addr, origin, dns.TypeSOA, QueryOpts{Timeout: 300 * time.Millisecond})
		switch {
		case err != nil:
			lastErr = err
		case r.Rcode != dns.RcodeSuccess || !hasType(r.Answer, dns.TypeSOA):
			lastErr = fmt.Errorf("SOA %s: rcode %s, %d answers", origin, dns.RcodeToString[r.Rcode], len(r.Answer))
		default:
			if _, err := ReadAnchor(s.KeyDir, origin); err != nil {
				lastErr = err
			} else {
				pending = pending[1:]
				continue
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// Stop stops the server (by PID) and removes its directory. Data races the (race-built)
// server logged are recorded for TestMain, which fails the run.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	s.proc.stop()
	if s.proc != nil {
		if log := s.Log(); strings.Contains(log, "WARNING: DATA RACE") {
			i := strings.Index(log, "WARNING: DATA RACE")
			addRaceReport(fmt.Sprintf("server %s (log %s):\n%s", s.Addr, s.LogPath, log[max(0, i-200):min(len(log), i+6000)]))
		}
	}
	if s.cleanup != nil {
		s.cleanup()
		s.cleanup = nil
	}
}

// Log returns the server's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// ---------------------------------------------------------------------------------------------
// Trust anchors

// Anchor is the trust anchor of one zone, read from the key directory.
type Anchor struct {
	Zone     string        // FQDN, lower case
	KSK      *dns.DNSKEY   // flags 257, from K<zone>+<alg>+<tag>.key
	Keys     []*dns.DNSKEY // every DNSKEY of the zone found in .key files
	DS       []*dns.DS     // from dsset-<zone>.
	KeyPaths []string
}

// ReadAnchor reads the BIND key files of zone from dir: every K<zone>*.key file with a DNSKEY
// owned by zone, and dsset-<zone>. if present. It fails if there is no SEP (257) key.
func ReadAnchor(dir, zone string) (*Anchor, error) {
	zone = strings.ToLower(dns.Fqdn(zone))
	a := &Anchor{Zone: zone}
	paths, err := filepath.Glob(filepath.Join(dir, "K*.key"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		rrs, err := parseRRFile(p, zone)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			k, ok := rr.(*dns.DNSKEY)
			if !ok || !strings.EqualFold(k.Hdr.Name, zone) {
				continue
			}
			a.Keys = append(a.Keys, k)
			a.KeyPaths = append(a.KeyPaths, p)
			if k.Flags&dns.SEP != 0 && k.Flags&dns.ZONE != 0 && a.KSK == nil {
				a.KSK = k
			}
		}
	}
	if a.KSK == nil {
		return nil, fmt.Errorf("no DNSKEY with flags 257 for %s in %s (found %d .key files)", zone, dir, len(paths))
	}
	dsPath := filepath.Join(dir, "dsset-"+zone)
	if _, err := os.Stat(dsPath); err == nil {
		rrs, err := parseRRFile(dsPath, zone)
		if err != nil {
			return nil, err
		}
		for _, rr := range rrs {
			if ds, ok := rr.(*dns.DS); ok {
				a.DS = append(a.DS, ds)
			}
		}
	}
	return a, nil
}

func parseRRFile(path, origin string) ([]dns.RR, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zp := dns.NewZoneParser(f, origin, path)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return rrs, nil
}

// DelvAnchors renders a delv/BIND trust-anchors statement with the static KSK of each anchor.
func DelvAnchors(anchors ...*Anchor) string {
	var b strings.Builder
	b.WriteString("trust-anchors {\n")
	for _, a := range anchors {
		fmt.Fprintf(&b, "    %s static-key %d %d %d \"%s\";\n", a.Zone, a.KSK.Flags, a.KSK.Protocol, a.KSK.Algorithm, a.KSK.PublicKey)
	}
	b.WriteString("};\n")
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// Direct queries

// QueryOpts are the knobs of a direct query.
type QueryOpts struct {
	DO      bool          // set the DO bit (implies EDNS)
	NoEDNS  bool          // send no OPT record at all
	BufSize uint16        // EDNS UDP size; default 1232
	TCP     bool          // query over TCP
	RD      bool          // recursion desired
	AD      bool          // AD bit in the query (ask a validator for the AD bit)
	CD      bool          // checking disabled
	CO      bool          // Compact Answers OK (RFC 9824 §4; implies EDNS)
	Timeout time.Duration // default 3s
}

// Query sends one query and returns the response as received (no TCP retry on TC).
func Query(addr, name string, qtype uint16, o QueryOpts) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = o.RD
	m.AuthenticatedData = o.AD
	m.CheckingDisabled = o.CD
	if !o.NoEDNS {
		size := o.BufSize
		if size == 0 {
			size = 1232
		}
		m.SetEdns0(size, o.DO)
		m.IsEdns0().SetCo(o.CO)
	}
	c := &dns.Client{Net: "udp", Timeout: o.Timeout, UDPSize: 65535}
	if o.TCP {
		c.Net = "tcp"
	}
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Second
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, fmt.Errorf("%s %s @%s/%s: %w", name, typeString(qtype), addr, c.Net, err)
	}
	if r.Id != m.Id {
		return nil, fmt.Errorf("%s %s: response id mismatch", name, typeString(qtype))
	}
	return r, nil
}

// QueryFull queries over UDP and retries over TCP when the answer is truncated.
func QueryFull(addr, name string, qtype uint16, o QueryOpts) (*dns.Msg, error) {
	r, err := Query(addr, name, qtype, o)
	if err == nil && r.Truncated && !o.TCP {
		o.TCP = true
		r, err = Query(addr, name, qtype, o)
	}
	return r, err
}

func hasType(rrs []dns.RR, t uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// Unbound

// Stub is one zone Unbound resolves through a stub-zone with a trust anchor.
type Stub struct {
	Anchor *Anchor
	Addr   string // server address, host:port; several separated by spaces
}

// Unbound is a private validating Unbound instance.
type Unbound struct {
	Port    int
	Addr    string
	Dir     string
	LogPath string
	Conf    string

	proc    *process
	cleanup func()
}

// PeerMissing returns a message when program is not installed (for peer.Absent, which skips
// the test, or fails it under CI=true), else "".
func PeerMissing(program string) string {
	return peer.Missing(program)
}

func lookPeer(program string) (string, error) {
	return peer.Look(program)
}

// StartUnbound starts an Unbound for stubs and stops it when the test ends. It skips the
// test if unbound is not installed (fails it under CI=true).
func StartUnbound(tb testing.TB, stubs ...Stub) *Unbound {
	tb.Helper()
	peer.Need(tb, "unbound")
	u, err := NewUnbound(stubs...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(u.Stop)
	return u
}

// NewUnbound writes a configuration with a stub-zone and a trust anchor (the DS records from
// dsset, or the KSK when there is no dsset) for every stub, starts unbound in the foreground
// and waits until it answers.
func NewUnbound(stubs ...Stub) (*Unbound, error) {
	probe := "example.test."
	if len(stubs) > 0 {
		probe = stubs[0].Anchor.Zone
	}
	return startUnbound(unboundSpec{Anchors: stubAnchors(stubs), Stubs: stubs, Probe: probe, ProbeType: dns.TypeSOA,
		Server: []string{"cache-max-ttl: 60", "cache-max-negative-ttl: 10", "infra-host-ttl: 5"}})
}

// stubAnchors are the trust anchors of stubs: each one's DS records, or its KSK when it has
// no DS.
func stubAnchors(stubs []Stub) []dns.RR {
	var out []dns.RR
	for _, s := range stubs {
		if len(s.Anchor.DS) > 0 {
			for _, ds := range s.Anchor.DS {
				out = append(out, ds)
			}
		} else {
			out = append(out, s.Anchor.KSK)
		}
	}
	return out
}

// unboundSpec is what differs between the tests' Unbound instances; everything else (a
// private directory and log, validation with EDE, test. released, bogus answers cached for
// a second) is the same for all.
type unboundSpec struct {
	IP        string   // listen address; 127.0.0.1 when empty
	Port      int      // listen port; a free one when 0
	Anchors   []dns.RR // trust anchors (DS or DNSKEY)
	Stubs     []Stub   // stub-zones: zone (Anchor.Zone) at address
	Zones     []string // more stub-zones at StubAddr, without anchors of their own
	StubAddr  string
	Server    []string // more lines for the server: section
	Probe     string   // a question answered once unbound is up
	ProbeType uint16
}

// startUnbound writes the configuration of spec, checks it with unbound-checkconf, starts
// unbound -d and waits until it answers the probe.
func startUnbound(spec unboundSpec) (*Unbound, error) {
	if _, err := lookPeer("unbound"); err != nil {
		return nil, errors.New(PeerMissing("unbound"))
	}
	dir, cleanup, err := tempDir("unbound")
	if err != nil {
		return nil, err
	}
	u := &Unbound{Dir: dir, LogPath: filepath.Join(dir, "unbound.log"), Conf: filepath.Join(dir, "unbound.conf"), cleanup: cleanup, Port: spec.Port}
	fail := func(err error) (*Unbound, error) {
		u.Stop()
		return nil, err
	}
	if u.Port == 0 {
		if u.Port, err = FreePort(); err != nil {
			return fail(err)
		}
	}
	ip := spec.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	u.Addr = net.JoinHostPort(ip, strconv.Itoa(u.Port))
	var ta strings.Builder
	for _, rr := range spec.Anchors {
		ta.WriteString(rr.String() + "\n")
	}
	taFile := filepath.Join(dir, "anchors.txt")
	if err := os.WriteFile(taFile, []byte(ta.String()), 0o644); err != nil {
		return fail(err)
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
    interface: %[5]s@%[1]d
    port: %[1]d
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    username: ""
    chroot: ""
    directory: "%[2]s"
    pidfile: "%[2]s/unbound.pid"
    logfile: "%[3]s"
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    ede: yes
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "%[4]s"
    local-zone: "test." nodefault
    access-control: 127.0.0.0/8 allow
    val-bogus-ttl: 1
    so-reuseport: no
`, u.Port, dir, u.LogPath, taFile, ip)
	for _, l := range spec.Server {
		conf.WriteString("    " + l + "\n")
	}
	conf.WriteString("remote-control:\n    control-enable: no\n")
	for _, s := range spec.Stubs {
		fmt.Fprintf(&conf, "stub-zone:\n    name: \"%s\"\n", s.Anchor.Zone)
		for _, a := range strings.Fields(s.Addr) { // several servers of one zone
			fmt.Fprintf(&conf, "    stub-addr: %s\n", strings.Replace(a, ":", "@", 1))
		}
	}
	for _, z := range spec.Zones {
		fmt.Fprintf(&conf, "stub-zone:\n    name: \"%s\"\n    stub-addr: %s\n", z, strings.Replace(spec.StubAddr, ":", "@", 1))
	}
	if err := os.WriteFile(u.Conf, []byte(conf.String()), 0o644); err != nil {
		return fail(err)
	}
	if chk, err := lookPeer("unbound-checkconf"); err == nil {
		if out, err := exec.Command(chk, u.Conf).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("unbound-checkconf: %v\n%s\n%s", err, out, conf.String()))
		}
	}
	if err := runUnbound(u, spec.Probe, spec.ProbeType); err != nil {
		return fail(err)
	}
	return u, nil
}

// runUnbound starts unbound -d with u.Conf in u.Dir and waits until it answers probe at
// u.Addr. The caller stops u, also on error.
func runUnbound(u *Unbound, probe string, qtype uint16) error {
	bin, err := lookPeer("unbound")
	if err != nil {
		return errors.New(PeerMissing("unbound"))
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		// Debian's AppArmor profile for /usr/sbin/unbound denies reading our temporary
		// configuration; profiles attach by path, so run a private copy of the binary.
		if cp, err := copyExecutable(bin, filepath.Join(u.Dir, "unbound")); err == nil {
			bin = cp
		}
	}
	if u.proc, err = startProcess("unbound", u.Dir, filepath.Join(u.Dir, "unbound.stdout"), bin, "-d", "-c", u.Conf); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if !u.proc.running() {
			return fmt.Errorf("unbound exited: %v\n%s\n%s", u.proc.err, tail(u.proc.log, 2000), tail(u.LogPath, 2000))
		}
		if _, err := Query(u.Addr, probe, qtype, QueryOpts{RD: true, DO: true, Timeout: 2 * time.Second}); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unbound on %s did not answer within 15s\n%s", u.Addr, tail(u.LogPath, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyExecutable(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return "", err
	}
	return dst, nil
}

// Stop stops unbound (by PID) and removes its directory.
func (u *Unbound) Stop() {
	if u == nil {
		return
	}
	u.proc.stop()
	if u.cleanup != nil {
		u.cleanup()
		u.cleanup = nil
	}
}

// Resolve asks Unbound with RD, DO and AD set (retrying over TCP if truncated).
func (u *Unbound) Resolve(name string, qtype uint16) (*dns.Msg, error) {
	r, err := QueryFull(u.Addr, name, qtype, QueryOpts{RD: true, DO: true, AD: true, Timeout: 10 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("unbound: %w", err)
	}
	return r, nil
}

// LogTail returns the end of Unbound's log (validation failures are logged at val-log-level 2).
func (u *Unbound) LogTail(n int) string { return tail(u.LogPath, n) }

// EDE returns the extended DNS errors of a response as "code: text" strings.
func EDE(r *dns.Msg) []string {
	var out []string
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				out = append(out, fmt.Sprintf("EDE %d (%s): %s", e.InfoCode, dns.ExtendedErrorCodeToString[e.InfoCode], e.ExtraText))
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// delv

// Delv runs delv against one server with static trust anchors.
type Delv struct {
	Bin         string
	Server      string // host
	Port        int
	AnchorsFile string
}

// NewDelv writes the anchors file into dir. It skips the test if delv is not installed (fails
// it under CI=true).
func NewDelv(tb testing.TB, srv *Server, dir string, anchors ...*Anchor) *Delv {
	tb.Helper()
	peer.Need(tb, "delv")
	d, err := newDelv(srv, dir, anchors...)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func newDelv(srv *Server, dir string, anchors ...*Anchor) (*Delv, error) {
	bin, err := lookPeer("delv")
	if err != nil {
		return nil, errors.New(PeerMissing("delv"))
	}
	f := filepath.Join(dir, fmt.Sprintf("anchors-%d.conf", srv.Port))
	if err := os.WriteFile(f, []byte(DelvAnchors(anchors...)), 0o644); err != nil {
		return nil, err
	}
	return &Delv{Bin: bin, Server: "127.0.0.1", Port: srv.Port, AnchorsFile: f}, nil
}

// DelvResult is delv's verdict on one query.
type DelvResult struct {
	Cmd     string
	Output  string
	Secure  bool     // "; fully validated" or "; negative response, fully validated"
	Rcode   int      // NOERROR, NXDOMAIN, or SERVFAIL for any other resolution failure
	NoData  bool     // "ncache nxrrset"
	Failure string   // the "resolution failed:" reason other than ncache nxdomain/nxrrset
	Answer  []dns.RR // records printed (RRSIGs included)
}

var delvFailRe = regexp.MustCompile(`(?m)^;; resolution failed: (.*)$`)

// Query runs `delv @server -p port -a anchors +root=root name type`.
func (d *Delv) Query(root, name string, qtype uint16) (DelvResult, error) {
	args := []string{"@" + d.Server, "-p", strconv.Itoa(d.Port), "-a", d.AnchorsFile,
		"+root=" + strings.TrimSuffix(root, "."), "-q", name, "-t", typeString(qtype)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	res := DelvResult{Cmd: "delv " + strings.Join(args, " "), Output: out.String()}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: timed out\n%s", res.Cmd, res.Output)
	}
	if err != nil {
		return res, fmt.Errorf("%s: %v\n%s", res.Cmd, err, res.Output)
	}
	res.Rcode = dns.RcodeSuccess
	for _, m := range delvFailRe.FindAllStringSubmatch(res.Output, -1) {
		switch reason := strings.TrimSpace(m[1]); reason {
		case "ncache nxdomain":
			res.Rcode = dns.RcodeNameError
		case "ncache nxrrset":
			res.NoData = true
		default:
			res.Rcode = dns.RcodeServerFailure
			if res.Failure == "" {
				res.Failure = reason
			}
		}
	}
	sc := bufio.NewScanner(strings.NewReader(res.Output))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "; fully validated" || line == "; negative response, fully validated":
			res.Secure = true
		case line == "" || strings.HasPrefix(line, ";"):
		default:
			if rr, err := dns.NewRR(line); err == nil && rr != nil {
				res.Answer = append(res.Answer, rr)
			}
		}
	}
	if res.Failure != "" {
		res.Secure = false
	}
	return res, nil
}

// ---------------------------------------------------------------------------------------------
// Shared labs: one server per denial mode with an Unbound and delv, reused by many tests.

// Lab is a running server with its judges.
type Lab struct {
	Denial  string            // the denial directive's mode (first word)
	Modes   map[string]string // denial mode per zone FQDN
	Srv     *Server
	Anchors map[string]*Anchor // by zone FQDN
	Zones   *ZoneSet           // expectations from the zone files (+ DNSKEY from the keys)
	Unbound *Unbound           // nil if unbound is missing (UnboundMissing says why)
	Delv    *Delv              // nil if delv is missing (DelvMissing says why)

	UnboundMissing string
	DelvMissing    string
}

// ModeFor returns the denial mode of zone (FQDN).
func (l *Lab) ModeFor(zone string) string {
	if m, ok := l.Modes[zone]; ok {
		return m
	}
	return ServerConfig{Denial: l.Denial}.ModeFor(zone)
}

// NeedUnbound returns the lab's Unbound or skips the test (fails it under CI=true).
func (l *Lab) NeedUnbound(tb testing.TB) *Unbound {
	tb.Helper()
	if l.Unbound == nil {
		peer.Absent(tb, l.UnboundMissing)
	}
	return l.Unbound
}

// NeedDelv returns the lab's delv or skips the test (fails it under CI=true).
func (l *Lab) NeedDelv(tb testing.TB) *Delv {
	tb.Helper()
	if l.Delv == nil {
		peer.Absent(tb, l.DelvMissing)
	}
	return l.Delv
}

// Lab zones: the repository's example.test verbatim, and lab2.test, a small second zone with
// a TXT RRset too big for a 512-byte UDP answer, a CNAME into example.test, and owner names
// that need care (case, escaped dots, binary octets).
const lab2Zone = `$ORIGIN lab2.test.
$TTL 600
@       IN SOA ns1.lab2.test. hostmaster.lab2.test. 1 3600 900 1209600 120
        IN NS  ns1.lab2.test.
        IN A   127.0.0.40
ns1     IN A   127.0.0.1
alias   IN CNAME mx1.example.test.
big     IN TXT "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999" "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999" "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999" "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999" "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999" "0000000000111111111122222222223333333333444444444455555555556666666666777777777788888888889999999999"
*.wild  IN TXT "wildcard in lab2"
; owner names in upper/mixed case, an escaped dot inside a label, a binary label
UPPER   IN A   127.0.0.41
Mixed.Case IN TXT "mixed"
alias2  IN CNAME UPPER.lab2.test.
dot\.label IN TXT "escaped dot"
\000x   IN A   127.0.0.42
; record types with domain names in the RDATA (canonical form: RFC 4034 §6.2, RFC 6840 §5.1,
; RFC 9460), and a type unknown to most software (RFC 3597)
_sip._udp IN SRV 10 5 5060 SIP.lab2.test.
naptr   IN NAPTR 100 10 "S" "SIP+D2U" "" _SIP._UDP.lab2.test.
svc     IN HTTPS 1 WWW.lab2.test. alpn="h2,h3" port=8443
        IN SVCB  2 . alpn=h2
        IN CAA   0 issue "ca.example"
        IN SSHFP 4 2 8f2a7c1d3b9e0f6a5c4d7e8b1a2f3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b
unk     IN TYPE65280 \# 4 0A000001
empty   IN TXT ""
`

var (
	labMu   sync.Mutex
	labs    = map[string]*Lab{}
	labErrs = map[string]error{}
)

// sharedLab returns the lab for a denial mode, starting it on first use; it stays up until
// all tests are done (stopped from TestMain).
func sharedLab(tb testing.TB, denial string) *Lab {
	tb.Helper()
	labMu.Lock()
	defer labMu.Unlock()
	if l, ok := labs[denial]; ok {
		return l
	}
	if err, ok := labErrs[denial]; ok {
		tb.Fatalf("lab %q failed to start earlier: %v", denial, err)
	}
	l, err := newLab(tb, denial)
	if err != nil {
		labErrs[denial] = err
		tb.Fatalf("starting lab %q: %v", denial, err)
	}
	labs[denial] = l
	return l
}

func newLab(tb testing.TB, denial string) (*Lab, error) {
	cfg := ServerConfig{Zones: LabZones(tb), Denial: denial}
	return NewLab(cfg, atExit)
}

// LabZones returns the zones of the shared labs: the repository's example.test verbatim and
// lab2.test.
func LabZones(tb testing.TB) map[string]string {
	return map[string]string{
		"example.test": RepoZone(tb, "example.test.zone"),
		"lab2.test":    lab2Zone,
	}
}

// StartLab starts a server for cfg with an Unbound and delv for it, stopped at test end.
func StartLab(tb testing.TB, cfg ServerConfig) *Lab {
	tb.Helper()
	l, err := NewLab(cfg, tb.Cleanup)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// NewLab starts a server for cfg, reads its trust anchors, builds the zone model and starts
// the judges that are installed. cleanup registers the stop functions.
func NewLab(cfg ServerConfig, cleanup func(func())) (*Lab, error) {
	srv, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	cleanup(srv.Stop)
	l := &Lab{Denial: cfg.Denial, Srv: srv, Anchors: map[string]*Anchor{}, Modes: map[string]string{}}
	if l.Denial == "" {
		l.Denial = "nsec"
	}
	var anchors []*Anchor
	var stubs []Stub
	for _, origin := range srv.Origins {
		a, err := ReadAnchor(srv.KeyDir, origin)
		if err != nil {
			return nil, err
		}
		l.Anchors[origin] = a
		anchors = append(anchors, a)
		stubs = append(stubs, Stub{Anchor: a, Addr: srv.Addr})
		l.Modes[origin] = cfg.ModeFor(origin)
	}
	served := map[string]string{}
	for origin, text := range cfg.Zones {
		if slices.Contains(srv.Origins, dns.Fqdn(origin)) {
			served[origin] = text
		}
	}
	if l.Zones, err = NewZoneSet(served, l.Anchors); err != nil {
		return nil, err
	}
	l.Zones.denial(l.ModeFor)
	if msg := PeerMissing("unbound"); msg != "" {
		l.UnboundMissing = msg
	} else {
		u, err := NewUnbound(stubs...)
		if err != nil {
			return nil, err
		}
		cleanup(u.Stop)
		l.Unbound = u
	}
	if msg := PeerMissing("delv"); msg != "" {
		l.DelvMissing = msg
	} else {
		if l.Delv, err = newDelv(srv, srv.Dir, anchors...); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// denialModes are the modes every answer class is tested in.
var denialModes = []string{"nsec", "minimal", "nsec3", "nsec3-narrow", "compact"}

package integration

// A real Postfix (Debian's postfix 3.7 package) as the DANE sender of a test: one private
// instance per startPostfix call, with its configuration, queue, data directory and log
// inside a work directory, so that instances never share state and nothing under
// /etc/postfix or /var/spool/postfix is touched. The only inputs are a validating resolver
// listening on RESOLVER_IP:53 (resolv.conf cannot name a port), the work directory and
// main.cf settings: the helper knows nothing about the lab, so it can drive Postfix against
// an in-process lab as well as a separate `danelab serve`.
//
// API (see each declaration):
//
//	startPostfix(t, postfixOptions{Dir, ResolverIP, MyHostname, Settings}) *postfixMTA
//	(m) Send(from, to, subject, body string) (queueID string, err error)
//	(m) SendMail(postfixMail{From, To, Subject, Body, MessageID, Headers}) (queueID string, err error)
//	(m) Queue() ([]queuedMsg, error)               postqueue -j
//	(m) Flush() error                               postqueue -f
//	(m) Log() string, (m) Events() postfixLog        the maillog, raw and parsed
//	(m) WaitDelivery(qid, rcpt, timeout, statuses...) (postfixDelivery, error)
//	(m) WaitLog(timeout, what, cond) (postfixLog, error)
//	(m) Postconf(name) (string, error)              the effective value of a parameter
//	(m) CheckResolver() ([]string, error)           every process sees the lab resolv.conf
//	(m) Processes() []postfixProc                   the instance's processes, by PID
//	(m) Stop()                                      also registered with t.Cleanup
//	parsePostfixLog(text) postfixLog                per-recipient events with their TLS line
//	parseDSN(data) (*dsnReport, error)              an RFC 3464 delivery status notification
//
// How it runs: the smtp client uses the system resolver, so the master is started inside a
// private mount namespace whose /etc/resolv.conf is a bind mount naming ResolverIP
// (tlInLabResolver); every daemon is forked by the master and inherits the namespace, and
// every service runs with chroot n (a chrooted smtp would read a copy of resolv.conf under
// the queue directory). There is no smtpd at all: the lab's receivers listen on port 25 of
// other loopback addresses. mydestination is empty, so nothing is local and bounces go out
// by SMTP like any other mail. Needs root (mount namespaces, postdrop's set-gid directories,
// receivers on port 25), as in CI.
//
// Postfix 3.7 quirks met on the way: a main.cf written less than a second or two ago makes
// every Postfix command reread it every 300 ms until it is old enough (~2 s: the helper
// back-dates the files); the queue directory's ancestors must be traversable by the postfix
// user (t.TempDir makes them 0700: "open lock file .../data/master.lock: Permission
// denied"); `postfix stop`'s forced kill never fires (postfix-script's awk exits 1 from its END
// rule, so "kill -9 -PID" is skipped), hence the kill by PID here; sendmail never learns the
// queue ID (pickup assigns it; the helper reads it from cleanup's message-id= line); the
// maillog has whole-second timestamps; root's postqueue reads a stopped instance's queue
// directly. With smtp_tls_loglevel=1 a DANE-EE match is logged as "Verified TLS connection
// established", a mismatch as "server certificate verification failed for HOST[IP]:25:
// num=65:no matching DANE TLSA records", then "Untrusted TLS connection established", then
// "dsn=4.7.5, status=deferred (Server certificate not verified)".

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// postfixOptions describe one Postfix instance.
type postfixOptions struct {
	// Dir is the work directory: config/ (main.cf, master.cf), queue/, data/, maillog and
	// lab-resolv.conf go there. t.TempDir() when empty. The postfix user must be able to
	// traverse every directory above it: those below os.TempDir() get o+x (t.TempDir makes
	// them 0700); anywhere else that is the caller's job.
	Dir string
	// ResolverIP is the address of a validating resolver listening on port 53 that resolves
	// and validates the lab (required). Checked before start: the dnssec_probe query must come
	// back with AD=1.
	ResolverIP string
	// MyHostname is myhostname: the EHLO name and the domain of MAILER-DAEMON
	// ("mta.sender.test" by default).
	MyHostname string
	// Settings are main.cf parameters added to, or overriding, postfixDefaults (an empty value
	// writes "name ="). The directories, maillog_file and myhostname are the helper's.
	Settings map[string]string
}

// postfixDefaults are the main.cf settings every instance gets (before Settings): a DANE
// sender with short retries (see docs/real-peers.md).
func postfixDefaults() map[string]string {
	return map[string]string{
		"compatibility_level": "3.6",
		"mail_owner":          "postfix",
		"setgid_group":        "postdrop",
		// Nothing is delivered locally: bounces to the sender leave by SMTP too, and no
		// local(8) ever writes to /var/mail.
		"mydestination":           "",
		"alias_maps":              "",
		"alias_database":          "",
		"biff":                    "no",
		"inet_interfaces":         "loopback-only",
		"inet_protocols":          "ipv4",
		"smtp_address_preference": "ipv4",
		"smtp_dns_support_level":  "dnssec",
		"smtp_tls_security_level": "dane",
		"smtp_tls_loglevel":       "1",
		// The default probe (ns:.) needs the root under the resolver's trust anchor; every
		// lab has test. signed below its root anchor.
		"dnssec_probe": "ns:test.",
		// Short retries; callers may override. Postfix accepts lifetimes below 1m (0 means
		// a single attempt); the backoff times have a 1s minimum.
		"queue_run_delay":        "10s",
		"minimal_backoff_time":   "10s",
		"maximal_backoff_time":   "60s",
		"maximal_queue_lifetime": "2m",
		"bounce_queue_lifetime":  "2m",
		// Long queue IDs are never reused within an instance, so a log parsed by queue ID
		// cannot mix two messages.
		"enable_long_queue_ids": "yes",
	}
}

// postfixMasterCF is master.cf: every service with chroot n (the third "n"), no smtpd and no
// local(8). postlog carries every daemon's log to maillog_file.
const postfixMasterCF = `# service type  private unpriv  chroot  wakeup  maxproc command + args
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

// postfixMTA is a running Postfix instance.
type postfixMTA struct {
	Dir        string
	ConfigDir  string // MAIL_CONFIG: main.cf and master.cf
	QueueDir   string
	DataDir    string
	LogPath    string // maillog_file
	ResolverIP string
	MyHostname string
	MasterPID  int

	t        *testing.T
	bins     map[string]string
	seq      atomic.Int64
	stopOnce sync.Once
}

// pfTimeout bounds every Postfix command the helper runs.
const pfTimeout = 60 * time.Second

// startPostfix configures and starts a Postfix instance and stops it at test end. It skips
// the test when Postfix or unshare/mount is missing and fails it without root.
func startPostfix(t *testing.T, o postfixOptions) *postfixMTA {
	t.Helper()
	bins := map[string]string{}
	for _, p := range []string{"postfix", "postqueue", "postconf", "unshare", "mount"} {
		bins[p] = peer.Need(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("startPostfix needs root (as in CI): a private mount namespace for resolv.conf and Postfix's set-gid queue directories")
	}
	if net.ParseIP(o.ResolverIP).To4() == nil {
		t.Fatalf("startPostfix: ResolverIP %q is not an IPv4 address", o.ResolverIP)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.MyHostname == "" {
		o.MyHostname = "mta.sender.test"
	}
	m := &postfixMTA{Dir: dir, ConfigDir: filepath.Join(dir, "config"), QueueDir: filepath.Join(dir, "queue"),
		DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "maillog"),
		ResolverIP: o.ResolverIP, MyHostname: o.MyHostname, t: t, bins: bins}
	// Commands reach postlogd through this socket by absolute path: a sun_path holds 107 bytes.
	if sock := filepath.Join(m.QueueDir, "public", "postlog"); len(sock) > 107 {
		t.Fatalf("startPostfix: work directory too deep: the socket %s is longer than 107 bytes", sock)
	}
	// The queue directory must be root's and reachable by the postfix user; `postfix check`
	// creates what lies below it (and data_directory) with the right owners.
	for _, d := range []string{dir, m.ConfigDir, m.QueueDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := pfTraversable(dir); err != nil {
		t.Fatal(err)
	}

	settings := postfixDefaults()
	for k, v := range o.Settings {
		settings[k] = v
	}
	for k, v := range map[string]string{"queue_directory": m.QueueDir, "data_directory": m.DataDir,
		"maillog_file": m.LogPath, "maillog_file_prefixes": dir, "myhostname": o.MyHostname} {
		if w, ok := o.Settings[k]; ok && w != v {
			t.Fatalf("startPostfix: %s is set by the helper (%s), not by Settings", k, v)
		}
		settings[k] = v
	}
	var mainCF strings.Builder
	mainCF.WriteString("# written by startPostfix (integration/postfix_helpers_test.go)\n")
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !pfParamRe.MatchString(k) || strings.ContainsAny(settings[k], "\r\n") {
			t.Fatalf("startPostfix: bad main.cf setting %q = %q", k, settings[k])
		}
		fmt.Fprintf(&mainCF, "%s = %s\n", k, settings[k])
	}
	if err := os.WriteFile(filepath.Join(m.ConfigDir, "main.cf"), []byte(mainCF.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.ConfigDir, "master.cf"), []byte(postfixMasterCF), 0o644); err != nil {
		t.Fatal(err)
	}
	// Postfix rereads a configuration file modified within the last second or two (every
	// 300 ms, until it is old enough: someone may be editing it), which costs every command
	// ~2 s at first. Back-date the files.
	old := time.Now().Add(-time.Minute)
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := os.Chtimes(filepath.Join(m.ConfigDir, f), old, old); err != nil {
			t.Fatal(err)
		}
	}

	// Fail early, with a clear message, when the resolver cannot validate what the probe asks.
	if probe := settings["dnssec_probe"]; probe != "" {
		if err := pfCheckResolver(o.ResolverIP, probe); err != nil {
			t.Fatalf("startPostfix: %v", err)
		}
	}
	if out, errOut, code, err := pfRun(pfTimeout, exec.Command(bins["postfix"], "-c", m.ConfigDir, "check")); err != nil || code != 0 {
		t.Fatalf("postfix check: exit %d %v\n%s%s\nmaillog:\n%s", code, err, out, errOut, tail(m.LogPath, 3000))
	} else if strings.TrimSpace(out+errOut) != "" {
		t.Logf("postfix check:\n%s%s", out, errOut)
	}
	sendmail, err := m.Postconf("sendmail_path")
	if err != nil {
		t.Fatal(err)
	}
	bins["sendmail"] = sendmail

	// Cleanup first, so that a start that half worked is stopped too.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix maillog (%s):\n%s", m.LogPath, tail(m.LogPath, 8000))
		}
		m.Stop()
	})
	cmd := tlInLabResolver(t, dir, o.ResolverIP, bins["postfix"], "-c", m.ConfigDir, "start")
	if out, errOut, code, err := pfRun(pfTimeout, cmd); err != nil || code != 0 {
		t.Fatalf("postfix start: exit %d %v\n%s%s\nmaillog:\n%s", code, err, out, errOut, tail(m.LogPath, 3000))
	}
	// `postfix start` returns once the master has initialised (master -w), so its PID file
	// is there.
	pidText, err := os.ReadFile(filepath.Join(m.QueueDir, "pid", "master.pid"))
	if err != nil {
		t.Fatalf("postfix started but: %v", err)
	}
	if m.MasterPID, err = strconv.Atoi(strings.TrimSpace(string(pidText))); err != nil {
		t.Fatalf("master.pid: %v", err)
	}
	if names, err := m.CheckResolver(); err != nil {
		t.Fatal(err)
	} else if !slices.Contains(names, "master") {
		t.Fatalf("master (PID %d) not among the instance's processes %v", m.MasterPID, names)
	}
	return m
}

var pfParamRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// pfTraversable gives o+x to the directories from dir up that lack it and lie below
// os.TempDir() (t.TempDir makes them 0700), so that the postfix user can reach the queue;
// elsewhere it only reports.
func pfTraversable(dir string) error {
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		case st.Mode().Perm()&0o001 == 0:
			if !strings.HasPrefix(d, tmp+string(filepath.Separator)) {
				return fmt.Errorf("startPostfix: the postfix user cannot traverse %s (mode %v): choose a work directory below %s or open it up", d, st.Mode().Perm(), tmp)
			}
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return err
			}
		}
		if p := filepath.Dir(d); p == d {
			return nil
		}
	}
}

// pfCheckResolver asks ip:53 what dnssec_probe ("type:name") asks and wants a validated
// answer: without one, Postfix would treat every lab answer as insecure.
func pfCheckResolver(ip, probe string) error {
	typ, name, ok := strings.Cut(probe, ":")
	qtype, known := dns.StringToType[strings.ToUpper(typ)]
	if !ok || !known {
		return fmt.Errorf("dnssec_probe %q is not type:name", probe)
	}
	addr := net.JoinHostPort(ip, "53")
	var r *dns.Msg
	var err error
	for range 3 { // a resolver started a moment ago may still be priming
		if r, err = QueryFull(addr, name, qtype, QueryOpts{RD: true, DO: true, AD: true, Timeout: 3 * time.Second}); err == nil && r.AuthenticatedData {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("resolver %s does not answer %s %s (dnssec_probe = %s): %v", addr, name, dns.TypeToString[qtype], probe, err)
	}
	return fmt.Errorf("resolver %s does not validate %s %s (dnssec_probe = %s): rcode %s AD=%v %v",
		addr, name, dns.TypeToString[qtype], probe, dns.RcodeToString[r.Rcode], r.AuthenticatedData, EDE(r))
}

// pfRun runs cmd with stdout and stderr in files (a daemon forked by cmd cannot hold a pipe
// open and stall Wait) and returns them with the exit code; err is for start failures and
// timeouts (the process is then killed by PID).
func pfRun(timeout time.Duration, cmd *exec.Cmd) (stdout, stderr string, code int, err error) {
	var files [2]*os.File
	for i := range files {
		if files[i], err = os.CreateTemp("", "danelab-postfix-out-"); err != nil {
			return "", "", -1, err
		}
		defer os.Remove(files[i].Name())
		defer files[i].Close()
	}
	read := func() {
		o, _ := os.ReadFile(files[0].Name())
		e, _ := os.ReadFile(files[1].Name())
		stdout, stderr = string(o), string(e)
	}
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	if err := cmd.Start(); err != nil {
		return "", "", -1, fmt.Errorf("%v: %w", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		read()
		return stdout, stderr, -1, fmt.Errorf("%v: no exit within %v", cmd.Args, timeout)
	}
	read()
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		return stdout, stderr, ee.ExitCode(), nil
	}
	if werr != nil {
		return stdout, stderr, -1, fmt.Errorf("%v: %w", cmd.Args, werr)
	}
	return stdout, stderr, 0, nil
}

// run runs a Postfix command of this instance (outside the namespace: none of them resolves
// names) and returns its stdout; a nonzero exit is an error carrying stderr.
func (m *postfixMTA) run(stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(m.bins[name], args...)
	cmd.Stdin = stdin
	out, errOut, code, err := pfRun(pfTimeout, cmd)
	if err == nil && code != 0 {
		err = fmt.Errorf("%s %s: exit %d: %s", name, strings.Join(args, " "), code, strings.TrimSpace(errOut+out))
	}
	return out, err
}

// Postconf returns the effective value of a main.cf parameter (postconf -h).
func (m *postfixMTA) Postconf(name string) (string, error) {
	out, err := m.run(nil, "postconf", "-c", m.ConfigDir, "-h", name)
	return strings.TrimSpace(out), err
}

// ---------------------------------------------------------------------------------------------
// Processes and the namespace

// postfixProc is one process of the instance.
type postfixProc struct {
	PID  int
	Name string // argv[0]: master, pickup, qmgr, smtp, ...
}

// Processes lists the instance's processes: those whose environment holds its MAIL_CONFIG
// (`postfix -c` sets it, the master passes it on through import_environment).
func (m *postfixMTA) Processes() []postfixProc {
	want := []byte("MAIL_CONFIG=" + m.ConfigDir)
	entries, _ := os.ReadDir("/proc")
	var ps []postfixProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(b []byte) bool { return bytes.Equal(b, want) }) {
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				continue // a zombie waiting for its parent: gone already
			}
		}
		name := ""
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
			name = filepath.Base(string(bytes.SplitN(cl, []byte{0}, 2)[0]))
		}
		ps = append(ps, postfixProc{PID: pid, Name: name})
	}
	return ps
}

// CheckResolver verifies that every running process of the instance lives in a mount
// namespace other than the test's and sees an /etc/resolv.conf whose only name server is
// ResolverIP (read through /proc/PID/root, which resolves paths in that process's
// namespace). It returns the names of the processes checked.
func (m *postfixMTA) CheckResolver() ([]string, error) {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range m.Processes() {
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.PID))
		if err != nil {
			continue // exited meanwhile
		}
		if ns == self {
			return names, fmt.Errorf("postfix %s (PID %d) runs in the test's mount namespace: it would use the machine's resolver", p.Name, p.PID)
		}
		rc, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", p.PID))
		if err != nil {
			continue
		}
		var servers []string
		for _, l := range strings.Split(string(rc), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "nameserver" {
				servers = append(servers, f[1])
			}
		}
		if !slices.Equal(servers, []string{m.ResolverIP}) {
			return names, fmt.Errorf("postfix %s (PID %d) sees name servers %v, want only %s", p.Name, p.PID, servers, m.ResolverIP)
		}
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Stop runs `postfix stop` (which itself kills the process group after 5 s), waits for the
// master to go, then kills by PID whatever process of the instance is left. Idempotent;
// registered with t.Cleanup by startPostfix.
func (m *postfixMTA) Stop() {
	m.stopOnce.Do(func() {
		if len(m.Processes()) == 0 {
			return
		}
		if out, errOut, code, err := pfRun(pfTimeout, exec.Command(m.bins["postfix"], "-c", m.ConfigDir, "stop")); err != nil || code != 0 {
			m.t.Logf("postfix stop: exit %d %v\n%s%s", code, err, out, errOut)
		}
		// The master's children exit when it does; give them a moment.
		gone := func(d time.Duration) bool {
			deadline := time.Now().Add(d)
			for len(m.Processes()) > 0 {
				if time.Now().After(deadline) {
					return false
				}
				time.Sleep(50 * time.Millisecond)
			}
			return true
		}
		if gone(5 * time.Second) {
			return
		}
		for _, p := range m.Processes() {
			m.t.Logf("postfix: %s (PID %d) still running after postfix stop: killing it", p.Name, p.PID)
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		if !gone(5 * time.Second) {
			m.t.Errorf("postfix: processes survive SIGKILL: %v", m.Processes())
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Submission and the queue

// postfixMail is a message to submit.
type postfixMail struct {
	From      string   // envelope sender (sendmail -f) and From: header
	To        []string // envelope recipients and To: header
	Subject   string
	Body      string
	MessageID string   // "<id@host>" (brackets optional); generated when empty
	Headers   []string // more header lines, "Name: value"
}

// Send submits a message with a generated Message-ID and returns its queue ID.
func (m *postfixMTA) Send(from, to, subject, body string) (string, error) {
	return m.SendMail(postfixMail{From: from, To: []string{to}, Subject: subject, Body: body})
}

// SendMail submits p with the instance's sendmail (sendmail -C CONFIG_DIR -i -f FROM -- TO...)
// and returns the queue ID cleanup gave it: the ID of the new "message-id=<...>" log line
// (pickup renames the maildrop file, so sendmail itself never learns the ID).
func (m *postfixMTA) SendMail(p postfixMail) (string, error) {
	if len(p.To) == 0 {
		return "", errors.New("SendMail: no recipient")
	}
	mid := strings.TrimSuffix(strings.TrimPrefix(p.MessageID, "<"), ">")
	if mid == "" {
		mid = fmt.Sprintf("danelab.%d.%d@%s", time.Now().UnixNano(), m.seq.Add(1), m.MyHostname)
	}
	before := len(m.Events().QueueIDsByMessageID(mid))
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: <%s>\nTo: %s\nSubject: %s\nDate: %s\nMessage-ID: <%s>\n",
		p.From, "<"+strings.Join(p.To, ">, <")+">", p.Subject, time.Now().Format(time.RFC1123Z), mid)
	for _, h := range p.Headers {
		msg.WriteString(h + "\n")
	}
	msg.WriteString("\n" + p.Body)
	if !strings.HasSuffix(p.Body, "\n") {
		msg.WriteString("\n")
	}
	args := append([]string{"-C", m.ConfigDir, "-i", "-f", p.From, "--"}, p.To...)
	if _, err := m.run(strings.NewReader(msg.String()), "sendmail", args...); err != nil {
		return "", err
	}
	var qid string
	_, err := m.WaitLog(30*time.Second, "cleanup of Message-ID <"+mid+">", func(l postfixLog) bool {
		ids := l.QueueIDsByMessageID(mid)
		if len(ids) > before {
			qid = ids[before]
			return true
		}
		return false
	})
	return qid, err
}

// queuedMsg is one message of `postqueue -j` (Postfix's field names).
type queuedMsg struct {
	QueueName    string       `json:"queue_name"` // incoming, active, deferred, hold, maildrop
	QueueID      string       `json:"queue_id"`
	ArrivalTime  int64        `json:"arrival_time"`
	MessageSize  int64        `json:"message_size"`
	ForcedExpire bool         `json:"forced_expire"`
	Sender       string       `json:"sender"`
	Recipients   []queuedRcpt `json:"recipients"`
}

type queuedRcpt struct {
	Address     string `json:"address"`
	DelayReason string `json:"delay_reason"` // empty while not yet tried
}

// Queue lists the instance's queue (postqueue -c CONFIG_DIR -j: one JSON object a line). It
// works on a stopped instance too: root's postqueue then reads the queue directly (with a
// warning on stderr).
func (m *postfixMTA) Queue() ([]queuedMsg, error) {
	out, err := m.run(nil, "postqueue", "-c", m.ConfigDir, "-j")
	if err != nil {
		return nil, err
	}
	var q []queuedMsg
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var msg queuedMsg
		if err := json.Unmarshal([]byte(line), &msg); err != nil {
			return q, fmt.Errorf("postqueue -j line %q: %w", line, err)
		}
		q = append(q, msg)
	}
	return q, nil
}

// Flush asks for an immediate attempt on every deferred message (postqueue -f).
func (m *postfixMTA) Flush() error {
	_, err := m.run(nil, "postqueue", "-c", m.ConfigDir, "-f")
	return err
}

// ---------------------------------------------------------------------------------------------
// The log

// Log returns the maillog as written so far.
func (m *postfixMTA) Log() string {
	b, _ := os.ReadFile(m.LogPath)
	return string(b)
}

// Events parses the maillog as written so far.
func (m *postfixMTA) Events() postfixLog { return parsePostfixLog(m.Log()) }

// WaitLog polls the parsed log every 100 ms until cond holds, for at most timeout; the error
// names what was awaited and carries the end of the log.
func (m *postfixMTA) WaitLog(timeout time.Duration, what string, cond func(postfixLog) bool) (postfixLog, error) {
	deadline := time.Now().Add(timeout)
	for {
		l := m.Events()
		if cond(l) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return l, fmt.Errorf("postfix: no %s in the log within %v; log ends:\n%s", what, timeout, tail(m.LogPath, 3000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitDelivery waits for the first delivery event of queue ID qid and recipient rcpt whose
// status is one of statuses (any status when none is given).
func (m *postfixMTA) WaitDelivery(qid, rcpt string, timeout time.Duration, statuses ...string) (postfixDelivery, error) {
	var d postfixDelivery
	what := fmt.Sprintf("%s to=<%s> with status %v", qid, rcpt, statuses)
	_, err := m.WaitLog(timeout, what, func(l postfixLog) bool {
		var ok bool
		d, ok = l.Find(qid, rcpt, statuses...)
		return ok
	})
	return d, err
}

// postfixLine is one line of the maillog: "Mon DD HH:MM:SS host program[pid]: text", text
// being "QUEUEID: rest" for lines about a message.
type postfixLine struct {
	Time    time.Time // local time, year guessed (the log has none and whole seconds only)
	Host    string
	Program string // "postfix/smtp"
	PID     int
	QueueID string // "" for lines not about a message
	Text    string // after "QUEUEID: " when there is one
	Raw     string
}

// postfixTLS is a TLS summary line of smtp_tls_loglevel=1, e.g. "Verified TLS connection
// established to mx1.good.test[127.0.0.61]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
// (256/256 bits) ...". Trust is Postfix's word: Verified (DANE or PKIX match), Trusted (chain
// trusted, name not checked), Untrusted (no match: the DANE failure case) or Anonymous.
type postfixTLS struct {
	postfixLine
	Trust     string
	Reused    bool   // "reused" instead of "established"
	Relay     string // "mx1.good.test[127.0.0.61]:25"
	RelayHost string
	RelayAddr string // "127.0.0.61"
	Protocol  string // "TLSv1.3"
	Cipher    string
	// VerifyError is the reason of the "server certificate verification failed for RELAY:
	// REASON" line logged just before, e.g. "num=65:no matching DANE TLSA records".
	VerifyError string
}

// postfixDelivery is one per-recipient status line: "QID: to=<rcpt>, relay=host[ip]:port,
// delay=0.2, delays=a/b/c/d, dsn=4.7.5, status=deferred (reason)".
type postfixDelivery struct {
	postfixLine
	To        string // the address without brackets
	OrigTo    string
	Relay     string // "mx1.good.test[127.0.0.61]:25" or "none"
	RelayHost string // "mx1.good.test" ("none" when no host was reached)
	RelayAddr string // "127.0.0.61"
	ConnUse   int    // conn_use=N for a cached connection (0 when absent)
	Delay     time.Duration
	Delays    string // "a/b/c/d": before queue manager, in queue manager, connection setup, transmission
	DSN       string // "2.0.0", "4.7.5", ...
	Status    string // sent, deferred, bounced, expired, undeliverable, deliverable
	Reason    string // the text in parentheses
	// TLS is the TLS summary line of the same smtp process for this relay during this
	// delivery attempt (nil when the connection had no TLS or the line is missing).
	TLS *postfixTLS
}

// postfixLog is a parsed maillog.
type postfixLog struct {
	Lines      []postfixLine
	Deliveries []postfixDelivery
	TLS        []postfixTLS
}

var (
	pfLogRe = regexp.MustCompile(`^([A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) (\S+) ([^\[\s]+)\[(\d+)\]: (.*)$`)
	// Short queue IDs are hex. Long ones (enable_long_queue_ids) are the time in Postfix's
	// vowel-free base-52 alphabet (at least 10 characters, 'z' among them), a 'z', and the
	// inode in base 51 (no 'z'): "4jXVs13zC1z1SL5Q".
	pfQueueIDRe = regexp.MustCompile(`^([0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+): (.*)$`)
	pfTLSRe     = regexp.MustCompile(`^(Anonymous|Untrusted|Trusted|Verified) TLS connection (established|reused) to (\S+): (\S+) with cipher (\S+)`)
	pfVerifyRe  = regexp.MustCompile(`^server certificate verification failed for (\S+): (.*)$`)
	pfFieldRe   = regexp.MustCompile(`(\w+)=(<[^>]*>|[^,]*)(?:, |$)`)
	pfRelayRe   = regexp.MustCompile(`^([^\[]+)\[([^\]]*)\](?::\d+)?$`)
)

// parsePostfixLog parses a maillog. A delivery's TLS is found per smtp process: the TLS lines
// a process logs belong to the delivery attempt whose status lines it logs next; an attempt
// ends when the process reports another queue ID or a recipient again (a retry). A status
// line with conn_use > 1 rode a cached connection and keeps the TLS of the attempt before.
func parsePostfixLog(text string) postfixLog {
	var l postfixLog
	now := time.Now()
	type attempt struct {
		qid  string
		seen map[string]bool
		tls  map[string]*postfixTLS // by relay
	}
	pending := map[int]map[string]*postfixTLS{} // TLS lines since the last status line, by PID
	failed := map[int]map[string]string{}       // verification failures awaiting their TLS line
	current := map[int]*attempt{}
	for _, raw := range strings.Split(text, "\n") {
		if raw == "" {
			continue
		}
		line := postfixLine{Raw: raw, Text: raw}
		if m := pfLogRe.FindStringSubmatch(raw); m != nil {
			if ts, err := time.ParseInLocation("Jan _2 15:04:05", m[1], time.Local); err == nil {
				line.Time = ts.AddDate(now.Year(), 0, 0)
				if line.Time.After(now.Add(24 * time.Hour)) { // logged last December
					line.Time = line.Time.AddDate(-1, 0, 0)
				}
			}
			line.Host, line.Program, line.Text = m[2], m[3], m[5]
			line.PID, _ = strconv.Atoi(m[4])
			if q := pfQueueIDRe.FindStringSubmatch(line.Text); q != nil {
				line.QueueID, line.Text = q[1], q[2]
			}
		}
		l.Lines = append(l.Lines, line)

		if m := pfVerifyRe.FindStringSubmatch(line.Text); m != nil {
			if failed[line.PID] == nil {
				failed[line.PID] = map[string]string{}
			}
			failed[line.PID][m[1]] = m[2]
			continue
		}
		if m := pfTLSRe.FindStringSubmatch(line.Text); m != nil {
			t := postfixTLS{postfixLine: line, Trust: m[1], Reused: m[2] == "reused", Relay: m[3], Protocol: m[4], Cipher: m[5]}
			t.RelayHost, t.RelayAddr = pfSplitRelay(t.Relay)
			t.VerifyError = failed[line.PID][t.Relay]
			delete(failed[line.PID], t.Relay)
			l.TLS = append(l.TLS, t)
			if pending[line.PID] == nil {
				pending[line.PID] = map[string]*postfixTLS{}
			}
			pending[line.PID][t.Relay] = &l.TLS[len(l.TLS)-1]
			continue
		}
		if line.QueueID == "" || !strings.HasPrefix(line.Text, "to=<") {
			continue
		}
		i := strings.Index(line.Text, ", status=")
		if i < 0 {
			continue
		}
		d := postfixDelivery{postfixLine: line}
		for _, f := range pfFieldRe.FindAllStringSubmatch(line.Text[:i], -1) {
			v := strings.TrimSuffix(strings.TrimPrefix(f[2], "<"), ">")
			switch f[1] {
			case "to":
				d.To = v
			case "orig_to":
				d.OrigTo = v
			case "relay":
				d.Relay = v
			case "conn_use":
				d.ConnUse, _ = strconv.Atoi(v)
			case "delay":
				if s, err := strconv.ParseFloat(v, 64); err == nil {
					d.Delay = time.Duration(s * float64(time.Second))
				}
			case "delays":
				d.Delays = v
			case "dsn":
				d.DSN = v
			}
		}
		rest := line.Text[i+len(", status="):]
		d.Status, d.Reason, _ = strings.Cut(rest, " ")
		d.Reason = strings.TrimSuffix(strings.TrimPrefix(d.Reason, "("), ")")
		d.RelayHost, d.RelayAddr = pfSplitRelay(d.Relay)

		a := current[line.PID]
		if a == nil || a.qid != line.QueueID || a.seen[d.To] {
			next := &attempt{qid: line.QueueID, seen: map[string]bool{}, tls: map[string]*postfixTLS{}}
			if a != nil && d.ConnUse > 1 {
				next.tls = a.tls
			}
			a = next
			current[line.PID] = a
		}
		for relay, t := range pending[line.PID] {
			a.tls[relay] = t
		}
		delete(pending, line.PID)
		a.seen[d.To] = true
		d.TLS = a.tls[d.Relay]
		l.Deliveries = append(l.Deliveries, d)
	}
	return l
}

func pfSplitRelay(relay string) (host, addr string) {
	if m := pfRelayRe.FindStringSubmatch(relay); m != nil {
		return m[1], m[2]
	}
	return relay, ""
}

// Find returns the first delivery event of qid to rcpt (case-insensitive) whose status is one
// of statuses (any when none is given).
func (l postfixLog) Find(qid, rcpt string, statuses ...string) (postfixDelivery, bool) {
	for _, d := range l.Deliveries {
		if d.QueueID == qid && strings.EqualFold(d.To, rcpt) && (len(statuses) == 0 || slices.Contains(statuses, d.Status)) {
			return d, true
		}
	}
	return postfixDelivery{}, false
}

// For returns every delivery event of qid, oldest first.
func (l postfixLog) For(qid string) []postfixDelivery {
	var out []postfixDelivery
	for _, d := range l.Deliveries {
		if d.QueueID == qid {
			out = append(out, d)
		}
	}
	return out
}

// QueueIDsByMessageID returns the queue IDs cleanup logged for a Message-ID (without
// brackets), oldest first.
func (l postfixLog) QueueIDsByMessageID(mid string) []string {
	var ids []string
	for _, x := range l.Lines {
		if x.QueueID != "" && x.Program == "postfix/cleanup" && x.Text == "message-id=<"+mid+">" {
			ids = append(ids, x.QueueID)
		}
	}
	return ids
}

// Expired reports whether qmgr returned qid to its sender after maximal_queue_lifetime
// ("from=<...>, status=expired, returned to sender").
func (l postfixLog) Expired(qid string) bool {
	for _, x := range l.Lines {
		if x.QueueID == qid && strings.Contains(x.Text, "status=expired, returned to sender") {
			return true
		}
	}
	return false
}

// NDR returns the queue ID of the non-delivery notification bounce(8) made for qid ("" when
// none yet): "sender non-delivery notification: NEWID".
func (l postfixLog) NDR(qid string) string {
	for _, x := range l.Lines {
		if x.QueueID == qid {
			if id, ok := strings.CutPrefix(x.Text, "sender non-delivery notification: "); ok {
				return strings.TrimSpace(id)
			}
		}
	}
	return ""
}

// Removed reports whether qid has left the queue.
func (l postfixLog) Removed(qid string) bool {
	for _, x := range l.Lines {
		if x.QueueID == qid && x.Text == "removed" {
			return true
		}
	}
	return false
}

// Problems returns the warning, error, fatal and panic lines.
func (l postfixLog) Problems() []postfixLine {
	var out []postfixLine
	for _, x := range l.Lines {
		for _, p := range []string{"warning: ", "error: ", "fatal: ", "panic: "} {
			if strings.HasPrefix(x.Text, p) {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Delivery status notifications (RFC 3464)

// dsnReport is a parsed multipart/report; report-type=delivery-status message. Field names
// of the delivery-status part are looked up with textproto.MIMEHeader.Get (case-insensitive).
type dsnReport struct {
	Header     mail.Header
	Human      string               // the first text/plain part
	PerMessage textproto.MIMEHeader // Reporting-MTA, Arrival-Date, ...
	Recipients []textproto.MIMEHeader
	Original   string // the returned message (message/rfc822) or its headers (text/rfc822-headers)
}

// parseDSN parses a delivery status notification as received.
func parseDSN(data []byte) (*dsnReport, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("DSN Content-Type: %w", err)
	}
	if mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		return nil, fmt.Errorf("not a delivery status notification: Content-Type %s %v", mt, params)
	}
	r := &dsnReport{Header: msg.Header}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	found := false
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch pt {
		case "text/plain":
			if r.Human == "" {
				r.Human = string(body)
			}
		case "message/delivery-status", "message/global-delivery-status":
			found = true
			tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(bytes.TrimLeft(body, "\r\n"))))
			for {
				h, err := tr.ReadMIMEHeader()
				if len(h) > 0 {
					if r.PerMessage == nil {
						r.PerMessage = h
					} else {
						r.Recipients = append(r.Recipients, h)
					}
				}
				if err != nil {
					break
				}
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			r.Original = string(body)
		}
	}
	if !found {
		return nil, errors.New("DSN without a message/delivery-status part")
	}
	return r, nil
}

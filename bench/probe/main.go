// Command probe is the bench's readiness and load-time probe.
//
//	probe ready -addr 127.0.0.1:PORT -zone example.test [-dnssec] [-pid PID] [-timeout 30s]
//	    Polls the SOA of zone until the server answers NOERROR with the SOA. With -dnssec
//	    the query has DO set and the answer must carry an RRSIG (exit 3 if it does not).
//	    With -pid, gives up as soon as process PID is gone (or a zombie).
//	probe load -addr 127.0.0.1:PORT -zone example.test [-log FILE] [-timeout 300s] -- CMD ARGS...
//	    Starts CMD, polls its SOA every 2ms, and prints "load_ms=N rss_kb=N" once it answers:
//	    the time from process start until the first SOA answer, and the VmRSS of the process
//	    (/proc/PID/status) at that moment. Then stops CMD (SIGTERM, SIGKILL after 5s).
//	probe notify -addr 127.0.0.1:PORT -zone example.test [-timeout 30m]
//	    Listens on PORT (UDP and TCP) for NOTIFY (RFC 1996) for zone, acknowledges each, and
//	    prints one line per NOTIFY as it arrives: "notify_unix_ms=N serial=S" (S from the SOA
//	    in the answer section, 0 if none). Ends on SIGTERM/SIGINT or after -timeout.
//
// Only loopback addresses are accepted: the bench never talks to anything else.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "ready":
		err = ready(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "notify":
		err = notify(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		var ue unsignedError
		if errors.As(err, &ue) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: probe ready|load|notify -addr 127.0.0.1:PORT -zone ZONE [flags] [-- CMD ARGS...]")
	os.Exit(2)
}

type unsignedError struct{ zone string }

func (e unsignedError) Error() string { return "SOA answer for " + e.zone + " carries no RRSIG" }

type common struct {
	addr, zone string
	dnssec     bool
	pid        int
	timeout    time.Duration
}

func flags(name string, args []string, defTimeout time.Duration) (*flag.FlagSet, *common, *string) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	c := &common{}
	fs.StringVar(&c.addr, "addr", "", "server address, 127.0.0.x:port")
	fs.StringVar(&c.zone, "zone", "example.test", "zone whose SOA is asked for")
	fs.BoolVar(&c.dnssec, "dnssec", false, "set DO and require an RRSIG in the answer")
	fs.DurationVar(&c.timeout, "timeout", defTimeout, "give up after this long")
	fs.IntVar(&c.pid, "pid", 0, "ready: give up when this process has exited")
	logf := fs.String("log", "", "load: file for the command's stdout and stderr")
	fs.Parse(args)
	return fs, c, logf
}

func (c *common) check() error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address", host)
	}
	return nil
}

// ask sends one SOA query. It reports whether the server answered NOERROR with the SOA,
// and whether the answer carried an RRSIG.
func (c *common) ask(cl *dns.Client) (answered, signed bool) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(c.zone), dns.TypeSOA)
	m.SetEdns0(1232, c.dnssec)
	r, _, err := cl.Exchange(m, c.addr)
	if err != nil || r.Rcode != dns.RcodeSuccess {
		return false, false
	}
	for _, rr := range r.Answer {
		switch rr.Header().Rrtype {
		case dns.TypeSOA:
			answered = true
		case dns.TypeRRSIG:
			signed = true
		}
	}
	return answered, signed
}

func ready(args []string) error {
	_, c, _ := flags("ready", args, 30*time.Second)
	if err := c.check(); err != nil {
		return err
	}
	cl := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(c.timeout)
	for time.Now().Before(deadline) {
		if c.pid > 0 && !alive(c.pid) {
			return fmt.Errorf("process %d has exited", c.pid)
		}
		if ok, signed := c.ask(cl); ok {
			if c.dnssec && !signed {
				return unsignedError{c.zone}
			}
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no SOA answer from %s within %s", c.addr, c.timeout)
}

func load(args []string) error {
	fs, c, logf := flags("load", args, 300*time.Second)
	if err := c.check(); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return errors.New("load: no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if *logf != "" {
		f, err := os.Create(*logf)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer stop(cmd, exited)
	// If the bench is interrupted, take the server down with us.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		stop(cmd, exited)
		os.Exit(1)
	}()

	cl := &dns.Client{Net: "udp", Timeout: 100 * time.Millisecond}
	for time.Since(start) < c.timeout {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before answering: %v", argv[0], waitErr)
		default:
		}
		if ok, _ := c.ask(cl); ok {
			elapsed := time.Since(start)
			rss, err := vmRSS(cmd.Process.Pid)
			if err != nil {
				return err
			}
			fmt.Printf("load_ms=%d rss_kb=%d\n", elapsed.Milliseconds(), rss)
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("no SOA answer from %s within %s", c.addr, c.timeout)
}

func stop(cmd *exec.Cmd, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// alive reports whether process pid exists and is not a zombie (a child that exited but
// that its parent, the bench script, has not reaped yet).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// vmRSS reads VmRSS (in kB) from /proc/PID/status.
func vmRSS(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
}

// notify answers NOTIFY for c.zone on c.addr and prints when each arrived (see the package
// comment). The bench starts it before the server it is the NOTIFY target of.
func notify(args []string) error {
	_, c, _ := flags("notify", args, 30*time.Minute)
	if err := c.check(); err != nil {
		return err
	}
	zone := dns.CanonicalName(c.zone)
	var mu sync.Mutex // one line at a time on stdout
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		at := time.Now()
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Opcode != dns.OpcodeNotify || len(r.Question) != 1 ||
			dns.CanonicalName(r.Question[0].Name) != zone {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		m.Authoritative = true
		w.WriteMsg(m)
		var serial uint32
		for _, rr := range r.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				serial = soa.Serial
			}
		}
		mu.Lock()
		fmt.Printf("notify_unix_ms=%d serial=%d\n", at.UnixMilli(), serial)
		mu.Unlock()
	})
	errs := make(chan error, 2)
	var servers []*dns.Server
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		srv := &dns.Server{Addr: c.addr, Net: network, Handler: h, NotifyStartedFunc: func() { close(started) }}
		servers = append(servers, srv)
		go func() { errs <- srv.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errs:
			return err
		}
	}
	defer func() {
		for _, srv := range servers {
			srv.Shutdown()
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	select {
	case <-sigs:
		return nil
	case err := <-errs:
		return err
	case <-time.After(c.timeout):
		return nil
	}
}

// Package runner runs a scenario in process: its world (harness/world) served by a lab of its
// own, the harness's validating resolver and DANE sender, and a retry queue on a virtual
// clock with the scenario's profile, the timeline synced before every attempt. The result is
// compared with the scenario's expectations (scenario.Compare).
package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/harness/sender"
	"github.com/danelab/danelab/harness/world"
	"github.com/miekg/dns"
)

// Horizon is how far in virtual time after its submission a message is followed at most: past
// the longest lifetime of every profile (Postfix, 5 days).
const Horizon = 6 * 24 * time.Hour

// Options tune Run.
type Options struct {
	// Log, if set, receives the transcript: the world built, faults added and removed, every
	// attempt with its details.
	Log io.Writer
	// AttemptTimeout is the SMTP timeout of the sender (default 3 s).
	AttemptTimeout time.Duration
	// DNSTimeout bounds each resolver query (default 2 s).
	DNSTimeout time.Duration
}

// subnet hands each run its own 127.M.N.0/24 (M from 120: apart from the sender tests' 77).
var subnet atomic.Int32

// labStart serialises lab starts (caddy's start path keeps process-wide state).
var labStart sync.Mutex

// Run builds the scenario's world, runs its message through the queue on a virtual clock and
// compares. It never panics on a broken world: the Result then has the verdict error.
func Run(ctx context.Context, s *scenario.Scenario, opt Options) scenario.Result {
	start := time.Now()
	res := scenario.Result{Name: s.Name, File: s.File, Profile: s.Profile, Description: s.Description,
		Expected: s.Summary()}
	log := world.PrefixLog(opt.Log, "["+s.Name+"] ")
	logf := func(format string, args ...any) {
		if log != nil {
			fmt.Fprintf(log, format+"\n", args...)
		}
	}
	sc, err := build(s, opt, log, logf)
	if sc != nil {
		defer sc.stop()
	}
	if err == nil {
		err = sc.run(ctx, s, &res)
	}
	if err != nil {
		res.Verdict, res.Err = scenario.Error, err.Error()
		res.Observed = "error: " + err.Error()
		res.Wall = time.Since(start)
		return res
	}
	res.Observed = scenario.SummarizeObserved(res)
	res.Diffs = scenario.Compare(s, res)
	res.Verdict = scenario.Pass
	if len(res.Diffs) > 0 {
		res.Verdict = scenario.Fail
	}
	for _, d := range res.Diffs {
		logf("MISMATCH %s", d)
	}
	res.Wall = time.Since(start)
	return res
}

// scene is a running scenario: its world, lab, sender and clock.
type scene struct {
	world   *world.World
	lab     *lab.Lab
	snd     *sender.Sender
	mailbox *receiver.Receiver
	clock   *queue.VirtualClock
	start   time.Time // scenario time 0
	logf    func(string, ...any)
	trace   bool // a transcript is written: add the lab's side of every attempt
}

func (sc *scene) stop() {
	sc.world.Stop() // nil-safe
	if sc.mailbox != nil {
		sc.mailbox.Stop()
	}
	if sc.lab != nil {
		sc.lab.Stop()
	}
}

// Plan is where a run's world lives: names as the scenario gives them, its hosts on net+11,
// +12, ..., the receivers on a port that is also free on the mailbox's address.
func Plan(net, mailboxIP string, log io.Writer) world.Plan {
	return world.Plan{Net: net, Reserve: []string{mailboxIP}, Log: log}
}

// build starts the world on a subnet of its own, the sender's mailbox, the lab, the resolver
// and the sender.
func build(s *scenario.Scenario, opt Options, log io.Writer, logf func(string, ...any)) (*scene, error) {
	start := time.Now().Truncate(time.Second)
	sc := &scene{clock: queue.NewVirtualClock(start), start: start, trace: log != nil, logf: logf}
	n := subnet.Add(1)
	netp := fmt.Sprintf("127.%d.%d.", 120+n/250, 1+n%250)
	mboxIP := netp + "250"
	w, err := world.Build(s, Plan(netp, mboxIP, log))
	if err != nil {
		return sc, err
	}
	sc.world = w
	mb, mdom, err := world.Mailbox(mboxIP, w.Port, 10*time.Second)
	if err != nil {
		return sc, err
	}
	sc.mailbox = mb
	for _, r := range mdom.Records {
		sc.logf("zone %s: %s", mdom.Name, r)
	}
	labStart.Lock()
	l, err := lab.Start(lab.Config{Domains: append(w.Domains(), mdom)})
	labStart.Unlock()
	if err != nil {
		return sc, fmt.Errorf("lab: %v", err)
	}
	sc.lab = l
	_, lport, _ := net.SplitHostPort(l.Addr)
	var dnsPort int
	fmt.Sscan(lport, &dnsPort)
	dto := time.Duration(s.Sender.DNSTimeout)
	if dto == 0 {
		dto = opt.DNSTimeout
	}
	if dto == 0 {
		dto = 2 * time.Second
	}
	// Signatures are made in real time (the lab signs in real time). Without a cache they are
	// judged in real time too and every attempt asks the lab again; with one, the cache and the
	// signatures follow the virtual clock (scenarios span hours, signatures last days).
	rcfg := resolver.Config{TrustAnchors: l.Anchor, Roots: []string{l.Addr}, Port: dnsPort, Timeout: dto}
	if s.Sender.Cache {
		rcfg.Cache, rcfg.Now = true, sc.clock.Now
	}
	var res resolver.Interface = resolver.New(rcfg)
	scfg := sender.Config{Port: w.Port}
	if log != nil {
		res = tracer{next: res, logf: sc.logf, clock: sc.clock, start: start}
		scfg.Transcript = func(line string) { sc.logf("    smtp %s", line) }
	}
	scfg.Resolver = res
	scfg.Timeout = opt.AttemptTimeout
	if scfg.Timeout == 0 {
		scfg.Timeout = 3 * time.Second
	}
	sc.snd = sender.New(scfg)
	return sc, nil
}

// tracer writes every resolution and its verdict to the transcript.
type tracer struct {
	next  resolver.Interface
	logf  func(string, ...any)
	clock queue.Clock
	start time.Time
}

func (t tracer) Resolve(ctx context.Context, name string, qtype uint16) (*resolver.Result, error) {
	r, err := t.next.Resolve(ctx, name, qtype)
	at := scenario.FormatAge(t.clock.Now().Sub(t.start))
	switch {
	case err != nil:
		t.logf("    dns  +%s %s %s: error %v", at, dns.TypeToString[qtype], name, err)
	default:
		rcode := "?"
		n := 0
		if r.Msg != nil {
			rcode, n = dns.RcodeToString[r.Msg.Rcode], len(r.Msg.Answer)
		}
		line := fmt.Sprintf("    dns  +%s %s %s: %s, %d answer record(s), %s", at, dns.TypeToString[qtype], name, rcode, n, r.Verdict)
		if r.Reason != "" {
			line += " (" + r.Reason + ")"
		}
		if r.EDE != 0 {
			line += fmt.Sprintf(" EDE %d", r.EDE)
		}
		t.logf("%s", line)
	}
	return r, err
}

// timeline brings the world to the virtual clock's time before each attempt, then makes it.
type timeline struct {
	sc   *scene
	next queue.Attempter
	err  error
}

func (tl *timeline) Attempt(ctx context.Context, msg *queue.Message) queue.Outcome {
	sc := tl.sc
	t := sc.clock.Now().Sub(sc.start)
	if err := sc.world.Sync(t, sc.lab); err != nil {
		tl.err = err
		return queue.Outcome{Result: queue.ResultDNSFailure, Detail: "harness: " + err.Error()}
	}
	at := scenario.FormatAge(t)
	sc.logf("+%s attempt for %s", at, strings.Join(msg.To, ", "))
	real := time.Now()
	o := tl.next.Attempt(ctx, msg)
	sc.logf("+%s attempt done: delivered=%v permanent=%v result=%q tls=%q host=%q matched=%q %s detail=%q",
		at, o.Delivered, o.Permanent, o.Result, o.TLS, strings.TrimSuffix(o.Host, "."), o.Matched, o.TLSInfo, o.Detail)
	if sc.trace {
		if h, err := sc.lab.History(real); err == nil {
			for _, q := range h {
				f := ""
				if q.Mode != "" {
					f = "  fault " + q.Mode
				}
				sc.logf("    lab  %s %s %s -> %s%s", q.Proto, q.Type, q.Name, q.Rcode, f)
			}
		}
	}
	return o
}

func (sc *scene) observe(n int, t time.Duration, o queue.Outcome, code string) scenario.Observed {
	ob := scenario.Observed{N: n, Age: t, At: scenario.FormatAge(t), Status: code, TLS: o.TLS, Result: o.Result,
		Host: o.Host, Detail: o.Detail, Matched: o.Matched, TLSInfo: o.TLSInfo}
	if f := strings.Fields(o.Matched); len(f) == 4 {
		ob.MatchedAs = sc.world.Label(f[3])
	}
	return ob
}

// deliverDSN returns the NDR to the sender's mailbox, through the sender (over DANE).
func (sc *scene) deliverDSN(ctx context.Context, d *queue.DSN) error {
	at := strings.LastIndexByte(d.To, '@')
	if at < 0 {
		return fmt.Errorf("DSN recipient %q has no domain", d.To)
	}
	o := sc.snd.Attempt(ctx, &queue.Message{From: d.From, To: []string{d.To}, Domain: d.To[at+1:], Data: d.Data})
	if !o.Delivered {
		return fmt.Errorf("the NDR was not delivered to %s: %s %s", d.To, o.Result, o.Detail)
	}
	return nil
}

func (sc *scene) run(ctx context.Context, s *scenario.Scenario, res *scenario.Result) error {
	prof, err := queue.ProfileByName(s.Profile)
	if err != nil {
		return err
	}
	tl := &timeline{sc: sc, next: sc.snd}
	d := strings.TrimSuffix(sc.world.Domain, ".")
	message := func(id string) *queue.Message {
		return &queue.Message{From: scenario.MailboxSender, To: []string{"bob@" + d}, Domain: d,
			Data: []byte("From: " + scenario.MailboxSender + "\r\nTo: bob@" + d + "\r\nSubject: danelab " + s.Name +
				"\r\nMessage-ID: <" + id + "@" + scenario.MailboxDomain + ">\r\n\r\nhello\r\n")}
	}
	if s.Sender.Warmup {
		o := tl.Attempt(ctx, message(s.Name+".warmup"))
		if tl.err != nil {
			return tl.err
		}
		code := "2.0.0"
		if !o.Delivered {
			code = prof.Status(o).Code
		}
		w := sc.observe(0, 0, o, code)
		res.Warmup = &w
	}
	var submit time.Duration
	if s.Submit != nil {
		submit = time.Duration(*s.Submit)
	}
	sc.clock.Set(sc.start.Add(submit))
	q, err := queue.New(queue.Config{Clock: sc.clock, Profile: prof, Attempter: tl, Hostname: "danelab.invalid",
		Sink: queue.DSNSinkFunc(sc.deliverDSN)})
	if err != nil {
		return err
	}
	msg := message(s.Name)
	msg.Submitted = sc.start.Add(submit)
	id, err := q.Submit(msg)
	if err != nil {
		return err
	}
	if err := q.Run(ctx, msg.Submitted.Add(Horizon)); err != nil {
		return err
	}
	if tl.err != nil {
		return tl.err
	}
	e, _ := q.Entry(id)
	for _, r := range e.Attempts {
		res.Attempts = append(res.Attempts, sc.observe(r.N, submit+r.Age, r.Outcome, r.Status.Code))
	}
	switch e.State {
	case queue.Delivered:
		res.FinalState = scenario.StateDelivered
	case queue.Expired, queue.Failed:
		res.FinalState, res.FinalCode = scenario.StateNDR, e.Final.Code
		res.NDR = sc.ndr(e)
	default:
		res.FinalState = e.State.String()
	}
	if !e.Done.IsZero() {
		res.FinalAge = e.Done.Sub(sc.start)
	}
	sc.logf("final: %s %s at +%s after %d attempts", res.FinalState, res.FinalCode, scenario.FormatAge(res.FinalAge), len(e.Attempts))
	if res.NDR != nil {
		sc.logf("NDR at the sender's mailbox: delivered=%v status=%s action=%s tls=%v %s", res.NDR.Delivered, res.NDR.Status,
			res.NDR.Action, res.NDR.TLS, res.NDR.Err)
	}
	return nil
}

// ndr reads the NDR the sender's mailbox received.
func (sc *scene) ndr(e queue.Entry) *scenario.NDR {
	n := &scenario.NDR{}
	if e.DSNErr != nil {
		n.Err = e.DSNErr.Error()
	}
	for _, d := range sc.mailbox.Deliveries() {
		f := queue.ReadDSN(d.Data)
		n.Delivered, n.TLS, n.Status, n.Action = true, d.TLS, f.Status, f.Action
	}
	return n
}

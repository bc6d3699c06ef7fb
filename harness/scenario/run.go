package scenario

import (
	"context"
	"crypto/x509"
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
	"github.com/danelab/danelab/harness/sender"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// Horizon is how far in virtual time a scenario runs at most: past the longest lifetime of
// every profile (Postfix, 5 days).
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

// Observed is one attempt as it happened.
type Observed struct {
	N      int           `json:"n"`
	Age    time.Duration `json:"age_ns"`
	At     string        `json:"at"` // FormatAge(Age)
	Status string        `json:"status"`
	TLS    string        `json:"tls,omitempty"`
	Result string        `json:"result,omitempty"`
	Host   string        `json:"host,omitempty"`
	Detail string        `json:"detail,omitempty"`
	// Matched is the TLSA record that authenticated the server ("3 1 1 <hex>"); MatchedAs
	// names it as scenarios do ("3 1 1 current", "3 1 1 next") when it was computed.
	Matched   string `json:"matched,omitempty"`
	MatchedAs string `json:"matched_as,omitempty"`
	TLSInfo   string `json:"tls_info,omitempty"` // "TLS1.3 TLS_AES_128_GCM_SHA256"
}

// Label is the status, "delivered" for 2.0.0.
func (o Observed) Label() string {
	if o.Status == "2.0.0" {
		return "delivered"
	}
	return o.Status
}

// Verdicts.
const (
	Pass  = "pass"
	Fail  = "fail"  // ran, but not as expected
	Error = "error" // could not run
)

// Result is the run of one scenario.
type Result struct {
	Name        string        `json:"name"`
	File        string        `json:"file"`
	Profile     string        `json:"profile"`
	Description string        `json:"description,omitempty"`
	Verdict     string        `json:"verdict"`
	Expected    string        `json:"expected"` // one-line summary
	Observed    string        `json:"observed"` // one-line summary
	Diffs       []string      `json:"diffs,omitempty"`
	Err         string        `json:"error,omitempty"`
	Attempts    []Observed    `json:"attempts"`
	FinalState  string        `json:"final_state,omitempty"` // delivered, ndr, queued
	FinalCode   string        `json:"final_code,omitempty"`
	FinalAge    time.Duration `json:"final_age_ns,omitempty"`
	// Warmup is the warm-up message's delivery (Sender.Warmup).
	Warmup *Observed `json:"warmup,omitempty"`
	// NDR is what reached the sender's mailbox when the message was returned.
	NDR  *NDR          `json:"ndr,omitempty"`
	Wall time.Duration `json:"wall_ns"`
}

// NDR is the non-delivery report as the sender's mailbox received it.
type NDR struct {
	Delivered bool   `json:"delivered"`
	Status    string `json:"status,omitempty"` // the Status: field of the delivery-status part
	Action    string `json:"action,omitempty"`
	TLS       bool   `json:"tls"` // the mailbox received it over TLS
	Err       string `json:"error,omitempty"`
}

// subnet hands each scene its own 127.M.N.0/24 (M from 120: apart from the sender tests' 77).
var subnet atomic.Int32

// labStart serialises lab starts (caddy's start path keeps process-wide state).
var labStart sync.Mutex

// Run builds the scenario's world, runs its message through the queue on a virtual clock and
// compares. It never panics on a broken world: the Result then has the verdict error.
func Run(ctx context.Context, s *Scenario, opt Options) Result {
	start := time.Now()
	res := Result{Name: s.Name, File: s.File, Profile: s.Profile, Description: s.Description,
		Expected: s.Summary()}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, "["+s.Name+"] "+format+"\n", args...)
		}
	}
	sc, err := build(s, opt, logf)
	if sc != nil {
		defer sc.stop()
	}
	if err != nil {
		res.Verdict, res.Err = Error, err.Error()
		res.Observed = "error: " + err.Error()
		res.Wall = time.Since(start)
		return res
	}
	if err := sc.run(ctx, s, &res, logf); err != nil {
		res.Verdict, res.Err = Error, err.Error()
		res.Observed = "error: " + err.Error()
		res.Wall = time.Since(start)
		return res
	}
	res.Observed = summarizeObserved(res)
	res.Diffs = Compare(s, res)
	res.Verdict = Pass
	if len(res.Diffs) > 0 {
		res.Verdict = Fail
	}
	for _, d := range res.Diffs {
		logf("MISMATCH %s", d)
	}
	res.Wall = time.Since(start)
	return res
}

// scene is a running world.
type scene struct {
	domain  string // FQDN
	lab     *lab.Lab
	snd     *sender.Sender
	recv    []*receiver.Receiver
	mailbox *receiver.Receiver
	clock   *queue.VirtualClock
	start   time.Time         // scenario time 0
	hosts   []*hostRun        // per dns.mx entry
	labels  map[string]string // association data -> "U S M current|next"
	logf    func(string, ...any)
	trace   bool // a transcript is written: add the lab's side of every attempt
}

// hostRun is an MX host while the scenario runs: its receiver and its TLSA records.
type hostRun struct {
	h     Host
	r     *receiver.Receiver
	owner string // TLSA owner, FQDN
	ttl   uint32
	next  *receiver.Identity // the renewal's certificate, made up front
	done  bool               // renewed
}

func (sc *scene) stop() {
	for _, r := range sc.recv {
		r.Stop()
	}
	if sc.lab != nil {
		sc.lab.Stop()
	}
}

func fqdn(label, zone string) string {
	if label == "@" || label == "" {
		return zone
	}
	return label + "." + zone
}

// TLSARecords are the TLSA records of host h at owner in zone file syntax: the computed
// entries from cur (for usage 3 also from next, when set: a staged renewal), the others as
// the scenario gives them ("wrong" ones made up).
func TLSARecords(h Host, owner string, cur, next *receiver.Identity, ca *receiver.CA) ([]string, error) {
	var out []string
	add := func(p tlsa.Param, data string) {
		ttl := ""
		if h.TLSATTL > 0 {
			ttl = fmt.Sprint(h.TLSATTL, " ")
		}
		out = append(out, fmt.Sprintf("%s %sTLSA %d %d %d %s", owner, ttl, p.Usage, p.Selector, p.Matching, data))
	}
	for _, t := range h.TLSA {
		p, data, err := ParseTLSA(t)
		if err != nil {
			return nil, err
		}
		switch data {
		case "":
			data, err = OwnData(cur, ca, p)
			if err != nil {
				return nil, err
			}
			if next != nil && p.Usage == 3 {
				nd, err := OwnData(next, ca, p)
				if err != nil {
					return nil, err
				}
				add(p, nd)
			}
		case "wrong":
			if data, err = OtherData(p); err != nil {
				return nil, err
			}
		}
		add(p, data)
	}
	return out, nil
}

// build starts the receivers, the lab with their records, the resolver and the sender.
func build(s *Scenario, opt Options, logf func(string, ...any)) (*scene, error) {
	start := time.Now().Truncate(time.Second)
	sc := &scene{domain: dns.Fqdn(s.DNS.Domain), clock: queue.NewVirtualClock(start), start: start,
		labels: map[string]string{}, logf: logf, trace: opt.Log != nil}
	n := subnet.Add(1)
	netp := fmt.Sprintf("127.%d.%d.", 120+n/250, 1+n%250)
	ips := make([]string, len(s.DNS.MX))
	for i := range s.DNS.MX {
		ips[i] = fmt.Sprintf("%s%d", netp, 11+i)
	}
	mboxIP := netp + "250"
	port, err := receiver.FreePort(append(ips, mboxIP))
	if err != nil {
		return sc, err
	}
	records := map[string][]string{}
	zoneOf := func(h Host) string {
		if h.Zone != "" {
			return dns.Fqdn(h.Zone)
		}
		return sc.domain
	}
	var mx []string
	for i, h := range s.DNS.MX {
		zone := zoneOf(h)
		name := fqdn(h.Host, zone)
		records[zone] = append(records[zone], fmt.Sprintf("%s A %s", name, ips[i]))
		if !h.NoMX {
			pref := h.Preference
			if pref == 0 {
				pref = 10 * (i + 1)
			}
			mx = append(mx, fmt.Sprintf("@ MX %d %s", pref, name))
		}
		hr := &hostRun{h: h, owner: "_25._tcp." + name, ttl: h.TLSATTL}
		if h.TLSAOwner != "" {
			hr.owner = h.TLSAOwner
			if !strings.HasSuffix(hr.owner, ".") {
				hr.owner = fqdn(hr.owner, zone)
			}
		}
		sc.hosts = append(sc.hosts, hr)
		var cur *receiver.Identity
		var ca *receiver.CA
		if !h.NoReceiver {
			hr.r, err = receiver.Start(receiver.Config{
				Addr: net.JoinHostPort(ips[i], fmt.Sprint(port)), Hostname: strings.TrimSuffix(name, "."),
				RecipientDomain: s.DNS.Domain, UnrelatedName: "unrelated.invalid",
				Personality: receiver.Personality(h.Personality), Timeout: 10 * time.Second,
			})
			if err != nil {
				return sc, fmt.Errorf("dns.mx[%d]: %v", i, err)
			}
			sc.recv = append(sc.recv, hr.r)
			cur, ca = hr.r.Identity(), hr.r.CA()
			logf("receiver %s (%s) on %s:%d", strings.TrimSuffix(name, "."), h.Personality, ips[i], port)
			if rn := h.Renew; rn != nil {
				key := cur.Key
				if rn.Key == KeyNew {
					if key, err = receiver.NewKey(); err != nil {
						return sc, err
					}
				}
				if hr.next, err = hr.r.Renewed(key); err != nil {
					return sc, fmt.Errorf("dns.mx[%d].renew: %v", i, err)
				}
			}
			for _, t := range h.TLSA {
				if p, data, err := ParseTLSA(t); err == nil && data == "" {
					cd, err := OwnData(cur, ca, p)
					if err != nil {
						return sc, fmt.Errorf("dns.mx[%d]: %v", i, err)
					}
					sc.labels[cd] = fmt.Sprintf("%d %d %d current", p.Usage, p.Selector, p.Matching)
					if hr.next != nil {
						nd, err := OwnData(hr.next, ca, p)
						if err != nil {
							return sc, fmt.Errorf("dns.mx[%d]: %v", i, err)
						}
						if nd != cd {
							sc.labels[nd] = fmt.Sprintf("%d %d %d next", p.Usage, p.Selector, p.Matching)
						}
					}
				}
			}
		}
		var staged *receiver.Identity
		if h.Renew != nil && h.Renew.Staged {
			staged = hr.next
		}
		trs, err := TLSARecords(hr.h, hr.owner, cur, staged, ca)
		if err != nil {
			return sc, fmt.Errorf("dns.mx[%d].tlsa: %v", i, err)
		}
		records[zone] = append(records[zone], trs...)
	}
	if s.DNS.NullMX {
		records[sc.domain] = append(records[sc.domain], "@ MX 0 .")
	} else {
		records[sc.domain] = append(records[sc.domain], mx...)
	}
	records[sc.domain] = append(records[sc.domain], s.DNS.Records...)
	domains := []lab.Domain{{Name: sc.domain, Unsigned: s.DNS.Unsigned, Records: records[sc.domain]}}
	for _, z := range s.DNS.Zones {
		zn := dns.Fqdn(z.Name)
		domains = append(domains, lab.Domain{Name: zn, Unsigned: z.Unsigned, Records: append(append([]string(nil), z.Records...), records[zn]...)})
	}
	// The sender's own domain: its mailbox (DANE, 3 1 1) receives the NDRs.
	sc.mailbox, err = receiver.Start(receiver.Config{Addr: net.JoinHostPort(mboxIP, fmt.Sprint(port)),
		Hostname: "mbox." + MailboxDomain, Personality: receiver.SelfSigned, Timeout: 10 * time.Second})
	if err != nil {
		return sc, fmt.Errorf("the sender's mailbox: %v", err)
	}
	sc.recv = append(sc.recv, sc.mailbox)
	mboxTLSA, err := tlsa.Data(sc.mailbox.Identity().Leaf, 1, 1)
	if err != nil {
		return sc, err
	}
	domains = append(domains, lab.Domain{Name: MailboxDomain + ".", Records: []string{"@ MX 10 mbox", "mbox A " + mboxIP,
		"_25._tcp.mbox TLSA 3 1 1 " + mboxTLSA}})
	for _, d := range domains {
		for _, r := range d.Records {
			logf("zone %s: %s", d.Name, r)
		}
	}
	labStart.Lock()
	l, err := lab.Start(lab.Config{Domains: domains})
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
	scfg := sender.Config{Port: port}
	if opt.Log != nil {
		res = tracer{next: res, logf: logf, clock: sc.clock, start: start}
		scfg.Transcript = func(line string) { logf("    smtp %s", line) }
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
	at := FormatAge(t.clock.Now().Sub(t.start))
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

// OwnData is the association data of a receiver's certificate: the leaf for usage 3, the
// issuing CA for usage 2.
func OwnData(id *receiver.Identity, ca *receiver.CA, p tlsa.Param) (string, error) {
	var c *x509.Certificate
	switch p.Usage {
	case 2:
		if ca == nil {
			return "", fmt.Errorf("usage 2 needs a CA-issued personality (ca-chain, ...), not a self-signed certificate")
		}
		c = ca.Cert
	default:
		c = id.Leaf
	}
	return tlsa.Data(c, p.Selector, p.Matching)
}

// OtherData is association data of a certificate unrelated to everything served.
func OtherData(p tlsa.Param) (string, error) {
	var c *x509.Certificate
	if p.Usage == 2 {
		ca, err := receiver.NewCA("some other CA")
		if err != nil {
			return "", err
		}
		c = ca.Cert
	} else {
		id, err := receiver.NewSelfSigned([]string{"other.invalid"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			return "", err
		}
		c = id.Leaf
	}
	return tlsa.Data(c, p.Selector, p.Matching)
}

// events puts the scenario's faults in place or takes them away, and deploys certificate
// renewals, before each attempt according to the virtual clock; then it makes the attempt.
type events struct {
	sc     *scene
	next   queue.Attempter
	faults []Fault
	ids    []string // lab fault id while in place
	err    error
}

// sync brings the world to scenario time t.
func (ev *events) sync(t time.Duration) error {
	sc := ev.sc
	for i, ft := range ev.faults {
		on := ft.Active(t)
		switch {
		case on && ev.ids[i] == "":
			id, err := sc.lab.AddFault(ft.Spec())
			if err != nil {
				return fmt.Errorf("faults[%d]: %v", i, err)
			}
			ev.ids[i] = id
			sc.logf("+%s fault %d on: %s %s %s", FormatAge(t), i, ft.Mode, ft.Name, ft.Type)
		case !on && ev.ids[i] != "":
			if err := sc.lab.RemoveFault(ev.ids[i]); err != nil {
				return fmt.Errorf("faults[%d]: %v", i, err)
			}
			ev.ids[i] = ""
			sc.logf("+%s fault %d healed: %s %s %s", FormatAge(t), i, ft.Mode, ft.Name, ft.Type)
		}
	}
	for i, hr := range sc.hosts {
		rn := hr.h.Renew
		if rn == nil || hr.done || t < time.Duration(*rn.At) {
			continue
		}
		hr.done = true
		old := hr.r.Identity()
		hr.r.SetIdentity(hr.next)
		sc.logf("+%s %s renewed its certificate (%s key): serial %s -> %s (in place before the attempt at +%s)",
			rn.At, hr.r.Config().Hostname, rn.Key, old.Leaf.SerialNumber, hr.next.Leaf.SerialNumber, FormatAge(t))
		if rn.Staged || rn.Publish == PublishNever || !HasComputed(hr.h.TLSA, 3) && !HasComputed(hr.h.TLSA, 2) {
			continue
		}
		recs, err := TLSARecords(hr.h, hr.owner, hr.next, nil, hr.r.CA())
		if err != nil {
			return fmt.Errorf("dns.mx[%d].renew: %v", i, err)
		}
		if err := sc.lab.ReplaceRecords(recs...); err != nil {
			return fmt.Errorf("dns.mx[%d].renew: publishing %v: %v", i, recs, err)
		}
		for _, r := range recs {
			sc.logf("+%s the zone follows: %s", rn.At, r)
		}
	}
	return nil
}

func (ev *events) Attempt(ctx context.Context, msg *queue.Message) queue.Outcome {
	sc := ev.sc
	t := sc.clock.Now().Sub(sc.start)
	if err := ev.sync(t); err != nil {
		ev.err = err
		return queue.Outcome{Result: queue.ResultDNSFailure, Detail: "harness: " + err.Error()}
	}
	sc.logf("+%s attempt for %s", FormatAge(t), strings.Join(msg.To, ", "))
	real := time.Now()
	o := ev.next.Attempt(ctx, msg)
	sc.logf("+%s attempt done: delivered=%v permanent=%v result=%q tls=%q host=%q matched=%q %s detail=%q",
		FormatAge(t), o.Delivered, o.Permanent, o.Result, o.TLS, strings.TrimSuffix(o.Host, "."), o.Matched, o.TLSInfo, o.Detail)
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

func (sc *scene) observe(n int, t time.Duration, o queue.Outcome, code string) Observed {
	ob := Observed{N: n, Age: t, At: FormatAge(t), Status: code, TLS: o.TLS, Result: o.Result,
		Host: o.Host, Detail: o.Detail, Matched: o.Matched, TLSInfo: o.TLSInfo}
	if f := strings.Fields(o.Matched); len(f) == 4 {
		ob.MatchedAs = sc.labels[strings.ToLower(f[3])]
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

func (sc *scene) run(ctx context.Context, s *Scenario, res *Result, logf func(string, ...any)) error {
	prof, err := queue.ProfileByName(s.Profile)
	if err != nil {
		return err
	}
	ev := &events{sc: sc, next: sc.snd, faults: s.Faults, ids: make([]string, len(s.Faults))}
	d := strings.TrimSuffix(sc.domain, ".")
	message := func(id string) *queue.Message {
		return &queue.Message{From: MailboxSender, To: []string{"bob@" + d}, Domain: d,
			Data: []byte("From: " + MailboxSender + "\r\nTo: bob@" + d + "\r\nSubject: danelab " + s.Name +
				"\r\nMessage-ID: <" + id + "@" + MailboxDomain + ">\r\n\r\nhello\r\n")}
	}
	if s.Sender.Warmup {
		o := ev.Attempt(ctx, message(s.Name+".warmup"))
		if ev.err != nil {
			return ev.err
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
	q, err := queue.New(queue.Config{Clock: sc.clock, Profile: prof, Attempter: ev, Hostname: "danelab.invalid",
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
	if err := q.Run(ctx, sc.start.Add(Horizon)); err != nil {
		return err
	}
	if ev.err != nil {
		return ev.err
	}
	e, _ := q.Entry(id)
	for _, r := range e.Attempts {
		res.Attempts = append(res.Attempts, sc.observe(r.N, submit+r.Age, r.Outcome, r.Status.Code))
	}
	switch e.State {
	case queue.Delivered:
		res.FinalState = StateDelivered
	case queue.Expired, queue.Failed:
		res.FinalState, res.FinalCode = StateNDR, e.Final.Code
		res.NDR = sc.ndr(e)
	default:
		res.FinalState = e.State.String()
	}
	if !e.Done.IsZero() {
		res.FinalAge = e.Done.Sub(sc.start)
	}
	logf("final: %s %s at +%s after %d attempts", res.FinalState, res.FinalCode, FormatAge(res.FinalAge), len(e.Attempts))
	if res.NDR != nil {
		logf("NDR at the sender's mailbox: delivered=%v status=%s action=%s tls=%v %s", res.NDR.Delivered, res.NDR.Status,
			res.NDR.Action, res.NDR.TLS, res.NDR.Err)
	}
	return nil
}

// ndr reads the NDR the sender's mailbox received.
func (sc *scene) ndr(e queue.Entry) *NDR {
	n := &NDR{}
	if e.DSNErr != nil {
		n.Err = e.DSNErr.Error()
	}
	for _, d := range sc.mailbox.Deliveries() {
		n.Delivered, n.TLS = true, d.TLS
		for _, line := range strings.Split(string(d.Data), "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "Status: "); ok {
				n.Status = v
			}
			if v, ok := strings.CutPrefix(line, "Action: "); ok {
				n.Action = v
			}
		}
	}
	return n
}

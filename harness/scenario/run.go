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
	Wall        time.Duration `json:"wall_ns"`
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
	domain string // FQDN
	lab    *lab.Lab
	snd    *sender.Sender
	recv   []*receiver.Receiver
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

// build starts the receivers, the lab with their records, the resolver and the sender.
func build(s *Scenario, opt Options, logf func(string, ...any)) (*scene, error) {
	sc := &scene{domain: dns.Fqdn(s.DNS.Domain)}
	n := subnet.Add(1)
	netp := fmt.Sprintf("127.%d.%d.", 120+n/250, 1+n%250)
	ips := make([]string, len(s.DNS.MX))
	for i := range s.DNS.MX {
		ips[i] = fmt.Sprintf("%s%d", netp, 11+i)
	}
	port, err := receiver.FreePort(append(ips, netp+"250"))
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
		owner := "_25._tcp." + name
		if h.TLSAOwner != "" {
			owner = h.TLSAOwner
			if !strings.HasSuffix(owner, ".") {
				owner = fqdn(owner, zone)
			}
		}
		var r *receiver.Receiver
		if !h.NoReceiver {
			r, err = receiver.Start(receiver.Config{
				Addr: net.JoinHostPort(ips[i], fmt.Sprint(port)), Hostname: strings.TrimSuffix(name, "."),
				RecipientDomain: s.DNS.Domain, UnrelatedName: "unrelated.invalid",
				Personality: receiver.Personality(h.Personality), Timeout: 10 * time.Second,
			})
			if err != nil {
				return sc, fmt.Errorf("dns.mx[%d]: %v", i, err)
			}
			sc.recv = append(sc.recv, r)
			logf("receiver %s (%s) on %s:%d", strings.TrimSuffix(name, "."), h.Personality, ips[i], port)
		}
		for j, t := range h.TLSA {
			p, data, err := ParseTLSA(t)
			if err != nil {
				return sc, fmt.Errorf("dns.mx[%d].tlsa[%d]: %v", i, j, err)
			}
			switch data {
			case "":
				data, err = ownData(r, p)
			case "wrong":
				data, err = otherData(p)
			}
			if err != nil {
				return sc, fmt.Errorf("dns.mx[%d].tlsa[%d]: %v", i, j, err)
			}
			records[zone] = append(records[zone], fmt.Sprintf("%s TLSA %d %d %d %s", owner, p.Usage, p.Selector, p.Matching, data))
		}
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
	dto := opt.DNSTimeout
	if dto == 0 {
		dto = 2 * time.Second
	}
	// Signatures are made and judged in real time (the lab signs in real time); only the
	// queue's schedule is virtual. No cache: every attempt asks the lab again.
	res := resolver.New(resolver.Config{TrustAnchors: l.Anchor, Roots: []string{l.Addr}, Port: dnsPort,
		Timeout: dto, Cache: false})
	to := opt.AttemptTimeout
	if to == 0 {
		to = 3 * time.Second
	}
	sc.snd = sender.New(sender.Config{Resolver: res, Port: port, Timeout: to})
	return sc, nil
}

// ownData is the association data of a receiver's certificate: the leaf for usage 3, the
// issuing CA for usage 2.
func ownData(r *receiver.Receiver, p tlsa.Param) (string, error) {
	var c *x509.Certificate
	switch p.Usage {
	case 2:
		if r.CA() == nil {
			return "", fmt.Errorf("usage 2 needs a CA-issued personality (ca-chain, ...), not %s", r.Config().Personality)
		}
		c = r.CA().Cert
	default:
		c = r.Identity().Leaf
	}
	return tlsa.Data(c, p.Selector, p.Matching)
}

// otherData is association data of a certificate unrelated to everything served.
func otherData(p tlsa.Param) (string, error) {
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

// faultAttempter puts the scenario's faults in place, or takes them away, before each attempt
// according to the queue's virtual clock.
type faultAttempter struct {
	next   queue.Attempter
	lab    *lab.Lab
	clock  queue.Clock
	start  time.Time
	faults []Fault
	ids    []string // lab fault id while in place
	logf   func(string, ...any)
	err    error
}

func (f *faultAttempter) sync(age time.Duration) error {
	for i, ft := range f.faults {
		on := ft.Active(age)
		switch {
		case on && f.ids[i] == "":
			id, err := f.lab.AddFault(ft.Spec())
			if err != nil {
				return fmt.Errorf("faults[%d]: %v", i, err)
			}
			f.ids[i] = id
			f.logf("+%s fault %d on: %s %s %s", FormatAge(age), i, ft.Mode, ft.Name, ft.Type)
		case !on && f.ids[i] != "":
			if err := f.lab.RemoveFault(f.ids[i]); err != nil {
				return fmt.Errorf("faults[%d]: %v", i, err)
			}
			f.ids[i] = ""
			f.logf("+%s fault %d healed: %s %s %s", FormatAge(age), i, ft.Mode, ft.Name, ft.Type)
		}
	}
	return nil
}

func (f *faultAttempter) Attempt(ctx context.Context, msg *queue.Message) queue.Outcome {
	age := f.clock.Now().Sub(f.start)
	if err := f.sync(age); err != nil {
		f.err = err
		return queue.Outcome{Result: queue.ResultDNSFailure, Detail: "harness: " + err.Error()}
	}
	o := f.next.Attempt(ctx, msg)
	f.logf("+%s attempt: delivered=%v permanent=%v result=%q tls=%q host=%q detail=%q",
		FormatAge(age), o.Delivered, o.Permanent, o.Result, o.TLS, o.Host, o.Detail)
	return o
}

func (sc *scene) run(ctx context.Context, s *Scenario, res *Result, logf func(string, ...any)) error {
	prof, err := queue.ProfileByName(s.Profile)
	if err != nil {
		return err
	}
	start := time.Now().Truncate(time.Second)
	clock := queue.NewVirtualClock(start)
	fa := &faultAttempter{next: sc.snd, lab: sc.lab, clock: clock, start: start, faults: s.Faults,
		ids: make([]string, len(s.Faults)), logf: logf}
	q, err := queue.New(queue.Config{Clock: clock, Profile: prof, Attempter: fa, Hostname: "danelab.invalid"})
	if err != nil {
		return err
	}
	d := strings.TrimSuffix(sc.domain, ".")
	msg := &queue.Message{From: "alice@sender.test", To: []string{"bob@" + d}, Domain: d, Submitted: start,
		Data: []byte("From: alice@sender.test\r\nTo: bob@" + d + "\r\nSubject: danelab " + s.Name +
			"\r\nMessage-ID: <" + s.Name + "@sender.test>\r\n\r\nhello\r\n")}
	id, err := q.Submit(msg)
	if err != nil {
		return err
	}
	if err := q.Run(ctx, start.Add(Horizon)); err != nil {
		return err
	}
	if fa.err != nil {
		return fa.err
	}
	e, _ := q.Entry(id)
	for _, r := range e.Attempts {
		res.Attempts = append(res.Attempts, Observed{N: r.N, Age: r.Age, At: FormatAge(r.Age), Status: r.Status.Code,
			TLS: r.Outcome.TLS, Result: r.Outcome.Result, Host: r.Outcome.Host, Detail: r.Outcome.Detail})
	}
	switch e.State {
	case queue.Delivered:
		res.FinalState = StateDelivered
	case queue.Expired, queue.Failed:
		res.FinalState, res.FinalCode = StateNDR, e.Final.Code
	default:
		res.FinalState = e.State.String()
	}
	if !e.Done.IsZero() {
		res.FinalAge = e.Done.Sub(start)
	}
	logf("final: %s %s at +%s after %d attempts", res.FinalState, res.FinalCode, FormatAge(res.FinalAge), len(e.Attempts))
	return nil
}

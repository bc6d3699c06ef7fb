// Package world owns a scenario's world: from a validated scenario and a plan (names as they
// are or renamed per scenario, addresses, port) it starts the receivers, makes the lab
// domains with the MX hosts, their addresses and their TLSA records, and brings the world to
// any scenario time (faults on and off, certificate renewals). The in-process runner
// (harness/runner) and fixture mode (harness/fixture) are two drivers of it: a field added to
// the scenario format is built here, and nowhere else.
package world

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// Plan says where a scenario's world lives.
type Plan struct {
	// Rename puts the scenario's name in front of every base domain, so that many scenarios
	// share one lab: mx1.example.test becomes mx1.<name>.example.test (fixture mode).
	Rename bool
	// Net is the hosts' address prefix: dns.mx[j] gets Net + (11+j), "127.2.5." -> 127.2.5.11.
	Net string
	// Port is the receivers' SMTP port; 0 picks a port free on every host address and on
	// Reserve (addresses the driver will use with the same port).
	Port    int
	Reserve []string
	// Timeout is the receivers' SMTP timeout (default 10 s).
	Timeout time.Duration
	// Log receives what the world does, one line per call; nil discards.
	Log io.Writer
	// TLSRPT, when set, is the rua of a TLS-RPT record (RFC 8460 §3) the recipient's domain
	// publishes: `_smtp._tls TXT "v=TLSRPTv1; rua=<TLSRPT>"`. Fixture mode names its own
	// intake there; the in-process runner hands reports over directly and sets none.
	TLSRPT string
}

// World is a scenario's world: its receivers running, its zones ready for a lab.
type World struct {
	Scenario *scenario.Scenario
	Domain   string   // the recipient's domain, FQDN (renamed)
	Zones    []string // the scenario's zones, FQDN, lowercase (renamed): Domain first
	Hosts    []*Host  // per dns.mx entry
	Port     int      // the receivers' SMTP port
	// Faults are the scenario's faults with their names renamed.
	Faults []scenario.Fault

	domains []lab.Domain
	rename  func(string) string
	renamed bool
	labels  map[string]string // association data -> "U S M current|next"
	log     io.Writer

	mu       sync.Mutex // the timeline: faultIDs, Host.renewed
	faultIDs []string   // the lab's id of each fault while in place
}

// Host is an MX host of the world.
type Host struct {
	Spec     scenario.Host
	Name     string             // FQDN (renamed)
	IP       string             // its address
	Owner    string             // its TLSA owner, FQDN (renamed)
	Receiver *receiver.Receiver // nil with no_receiver
	next     *receiver.Identity // the renewal's certificate, made up front
	renewed  bool

	mu        sync.Mutex
	published []published // its TLSA RRset over time, oldest first
}

// published is a TLSA RRset from a time on.
type published struct {
	from time.Time
	recs []string
}

// Build starts the world of a validated scenario: its receivers, and the lab domains (Domains)
// with its MX hosts, their addresses and TLSA records. On error, what was started is stopped.
func Build(s *scenario.Scenario, p Plan) (*World, error) {
	if p.Timeout == 0 {
		p.Timeout = 10 * time.Second
	}
	w := &World{Scenario: s, rename: func(n string) string { return n }, labels: map[string]string{}, log: p.Log,
		faultIDs: make([]string, len(s.Faults))}
	if err := w.build(p); err != nil {
		w.Stop() // the receivers started so far
		return nil, err
	}
	return w, nil
}

func (w *World) build(p Plan) (err error) {
	s := w.Scenario
	bases := []string{s.DNS.Domain}
	for _, z := range s.DNS.Zones {
		bases = append(bases, z.Name)
	}
	if p.Rename {
		w.rename, w.renamed = renamer(s.Name, bases), true
	}
	w.Domain = w.rename(dns.Fqdn(s.DNS.Domain))
	for _, b := range bases {
		w.Zones = append(w.Zones, strings.ToLower(w.rename(dns.Fqdn(b))))
	}
	if err := w.renameFaults(bases); err != nil {
		return err
	}

	ips := make([]string, len(s.DNS.MX))
	for j := range s.DNS.MX {
		ips[j] = fmt.Sprintf("%s%d", p.Net, 11+j)
	}
	w.Port = p.Port
	if w.Port == 0 {
		if w.Port, err = receiver.FreePort(append(append([]string(nil), ips...), p.Reserve...)); err != nil {
			return err
		}
	}
	records := map[string][]string{} // zone -> records the hosts add
	var mx []string
	for j, h := range s.DNS.MX {
		zone := w.Domain
		if h.Zone != "" {
			zone = w.rename(dns.Fqdn(h.Zone))
		}
		hs := &Host{Spec: h, Name: fqdn(h.Host, zone), IP: ips[j]}
		hs.Owner = "_25._tcp." + hs.Name
		if o := h.TLSAOwner; o != "" {
			hs.Owner = fqdn(o, zone)
			if strings.HasSuffix(o, ".") {
				hs.Owner = w.rename(o)
			}
		}
		w.Hosts = append(w.Hosts, hs)
		records[zone] = append(records[zone], fmt.Sprintf("%s A %s", hs.Name, hs.IP))
		if !h.NoMX {
			pref := h.Preference
			if pref == 0 {
				pref = 10 * (j + 1)
			}
			mx = append(mx, fmt.Sprintf("@ MX %d %s", pref, hs.Name))
		}
		recs, err := w.startHost(j, hs, p.Timeout)
		if err != nil {
			return fmt.Errorf("dns.mx[%d]: %v", j, err)
		}
		hs.published = []published{{recs: recs}}
		records[zone] = append(records[zone], recs...)
	}

	apex := records[w.Domain]
	if s.DNS.NullMX {
		apex = append(apex, "@ MX 0 .")
	} else {
		apex = append(apex, mx...)
	}
	for _, r := range s.DNS.Records {
		apex = append(apex, renameRecord(r, w.rename))
		if f := strings.Fields(r); p.TLSRPT != "" && len(f) > 0 && strings.EqualFold(f[0], "_smtp._tls") {
			// Two v=TLSRPTv1 records make a domain publish none (§3).
			return fmt.Errorf("dns.records: %q and the plan's TLS-RPT record would be two records", r)
		}
	}
	if p.TLSRPT != "" {
		apex = append(apex, fmt.Sprintf("_smtp._tls TXT %q", "v=TLSRPTv1; rua="+p.TLSRPT))
	}
	w.domains = []lab.Domain{{Name: w.Domain, Unsigned: s.DNS.Unsigned, Denial: s.DNS.Denial, Records: apex}}
	for _, z := range s.DNS.Zones {
		zn := w.rename(dns.Fqdn(z.Name))
		var rs []string
		for _, r := range z.Records {
			rs = append(rs, renameRecord(r, w.rename))
		}
		w.domains = append(w.domains, lab.Domain{Name: zn, Unsigned: z.Unsigned, Denial: z.Denial, Records: append(rs, records[zn]...)})
	}
	for _, d := range w.domains {
		for _, r := range d.Records {
			w.logf("zone %s: %s", d.Name, r)
		}
	}
	return nil
}

// startHost starts the receiver of host j (unless no_receiver), makes its renewal's
// certificate, and returns its TLSA records at time 0.
func (w *World) startHost(j int, hs *Host, timeout time.Duration) ([]string, error) {
	h := hs.Spec
	if h.NoReceiver {
		return tlsaRecords(h, hs.Owner, nil, nil, nil)
	}
	r, err := receiver.Start(receiver.Config{
		Addr: net.JoinHostPort(hs.IP, fmt.Sprint(w.Port)), Hostname: strings.TrimSuffix(hs.Name, "."),
		RecipientDomain: strings.TrimSuffix(w.Domain, "."), UnrelatedName: "unrelated.invalid",
		Personality: receiver.Personality(h.Personality), Timeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	hs.Receiver = r
	w.logf("receiver %s (%s) on %s:%d", strings.TrimSuffix(hs.Name, "."), h.Personality, hs.IP, w.Port)
	cur, ca := r.Identity(), r.CA()
	if rn := h.Renew; rn != nil {
		key := cur.Key
		if rn.Key == scenario.KeyNew {
			if key, err = receiver.NewKey(); err != nil {
				return nil, err
			}
		}
		if hs.next, err = r.Renewed(key); err != nil {
			return nil, fmt.Errorf("renew: %v", err)
		}
	}
	// Name the computed records, so that a matched record reads "3 1 1 current" or "next".
	for _, e := range h.TLSA {
		if e.Kind != scenario.Computed {
			continue
		}
		cd, err := ownData(cur, ca, e.Param)
		if err != nil {
			return nil, fmt.Errorf("tlsa: %v", err)
		}
		w.labels[cd] = fmt.Sprintf("%d %d %d current", e.Usage, e.Selector, e.Matching)
		if hs.next != nil {
			nd, err := ownData(hs.next, ca, e.Param)
			if err != nil {
				return nil, fmt.Errorf("tlsa: %v", err)
			}
			if nd != cd {
				w.labels[nd] = fmt.Sprintf("%d %d %d next", e.Usage, e.Selector, e.Matching)
			}
		}
	}
	var staged *receiver.Identity
	if h.Renew != nil && h.Renew.Staged {
		staged = hs.next
	}
	recs, err := tlsaRecords(h, hs.Owner, cur, staged, ca)
	if err != nil {
		return nil, fmt.Errorf("tlsa: %v", err)
	}
	return recs, nil
}

// renameFaults sets Faults: the scenario's, renamed. A renamed world shares its lab with
// others, so a fault outside the scenario's zones would hit every scenario (or none).
func (w *World) renameFaults(bases []string) error {
	for i, ft := range w.Scenario.Faults {
		spec := ft
		spec.Name = w.rename(ft.Name)
		if ft.Zone != "" {
			spec.Zone = w.rename(ft.Zone)
		}
		if w.renamed {
			if spec.Name == ft.Name {
				return fmt.Errorf("faults[%d].name: %q is not in the scenario's zones (%s): its lab is shared with other scenarios", i, ft.Name, strings.Join(bases, ", "))
			}
			if ft.Zone != "" && spec.Zone == ft.Zone {
				return fmt.Errorf("faults[%d].zone: %q is not one of the scenario's zones (%s)", i, ft.Zone, strings.Join(bases, ", "))
			}
		}
		w.Faults = append(w.Faults, spec)
	}
	return nil
}

// Domains are the world's lab domains: the recipient's domain first, then dns.zones.
func (w *World) Domains() []lab.Domain { return w.domains }

// Rename is a name of the scenario as the world names it.
func (w *World) Rename(name string) string { return w.rename(name) }

// Label names association data computed from a receiver's certificate as scenarios do
// ("3 1 1 current", "3 1 1 next"); "" when it is not.
func (w *World) Label(data string) string { return w.labels[strings.ToLower(data)] }

// Owns reports whether name lies in one of the world's zones.
func (w *World) Owns(name string) bool {
	name = strings.ToLower(dns.Fqdn(name))
	for _, z := range w.Zones {
		if name == z || strings.HasSuffix(name, "."+z) {
			return true
		}
	}
	return false
}

// Stop stops the receivers.
func (w *World) Stop() {
	if w == nil {
		return
	}
	for _, h := range w.Hosts {
		if h.Receiver != nil {
			h.Receiver.Stop()
		}
	}
}

// TLSAAt is the host's TLSA RRset (zone file syntax) as published at time at.
func (h *Host) TLSAAt(at time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var recs []string
	for _, p := range h.published {
		if !p.from.After(at) {
			recs = p.recs
		}
	}
	return recs
}

func (w *World) logf(format string, args ...any) {
	if w.log != nil {
		fmt.Fprintf(w.log, format+"\n", args...)
	}
}

// fqdn is label in zone: "@" (or nothing) is the apex, a name ending in "." is absolute.
func fqdn(label, zone string) string {
	switch {
	case label == "@" || label == "":
		return zone
	case strings.HasSuffix(label, "."):
		return label
	}
	return label + "." + zone
}

// Mailbox starts the sender's own mailbox (it receives the NDRs, over DANE 3 1 1) on
// ip:port and returns it with its domain, scenario.MailboxDomain.
func Mailbox(ip string, port int, timeout time.Duration) (*receiver.Receiver, lab.Domain, error) {
	mb, err := receiver.Start(receiver.Config{Addr: net.JoinHostPort(ip, fmt.Sprint(port)),
		Hostname: "mbox." + scenario.MailboxDomain, Personality: receiver.SelfSigned, Timeout: timeout})
	if err != nil {
		return nil, lab.Domain{}, fmt.Errorf("the sender's mailbox: %v", err)
	}
	data, err := tlsa.Data(mb.Identity().Leaf, 1, 1)
	if err != nil {
		mb.Stop()
		return nil, lab.Domain{}, err
	}
	return mb, lab.Domain{Name: scenario.MailboxDomain + ".", Records: []string{"@ MX 10 mbox", "mbox A " + ip,
		"_25._tcp.mbox TLSA 3 1 1 " + data}}, nil
}

// PrefixLog is a log writer that puts prefix before each line written to w (each write is
// whole lines); nil when w is nil.
func PrefixLog(w io.Writer, prefix string) io.Writer {
	if w == nil {
		return nil
	}
	return &prefixed{w: w, prefix: prefix}
}

type prefixed struct {
	w      io.Writer
	prefix string
}

func (p *prefixed) Write(b []byte) (int, error) {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	for _, l := range lines {
		if l != "" {
			out.WriteString(p.prefix + l)
		}
	}
	if _, err := io.WriteString(p.w, out.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

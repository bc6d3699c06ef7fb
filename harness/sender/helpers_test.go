package sender_test

// The test bed: per scenario a lab (signed DNS world served by danezone), SMTP receivers with
// chosen personalities on their own loopback addresses (127.M.N.x, one subnet per scenario),
// a validating resolver on the lab and a sender. Expectations come from RFC 7672 and
// docs/scenario-matrix.md, never from the sender's own output.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/queue"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/harness/sender"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// subnet hands each scenario its own 127.M.N.0/24 (M from 77).
var subnet atomic.Int32

// labStart serialises lab starts (one CoreDNS instance each; the caddy start path keeps
// process-wide state).
var labStart sync.Mutex

// host is one SMTP receiver of a scenario.
type host struct {
	Label string // owner relative to its domain: "mx1"
	// Domain is the zone the host's address record lives in; the scenario domain when empty.
	Domain      string
	Pers        receiver.Personality
	Delay       time.Duration // greeting delay
	NoRecord    bool          // publish no address record (the test writes it)
	NoReceiver  bool          // an address that nobody listens on
	TLSA        []string      // TLSA parameter triples published for this host ("3 1 1")
	WrongTLSA   []string      // TLSA parameter triples of another key / CA (a mismatch)
	ExtraTLSA   []string      // raw TLSA "u s m data" published as is
	TLSAOwnerAt string        // publish the TLSA at this owner (relative) instead of _25._tcp.<label>
}

// scene is one running scenario.
type scene struct {
	t      *testing.T
	Domain string // recipient domain, "example.test."
	Lab    *lab.Lab
	Res    *resolver.Resolver
	Snd    *sender.Sender
	Port   int
	Net    string                        // "127.M.N."
	Recv   map[string]*receiver.Receiver // by label
	IP     map[string]string             // by label
}

// sceneConfig describes a scenario.
type sceneConfig struct {
	Domain   string // default example.test
	Unsigned bool   // the recipient domain is unsigned
	Hosts    []host
	MX       []string      // MX records ("10 mx1"); default one MX per host, preference 10, 20, ...
	NoMX     bool          // publish no MX at all
	Records  []string      // more records in the recipient domain
	Extra    []lab.Domain  // more lab domains
	Timeout  time.Duration // sender timeout, default 3s
	Now      func() time.Time
}

func fqdn(label, zone string) string {
	if label == "@" || label == "" {
		return zone
	}
	if strings.HasSuffix(label, ".") {
		return label
	}
	return label + "." + zone
}

// tlsaData returns the association data for a receiver's identity: the leaf for usage 3, the
// issuing CA for usage 2.
func tlsaData(t *testing.T, r *receiver.Receiver, p tlsa.Param) string {
	t.Helper()
	var c *x509.Certificate
	switch p.Usage {
	case 2:
		if r.CA() == nil {
			t.Fatalf("usage 2 for a receiver without a CA (%s)", r.Config().Personality)
		}
		c = r.CA().Cert
	default:
		c = r.Identity().Leaf
	}
	d, err := tlsa.Data(c, p.Selector, p.Matching)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// otherData returns association data of a certificate unrelated to everything served.
func otherData(t *testing.T, p tlsa.Param) string {
	t.Helper()
	var c *x509.Certificate
	if p.Usage == 2 {
		ca, err := receiver.NewCA("some other CA")
		if err != nil {
			t.Fatal(err)
		}
		c = ca.Cert
	} else {
		id, err := receiver.NewSelfSigned([]string{"other.invalid"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		c = id.Leaf
	}
	d, err := tlsa.Data(c, p.Selector, p.Matching)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func param(t *testing.T, s string) tlsa.Param {
	t.Helper()
	p, err := tlsa.ParseParam(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// listenPort finds a port free on every address.
func listenPort(t *testing.T, ips []string) int {
	t.Helper()
	port, err := receiver.FreePort(ips)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// newScene starts receivers, then the lab with their TLSA records, the resolver and the sender.
func newScene(t *testing.T, cfg sceneConfig) *scene {
	t.Helper()
	n := subnet.Add(1)
	s := &scene{t: t, Domain: dns.Fqdn(cfg.Domain), Net: fmt.Sprintf("127.%d.%d.", 77+n/250, 1+n%250),
		Recv: map[string]*receiver.Receiver{}, IP: map[string]string{}}
	if cfg.Domain == "" {
		s.Domain = "example.test."
	}
	var ips []string
	for i, h := range cfg.Hosts {
		ip := fmt.Sprintf("%s%d", s.Net, 11+i)
		s.IP[h.Label] = ip
		ips = append(ips, ip)
	}
	ips = append(ips, s.Net+"250") // never listened on: a connection refused address
	s.Port = listenPort(t, ips)
	// Receivers.
	records := map[string][]string{} // zone -> records
	zoneOf := func(h host) string {
		if h.Domain != "" {
			return dns.Fqdn(h.Domain)
		}
		return s.Domain
	}
	for _, h := range cfg.Hosts {
		zone := zoneOf(h)
		name := fqdn(h.Label, zone)
		if !h.NoRecord {
			records[zone] = append(records[zone], fmt.Sprintf("%s A %s", name, s.IP[h.Label]))
		}
		owner := "_25._tcp." + name
		if h.TLSAOwnerAt != "" {
			owner = fqdn(h.TLSAOwnerAt, zone)
		}
		for _, raw := range h.ExtraTLSA {
			records[zone] = append(records[zone], owner+" TLSA "+raw)
		}
		for _, p := range h.WrongTLSA {
			pp := param(t, p)
			records[zone] = append(records[zone], fmt.Sprintf("%s TLSA %s %s", owner, pp, otherData(t, pp)))
		}
		if h.NoReceiver {
			continue
		}
		r, err := receiver.Start(receiver.Config{
			Addr: net.JoinHostPort(s.IP[h.Label], fmt.Sprint(s.Port)), Hostname: strings.TrimSuffix(name, "."),
			RecipientDomain: strings.TrimSuffix(s.Domain, "."), UnrelatedName: "unrelated.invalid",
			Personality: h.Pers, GreetingDelay: h.Delay, Timeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		s.Recv[h.Label] = r
		for _, p := range h.TLSA {
			pp := param(t, p)
			records[zone] = append(records[zone], fmt.Sprintf("%s TLSA %s %s", owner, pp, tlsaData(t, r, pp)))
		}
	}
	// MX records.
	if !cfg.NoMX {
		mx := cfg.MX
		if mx == nil {
			for i, h := range cfg.Hosts {
				mx = append(mx, fmt.Sprintf("%d %s", 10*(i+1), fqdn(h.Label, zoneOf(h))))
			}
		}
		for _, m := range mx {
			records[s.Domain] = append(records[s.Domain], "@ MX "+m)
		}
	}
	records[s.Domain] = append(records[s.Domain], cfg.Records...)
	domains := []lab.Domain{{Name: s.Domain, Unsigned: cfg.Unsigned, Records: records[s.Domain]}}
	for _, d := range cfg.Extra {
		d.Records = append(d.Records, records[dns.Fqdn(d.Name)]...)
		domains = append(domains, d)
	}
	labStart.Lock()
	l, err := lab.Start(lab.Config{Domains: domains})
	labStart.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	s.Lab = l
	_, lport, _ := net.SplitHostPort(l.Addr)
	var port int
	fmt.Sscan(lport, &port)
	s.Res = resolver.New(resolver.Config{TrustAnchors: l.Anchor, Roots: []string{l.Addr}, Port: port,
		Timeout: 2 * time.Second, Cache: false})
	to := cfg.Timeout
	if to == 0 {
		to = 3 * time.Second
	}
	s.Snd = sender.New(sender.Config{Resolver: s.Res, Port: s.Port, Timeout: to, Now: cfg.Now})
	return s
}

// msg is a test message to bob@<domain>.
func (s *scene) msg() *queue.Message {
	d := strings.TrimSuffix(s.Domain, ".")
	return &queue.Message{From: "alice@sender.test", To: []string{"bob@" + d}, Domain: d,
		Data: []byte("From: alice@sender.test\r\nTo: bob@" + d + "\r\nSubject: danelab\r\nMessage-ID: <t@sender.test>\r\n\r\nhello\r\n")}
}

// attempt makes one delivery attempt.
func (s *scene) attempt() queue.Outcome {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := s.Snd.Attempt(ctx, s.msg())
	s.t.Logf("outcome: delivered=%v permanent=%v result=%q status=%q tls=%q host=%q detail=%q",
		o.Delivered, o.Permanent, o.Result, o.Status, o.TLS, o.Host, o.Detail)
	return o
}

// deliveries returns everything a receiver accepted.
func (s *scene) deliveries(label string) []receiver.Delivery {
	return s.Recv[label].Deliveries()
}

// allDeliveries returns every delivery of every receiver of the scene.
func (s *scene) allDeliveries() []receiver.Delivery {
	var out []receiver.Delivery
	for _, r := range s.Recv {
		out = append(out, r.Deliveries()...)
	}
	return out
}

// history asks the lab which questions it answered for name and type.
func (s *scene) history(name, qtype string) []struct {
	Name, Type, Rcode, Fault, Mode string
} {
	s.t.Helper()
	u := s.Lab.ControlURL + "/history?name=" + url.QueryEscape(name)
	if qtype != "" {
		u += "&type=" + qtype
	}
	resp, err := http.Get(u)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []struct{ Name, Type, Rcode, Fault, Mode string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// exchange is the status code the exchange profile gives an outcome.
func exchange(o queue.Outcome) string { return queue.ExchangeProfile{}.Status(o).Code }

// wantDANE checks a delivery over DANE-authenticated TLS to label with SNI sni (FQDN or not).
func (s *scene) wantDANE(o queue.Outcome, label, sni string) {
	s.t.Helper()
	if !o.Delivered || o.TLS != queue.TLSDane {
		s.t.Fatalf("want delivered over DANE, got delivered=%v tls=%q result=%q detail=%q", o.Delivered, o.TLS, o.Result, o.Detail)
	}
	if c := exchange(o); c != "2.0.0" {
		s.t.Errorf("exchange status %s, want 2.0.0", c)
	}
	ds := s.deliveries(label)
	if len(ds) != 1 {
		s.t.Fatalf("%s recorded %d deliveries, want 1", label, len(ds))
	}
	d := ds[0]
	if !d.TLS || d.TLSVersion < 0x0303 {
		s.t.Errorf("%s: delivery TLS=%v version %#x, want TLS >= 1.2", label, d.TLS, d.TLSVersion)
	}
	if want := strings.TrimSuffix(sni, "."); d.SNI != want {
		s.t.Errorf("%s: SNI %q, want the TLSA base domain %q", label, d.SNI, want)
	}
}

// wantDeferred checks a temporary failure with result result and exchange code code, and that
// nothing was delivered anywhere.
func (s *scene) wantDeferred(o queue.Outcome, result, code string) {
	s.t.Helper()
	if o.Delivered || o.Permanent {
		s.t.Fatalf("want deferred (%s), got delivered=%v permanent=%v result=%q detail=%q", result, o.Delivered, o.Permanent, o.Result, o.Detail)
	}
	if result != "" && o.Result != result {
		s.t.Errorf("result %q, want %q (detail %q)", o.Result, result, o.Detail)
	}
	if c := exchange(o); c != code {
		s.t.Errorf("exchange status %s, want %s", c, code)
	}
	if f := (queue.ExchangeProfile{}).Final(o).Code; f != "5"+code[1:] {
		s.t.Errorf("exchange NDR status %s, want %s", f, "5"+code[1:])
	}
	if ds := s.allDeliveries(); len(ds) != 0 {
		s.t.Errorf("%d deliveries recorded, want none (first TLS=%v)", len(ds), ds[0].TLS)
	}
}

// Package lab builds a DNS world in which DANE can succeed and fail for real: a lab root zone,
// the TLD test., and mail domains under it, each with its own keys, DS records linking them,
// all served by one in-process CoreDNS with danezone (an unsigned domain through danezone's
// `unsigned` option: no DNSSEC, and no DS in its parent). It writes what outside tools need to
// use it: the root trust anchor, an Unbound configuration, a delv anchors file and a
// resolv.conf.
package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/danelab/danelab/internal/freeport"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/miekg/dns"

	_ "github.com/danelab/danelab/server" // our CoreDNS build: plugins and their order
)

// Domain is one mail domain of the lab, delegated from test. (or from another domain).
type Domain struct {
	Name string // e.g. "example.test."
	// Records in zone file syntax, relative to the domain or absolute: "mx1 A 127.0.0.11".
	// The SOA, the apex NS and the name server's address are added by the lab.
	Records []string
	// Unsigned serves the domain without DNSSEC (danezone's unsigned option); its parent then
	// holds no DS, so validators see it as provably insecure.
	Unsigned bool
	// Algorithm of generated keys (dns.ECDSAP256SHA256 by default).
	Algorithm uint8
	// Denial mode: "nsec" (default), "minimal", "nsec3" (with its options, e.g. "nsec3 optout"),
	// "nsec3-narrow" or "compact".
	Denial string
}

// Config describes a lab.
type Config struct {
	Dir     string   // working directory; a temporary one when empty (removed by Stop)
	Domains []Domain // besides the root and test.
	// Listen is the DNS address (host:port); "127.0.0.1:0" (a free port) by default.
	Listen string
	// Control is the control API address; "127.0.0.1:0" by default.
	Control string
	// TTL of the lab's records (default 60: short caches suit tests).
	TTL uint32
}

// Lab is a running DNS world.
type Lab struct {
	Addr       string // DNS server, host:port
	ControlURL string // control API, http://host:port
	Dir        string
	Zones      []string // every zone served, root first
	Anchor     []dns.RR // the root's DS and DNSKEY: the trust anchor
	KeyDir     string

	tmp      bool
	instance *caddy.Instance
}

// Start builds and serves the lab.
func Start(cfg Config) (*Lab, error) {
	l := &Lab{Dir: cfg.Dir}
	if l.Dir == "" {
		d, err := os.MkdirTemp("", "danelab-")
		if err != nil {
			return nil, err
		}
		l.Dir, l.tmp = d, true
	}
	if cfg.TTL == 0 {
		cfg.TTL = 60
	}
	ok := false
	defer func() {
		if !ok {
			l.Stop()
		}
	}()
	host, port, err := freeAddr(cfg.Listen)
	if err != nil {
		return nil, err
	}
	l.Addr = net.JoinHostPort(host, port)
	chost, cport, err := freeAddr(cfg.Control)
	if err != nil {
		return nil, err
	}
	l.ControlURL = "http://" + net.JoinHostPort(chost, cport)
	l.KeyDir = filepath.Join(l.Dir, "keys")
	zoneDir := filepath.Join(l.Dir, "zones")
	for _, d := range []string{l.KeyDir, zoneDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	w, err := newWorld(cfg, host)
	if err != nil {
		return nil, err
	}
	if err := w.write(l.KeyDir, zoneDir); err != nil {
		return nil, err
	}
	l.Zones = w.order
	rootKeys, err := keys.Load(l.KeyDir, ".")
	if err != nil {
		return nil, err
	}
	for _, ds := range rootKeys.DS(dns.SHA256) {
		l.Anchor = append(l.Anchor, ds)
	}
	for _, k := range rootKeys.KSKs() {
		l.Anchor = append(l.Anchor, dns.Copy(k.DNSKEY))
	}
	// A free port can be taken by someone else between the check and the bind (parallel labs,
	// other tests): pick new ones and try again, as long as the ports were chosen here.
	for try := 1; ; try++ {
		corefile := w.corefile(l.Addr, zoneDir, l.KeyDir, net.JoinHostPort(chost, cport))
		if err := os.WriteFile(filepath.Join(l.Dir, "Corefile"), []byte(corefile), 0o600); err != nil {
			return nil, err
		}
		inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: filepath.Join(l.Dir, "Corefile"), ServerTypeName: "dns"})
		if err == nil {
			l.instance = inst
			break
		}
		if inst != nil { // undo what did start: servers, the poll loop, the control API
			inst.Stop()
			inst.ShutdownCallbacks()
		}
		if try == 10 || !strings.Contains(err.Error(), "address already in use") || !picked(cfg.Listen) || !picked(cfg.Control) {
			return nil, fmt.Errorf("starting the lab server: %v", err)
		}
		if host, port, err = freeAddr(cfg.Listen); err != nil {
			return nil, err
		}
		l.Addr = net.JoinHostPort(host, port)
		if chost, cport, err = freeAddr(cfg.Control); err != nil {
			return nil, err
		}
		l.ControlURL = "http://" + net.JoinHostPort(chost, cport)
	}
	if err := l.waitReady(5 * time.Second); err != nil {
		return nil, err
	}
	ok = true
	return l, nil
}

// Stop shuts the server down and removes a temporary directory.
func (l *Lab) Stop() error {
	var err error
	if l.instance != nil {
		err = l.instance.Stop()
		// Stop only stops the servers: the shutdown callbacks end danezone's poll loop and
		// release the control API's listener.
		if errs := l.instance.ShutdownCallbacks(); len(errs) > 0 && err == nil {
			err = errors.Join(errs...)
		}
		l.instance = nil
	}
	if l.tmp {
		os.RemoveAll(l.Dir)
	}
	return err
}

func (l *Lab) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(".", dns.TypeSOA)
	for {
		r, _, err := c.Exchange(m, l.Addr)
		if err == nil && r.Rcode == dns.RcodeSuccess {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab server on %s did not answer: %v", l.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// picked reports whether the port of addr is chosen by the lab (empty or port 0).
func picked(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return addr == "" || (err == nil && port == "0")
}

// freeAddr returns host and a port free for both UDP and TCP (addr "host:0" or "" picks one,
// never one picked before in this process: see freeport).
func freeAddr(addr string) (string, string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return host, port, err
	}
	p, err := freeport.Get(host)
	if err != nil {
		return "", "", err
	}
	return host, strconv.Itoa(p), nil
}

// world is the zone tree of a lab.
type world struct {
	cfg     Config
	host    string // address of every name server
	domains map[string]*Domain
	order   []string // zones, parents before children
}

func newWorld(cfg Config, host string) (*world, error) {
	w := &world{cfg: cfg, host: host, domains: map[string]*Domain{}}
	w.domains["."] = &Domain{Name: "."}
	w.domains["test."] = &Domain{Name: "test."}
	for i := range cfg.Domains {
		d := cfg.Domains[i]
		d.Name = strings.ToLower(dns.Fqdn(d.Name))
		if _, ok := dns.IsDomainName(d.Name); !ok || !dns.IsSubDomain("test.", d.Name) || d.Name == "test." {
			return nil, fmt.Errorf("lab domain %q: must be a name below test", d.Name)
		}
		if w.domains[d.Name] != nil {
			return nil, fmt.Errorf("lab domain %s twice", d.Name)
		}
		w.domains[d.Name] = &d
	}
	for n := range w.domains {
		w.order = append(w.order, n)
	}
	sort.Slice(w.order, func(i, j int) bool {
		ci, cj := dns.CountLabel(w.order[i]), dns.CountLabel(w.order[j])
		if ci != cj {
			return ci < cj
		}
		return w.order[i] < w.order[j]
	})
	for _, n := range w.order[1:] {
		p := w.parent(n)
		if w.domains[p].Unsigned && !w.domains[n].Unsigned {
			return nil, fmt.Errorf("lab domain %s is signed below the unsigned %s: it could never be secure", n, p)
		}
	}
	return w, nil
}

// parent returns the closest enclosing zone of name.
func (w *world) parent(name string) string {
	for off, end := dns.NextLabel(name, 0); ; off, end = dns.NextLabel(name, off) {
		p := name[off:]
		if end || p == "" {
			return "."
		}
		if w.domains[p] != nil {
			return p
		}
	}
}

// nsName is the name server of a zone: ns.<zone> (ns.lab. for the root).
func nsName(zone string) string {
	if zone == "." {
		return "ns.lab."
	}
	return "ns." + zone
}

func fileName(zone string) string {
	if zone == "." {
		return "root.zone"
	}
	return strings.TrimSuffix(zone, ".") + ".zone"
}

// write generates keys for signed zones and writes every zone file, children first so that
// their DS can go into their parents.
func (w *world) write(keyDir, zoneDir string) error {
	ds := map[string][]dns.RR{}
	for _, n := range w.order {
		d := w.domains[n]
		if d.Unsigned {
			continue
		}
		alg := d.Algorithm
		if alg == 0 {
			alg = dns.ECDSAP256SHA256
		}
		ks, _, err := keys.LoadOrGenerate(keyDir, n, alg)
		if err != nil {
			return err
		}
		for _, r := range ks.DS(dns.SHA256) {
			r.Hdr.Ttl = w.cfg.TTL
			ds[n] = append(ds[n], r)
		}
	}
	for _, n := range w.order {
		d := w.domains[n]
		var b strings.Builder
		ttl := w.cfg.TTL
		fmt.Fprintf(&b, "$ORIGIN %s\n$TTL %d\n", n, ttl)
		fmt.Fprintf(&b, "@ SOA %s hostmaster.%s %d 3600 900 1209600 %d\n", nsName(n), strings.TrimPrefix(n, "."), time.Now().Unix()%4000000000, ttl)
		fmt.Fprintf(&b, "@ NS %s\n%s A %s\n", nsName(n), nsName(n), w.host)
		for _, c := range w.order {
			if c == n || w.parent(c) != n {
				continue
			}
			fmt.Fprintf(&b, "%s NS %s\n", c, nsName(c))
			fmt.Fprintf(&b, "%s A %s\n", nsName(c), w.host)
			for _, r := range ds[c] {
				fmt.Fprintln(&b, r.String())
			}
		}
		for _, r := range d.Records {
			fmt.Fprintln(&b, r)
		}
		if err := os.WriteFile(filepath.Join(zoneDir, fileName(n)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// corefile serves every zone with danezone on addr, the unsigned ones without DNSSEC.
func (w *world) corefile(addr, zoneDir, keyDir, control string) string {
	host, port, _ := net.SplitHostPort(addr)
	var b strings.Builder
	// follow_cds: the parents take their children's DS from the children's CDS, so a key roll
	// in the lab completes without anyone (RFC 7344 §6).
	fmt.Fprintf(&b, ".:%s {\n    bind %s\n    danezone %s {\n        keys %s\n        reload 200ms\n        control %s\n        follow_cds\n", port, host, zoneDir, keyDir, control)
	var unsigned []string
	for _, n := range w.order {
		d := w.domains[n]
		if d.Unsigned {
			unsigned = append(unsigned, n)
		} else if d.Denial != "" {
			fmt.Fprintf(&b, "        denial %s %s\n", d.Denial, n)
		}
	}
	if len(unsigned) > 0 {
		fmt.Fprintf(&b, "        unsigned %s\n", strings.Join(unsigned, " "))
	}
	b.WriteString("    }\n}\n")
	return b.String()
}

// ZoneFile returns the path of a zone's file (edit it: danezone reloads it within 200 ms).
func (l *Lab) ZoneFile(zone string) string {
	return filepath.Join(l.Dir, "zones", fileName(strings.ToLower(dns.Fqdn(zone))))
}

package lab

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// WriteAnchor writes the root trust anchor (DS and DNSKEY) in zone file syntax, as Unbound's
// trust-anchor-file and most validators read it.
func (l *Lab) WriteAnchor(path string) error {
	var b strings.Builder
	for _, rr := range l.Anchor {
		fmt.Fprintln(&b, rr.String())
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// WriteDelvAnchors writes a delv/BIND trust-anchors file for the root key.
func (l *Lab) WriteDelvAnchors(path string) error {
	var b strings.Builder
	b.WriteString("trust-anchors {\n")
	for _, rr := range l.Anchor {
		if k, ok := rr.(*dns.DNSKEY); ok {
			fmt.Fprintf(&b, "    . static-key %d %d %d \"%s\";\n", k.Flags, k.Protocol, k.Algorithm, k.PublicKey)
		}
	}
	b.WriteString("};\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// UnboundOptions tune the Unbound configuration the lab writes.
type UnboundOptions struct {
	Listen     string // address:port Unbound listens on, e.g. "127.0.0.54:53"
	AnchorFile string // written by WriteAnchor
	Dir        string // Unbound's working directory (pidfile, logs)
	Verbosity  int
}

// WriteUnboundConfig writes an Unbound configuration that resolves the lab: the root anchor,
// a stub zone per lab zone at the lab server (so a nonstandard port works), the test. TLD
// released from Unbound's built-in local zones, short caches so changes are seen quickly, and
// extended DNS errors. Aggressive use of cached NSEC records (RFC 8198, on by default) is off:
// with it Unbound answers the TLSA question of no-tlsa-missing-proof from the NSEC record of
// the MX host's AAAA NODATA answer (secure NXDOMAIN, measured) and never meets the broken TLSA
// answer the scenario is about. The Go resolver does not do RFC 8198 either.
func (l *Lab) WriteUnboundConfig(path string, o UnboundOptions) error {
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return err
	}
	lhost, lport, _ := net.SplitHostPort(l.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, `server:
    interface: %s@%s
    do-not-query-localhost: no
    username: ""
    chroot: ""
    directory: "%s"
    pidfile: "%s/unbound.pid"
    use-syslog: no
    logfile: "%s/unbound.log"
    verbosity: %d
    module-config: "validator iterator"
    trust-anchor-file: "%s"
    local-zone: "test." nodefault
    ede: yes
    val-log-level: 2
    cache-max-ttl: 30
    cache-max-negative-ttl: 30
    val-bogus-ttl: 1
    aggressive-nsec: no
    qname-minimisation: yes
    harden-dnssec-stripped: yes
    do-ip6: no
`, host, port, o.Dir, o.Dir, o.Dir, o.Verbosity, o.AnchorFile)
	for _, z := range l.Zones {
		fmt.Fprintf(&b, "stub-zone:\n    name: \"%s\"\n    stub-addr: %s@%s\n", z, lhost, lport)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// WriteResolvConf writes a resolv.conf naming a resolver address (port 53: resolv.conf
// cannot name a port).
func WriteResolvConf(path, resolverIP string) error {
	return os.WriteFile(path, []byte("nameserver "+resolverIP+"\noptions edns0 trust-ad\n"), 0o644)
}

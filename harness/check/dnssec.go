package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/danelab/danelab/harness/resolver"
	"github.com/miekg/dns"
)

// deprecated are the DNSSEC algorithms RFC 8624 §3.1 says MUST NOT or NOT RECOMMENDED for
// signing: validators are dropping them, and a zone signed with one alone goes insecure.
var deprecated = map[uint8]string{
	dns.RSAMD5: "RSAMD5", dns.DSA: "DSA", dns.RSASHA1: "RSASHA1", dns.DSANSEC3SHA1: "DSA-NSEC3-SHA1",
	dns.RSASHA1NSEC3SHA1: "RSASHA1-NSEC3-SHA1", dns.ECCGOST: "ECC-GOST",
}

// maxIterations is where validators stop: Unbound and BIND treat NSEC3 with more additional
// iterations as insecure (RFC 9276 §3.2 and their defaults of 150 and 50).
const maxIterations = 50

// chain checks the chain of trust from the root to the domain's zone, link by link: each
// zone's DNSKEY set, the DS that links it to its parent, the algorithms, the days left on the
// signatures, and NSEC3 parameters (RFC 9276).
func (c *run) chain(ctx context.Context) {
	const g = "dnssec"
	labels := dns.SplitDomainName(c.domain)
	zones := []string{"."}
	for i := len(labels) - 1; i >= 0; i-- { // the zone apexes among the domain's ancestors
		name := dns.Fqdn(strings.Join(labels[i:], "."))
		res, err := c.resolve(ctx, name, dns.TypeSOA)
		if err != nil {
			c.add(Item{Group: g, Name: "zone cut at " + name, Verdict: Fail, Detail: err.Error(),
				Fix: "make the zone's name servers answer: without them no chain of trust can be checked"})
			return
		}
		for _, soa := range records[*dns.SOA](res) {
			if strings.EqualFold(soa.Hdr.Name, name) {
				zones = append(zones, name)
				break
			}
		}
	}
	c.add(Item{Group: g, Name: "zones from the root", Verdict: Info, Detail: strings.Join(zones, " → ")})
	for i, z := range zones {
		if i > 0 && !c.link(ctx, zones[i-1], z) {
			return
		}
		if !c.zoneKeys(ctx, z) {
			return
		}
	}
}

// link checks the DS at the parent for zone z; false when the chain ends here.
func (c *run) link(ctx context.Context, parent, z string) bool {
	const g = "dnssec"
	res, err := c.resolve(ctx, z, dns.TypeDS)
	name := "DS for " + z + " in " + parent
	if err != nil {
		c.add(Item{Group: g, Name: name, Verdict: Fail, Detail: err.Error(), Fix: "make " + parent + "'s name servers answer"})
		return false
	}
	ds := records[*dns.DS](res)
	switch {
	case res.Verdict == resolver.Secure && len(ds) == 0:
		c.add(Item{Group: g, Name: name, Verdict: Fail, Detail: "no DS: the parent proves " + z + " unsigned (insecure delegation)",
			Evidence: evidence(res, dns.TypeNSEC, dns.TypeNSEC3),
			Fix:      "publish the DS of " + z + "'s key at the registrar (danelab ds " + strings.TrimSuffix(z, ".") + " prints it): without it no sender uses DANE"})
		return false
	case res.Verdict == resolver.Insecure:
		c.add(Item{Group: g, Name: name, Verdict: Fail, Detail: "insecure: " + res.Reason,
			Fix: "the chain of trust breaks above " + z + ": sign the parent zones and publish their DS"})
		return false
	case res.Verdict != resolver.Secure:
		c.add(Item{Group: g, Name: name, Verdict: Fail, Detail: res.Verdict.String() + ": " + res.Reason, Evidence: evidence(res, dns.TypeDS),
			Fix: "fix the DS at the registrar or the parent's signatures: validators reject everything below"})
		return false
	}
	it := Item{Group: g, Name: name, Verdict: Pass, Detail: "secure", Evidence: evidence(res, dns.TypeDS)}
	for _, d := range ds {
		if d.DigestType == dns.SHA1 {
			it.Verdict, it.Fix = Warn, "replace the SHA-1 DS (digest type 1) by a SHA-256 one (type 2): RFC 8624 §3.3"
		}
	}
	c.add(it)
	return true
}

// zoneKeys checks zone z's DNSKEY set, algorithms, signatures and NSEC3 parameters; false
// when the chain ends here.
func (c *run) zoneKeys(ctx context.Context, z string) bool {
	const g = "dnssec"
	res, err := c.resolve(ctx, z, dns.TypeDNSKEY)
	it := verdictItem(g, "DNSKEY of "+z, res, err, Fail,
		"sign "+z+" and publish its DS: DANE needs a secure chain down to the TLSA records",
		"fix "+z+"'s keys or signatures: validators reject everything in it", dns.TypeDNSKEY)
	if it.Verdict == Fail {
		c.add(it)
		return false
	}
	var weak []string
	for _, k := range records[*dns.DNSKEY](res) {
		if name, ok := deprecated[k.Algorithm]; ok {
			weak = append(weak, fmt.Sprintf("key %d: %s", k.KeyTag(), name))
		}
	}
	if len(weak) > 0 {
		it.Verdict = Warn
		it.Detail += "; deprecated algorithm (RFC 8624): " + strings.Join(weak, ", ")
		it.Fix = "roll to ECDSAP256SHA256 (13) or ED25519 (15): validators are dropping these algorithms"
	}
	if left, ok := daysLeft(res, c.cfg.Now()); ok {
		it.Detail += fmt.Sprintf("; signatures valid for %s more", days(left))
		if left < minSigDays && it.Verdict != Fail {
			it.Verdict, it.Fix = Warn, "re-sign "+z+" now: its signatures expire in "+days(left)+", and then every answer is bogus"
		}
	}
	c.add(it)
	if p, err := c.resolve(ctx, z, dns.TypeNSEC3PARAM); err == nil {
		for _, n := range records[*dns.NSEC3PARAM](p) {
			np := Item{Group: g, Name: "NSEC3 parameters of " + z, Verdict: Pass,
				Detail: fmt.Sprintf("%d additional iterations, salt %q", n.Iterations, n.Salt), Evidence: []string{n.String()}}
			switch {
			case n.Iterations > maxIterations:
				np.Verdict, np.Fix = Fail, "set NSEC3 iterations to 0 and no salt (RFC 9276): validators treat more than 50-150 iterations as insecure, so no DANE"
			case n.Iterations > 0 || (n.Salt != "" && n.Salt != "-"):
				np.Verdict, np.Fix = Warn, "set NSEC3 iterations to 0 and no salt (RFC 9276 §3.1)"
			}
			c.add(np)
		}
	}
	return true
}

// days formats a duration in days (and hours below two days).
func days(d interface{ Hours() float64 }) string {
	h := d.Hours()
	if h < 48 {
		return fmt.Sprintf("%.0f hours", h)
	}
	return fmt.Sprintf("%.0f days", h/24)
}

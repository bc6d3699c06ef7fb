package roll

// The parent check (like Knot's ksk-submission and BIND's parental-agents): before the old KSK
// goes, every parental agent (a server of the parent zone) must serve, over TCP, the DS RRset
// that names the new key and not the old one, signed by a key of the parent's DNSKEY RRset,
// which that agent serves signed by itself, and Plan asks again after the parent's propagation
// delay before it believes it. The parent's keys are not validated up to a trust anchor: an
// attacker on the path to every agent, twice, could make the old key go early; name agents
// reached over paths you trust.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Checker asks a zone's parental agents for its DS RRset.
type Checker struct {
	Agents  []string      // host:port of the parent's authoritative servers
	Timeout time.Duration // per query; 0: 3 s
}

// ParentDS returns the DS RRset of zone that every agent serves, verified, with the largest
// TTL served; an error when an agent does not answer, answers without a valid signature, or
// the agents disagree.
func (c Checker) ParentDS(ctx context.Context, zone string) ([]*dns.DS, time.Duration, error) {
	if len(c.Agents) == 0 {
		return nil, 0, errors.New("no parental agents configured (parental_agents)")
	}
	zone = dns.CanonicalName(zone)
	labels := dns.SplitDomainName(zone)
	if len(labels) == 0 {
		return nil, 0, errors.New("the root zone has no parent")
	}
	var agreed []*dns.DS
	var ttl time.Duration
	for i, a := range c.Agents {
		dss, err := c.ask(ctx, a, zone)
		if err != nil {
			return nil, 0, fmt.Errorf("parental agent %s: %v", a, err)
		}
		if i > 0 && dsKey(dss) != dsKey(agreed) {
			return nil, 0, fmt.Errorf("the parental agents disagree: %s serves %s, %s serves %s", c.Agents[0], dsKey(agreed), a, dsKey(dss))
		}
		agreed = dss
		for _, ds := range dss {
			ttl = max(ttl, time.Duration(ds.Hdr.Ttl)*time.Second)
		}
	}
	return agreed, ttl, nil
}

func dsKey(dss []*dns.DS) string {
	var parts []string
	for _, ds := range dss {
		parts = append(parts, fmt.Sprintf("%d/%d/%d/%s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToLower(ds.Digest)))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no DS"
	}
	return strings.Join(parts, " ")
}

// ask queries one agent for the DS RRset of zone and verifies it.
func (c Checker) ask(ctx context.Context, agent, zone string) ([]*dns.DS, error) {
	r, err := c.query(ctx, agent, zone, dns.TypeDS)
	if err != nil {
		return nil, err
	}
	var dss []*dns.DS
	var sigs []*dns.RRSIG
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.DS:
			if dns.CanonicalName(rr.Hdr.Name) == zone {
				dss = append(dss, rr)
			}
		case *dns.RRSIG:
			if rr.TypeCovered == dns.TypeDS && dns.CanonicalName(rr.Hdr.Name) == zone {
				sigs = append(sigs, rr)
			}
		}
	}
	if len(dss) == 0 {
		// No DS: believed only with its signed proof, as a validator would (a zone goes
		// insecure on it).
		return nil, c.verifyNoDS(ctx, agent, zone, r)
	}
	if len(sigs) == 0 {
		return nil, errors.New("the DS RRset comes without RRSIG")
	}
	parent := dns.CanonicalName(sigs[0].SignerName)
	if !dns.IsSubDomain(parent, zone) || parent == zone {
		return nil, fmt.Errorf("the DS RRSIG is by %s, not by a parent of %s", parent, zone)
	}
	keys, err := c.parentKeys(ctx, agent, parent)
	if err != nil {
		return nil, err
	}
	rrs := make([]dns.RR, len(dss))
	for i, ds := range dss {
		rrs[i] = ds
	}
	if err := verifyAny(sigs, keys, rrs); err != nil {
		return nil, fmt.Errorf("the DS RRset does not verify with %s's DNSKEY: %v", parent, err)
	}
	return dss, nil
}

// verifyNoDS checks the denial of zone's DS in r, a NODATA answer: an NSEC at zone, or an
// NSEC3 matching it (RFC 5155 §8.5) or covering it with opt-out (§8.6, the closest encloser
// not checked), whose type bitmap lacks DS, signed by the parent's DNSKEY.
func (c Checker) verifyNoDS(ctx context.Context, agent, zone string, r *dns.Msg) error {
	sigs := map[string][]*dns.RRSIG{}
	for _, rr := range r.Ns {
		if sig, ok := rr.(*dns.RRSIG); ok {
			k := dns.CanonicalName(sig.Hdr.Name) + "/" + dns.TypeToString[sig.TypeCovered]
			sigs[k] = append(sigs[k], sig)
		}
	}
	for _, rr := range r.Ns {
		var bitmap []uint16
		switch rr := rr.(type) {
		case *dns.NSEC:
			if dns.CanonicalName(rr.Hdr.Name) != zone {
				continue
			}
			bitmap = rr.TypeBitMap
		case *dns.NSEC3:
			if !rr.Match(zone) && !(rr.Flags&1 == 1 && rr.Cover(zone)) {
				continue
			}
			bitmap = rr.TypeBitMap
			if !rr.Match(zone) {
				bitmap = nil // opt-out: the delegation has no NSEC3 of its own
			}
		default:
			continue
		}
		if slices.Contains(bitmap, dns.TypeDS) {
			return fmt.Errorf("the NSEC record for %s says it has a DS, but none was served", zone)
		}
		h := rr.Header()
		ss := sigs[dns.CanonicalName(h.Name)+"/"+dns.TypeToString[h.Rrtype]]
		if len(ss) == 0 {
			return fmt.Errorf("the proof that %s has no DS comes without RRSIG", zone)
		}
		parent := dns.CanonicalName(ss[0].SignerName)
		if !dns.IsSubDomain(parent, zone) || parent == zone {
			return fmt.Errorf("the proof that %s has no DS is signed by %s, not by a parent", zone, parent)
		}
		keys, err := c.parentKeys(ctx, agent, parent)
		if err != nil {
			return err
		}
		if err := verifyAny(ss, keys, []dns.RR{rr}); err != nil {
			return fmt.Errorf("the proof that %s has no DS does not verify with %s's DNSKEY: %v", zone, parent, err)
		}
		return nil
	}
	return fmt.Errorf("no DS for %s, and no NSEC or NSEC3 proof of it", zone)
}

// parentKeys returns the parent's DNSKEY RRset as the agent serves it, verified by one of its
// own keys.
func (c Checker) parentKeys(ctx context.Context, agent, parent string) ([]*dns.DNSKEY, error) {
	r, err := c.query(ctx, agent, parent, dns.TypeDNSKEY)
	if err != nil {
		return nil, err
	}
	var keys []*dns.DNSKEY
	var rrs []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.DNSKEY:
			keys = append(keys, rr)
			rrs = append(rrs, rr)
		case *dns.RRSIG:
			if rr.TypeCovered == dns.TypeDNSKEY {
				sigs = append(sigs, rr)
			}
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no DNSKEY RRset for %s", parent)
	}
	if err := verifyAny(sigs, keys, rrs); err != nil {
		return nil, fmt.Errorf("%s's DNSKEY RRset does not verify with its own keys: %v", parent, err)
	}
	return keys, nil
}

// verifyAny says whether one of sigs, valid now, verifies rrs with one of keys.
func verifyAny(sigs []*dns.RRSIG, keys []*dns.DNSKEY, rrs []dns.RR) error {
	if len(sigs) == 0 {
		return errors.New("no RRSIG")
	}
	var last error
	for _, sig := range sigs {
		if !sig.ValidityPeriod(time.Now()) {
			last = fmt.Errorf("RRSIG by key %d is outside its validity period", sig.KeyTag)
			continue
		}
		i := slices.IndexFunc(keys, func(k *dns.DNSKEY) bool { return k.KeyTag() == sig.KeyTag && k.Algorithm == sig.Algorithm })
		if i < 0 {
			last = fmt.Errorf("no DNSKEY %d", sig.KeyTag)
			continue
		}
		if err := sig.Verify(keys[i], rrs); err != nil {
			last = fmt.Errorf("RRSIG by key %d: %v", sig.KeyTag, err)
			continue
		}
		return nil
	}
	return last
}

// query asks agent without recursion, with DO, over TCP. The answer must be authoritative and
// NOERROR.
func (c Checker) query(ctx context.Context, agent, name string, qtype uint16) (*dns.Msg, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 3 * time.Second
	}
	if _, _, err := net.SplitHostPort(agent); err != nil {
		agent = net.JoinHostPort(agent, "53")
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	m.SetEdns0(4096, true)
	// TCP: no answer spoofed off-path in one datagram (RFC 7766 §2 on connection use).
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl := &dns.Client{Net: "tcp", Timeout: timeout}
	r, _, err := cl.ExchangeContext(qctx, m, agent)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("%s %s: the answer is not authoritative (is it a server of the parent zone?)", name, dns.TypeToString[qtype])
	}
	return r, nil
}

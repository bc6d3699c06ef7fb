package tlsasync

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Target is where a zone's records are changed: its primary server, which takes RFC 2136
// updates signed with Key.
type Target struct {
	Zone    string // FQDN
	Server  string // host:port of the primary
	Key     *Key   // nil: unsigned updates (only servers that allow them by address)
	Timeout time.Duration
}

func (t Target) String() string { return fmt.Sprintf("zone %s at %s", t.Zone, t.Server) }

func (t Target) client() *dns.Client {
	c := &dns.Client{Net: "tcp", Timeout: t.timeout()}
	if t.Key != nil {
		c.TsigSecret = map[string]string{t.Key.Name: t.Key.Secret}
	}
	return c
}

func (t Target) timeout() time.Duration {
	if t.Timeout > 0 {
		return t.Timeout
	}
	return 10 * time.Second
}

// UpdateError is an update the server did not apply.
type UpdateError struct {
	Target Target
	Owner  string
	Rcode  int
	TSIG   uint16 // the TSIG error of the response (BADKEY, BADSIG, BADTIME), if any
}

func (e *UpdateError) Error() string {
	why := ""
	switch e.Rcode {
	case dns.RcodeRefused:
		why = ": the server's update policy does not allow it (allow-update / update-policy in BIND, an acl with action update in Knot)"
		if e.Target.Key == nil {
			why = ": the server's update policy does not allow it; give the TSIG key it wants (-tsig)"
		}
	case dns.RcodeNotAuth:
		why = ": the server is not authoritative for the zone, or does not accept the key for updates (Knot answers NOTAUTH where BIND answers REFUSED)"
	case dns.RcodeNotZone:
		why = ": the name is not in the zone"
	case dns.RcodeServerFailure:
		why = ": the server failed (its log says why)"
	}
	if e.TSIG != 0 {
		why += fmt.Sprintf(" (TSIG error %s: check the key's name, algorithm and secret, and the clocks)", dns.RcodeToString[int(e.TSIG)])
	}
	return fmt.Sprintf("update of %s TLSA in %s refused with %s%s", e.Owner, e.Target, dns.RcodeToString[e.Rcode], why)
}

// Read returns the TLSA records the primary serves at owner (none for NXDOMAIN or NODATA).
func (t Target) Read(ctx context.Context, owner string) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(owner), dns.TypeTLSA)
	m.RecursionDesired = false
	r, _, err := t.client().ExchangeContext(ctx, m, t.Server)
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s TLSA: %v", t, owner, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s: reading %s TLSA: %s", t, owner, dns.RcodeToString[r.Rcode])
	}
	if !r.Authoritative {
		return nil, fmt.Errorf("%s: reading %s TLSA: the answer is not authoritative: is this the zone's primary?", t, owner)
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		if !strings.EqualFold(rr.Header().Name, owner) {
			continue
		}
		switch rr.Header().Rrtype {
		case dns.TypeTLSA:
			out = append(out, rr)
		case dns.TypeCNAME, dns.TypeDNAME:
			// An update adding TLSA at a CNAME is ignored by the server (RFC 2136 §3.4.2.2)
			// with NOERROR: say so instead.
			return nil, fmt.Errorf("%s: %s is an alias (%s): update the records at its target, or remove the alias", t, owner, strings.Join(strings.Fields(rr.String())[3:], " "))
		}
	}
	return out, nil
}

// Change is what one Replace did.
type Change struct {
	Owner            string
	Added, Removed   []string // "U S M DATA"
	TTLFrom, TTLTo   uint32   // the RRset's TTL, when it changed
	Attempts         int      // updates sent (more than one when another edit raced ours)
	Served, Desired  []string
	ServedTTL        uint32 // the TTL of the RRset as served before the update (0: none)
	UpdateSent       bool
	PrerequisiteUsed string // the RFC 2136 prerequisite the update carried
}

// Unchanged reports whether the server already served the desired records.
func (c Change) Unchanged() bool { return !c.UpdateSent }

// maxAttempts bounds the retries of an update whose prerequisite failed because the RRset
// changed between our read and our update.
const maxAttempts = 3

// Replace makes the TLSA RRset at owner equal to desired with a minimal update: only the
// records that differ are deleted and added. The update carries the RRset as read as its
// prerequisite (RFC 2136 §2.4.2, "RRset exists, value dependent", or §2.4.3 "RRset does not
// exist" when there was none), so that an edit made meanwhile by someone else is not
// overwritten: the server answers NXRRSET or YXRRSET, and Replace reads again and retries.
func (t Target) Replace(ctx context.Context, owner string, desired []dns.RR) (Change, error) {
	owner = dns.CanonicalName(owner)
	ch := Change{Owner: owner, Desired: texts(desired)}
	for ch.Attempts < maxAttempts {
		served, err := t.Read(ctx, owner)
		if err != nil {
			return ch, err
		}
		ch.Served = texts(served)
		if len(served) > 0 {
			ch.ServedTTL = served[0].Header().Ttl
		}
		ch.Added, ch.Removed = diff(ch.Desired, ch.Served)
		ttl := uint32(0)
		if len(desired) > 0 {
			ttl = desired[0].Header().Ttl
		}
		ttlChange := len(served) > 0 && len(desired) > 0 && served[0].Header().Ttl != ttl
		if len(ch.Added) == 0 && len(ch.Removed) == 0 && !ttlChange {
			return ch, nil
		}
		m := new(dns.Msg)
		m.SetUpdate(t.Zone)
		if len(served) == 0 {
			probe := &dns.ANY{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTLSA, Class: dns.ClassINET}}
			m.RRsetNotUsed([]dns.RR{probe})
			ch.PrerequisiteUsed = "RRset does not exist"
		} else {
			pre := make([]dns.RR, len(served))
			for i, rr := range served {
				pre[i] = dns.Copy(rr)
				pre[i].Header().Ttl = 0 // RFC 2136 §2.4.2: TTL 0 in the prerequisite
			}
			m.Used(pre)
			ch.PrerequisiteUsed = "RRset exists (value dependent)"
		}
		if ttlChange {
			// A TTL is the RRset's (RFC 2181 §5.2): replace it whole.
			ch.TTLFrom, ch.TTLTo = served[0].Header().Ttl, ttl
			m.RemoveRRset([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTLSA, Class: dns.ClassINET}}})
			m.Insert(desired)
		} else {
			var del, add []dns.RR
			for _, rr := range served {
				if slices.Contains(ch.Removed, text(rr)) {
					del = append(del, rr)
				}
			}
			for _, rr := range desired {
				if slices.Contains(ch.Added, text(rr)) {
					add = append(add, rr)
				}
			}
			if len(del) > 0 {
				m.Remove(del)
			}
			if len(add) > 0 {
				m.Insert(add)
			}
		}
		if t.Key != nil {
			m.SetTsig(t.Key.Name, t.Key.Algorithm, 300, time.Now().Unix())
		}
		ch.Attempts++
		ch.UpdateSent = true
		r, _, err := t.client().ExchangeContext(ctx, m, t.Server)
		if r != nil && r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNXRrset && r.Rcode != dns.RcodeYXRrset {
			// A refusal of a request whose TSIG the server did not accept comes unsigned:
			// the rcode and TSIG error say more than the failed verification.
			ue := &UpdateError{Target: t, Owner: owner, Rcode: r.Rcode}
			if ts := r.IsTsig(); ts != nil {
				ue.TSIG = ts.Error
			}
			return ch, ue
		}
		if err != nil {
			if r != nil {
				return ch, fmt.Errorf("update of %s TLSA in %s: answered %s, but the answer's TSIG does not verify (%v): wrong key?", owner, t, dns.RcodeToString[r.Rcode], err)
			}
			return ch, fmt.Errorf("update of %s TLSA in %s: %v", owner, t, err)
		}
		if t.Key != nil && r.IsTsig() == nil {
			// Only a refusal of a request the server could not authenticate may come
			// unsigned (RFC 8945 §5.3): an unsigned success is not the server's word.
			return ch, fmt.Errorf("update of %s TLSA in %s: the answer (%s) is not signed with the key: not from the server?", owner, t, dns.RcodeToString[r.Rcode])
		}
		switch r.Rcode {
		case dns.RcodeSuccess:
			return ch, nil
		case dns.RcodeNXRrset, dns.RcodeYXRrset:
			continue // the RRset changed since we read it: read again
		}
	}
	return ch, fmt.Errorf("update of %s TLSA in %s: the RRset changed under us %d times in a row (another writer?); try again", owner, t, maxAttempts)
}

// text is a TLSA record as "U S M DATA" (lower-case hex).
func text(rr dns.RR) string {
	if t, ok := rr.(*dns.TLSA); ok {
		return fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate))
	}
	return rr.String()
}

func texts(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, text(rr))
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// diff returns what is in want and not in have, and the other way round.
func diff(want, have []string) (add, del []string) {
	for _, w := range want {
		if !slices.Contains(have, w) {
			add = append(add, w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) {
			del = append(del, h)
		}
	}
	return add, del
}

// Discover finds the zone of owner and its primary: the SOA the resolver at resolverAddr
// (host:port) returns for owner (in the answer at an apex, else in the authority section), its
// MNAME (RFC 1996 §2.1's primary master) and MNAME's first address, port 53.
func Discover(ctx context.Context, owner, resolverAddr string, timeout time.Duration) (zone, primary string, err error) {
	c := &dns.Client{Timeout: timeout}
	ask := func(name string, qtype uint16) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		r, _, err := c.ExchangeContext(ctx, m, resolverAddr)
		if err == nil && r.Truncated {
			tc := &dns.Client{Net: "tcp", Timeout: timeout}
			r, _, err = tc.ExchangeContext(ctx, m, resolverAddr)
		}
		if err != nil {
			return nil, fmt.Errorf("asking %s for %s %s: %v", resolverAddr, name, dns.TypeToString[qtype], err)
		}
		return r, nil
	}
	r, err := ask(owner, dns.TypeSOA)
	if err != nil {
		return "", "", err
	}
	var soa *dns.SOA
	for _, rr := range append(append([]dns.RR{}, r.Answer...), r.Ns...) {
		if s, ok := rr.(*dns.SOA); ok {
			soa = s
			break
		}
	}
	if soa == nil {
		return "", "", fmt.Errorf("finding the zone of %s: %s returned no SOA (%s); give -zone and -server", owner, resolverAddr, dns.RcodeToString[r.Rcode])
	}
	zone = dns.CanonicalName(soa.Hdr.Name)
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		r, err := ask(soa.Ns, qt)
		if err != nil {
			return zone, "", err
		}
		for _, rr := range r.Answer {
			switch a := rr.(type) {
			case *dns.A:
				return zone, net.JoinHostPort(a.A.String(), "53"), nil
			case *dns.AAAA:
				return zone, net.JoinHostPort(a.AAAA.String(), "53"), nil
			}
		}
	}
	return zone, "", fmt.Errorf("zone %s: its SOA names %s as the primary, which has no address; give -server", zone, soa.Ns)
}

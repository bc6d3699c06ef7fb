package resolver

import (
	"testing"

	"github.com/miekg/dns"
)

// forge installs a rewrite of the answers to name/qtype on the server of zone origin for
// the duration of the test.
func forge(t *testing.T, origin, name string, qtype uint16, f func(z *tzone, resp *dns.Msg)) {
	t.Helper()
	s := fix.servers[fix.zones[origin].ip]
	k := fkey(name, qtype)
	s.mu.Lock()
	s.rewrite[k] = f
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.rewrite, k)
		s.mu.Unlock()
	})
}

// keep returns the records of rrs (RRSIGs by the type they cover) for which ok is true.
func keep(rrs []dns.RR, ok func(owner string, t uint16) bool) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		t := rr.Header().Rrtype
		if s, isSig := rr.(*dns.RRSIG); isSig {
			t = s.TypeCovered
		}
		if ok(canonical(rr.Header().Name), t) {
			out = append(out, rr)
		}
	}
	return out
}

// Validly signed records used to prove what they do not prove must be rejected.
func TestForgedDenials(t *testing.T) {
	r := New(fix.config(fix.base))
	cases := []struct {
		name   string
		zone   string
		qname  string
		qtype  uint16
		forge  func(z *tzone, resp *dns.Msg)
		want   want
		remark string
	}{
		{
			name: "NXDOMAIN for an existing name, with the apex NSEC", zone: "example.test.",
			qname: "www.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Rcode = dns.RcodeNameError
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.nsecs[z.origin], true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus, reason: "no NSEC proves the name absent"},
		},
		{
			name: "NXDOMAIN for an existing name, with its own NSEC", zone: "example.test.",
			qname: "www.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Rcode = dns.RcodeNameError
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.nsecs["www.example.test."], true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus, reason: "proves it exists"},
		},
		{
			name: "NODATA for a type the NSEC lists", zone: "example.test.",
			qname: "www.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.nsecs["www.example.test."], true)...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, reason: "lists A"},
		},
		{
			name: "NODATA for a CNAME owner", zone: "example.test.",
			qname: "mail.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.nsecs["mail.example.test."], true)...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, reason: "lists CNAME"},
		},
		{
			name: "NXDOMAIN without the wildcard proof", zone: "example.test.",
			qname: "nope.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Ns = append(z.soa(true), z.nsecRRs(z.predecessor("nope.example.test."), true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus, reason: "wildcard"},
		},
		{
			name: "NXDOMAIN denying a name that matches the wildcard", zone: "example.test.",
			qname: "foo.users.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Rcode = dns.RcodeNameError
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.predecessor("foo.users.example.test."), true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus, reason: "wildcard exists"},
		},
		{
			name: "wildcard expansion without the proof that the name does not exist", zone: "example.test.",
			qname: "foo.users.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) { resp.Ns = nil },
			want:  want{verdict: Bogus, ede: dns.ExtendedErrorCodeNSECMissing, answer: dns.TypeA, reason: "wildcard"},
		},
		{
			name: "wildcard expansion with an NSEC that does not cover the name", zone: "example.test.",
			qname: "foo.users.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) { resp.Ns = z.nsecRRs(z.nsecs[z.origin], true) },
			want:  want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, answer: dns.TypeA, reason: "no NSEC proves foo.users.example.test. absent"},
		},
		{
			name: "a wildcard RRSIG moved onto an existing name", zone: "example.test.",
			qname: "www.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = nil
				for _, rr := range z.withSigs("*.users.example.test.", dns.TypeA, z.data["*.users.example.test."][dns.TypeA], true) {
					c := dns.Copy(rr)
					c.Header().Name = "www.example.test."
					resp.Answer = append(resp.Answer, c)
				}
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, answer: dns.TypeA, reason: "verification failed"},
		},
		{
			name: "no DS for a signed child, without proof", zone: "test.",
			qname: "example.test.", qtype: dns.TypeDS,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = nil
				resp.Ns = z.soa(true)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing},
		},
		{
			name: "no DS for a signed child, proven by the NSEC of another delegation", zone: "test.",
			qname: "example.test.", qtype: dns.TypeDS,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsecRRs(z.nsecs["unsigned.test."], true)...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus},
		},
		{
			name: "NSEC3 NXDOMAIN without the wildcard proof", zone: "nsec3.test.",
			qname: "nope.nsec3.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Ns = append(z.soa(true), z.nsec3RRs(z.n3match("nsec3.test."), true)...)
				resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover("nope.nsec3.test."), true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus},
		},
		{
			name: "NSEC3 NXDOMAIN for an existing name", zone: "nsec3.test.",
			qname: "www.nsec3.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Rcode = dns.RcodeNameError
				resp.Answer = nil
				resp.Ns = append(z.soa(true), z.nsec3RRs(z.n3match("nsec3.test."), true)...)
				resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover("www.nsec3.test."), true)...)
				resp.Ns = addUnique(resp.Ns, z.nsec3RRs(z.n3cover("*.nsec3.test."), true)...)
			},
			want: want{verdict: Bogus, rcode: dns.RcodeNameError, ede: dns.ExtendedErrorCodeDNSBogus},
		},
		{
			name: "NSEC3 wildcard expansion without proof", zone: "nsec3.test.",
			qname: "x.wild.nsec3.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) { resp.Ns = nil },
			want:  want{verdict: Bogus, ede: dns.ExtendedErrorCodeNSECMissing, answer: dns.TypeA},
		},
		{
			name: "a signature stripped from a positive answer", zone: "example.test.",
			qname: "www.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = keep(resp.Answer, func(_ string, t uint16) bool { return t != dns.TypeA })
				resp.Answer = append(resp.Answer, z.data["www.example.test."][dns.TypeA]...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing, answer: dns.TypeA},
		},
		{
			name: "a wildcard-expanded NSEC as proof", zone: "example.test.",
			qname: "foo.users.example.test.", qtype: dns.TypeTXT,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Ns = z.soa(true)
				for _, rr := range z.nsecRRs(z.nsecs["*.users.example.test."], true) {
					c := dns.Copy(rr)
					c.Header().Name = "foo.users.example.test."
					resp.Ns = append(resp.Ns, c)
				}
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeDNSBogus, reason: "wildcard expansion: no proof"},
		},
		{
			name: "an unsigned DNAME", zone: "example.test.",
			qname: "www.dn.example.test.", qtype: dns.TypeA,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = keep(resp.Answer, func(_ string, t uint16) bool { return t != dns.TypeDNAME })
				resp.Answer = append(z.data["dn.example.test."][dns.TypeDNAME], resp.Answer...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing},
		},
		{
			name: "a stripped DNSKEY signature", zone: "example.test.",
			qname: "example.test.", qtype: dns.TypeDNSKEY,
			forge: func(z *tzone, resp *dns.Msg) {
				resp.Answer = keep(resp.Answer, func(_ string, t uint16) bool { return t != dns.TypeDNSKEY })
				resp.Answer = append(resp.Answer, z.data[z.origin][dns.TypeDNSKEY]...)
			},
			want: want{verdict: Bogus, ede: dns.ExtendedErrorCodeRRSIGsMissing, answer: dns.TypeDNSKEY},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forge(t, c.zone, c.qname, c.qtype, c.forge)
			q := c.qname
			if c.qtype == dns.TypeDS { // the broken DS breaks what lies below
				q = "www." + c.qname
			}
			qt := c.qtype
			if c.qtype == dns.TypeDS {
				qt = dns.TypeA
			}
			res := resolve(t, r, q, qt)
			w := c.want
			if c.qtype == dns.TypeDS {
				w.answer = dns.TypeA
			}
			check(t, res, q, qt, w)
			t.Logf("%s: %s EDE %d: %s", c.name, res.Verdict, res.EDE, res.Reason)
		})
	}
}

func TestNSEC3OptOut(t *testing.T) {
	r := New(fix.config(fix.base))
	res := resolve(t, r, "www.child.optout.test.", dns.TypeA)
	check(t, res, "www.child.optout.test.", dns.TypeA, want{verdict: Insecure, answer: dns.TypeA, reason: "opt-out"})
	res = resolve(t, r, "www.optout.test.", dns.TypeA)
	check(t, res, "www.optout.test.", dns.TypeA, want{verdict: Secure, answer: dns.TypeA})
	res = resolve(t, r, "nope.optout.test.", dns.TypeA)
	check(t, res, "nope.optout.test.", dns.TypeA, want{verdict: Insecure, rcode: dns.RcodeNameError, reason: "opt-out"})
}

package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// answerCase is one query of the answer-class table. want is what the zone file and the DNS
// rules say (written by hand); the test first checks that the independent zone model agrees,
// then asks every judge.
type answerCase struct {
	name  string
	qname string
	qtype uint16
	want  Kind
	// skipUnbound/skipDelv exclude a judge for a reason given in the case's name.
	skipUnbound, skipDelv bool
	// extra checks on the direct answer with DO (optional).
	check func(t *testing.T, l *Lab, r *dns.Msg)
	// hashed: 0 in every denial mode; -1 only in the NSEC modes, 1 only in the NSEC3 modes.
	hashed int
}

var answerCases = []answerCase{
	// Existing data.
	{name: "apex SOA", qname: "example.test", qtype: dns.TypeSOA, want: Positive},
	{name: "apex NS", qname: "example.test", qtype: dns.TypeNS, want: Positive},
	{name: "apex MX", qname: "example.test", qtype: dns.TypeMX, want: Positive},
	{name: "apex TXT", qname: "example.test", qtype: dns.TypeTXT, want: Positive},
	{name: "apex A", qname: "example.test", qtype: dns.TypeA, want: Positive},
	{name: "apex DNSKEY", qname: "example.test", qtype: dns.TypeDNSKEY, want: Positive},
	{name: "apex CDS", qname: "example.test", qtype: dns.TypeCDS, want: Positive},
	{name: "apex CDNSKEY", qname: "example.test", qtype: dns.TypeCDNSKEY, want: Positive},
	{name: "mx1 A", qname: "mx1.example.test", qtype: dns.TypeA, want: Positive},
	{name: "mx1 AAAA", qname: "mx1.example.test", qtype: dns.TypeAAAA, want: Positive},
	{name: "mx2 AAAA", qname: "mx2.example.test", qtype: dns.TypeAAAA, want: Positive},
	{name: "www A", qname: "www.example.test", qtype: dns.TypeA, want: Positive},
	{name: "ns1 A", qname: "ns1.example.test", qtype: dns.TypeA, want: Positive},
	{name: "TLSA mx1", qname: "_25._tcp.mx1.example.test", qtype: dns.TypeTLSA, want: Positive},
	{name: "TLSA mx2", qname: "_25._tcp.mx2.example.test", qtype: dns.TypeTLSA, want: Positive},
	{name: "DMARC TXT", qname: "_dmarc.example.test", qtype: dns.TypeTXT, want: Positive},
	{name: "MTA-STS TXT", qname: "_mta-sts.example.test", qtype: dns.TypeTXT, want: Positive},
	{name: "TLSRPT TXT", qname: "_smtp._tls.example.test", qtype: dns.TypeTXT, want: Positive},

	// CNAMEs.
	{name: "CNAME chain webmail A", qname: "webmail.example.test", qtype: dns.TypeA, want: Positive,
		check: func(t *testing.T, l *Lab, r *dns.Msg) {
			var types []string
			for _, rr := range r.Answer {
				if rr.Header().Rrtype != dns.TypeRRSIG {
					types = append(types, strings.ToLower(rr.Header().Name)+"/"+dns.TypeToString[rr.Header().Rrtype])
				}
			}
			want := []string{"webmail.example.test./CNAME", "mail.example.test./CNAME", "mx1.example.test./A"}
			for _, w := range want {
				if !slices.Contains(types, w) {
					t.Errorf("webmail A: answer %v lacks %s", types, w)
				}
			}
		}},
	{name: "CNAME mail AAAA", qname: "mail.example.test", qtype: dns.TypeAAAA, want: Positive},
	{name: "CNAME query webmail CNAME", qname: "webmail.example.test", qtype: dns.TypeCNAME, want: Positive},
	{name: "CNAME chain to NODATA webmail TXT", qname: "webmail.example.test", qtype: dns.TypeTXT, want: NoData},

	// NXDOMAIN.
	{name: "NXDOMAIN nope", qname: "nope.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "NXDOMAIN below host", qname: "x.mx1.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "NXDOMAIN last in order", qname: "zzzz.example.test", qtype: dns.TypeMX, want: NXDomain},
	{name: "NXDOMAIN first in order", qname: "0.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "NXDOMAIN deep", qname: "a.b.c.example.test", qtype: dns.TypeTXT, want: NXDomain},
	{name: "NXDOMAIN sibling TLSA", qname: "_26._tcp.mx1.example.test", qtype: dns.TypeTLSA, want: NXDomain},
	{name: "NXDOMAIN below TXT owner", qname: "x._dmarc.example.test", qtype: dns.TypeTXT, want: NXDomain},
	{name: "NXDOMAIN below CNAME owner", qname: "x.mail.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "NXDOMAIN near wildcard parent", qname: "x.userz.example.test", qtype: dns.TypeA, want: NXDomain},

	// NODATA.
	{name: "NODATA mx1 TXT", qname: "mx1.example.test", qtype: dns.TypeTXT, want: NoData},
	{name: "NODATA apex AAAA", qname: "example.test", qtype: dns.TypeAAAA, want: NoData},
	{name: "NODATA www MX", qname: "www.example.test", qtype: dns.TypeMX, want: NoData},
	{name: "NODATA dmarc A", qname: "_dmarc.example.test", qtype: dns.TypeA, want: NoData},
	{name: "NODATA mx1 CNAME", qname: "mx1.example.test", qtype: dns.TypeCNAME, want: NoData},
	{name: "NODATA DS at non-delegation", qname: "mx1.example.test", qtype: dns.TypeDS, want: NoData},
	{name: "NODATA apex CAA", qname: "example.test", qtype: dns.TypeCAA, want: NoData},
	{name: "NODATA apex NSEC3PARAM", qname: "example.test", qtype: dns.TypeNSEC3PARAM, want: NoData, hashed: -1},
	{name: "apex NSEC3PARAM", qname: "example.test", qtype: dns.TypeNSEC3PARAM, want: Positive, hashed: 1},
	{name: "NODATA apex NSEC in an NSEC3 zone", qname: "example.test", qtype: dns.TypeNSEC, want: Unknown, hashed: 1,
		check: func(t *testing.T, l *Lab, r *dns.Msg) {
			if len(r.Answer) != 0 || r.Rcode != dns.RcodeSuccess {
				t.Errorf("NSEC at the apex of a zone denied with NSEC3: %s with %d answers, want NODATA", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
		}},
	{name: "ENT NODATA _tcp.mx1 A", qname: "_tcp.mx1.example.test", qtype: dns.TypeA, want: NoData},
	{name: "ENT NODATA _tls A", qname: "_tls.example.test", qtype: dns.TypeA, want: NoData},
	{name: "ENT NODATA wildcard parent users A", qname: "users.example.test", qtype: dns.TypeA, want: NoData},

	// Wildcards.
	{name: "wildcard A", qname: "foo.users.example.test", qtype: dns.TypeA, want: Positive},
	{name: "wildcard MX", qname: "foo.users.example.test", qtype: dns.TypeMX, want: Positive},
	{name: "wildcard deep A", qname: "a.b.users.example.test", qtype: dns.TypeA, want: Positive},
	{name: "wildcard NODATA TXT", qname: "foo.users.example.test", qtype: dns.TypeTXT, want: NoData},
	{name: "wildcard deep NODATA AAAA", qname: "x.y.z.users.example.test", qtype: dns.TypeAAAA, want: NoData},
	{name: "wildcard owner itself A", qname: "*.users.example.test", qtype: dns.TypeA, want: Positive},

	// Delegations: the DS RRsets live in the parent.
	{name: "DS at signed delegation", qname: "signed.example.test", qtype: dns.TypeDS, want: Positive},
	{name: "DS at insecure delegation", qname: "unsigned.example.test", qtype: dns.TypeDS, want: NoData},

	// Mixed case.
	{name: "mixed case A", qname: "Mx1.ExAmple.TEST", qtype: dns.TypeA, want: Positive,
		check: func(t *testing.T, l *Lab, r *dns.Msg) {
			if len(r.Answer) == 0 || r.Answer[0].Header().Name != "Mx1.ExAmple.TEST." {
				t.Errorf("owner name of the answer should keep the query's case Mx1.ExAmple.TEST.: %v", r.Answer)
			}
		}},
	{name: "mixed case CNAME chain", qname: "WebMail.Example.Test", qtype: dns.TypeA, want: Positive},
	{name: "mixed case TLSA", qname: "_25._TCP.MX1.example.test", qtype: dns.TypeTLSA, want: Positive},
	{name: "mixed case NXDOMAIN", qname: "NoPe.Example.Test", qtype: dns.TypeA, want: NXDomain},
	{name: "mixed case NODATA", qname: "MX1.example.TEST", qtype: dns.TypeTXT, want: NoData},
	{name: "mixed case wildcard", qname: "FOO.Users.Example.Test", qtype: dns.TypeMX, want: Positive},

	// NSEC query at the apex: NOERROR, secure; an NSEC owned by the apex lists the apex types.
	{name: "apex NSEC", qname: "example.test", qtype: dns.TypeNSEC, want: Unknown, hashed: -1,
		check: func(t *testing.T, l *Lab, r *dns.Msg) {
			for _, rr := range r.Answer {
				n, ok := rr.(*dns.NSEC)
				if !ok || !strings.EqualFold(n.Hdr.Name, "example.test.") {
					continue
				}
				for _, must := range []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeA, dns.TypeMX, dns.TypeTXT, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC} {
					if !slices.Contains(n.TypeBitMap, must) {
						t.Errorf("apex NSEC bitmap %v lacks %s", typeNames(n.TypeBitMap), typeString(must))
					}
				}
				for _, mustNot := range []uint16{dns.TypeAAAA, dns.TypeDS, dns.TypeCNAME, dns.TypeNSEC3PARAM} {
					if slices.Contains(n.TypeBitMap, mustNot) {
						t.Errorf("apex NSEC bitmap %v has %s", typeNames(n.TypeBitMap), typeString(mustNot))
					}
				}
			}
		}},

	// Names at the edges of the canonical order and of the length limits, where a signer that
	// synthesizes NSEC intervals (minimal mode) must still cover exactly the query name.
	{name: "edge NXDOMAIN right after an owner with descendants", qname: `mx1\000.example.test`, qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN first possible name", qname: `\000.example.test`, qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN binary label", qname: `mx1\001.example.test`, qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN after the wildcard parent", qname: `users\000.example.test`, qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN below the wildcard owner", qname: "x.*.users.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN asterisk at apex", qname: "*.example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "edge wildcard with odd label", qname: "!.users.example.test", qtype: dns.TypeA, want: Positive},
	{name: "edge NXDOMAIN 253-character name", qname: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." +
		strings.Repeat("c", 63) + "." + strings.Repeat("d", 48) + ".example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "edge NXDOMAIN maximal octets", qname: strings.Repeat(`\255`, 63) + "." + strings.Repeat(`\255`, 63) + "." +
		strings.Repeat(`\255`, 63) + "." + strings.Repeat("z", 48) + ".example.test", qtype: dns.TypeA, want: NXDomain},
	{name: "edge wildcard maximal length", qname: strings.Repeat("w", 63) + "." + strings.Repeat("x", 63) + "." +
		strings.Repeat("y", 63) + "." + strings.Repeat("z", 42) + ".users.example.test", qtype: dns.TypeMX, want: Positive},

	// NSEC and RRSIG may coexist with a CNAME (RFC 4035 §2.5, RFC 2181 §10.1 as updated by
	// RFC 4034): a query for them at a CNAME owner is answered from the owner, not by following
	// the CNAME (delv rejects a CNAME answer for NSEC as "CNAME response for NSEC RR").
	{name: "NSEC at CNAME owner", qname: "webmail.example.test", qtype: dns.TypeNSEC, want: Unknown},

	// The second zone: a TXT too big for 512 bytes, a CNAME into example.test, a wildcard.
	{name: "lab2 SOA", qname: "lab2.test", qtype: dns.TypeSOA, want: Positive},
	{name: "lab2 big TXT", qname: "big.lab2.test", qtype: dns.TypeTXT, want: Positive},
	{name: "lab2 CNAME into example.test", qname: "alias.lab2.test", qtype: dns.TypeA, want: Positive},
	{name: "lab2 wildcard TXT", qname: "x.wild.lab2.test", qtype: dns.TypeTXT, want: Positive},
	{name: "lab2 NXDOMAIN", qname: "nx.lab2.test", qtype: dns.TypeA, want: NXDomain},
	{name: "lab2 upper-case owner", qname: "upper.lab2.test", qtype: dns.TypeA, want: Positive},
	{name: "lab2 CNAME to upper-case target", qname: "alias2.lab2.test", qtype: dns.TypeA, want: Positive},
	{name: "lab2 ENT of mixed-case owner", qname: "case.lab2.test", qtype: dns.TypeA, want: NoData},
	{name: "lab2 mixed-case owner", qname: "mixed.case.lab2.test", qtype: dns.TypeTXT, want: Positive},
	{name: "lab2 escaped dot in label", qname: `dot\.label.lab2.test`, qtype: dns.TypeTXT, want: Positive},
	{name: "lab2 NXDOMAIN right of an escaped dot", qname: "label.lab2.test", qtype: dns.TypeTXT, want: NXDomain},
	{name: "lab2 binary label", qname: `\000x.lab2.test`, qtype: dns.TypeA, want: Positive},
	{name: "lab2 SRV upper-case target", qname: "_sip._udp.lab2.test", qtype: dns.TypeSRV, want: Positive},
	{name: "lab2 NAPTR upper-case replacement", qname: "naptr.lab2.test", qtype: dns.TypeNAPTR, want: Positive},
	{name: "lab2 HTTPS", qname: "svc.lab2.test", qtype: dns.TypeHTTPS, want: Positive},
	{name: "lab2 SVCB", qname: "svc.lab2.test", qtype: dns.TypeSVCB, want: Positive},
	{name: "lab2 CAA", qname: "svc.lab2.test", qtype: dns.TypeCAA, want: Positive},
	{name: "lab2 SSHFP", qname: "svc.lab2.test", qtype: dns.TypeSSHFP, want: Positive},
	{name: "lab2 unknown type", qname: "unk.lab2.test", qtype: 65280, want: Positive},
	{name: "lab2 empty TXT", qname: "empty.lab2.test", qtype: dns.TypeTXT, want: Positive},
	{name: "lab2 NODATA beside HTTPS", qname: "svc.lab2.test", qtype: dns.TypeA, want: NoData},
}

// TestAnswers asks every judge about every answer class, in both denial modes.
func TestAnswers(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			for _, c := range answerCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					runAnswerCase(t, l, c)
				})
			}
		})
	}
}

// runAnswerCase checks one case with the zone model and then with every judge.
func runAnswerCase(t *testing.T, l *Lab, c answerCase) {
	t.Helper()
	if h := hashedMode(l.ModeFor(canon(c.qname))); c.hashed == 1 && !h || c.hashed == -1 && h {
		t.Skipf("for the %s denial modes only", map[int]string{1: "NSEC3", -1: "NSEC"}[c.hashed])
	}
	if l.Zones.ZoneFor(c.qname) == nil {
		t.Skipf("%s is not served by this lab", c.qname)
	}
	e := l.Zones.Resolve(c.qname, c.qtype)
	if e.Kind != c.want {
		t.Fatalf("test bug: the zone model says %s for %s %s, the table says %s",
			e.Kind, c.qname, typeString(c.qtype), c.want)
	}
	t.Run("direct", func(t *testing.T) {
		for _, p := range JudgeDirect(l, c.qname, c.qtype, e) {
			t.Error(p)
		}
		if c.check != nil {
			r, err := QueryFull(l.Srv.Addr, c.qname, c.qtype, QueryOpts{DO: true})
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, l, r)
		}
	})
	t.Run("unbound", func(t *testing.T) {
		if c.skipUnbound {
			t.Skip("excluded for this case")
		}
		l.NeedUnbound(t)
		if e.OutOfZone || l.Zones.ZoneFor(e.Final) == nil {
			t.Skip("the chain leaves the lab's zones")
		}
		for _, p := range JudgeUnbound(l, c.qname, c.qtype, e) {
			t.Error(p)
		}
	})
	t.Run("delv", func(t *testing.T) {
		if c.skipDelv {
			t.Skip("excluded for this case")
		}
		l.NeedDelv(t)
		if e.OutOfZone || l.Zones.ZoneFor(e.Final) == nil {
			t.Skip("the chain leaves the lab's zones")
		}
		for _, p := range JudgeDelv(l, c.qname, c.qtype, e) {
			t.Error(p)
		}
	})
}

// caseNamed returns the answer cases with the given names (the test fails on a typo).
func casesNamed(t *testing.T, names ...string) []answerCase {
	t.Helper()
	var out []answerCase
	for _, n := range names {
		i := slices.IndexFunc(answerCases, func(c answerCase) bool { return c.name == n })
		if i < 0 {
			t.Fatalf("test bug: no answer case %q", n)
		}
		out = append(out, answerCases[i])
	}
	return out
}

// coreCases is a cross-section of the answer classes for tests that vary the configuration.
var coreCases = []string{
	"apex SOA", "apex DNSKEY", "mx1 A", "TLSA mx1", "CNAME chain webmail A", "NXDOMAIN nope",
	"NXDOMAIN below host", "NODATA mx1 TXT", "ENT NODATA _tcp.mx1 A", "wildcard A",
	"wildcard NODATA TXT", "DS at signed delegation", "DS at insecure delegation", "mixed case A",
}

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestReferrals checks answers for names at and below the two delegations with direct
// queries only: validators would chase the referral to 127.0.0.31/32, where nothing listens.
func TestReferrals(t *testing.T) {
	cases := []struct {
		qname string
		qtype uint16
	}{
		{"www.signed.example.test", dns.TypeA},
		{"signed.example.test", dns.TypeA},
		{"signed.example.test", dns.TypeNS},
		{"ns1.signed.example.test", dns.TypeA},
		{"a.b.signed.example.test", dns.TypeMX},
		{"ns1.signed.example.test", dns.TypeDS},
		{"www.unsigned.example.test", dns.TypeA},
		{"unsigned.example.test", dns.TypeNS},
		{"Unsigned.Example.Test", dns.TypeSOA},
		{"ns1.unsigned.example.test", dns.TypeAAAA},
		{"x.y.unsigned.example.test", dns.TypeTXT},
	}
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			for _, c := range cases {
				t.Run(c.qname+"/"+typeString(c.qtype), func(t *testing.T) {
					t.Parallel()
					e := l.Zones.Resolve(c.qname, c.qtype)
					if e.Kind != Referral {
						t.Fatalf("test bug: model says %s", e.Kind)
					}
					for _, p := range JudgeDirect(l, c.qname, c.qtype, e) {
						t.Error(p)
					}
				})
			}
		})
	}
}

// TestTruncation: over UDP with a 512-byte buffer (EDNS or none) a large answer comes back with
// TC=1 and fits the buffer; over TCP the same query gets the complete, signed answer.
func TestTruncation(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			const qname = "big.lab2.test"
			e := l.Zones.Resolve(qname, dns.TypeTXT)
			if e.Kind != Positive {
				t.Fatalf("test bug: model says %s", e.Kind)
			}
			for _, o := range []struct {
				name string
				opts QueryOpts
			}{
				{"EDNS 512 DO", QueryOpts{DO: true, BufSize: 512}},
				{"no EDNS", QueryOpts{NoEDNS: true}},
			} {
				t.Run(o.name, func(t *testing.T) {
					r, err := Query(l.Srv.Addr, qname, dns.TypeTXT, o.opts)
					if err != nil {
						t.Fatal(err)
					}
					packed, err := r.Pack()
					if err != nil {
						t.Fatal(err)
					}
					if !r.Truncated {
						t.Errorf("UDP %s: TC=0 for a %d-byte answer; want TC=1\n%s", o.name, len(packed), r)
					}
					if len(packed) > 512 {
						t.Errorf("UDP %s: response is %d bytes, over the 512-byte buffer", o.name, len(packed))
					}
					if r.Rcode != dns.RcodeSuccess {
						t.Errorf("UDP %s: rcode %s", o.name, dns.RcodeToString[r.Rcode])
					}
				})
			}
			t.Run("TCP", func(t *testing.T) {
				r, err := Query(l.Srv.Addr, qname, dns.TypeTXT, QueryOpts{DO: true, BufSize: 512, TCP: true})
				if err != nil {
					t.Fatal(err)
				}
				if r.Truncated {
					t.Errorf("TCP: TC=1")
				}
				if ok, d := sameRRs(e.Answer, r.Answer); !ok {
					t.Errorf("TCP: answer differs from the zone file: %s\n%s", d, r)
				}
				sets, sigs, order := groupRRsets(r.Answer)
				for _, k := range order {
					if err := verifyRRset(sets[k], sigs[k], l.Anchors, time.Now()); err != nil {
						t.Errorf("TCP: %s %s: %v", k.name, typeString(k.rtype), err)
					}
				}
			})
			t.Run("DNSKEY 512", func(t *testing.T) {
				r, err := Query(l.Srv.Addr, "example.test", dns.TypeDNSKEY, QueryOpts{DO: true, BufSize: 512})
				if err != nil {
					t.Fatal(err)
				}
				packed, _ := r.Pack()
				if len(packed) > 512 {
					t.Errorf("DNSKEY over UDP/512: %d bytes", len(packed))
				}
				if !r.Truncated {
					sets, sigs, order := groupRRsets(r.Answer)
					if len(order) == 0 {
						t.Errorf("DNSKEY over UDP/512: TC=0 and no answer")
					}
					for _, k := range order {
						if err := verifyRRset(sets[k], sigs[k], l.Anchors, time.Now()); err != nil {
							t.Errorf("DNSKEY over UDP/512, TC=0: %v", err)
						}
					}
				}
			})
		})
	}
}

// TestANY: RFC 8482 — an ANY query gets a small NOERROR answer: one RRset of the name (or a
// synthesized HINFO), signed when DO is set.
func TestANY(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			for _, qname := range []string{"example.test", "mx1.example.test", "foo.users.example.test"} {
				t.Run(qname, func(t *testing.T) {
					for _, do := range []bool{true, false} {
						r, err := QueryFull(l.Srv.Addr, qname, dns.TypeANY, QueryOpts{DO: do})
						if err != nil {
							t.Fatal(err)
						}
						if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
							t.Errorf("ANY %s DO=%v: rcode %s AA=%v, want NOERROR AA=1\n%s", qname, do, dns.RcodeToString[r.Rcode], r.Authoritative, r)
							continue
						}
						sets, sigs, order := groupRRsets(r.Answer)
						if len(order) != 1 {
							t.Errorf("ANY %s DO=%v: %d RRsets in the answer, want 1 (RFC 8482)\n%s", qname, do, len(order), r)
							continue
						}
						k := order[0]
						if k.name != canon(qname) {
							t.Errorf("ANY %s: answer owner %s", qname, k.name)
						}
						if k.rtype != dns.TypeHINFO {
							e := l.Zones.Resolve(qname, k.rtype)
							if ok, d := sameRRs(e.Answer, sets[k]); e.Kind != Positive || !ok {
								t.Errorf("ANY %s: answered %s RRset is not the zone's: %s %s", qname, typeString(k.rtype), e.Kind, d)
							}
						}
						if do {
							if err := verifyRRset(sets[k], sigs[k], l.Anchors, time.Now()); err != nil {
								t.Errorf("ANY %s: %v", qname, err)
							}
						} else if len(sigs) > 0 {
							t.Errorf("ANY %s without DO: RRSIG in the answer", qname)
						}
					}
				})
			}
			t.Run("NXDOMAIN", func(t *testing.T) {
				r, err := QueryFull(l.Srv.Addr, "nope.example.test", dns.TypeANY, QueryOpts{DO: true})
				if err != nil {
					t.Fatal(err)
				}
				want := dns.RcodeNameError
				if mode == "compact" { // RFC 9824 §3.1: NOERROR with an NSEC listing NXNAME
					want = dns.RcodeSuccess
				}
				if r.Rcode != want {
					t.Errorf("ANY nope.example.test: rcode %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[want], r)
				}
			})
		})
	}
}

// TestApexDS: a DS query for the zone's own apex is answered from the child zone (the server
// is not authoritative for test.): NOERROR, no DS, never SERVFAIL (RFC 4035 §3.1.4.1).
func TestApexDS(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			r, err := QueryFull(l.Srv.Addr, "example.test", dns.TypeDS, QueryOpts{DO: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != dns.RcodeSuccess || hasType(r.Answer, dns.TypeDS) {
				t.Errorf("example.test DS: rcode %s, answer %v; want NOERROR without DS\n%s", dns.RcodeToString[r.Rcode], r.Answer, r)
			}
		})
	}
}

// TestKeyFiles checks the generated keys against the contract: BIND files
// K<zone>+013+<tag>.key/.private (private mode 0600), a CSK with flags 257, dsset-<zone>.
// holding the SHA-256 DS of that key, and the DS in the log.
func TestKeyFiles(t *testing.T) {
	l := sharedLab(t, "nsec")
	for _, zone := range l.Srv.Origins {
		t.Run(zone, func(t *testing.T) {
			a := l.Anchors[zone]
			k := a.KSK
			if k.Algorithm != dns.ECDSAP256SHA256 {
				t.Errorf("default algorithm: %d, want 13 (ecdsap256sha256)", k.Algorithm)
			}
			if k.Flags != 257 {
				t.Errorf("key flags %d, want 257", k.Flags)
			}
			base := fmt.Sprintf("K%s+%03d+%05d", zone, k.Algorithm, k.KeyTag())
			for _, ext := range []string{".key", ".private"} {
				st, err := os.Stat(filepath.Join(l.Srv.KeyDir, base+ext))
				if err != nil {
					t.Errorf("key file: %v", err)
					continue
				}
				if ext == ".private" && st.Mode().Perm() != 0o600 {
					t.Errorf("%s%s has mode %v, want 0600", base, ext, st.Mode().Perm())
				}
			}
			if len(a.DS) == 0 {
				t.Fatalf("no DS in %s", filepath.Join(l.Srv.KeyDir, "dsset-"+zone))
			}
			want := k.ToDS(dns.SHA256)
			found := false
			for _, ds := range a.DS {
				if ds.KeyTag == want.KeyTag && ds.Algorithm == want.Algorithm && ds.DigestType == dns.SHA256 &&
					strings.EqualFold(ds.Digest, want.Digest) && strings.EqualFold(ds.Hdr.Name, zone) {
					found = true
				} else {
					t.Errorf("dsset has %s, which is not the SHA-256 DS of the KSK (%s)", ds, want)
				}
			}
			if !found {
				t.Errorf("dsset lacks the SHA-256 DS of the KSK: %s", want)
			}
			// The DS is logged at start (digest in hex, any case, possibly split).
			logText := strings.ToLower(regexp.MustCompile(`\s+`).ReplaceAllString(l.Srv.Log(), ""))
			if !strings.Contains(logText, strings.ToLower(want.Digest)) {
				t.Errorf("the DS digest %s is not in the server log", want.Digest)
			}
		})
	}
}

// TestZoneTransfer: danezone offers no transfers, so AXFR and IXFR must be refused (REFUSED,
// NOTAUTH or NOTIMP) — or, if ever allowed, be a well-formed transfer starting with the SOA
// (RFC 5936 §2.2). A NOERROR answer without the SOA is neither: clients report
// "Transfer failed" and a signed NODATA for a meta-type is meaningless.
func TestZoneTransfer(t *testing.T) {
	l := sharedLab(t, "nsec")
	for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
		t.Run(typeString(qtype), func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion("example.test.", qtype)
			if qtype == dns.TypeIXFR {
				m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET},
					Ns: "ns1.example.test.", Mbox: "hostmaster.example.test.", Serial: 1}}
			}
			m.SetEdns0(1232, true)
			c := &dns.Client{Net: "tcp", Timeout: 3 * time.Second}
			r, _, err := c.Exchange(m, l.Srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			switch r.Rcode {
			case dns.RcodeRefused, dns.RcodeNotAuth, dns.RcodeNotImplemented:
				return
			case dns.RcodeSuccess:
				if len(r.Answer) > 0 && r.Answer[0].Header().Rrtype == dns.TypeSOA {
					return
				}
			}
			t.Errorf("%s over TCP: rcode %s with %d answers; want REFUSED/NOTAUTH/NOTIMP (or a transfer starting with the SOA)\n%s",
				typeString(qtype), dns.RcodeToString[r.Rcode], len(r.Answer), r)
		})
	}
}

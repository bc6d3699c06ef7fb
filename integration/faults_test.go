package integration

// Fault modes against real validators. For every mode of danezone's fault injection
// (plugin/danezone/README.md, "Faults") a server of its own gets the fault over the control
// API, and three judges look at the faulted question:
//
//   - a direct query, checked against the zone file and the DNSSEC rules by this test,
//   - a validating Unbound (rcode, AD bit, RFC 8914 extended errors with `ede: yes`),
//   - delv, with the KSK of example.test as its only trust anchor.
//
// A second Unbound, with an empty cache, checks that a neighbouring name and another type of
// the same name still validate as secure while the fault is on (a separate instance because
// aggressive NSEC caching, RFC 8198, would otherwise answer one question from the other's
// proof). The child zone signed.example.test is served by the same server and is secure only
// through the DS its parent serves; ds-mismatch and insecure break that link.
//
// The expectations are written from the DNSSEC rules. Where a validator concludes otherwise
// because of a known danezone bug, the case names the bug: the test logs it, and fails on it
// only with DANELAB_IT_STRICT_FAULTS=1. DANELAB_IT_FAULT_TABLE=FILE writes the measured
// verdicts as the Markdown table of the top-level README.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// faultProbe is one question and what the validators must conclude about it.
type faultProbe struct {
	name  string
	qtype uint16
	rcode int      // Unbound's rcode, and delv's (NODATA is NOERROR)
	ad    bool     // Unbound's AD bit
	ede   []uint16 // the EDE codes Unbound may give (one of them required); nil: not checked
	delv  string   // "secure", "insecure" or "bogus" (resolution failed)
	// check looks further at the answer section a validator accepted (Unbound's or delv's).
	check func(l *faultLab, answer []dns.RR) error
	// alt, when set, is another verdict of Unbound's that the case accepts: one that depends
	// on timing, or one caused by a known danezone bug.
	alt *faultAlt
}

// faultAlt is a verdict of Unbound's accepted instead of the expected one, with the reason.
type faultAlt struct {
	rcode int
	ad    bool
	bug   bool // a known danezone bug: fails with DANELAB_IT_STRICT_FAULTS=1
	note  string
}

func (p faultProbe) String() string {
	return strings.TrimSuffix(p.name, ".") + " " + typeString(p.qtype)
}

func faultSecure(name string, qtype uint16, rcode int) faultProbe {
	return faultProbe{name: name, qtype: qtype, rcode: rcode, ad: true, delv: "secure"}
}

func faultBogus(name string, qtype uint16, ede ...uint16) faultProbe {
	return faultProbe{name: name, qtype: qtype, rcode: dns.RcodeServerFailure, ede: ede, delv: "bogus"}
}

// faultCase is one row of the table: a fault and the questions judged while it is on.
type faultCase struct {
	row        string         // mode, and the variant if a mode has several rows
	fault      map[string]any // POST /faults body; nil for the baseline without faults
	targets    []faultProbe   // the questions the fault is about
	neighbours []faultProbe   // questions outside its scope: must stay secure
	// slow: Unbound may not reply to the first query at all (the fault makes the upstream
	// answer late or never, and Unbound drops a client's query after discard-timeout, 1.9s);
	// ask again like a stub resolver until it answers.
	slow bool
	// direct checks the server's own answer to the faulted question.
	direct func(l *faultLab) error
	// skew: also ask an Unbound with val-sig-skew-max: 3600 (instead of 1 day), strictly.
	skew bool
}

// Names of the lab.
const (
	fzMX1TLSA   = "_25._tcp.mx1.example.test."
	fzMX2TLSA   = "_25._tcp.mx2.example.test."
	fzMX3TLSA   = "_25._tcp.mx3.example.test." // no such name
	fzMX4TLSA   = "_25._tcp.mx4.example.test." // no such name either
	fzChild     = "signed.example.test."
	fzChildTLSA = "_25._tcp.mx.signed.example.test."
)

// faultTLSAScope is the scope of the faults on the TLSA RRset of mx1.
func faultTLSAScope(mode string) map[string]any {
	return map[string]any{"mode": mode, "name": fzMX1TLSA, "type": "TLSA"}
}

// The neighbours of a fault on _25._tcp.mx1.example.test TLSA: the TLSA of the other MX, and
// another type (NODATA) of the same name.
var faultTLSANeighbours = []faultProbe{
	faultSecure(fzMX2TLSA, dns.TypeTLSA, dns.RcodeSuccess),
	faultSecure(fzMX1TLSA, dns.TypeTXT, dns.RcodeSuccess),
}

func faultCases() []faultCase {
	sameTLSA := func(l *faultLab, ans []dns.RR) error {
		return faultSameTLSA(l, fzMX1TLSA, ans)
	}
	secureTLSA := faultSecure(fzMX1TLSA, dns.TypeTLSA, dns.RcodeSuccess)
	secureTLSA.check = sameTLSA

	var cases []faultCase
	cases = append(cases, faultCase{
		row: "(no fault)",
		targets: []faultProbe{
			secureTLSA,
			faultSecure("mx1.example.test.", dns.TypeTLSA, dns.RcodeSuccess),
			faultSecure(fzMX3TLSA, dns.TypeTLSA, dns.RcodeNameError),
			{name: fzChildTLSA, qtype: dns.TypeTLSA, rcode: dns.RcodeSuccess, ad: true, delv: "secure",
				check: func(l *faultLab, ans []dns.RR) error { return faultSameTLSA(l, fzChildTLSA, ans) }},
			{name: fzChild, qtype: dns.TypeDS, rcode: dns.RcodeSuccess, ad: true, delv: "secure",
				check: func(l *faultLab, ans []dns.RR) error { return faultDSIs(l, ans, true) }},
		},
		neighbours: []faultProbe{faultSecure("unsigned.example.test.", dns.TypeDS, dns.RcodeSuccess)},
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return err
			}
			return faultSignedNow(r.Answer, fzMX1TLSA, dns.TypeTLSA, l.Parent.Keys)
		},
	})

	// Rcode faults: the server answers the rcode; a resolver cannot get an answer.
	for _, m := range []struct {
		mode  string
		rcode int
	}{{"servfail", dns.RcodeServerFailure}, {"refused", dns.RcodeRefused}, {"notimp", dns.RcodeNotImplemented}, {"formerr", dns.RcodeFormatError}} {
		cases = append(cases, faultCase{
			row:        m.mode,
			fault:      faultTLSAScope(m.mode),
			targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA)},
			neighbours: faultTLSANeighbours,
			direct: func(l *faultLab) error {
				r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
				if err != nil {
					return err
				}
				if r.Rcode != m.rcode || len(r.Answer)+len(r.Ns) != 0 {
					return fmt.Errorf("direct: want %s and no records, got %s with %d+%d records", dns.RcodeToString[m.rcode], dns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns))
				}
				return nil
			},
		})
	}

	cases = append(cases, faultCase{
		row:        "drop",
		fault:      faultTLSAScope("drop"),
		targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA)},
		neighbours: faultTLSANeighbours,
		slow:       true,
		direct: func(l *faultLab) error {
			_, err := Query(l.Srv.Addr, fzMX1TLSA, dns.TypeTLSA, QueryOpts{DO: true, Timeout: 800 * time.Millisecond})
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				return fmt.Errorf("direct: want a timeout after 800ms, got %v", err)
			}
			return nil
		},
	})

	// Unbound retransmits with timeouts that start from the RTT it has learned for the server
	// (a few ms here) and double; whether one of them exceeds 2s before it gives up depends on
	// that history, so it ends with the validated answer or with SERVFAIL (upstream timeout).
	delayed := secureTLSA
	delayed.alt = &faultAlt{rcode: dns.RcodeServerFailure, note: "Unbound gave up before one of its retransmission timeouts exceeded the 2s delay"}
	cases = append(cases, faultCase{
		row:        "delay (2s)",
		fault:      map[string]any{"mode": "delay", "name": fzMX1TLSA, "type": "TLSA", "delay": "2s"},
		targets:    []faultProbe{delayed},
		neighbours: faultTLSANeighbours,
		slow:       true,
		direct: func(l *faultLab) error {
			start := time.Now()
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{Timeout: 6 * time.Second})
			took := time.Since(start)
			if err != nil {
				return err
			}
			if took < 2*time.Second {
				return fmt.Errorf("direct: the answer came after %v, want at least 2s", took)
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return err
			}
			return faultSignedNow(r.Answer, fzMX1TLSA, dns.TypeTLSA, l.Parent.Keys)
		},
	})

	cases = append(cases, faultCase{
		row:        "truncate",
		fault:      faultTLSAScope("truncate"),
		targets:    []faultProbe{secureTLSA},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if !r.Truncated || len(r.Answer) != 0 {
				return fmt.Errorf("direct UDP: want TC=1 and no answer, got TC=%v with %d answers", r.Truncated, len(r.Answer))
			}
			r, err = faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{TCP: true})
			if err != nil {
				return err
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return fmt.Errorf("direct TCP: %w", err)
			}
			return faultSignedNow(r.Answer, fzMX1TLSA, dns.TypeTLSA, l.Parent.Keys)
		},
	})

	cases = append(cases, faultCase{
		row:        "truncate-no-tcp",
		fault:      faultTLSAScope("truncate-no-tcp"),
		targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA)},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if !r.Truncated || len(r.Answer) != 0 {
				return fmt.Errorf("direct UDP: want TC=1 and no answer, got TC=%v with %d answers", r.Truncated, len(r.Answer))
			}
			r, err = Query(l.Srv.Addr, fzMX1TLSA, dns.TypeTLSA, QueryOpts{DO: true, TCP: true, Timeout: 2 * time.Second})
			if err == nil {
				return fmt.Errorf("direct TCP: want the connection closed unanswered, got %s", dns.RcodeToString[r.Rcode])
			}
			return nil
		},
	})

	// Signature faults on the TLSA RRset.
	expired := faultBogus(fzMX1TLSA, dns.TypeTLSA, dns.ExtendedErrorCodeSignatureExpired, dns.ExtendedErrorCodeDNSBogus)
	cases = append(cases, faultCase{
		row: "expired-sig", fault: faultTLSAScope("expired-sig"), targets: []faultProbe{expired}, neighbours: faultTLSANeighbours, skew: true,
		direct: faultSigCheck(func(s *dns.RRSIG, now time.Time) error {
			if exp := faultSigTime(s.Expiration); !exp.Before(now) {
				return fmt.Errorf("expiration %v is not in the past", exp)
			}
			return nil
		}),
	})
	future := faultBogus(fzMX1TLSA, dns.TypeTLSA, dns.ExtendedErrorCodeSignatureNotYetValid, dns.ExtendedErrorCodeDNSBogus)
	cases = append(cases, faultCase{
		row: "future-sig", fault: faultTLSAScope("future-sig"), targets: []faultProbe{future}, neighbours: faultTLSANeighbours, skew: true,
		direct: faultSigCheck(func(s *dns.RRSIG, now time.Time) error {
			if inc := faultSigTime(s.Inception); !inc.After(now) {
				return fmt.Errorf("inception %v is not in the future", inc)
			}
			return nil
		}),
	})
	cases = append(cases, faultCase{
		row: "bad-sig", fault: faultTLSAScope("bad-sig"),
		targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA, dns.ExtendedErrorCodeDNSBogus)},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return err
			}
			sigs := faultSigs(r.Answer, fzMX1TLSA, dns.TypeTLSA)
			if len(sigs) == 0 {
				return fmt.Errorf("direct: no RRSIG")
			}
			for _, s := range sigs {
				if s.KeyTag != l.Parent.KSK.KeyTag() {
					return fmt.Errorf("direct: RRSIG key tag %d, want the zone's %d", s.KeyTag, l.Parent.KSK.KeyTag())
				}
				if faultVerify(faultSet(r.Answer, fzMX1TLSA, dns.TypeTLSA), s, l.Parent.Keys) == nil {
					return fmt.Errorf("direct: the RRSIG verifies")
				}
			}
			return nil
		},
	})
	cases = append(cases, faultCase{
		row: "no-sig", fault: faultTLSAScope("no-sig"),
		targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA, dns.ExtendedErrorCodeRRSIGsMissing, dns.ExtendedErrorCodeDNSBogus)},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return err
			}
			for _, rr := range append(append(slices.Clone(r.Answer), r.Ns...), r.Extra...) {
				if rr.Header().Rrtype == dns.TypeRRSIG {
					return fmt.Errorf("direct: an RRSIG is left: %s", rr)
				}
			}
			return nil
		},
	})
	cases = append(cases, faultCase{
		row: "wrong-key", fault: faultTLSAScope("wrong-key"),
		targets:    []faultProbe{faultBogus(fzMX1TLSA, dns.TypeTLSA, dns.ExtendedErrorCodeDNSKEYMissing, dns.ExtendedErrorCodeDNSBogus)},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				return err
			}
			keys, err := faultAsk(l, "example.test.", dns.TypeDNSKEY, QueryOpts{})
			if err != nil {
				return err
			}
			var tags []uint16
			for _, rr := range keys.Answer {
				if k, ok := rr.(*dns.DNSKEY); ok {
					tags = append(tags, k.KeyTag())
				}
			}
			sigs := faultSigs(r.Answer, fzMX1TLSA, dns.TypeTLSA)
			if len(sigs) == 0 {
				return fmt.Errorf("direct: no RRSIG")
			}
			for _, s := range sigs {
				if slices.Contains(tags, s.KeyTag) {
					return fmt.Errorf("direct: RRSIG key tag %d is in the DNSKEY set %v", s.KeyTag, tags)
				}
				if !s.ValidityPeriod(time.Now()) {
					return fmt.Errorf("direct: the RRSIG by the wrong key is not valid now (%d..%d): two faults in one", s.Inception, s.Expiration)
				}
			}
			return nil
		},
	})

	// Denial faults, on a NODATA answer (mx1 has no TLSA) and on an NXDOMAIN answer. For the
	// NXDOMAIN the scope is every type of mx3 and below: with QNAME minimisation (RFC 9156)
	// Unbound asks "mx3.example.test A" first, and a valid NXDOMAIN there proves that nothing
	// exists below it (RFC 8020), so a fault on the TLSA name alone is never seen.
	for _, mode := range []string{"no-denial", "bad-denial"} {
		edes := []uint16{dns.ExtendedErrorCodeNSECMissing, dns.ExtendedErrorCodeRRSIGsMissing, dns.ExtendedErrorCodeDNSBogus}
		cases = append(cases, faultCase{
			row:   mode + " (NODATA)",
			fault: map[string]any{"mode": mode, "name": "mx1.example.test", "type": "TLSA"},
			targets: []faultProbe{
				faultBogus("mx1.example.test.", dns.TypeTLSA, edes...),
			},
			neighbours: []faultProbe{
				faultSecure("mx1.example.test.", dns.TypeA, dns.RcodeSuccess),
				faultSecure("mx2.example.test.", dns.TypeTLSA, dns.RcodeSuccess),
			},
			direct: faultDenialCheck(mode, "mx1.example.test.", dns.RcodeSuccess),
		})
		cases = append(cases, faultCase{
			row:   mode + " (NXDOMAIN)",
			fault: map[string]any{"mode": mode, "name": "*mx3.example.test"},
			targets: []faultProbe{
				faultBogus(fzMX3TLSA, dns.TypeTLSA, edes...),
			},
			neighbours: []faultProbe{
				faultSecure(fzMX2TLSA, dns.TypeTLSA, dns.RcodeSuccess),
				faultSecure(fzMX4TLSA, dns.TypeTLSA, dns.RcodeNameError),
			},
			direct: faultDenialCheck(mode, fzMX3TLSA, dns.RcodeNameError),
		})
	}

	// NSEC3 with 500 iterations for everything at mx3 and below (validly signed, in this
	// zone of NSEC): RFC 9276 validators treat the denial as insecure (Unbound and BIND 9.18
	// above 150 iterations).
	cases = append(cases, faultCase{
		row:   "nsec3-iterations (NXDOMAIN)",
		fault: map[string]any{"mode": "nsec3-iterations", "name": "*mx3.example.test"},
		targets: []faultProbe{
			{name: fzMX3TLSA, qtype: dns.TypeTLSA, rcode: dns.RcodeNameError, ad: false, delv: "insecure"},
		},
		neighbours: []faultProbe{
			faultSecure(fzMX2TLSA, dns.TypeTLSA, dns.RcodeSuccess),
			faultSecure(fzMX4TLSA, dns.TypeTLSA, dns.RcodeNameError),
		},
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX3TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeNameError {
				return fmt.Errorf("direct: want NXDOMAIN, got %s", dns.RcodeToString[r.Rcode])
			}
			n3 := 0
			for _, rr := range r.Ns {
				switch x := rr.(type) {
				case *dns.NSEC:
					return fmt.Errorf("direct: an NSEC left: %s", x)
				case *dns.NSEC3:
					n3++
					if x.Iterations != 500 {
						return fmt.Errorf("direct: NSEC3 with %d iterations, want 500: %s", x.Iterations, x)
					}
					if err := faultSignedNow(r.Ns, x.Hdr.Name, dns.TypeNSEC3, l.Parent.Keys); err != nil {
						return fmt.Errorf("direct: the NSEC3 is not validly signed (two faults in one): %v", err)
					}
				}
			}
			if n3 < 2 {
				return fmt.Errorf("direct: %d NSEC3 records, want the closest encloser proof and the wildcard's: %v", n3, r.Ns)
			}
			return nil
		},
	})
	// The NSEC of mx1 (which has no TLSA) listing TLSA, validly signed: the NODATA proof fails.
	cases = append(cases, faultCase{
		row:   "compact-type-in-bitmap (NODATA)",
		fault: map[string]any{"mode": "compact-type-in-bitmap", "name": "mx1.example.test", "type": "TLSA"},
		targets: []faultProbe{
			faultBogus("mx1.example.test.", dns.TypeTLSA, dns.ExtendedErrorCodeDNSBogus),
		},
		neighbours: []faultProbe{
			faultSecure("mx1.example.test.", dns.TypeA, dns.RcodeSuccess),
			faultSecure("mx2.example.test.", dns.TypeTLSA, dns.RcodeSuccess),
		},
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, "mx1.example.test.", dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			set := faultSet(r.Ns, "mx1.example.test.", dns.TypeNSEC)
			if r.Rcode != dns.RcodeSuccess || len(set) != 1 || !slices.Contains(set[0].(*dns.NSEC).TypeBitMap, dns.TypeTLSA) {
				return fmt.Errorf("direct: want NODATA with the NSEC of mx1 listing TLSA, got %s with %v", dns.RcodeToString[r.Rcode], r.Ns)
			}
			return faultSignedNow(r.Ns, "mx1.example.test.", dns.TypeNSEC, l.Parent.Keys)
		},
	})

	// Data faults: validly signed, wrong data.
	mismatch := faultSecure(fzMX1TLSA, dns.TypeTLSA, dns.RcodeSuccess)
	mismatch.check = func(l *faultLab, ans []dns.RR) error { return faultTLSAChanged(l, ans, "tlsa-mismatch") }
	unusable := faultSecure(fzMX1TLSA, dns.TypeTLSA, dns.RcodeSuccess)
	unusable.check = func(l *faultLab, ans []dns.RR) error { return faultTLSAChanged(l, ans, "tlsa-unusable") }
	for _, c := range []struct {
		mode  string
		probe faultProbe
	}{{"tlsa-mismatch", mismatch}, {"tlsa-unusable", unusable}} {
		cases = append(cases, faultCase{
			row: c.mode, fault: faultTLSAScope(c.mode), targets: []faultProbe{c.probe}, neighbours: faultTLSANeighbours,
			direct: func(l *faultLab) error {
				r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
				if err != nil {
					return err
				}
				if err := faultTLSAChanged(l, r.Answer, c.mode); err != nil {
					return err
				}
				return faultSignedNow(r.Answer, fzMX1TLSA, dns.TypeTLSA, l.Parent.Keys)
			},
		})
	}
	// Without its TLSA RRset _25._tcp.mx1 has no data and no names below it: it does not exist.
	cases = append(cases, faultCase{
		row: "tlsa-absent", fault: faultTLSAScope("tlsa-absent"),
		targets:    []faultProbe{faultSecure(fzMX1TLSA, dns.TypeTLSA, dns.RcodeNameError)},
		neighbours: faultTLSANeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				return fmt.Errorf("direct: want NXDOMAIN and no answer, got %s with %d answers", dns.RcodeToString[r.Rcode], len(r.Answer))
			}
			return faultProofSigned(l, r, fzMX1TLSA)
		},
	})

	// Chain-of-trust faults on the child zone. The other questions at the faulted name
	// (signed.example.test) are the child's own data, broken by design; the neighbours are
	// the parent's data and its other (insecure) delegation.
	childNeighbours := []faultProbe{
		faultSecure(fzMX1TLSA, dns.TypeTLSA, dns.RcodeSuccess),
		faultSecure("unsigned.example.test.", dns.TypeDS, dns.RcodeSuccess),
	}
	wrongDS := faultSecure(fzChild, dns.TypeDS, dns.RcodeSuccess)
	wrongDS.check = func(l *faultLab, ans []dns.RR) error { return faultDSIs(l, ans, false) }
	cases = append(cases, faultCase{
		row:   "ds-mismatch",
		fault: map[string]any{"mode": "ds-mismatch", "name": fzChild},
		targets: []faultProbe{
			faultBogus(fzChildTLSA, dns.TypeTLSA, dns.ExtendedErrorCodeDNSKEYMissing, dns.ExtendedErrorCodeDNSBogus),
			wrongDS,
		},
		neighbours: childNeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzChild, dns.TypeDS, QueryOpts{})
			if err != nil {
				return err
			}
			if err := faultDSIs(l, r.Answer, false); err != nil {
				return err
			}
			return faultSignedNow(r.Answer, fzChild, dns.TypeDS, l.Parent.Keys)
		},
	})
	noDS := faultSecure(fzChild, dns.TypeDS, dns.RcodeSuccess)
	noDS.check = func(l *faultLab, ans []dns.RR) error {
		if faultDSOf(ans) != nil {
			return fmt.Errorf("a DS in the answer: %v", ans)
		}
		return nil
	}
	insecureTLSA := faultProbe{name: fzChildTLSA, qtype: dns.TypeTLSA, rcode: dns.RcodeSuccess, ad: false, delv: "insecure",
		check: func(l *faultLab, ans []dns.RR) error { return faultSameTLSA(l, fzChildTLSA, ans) }}
	cases = append(cases, faultCase{
		row:        "insecure",
		fault:      map[string]any{"mode": "insecure", "name": fzChild},
		targets:    []faultProbe{insecureTLSA, noDS},
		neighbours: childNeighbours,
		direct: func(l *faultLab) error {
			r, err := faultAsk(l, fzChild, dns.TypeDS, QueryOpts{})
			if err != nil {
				return err
			}
			if r.Rcode != dns.RcodeSuccess || faultDSOf(r.Answer) != nil {
				return fmt.Errorf("direct: want NODATA for the DS, got %s with %v", dns.RcodeToString[r.Rcode], r.Answer)
			}
			nsecs := faultSet(r.Ns, fzChild, dns.TypeNSEC)
			if len(nsecs) != 1 {
				return fmt.Errorf("direct: want the NSEC of %s in the authority section, got %v", fzChild, r.Ns)
			}
			bm := nsecs[0].(*dns.NSEC).TypeBitMap
			if !slices.Contains(bm, dns.TypeNS) || slices.Contains(bm, dns.TypeDS) {
				return fmt.Errorf("direct: the NSEC must show NS and no DS: %s", nsecs[0])
			}
			return faultSignedNow(r.Ns, fzChild, dns.TypeNSEC, l.Parent.Keys)
		},
	})
	return cases
}

// faultModes are the modes of plugin/danezone/README.md; every one must have a case. (The
// compact-no-nxname mode changes nothing in this lab's zones of NSEC: it is judged on a zone of
// compact denial by TestResolverDifferentialFaults and the no-tlsa-compact-no-nxname scenario.)
var faultModes = []string{"servfail", "refused", "notimp", "formerr", "drop", "delay", "truncate", "truncate-no-tcp",
	"expired-sig", "future-sig", "bad-sig", "no-sig", "wrong-key", "ds-mismatch", "no-denial", "bad-denial", "insecure",
	"tlsa-mismatch", "tlsa-unusable", "tlsa-absent", "nsec3-iterations", "compact-type-in-bitmap"}

// faultResult is what one case measured.
type faultResult struct {
	row       string
	scope     string // the fault's name and type
	questions string // the questions judged
	problems  []string
	notes     []string
	unbound   []string // verdict per target
	delv      []string
	took      time.Duration
	setupErr  error
	neighbour []string
}

func TestFaultModes(t *testing.T) {
	for _, p := range []string{"unbound", "delv"} {
		peer.Need(t, p)
	}
	cases := faultCases()
	covered := map[string]bool{}
	for _, c := range cases {
		if c.fault != nil {
			covered[c.fault["mode"].(string)] = true
		}
	}
	for _, m := range faultModes {
		if !covered[m] {
			t.Errorf("fault mode %s has no case", m)
		}
	}
	parent := faultParentZone(t)
	strict := os.Getenv("DANELAB_IT_STRICT_FAULTS") != ""

	// Every case has its own server and Unbounds; they run concurrently (most of the time
	// is spent waiting for timeouts), at most 8 at once.
	results := make([]*faultResult, len(cases))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runFaultCase(parent, c, strict)
		}()
	}
	wg.Wait()
	t.Logf("%d fault cases in %v", len(cases), time.Since(start).Round(100*time.Millisecond))

	for i, c := range cases {
		res := results[i]
		t.Run(strings.NewReplacer(" ", "_", "(", "", ")", "").Replace(c.row), func(t *testing.T) {
			if res.setupErr != nil {
				t.Fatal(res.setupErr)
			}
			for _, n := range res.notes {
				t.Log(n)
			}
			t.Logf("%s in %v: Unbound %s; delv %s", c.row, res.took.Round(100*time.Millisecond), strings.Join(res.unbound, "; "), strings.Join(res.delv, "; "))
			for _, p := range res.problems {
				t.Error(p)
			}
		})
	}

	var table strings.Builder
	table.WriteString("| mode | fault scope | question | Unbound 1.17 (rcode, AD, EDE) | delv 9.18 | neighbours (Unbound and delv) |\n|---|---|---|---|---|---|\n")
	for _, res := range results {
		if res.setupErr != nil {
			continue
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %s |\n", res.row, res.scope, res.questions, strings.Join(res.unbound, "<br>"),
			strings.Join(res.delv, "<br>"), strings.Join(res.neighbour, "<br>"))
	}
	t.Logf("measured verdicts:\n%s", table.String())
	if path := os.Getenv("DANELAB_IT_FAULT_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// runFaultCase runs one case on a server of its own. It never calls t.Fatal (it runs in a
// goroutine of its own): everything goes into the result.
func runFaultCase(parent string, c faultCase, strict bool) *faultResult {
	res := &faultResult{row: c.row}
	start := time.Now()
	defer func() { res.took = time.Since(start) }()
	problem := func(format string, args ...any) { res.problems = append(res.problems, fmt.Sprintf(format, args...)) }

	l, err := newFaultLab(parent)
	if err != nil {
		res.setupErr = err
		return res
	}
	defer l.Stop()
	// Two Unbounds with empty caches: one for the faulted questions, one for the neighbours.
	uTarget, err := startFaultUnbound(l)
	if err != nil {
		res.setupErr = err
		return res
	}
	defer uTarget.Stop()
	uNeighbours, err := startFaultUnbound(l)
	if err != nil {
		res.setupErr = err
		return res
	}
	defer uNeighbours.Stop()
	delv, err := newDelv(l.Srv, l.Srv.Dir, l.Parent)
	if err != nil {
		res.setupErr = err
		return res
	}

	var uSkew *Unbound
	if c.skew {
		if uSkew, err = startFaultUnbound(l, "val-sig-skew-max: 3600"); err != nil {
			res.setupErr = err
			return res
		}
		defer uSkew.Stop()
	}

	var qs []string
	for _, p := range c.targets {
		qs = append(qs, p.String())
	}
	res.questions = strings.Join(qs, "<br>")
	res.scope = "none"
	if c.fault != nil {
		v, err := l.AddFault(c.fault)
		if err != nil {
			res.setupErr = err
			return res
		}
		name, _ := v.Spec["name"].(string)
		res.scope = "`" + strings.TrimSuffix(name, ".") + "`"
		if t, _ := v.Spec["type"].(string); t != "" {
			res.scope += " " + t
		} else {
			res.scope += " (every type)"
		}
	}

	// The direct check, the faulted questions and the neighbours run side by side.
	var mu sync.Mutex
	var wg sync.WaitGroup
	add := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if c.direct != nil {
		add(func() {
			if err := c.direct(l); err != nil {
				mu.Lock()
				problem("%s", err)
				mu.Unlock()
			}
		})
	}
	res.unbound = make([]string, len(c.targets))
	res.delv = make([]string, len(c.targets))
	add(func() {
		for i, p := range c.targets {
			verdict, probs, notes := faultJudgeUnbound(l, uTarget, p, c.slow, strict)
			mu.Lock()
			res.unbound[i] = verdict
			res.problems = append(res.problems, probs...)
			res.notes = append(res.notes, notes...)
			mu.Unlock()
		}
	})
	var skewVerdicts []string
	if uSkew != nil {
		add(func() {
			for _, p := range c.targets {
				p.alt = nil
				verdict, probs, _ := faultJudgeUnbound(l, uSkew, p, c.slow, true)
				mu.Lock()
				skewVerdicts = append(skewVerdicts, "with val-sig-skew-max: 3600: "+verdict)
				for _, pr := range probs {
					problem("(val-sig-skew-max: 3600) %s", pr)
				}
				mu.Unlock()
			}
		})
	}
	add(func() {
		for i, p := range c.targets {
			verdict, probs := faultJudgeDelv(l, delv, p)
			mu.Lock()
			res.delv[i] = verdict
			res.problems = append(res.problems, probs...)
			mu.Unlock()
		}
	})
	add(func() {
		var ok []string
		for _, p := range c.neighbours {
			uv, probs, _ := faultJudgeUnbound(l, uNeighbours, p, false, true)
			dv, dprobs := faultJudgeDelv(l, delv, p)
			probs = append(probs, dprobs...)
			mu.Lock()
			if len(probs) == 0 {
				ok = append(ok, fmt.Sprintf("%s: secure", p))
			} else {
				ok = append(ok, fmt.Sprintf("%s: Unbound %s, delv %s", p, uv, dv))
			}
			for _, pr := range probs {
				problem("neighbour %s", pr)
			}
			mu.Unlock()
		}
		mu.Lock()
		res.neighbour = ok
		mu.Unlock()
	})
	wg.Wait()
	res.unbound = append(res.unbound, skewVerdicts...)
	if len(res.problems) > 0 {
		res.problems = append(res.problems, fmt.Sprintf("server log (%s):\n%s\nUnbound log (%s):\n%s", l.Srv.LogPath, tail(l.Srv.LogPath, 1500), uTarget.LogPath, uTarget.LogTail(1500)))
	}
	return res
}

// faultAskUnbound asks Unbound with RD, DO and AD. With slow, a first query that gets no
// reply is repeated every two seconds, as a stub resolver does, for up to 25s.
func faultAskUnbound(u *Unbound, p faultProbe, slow bool) (*dns.Msg, string, error) {
	if !slow {
		r, err := u.Resolve(p.name, p.qtype)
		return r, "", err
	}
	start := time.Now()
	o := QueryOpts{RD: true, DO: true, AD: true, Timeout: 2500 * time.Millisecond}
	r, err := QueryFull(u.Addr, p.name, p.qtype, o)
	if err == nil {
		return r, "", nil
	}
	first := err
	o.Timeout = 1500 * time.Millisecond
	for time.Since(start) < 25*time.Second {
		time.Sleep(500 * time.Millisecond)
		if r, err = QueryFull(u.Addr, p.name, p.qtype, o); err == nil {
			return r, fmt.Sprintf("no reply to the first query in 2.5s; a retry got it after %.0fs", time.Since(start).Seconds()), nil
		}
	}
	return nil, "", fmt.Errorf("unbound: no reply in 25s (first: %v; last: %v)", first, err)
}

// faultJudgeUnbound asks Unbound and compares its verdict with the probe's expectation.
func faultJudgeUnbound(l *faultLab, u *Unbound, p faultProbe, slow, strict bool) (verdict string, problems, notes []string) {
	r, note, err := faultAskUnbound(u, p, slow)
	if err != nil {
		return "no reply", []string{fmt.Sprintf("Unbound %s: %v\n%s", p, err, u.LogTail(1500))}, nil
	}
	verdict = fmt.Sprintf("%s AD=%d", dns.RcodeToString[r.Rcode], faultBit(r.AuthenticatedData))
	codes := faultEDECodes(r)
	for _, c := range codes {
		verdict += fmt.Sprintf(" EDE %d (%s)", c, dns.ExtendedErrorCodeToString[c])
	}
	if p.rcode == dns.RcodeSuccess && r.Rcode == dns.RcodeSuccess && len(faultSet(r.Answer, p.name, p.qtype)) == 0 {
		verdict += " (NODATA)"
	}
	if note != "" {
		verdict = note + ": " + verdict
	}
	if a := p.alt; a != nil && (r.Rcode != p.rcode || r.AuthenticatedData != p.ad) && r.Rcode == a.rcode && r.AuthenticatedData == a.ad {
		if !a.bug {
			if len(codes) > 0 && a.rcode == dns.RcodeServerFailure {
				return verdict, []string{fmt.Sprintf("Unbound %s: %s: a SERVFAIL that is not about DNSSEC should carry no DNSSEC EDE", p, verdict)}, nil
			}
			return verdict, nil, []string{fmt.Sprintf("Unbound %s: %s instead of %s: %s", p, verdict, dns.RcodeToString[p.rcode], a.note)}
		}
		msg := fmt.Sprintf("KNOWN DANEZONE BUG: Unbound %s: %s instead of %s: %s", p, verdict, dns.RcodeToString[p.rcode], a.note)
		verdict += " ⚠ danezone bug"
		if strict {
			return verdict, []string{msg}, nil
		}
		return verdict, nil, []string{msg}
	}
	var probs []string
	if r.Rcode != p.rcode || r.AuthenticatedData != p.ad {
		probs = append(probs, fmt.Sprintf("Unbound %s: got %s, want %s AD=%d\n%s", p, verdict, dns.RcodeToString[p.rcode], faultBit(p.ad), fmtMsgShort(r)))
	}
	if p.ede != nil && !slices.ContainsFunc(codes, func(c uint16) bool { return slices.Contains(p.ede, c) }) {
		probs = append(probs, fmt.Sprintf("Unbound %s: EDE codes %v, want one of %v", p, codes, p.ede))
	}
	if p.check != nil && r.Rcode == p.rcode {
		if err := p.check(l, r.Answer); err != nil {
			probs = append(probs, fmt.Sprintf("Unbound %s: %v", p, err))
		}
	}
	return verdict, probs, nil
}

// faultJudgeDelv runs delv and compares its verdict with the probe's expectation.
func faultJudgeDelv(l *faultLab, d *Delv, p faultProbe) (verdict string, problems []string) {
	res, err := d.Query("example.test", p.name, p.qtype)
	if err != nil {
		return "error", []string{fmt.Sprintf("delv %s: %v", p, err)}
	}
	insecure := strings.Contains(res.Output, "; unsigned answer")
	// An insecure negative answer: "; negative response, unsigned answer" (Rcode from
	// "ncache nxdomain" / NoData from "ncache nxrrset").
	insecureNegative := strings.Contains(res.Output, "; negative response, unsigned answer")
	insecure = insecure || insecureNegative
	switch {
	case insecureNegative && res.Rcode == dns.RcodeNameError:
		verdict = "negative response, unsigned answer (NXDOMAIN)"
	case insecureNegative && res.NoData:
		verdict = "negative response, unsigned answer (NODATA)"
	case res.Failure != "":
		verdict = "resolution failed: " + res.Failure
	case res.Secure && res.Rcode == dns.RcodeNameError:
		verdict = "negative response, fully validated (NXDOMAIN)"
	case res.Secure && res.NoData:
		verdict = "negative response, fully validated (NODATA)"
	case res.Secure:
		verdict = "fully validated"
	case insecure:
		verdict = "unsigned answer"
	default:
		verdict = "unclear: " + strings.Join(strings.Fields(res.Output), " ")
	}
	var got string
	switch {
	case res.Failure != "" || res.Rcode == dns.RcodeServerFailure:
		got = "bogus"
	case res.Secure:
		got = "secure"
	case insecure:
		got = "insecure"
	default:
		got = "unclear"
	}
	if got != p.delv {
		return verdict, []string{fmt.Sprintf("delv %s: %s, want %s\n%s\n%s", p, verdict, p.delv, res.Cmd, res.Output)}
	}
	if got != "bogus" && res.Rcode != p.rcode {
		return verdict, []string{fmt.Sprintf("delv %s: rcode %s, want %s\n%s", p, dns.RcodeToString[res.Rcode], dns.RcodeToString[p.rcode], res.Output)}
	}
	if p.check != nil && got != "bogus" {
		if err := p.check(l, res.Answer); err != nil {
			return verdict, []string{fmt.Sprintf("delv %s: %v\n%s", p, err, res.Output)}
		}
	}
	return verdict, nil
}

func faultBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fmtMsgShort prints a response without the OPT record, for failure messages.
func fmtMsgShort(r *dns.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rcode %s tc=%v ad=%v\n", dns.RcodeToString[r.Rcode], r.Truncated, r.AuthenticatedData)
	for _, sec := range [][]dns.RR{r.Answer, r.Ns} {
		for _, rr := range sec {
			b.WriteString("  " + rr.String() + "\n")
		}
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// Checks of direct answers

// faultAsk queries the server directly with DO, over UDP unless o.TCP, with no retry over
// TCP: the truncation faults want to see TC=1.
func faultAsk(l *faultLab, name string, qtype uint16, o QueryOpts) (*dns.Msg, error) {
	o.DO = true
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Second
	}
	return Query(l.Srv.Addr, name, qtype, o)
}

// faultSameTLSA checks that ans holds exactly the TLSA records of the zone file at name.
func faultSameTLSA(l *faultLab, name string, ans []dns.RR) error {
	want := l.Want[faultKey{name, dns.TypeTLSA}]
	got := faultSet(ans, name, dns.TypeTLSA)
	if len(want) == 0 {
		return fmt.Errorf("the zone files have no TLSA at %s", name)
	}
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d TLSA records, want %d (%v)", name, len(got), len(want), got)
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g dns.RR) bool { return faultSameTLSARR(g, w) }) {
			return fmt.Errorf("%s: TLSA %s missing from %v", name, w, got)
		}
	}
	return nil
}

// faultSameTLSARR compares two TLSA records' data (the digest in any case: delv prints it
// in upper case).
func faultSameTLSARR(a, b dns.RR) bool {
	x, ok1 := a.(*dns.TLSA)
	y, ok2 := b.(*dns.TLSA)
	return ok1 && ok2 && x.Usage == y.Usage && x.Selector == y.Selector && x.MatchingType == y.MatchingType &&
		strings.EqualFold(x.Certificate, y.Certificate)
}

// faultTLSAChanged checks a TLSA answer for mx1 changed by tlsa-mismatch (another digest of
// the same length, same parameters) or tlsa-unusable (usage 3→1 or 2→0, same data).
func faultTLSAChanged(l *faultLab, ans []dns.RR, mode string) error {
	want := l.Want[faultKey{fzMX1TLSA, dns.TypeTLSA}]
	got := faultSet(ans, fzMX1TLSA, dns.TypeTLSA)
	if len(got) != len(want) || len(want) != 1 {
		return fmt.Errorf("%s: want %d TLSA record(s), got %v", mode, len(want), got)
	}
	w, g := want[0].(*dns.TLSA), got[0].(*dns.TLSA)
	switch mode {
	case "tlsa-mismatch":
		if g.Usage != w.Usage || g.Selector != w.Selector || g.MatchingType != w.MatchingType ||
			len(g.Certificate) != len(w.Certificate) || strings.EqualFold(g.Certificate, w.Certificate) {
			return fmt.Errorf("tlsa-mismatch: want %d %d %d with another digest of the same length, got %s", w.Usage, w.Selector, w.MatchingType, g)
		}
	case "tlsa-unusable":
		wantUsage := map[uint8]uint8{3: 1, 2: 0, 1: 1, 0: 0}[w.Usage]
		if g.Usage != wantUsage || g.Selector != w.Selector || g.MatchingType != w.MatchingType || !strings.EqualFold(g.Certificate, w.Certificate) {
			return fmt.Errorf("tlsa-unusable: want usage %d and the zone's data otherwise (%s), got %s", wantUsage, w, g)
		}
	}
	return nil
}

// faultDSIs checks the DS of signed.example.test in ans: the child's real DS (real) or one
// with the child's key tag and algorithm but another digest.
func faultDSIs(l *faultLab, ans []dns.RR, real bool) error {
	ds := faultDSOf(ans)
	if ds == nil {
		return fmt.Errorf("no DS in the answer %v", ans)
	}
	same := strings.EqualFold(ds.Digest, l.ChildDS.Digest)
	switch {
	case real && (!same || ds.KeyTag != l.ChildDS.KeyTag):
		return fmt.Errorf("DS %s, want the child's %s", ds, l.ChildDS)
	case !real && (same || ds.KeyTag != l.ChildDS.KeyTag || ds.Algorithm != l.ChildDS.Algorithm || len(ds.Digest) != len(l.ChildDS.Digest)):
		return fmt.Errorf("DS %s, want key tag %d algorithm %d with a digest other than the child's %s", ds, l.ChildDS.KeyTag, l.ChildDS.Algorithm, l.ChildDS.Digest)
	}
	return nil
}

// faultSigTime converts an RRSIG time (RFC 1982 serial arithmetic around now).
func faultSigTime(v uint32) time.Time {
	now := time.Now().Unix()
	mod := now / (1 << 32)
	t := mod*(1<<32) + int64(v)
	if t-now > 1<<31 {
		t -= 1 << 32
	} else if now-t > 1<<31 {
		t += 1 << 32
	}
	return time.Unix(t, 0)
}

// faultSigCheck checks the direct TLSA answer for mx1 under a date fault: the zone file's
// data, RRSIGs that still verify with the zone's key, and dates that pass when.
func faultSigCheck(when func(s *dns.RRSIG, now time.Time) error) func(l *faultLab) error {
	return func(l *faultLab) error {
		r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
		if err != nil {
			return err
		}
		if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
			return err
		}
		sigs := faultSigs(r.Answer, fzMX1TLSA, dns.TypeTLSA)
		if len(sigs) == 0 {
			return fmt.Errorf("direct: no RRSIG")
		}
		now := time.Now()
		for _, s := range sigs {
			if err := faultVerify(faultSet(r.Answer, fzMX1TLSA, dns.TypeTLSA), s, l.Parent.Keys); err != nil {
				return fmt.Errorf("direct: the re-dated RRSIG does not verify (two faults in one): %v", err)
			}
			if err := when(s, now); err != nil {
				return fmt.Errorf("direct: %v", err)
			}
		}
		return nil
	}
}

// faultProofSigned checks that a negative answer has the SOA and NSEC records, all signed
// and valid now.
func faultProofSigned(l *faultLab, r *dns.Msg, qname string) error {
	if len(faultSet(r.Ns, "example.test.", dns.TypeSOA)) == 0 {
		return fmt.Errorf("direct %s: no SOA in the authority section", qname)
	}
	var nsecs int
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok {
			nsecs++
			if err := faultSignedNow(r.Ns, n.Hdr.Name, dns.TypeNSEC, l.Parent.Keys); err != nil {
				return fmt.Errorf("direct %s: %v", qname, err)
			}
		}
	}
	if nsecs == 0 {
		return fmt.Errorf("direct %s: no NSEC in the authority section", qname)
	}
	return nil
}

// faultDenialCheck checks a negative answer under no-denial (no NSEC at all) or bad-denial
// (validly signed NSEC records none of which matches or covers the name).
func faultDenialCheck(mode, qname string, rcode int) func(l *faultLab) error {
	return func(l *faultLab) error {
		r, err := faultAsk(l, qname, dns.TypeTLSA, QueryOpts{})
		if err != nil {
			return err
		}
		if r.Rcode != rcode || len(r.Answer) != 0 {
			return fmt.Errorf("direct %s: want %s and no answer, got %s with %d answers", qname, dns.RcodeToString[rcode], dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		if len(faultSet(r.Ns, "example.test.", dns.TypeSOA)) == 0 {
			return fmt.Errorf("direct %s: no SOA in the authority section", qname)
		}
		var nsecs []*dns.NSEC
		for _, rr := range r.Ns {
			switch x := rr.(type) {
			case *dns.NSEC:
				nsecs = append(nsecs, x)
			case *dns.NSEC3:
				return fmt.Errorf("direct %s: NSEC3 in the answer: %s", qname, x)
			}
		}
		switch mode {
		case "no-denial":
			if len(nsecs) != 0 {
				return fmt.Errorf("direct %s: NSEC records left: %v", qname, r.Ns)
			}
			for _, rr := range r.Ns {
				if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == dns.TypeNSEC {
					return fmt.Errorf("direct %s: RRSIG of an NSEC left: %s", qname, s)
				}
			}
		case "bad-denial":
			if len(nsecs) == 0 {
				return fmt.Errorf("direct %s: no NSEC at all (that is no-denial)", qname)
			}
			for _, n := range nsecs {
				if err := faultSignedNow(r.Ns, n.Hdr.Name, dns.TypeNSEC, l.Parent.Keys); err != nil {
					return fmt.Errorf("direct %s: the bad NSEC is not validly signed (two faults in one): %v", qname, err)
				}
				if faultCanonCmp(n.Hdr.Name, qname) == 0 || faultCovers(n.Hdr.Name, n.NextDomain, qname) {
					return fmt.Errorf("direct %s: the NSEC %s matches or covers the name", qname, n)
				}
			}
		}
		return nil
	}
}

// ---------------------------------------------------------------------------------------------
// Limits: a fault that heals after N queries, and one that heals after a time.

func TestFaultCount(t *testing.T) {
	t.Parallel()
	l, err := newFaultLab(faultParentZone(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	f, err := l.AddFault(map[string]any{"mode": "servfail", "name": fzMX1TLSA, "type": "TLSA", "count": 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{dns.RcodeServerFailure, dns.RcodeServerFailure, dns.RcodeSuccess}
	for i, rc := range want {
		r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
		if err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
		if r.Rcode != rc {
			t.Errorf("query %d: %s, want %s", i+1, dns.RcodeToString[r.Rcode], dns.RcodeToString[rc])
		}
		if rc == dns.RcodeSuccess {
			if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
				t.Errorf("query %d: %v", i+1, err)
			}
			if err := faultSignedNow(r.Answer, fzMX1TLSA, dns.TypeTLSA, l.Parent.Keys); err != nil {
				t.Errorf("query %d: %v", i+1, err)
			}
		}
	}
	// The fault is scoped to TLSA: another type of the name is not counted.
	if r, err := faultAsk(l, fzMX1TLSA, dns.TypeTXT, QueryOpts{}); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("TXT at the faulted name: %v %v", err, r)
	}
	vs, err := l.Faults()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].ID != f.ID || vs[0].Applied != 2 || vs[0].Active {
		t.Errorf("GET /faults: want fault %s applied 2 times and no longer active, got %+v", f.ID, vs)
	}
	faultCheckHistory(t, l, f.ID, []string{"SERVFAIL", "SERVFAIL", "NOERROR"}, []bool{true, true, false})
}

func TestFaultWindow(t *testing.T) {
	t.Parallel()
	l, err := newFaultLab(faultParentZone(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	f, err := l.AddFault(map[string]any{"mode": "servfail", "name": fzMX1TLSA, "type": "TLSA", "for": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	end := f.Created.Add(2 * time.Second)
	r, err := faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(end) < 500*time.Millisecond {
		t.Fatalf("the first query came too late to judge the window (%v before its end)", time.Until(end))
	}
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("inside the window: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	vs, err := l.Faults()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || !vs[0].Active {
		t.Errorf("GET /faults inside the window: want it active, got %+v", vs)
	}
	time.Sleep(time.Until(end) + 100*time.Millisecond)
	r, err = faultAsk(l, fzMX1TLSA, dns.TypeTLSA, QueryOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Errorf("after the window: %s, want NOERROR", dns.RcodeToString[r.Rcode])
	} else if err := faultSameTLSA(l, fzMX1TLSA, r.Answer); err != nil {
		t.Errorf("after the window: %v", err)
	}
	if vs, err = l.Faults(); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Active || vs[0].Applied != 1 {
		t.Errorf("GET /faults after the window: want it inactive, applied once, got %+v", vs)
	}
	faultCheckHistory(t, l, f.ID, []string{"SERVFAIL", "NOERROR"}, []bool{true, false})

	// POST /reset forgets faults and history.
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if vs, err = l.Faults(); err != nil || len(vs) != 0 {
		t.Errorf("after POST /reset: faults %v, %v", vs, err)
	}
	if hs, err := l.History(fzMX1TLSA, "TLSA"); err != nil || len(hs) != 0 {
		t.Errorf("after POST /reset: history %v, %v", hs, err)
	}
}

// faultCheckHistory checks the TLSA questions for mx1 in GET /history: their rcodes in order,
// and which carry the fault's id.
func faultCheckHistory(t *testing.T, l *faultLab, id string, rcodes []string, faulted []bool) {
	t.Helper()
	hs, err := l.History(fzMX1TLSA, "TLSA")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != len(rcodes) {
		t.Fatalf("GET /history: %d TLSA questions for %s, want %d: %+v", len(hs), fzMX1TLSA, len(rcodes), hs)
	}
	for i, h := range hs {
		wantID := ""
		if faulted[i] {
			wantID = id
		}
		if h.Rcode != rcodes[i] || h.Fault != wantID || !strings.EqualFold(h.Name, fzMX1TLSA) || h.Proto != "udp" {
			t.Errorf("GET /history[%d] = %+v, want rcode %s fault %q proto udp", i, h, rcodes[i], wantID)
		}
		if faulted[i] && h.Mode != "servfail" {
			t.Errorf("GET /history[%d]: mode %q, want servfail", i, h.Mode)
		}
		if i > 0 && h.Time.Before(hs[i-1].Time) {
			t.Errorf("GET /history: not in order: %v before %v", h.Time, hs[i-1].Time)
		}
	}
}

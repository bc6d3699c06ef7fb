package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestCompactDenial: what RFC 9824 asks beyond what validators check (every answer class is
// in TestAnswers and TestRandomNames): the NXDOMAIN rcode kept for a query with the Compact
// Answers OK flag, echoed (§5.1), with the same single NSEC; the referral's NSEC (§3.4); FORMERR with EDE 30 for an explicit NXNAME
// query (§3.5); an empty non-terminal told apart from a name that does not exist (no NXNAME).
func TestCompactDenial(t *testing.T) {
	l := sharedLab(t, "compact")
	nsecAt := func(r *dns.Msg, name string) *dns.NSEC {
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC); ok && canon(n.Hdr.Name) == name {
				return n
			}
		}
		return nil
	}
	t.Run("CO keeps NXDOMAIN", func(t *testing.T) {
		for _, co := range []bool{false, true} {
			r, err := QueryFull(l.Srv.Addr, "nope.example.test", dns.TypeA, QueryOpts{DO: true, CO: co})
			if err != nil {
				t.Fatal(err)
			}
			want := map[bool]int{false: dns.RcodeSuccess, true: dns.RcodeNameError}[co]
			if o := r.IsEdns0(); o == nil || o.Co() != co {
				t.Errorf("CO=%v: the response's OPT %v does not echo CO (RFC 9824 §5.1)", co, o)
			}
			n := nsecAt(r, "nope.example.test.")
			if r.Rcode != want || n == nil || !slices.Contains(n.TypeBitMap, 128) {
				t.Fatalf("CO=%v: rcode %s, NSEC at the name %v; want %s and an NSEC listing NXNAME\n%s", co, dns.RcodeToString[r.Rcode], n, dns.RcodeToString[want], r)
			}
			sets, sigs, _ := groupRRsets(r.Ns)
			k := rrsetKey{"nope.example.test.", dns.TypeNSEC}
			if err := verifyRRset(sets[k], sigs[k], l.Anchors, time.Now()); err != nil {
				t.Errorf("CO=%v: %v", co, err)
			}
		}
	})
	t.Run("NXNAME query", func(t *testing.T) {
		r, err := Query(l.Srv.Addr, "mx1.example.test", 128, QueryOpts{DO: true})
		if err != nil {
			t.Fatal(err)
		}
		ede := false
		if o := r.IsEdns0(); o != nil {
			for _, opt := range o.Option {
				if e, ok := opt.(*dns.EDNS0_EDE); ok && e.InfoCode == 30 {
					ede = true
				}
			}
		}
		if r.Rcode != dns.RcodeFormatError || !ede {
			t.Errorf("NXNAME query: rcode %s, EDE 30 %v; want FORMERR with EDE 30 (RFC 9824 §3.5)\n%s", dns.RcodeToString[r.Rcode], ede, r)
		}
		// One response, not a second one from CoreDNS after it (a stray message on TCP).
		conn, err := dns.DialTimeout("tcp", l.Srv.Addr, 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		q := new(dns.Msg)
		q.SetQuestion("mx1.example.test.", 128)
		q.SetEdns0(1232, true)
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ReadMsg(); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if extra, err := conn.ReadMsg(); err == nil {
			t.Errorf("a second response to one NXNAME query over TCP: %v", extra)
		}
	})
	t.Run("unsigned referral", func(t *testing.T) {
		// RFC 9824 §3.4: the NSEC at the delegation runs to the first label with a zero octet
		// appended, which stays out of the child zone.
		r, err := QueryFull(l.Srv.Addr, "www.unsigned.example.test", dns.TypeA, QueryOpts{DO: true})
		if err != nil {
			t.Fatal(err)
		}
		n := nsecAt(r, "unsigned.example.test.")
		if n == nil || canon(n.NextDomain) != `unsigned\000.example.test.` {
			t.Errorf("referral NSEC %v, want unsigned.example.test. NSEC unsigned\\000.example.test.\n%s", n, r)
		}
	})
	t.Run("RRSIG and NSEC questions", func(t *testing.T) {
		// At a name that does not exist, an empty non-terminal and a name a wildcard matches,
		// the NSEC at the name lists RRSIG and NSEC: a NODATA for those types would be bogus.
		u := l.NeedUnbound(t)
		for _, name := range []string{"nope.example.test.", "_tcp.mx1.example.test.", "foo.users.example.test."} {
			for _, qt := range []uint16{dns.TypeRRSIG, dns.TypeNSEC} {
				r, err := u.Resolve(name, qt)
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != dns.RcodeSuccess {
					t.Errorf("Unbound %s %s: %s %v", name, dns.TypeToString[qt], dns.RcodeToString[r.Rcode], EDE(r))
				}
			}
		}
	})
	t.Run("empty non-terminal", func(t *testing.T) {
		r, err := QueryFull(l.Srv.Addr, "_tcp.mx1.example.test", dns.TypeA, QueryOpts{DO: true, CO: true})
		if err != nil {
			t.Fatal(err)
		}
		n := nsecAt(r, "_tcp.mx1.example.test.")
		if r.Rcode != dns.RcodeSuccess || n == nil || slices.Contains(n.TypeBitMap, 128) {
			t.Errorf("empty non-terminal: rcode %s, NSEC %v; want NOERROR and an NSEC at the name without NXNAME\n%s", dns.RcodeToString[r.Rcode], n, r)
		}
	})
}

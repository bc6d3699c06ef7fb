package danezone_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const xfrKey = "xfr.test."

// startPrimary runs CoreDNS with tsig, transfer and danezone serving x.test from dir, and
// returns its address and the TSIG secret.
func startPrimary(t *testing.T, dir, extra string) (string, string) {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	secret := base64.StdEncoding.EncodeToString(b)
	corefile := fmt.Sprintf(`.:0 {
 bind 127.0.0.1
 tsig {
  secret %s %s
  require AXFR IXFR
 }
 transfer {
  to *
 }
 danezone %s {
  keys %s
  reload 50ms
  %s
 }
}
`, xfrKey, secret, filepath.Join(dir, "zones"), filepath.Join(dir, "keys"), extra)
	tcp, _ := startCoreDNS(t, corefile)
	return tcp, secret
}

func writeZone(t *testing.T, dir, text string) {
	t.Helper()
	zd := filepath.Join(dir, "zones")
	os.MkdirAll(zd, 0o755)
	tmp := filepath.Join(zd, ".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(zd, "x.test.zone")); err != nil { // renamed: loaded at the next poll
		t.Fatal(err)
	}
}

var xZone = `$ORIGIN x.test.
$TTL 300
@ SOA ns h 1 3600 900 604800 300
@ NS ns
ns A 192.0.2.1
mx A 192.0.2.2
_25._tcp.mx TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1
sub NS ns.sub
sub A 192.0.2.4
ns.sub A 192.0.2.3
` + filler

// filler makes the zone larger than the differences the tests make, so that they go by IXFR.
var filler = func() string {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "host%d A 192.0.2.%d\n", i, 10+i)
	}
	return b.String()
}()

// xfrIn runs a zone transfer signed with the key (or unsigned when secret is ""), and returns
// its records or the error.
func xfrIn(addr, secret string, qtype uint16, serial uint32) ([]dns.RR, error) {
	m := new(dns.Msg)
	if qtype == dns.TypeIXFR {
		m.SetIxfr("x.test.", serial, "ns.x.test.", "h.x.test.")
	} else {
		m.SetAxfr("x.test.")
	}
	tr := &dns.Transfer{DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second}
	if secret != "" {
		m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
		tr.TsigSecret = map[string]string{xfrKey: secret}
	}
	env, err := tr.In(m, addr)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for e := range env {
		if e.Error != nil {
			return nil, e.Error
		}
		out = append(out, e.RR...)
	}
	return out, nil
}

// verifyZone checks a full transfer as a validator would: each RRset but the delegation's NS
// and glue carries a signature by a key of the zone's DNSKEY set that verifies now, and the
// NSEC records form one chain through every name.
func verifyZone(t *testing.T, rrs []dns.RR) {
	t.Helper()
	if len(rrs) < 2 || rrs[0].Header().Rrtype != dns.TypeSOA || rrs[len(rrs)-1].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("not framed by the SOA: %v", rrs)
	}
	body := rrs[1 : len(rrs)-1]
	body = append(body, rrs[0])
	keys := map[uint16]*dns.DNSKEY{}
	sets := map[string][]dns.RR{}
	sigs := map[string][]*dns.RRSIG{}
	for _, rr := range body {
		h := rr.Header()
		switch r := rr.(type) {
		case *dns.DNSKEY:
			keys[r.KeyTag()] = r
		case *dns.RRSIG:
			k := h.Name + "/" + dns.TypeToString[r.TypeCovered]
			sigs[k] = append(sigs[k], r)
			continue
		}
		k := h.Name + "/" + dns.TypeToString[h.Rrtype]
		sets[k] = append(sets[k], rr)
	}
	// Delegation points: their NS and everything below them is not signed (RFC 4035 §2.2).
	var cuts []string
	for k, set := range sets {
		if name := set[0].Header().Name; strings.HasSuffix(k, "/NS") && name != "x.test." {
			cuts = append(cuts, name)
		}
	}
	nsecs := 0
	for k, set := range sets {
		name := set[0].Header().Name
		unsigned := false
		for _, c := range cuts {
			atCut := name == c && !strings.HasSuffix(k, "/DS") && !strings.HasSuffix(k, "/NSEC")
			unsigned = unsigned || atCut || name != c && dns.IsSubDomain(c, name)
		}
		if unsigned {
			if len(sigs[k]) > 0 {
				t.Errorf("%s: glue or delegation NS signed", k)
			}
			continue
		}
		if len(sigs[k]) == 0 {
			t.Errorf("%s: no RRSIG", k)
			continue
		}
		for _, s := range sigs[k] {
			key := keys[s.KeyTag]
			if key == nil {
				t.Errorf("%s: RRSIG by key %d, not in the DNSKEY set", k, s.KeyTag)
			} else if err := s.Verify(key, set); err != nil {
				t.Errorf("%s: RRSIG by %d does not verify: %v", k, s.KeyTag, err)
			} else if !s.ValidityPeriod(time.Now()) {
				t.Errorf("%s: RRSIG not valid now", k)
			}
		}
		if set[0].Header().Rrtype == dns.TypeNSEC {
			nsecs++
		}
	}
	// Every owner has an NSEC; following next names from the apex visits each once.
	owners := map[string]string{}
	for _, set := range sets {
		if n, ok := set[0].(*dns.NSEC); ok {
			owners[n.Hdr.Name] = n.NextDomain
		}
	}
	seen, at := 0, "x.test."
	for {
		next, ok := owners[at]
		if !ok {
			t.Fatalf("NSEC chain broken at %s", at)
		}
		seen++
		if at = next; at == "x.test." || seen > len(owners) {
			break
		}
	}
	if seen != len(owners) || nsecs == 0 {
		t.Errorf("NSEC chain visits %d of %d owners", seen, len(owners))
	}
}

func TestTransfer(t *testing.T) {
	for _, mode := range []string{"nsec", "minimal"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			writeZone(t, dir, xZone)
			addr, secret := startPrimary(t, dir, "denial "+mode+"\n  serial increment")
			axfr, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
			if err != nil {
				t.Fatal(err)
			}
			verifyZone(t, axfr)
			s1 := axfr[0].(*dns.SOA).Serial

			// Refused without the key, BADKEY with another (RFC 8945 §5.2.2).
			if _, err := xfrIn(addr, "", dns.TypeAXFR, 0); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rcode: %d", dns.RcodeRefused)) {
				t.Errorf("AXFR without TSIG: %v, want REFUSED", err)
			}
			b := make([]byte, 32)
			rand.Read(b)
			if _, err := xfrIn(addr, base64.StdEncoding.EncodeToString(b), dns.TypeAXFR, 0); err == nil {
				t.Error("AXFR with a wrong secret accepted")
			}

			// Up to date: one SOA.
			if rrs, err := xfrIn(addr, secret, dns.TypeIXFR, s1); err != nil || len(rrs) != 1 {
				t.Errorf("IXFR at the current serial: %v %v, want the SOA alone", rrs, err)
			}

			// A TLSA change: the IXFR holds the difference, not the zone.
			writeZone(t, dir, strings.Replace(xZone, "8cb0fc6c", "9cb0fc6c", 1))
			var s2 uint32
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				r, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("x.test.", dns.TypeSOA), addr)
				if err == nil && len(r.Answer) == 1 {
					if s2 = r.Answer[0].(*dns.SOA).Serial; s2 != s1 {
						break
					}
				}
			}
			if s2 != s1+1 {
				t.Fatalf("serial after the change %d, want %d (increment)", s2, s1+1)
			}
			ixfr, err := xfrIn(addr, secret, dns.TypeIXFR, s1)
			if err != nil {
				t.Fatal(err)
			}
			// RFC 1995 §4: new SOA, old SOA, deleted, new SOA, added, new SOA.
			if len(ixfr) < 4 || ixfr[1].Header().Rrtype != dns.TypeSOA || ixfr[1].(*dns.SOA).Serial != s1 {
				t.Fatalf("not an incremental transfer:\n%v", ixfr)
			}
			var del, add []string
			part := 0
			for _, rr := range ixfr[1 : len(ixfr)-1] {
				if rr.Header().Rrtype == dns.TypeSOA {
					part++
					continue
				}
				s := rr.Header().Name + " " + dns.TypeToString[rr.Header().Rrtype]
				if sig, ok := rr.(*dns.RRSIG); ok {
					s += " " + dns.TypeToString[sig.TypeCovered]
				}
				if part == 1 {
					del = append(del, s)
				} else {
					add = append(add, s)
				}
			}
			want := []string{"x.test. RRSIG SOA", "_25._tcp.mx.x.test. TLSA", "_25._tcp.mx.x.test. RRSIG TLSA"}
			for _, w := range want {
				if !contains(del, w) || !contains(add, w) {
					t.Errorf("IXFR: %q not deleted and added: deleted %v, added %v", w, del, add)
				}
			}
			if len(del) != len(want) || len(add) != len(want) {
				t.Errorf("IXFR carries more than the change: deleted %v, added %v", del, add)
			}
			// Applying the difference gives the zone a full transfer gives.
			axfr2, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
			if err != nil {
				t.Fatal(err)
			}
			verifyZone(t, axfr2)
			if got, want := applyIXFR(axfr, ixfr), axfr2; !sameRRs(got, want) {
				t.Errorf("AXFR(%d) + IXFR differs from AXFR(%d)", s1, s2)
			}

			// A larger change: a delegation removed, a TTL changed, a new delegation hiding a
			// name (now glue), a new name. The IXFR from each earlier version applies to it.
			third := strings.Replace(xZone, "8cb0fc6c", "9cb0fc6c", 1)
			third = strings.Replace(third, "mx A 192.0.2.2\n", "mx 60 A 192.0.2.2\nnew A 192.0.2.7\nother NS ns.other\nns.other A 192.0.2.8\n", 1)
			third = strings.Replace(third, "_25._tcp.mx TLSA", "_25._tcp.mx 600 TLSA", 1)
			// The delegation at sub goes: its A, unsigned at the cut, is the same RRset and
			// must be signed now, and so must the glue below, now authoritative.
			third = strings.Replace(third, "sub NS ns.sub\n", "", 1)
			writeZone(t, dir, third)
			var s3 uint32
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				r, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("x.test.", dns.TypeSOA), addr)
				if err == nil && len(r.Answer) == 1 {
					if s3 = r.Answer[0].(*dns.SOA).Serial; s3 != s2 {
						break
					}
				}
			}
			axfr3, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
			if err != nil {
				t.Fatal(err)
			}
			verifyZone(t, axfr3)
			for _, from := range []struct {
				serial uint32
				zone   []dns.RR
			}{{s1, axfr}, {s2, axfr2}} {
				ixfr, err := xfrIn(addr, secret, dns.TypeIXFR, from.serial)
				if err != nil {
					t.Fatal(err)
				}
				if len(ixfr) < 2 || ixfr[1].Header().Rrtype != dns.TypeSOA {
					t.Errorf("IXFR from %d: not incremental", from.serial)
				}
				if got := applyIXFR(from.zone, ixfr); !sameRRs(got, axfr3) {
					t.Errorf("AXFR(%d) + IXFR differs from AXFR(%d)", from.serial, s3)
				}
			}

			// A serial the journal never had: the whole zone.
			full, err := xfrIn(addr, secret, dns.TypeIXFR, s1-10)
			if err != nil || !sameRRs(full, axfr3) {
				t.Errorf("IXFR from an unknown serial: %v, want the whole zone", err)
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// applyIXFR applies an IXFR answer to the records of an AXFR (RFC 1995 §4), returning the
// new zone framed by its SOA.
func applyIXFR(axfr, ixfr []dns.RR) []dns.RR {
	if len(ixfr) > 1 && ixfr[1].Header().Rrtype != dns.TypeSOA { // the whole zone (AXFR style)
		return ixfr
	}
	zone := map[string]dns.RR{}
	for _, rr := range axfr[1 : len(axfr)-1] {
		zone[rr.String()] = rr
	}
	part := 0
	for _, rr := range ixfr[1 : len(ixfr)-1] {
		if rr.Header().Rrtype == dns.TypeSOA {
			part++
			continue
		}
		if part%2 == 1 {
			delete(zone, rr.String())
		} else {
			zone[rr.String()] = rr
		}
	}
	out := []dns.RR{ixfr[0]}
	for _, rr := range zone {
		out = append(out, rr)
	}
	return append(out, ixfr[0])
}

func sameRRs(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, rr := range a {
		m[rr.String()]++
	}
	for _, rr := range b {
		m[rr.String()]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// A secondary that stops reading in the middle of a transfer holds up nothing else: queries
// and other transfers are answered meanwhile.
func TestStalledTransfer(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString(xZone)
	txt := `"` + strings.Repeat("x", 250) + `" "` + strings.Repeat("y", 250) + `" "` + strings.Repeat("z", 250) + `"`
	for i := range 8000 { // some 7 MB, more than the socket buffers take
		fmt.Fprintf(&b, "h%d TXT %s\n", i, txt)
	}
	writeZone(t, dir, b.String())
	addr, secret := startPrimary(t, dir, "")
	full, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
	if err != nil {
		t.Fatal(err)
	}

	// The stalled secondary: asks, reads one message, then nothing.
	m := new(dns.Msg)
	m.SetAxfr("x.test.")
	m.SetTsig(xfrKey, dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{xfrKey: secret}}
	conn, err := c.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Conn.(*net.TCPConn).SetReadBuffer(4096)
	conn.TsigSecret = map[string]string{xfrKey: secret}
	if err := conn.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ReadMsg(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion("mx.x.test.", dns.TypeA), addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("query while a transfer stalls: %v %v", r, err)
	}
	again, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
	if err != nil || !sameRRs(again, full) {
		t.Fatalf("transfer while another stalls: %v", err)
	}
	t.Logf("query and a full transfer of %d records in %s while another transfer stalled", len(again), time.Since(start))
}

// Faults apply to queries, never to what secondaries receive.
func TestTransferWithoutFaults(t *testing.T) {
	dir := t.TempDir()
	writeZone(t, dir, xZone)
	addr, secret := startPrimary(t, dir, "fault servfail x.test SOA\n  fault expired-sig *x.test")
	q := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg).SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := q("x.test.", dns.TypeSOA); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("the servfail fault is not on: %s", dns.RcodeToString[r.Rcode])
	}
	expired := false
	for _, rr := range q("mx.x.test.", dns.TypeA).Answer {
		if sig, ok := rr.(*dns.RRSIG); ok && !sig.ValidityPeriod(time.Now()) {
			expired = true
		}
	}
	if !expired {
		t.Fatal("the expired-sig fault is not on")
	}
	axfr, err := xfrIn(addr, secret, dns.TypeAXFR, 0)
	if err != nil {
		t.Fatal(err)
	}
	verifyZone(t, axfr) // every signature valid now
}

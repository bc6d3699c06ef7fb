package denial

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

const head = `$ORIGIN example.test.
$TTL 3600
@   SOA ns1 hostmaster 1 3600 900 1209600 300
    NS  ns1
ns1 A   127.0.0.1
`

func parse(t *testing.T, extra string) *zone.Zone {
	t.Helper()
	z, err := zone.Parse(strings.NewReader(head+extra), "example.test.", "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func between(owner, name, next string) bool {
	o, n, x := zone.Key(owner), zone.Key(name), zone.Key(next)
	if x <= o { // last NSEC of the chain
		return o < n
	}
	return o < n && n < x
}

func TestMinimalCoverIsTight(t *testing.T) {
	z := parse(t, "b A 127.0.0.1\nb\\000 A 127.0.0.1\nc.b A 127.0.0.1\n\\[ A 127.0.0.1\nzz A 127.0.0.1\n")
	d := nsecsOf(New(Minimal, z, nil))
	names := []string{"a.example.test.", "ba.example.test.", "d.b.example.test.", "z.example.test.", "zzz.example.test.",
		"\\000.example.test.", "\\\\.example.test.", "x.y.z.example.test.", strings.Repeat("a", 63) + ".example.test.",
		"c.example.test.", "\\255.example.test."}
	existing := []string{"example.test.", "ns1.example.test.", "b.example.test.", "b\\000.example.test.", "c.b.example.test.",
		"\\[.example.test.", "zz.example.test."}
	for _, name := range names {
		set := d.Cover(name)
		n := set.RRs[0].(*dns.NSEC)
		if !between(n.Hdr.Name, name, n.NextDomain) {
			t.Errorf("NSEC %s does not cover %s", n, name)
		}
		for _, e := range existing {
			if between(n.Hdr.Name, e, n.NextDomain) {
				t.Errorf("NSEC %s covers the existing name %s", n, e)
			}
		}
		if _, ok := dns.IsDomainName(n.Hdr.Name); !ok {
			t.Errorf("owner %q is not a domain name", n.Hdr.Name)
		}
		if l, ok := dns.IsDomainName(n.NextDomain); !ok || l == 0 {
			t.Errorf("next %q is not a domain name", n.NextDomain)
		}
		buf := make([]byte, 512)
		if _, err := dns.PackRR(n, buf, 0, nil, false); err != nil {
			t.Errorf("NSEC %s does not pack: %v", n, err)
		}
	}
}

func TestMinimalMatch(t *testing.T) {
	z := parse(t, "_25._tcp.mx A 127.0.0.1\n")
	d := nsecsOf(New(Minimal, z, nil))
	n := d.Match(z.Node("_tcp.mx.example.test.")).RRs[0].(*dns.NSEC)
	if n.NextDomain != "\\000._tcp.mx.example.test." || len(n.TypeBitMap) != 2 {
		t.Errorf("empty non-terminal NSEC: %s", n)
	}
	n = d.Match(z.Node("ns1.example.test.")).RRs[0].(*dns.NSEC)
	if n.NextDomain != "\\000.ns1.example.test." || len(n.TypeBitMap) != 3 {
		t.Errorf("ns1 NSEC: %s", n)
	}
}

func TestChainReusesUnchangedNSEC(t *testing.T) {
	z1 := parse(t, "a A 127.0.0.1\nm A 127.0.0.1\n")
	d1n := New(NSEC, z1, nil)
	d1 := nsecsOf(d1n)
	apex1, m1 := d1.Match(z1.Node("example.test.")), d1.Match(z1.Node("m.example.test."))
	z2 := parse(t, "a A 127.0.0.1\nm A 127.0.0.1\nm TXT \"new\"\n")
	d2n := New(NSEC, z2, d1n)
	d2 := nsecsOf(d2n)
	// Records are made when asked for: only the two asked in z1 may exist in z2 before any
	// is asked (one reused, one changed).
	made := 0
	d2n.(nsecProofs).Made(func(*zone.RRset) { made++ })
	if made != 1 {
		t.Errorf("%d NSEC RRsets made before any was asked; want 1 (the apex's, reused)", made)
	}
	if apex1 != d2.Match(z2.Node("example.test.")) {
		t.Error("apex NSEC unchanged but not reused")
	}
	if m1 == d2.Match(z2.Node("m.example.test.")) {
		t.Error("m NSEC changed (new type) but was reused")
	}
	if d1.Match(z1.Node("a.example.test.")) == d2.Match(z2.Node("a.example.test.")) {
		t.Error("a NSEC reused though it was made after z2's chain")
	}
	if d2.Match(z2.Node("ns1.example.test.")).RRs[0].(*dns.NSEC).NextDomain != "example.test." {
		t.Error("last NSEC must point back to the apex")
	}
}

// TestMinimalCoverOwnerNobodyAsks: the owner of a covering NSEC is claimed to exist with no
// data, so it must not be a name a client asks for: below a wildcard the zone answers such a
// name with the wildcard's data, and a validator holding the lie would deny it. The owner is
// padded to a 63-octet label (RFC 4470 §3), not "2\255" for "3", a name a random test asked.
func TestMinimalCoverOwnerNobodyAsks(t *testing.T) {
	z := parse(t, "*.users A 127.0.0.20\n")
	d := nsecsOf(New(Minimal, z, nil))
	for _, name := range []string{"3.users.example.test.", "b.users.example.test.", "ab.users.example.test."} {
		owner := d.Cover(name).RRs[0].Header().Name
		label, _ := splitFirst(owner)
		if n := len(unescape(label)); n != 63 {
			t.Errorf("Cover(%s): owner %s has a %d-octet first label, want 63", name, owner, n)
		}
	}
}

// The owner of a minimal covering NSEC is claimed to exist: it must be a real name of the zone
// or one nobody asks for, never a name the zone answers NXDOMAIN for. "q" sorts right before
// "q\000": as the owner, a validator that cached it answered NODATA for "q" (RFC 8198).
func TestMinimalOwnerNotAskable(t *testing.T) {
	z := parse(t, "b A 127.0.0.1\n*.w A 127.0.0.1\n")
	d := nsecsOf(New(Minimal, z, nil))
	for _, c := range []struct{ name, notOwner string }{
		{"q\\000.example.test.", "q.example.test."},
		{"x\\000\\000.example.test.", "x\\000.example.test."},
		{"a\\000.b.example.test.", "a.b.example.test."},
		// Below a wildcard: the real previous name is the wildcard, whose own NSEC (the
		// match) goes in the same answer.
		{"luc\\000.w.example.test.", "*.w.example.test."},
	} {
		n := d.Cover(c.name).RRs[0].(*dns.NSEC)
		if strings.EqualFold(n.Hdr.Name, c.notOwner) || strings.EqualFold(n.Hdr.Name, strings.Replace(c.name, "\\000", "", -1)) {
			t.Errorf("cover of %s: owner %s, a name that does not exist and can be asked for, or another NSEC's", c.name, n.Hdr.Name)
		}
		if !between(n.Hdr.Name, c.name, n.NextDomain) {
			t.Errorf("NSEC %s does not cover %s", n, c.name)
		}
	}
}

// nsecsOf is the NSEC maker behind an NSEC mode's denier.
func nsecsOf(d Denier) nsecs { return d.(nsecProofs).nsecs }

func TestParseMode(t *testing.T) {
	for _, c := range []struct {
		args  []string
		want  Mode
		rest  int
		error string
	}{
		{[]string{"nsec"}, NSEC, 0, ""},
		{[]string{"minimal", "a.test"}, Minimal, 1, ""},
		{[]string{"nsec3"}, NSEC3, 0, ""},
		{[]string{"nsec3", "iterations", "5", "salt", "aBcD", "optout", "a.test", "b.test"}, Mode{Kind: "nsec3", Iterations: 5, Salt: "ABCD", OptOut: true}, 2, ""},
		{[]string{"nsec3-narrow", "salt", "-"}, NSEC3Narrow, 0, ""},
		{[]string{"nsec3", "iterations", "101"}, Mode{}, 0, "want 0 to 100"},
		{[]string{"nsec3", "salt", "xyz"}, Mode{}, 0, "want hex"},
		{[]string{"nsec3", "iterations"}, Mode{}, 0, "needs a value"},
		{[]string{"nsec", "optout"}, Mode{}, 0, "option of the nsec3 modes"},
		{[]string{"nsec3-narrow", "optout"}, Mode{}, 0, "optout is for nsec3"},
		{[]string{"nsec5"}, Mode{}, 0, "valid are nsec, minimal, nsec3, nsec3-narrow, compact"},
	} {
		m, rest, err := ParseMode(c.args)
		if c.error != "" {
			if err == nil || !strings.Contains(err.Error(), c.error) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.error)
			}
			continue
		}
		if err != nil || m != c.want || len(rest) != c.rest {
			t.Errorf("%v: %+v %v %v, want %+v and %d left", c.args, m, rest, err, c.want, c.rest)
		}
	}
}

// TestStep: NSEC3 white lies step a hash by one, with carries and wrapping at 2^160.
func TestStep(t *testing.T) {
	for _, c := range []struct{ in, up, down string }{
		{"00000000000000000000000000000000", "00000000000000000000000000000001", "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV"},
		{"0000000000000000000000000000000V", "00000000000000000000000000000010", "0000000000000000000000000000000U"},
		{"VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVV", "00000000000000000000000000000000", "VVVVVVVVVVVVVVVVVVVVVVVVVVVVVVVU"},
	} {
		if got := step(c.in, 1); got != c.up {
			t.Errorf("step(%s, +1) = %s, want %s", c.in, got, c.up)
		}
		if got := step(c.in, -1); got != c.down {
			t.Errorf("step(%s, -1) = %s, want %s", c.in, got, c.down)
		}
	}
}

// TestHashChain: one NSEC3 per name and empty non-terminal (opt-out leaves the delegation
// without DS out), in hash order, each pointing to the next; unchanged records reused.
func TestHashChain(t *testing.T) {
	z := parse(t, "a.b.c A 127.0.0.1\nsub NS ns.sub\nns.sub A 127.0.0.2\n")
	names := []string{"example.test.", "ns1.example.test.", "a.b.c.example.test.", "b.c.example.test.", "c.example.test.", "sub.example.test."}
	for _, optout := range []bool{false, true} {
		m := NSEC3
		m.OptOut = optout
		c := New(m, z, nil).(*hashChain)
		want := len(names)
		if optout {
			want--
		}
		sets := c.Sets()
		if len(sets) != want {
			t.Fatalf("optout %v: %d NSEC3, want %d", optout, len(sets), want)
		}
		// The hashes, as miekg/dns computes them, in order.
		var hashes []string
		for _, name := range names {
			if !optout || name != "sub.example.test." {
				hashes = append(hashes, m.Hash(name))
			}
		}
		slices.Sort(hashes)
		for i, set := range sets {
			n := set.RRs[0].(*dns.NSEC3)
			if next := hashes[(i+1)%len(hashes)]; n.NextDomain != next || !strings.HasPrefix(n.Hdr.Name, strings.ToLower(hashes[i])+".") {
				t.Errorf("optout %v: %s next %s, want %s", optout, n.Hdr.Name, n.NextDomain, next)
			}
			if n.Flags != map[bool]uint8{false: 0, true: 1}[optout] {
				t.Errorf("optout %v: flags %d", optout, n.Flags)
			}
		}
		if got := c.match("sub.example.test.") != nil; got == optout {
			t.Errorf("optout %v: the insecure delegation has an NSEC3: %v", optout, got)
		}
		if proof := c.NoData(z.Node("sub.example.test.")); optout && (len(proof) != 2 || proof[0] != c.match("example.test.")) {
			t.Errorf("opt-out DS denial: %v, want the apex's NSEC3 and the one covering sub", proof)
		}
	}
	z2 := parse(t, "a.b.c A 127.0.0.1\nsub NS ns.sub\nns.sub A 127.0.0.2\nnew TXT x\n")
	c2 := New(NSEC3, z2, New(NSEC3, z, nil)).(*hashChain)
	if c2.match("a.b.c.example.test.") == nil {
		t.Fatal("no NSEC3 for a.b.c")
	}
	c3 := New(NSEC3, z2, c2).(*hashChain)
	if c3.match("a.b.c.example.test.") != c2.match("a.b.c.example.test.") {
		t.Error("unchanged NSEC3 not reused")
	}
	made := 0
	c3.Made(func(*zone.RRset) { made++ })
	if made != 1 {
		t.Errorf("%d NSEC3 RRsets made, want 1: only the one asked for", made)
	}
}

// TestRawHash: the chain's hash is RFC 5155 §5's, as miekg/dns computes it, with salt and
// iterations, and of the canonical (lowercase) name.
func TestRawHash(t *testing.T) {
	for _, m := range []Mode{NSEC3, {Kind: "nsec3", Iterations: 12, Salt: "AABBCCDD"}, {Kind: "nsec3", Iterations: 1, Salt: "00"}} {
		salt, _ := hex.DecodeString(m.Salt)
		for _, name := range []string{".", "example.", "a.example.", "WWW.Example.Test.", "*.w.example.", `\000.x.example.`, "xn--bcher-kva.example.", `a\.b.example.`} {
			got := strings.ToUpper(b32.EncodeToString(func() []byte { h := rawHash(name, m.Iterations, salt); return h[:] }()))
			if want := dns.HashName(name, dns.SHA1, m.Iterations, m.Salt); got != want {
				t.Errorf("%v %s: %s, miekg/dns says %s", m, name, got, want)
			}
		}
	}
	// The hash is of the canonical wire form: an escaped capital is lowered too (miekg/dns
	// lowers the text only).
	if got, want := NSEC3.Hash(`\065.example.`), NSEC3.Hash("a.example."); got != want {
		t.Errorf(`H(\065.example.) = %s, want H(a.example.) = %s`, got, want)
	}
	// RFC 5155 Appendix A: H(example) = 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom (salt aabbccdd, 12 iterations).
	h := rawHash("example.", 12, []byte{0xaa, 0xbb, 0xcc, 0xdd})
	if got := strings.ToLower(b32.EncodeToString(h[:])); got != "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom" {
		t.Errorf("H(example) = %s, RFC 5155 Appendix A says 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom", got)
	}
}

// TestNarrowCoversOnlyTheName: a white lie covers the hash asked and no hash of the zone.
func TestNarrowCoversOnlyTheName(t *testing.T) {
	z := parse(t, "a A 127.0.0.1\n*.w A 127.0.0.2\n")
	d := New(NSEC3Narrow, z, nil).(*narrow)
	var hashes []string
	for _, n := range append(z.Chain(), z.EmptyNonTerminals()...) {
		hashes = append(hashes, NSEC3Narrow.Hash(n.Name))
	}
	for _, name := range []string{"x.example.test.", "y.w.example.test.", "*.example.test.", "\\000.example.test."} {
		n := d.cover(name).RRs[0].(*dns.NSEC3)
		h := NSEC3Narrow.Hash(name)
		owner := strings.ToUpper(strings.Split(n.Hdr.Name, ".")[0])
		if !(owner < h && h < n.NextDomain) {
			t.Errorf("cover of %s (%s): %s -> %s does not cover it", name, h, owner, n.NextDomain)
		}
		for _, e := range hashes {
			if owner < e && e < n.NextDomain || e == owner {
				t.Errorf("cover of %s: %s -> %s covers or claims an existing hash %s", name, owner, n.NextDomain, e)
			}
		}
	}
}

// TestSuccessor: the next name of a compact answer's NSEC is the name's immediate successor
// (RFC 4471 §3.1.2), a zero label in front while it fits 255 octets, else the first label's
// last octet incremented (letters as lower case, 0xff octets dropped).
func TestSuccessor(t *testing.T) {
	tail := strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 55) + ".test." // 191 octets
	for _, c := range []struct{ in, want string }{
		{"x.example.test.", "\\000.x.example.test."},
		{strings.Repeat("a", 63) + "." + tail, strings.Repeat("a", 62) + "b." + tail},
		{strings.Repeat("a", 62) + "y." + tail, strings.Repeat("a", 62) + "z." + tail},
		{strings.Repeat("a", 62) + "Y." + tail, strings.Repeat("a", 62) + "z." + tail},
		{strings.Repeat("a", 62) + "z." + tail, strings.Repeat("a", 62) + "\\123." + tail},
		{strings.Repeat("a", 62) + "@." + tail, strings.Repeat("a", 62) + "\\091." + tail},
		{strings.Repeat("a", 61) + "q\\255." + tail, strings.Repeat("a", 61) + "r." + tail},
		{strings.Repeat("\\255", 63) + "." + tail, strings.Repeat("b", 62) + "c." + tail[64:]},
		// 254 octets with room in the first label: the zero octet goes there (RFC 4471 §3.1.2).
		{"abc." + strings.Repeat("e", 59) + "." + tail, "abc\\000." + strings.Repeat("e", 59) + "." + tail},
	} {
		if n := wireLen(c.in); n < 254 && !strings.HasPrefix(c.in, "x.") {
			t.Fatalf("test bug: %s is %d octets", c.in, n)
		}
		got := successor(c.in)
		if got != c.want {
			t.Errorf("successor(%s) = %s, want %s", c.in, got, c.want)
		}
		if zone.Key(got) <= zone.Key(c.in) || wireLen(got) > 255 {
			t.Errorf("successor(%s) = %s does not sort after it or is too long", c.in, got)
		}
	}
}

// TestRootZone: the modes at the root zone, whose names have no label below the origin's dot.
func TestRootZone(t *testing.T) {
	z, err := zone.Parse(strings.NewReader(". 3600 SOA ns. h. 1 3600 900 1209600 300\n. NS ns.\nns. A 127.0.0.1\ntest. NS ns.test.\nns.test. A 127.0.0.2\n"), ".", "root", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Mode{NSEC, Minimal, NSEC3, NSEC3Narrow, Compacted} {
		d := New(m, z, nil)
		var sets []*zone.RRset
		nx := d.NXDomain(".", "nope.")
		sets = append(sets, nx[:]...)
		sets = append(sets, d.NoData(z.Node("test."))...)
		sets = append(sets, d.NoData(z.Node("."))...)
		if c, ok := d.(Compact); ok {
			sets = append(sets, c.NXName("nope."))
		}
		buf := make([]byte, 4096)
		for _, set := range sets {
			if set == nil {
				continue
			}
			for _, rr := range set.RRs {
				if _, err := dns.PackRR(rr, buf, 0, nil, false); err != nil {
					t.Errorf("%s: %v cannot be encoded: %v", m, rr, err)
				}
			}
		}
	}
	// A compact referral from the root runs from the TLD to its sibling successor.
	c := New(Compacted, z, nil).(compact)
	if n := c.NoData(z.Node("test."))[0].RRs[0].(*dns.NSEC); n.NextDomain != "test\\000." {
		t.Errorf("compact referral NSEC %v, want next test\\000.", n)
	}
	if c.Own(z.Node("test.")) != c.NoData(z.Node("test."))[0] {
		t.Error("two NSEC RRsets at one delegation point")
	}
}

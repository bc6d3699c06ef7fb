package wire

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// response returns a response to qname A as danezone makes one: the answer owned by the
// question's spelling and signed, names the zone spells in lower case elsewhere, an NSEC, a
// DNAME, an OPT record.
func response(t *testing.T, qname string) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(qname, dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := rr("www.example.test. 60 A 192.0.2.1")
	a.Header().Name = qname
	sig := rr("www.example.test. 60 RRSIG A 13 3 60 20261231000000 20261201000000 42 example.test. dGVzdA==")
	sig.Header().Name = qname
	m.Answer = []dns.RR{a, sig, rr("www.example.test. 60 MX 10 mx1.example.test.")}
	m.Answer[2].Header().Name = qname
	m.Ns = []dns.RR{rr("example.test. 60 NS ns1.example.test."),
		rr("example.test. 60 SOA ns1.example.test. hostmaster.example.test. 1 3600 900 1209600 300"),
		rr("example.test. 60 NSEC www.example.test. A NS SOA RRSIG NSEC"),
		rr("example.test. 60 RRSIG NSEC 13 2 60 20261231000000 20261201000000 42 example.test. dGVzdA=="),
		rr("old.example.test. 60 DNAME new.example.test."),
		// Owners that only the NSEC's next name and the DNAME's target spell before them.
		rr("new.example.test. 60 A 192.0.2.9"), rr("www.example.test. 60 AAAA 2001:db8::1")}
	m.SetEdns0(1232, true)
	return m
}

func packed(t *testing.T, m *dns.Msg, q *Query) *Entry {
	t.Helper()
	e, err := Pack(m, q)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestAppend: a response packed for one spelling of a question is, for another query, the
// response that query would have had: its ID, RD and CD, its spelling in the question and the
// answer owners, its OPT size and flags; every other name as the zone spells it.
func TestAppend(t *testing.T) {
	var q, q2 Query
	if !q.Make("www.example.test.", dns.TypeA, FlagDO|FlagOPT, 1232) || !q2.Make("WwW.ExAmple.TEST.", dns.TypeA, FlagDO|FlagOPT, 1232) {
		t.Fatal("Make refused a plain name")
	}
	if !bytes.Equal(q.key[:q.klen], q2.key[:q2.klen]) {
		t.Fatal("keys differ by letter case")
	}
	e := packed(t, response(t, "www.example.test."), &q)
	r := new(dns.Msg)
	r.SetQuestion("WwW.ExAmple.TEST.", dns.TypeA)
	r.Id, r.RecursionDesired, r.CheckingDisabled = 4242, true, true
	r.SetEdns0(4096, true)
	want := response(t, "WwW.ExAmple.TEST.")
	want.Id, want.RecursionDesired, want.CheckingDisabled = 4242, true, true
	want.IsEdns0().SetUDPSize(4096)
	got := new(dns.Msg)
	if err := got.Unpack(e.Append(nil, r, &q2, dns.TypeA, r.IsEdns0())); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if e.Portable() {
		t.Error("an answer owned by the question name taken as portable")
	}
}

// TestPackCompresses: owner names and the names in NS, MX and SOA RDATA are compressed, the
// RDATA of NSEC, RRSIG and DNAME is not (RFC 4034 §3.1.7, §4.1.1; RFC 6672 §2.5), and a
// negative answer's bytes serve questions of any length.
func TestPackCompresses(t *testing.T) {
	var q Query
	q.Make("www.example.test.", dns.TypeA, FlagDO|FlagOPT, 1232)
	m := response(t, "www.example.test.")
	e := packed(t, m, &q)
	plain := m.Len()
	m.Compress = true
	if n := e.Len(&q); n > plain*3/4 || n > m.Len()+q.nlen {
		t.Errorf("packed %d octets; uncompressed %d, miekg/dns compressed %d", n, plain, m.Len())
	}
	b := e.Append(nil, m, &q, dns.TypeA, m.IsEdns0())
	for _, rr := range m.Ns {
		switch rr.Header().Rrtype {
		case dns.TypeNSEC, dns.TypeRRSIG, dns.TypeDNAME:
			buf := make([]byte, 512)
			end, err := dns.PackRR(rr, buf, 0, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			owner, _ := nameEnd(buf, 0)
			if !bytes.Contains(b, buf[owner+10:end]) {
				t.Errorf("the RDATA of %v is not in the message as it is, uncompressed", rr)
			}
		}
	}

	// A negative answer (no answer section), asked for by names of other lengths.
	neg := response(t, "www.example.test.")
	neg.Answer = nil
	neg.Rcode = dns.RcodeNameError
	ne := packed(t, neg, &q)
	if !ne.Portable() {
		t.Fatal("a negative answer not portable")
	}
	for _, name := range []string{"a.example.test.", "a-much-longer-name.that.does-not.exist.example.test.", "."} {
		var qn Query
		qn.Make(name, dns.TypeA, FlagDO|FlagOPT, 1232)
		r := new(dns.Msg)
		r.SetQuestion(name, dns.TypeA)
		r.SetEdns0(1232, true)
		got := new(dns.Msg)
		if err := got.Unpack(ne.Append(nil, r, &qn, dns.TypeA, r.IsEdns0())); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := neg.Copy()
		want.Question[0].Name = name
		want.Id = r.Id
		if got.String() != want.String() {
			t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
		}
	}
}

// TestPackLarge: names far into a large response are written out, not pointed to beyond
// what a pointer can name once the longest question is before them. Each name is first
// written about 220 octets after the one before, so one of them falls between the bound and
// the 14 bits of a pointer, and is asked for again later.
func TestPackLarge(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + "."
	var q Query
	if !q.Make(long, dns.TypeTXT, FlagTCP, 65535) {
		t.Fatal("Make refused a long name")
	}
	r := new(dns.Msg)
	r.SetQuestion(long, dns.TypeTXT)
	m := new(dns.Msg)
	m.SetReply(r)
	for i := range 200 {
		txt := &dns.TXT{Hdr: dns.RR_Header{Name: fmt.Sprintf("n%d.example.test.", i%100), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{strings.Repeat("x", 200)}}
		m.Ns = append(m.Ns, txt)
	}
	e := packed(t, m, &q)
	got := new(dns.Msg)
	if err := got.Unpack(e.Append(nil, r, &q, dns.TypeTXT, nil)); err != nil {
		t.Fatal(err)
	}
	if got.String() != m.String() {
		t.Error("a large response changed in packing")
	}
	if e.Len(&q) < 0x4000 {
		t.Errorf("the response is %d octets: too small to test pointers near their limit", e.Len(&q))
	}
}

func TestMakeRefuses(t *testing.T) {
	var q Query
	for _, name := range []string{`a\.b.example.test.`, "no-dot.example.test", ""} {
		if q.Make(name, dns.TypeA, 0, 512) {
			t.Errorf("Make took %q", name)
		}
	}
}

// TestUsable: an entry is served only from the source it was resolved in and before its
// signatures are due for refresh.
func TestUsable(t *testing.T) {
	e := &Entry{}
	now := time.Now()
	src, other := uint64(1), uint64(2)
	var q Query
	q.Make("example.test.", dns.TypeA, 0, 512)
	e.Set(0, 0, now.Add(time.Minute), src)
	if !e.Usable(&q, now, src) || e.Usable(&q, now, other) || e.Usable(&q, now.Add(time.Minute), src) {
		t.Error("usable wrongly")
	}
	e.Set(0, 0, time.Time{}, src)
	if !e.Usable(&q, now.Add(1000*time.Hour), src) {
		t.Error("an unsigned answer expired")
	}
}

// entry returns the entry of a response to qname (type A, without OPT) and its query.
func entry(t *testing.T, qname string, size uint16) (*Query, *Entry) {
	t.Helper()
	q := new(Query)
	if !q.Make(qname, dns.TypeA, 0, size) {
		t.Fatalf("Make refused %q", qname)
	}
	m := response(t, qname)
	m.Extra = nil
	return q, packed(t, m, q)
}

// TestBound: the cache holds at most its size, turning over under names asked once.
func TestBound(t *testing.T) {
	c := New(64)
	for i := range 1000 {
		_, e := entry(t, fmt.Sprintf("x%d.example.test.", i), uint16(512+i))
		c.Put(e)
		c.PutProof(&Proof{Size: uint16(i)}, &Entry{})
	}
	if n := c.Len(); n > 64 {
		t.Errorf("%d entries in a cache of 64", n)
	}
}

// TestEvictionKeepsAskedEntries: a flood of names asked once turns over the entries nobody
// asks again, not those asked all along. Evicting at random loses about a fifth of the asked
// ones between two asks here.
func TestEvictionKeepsAskedEntries(t *testing.T) {
	c := New(1600) // 100 an entry shard
	hot := make([]*Query, 400)
	for i := range hot {
		q, e := entry(t, fmt.Sprintf("hot%d.example.test.", i), 1232)
		hot[i] = q
		c.Put(e)
	}
	missed := 0
	for i := range 20000 {
		_, e := entry(t, fmt.Sprintf("once%d.example.test.", i), 1232)
		c.Put(e)
		if i%2 == 0 {
			c.PutProof(&Proof{Size: uint16(i)}, &Entry{}) // the proofs' map turns over too
		}
		if c.Get(hot[i%len(hot)]) == nil {
			missed++
			_, e := entry(t, fmt.Sprintf("hot%d.example.test.", i%len(hot)), 1232)
			c.Put(e)
		}
	}
	if missed > 200 { // 1% of the asks
		t.Errorf("%d of 20000 asks for the hot entries missed", missed)
	}
	if n := c.Len(); n > 1600 {
		t.Errorf("%d entries in a cache of 1600", n)
	}
}

// TestSeenFilter: through a turnover of many times the cache's size, every name kept is still
// found (the filter in front of the map never hides one), and most names never kept are
// turned away before the map (the point of the filter: an NXDOMAIN flood's names).
func TestSeenFilter(t *testing.T) {
	c := New(1600)
	var kept []*Query
	for i := range 20000 {
		q, e := entry(t, fmt.Sprintf("n%d.example.test.", i), 1232)
		c.Put(e)
		kept = append(kept, q)
	}
	found := 0
	for _, q := range kept {
		if e := c.Get(q); e != nil {
			if e.key() != string(q.key[:q.klen]) {
				t.Fatalf("Get(%s) returned another key's entry", q.name[:q.nlen])
			}
			found++
		}
	}
	if n := c.Len(); found != n {
		t.Errorf("found %d of the %d entries kept", found, n)
	}
	through := 0
	for i := range 10000 {
		q, _ := entry(t, fmt.Sprintf("never%d.example.test.", i), 1232)
		s, w, b := c.at(maphash.Bytes(c.seed, q.key[:q.klen]))
		if s.seen[w]&b != 0 {
			through++
		}
	}
	// One bit in eight set at most after forget, one in four before it runs again.
	if through > 2500 {
		t.Errorf("%d of 10000 names never kept passed the filter", through)
	}
}

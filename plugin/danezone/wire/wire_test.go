package wire

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func response(t *testing.T, qname string, compress bool) (*dns.Msg, []byte) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(qname, dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: qname, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}}}
	m.Ns = []dns.RR{&dns.NS{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns1.example.test."}}
	m.SetEdns0(1232, true)
	m.Compress = compress
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return m, b
}

// TestAppend: a response kept for one spelling of a question is, for another query, the
// response that query would have had: its ID, RD and CD, its spelling in the question and the
// answer owners, its OPT size and flags.
func TestAppend(t *testing.T) {
	for _, compress := range []bool{false, true} {
		var q Query
		if !q.Make("www.example.test.", dns.TypeA, FlagDO|FlagOPT, 1232) {
			t.Fatal("Make refused a plain name")
		}
		_, b := response(t, "www.example.test.", compress)
		e, err := Parse(b, &q, true, compress)
		if err != nil {
			t.Fatal(err)
		}
		var q2 Query
		q2.Make("WwW.ExAmple.TEST.", dns.TypeA, FlagDO|FlagOPT, 1232)
		if !bytes.Equal(q.key[:q.klen], q2.key[:q2.klen]) {
			t.Fatal("keys differ by letter case")
		}
		r := new(dns.Msg)
		r.SetQuestion("WwW.ExAmple.TEST.", dns.TypeA)
		r.Id, r.RecursionDesired, r.CheckingDisabled = 4242, true, true
		r.SetEdns0(4096, true)
		want, _ := response(t, "WwW.ExAmple.TEST.", compress)
		want.Id, want.RecursionDesired, want.CheckingDisabled = 4242, true, true
		want.IsEdns0().SetUDPSize(4096)
		if compress {
			// Names elsewhere may point into the question: only the spelling it was made for.
			if e.Usable(&q2, time.Now(), 0) || !e.Usable(&q, time.Now(), 0) {
				t.Error("a compressed response served for another spelling, or not for its own")
			}
			r.Question[0].Name, want.Question[0].Name, want.Answer[0].Header().Name = "www.example.test.", "www.example.test.", "www.example.test."
			q2 = q
		}
		got := new(dns.Msg)
		if err := got.Unpack(e.Append(nil, r, &q2, dns.TypeA, r.IsEdns0())); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("compress=%v: got\n%s\nwant\n%s", compress, got, want)
		}
		if e.Portable() {
			t.Errorf("compress=%v: an answer owned by the question name taken as portable", compress)
		}
	}
}

// TestParseRefuses: what the cache cannot patch is not kept.
func TestParseRefuses(t *testing.T) {
	var q Query
	q.Make("www.example.test.", dns.TypeA, FlagOPT, 1232)
	_, b := response(t, "www.example.test.", false)
	if _, err := Parse(b[:len(b)-3], &q, true, false); err == nil {
		t.Error("a cut response was kept")
	}
	if _, err := Parse(b, &q, false, false); err == nil {
		t.Error("a response with an OPT record kept for a query without one")
	}
	var other Query
	other.Make("mail.example.test.", dns.TypeA, FlagOPT, 1232)
	if _, err := Parse(b, &other, true, false); err == nil {
		t.Error("a response kept for another question")
	}
	m, _ := response(t, "www.example.test.", false)
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "aa"}}
	b, _ = m.Pack()
	if _, err := Parse(b, &q, true, false); err == nil {
		t.Error("a response with EDNS options kept")
	}
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
	e.Set(0, 0, nil, now.Add(time.Minute), src)
	if !e.Usable(&q, now, src) || e.Usable(&q, now, other) || e.Usable(&q, now.Add(time.Minute), src) {
		t.Error("usable wrongly")
	}
	e.Set(0, 0, nil, time.Time{}, src)
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
	m, _ := response(t, qname, false)
	m.Extra = nil
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	e, err := Parse(b, q, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return q, e
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

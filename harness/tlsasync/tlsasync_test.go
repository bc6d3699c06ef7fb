package tlsasync

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, text string
		want       Key
		err        string
	}{
		{"bind", "# made by tsig-keygen\nkey \"tlsa.example.\" {\n\talgorithm hmac-sha256; // the default\n\tsecret \"" + secret + "\";\n};\n",
			Key{"tlsa.example.", dns.HmacSHA256, secret}, ""},
		{"bind unquoted name", "key upd { algorithm HMAC-SHA512; secret \"" + secret + "\"; };", Key{"upd.", dns.HmacSHA512, secret}, ""},
		{"nsupdate -y", "hmac-sha384:upd.example:" + secret + "\n", Key{"upd.example.", dns.HmacSHA384, secret}, ""},
		{"keymgr -t", "# hmac-sha256:upd:" + secret + "\nkey:\n  - id: upd\n", Key{"upd.", dns.HmacSHA256, secret}, ""},
		{"no secret", "\n\nkey \"a\" {\n algorithm hmac-sha256;\n};", Key{}, "k.conf:3: key \"a\" has no secret"},
		{"bad algorithm", "key \"a\" { algorithm hmac-sha3; secret \"" + secret + "\"; };", Key{}, "k.conf:1: algorithm \"hmac-sha3\""},
		{"bad base64", "key \"a\" { algorithm hmac-sha256; secret \"***\"; };", Key{}, "not base64"},
		{"two keys", "key a { algorithm hmac-sha256; secret \"" + secret + "\"; };\nkey b { algorithm hmac-sha256; secret \"" + secret + "\"; };", Key{}, "2 keys"},
		{"nothing", "hello\n", Key{}, "k.conf: no TSIG key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey("k.conf", []byte(tt.text))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || k != tt.want {
				t.Fatalf("got %+v, %v; want %+v", k, err, tt.want)
			}
		})
	}
}

// fakePrimary is a primary for one RRset that applies RFC 2136 updates (prerequisites of
// §2.4.2/§2.4.3, deletes of §2.5.4/§2.5.2, adds of §2.5.1) signed with its key; race, if set,
// runs when an update arrives, before the prerequisites are checked: another writer.
type fakePrimary struct {
	mu      sync.Mutex
	zone    string
	owner   string
	rrs     []dns.RR
	updates []*dns.Msg
	race    func(f *fakePrimary)
}

func (f *fakePrimary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if r.Opcode == dns.OpcodeUpdate {
		f.updates = append(f.updates, r)
		if r.IsTsig() == nil || w.TsigStatus() != nil {
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		if f.race != nil {
			f.race(f)
			f.race = nil
		}
		m.Rcode = f.apply(r)
		m.SetTsig(r.IsTsig().Hdr.Name, dns.HmacSHA256, 300, time.Now().Unix())
		w.WriteMsg(m)
		return
	}
	for _, rr := range f.rrs {
		if rr.Header().Rrtype == r.Question[0].Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	w.WriteMsg(m)
}

func (f *fakePrimary) apply(r *dns.Msg) int {
	var pre []string
	for _, rr := range r.Answer {
		switch rr.Header().Class {
		case dns.ClassNONE: // RRset does not exist
			if len(f.rrs) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassINET: // RRset exists, value dependent
			if rr.Header().Ttl != 0 {
				return dns.RcodeFormatError
			}
			pre = append(pre, text(rr))
		default:
			return dns.RcodeFormatError
		}
	}
	if pre != nil && !slices.Equal(texts(f.rrs), texts2(pre)) {
		return dns.RcodeNXRrset
	}
	for _, rr := range r.Ns {
		switch rr.Header().Class {
		case dns.ClassINET:
			if !slices.Contains(texts(f.rrs), text(rr)) {
				f.rrs = append(f.rrs, rr)
			}
		case dns.ClassNONE:
			f.rrs = slices.DeleteFunc(f.rrs, func(x dns.RR) bool { return text(x) == text(rr) })
		case dns.ClassANY:
			f.rrs = nil
		}
	}
	return dns.RcodeSuccess
}

func texts2(s []string) []string { s = slices.Clone(s); slices.Sort(s); return slices.Compact(s) }

func startFake(t *testing.T, f *fakePrimary) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: f, TsigSecret: map[string]string{"upd.": secret},
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }} // UPDATE too
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

func tlsaRR(t *testing.T, owner string, ttl int, data string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(owner + " " + strconv.Itoa(ttl) + " IN TLSA " + data)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// TestReplaceRace: another writer changes the RRset between Replace's read and its update;
// the prerequisite fails (NXRRSET), Replace reads again and the second update brings the
// RRset to the desired records, removing the other writer's record too.
func TestReplaceRace(t *testing.T) {
	owner := "_25._tcp.mx.example.test."
	a := "3 1 1 " + strings.Repeat("aa", 32)
	b := "3 1 1 " + strings.Repeat("bb", 32)
	c := "3 1 1 " + strings.Repeat("cc", 32)
	f := &fakePrimary{zone: "example.test.", owner: owner, rrs: []dns.RR{tlsaRR(t, owner, 300, a)}}
	f.race = func(f *fakePrimary) { f.rrs = append(f.rrs, tlsaRR(t, owner, 300, c)) }
	addr := startFake(t, f)
	tg := Target{Zone: "example.test.", Server: addr, Key: &Key{Name: "upd.", Algorithm: dns.HmacSHA256, Secret: secret}, Timeout: 2 * time.Second}
	ch, err := tg.Replace(context.Background(), owner, []dns.RR{tlsaRR(t, owner, 300, b)})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Attempts != 2 {
		t.Errorf("%d updates sent, want 2 (the first one's prerequisite failed)", ch.Attempts)
	}
	if got := texts(f.rrs); !slices.Equal(got, []string{b}) {
		t.Errorf("served %v, want [%s]", got, b)
	}
	if ch.PrerequisiteUsed != "RRset exists (value dependent)" || !slices.Equal(ch.Removed, texts2([]string{a, c})) || !slices.Equal(ch.Added, []string{b}) {
		t.Errorf("change %+v", ch)
	}
	// Nothing to do: no update at all.
	n := len(f.updates)
	if ch, err := tg.Replace(context.Background(), owner, []dns.RR{tlsaRR(t, owner, 300, b)}); err != nil || !ch.Unchanged() || len(f.updates) != n {
		t.Errorf("a second Replace with nothing to do: %+v %v, %d updates", ch, err, len(f.updates)-n)
	}
	// A TTL change replaces the RRset whole (a TTL belongs to the RRset, RFC 2181 §5.2).
	if ch, err := tg.Replace(context.Background(), owner, []dns.RR{tlsaRR(t, owner, 60, b)}); err != nil || ch.TTLTo != 60 {
		t.Errorf("TTL change: %+v %v", ch, err)
	}
	if len(f.rrs) != 1 || f.rrs[0].Header().Ttl != 60 {
		t.Errorf("after the TTL change: %v", f.rrs)
	}
	// Unsigned updates are refused: the error says so and names zone and server.
	tg.Key = nil
	_, err = tg.Replace(context.Background(), owner, []dns.RR{tlsaRR(t, owner, 60, a)})
	if err == nil || !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "example.test.") {
		t.Errorf("unsigned update: %v", err)
	}
}

// TestReplaceFromNothing: with no RRset yet the prerequisite is "RRset does not exist"; a
// record added meanwhile makes it fail (YXRRSET) and the retry takes it into account.
func TestReplaceFromNothing(t *testing.T) {
	owner := "_25._tcp.mx.example.test."
	a := "3 1 1 " + strings.Repeat("aa", 32)
	c := "3 1 1 " + strings.Repeat("cc", 32)
	f := &fakePrimary{zone: "example.test.", owner: owner}
	f.race = func(f *fakePrimary) { f.rrs = append(f.rrs, tlsaRR(t, owner, 300, c)) }
	addr := startFake(t, f)
	tg := Target{Zone: "example.test.", Server: addr, Key: &Key{Name: "upd.", Algorithm: dns.HmacSHA256, Secret: secret}}
	ch, err := tg.Replace(context.Background(), owner, []dns.RR{tlsaRR(t, owner, 300, a)})
	if err != nil || ch.Attempts != 2 || !slices.Equal(texts(f.rrs), []string{a}) {
		t.Fatalf("%+v %v; served %v", ch, err, texts(f.rrs))
	}
	if pre := f.updates[0].Answer; len(pre) != 1 || pre[0].Header().Class != dns.ClassNONE || pre[0].Header().Rrtype != dns.TypeTLSA {
		t.Errorf("first update's prerequisite: %v, want TLSA class NONE (RFC 2136 §2.4.3)", pre)
	}
}

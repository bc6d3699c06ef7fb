package danezone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// Bad input of the zone-file and records side: every one refused with its place, or survived,
// and the last good state keeps serving. (The README's table of bad inputs names these tests.)

// badZone is a small mail zone; SERIAL is replaced.
const badZone = `$ORIGIN a.test.
$TTL 300
@            SOA   ns h SERIAL 3600 900 1209600 300
@            NS    ns
@            MX    10 mx1
ns           A     127.0.0.1
mx1          A     127.0.0.11
_25._tcp.mx1 TLSA  3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1
`

func badZoneText(serial int) string {
	return strings.Replace(badZone, "SERIAL", fmt.Sprint(serial), 1)
}

// startBad serves badZone (serial 1) from path: a directory holding a.test.zone, or with
// file set, the file itself. tweak adjusts the configuration before start.
func startBad(t *testing.T, file bool, tweak func(*config)) (*DaneZone, *config, string) {
	t.Helper()
	dir := t.TempDir()
	zf := filepath.Join(dir, "a.test.zone")
	if err := os.WriteFile(zf, []byte(badZoneText(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config{path: dir, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: serial.File, mode: denial.NSEC,
		modes: map[string]denial.Mode{}, unsigned: map[string]bool{}, policy: signer.DefaultPolicy()}
	if file {
		cfg.path = zf
	}
	if tweak != nil {
		tweak(cfg)
	}
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d, cfg, zf
}

// wireWriter packs like the writer of miekg/dns: a message that does not encode is an error
// and nothing is sent, and over TCP a message has at most 65535 octets. It keeps what the
// client would read.
type wireWriter struct {
	test.ResponseWriter
	msg *dns.Msg
}

func (w *wireWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	if w.TCP && len(b) > dns.MaxMsgSize {
		return errors.New("dns: message too large")
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return err
	}
	w.msg = r
	return nil
}

// tlsaRR parses a TLSA record (plugin/test has no helper for the type).
func tlsaRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// askWire sends m through the handler and returns what a client reads; nil for no reply.
func askWire(d *DaneZone, m *dns.Msg, tcp bool) *dns.Msg {
	w := &wireWriter{ResponseWriter: test.ResponseWriter{TCP: tcp}}
	d.ServeDNS(context.Background(), w, m)
	return w.msg
}

// checkCases asks each case (UDP, EDNS 1232 when Do) and compares the answer.
func checkCases(t *testing.T, d *DaneZone, cases []test.Case) {
	t.Helper()
	for _, tc := range cases {
		resp := askWire(d, tc.Msg(), false)
		if resp == nil {
			t.Errorf("%s %s: no reply", tc.Qname, dns.TypeToString[tc.Qtype])
			continue
		}
		if err := test.SortAndCheck(resp, sorted(tc)); err != nil {
			t.Errorf("%s %s: %v\n%s", tc.Qname, dns.TypeToString[tc.Qtype], err, resp)
		}
	}
}

var (
	badSOA    = "a.test. 300 IN SOA ns.a.test. h.a.test. 1 3600 900 1209600 300"
	badSOASig = "a.test. 300 IN RRSIG SOA 13 2 300 0 0 0 a.test. x"
	// What version 1 answers; after bad input it still does.
	lastGood = []test.Case{
		{Qname: "mx1.a.test.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("mx1.a.test. 300 IN A 127.0.0.11")}},
		{Qname: "_25._tcp.mx1.a.test.", Qtype: dns.TypeTLSA, Do: true, Answer: []dns.RR{
			tlsaRR("_25._tcp.mx1.a.test. 300 IN TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"),
			test.RRSIG("_25._tcp.mx1.a.test. 300 IN RRSIG TLSA 13 5 300 0 0 0 a.test. x")}},
		{Qname: "a.test.", Qtype: dns.TypeSOA, Answer: []dns.RR{test.SOA(badSOA)}},
	}
)

// Item 2: data miekg/dns parses but cannot encode, a record without data, and an RRset that
// cannot be answered in one message are refused at FILE:LINE; the last good version serves.
func TestZoneFileBadDataKeepsLastGood(t *testing.T) {
	lines := strings.Count(badZone, "\n")
	var txt strings.Builder
	for i := range 234 { // records of 263 octets: the 234th crosses what fits with a signature
		fmt.Fprintf(&txt, "big TXT \"%04d%s\"\n", i, strings.Repeat("x", 246))
	}
	for _, tc := range []struct {
		name, text string
		line       int
		msg        string
	}{
		{"TLSA data not hex", "x IN TLSA 3 1 1 zz\n", lines + 1, "TLSA record at x.a.test.: its data cannot be encoded"},
		{"TLSA data of odd length", "x IN TLSA 3 1 1 abc\n", lines + 1, "TLSA record at x.a.test.: its data cannot be encoded: encoding/hex: odd length hex string"},
		{"A without data, no newline", "e IN A   ", lines + 1, "A record at e.a.test. has no data"},
		{"TXT RRset beyond one message", txt.String(), lines + 234, "the TXT RRset at big.a.test. takes 61542 octets (61644 with its signatures)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, _, zf := startBad(t, false, nil)
			sz := d.zones.Load().byName["a.test."]
			old := sz.cur.Load()
			if err := os.WriteFile(zf, []byte(badZoneText(2)+tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			err := sz.reload()
			if want := fmt.Sprintf("%s:%d: %s", zf, tc.line, tc.msg); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want %q", err, want)
			}
			if sz.cur.Load() != old {
				t.Fatal("the broken version replaced the last good one")
			}
			checkCases(t, d, lastGood)
		})
	}
}

// Item 2, over the API: the same rule, in the same place (zone.Apply), answers 400; what fits
// is answered whole and signed over TCP, never truncated.
func TestRecordsAPIRefusesUnservable(t *testing.T) {
	d, ts := newControl(t, "")
	post := func(records []string) (int, string) {
		body := `{"records":["` + strings.Join(records, `","`) + `"]}`
		return call(t, ts, "POST", "/records", body, "")
	}
	txt := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(`many.example.test. 60 IN TXT \"%04d%s\"`, i, strings.Repeat("x", 246)))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		records []string
		msg     string
	}{
		{"TLSA data not hex", []string{"x.example.test. 60 IN TLSA 3 1 1 zz"}, "TLSA record at x.example.test.: its data cannot be encoded"},
		{"TLSA data of odd length", []string{"x.example.test. 60 IN TLSA 3 1 1 abc"}, "odd length hex string"},
		{"300 TXT records of 250 octets", txt(300), "the TXT RRset at many.example.test. takes 78900 octets"},
	} {
		if code, body := post(tc.records); code != 400 || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: got %d %s, want 400 and %q", tc.name, code, body, tc.msg)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion("many.example.test.", dns.TypeTXT)
	m.SetEdns0(1232, true)
	if r := askWire(d, m, true); r == nil || r.Rcode != dns.RcodeNameError || r.Truncated {
		t.Fatalf("after the refused POST, many.example.test TXT over TCP: want NXDOMAIN, got\n%v", r)
	}
	if code, body := post(txt(200)); code != 200 {
		t.Fatalf("200 TXT records: %d %s", code, body)
	}
	r := askWire(d, m, true)
	if r == nil || r.Truncated || len(r.Answer) != 201 {
		t.Fatalf("200 TXT records over TCP: want the 200 records and their RRSIG, TC=0; got %d records, TC=%v", len(r.Answer), r.Truncated)
	}
	judge(t, d, modelAfter(t, d), m, r)
}

// Item 2, the last resort: a response that cannot be encoded is a SERVFAIL with an extended
// error (RFC 8914), never silence. Zone data is damaged by hand here: the loader refuses it.
func TestUnencodableAnswerIsServfail(t *testing.T) {
	d, _, _ := startBad(t, false, nil)
	sz := d.zones.Load().byName["a.test."]
	snap := sz.cur.Load()
	snap.z.Node("_25._tcp.mx1.a.test.").Set(dns.TypeTLSA).RRs[0].(*dns.TLSA).Certificate = "zz"
	var txt []dns.RR
	for i := range 300 {
		txt = append(txt, test.TXT(fmt.Sprintf("mx1.a.test. 300 IN TXT \"%04d%s\"", i, strings.Repeat("x", 246))))
	}
	mx1 := map[uint16]*zone.RRset{dns.TypeTXT: zone.NewRRset(txt)}
	for _, s := range snap.z.Node("mx1.a.test.").RRsets() {
		if s.Type != dns.TypeTXT {
			mx1[s.Type] = s
		}
	}
	z := snap.z.WithSets(map[string]map[uint16]*zone.RRset{"mx1.a.test.": mx1})
	sz.cur.Store(newSnapshot(z, denial.New(sz.mode, z, snap.d), snap.keys, 0))

	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		edns  bool
		do    bool
		tcp   bool
		why   string
	}{
		{"no DO", "_25._tcp.mx1.a.test.", dns.TypeTLSA, true, false, false, "the answer could not be encoded"},
		{"DO", "_25._tcp.mx1.a.test.", dns.TypeTLSA, true, true, false, "the answer could not be signed"},
		{"no EDNS", "_25._tcp.mx1.a.test.", dns.TypeTLSA, false, false, false, ""},
		{"TCP, too large", "mx1.a.test.", dns.TypeTXT, true, false, true, "the answer does not fit a DNS message"},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.qname, tc.qtype)
		if tc.edns {
			m.SetEdns0(1232, tc.do)
		}
		r := askWire(d, m, tc.tcp)
		if r == nil {
			t.Errorf("%s: no reply at all", tc.name)
			continue
		}
		if r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
			t.Errorf("%s: want SERVFAIL and no answer, got %s with %d records", tc.name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		var ede *dns.EDNS0_EDE
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*dns.EDNS0_EDE); ok {
					ede = e
				}
			}
		}
		switch {
		case !tc.edns && r.IsEdns0() != nil:
			t.Errorf("%s: an OPT record in the answer to a query without EDNS (RFC 6891 §7)", tc.name)
		case tc.edns && (ede == nil || ede.ExtraText != tc.why):
			t.Errorf("%s: want the extended error %q, got %v", tc.name, tc.why, ede)
		}
	}
	// The rest of the zone answers as before.
	checkCases(t, d, lastGood[:1])
}

// Item 3: a zone file written in place is loaded once it has settled; half of it, the rest
// written later, is never served. A file renamed into place is loaded at once.
func TestHalfWrittenZoneFile(t *testing.T) {
	d, cfg, zf := startBad(t, false, func(c *config) { c.reload = time.Second }) // settles for 3s
	failed := map[string]string{}
	full := badZoneText(2) + "www A 127.0.0.80\n"
	half := full[:strings.Index(full, "_25._tcp")]
	if err := os.WriteFile(zf, []byte(half), 0o644); err != nil { // in place: same inode
		t.Fatal(err)
	}
	for range 3 {
		d.check(cfg, failed)
	}
	checkCases(t, d, lastGood) // the TLSA record is still served, signed

	if err := os.WriteFile(zf, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	d.check(cfg, failed)
	checkCases(t, d, lastGood)
	// Left alone for long enough (its time set back, rather than sleeping 3s):
	past := time.Now().Add(-10 * time.Second)
	if err := os.Chtimes(zf, past, past); err != nil {
		t.Fatal(err)
	}
	d.check(cfg, failed)
	serial2 := strings.Replace(badSOA, " 1 3600", " 2 3600", 1)
	checkCases(t, d, []test.Case{
		{Qname: "a.test.", Qtype: dns.TypeSOA, Answer: []dns.RR{test.SOA(serial2)}},
		{Qname: "www.a.test.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("www.a.test. 300 IN A 127.0.0.80")}},
	})

	// Deleted and written again (a new inode, as rm and cp, install or a checkout make it):
	// half of it is not served either. The old inode is kept by a link, so the new file
	// cannot reuse its number.
	if err := os.Link(zf, zf+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(zf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(zf, []byte(half), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d.check(cfg, failed)
	}
	checkCases(t, d, []test.Case{{Qname: "www.a.test.", Qtype: dns.TypeA, Answer: []dns.RR{test.A("www.a.test. 300 IN A 127.0.0.80")}}})

	// The safe way: write elsewhere, rename into place. Loaded at the next poll. (The
	// rename must come after the write's clock tick, or it cannot be told from a write.)
	tmp := zf + ".new"
	if err := os.WriteFile(tmp, []byte(badZoneText(3)), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.Rename(tmp, zf); err != nil {
		t.Fatal(err)
	}
	d.check(cfg, failed)
	checkCases(t, d, []test.Case{{Qname: "a.test.", Qtype: dns.TypeSOA,
		Answer: []dns.RR{test.SOA(strings.Replace(badSOA, " 1 3600", " 3 3600", 1))}}})
	if len(failed) != 0 {
		t.Errorf("nothing should have failed: %v", failed)
	}
}

// Item 4: a directory put in place of the zone file (`rm $Z; mkdir $Z`) is an error, and the
// last good version keeps serving; when a file is back, it loads again.
func TestZoneFileReplacedByDirectory(t *testing.T) {
	for _, file := range []bool{true, false} {
		t.Run(map[bool]string{true: "file", false: "directory"}[file], func(t *testing.T) {
			d, cfg, zf := startBad(t, file, nil)
			failed := map[string]string{}
			if err := os.Remove(zf); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(zf, 0o755); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				d.check(cfg, failed)
			}
			if !strings.Contains(failed[zf], zf+": is a directory, not a zone file") {
				t.Errorf("want the error %q, got %v", zf+": is a directory, not a zone file", failed)
			}
			checkCases(t, d, lastGood)
			if err := os.Remove(zf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(zf, []byte(badZoneText(2)), 0o644); err != nil {
				t.Fatal(err)
			}
			d.check(cfg, failed)
			if len(failed) != 0 {
				t.Errorf("the file is back: %v", failed)
			}
			checkCases(t, d, []test.Case{{Qname: "a.test.", Qtype: dns.TypeSOA,
				Answer: []dns.RR{test.SOA(strings.Replace(badSOA, " 1 3600", " 2 3600", 1))}}})
		})
	}
}

// Item 4: a zone file deleted for a moment keeps its zone, and the records added over the API;
// gone for the grace period, the zone is dropped.
func TestZoneFileMissingGrace(t *testing.T) {
	for _, file := range []bool{false, true} {
		t.Run(map[bool]string{true: "file", false: "directory"}[file], func(t *testing.T) {
			d, cfg, zf := startBad(t, file, func(c *config) { c.grace = 300 * time.Millisecond })
			failed := map[string]string{}
			rr := test.TXT("runtime.a.test. 300 IN TXT \"added over the API\"")
			if err := d.AddRecords([]dns.RR{rr}); err != nil {
				t.Fatal(err)
			}
			withRuntime := append([]test.Case{{Qname: "runtime.a.test.", Qtype: dns.TypeTXT, Answer: []dns.RR{rr}}}, lastGood...)
			if err := os.Remove(zf); err != nil {
				t.Fatal(err)
			}
			d.check(cfg, failed)
			checkCases(t, d, withRuntime)
			// Back, written elsewhere and renamed into place (as editors and tools do).
			if err := os.WriteFile(zf+".tmp", []byte(badZoneText(1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(zf+".tmp", zf); err != nil {
				t.Fatal(err)
			}
			d.check(cfg, failed)
			checkCases(t, d, withRuntime)

			if err := os.Remove(zf); err != nil {
				t.Fatal(err)
			}
			d.check(cfg, failed)
			time.Sleep(cfg.grace + 50*time.Millisecond)
			d.check(cfg, failed)
			if sz := d.zones.Load().byName["a.test."]; sz != nil {
				t.Fatal("a zone file gone for longer than the grace period: the zone is still served")
			}
			if len(failed) != 0 {
				t.Errorf("a missing file is not an error: %v", failed)
			}
		})
	}
}

// Item 9: the log of runtime changes keeps their net effect, not their history; the result
// is the same, also after the zone file is reloaded.
func TestRuntimeChangesCompacted(t *testing.T) {
	d, cfg, zf := startBad(t, false, nil)
	tlsa := func(i int) dns.RR {
		return tlsaRR(fmt.Sprintf("_25._tcp.mx1.a.test. 300 IN TLSA 3 1 1 %064x", i))
	}
	for i := range 1000 { // a rollover practised a thousand times: 2000 changes
		if err := d.AddRecords([]dns.RR{tlsa(i)}); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if err := d.RemoveRecords("_25._tcp.mx1.a.test.", dns.TypeTLSA, []dns.RR{tlsa(i - 1)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sz := d.zones.Load().byName["a.test."]
	if n := len(sz.edits.Edits()); n > 2 {
		t.Errorf("2000 changes of one RRset kept as %d entries, want at most 2", n)
	}
	want := []test.Case{{Qname: "_25._tcp.mx1.a.test.", Qtype: dns.TypeTLSA, Answer: []dns.RR{
		tlsaRR("_25._tcp.mx1.a.test. 300 IN TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"),
		tlsa(999)}}}
	checkCases(t, d, want)
	// A new version of the file: the changes apply to it as they did.
	if err := os.WriteFile(zf+".tmp", []byte(badZoneText(2)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(zf+".tmp", zf); err != nil {
		t.Fatal(err)
	}
	before := sz.cur.Load().z.Serial
	d.check(cfg, map[string]string{})
	// The file's serial (2) is behind the 2001 the changes made: the policy goes on from there.
	if s := sz.cur.Load().z.Serial; sz.fileZone.Serial != 2 || !serial.Less(before, s) {
		t.Fatalf("serial %d after the reload of file serial %d, want the file's 2 loaded and more than %d served", s, sz.fileZone.Serial, before)
	}
	checkCases(t, d, want)
}

// BenchmarkRecordChange is one runtime change (a TLSA record added, and removed in the next
// iteration) after a history of changes: with the log compacted and changes applied to the
// served snapshot, its cost does not grow with the history.
func BenchmarkRecordChange(b *testing.B) {
	for _, history := range []int{0, 1000, 16000} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			d, _ := newTestZone(b, denial.NSEC)
			tlsa := func(i int) dns.RR {
				rr, _ := dns.NewRR(fmt.Sprintf("_25._tcp.mx9.example.test. 300 IN TLSA 3 1 1 %064x", i))
				return rr
			}
			change := func(i int) {
				var err error
				if i%2 == 0 {
					err = d.AddRecords([]dns.RR{tlsa(i / 2)})
				} else {
					err = d.RemoveRecords("_25._tcp.mx9.example.test.", dns.TypeTLSA, []dns.RR{tlsa(i / 2)})
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			for i := range history {
				change(i)
			}
			i := history
			for b.Loop() {
				change(i)
				i++
			}
		})
	}
}

// Item 12: the record limit of the Corefile is checked while loading; the error names the file
// and the line ($GENERATE) where it was crossed.
func TestRecordLimitCorefile(t *testing.T) {
	dir := t.TempDir()
	zf := filepath.Join(dir, "a.test.zone")
	var text strings.Builder
	text.WriteString(badZoneText(1))
	for i := range 16 {
		fmt.Fprintf(&text, "$GENERATE 0-65535 h$.g%d A 127.0.0.1\n", i)
	}
	if err := os.WriteFile(zf, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := caddy.NewTestController("dns", "danezone "+dir+" {\n keys "+filepath.Join(dir, "keys")+"\n max_records 1000\n}")
	start := time.Now()
	err := setup(c)
	line := strings.Count(badZone, "\n") + 1
	if want := fmt.Sprintf("%s:%d: the zone holds more than 1000 records", zf, line); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing took %s", d)
	}
	for _, tc := range []struct{ input, err string }{
		{"max_records 0", `max_records "0": want a number of records from 1 to 100000000`},
		{"max_records many", `max_records "many"`},
		{"max_records", "max_records takes one argument"},
		{"grace -1s", "grace"},
		{"grace 2d", "grace"},
	} {
		c := caddy.NewTestController("dns", "danezone "+dir+" {\n "+tc.input+"\n}")
		if _, err := parse(c); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %v, want %q", tc.input, err, tc.err)
		}
	}
	c = caddy.NewTestController("dns", "danezone "+dir+" {\n max_records 5000000\n grace 2m\n}")
	if cfg, err := parse(c); err != nil || cfg.records != 5000000 || cfg.grace != 2*time.Minute {
		t.Errorf("max_records 5000000, grace 2m: %+v, %v", cfg, err)
	}
}

// Item 13: an owner name with an octet outside ASCII is served with that octet (\233), not
// as U+FFFD (\239\191\189), and proved with it.
func TestRawOctetOwnerServed(t *testing.T) {
	d, _, zf := startBad(t, false, nil)
	if err := os.WriteFile(zf, []byte(badZoneText(2)+"caf\xe9 A 127.0.0.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.zones.Load().byName["a.test."].reload(); err != nil {
		t.Fatal(err)
	}
	soa2 := strings.Replace(badSOA, " 1 3600", " 2 3600", 1)
	checkCases(t, d, []test.Case{
		{Qname: `caf\233.a.test.`, Qtype: dns.TypeA, Do: true, Answer: []dns.RR{
			test.A(`caf\233.a.test. 300 IN A 127.0.0.7`),
			test.RRSIG(`caf\233.a.test. 300 IN RRSIG A 13 3 300 0 0 0 a.test. x`)}},
		{Qname: `CAF\233.a.test.`, Qtype: dns.TypeTXT, Do: true, Ns: []dns.RR{
			test.SOA(soa2), test.RRSIG(badSOASig),
			test.NSEC(`caf\233.a.test. 300 IN NSEC mx1.a.test. A RRSIG NSEC`),
			test.RRSIG(`caf\233.a.test. 300 IN RRSIG NSEC 13 3 300 0 0 0 a.test. x`)}},
	})
}

// failingWriter is a client gone away: every write fails, after packing as miekg/dns does.
type failingWriter struct {
	test.ResponseWriter
	writes int
}

func (w *failingWriter) WriteMsg(m *dns.Msg) error {
	w.writes++
	if _, err := m.Pack(); err != nil {
		return err
	}
	return &net.OpError{Op: "write", Net: "tcp", Err: syscall.ECONNRESET}
}

// TestWriteErrorIsNotServfail: a response that packs but cannot be written (the client reset
// the connection) is not followed by a SERVFAIL "could not be encoded": one write, no error for
// the errors plugin to log.
func TestWriteErrorIsNotServfail(t *testing.T) {
	d, _, _ := startBad(t, false, nil)
	w := &failingWriter{}
	m := new(dns.Msg)
	m.SetQuestion("a.test.", dns.TypeSOA)
	rcode, err := d.ServeDNS(context.Background(), w, m)
	if w.writes != 1 || err != nil || rcode != dns.RcodeSuccess {
		t.Errorf("writes %d, rcode %s, err %v; want one write and no error", w.writes, dns.RcodeToString[rcode], err)
	}
}

// TestDirectoryEntryNotAFileAtStart: a <name>.zone entry of the zone directory that is not a
// regular file (a backup.zone/ directory) is skipped at start with a warning, as it always
// was, instead of keeping every other zone from being served.
func TestDirectoryEntryNotAFileAtStart(t *testing.T) {
	d, cfg, _ := startBad(t, false, func(c *config) {
		if err := os.Mkdir(filepath.Join(c.path, "backup.zone"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	failed := map[string]string{}
	for range 2 {
		d.check(cfg, failed)
	}
	checkCases(t, d, lastGood)
}

// TestNewZoneFileSettles: a zone file new in the zone directory is opened only once it has
// settled too (copied in place, it may be read half written); renamed into place, at once.
func TestNewZoneFileSettles(t *testing.T) {
	d, cfg, zf := startBad(t, false, func(c *config) { c.reload = time.Second })
	failed := map[string]string{}
	bf := filepath.Join(filepath.Dir(zf), "b.test.zone")
	full := strings.ReplaceAll(badZoneText(1), "a.test.", "b.test.")
	if err := os.WriteFile(bf, []byte(full[:strings.Index(full, "_25._tcp")]), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d.check(cfg, failed)
	}
	checkCases(t, d, []test.Case{{Qname: "b.test.", Qtype: dns.TypeSOA, Rcode: dns.RcodeRefused}})
	if err := os.WriteFile(bf, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-10 * time.Second)
	if err := os.Chtimes(bf, past, past); err != nil {
		t.Fatal(err)
	}
	d.check(cfg, failed)
	checkCases(t, d, []test.Case{{Qname: "_25._tcp.mx1.b.test.", Qtype: dns.TypeTLSA,
		Answer: []dns.RR{tlsaRR("_25._tcp.mx1.b.test. 300 IN TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1")}}})
	if len(failed) != 0 || len(d.newFiles) != 0 {
		t.Errorf("failed %v, still settling %v", failed, d.newFiles)
	}
}

// TestBrokenZoneFileParsedOnce: a version of the zone file that fails to load is parsed, logged
// and counted once, not at every poll (a large zone with a typo would burn a core); the next
// version is tried again.
func TestBrokenZoneFileParsedOnce(t *testing.T) {
	d, cfg, zf := startBad(t, false, func(c *config) { c.reload = time.Second })
	failed := map[string]string{}
	count := func() float64 {
		v, _ := metricValue(t, "coredns_danezone_reloads_total", map[string]string{"zone": "a.test.", "result": "failed"})
		return v
	}
	before := count()
	past := time.Now().Add(-10 * time.Second)
	write := func(text string) {
		if err := os.WriteFile(zf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(zf, past, past); err != nil { // settled
			t.Fatal(err)
		}
		past = past.Add(time.Second)
	}
	write(badZoneText(2) + "x IN TLSA 3 1 1 zz\n")
	for range 5 {
		d.check(cfg, failed)
	}
	if got := count() - before; got != 1 || failed[zf] == "" {
		t.Errorf("one broken version polled 5 times: counted %v failures, want 1 (failed %v)", got, failed)
	}
	write(badZoneText(3) + "y IN TLSA 3 1 1 zz\n") // another broken version: counted again
	d.check(cfg, failed)
	if got := count() - before; got != 2 {
		t.Errorf("a second broken version: %v failures in all, want 2", got)
	}
	write(badZoneText(4))
	d.check(cfg, failed)
	checkCases(t, d, []test.Case{{Qname: "a.test.", Qtype: dns.TypeSOA,
		Answer: []dns.RR{test.SOA(strings.Replace(badSOA, " 1 3600", " 4 3600", 1))}}})
}

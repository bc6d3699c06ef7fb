package zone

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// txtLines returns n records of a TXT RRset at name, each one string of size characters.
func txtLines(name string, n, size int) string {
	var b strings.Builder
	for i := range n {
		s := fmt.Sprintf("%04d", i) + strings.Repeat("x", size-4)
		fmt.Fprintf(&b, "%s TXT \"%s\"\n", name, s)
	}
	return b.String()
}

// bigTXT returns one TXT record at name with n strings of 253 characters.
func bigTXT(name string, n int) string {
	s := `"` + strings.Repeat("y", 253) + `" `
	return name + " TXT " + strings.Repeat(s, n) + "\n"
}

// Data that miekg/dns parses but cannot encode, or encodes as a malformed record, and RRsets
// that could not be answered in one DNS message, are refused with the file and line.
func TestParseBadRecordData(t *testing.T) {
	tests := []struct {
		name, zone string
		line       int
		msg        string
	}{
		{"TLSA not hex", head + "x IN TLSA 3 1 1 zz\n", 6, "TLSA record at x.example.test.: its data cannot be encoded: encoding/hex: invalid byte"},
		{"TLSA odd hex", head + "x IN TLSA 3 1 1 abc\n", 6, "odd length hex"},
		{"SSHFP not hex", head + "x IN SSHFP 1 1 zz\n", 6, "SSHFP record at x.example.test.: its data cannot be encoded"},
		{"DS not hex", head + "sub NS ns1\nsub DS 1 13 2 zz\n", 7, "DS record at sub.example.test.: its data cannot be encoded"},
		{"A without data, no newline", head + "e IN A   ", 6, "A record at e.example.test. has no data"},
		{"A without data", head + "e IN A\n", 6, "A record at e.example.test. has no data"},
		{"AAAA without data", head + "e IN AAAA\n", 6, "AAAA record at e.example.test. has no data"},
		{"MX without data", head + "e IN MX\n", 6, "MX record at e.example.test. has no data"},
		{"TXT without data", head + "e IN TXT\n", 6, "TXT record at e.example.test. has no data"},
		{"TLSA without data", head + "e IN TLSA\n", 6, "TLSA record at e.example.test. has no data"},
		{"SRV without data", head + "e IN SRV\n", 6, "has no data"},
		{"TTL over 2^31-1", head + "t 3000000000 IN A 127.0.0.1\n", 6, "A record at t.example.test. has the TTL 3000000000, over 2147483647"},
		{"one TXT over 65535 octets", head + bigTXT("big", 260), 6, "TXT record at big.example.test. is too large"},
		// Records of 263 octets in an answer: the 234th crosses 61,439 and is named.
		{"TXT RRset over one message", head + txtLines("big", 250, 250), 5 + 234, "the TXT RRset at big.example.test. takes 61542 octets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.zone), "example.test.", "db.test", nil)
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("got %v (%T), want a *zone.Error", err, err)
			}
			if e.File != "db.test" || e.Line != tc.line || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("got %q (line %d), want line %d and %q", err, e.Line, tc.line, tc.msg)
			}
		})
	}
}

// Records with data that only looks odd still load: an explicitly empty RFC 3597 record, all
// zero numbers, the largest RRset that fits.
func TestParseGoodRecordData(t *testing.T) {
	for _, text := range []string{
		"e IN TYPE65280 \\# 0\n",
		"e IN EUI48 00-00-00-00-00-00\n",
		"e IN TXT \"\"\n",
		"e IN HIP 2 200100107B1A74DF365639CC39F1D578 AwEAAbdxyhNuSutc5EMzxTs9LBPCIkOFH8cIvM4p9+LrV4e19WzK00+CI6zBCQTdtWsuxKbWIy87UOoJTwkUs7lBu+Upr1gsNrut79ryra+bSRGQb1slImA8YVJyuIDsj7kwzG7jnERNqnWxZ48AWkskmdHaVDP4BcelrTI3rMXdXF5D\n",
		txtLines("big", 233, 250), // 61,279 octets: fits an answer with its signature
	} {
		if _, err := Parse(strings.NewReader(head+text), "example.test.", "db", nil); err != nil {
			t.Errorf("%.60q: %v", text, err)
		}
	}
}

// The room for signatures comes out of the RRset's budget: an RRset that fits unsigned may not
// fit with an RSA-4096 signature.
func TestParseSetSizeWithSignatures(t *testing.T) {
	zone := head + txtLines("big", 233, 250)
	if _, err := ParseWith(strings.NewReader(zone), "example.test.", "db", nil, Limits{}); err != nil {
		t.Fatalf("unsigned: %v", err)
	}
	rsa := Limits{SigSize: RRSIGSize("example.test.", 512)}
	_, err := ParseWith(strings.NewReader(zone), "example.test.", "db", nil, rsa)
	if err == nil || !strings.Contains(err.Error(), "with its signatures") {
		t.Fatalf("with an RSA-4096 signature: got %v, want the RRset refused", err)
	}
}

// The record limit is checked as records are read: 16 lines of $GENERATE (a million names)
// are refused at the line where the limit is crossed, long before they are built.
func TestParseRecordLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(head)
	for i := range 16 {
		fmt.Fprintf(&b, "$GENERATE 0-65535 h$.g%d A 127.0.0.1\n", i)
	}
	start := time.Now()
	_, err := ParseWith(strings.NewReader(b.String()), "example.test.", "db", nil, Limits{MaxRecords: 100_000})
	e, ok := err.(*Error)
	// Line 6 holds 65,536 records (with the 3 of head: 65,539), line 7 crosses 100,000.
	if !ok || e.Line != 7 || !strings.Contains(e.Msg, "more than 100000 records") {
		t.Fatalf("got %v, want db:7 and the limit", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("refusing took %s", d)
	}

	// Empty non-terminals count: one record with 100 labels makes 100 names.
	deep := strings.Repeat("a.", 99) + "x"
	if _, err := ParseWith(strings.NewReader(head+deep+" A 127.0.0.1\n"), "example.test.", "db", nil, Limits{MaxRecords: 50}); err == nil ||
		!strings.Contains(err.Error(), "db:6: the zone holds more than 50 records") {
		t.Fatalf("a deep name: got %v, want db:6 and the limit", err)
	}
	z, err := ParseWith(strings.NewReader(head+deep+" A 127.0.0.1\n"), "example.test.", "db", nil, Limits{MaxRecords: 200})
	if err != nil {
		t.Fatal(err)
	}
	if z.Records() != 3+1+99 {
		t.Fatalf("records %d, want 103 (3 + 1 + 99 empty non-terminals)", z.Records())
	}
}

// Runtime edits are held to the same rules as the file: records that do not encode, RRsets
// that do not fit a message, and the record limit.
func TestApplyChecks(t *testing.T) {
	z, err := Parse(strings.NewReader(head), "example.test.", "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	small, err := ParseWith(strings.NewReader(head), "example.test.", "db", nil, Limits{MaxRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	add := func(rrs ...dns.RR) []Edit {
		var out []Edit
		for _, r := range rrs {
			out = append(out, Edit{Op: Add, Name: r.Header().Name, Type: r.Header().Rrtype, RRs: []dns.RR{r}})
		}
		return out
	}
	var txt []dns.RR
	for i := range 300 {
		txt = append(txt, rr(fmt.Sprintf("big.example.test. 60 IN TXT \"%04d%s\"", i, strings.Repeat("x", 246))))
	}
	for _, tc := range []struct {
		name  string
		z     *Zone
		edits []Edit
		msg   string
	}{
		{"TLSA not hex", z, add(rr("x.example.test. 60 IN TLSA 3 1 1 zz")), "TLSA record at x.example.test.: its data cannot be encoded"},
		{"A without data", z, add(rr("e.example.test. 60 IN A")), "A record at e.example.test. has no data"},
		{"300 TXT records of 250 octets", z, add(txt...), "the TXT RRset at big.example.test. takes 78900 octets"},
		{"replace with too many", z, []Edit{{Op: Replace, Name: "big.example.test.", Type: dns.TypeTXT, RRs: txt}}, "takes 78900 octets"},
		{"record limit", small, add(rr("a.b.c.d.e.f.g.h.example.test. 60 IN A 127.0.0.1")), "more than 10 records"},
	} {
		_, err := tc.z.Apply(tc.edits, 0)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.msg)
		}
	}
	if _, err := z.Apply(add(txt[:200]...), 0); err != nil {
		t.Errorf("200 TXT records fit: %v", err)
	}
}

// A raw octet outside ASCII in an owner name is kept as that octet (one spelling, \DDD), not
// turned into U+FFFD by a rune-wise lowercase; ASCII letters are lowered.
func TestCanonicalKeepsOctets(t *testing.T) {
	for in, want := range map[string]string{
		"caf\xe9.Example.TEST":  `caf\233.example.test.`,
		`caf\233.example.test.`: `caf\233.example.test.`,
		`CAF\195\169.example.`:  `caf\195\169.example.`,
		"\xff\xfe.a.":           `\255\254.a.`,
		`\065b.example.`:        `ab.example.`,
		"www.example.test.":     "www.example.test.",
		"caf\xc3\xa9.example.":  `caf\195\169.example.`, // UTF-8 is octets too
		"x\\.y.example.":        `x\.y.example.`,
	} {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
	z, err := Parse(strings.NewReader(head+"caf\xe9 A 127.0.0.1\ncaf\\233 TXT \"x\"\n"), "example.test.", "db", nil)
	if err != nil {
		t.Fatal(err)
	}
	n := z.Node(`caf\233.example.test.`)
	if n == nil || n.Set(dns.TypeA) == nil || n.Set(dns.TypeTXT) == nil {
		t.Fatalf("the raw and the escaped spelling should be one name with A and TXT: %+v", n)
	}
}

// TestParseEmptyButValid: data that is legitimately empty loads (HINFO's two strings may be
// empty; an APL record may list no prefixes).
func TestParseEmptyButValid(t *testing.T) {
	for _, rr := range []string{`h IN HINFO "" ""`, "p IN APL", "m 2147483647 IN A 127.0.0.1"} {
		if _, err := Parse(strings.NewReader(head+rr+"\n"), "example.test.", "db.test", nil); err != nil {
			t.Errorf("%s: %v", rr, err)
		}
	}
}

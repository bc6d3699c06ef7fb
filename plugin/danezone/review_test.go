package danezone

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/miekg/dns"
)

// A key added to the key directory is picked up by the poll, published and used together.
func TestPollPicksUpNewKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.test.zone")
	os.WriteFile(file, []byte("$ORIGIN a.test.\n$TTL 60\n@ SOA ns h 1 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n"), 0o644)
	cfg := &config{path: dir, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: serial.File, mode: denial.NSEC,
		modes: map[string]denial.Mode{}, unsigned: map[string]bool{}, policy: signer.DefaultPolicy()}
	d, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Generate(cfg.keyDir, "a.test.", dns.ED25519); err != nil {
		t.Fatal(err)
	}
	d.check(cfg, map[string]string{})
	sz := d.zones.Load().byName["a.test."]
	if n := len(sz.cur.Load().z.Apex().Set(dns.TypeDNSKEY).RRs); n != 2 {
		t.Fatalf("DNSKEY set has %d keys after adding one, want 2", n)
	}
	if n := len(sz.signer.Keys().Keys); n != 2 {
		t.Fatalf("signer has %d keys, want 2", n)
	}
}

// NODATA through a wildcard that is an empty non-terminal proves the wildcard with a
// covering NSEC.
func TestWildcardENTNoData(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	data, _ := os.ReadFile(file)
	os.WriteFile(file, append(data, []byte("x.*.e A 127.0.0.2\n")...), 0o644)
	if err := d.zones.Load().byName["example.test."].reload(); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("foo.e.example.test.", dns.TypeA)
	m.SetEdns0(1232, true)
	r := serve(t, d, m)
	covered := false
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok && canonicalLess(n.Hdr.Name, "*.e.example.test.") && canonicalLess("*.e.example.test.", n.NextDomain) {
			covered = true
		}
	}
	if r.Rcode != dns.RcodeSuccess || !covered {
		t.Fatalf("wildcard ENT NODATA: no NSEC covering *.e:\n%v", r)
	}
}

// A removal made at runtime and then in the file does not block the reload.
func TestRemovalThenFileChange(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	if err := d.RemoveRecords("ns.sub.example.test.", dns.TypeA, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveRecords("out.example.test.", dns.TypeCNAME, []dns.RR{test.CNAME("out.example.test. 3600 IN CNAME mx.elsewhere.test.")}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(file)
	changed := strings.Replace(string(data), "out           CNAME mx.elsewhere.test.\n", "", 1)
	changed = strings.Replace(changed, "2026112201", "2026112202", 1)
	os.WriteFile(file, []byte(changed), 0o644)
	sz := d.zones.Load().byName["example.test."]
	if err := sz.reload(); err != nil {
		t.Fatalf("reload after the same removal in the file: %v", err)
	}
	// Two runtime changes made 2026112203; the file's 2026112202 is behind it (serial file).
	if sz.fileZone.Serial != 2026112202 || sz.cur.Load().z.Serial != 2026112204 {
		t.Fatalf("new version not served: file serial %d, serving %d", sz.fileZone.Serial, sz.cur.Load().z.Serial)
	}
}

// Runtime edits are validated on the whole zone: a DNAME or a delegation may not hide data.
func TestEditsCannotHideData(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	for _, tc := range []struct{ rr, err string }{
		{"mx1.example.test. 60 IN DNAME other.test.", "below the DNAME"},
		{"_tcp.mx1.example.test. 60 IN NS ns.elsewhere.test.", "below a delegation point"},
	} {
		rr, _ := dns.NewRR(tc.rr)
		if err := d.AddRecords([]dns.RR{rr}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: want %q, got %v", tc.rr, tc.err, err)
		}
	}
}

// A referral whose glue does not fit is truncated (RFC 9471), not sent without it.
func TestReferralGlueTruncates(t *testing.T) {
	d, file := newTestZone(t, denial.NSEC)
	var extra strings.Builder
	for i := range 13 {
		n := string(rune('a' + i))
		extra.WriteString("bigdel NS " + n + ".ns.bigdel\n" + n + ".ns.bigdel A 127.0.1." + string(rune('1'+i%9)) + "\n" + n + ".ns.bigdel AAAA ::1\n")
	}
	data, _ := os.ReadFile(file)
	os.WriteFile(file, append(data, []byte(extra.String())...), 0o644)
	if err := d.zones.Load().byName["example.test."].reload(); err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("www.bigdel.example.test.", dns.TypeA)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	d.ServeDNS(context.Background(), rec, m)
	if !rec.Msg.Truncated {
		t.Fatalf("referral without room for its glue: TC=%v, %d NS, %d glue", rec.Msg.Truncated, len(rec.Msg.Ns), len(rec.Msg.Extra))
	}
}

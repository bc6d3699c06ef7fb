package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/internal/peer"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/miekg/dns"
)

func startLab(t *testing.T) *Lab {
	t.Helper()
	l, err := Start(Config{Domains: []Domain{
		{Name: "example.test", Records: []string{
			"@ MX 10 mx1", "mx1 A 127.0.0.11", "_25._tcp.mx1 TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"}},
		{Name: "minimal.test", Denial: "minimal", Records: []string{"@ MX 10 mx.example.test."}},
		{Name: "plain.test", Unsigned: true, Records: []string{"@ MX 10 mx", "mx A 127.0.0.12"}},
		{Name: "sub.example.test", Records: []string{"www A 127.0.0.13"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

func TestLabServesChainOfTrust(t *testing.T) {
	l := startLab(t)
	if len(l.Zones) != 6 || l.Zones[0] != "." || l.Zones[1] != "test." {
		t.Fatalf("zones %v", l.Zones)
	}
	c := &dns.Client{Timeout: time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		r, _, err := c.Exchange(m, l.Addr)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// The DS of each signed child is in its parent and matches the child's key.
	for _, z := range []string{"test.", "example.test.", "sub.example.test.", "minimal.test."} {
		dsResp := ask(z, dns.TypeDS)
		keyResp := ask(z, dns.TypeDNSKEY)
		var ds *dns.DS
		for _, rr := range dsResp.Answer {
			if d, ok := rr.(*dns.DS); ok {
				ds = d
			}
		}
		if ds == nil {
			t.Fatalf("%s: no DS in the parent: %v", z, dsResp)
		}
		found := false
		for _, rr := range keyResp.Answer {
			if k, ok := rr.(*dns.DNSKEY); ok && k.KeyTag() == ds.KeyTag && strings.EqualFold(k.ToDS(ds.DigestType).Digest, ds.Digest) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: DS %s matches no DNSKEY", z, ds)
		}
	}
	// The unsigned domain has no DS, with a signed proof from test.
	if r := ask("plain.test.", dns.TypeDS); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) < 3 {
		t.Errorf("plain.test DS: %v", r)
	}
	if r := ask("mx.plain.test.", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("plain.test data should be unsigned: %v", r.Answer)
	}
}

// TestLabJudgedByDelv validates the lab from its root anchor with BIND's delv.
func TestLabJudgedByDelv(t *testing.T) {
	delv := peer.Need(t, "delv")
	l := startLab(t)
	anchors := filepath.Join(t.TempDir(), "anchors.conf")
	if err := l.WriteDelvAnchors(anchors); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(l.Addr, ":")
	for _, tc := range []struct{ name, qtype, want string }{
		{"_25._tcp.mx1.example.test", "TLSA", "; fully validated"},
		{"example.test", "MX", "; fully validated"},
		{"www.sub.example.test", "A", "; fully validated"},
		{"nope.example.test", "A", "; negative response, fully validated"},
		{"nope.minimal.test", "A", "; negative response, fully validated"},
		{"nope.test", "A", "; negative response, fully validated"},
		{"mx.plain.test", "A", "; unsigned answer"},
	} {
		out, _ := exec.Command(delv, "@"+host, "-p", port, "-a", anchors, tc.name, tc.qtype).CombinedOutput()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s %s: want %q, delv said:\n%s", tc.name, tc.qtype, tc.want, out)
		}
	}
}

// TestLabJudgedByUnbound starts Unbound with the configuration the lab writes.
func TestLabJudgedByUnbound(t *testing.T) {
	unbound := peer.Need(t, "unbound")
	l := startLab(t)
	dir := t.TempDir()
	anchor := filepath.Join(dir, "root.anchor")
	if err := l.WriteAnchor(anchor); err != nil {
		t.Fatal(err)
	}
	h, p, err := freeAddr("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := l.WriteUnboundConfig(conf, UnboundOptions{Listen: h + ":" + p, AnchorFile: anchor, Dir: dir, Verbosity: 1}); err != nil {
		t.Fatal(err)
	}
	// Unbound's AppArmor profile may forbid a copy under /usr/sbin from reading /tmp: run a copy.
	bin := filepath.Join(dir, "unbound")
	data, err := os.ReadFile(unbound)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o755)
	cmd := exec.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &dns.Client{Timeout: 2 * time.Second}
	ask := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(1232, true)
		m.AuthenticatedData = true
		var r *dns.Msg
		for range 50 {
			if r, _, err = c.Exchange(m, h+":"+p); err == nil {
				return r
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("unbound: %v\n%s", err, tail(filepath.Join(dir, "unbound.log")))
		return nil
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		ad    bool
	}{
		{"_25._tcp.mx1.example.test.", dns.TypeTLSA, dns.RcodeSuccess, true},
		{"nope.example.test.", dns.TypeA, dns.RcodeNameError, true},
		{"www.sub.example.test.", dns.TypeA, dns.RcodeSuccess, true},
		{"nope.minimal.test.", dns.TypeMX, dns.RcodeNameError, true},
		{"mx.plain.test.", dns.TypeA, dns.RcodeSuccess, false},
	} {
		r := ask(tc.name, tc.qtype)
		if r.Rcode != tc.rcode || r.AuthenticatedData != tc.ad {
			t.Errorf("%s %s: %s AD=%v, want %s AD=%v", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData,
				dns.RcodeToString[tc.rcode], tc.ad)
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func TestLabFaults(t *testing.T) {
	delv := peer.Need(t, "delv")
	l := startLab(t)
	anchors := filepath.Join(t.TempDir(), "anchors.conf")
	l.WriteDelvAnchors(anchors)
	host, port, _ := strings.Cut(l.Addr, ":")
	run := func(name, qtype string) string {
		out, _ := exec.Command(delv, "@"+host, "-p", port, "-a", anchors, name, qtype).CombinedOutput()
		return string(out)
	}
	if _, err := l.AddFault(fault.Spec{Mode: fault.DSMismatch, Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if out := run("_25._tcp.mx1.example.test", "TLSA"); strings.Contains(out, "fully validated") {
		t.Errorf("ds-mismatch: the child still validates:\n%s", out)
	}
	if _, err := l.AddFault(fault.Spec{Mode: "explode", Name: "x"}); err == nil || !strings.Contains(err.Error(), "valid modes") {
		t.Errorf("bad mode: %v", err)
	}
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if out := run("_25._tcp.mx1.example.test", "TLSA"); !strings.Contains(out, "; fully validated") {
		t.Errorf("after reset:\n%s", out)
	}
	if err := l.AddRecords("_25._tcp.mx2.example.test. 60 IN TLSA 3 1 1 0102030405060708091011121314151617181920212223242526272829303132"); err != nil {
		t.Fatal(err)
	}
	if out := run("_25._tcp.mx2.example.test", "TLSA"); !strings.Contains(out, "; fully validated") {
		t.Errorf("added record:\n%s", out)
	}
}

package keys

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func at(s string) time.Time {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestTimingFromBIND: a key that dnssec-keygen wrote with every timing option loads with that
// schedule, and its roles follow it.
func TestTimingFromBIND(t *testing.T) {
	keygen := bindTool(t, "dnssec-keygen")
	dir := t.TempDir()
	cmd := exec.Command(keygen, "-q", "-K", dir, "-a", "ECDSAP256SHA256", "-f", "KSK", "-P", "20261201000000", "-A", "20261202000000",
		"-I", "20261210000000", "-D", "20261211000000", "-Psync", "20261203000000", "-Dsync", "20261209000000", "example.test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dnssec-keygen: %v\n%s", err, out)
	}
	set, err := Load(dir, "example.test.")
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("Load: %v %v", set, err)
	}
	k := set.Keys[0]
	want := Timing{Created: k.Timing.Created, Publish: at("20261201000000"), Activate: at("20261202000000"), Inactive: at("20261210000000"),
		Delete: at("20261211000000"), SyncPublish: at("20261203000000"), SyncDelete: at("20261209000000")}
	if k.Timing != want || k.Timing.Created.IsZero() {
		t.Fatalf("timing %v\nwant   %v", k.Timing, want)
	}
	for _, c := range []struct {
		when                   string
		published, active, cds bool
	}{
		{"20261130235959", false, false, false},
		{"20261201000000", true, false, false},
		{"20261202000000", true, true, false},
		{"20261203000000", true, true, true},
		{"20261209000000", true, true, false},
		{"20261210000000", true, false, false},
		{"20261211000000", false, false, false},
	} {
		v := set.View(at(c.when))
		if got := len(v.DNSKEYs()) == 1; got != c.published {
			t.Errorf("%s: published %v, want %v", c.when, got, c.published)
		}
		if got := len(v.KSKs()) == 1 && len(v.ZSKs()) == 1; got != c.active {
			t.Errorf("%s: active %v, want %v", c.when, got, c.active)
		}
		if got := len(v.CDS()) == 1 && len(v.CDNSKEY()) == 1; got != c.cds {
			t.Errorf("%s: CDS %v, want %v", c.when, got, c.cds)
		}
	}
}

// TestSetTimingBINDReads: a schedule SetTiming writes is what dnssec-settime reads, the key
// still loads and signs, and a key generated without a schedule of its own is published and
// active from its creation (as before rollovers).
func TestSetTimingBINDReads(t *testing.T) {
	settime := bindTool(t, "dnssec-settime")
	dir := t.TempDir()
	k, err := generate(dir, "example.test.", dns.ECDSAP256SHA256, dns.ZONE, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !k.Published(time.Now()) || !k.Active(time.Now()) || k.Synced(time.Now()) {
		t.Fatalf("a new key: published %v active %v synced %v", k.Published(time.Now()), k.Active(time.Now()), k.Synced(time.Now()))
	}
	tm := k.Timing
	tm.Inactive, tm.Delete = at("20270101120000"), at("20270102120000")
	tm.SyncPublish = at("20261231000000")
	if err := SetTiming(k, tm); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(settime, "-u", "-p", "all", strings.TrimSuffix(k.File, ".key")).CombinedOutput()
	if err != nil {
		t.Fatalf("dnssec-settime: %v\n%s", err, out)
	}
	bind := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+(?: \w+)?): (\S+)$`).FindAllStringSubmatch(string(out), -1) {
		bind[m[1]] = m[2]
	}
	for name, want := range map[string]time.Time{"Created": tm.Created, "Publish": tm.Publish, "Activate": tm.Activate,
		"Inactive": tm.Inactive, "Delete": tm.Delete, "SYNC Publish": tm.SyncPublish} {
		if got := bind[name]; got != strconv.FormatInt(want.Unix(), 10) { // -u: seconds since the epoch
			t.Errorf("dnssec-settime %s: %q, want %v (%d)\n%s", name, got, want, want.Unix(), out)
		}
	}
	if bind["SYNC Delete"] != "UNSET" {
		t.Errorf("dnssec-settime SYNC Delete %q, want UNSET", bind["SYNC Delete"])
	}
	set, err := Load(dir, "example.test.")
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("Load: %v %v", set, err)
	}
	if got := set.Keys[0].Timing; got != tm {
		t.Errorf("loaded %v, want %v", got, tm)
	}
	signVerify(t, set.Keys[0], set.Keys[0].DNSKEY)
	// BIND changes the schedule in place; danezone reads it back.
	if out, err := exec.Command(settime, "-K", dir, "-D", "20270301000000", filepath.Base(strings.TrimSuffix(k.File, ".key"))).CombinedOutput(); err != nil {
		t.Fatalf("dnssec-settime -D: %v\n%s", err, out)
	}
	set, err = Load(dir, "example.test.")
	if err != nil || !set.Keys[0].Timing.Delete.Equal(at("20270301000000")) {
		t.Errorf("after dnssec-settime -D: %v %v", set.Keys[0].Timing, err)
	}
}

// TestTimingBadValue names the file and the field.
func TestTimingBadValue(t *testing.T) {
	_, err := readTiming([]byte("; Publish: tomorrow\n"), []byte("Private-key-format: v1.3\n"), "K.key", "K.private")
	if err == nil || !strings.Contains(err.Error(), "K.key: bad Publish \"tomorrow\"") {
		t.Errorf("err = %v", err)
	}
	_, err = readTiming(nil, []byte("Activate: 2026\n"), "K.key", "K.private")
	if err == nil || !strings.Contains(err.Error(), "K.private: bad Activate") {
		t.Errorf("err = %v", err)
	}
}

// TestGeneratedKeySignsInItsView: the set Open and LoadOrGenerate return with a key they just
// made signs with it, even when the key's second began after the directory was read (its
// times are kept to the second).
func TestGeneratedKeySignsInItsView(t *testing.T) {
	for i := range 4 {
		// Start just before a second boundary, so creation falls in the next second.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second - time.Millisecond)))
		dir := t.TempDir()
		var set *Set
		var err error
		if i%2 == 0 {
			var o *Opened
			if o, err = Open(dir, "example.test.", dns.ECDSAP256SHA256, false); err == nil {
				set = o.Set
			}
		} else {
			set, _, err = LoadOrGenerate(dir, "example.test.", dns.ECDSAP256SHA256)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(set.ZSKs()) != 1 || len(set.KSKs()) != 1 || len(set.DNSKEYs()) != 1 {
			t.Fatalf("run %d: a new key that does not sign in its own set (At %v, key %v)", i, set.At, set.Keys[0].Timing)
		}
	}
}

package world_test

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/fixture"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/harness/runner"
	"github.com/danelab/danelab/harness/scenario"
	"github.com/danelab/danelab/harness/world"
	"github.com/danelab/danelab/plugin/danezone/fault"
)

// shape is a world described so that two builds compare: every name as the world names it,
// TLSA association data (made from fresh certificates) masked.
type shape struct {
	Domain string
	Zones  []string
	Hosts  []string // "name ip owner"
	Faults []string
	Labs   []string // "zone: record"
}

var tlsaData = regexp.MustCompile(`(TLSA \d+ \d+ \d+) [0-9a-f]+$`)

func describe(w *world.World) shape {
	sh := shape{Domain: w.Domain, Zones: w.Zones}
	for _, h := range w.Hosts {
		sh.Hosts = append(sh.Hosts, fmt.Sprintf("%s %s %s", h.Name, h.IP, h.Owner))
	}
	for _, f := range w.Faults {
		sh.Faults = append(sh.Faults, fmt.Sprintf("%s %s %s %s", f.Mode, f.Name, f.Type, f.Zone))
	}
	for _, d := range w.Domains() {
		for _, r := range d.Records {
			sh.Labs = append(sh.Labs, fmt.Sprintf("%s unsigned=%v: %s", d.Name, d.Unsigned, tlsaData.ReplaceAllString(r, "$1 <data>")))
		}
	}
	return sh
}

// renamed is the runner's shape with every name renamed as the fixture's world renames.
func renamed(sh shape, fx *world.World) shape {
	out := shape{Domain: fx.Rename(sh.Domain)}
	for _, z := range sh.Zones {
		out.Zones = append(out.Zones, fx.Rename(z))
	}
	for _, h := range sh.Hosts {
		f := strings.Fields(h)
		out.Hosts = append(out.Hosts, fmt.Sprintf("%s %s %s", fx.Rename(f[0]), f[1], fx.Rename(f[2])))
	}
	for _, f := range sh.Faults {
		p := strings.Split(f, " ")
		p[1], p[3] = fx.Rename(p[1]), fx.Rename(p[3])
		out.Faults = append(out.Faults, strings.Join(p, " "))
	}
	for _, l := range sh.Labs {
		zone, rec, _ := strings.Cut(l, " unsigned=")
		var fields []string
		for _, t := range strings.Fields(rec) {
			if strings.HasSuffix(t, ".") && len(t) > 1 {
				t = fx.Rename(t)
			}
			fields = append(fields, t)
		}
		out.Labs = append(out.Labs, fx.Rename(zone)+" unsigned="+strings.Join(fields, " "))
	}
	return out
}

// TestDriversBuildOneWorld: every shipped scenario, and the tlsa_owner forms, built as the
// in-process runner plans it and as fixture mode plans it, is the same world but for the
// fixture's renaming.
func TestDriversBuildOneWorld(t *testing.T) {
	all, err := scenario.LoadDir("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{"@", "mail", "_25._tcp.mx1.example.test."} {
		s, err := scenario.Parse("owner.json", []byte(`{"name": "owner-`+strings.Trim(strings.ReplaceAll(owner, ".", "-"), "-@")+`x",
			"dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"], "tlsa_owner": "`+owner+`"}]},
			"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	port, err := receiver.FreePort([]string{"127.9.1.11", "127.9.1.12", "127.9.1.13", "127.9.1.250"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Name] {
			continue // a profile variant: the same world
		}
		seen[s.Name] = true
		t.Run(s.Name, func(t *testing.T) {
			rp := runner.Plan("127.9.1.", "127.9.1.250", nil)
			rp.Port = port
			rw, err := world.Build(s, rp)
			if err != nil {
				t.Fatalf("runner's plan: %v", err)
			}
			run := describe(rw)
			rw.Stop()
			fw, err := world.Build(s, fixture.Plan(fixture.Config{Net: "127.9", SMTPPort: port}, 0, s.Name))
			if err != nil {
				t.Fatalf("fixture's plan: %v", err)
			}
			fix := describe(fw)
			defer fw.Stop()
			want := renamed(run, fw)
			if fmt.Sprint(want) != fmt.Sprint(fix) {
				t.Errorf("the worlds differ:\nrunner, renamed: %+v\nfixture:         %+v", want, fix)
			}
			if !strings.HasPrefix(fw.Domain, strings.ToLower(s.Name)+".") {
				t.Errorf("fixture domain %q is not renamed", fw.Domain)
			}
		})
	}
}

// TestTLSAOwner: "@" is the apex of the host's zone, a relative name is under the zone, an
// absolute name is itself, in both plans.
func TestTLSAOwner(t *testing.T) {
	for _, c := range []struct{ owner, run, fix string }{
		{"", "_25._tcp.mx1.example.test.", "_25._tcp.mx1.o.example.test."},
		{"@", "example.test.", "o.example.test."},
		{"mail", "mail.example.test.", "mail.o.example.test."},
		{"_25._tcp.mx9.example.test.", "_25._tcp.mx9.example.test.", "_25._tcp.mx9.o.example.test."},
	} {
		s, err := scenario.Parse("o.json", []byte(`{"name": "o", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"], "tlsa_owner": "`+c.owner+`"}]},
			"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			plan world.Plan
			want string
		}{{world.Plan{Net: "127.9.2."}, c.run}, {world.Plan{Net: "127.9.2.", Rename: true}, c.fix}} {
			w, err := world.Build(s, p.plan)
			if err != nil {
				t.Fatal(err)
			}
			w.Stop()
			if got := w.Hosts[0].Owner; got != p.want {
				t.Errorf("tlsa_owner %q, rename %v: owner %q, want %q", c.owner, p.plan.Rename, got, p.want)
			}
			if !slices.ContainsFunc(w.Domains()[0].Records, func(r string) bool { return strings.HasPrefix(r, p.want+" TLSA 3 1 1 ") }) {
				t.Errorf("tlsa_owner %q, rename %v: no TLSA record at %s in %q", c.owner, p.plan.Rename, p.want, w.Domains()[0].Records)
			}
		}
	}
}

// fakeLab records what the timeline asks of the lab; it refuses once when told to.
type fakeLab struct {
	faults      map[string]fault.Spec
	n           int
	replaced    [][]string
	failNext    bool
	failReplace bool   // refuse the next ReplaceRecords
	onReplace   func() // called when records are replaced
}

func (l *fakeLab) AddFault(s fault.Spec) (string, error) {
	if l.failNext {
		l.failNext = false
		return "", errors.New("refused")
	}
	l.n++
	id := fmt.Sprint(l.n)
	l.faults[id] = s
	return id, nil
}

func (l *fakeLab) RemoveFault(id string) error {
	if _, ok := l.faults[id]; !ok {
		return fmt.Errorf("no fault %s", id)
	}
	delete(l.faults, id)
	return nil
}

func (l *fakeLab) ReplaceRecords(rs ...string) error {
	if l.failReplace {
		l.failReplace = false
		return errors.New("refused")
	}
	if l.onReplace != nil {
		l.onReplace()
	}
	l.replaced = append(l.replaced, rs)
	return nil
}

// TestSync: faults go in place and heal at their times, a refused fault is tried again, and a
// renewal publishes the new certificate's record before the receiver serves it.
func TestSync(t *testing.T) {
	s, err := scenario.Parse("t.json", []byte(`{"name": "t",
		"dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"], "renew": {"at": 10}}]},
		"faults": [{"mode": "servfail", "name": "_25._tcp.mx1.example.test", "type": "TLSA", "heal": 5},
		           {"mode": "drop", "name": "mx1.example.test", "start": 3, "heal": 8}],
		"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.Build(s, world.Plan{Net: "127.9.3."})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if w.Static() || w.HealsAt() != 5*time.Minute {
		t.Errorf("Static %v HealsAt %v, want false 5m", w.Static(), w.HealsAt())
	}
	if ok, why := w.RealTime(); ok || why != "a certificate changes while it runs" {
		t.Errorf("RealTime %v %q", ok, why)
	}
	l := &fakeLab{faults: map[string]fault.Spec{}, failNext: true}
	if err := w.Sync(0, l); err == nil || !strings.Contains(err.Error(), "faults[0]: refused") {
		t.Fatalf("Sync(0) = %v, want faults[0] refused", err)
	}
	mins := func(m int) time.Duration { return time.Duration(m) * time.Minute }
	for _, c := range []struct {
		at     int
		active []string
	}{{0, []string{"servfail"}}, {3, []string{"drop", "servfail"}}, {5, []string{"drop"}}, {8, nil}} {
		if err := w.Sync(mins(c.at), l); err != nil {
			t.Fatal(err)
		}
		var modes []string
		for _, f := range l.faults {
			modes = append(modes, string(f.Mode))
		}
		slices.Sort(modes)
		if !slices.Equal(modes, c.active) {
			t.Errorf("+%dm: faults %v, want %v", c.at, modes, c.active)
		}
	}
	h := w.Hosts[0]
	old := h.Receiver.Identity()
	before := h.TLSAAt(time.Now())
	if err := w.Sync(mins(9), l); err != nil || len(l.replaced) != 0 || h.Receiver.Identity() != old {
		t.Fatalf("+9m: renewed too early (%v, %d replaced)", err, len(l.replaced))
	}
	// Publishing fails: nothing is renewed, and the next Sync tries again.
	l.failReplace = true
	if err := w.Sync(mins(10), l); err == nil || !strings.Contains(err.Error(), "dns.mx[0].renew") {
		t.Fatalf("+10m with the lab refusing the records: %v", err)
	}
	if h.Receiver.Identity() != old || len(l.replaced) != 0 {
		t.Fatal("+10m: the certificate changed although its records were not published")
	}
	// The records go out while the old certificate is still served.
	servedOld := false
	l.onReplace = func() { servedOld = h.Receiver.Identity() == old }
	if err := w.Sync(mins(10), l); err != nil {
		t.Fatal(err)
	}
	if !servedOld {
		t.Error("the new certificate was served before its records were published")
	}
	if h.Receiver.Identity() == old || len(l.replaced) != 1 || len(l.replaced[0]) != 1 {
		t.Fatalf("+10m: identity changed %v, replaced %q", h.Receiver.Identity() != old, l.replaced)
	}
	after := h.TLSAAt(time.Now())
	if slices.Equal(before, after) || !slices.Equal(after, l.replaced[0]) {
		t.Errorf("published %q then %q; the lab got %q", before, after, l.replaced[0])
	}
	if got := w.Label(strings.Fields(after[0])[5]); got != "3 1 1 next" {
		t.Errorf("the new record is labelled %q, want 3 1 1 next", got)
	}
	if err := w.Sync(mins(20), l); err != nil || len(l.replaced) != 1 {
		t.Errorf("+20m: renewed twice (%v, %d)", err, len(l.replaced))
	}
}

// TestBuildError: a world that cannot start (its port taken on the second host's address)
// is an error naming the host, and the receivers already started are stopped.
func TestBuildError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.9.4.12:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, port, _ := net.SplitHostPort(taken.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	s, err := scenario.Parse("e.json", []byte(`{"name": "e", "dns": {"mx": [{"host": "mx1"}, {"host": "mx2"}]},
		"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`))
	if err != nil {
		t.Fatal(err)
	}
	w, err := world.Build(s, world.Plan{Net: "127.9.4.", Port: p})
	if err == nil || w != nil || !strings.Contains(err.Error(), "dns.mx[1]") {
		t.Fatalf("Build = %v, %v; want an error for dns.mx[1]", w, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.9.4.11", port))
	if err != nil {
		t.Fatalf("mx1's receiver was left running: %v", err)
	}
	ln.Close()
}

// TestTLSRPTRecord: a plan's TLS-RPT rua becomes the domain's one _smtp._tls record; a
// scenario publishing its own besides is refused (two records mean none, RFC 8460 §3).
func TestTLSRPTRecord(t *testing.T) {
	build := func(records string) (*world.World, error) {
		s, err := scenario.Parse("r.json", []byte(`{"name": "r", "dns": {"mx": [{"host": "mx1", "tlsa": ["3 1 1"]}], "records": [`+records+`]},
			"expect": [{"status": "delivered"}], "final": {"state": "delivered"}}`))
		if err != nil {
			t.Fatal(err)
		}
		w, err := world.Build(s, world.Plan{Net: "127.9.6.", Rename: true, TLSRPT: "mailto:tlsrpt@sender.test,https://127.0.0.1:1/tlsrpt"})
		if w != nil {
			w.Stop()
		}
		return w, err
	}
	w, err := build("")
	if err != nil {
		t.Fatal(err)
	}
	want := `_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@sender.test,https://127.0.0.1:1/tlsrpt"`
	if !slices.Contains(w.Domains()[0].Records, want) {
		t.Errorf("no %s in %q", want, w.Domains()[0].Records)
	}
	if _, err := build(`"_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:a@b.test\""`); err == nil || !strings.Contains(err.Error(), "two records") {
		t.Errorf("a scenario's own _smtp._tls record besides the plan's: %v", err)
	}
}

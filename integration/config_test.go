package integration

// Tests that vary the danezone configuration: keys made by BIND's dnssec-keygen, restarts,
// algorithms, per-zone denial modes and signature timing.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// keyFiles lists the K*.key files of dir.
func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "K*.key"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = filepath.Base(m[i])
	}
	slices.Sort(m)
	return m
}

// dnssecKeygen makes a BIND key for zone in dir (ksk: flags 257) and returns its base name.
func dnssecKeygen(t *testing.T, dir, zone, alg string, ksk bool) string {
	t.Helper()
	bin := peer.Need(t, "dnssec-keygen")
	args := []string{"-q", "-a", alg, "-K", dir}
	if ksk {
		args = append(args, "-f", "KSK")
	}
	args = append(args, "-n", "ZONE", zone)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dnssec-keygen %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func onlyExample(t *testing.T) map[string]string {
	return map[string]string{"example.test": RepoZone(t, "example.test.zone")}
}

// TestBINDKeys: keys made by dnssec-keygen (with BIND's timing metadata) are used as they are,
// both a single CSK and a KSK/ZSK pair; no key is generated beside them.
func TestBINDKeys(t *testing.T) {
	for _, v := range []struct {
		name string
		zsk  bool
	}{{"CSK", false}, {"KSK+ZSK", true}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ksk := dnssecKeygen(t, dir, "example.test", "ECDSAP256SHA256", true)
			var zsk string
			if v.zsk {
				zsk = dnssecKeygen(t, dir, "example.test", "ECDSAP256SHA256", false)
			}
			before := keyFiles(t, dir)
			l := StartLab(t, ServerConfig{Zones: onlyExample(t), Denial: "nsec", KeyDir: dir})
			if after := keyFiles(t, dir); !slices.Equal(before, after) {
				t.Errorf("key files changed from %v to %v: the server generated a key beside the BIND keys", before, after)
			}
			a := l.Anchors["example.test."]
			if a.KSK == nil || !strings.HasPrefix(ksk, "Kexample.test.+013+") || !strings.HasSuffix(ksk, fmt.Sprintf("+%05d", a.KSK.KeyTag())) {
				t.Errorf("anchor key tag %d does not match the generated KSK %s", a.KSK.KeyTag(), ksk)
			}
			if v.zsk && len(a.Keys) != 2 {
				t.Errorf("expected KSK %s and ZSK %s, read %d keys", ksk, zsk, len(a.Keys))
			}
			for _, c := range casesNamed(t, coreCases...) {
				t.Run(c.name, func(t *testing.T) { runAnswerCase(t, l, c) })
			}
		})
	}
}

// TestRestartKeepsKeys: a second start with the same key directory serves the same keys, so
// the trust anchor (and the DS at the parent) stays valid.
func TestRestartKeepsKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := ServerConfig{Zones: onlyExample(t), Denial: "nsec", KeyDir: dir}
	s1, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := ReadAnchor(dir, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	files := keyFiles(t, dir)
	s1.Stop()

	l := StartLab(t, cfg)
	if got := keyFiles(t, dir); !slices.Equal(files, got) {
		t.Errorf("key files after restart %v, before %v", got, files)
	}
	a2 := l.Anchors["example.test."]
	if a2.KSK.KeyTag() != a1.KSK.KeyTag() || a2.KSK.PublicKey != a1.KSK.PublicKey {
		t.Fatalf("KSK changed across restart: %d -> %d", a1.KSK.KeyTag(), a2.KSK.KeyTag())
	}
	for _, c := range casesNamed(t, "apex DNSKEY", "mx1 A", "NXDOMAIN nope") {
		t.Run(c.name, func(t *testing.T) { runAnswerCase(t, l, c) })
	}
}

// TestAlgorithms: generated keys for the other algorithms of the contract validate too; RSA
// answers are large enough to be truncated at 512 bytes.
func TestAlgorithms(t *testing.T) {
	for _, v := range []struct {
		name string
		alg  uint8
	}{{"ed25519", dns.ED25519}, {"rsasha256", dns.RSASHA256}, {"ecdsap256sha256", dns.ECDSAP256SHA256}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			l := StartLab(t, ServerConfig{Zones: onlyExample(t), Denial: "minimal", Extra: []string{"algorithm " + v.name}})
			a := l.Anchors["example.test."]
			if a.KSK.Algorithm != v.alg {
				t.Fatalf("algorithm %s: generated key has algorithm %d, want %d", v.name, a.KSK.Algorithm, v.alg)
			}
			for _, c := range casesNamed(t, coreCases...) {
				t.Run(c.name, func(t *testing.T) { runAnswerCase(t, l, c) })
			}
			if v.alg == dns.RSASHA256 {
				r, err := Query(l.Srv.Addr, "example.test", dns.TypeDNSKEY, QueryOpts{DO: true, BufSize: 512})
				if err != nil {
					t.Fatal(err)
				}
				packed, _ := r.Pack()
				if !r.Truncated || len(packed) > 512 {
					t.Errorf("RSA DNSKEY over UDP/512: TC=%v, %d bytes; want TC=1 within 512 bytes", r.Truncated, len(packed))
				}
			}
		})
	}
}

// TestDenialModes: "denial minimal ZONE" applies to that zone only, and each mode is what it
// says: nsec answers with the zone's real NSEC chain (checked link by link in JudgeDirect);
// minimal synthesizes NSEC records around the query name, so an NXDOMAIN proof carries an NSEC
// owned by a name that is not in the zone.
func TestDenialModes(t *testing.T) {
	synthesizedOwner := func(t *testing.T, l *Lab, qname string) bool {
		r, err := Query(l.Srv.Addr, qname, dns.TypeA, QueryOpts{DO: true})
		if err != nil {
			t.Fatal(err)
		}
		mode := l.ModeFor(l.Zones.ZoneFor(qname).Origin)
		want := dns.RcodeNameError
		if mode == "compact" { // RFC 9824 §3.1
			want = dns.RcodeSuccess
		}
		if r.Rcode != want {
			t.Fatalf("%s: rcode %s, want %s", qname, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
		z := l.Zones.ZoneFor(qname)
		nsec3 := false
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC); ok && len(z.Data[canon(n.Hdr.Name)]) == 0 {
				return true
			}
			_, isNSEC3 := rr.(*dns.NSEC3)
			nsec3 = nsec3 || isNSEC3
		}
		if hashedMode(mode) != nsec3 {
			t.Errorf("denial %s: NSEC3 in the proof for %s: %v", mode, qname, nsec3)
		}
		return false
	}
	t.Run("shared labs", func(t *testing.T) {
		for _, mode := range denialModes {
			l := sharedLab(t, mode)
			for _, q := range []string{"nope.example.test", "nx.lab2.test"} {
				// Per-answer NSEC modes name owners that are not in the zone; the others the
				// zone's own names (or hashes of them).
				if got := synthesizedOwner(t, l, q); got != (mode == "minimal" || mode == "compact") {
					t.Errorf("denial %s: NXDOMAIN proof for %s with synthesized NSEC owner: %v", mode, q, got)
				}
			}
		}
	})
	t.Run("per zone", func(t *testing.T) {
		t.Parallel()
		l := StartLab(t, ServerConfig{Zones: LabZones(t), Denial: "minimal lab2.test"})
		if l.ModeFor("example.test.") != "nsec" || l.ModeFor("lab2.test.") != "minimal" {
			t.Fatalf("test bug: modes %v", l.Modes)
		}
		if synthesizedOwner(t, l, "nope.example.test") {
			t.Errorf("denial minimal lab2.test: example.test should keep nsec, but its NXDOMAIN proof has a synthesized NSEC")
		}
		if !synthesizedOwner(t, l, "nx.lab2.test") {
			t.Errorf("denial minimal lab2.test: lab2.test NXDOMAIN proof has no synthesized NSEC")
		}
		for _, c := range casesNamed(t, "NXDOMAIN nope", "NODATA mx1 TXT", "wildcard NODATA TXT", "lab2 NXDOMAIN", "lab2 wildcard TXT", "lab2 CNAME into example.test") {
			t.Run(c.name, func(t *testing.T) { runAnswerCase(t, l, c) })
		}
	})
}

// sigTimes collects the RRSIGs of a few answers (positive, NODATA, NXDOMAIN) with DO.
func sigTimes(t *testing.T, addr string) []*dns.RRSIG {
	t.Helper()
	var sigs []*dns.RRSIG
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"example.test", dns.TypeSOA}, {"mx1.example.test", dns.TypeA}, {"mx1.example.test", dns.TypeTXT}, {"nope.example.test", dns.TypeA}, {"example.test", dns.TypeDNSKEY}} {
		r, err := QueryFull(addr, q.name, q.qtype, QueryOpts{DO: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range append(r.Answer, r.Ns...) {
			if s, ok := rr.(*dns.RRSIG); ok {
				sigs = append(sigs, s)
			}
		}
	}
	if len(sigs) == 0 {
		t.Fatal("no RRSIGs in the answers")
	}
	return sigs
}

func sigTime(v uint32) time.Time { return time.Unix(int64(v), 0) }

// TestSignatureTimes checks the validity, refresh, jitter and inception settings.
func TestSignatureTimes(t *testing.T) {
	const slack = 3 * time.Second
	t.Run("defaults", func(t *testing.T) {
		// validity 14d, jitter up to 1d, inception 1h back; signed at most minutes ago.
		l := sharedLab(t, "nsec")
		// No transfer plugin: nothing is signed for secondaries (a version would hold a
		// signature for every RRset).
		if strings.Contains(l.Srv.Log(), "ready for transfer") {
			t.Errorf("a zone was published for transfer without the transfer plugin:\n%s", l.Srv.Log())
		}
		now := time.Now()
		for _, s := range sigTimes(t, l.Srv.Addr) {
			inc, exp := sigTime(s.Inception), sigTime(s.Expiration)
			if inc.After(now.Add(-time.Hour+slack)) || inc.Before(now.Add(-time.Hour-10*time.Minute)) {
				t.Errorf("RRSIG %s: inception %v, want about 1h before now (%v)", typeString(s.TypeCovered), inc, now)
			}
			if exp.Before(now.Add(14*24*time.Hour-time.Hour-10*time.Minute)) || exp.After(now.Add(15*24*time.Hour+slack)) {
				t.Errorf("RRSIG %s: expiration %v, want 14d (+ up to 1d jitter) from now (%v)", typeString(s.TypeCovered), exp, now)
			}
		}
	})
	t.Run("days and jitter cap", func(t *testing.T) {
		t.Parallel()
		srv := StartServer(t, ServerConfig{Zones: onlyExample(t), Extra: []string{"validity 2d", "inception 10m"}})
		now := time.Now()
		for _, s := range sigTimes(t, srv.Addr) {
			inc, exp := sigTime(s.Inception), sigTime(s.Expiration)
			if inc.After(now.Add(-10*time.Minute+slack)) || inc.Before(now.Add(-10*time.Minute-time.Minute)) {
				t.Errorf("inception 10m: RRSIG inception %v, now %v", inc, now)
			}
			// 2d validity; the default 1d jitter is capped at validity/4 = 12h.
			if exp.Before(now.Add(48*time.Hour-10*time.Minute-time.Minute)) || exp.After(now.Add(60*time.Hour+slack)) {
				t.Errorf("validity 2d: RRSIG expiration %v (%v from now), want 2d..2d12h", exp, exp.Sub(now).Round(time.Second))
			}
		}
	})
	t.Run("refresh", func(t *testing.T) {
		// The served signatures always keep at least "refresh" of validity left, so with a
		// refresh close to the validity (the shortest validity allowed is 1h) the server must
		// re-sign within seconds while it runs; the new signatures keep validating.
		t.Parallel()
		const validity, refresh = time.Hour, time.Hour - 8*time.Second
		// With the transfer plugin, as a primary: the zone is also re-signed for secondaries.
		l := StartLab(t, ServerConfig{Zones: onlyExample(t), Extra: []string{"validity 1h", "refresh 59m52s", "jitter 0s", "inception 5s"},
			Block: []string{"transfer {\n    to 127.0.0.1\n}"}})
		const watch = 20 * time.Second
		deadline := time.Now().Add(watch)
		resigned := false
		first := map[uint16]uint32{}
		for time.Now().Before(deadline) {
			now := time.Now()
			for _, s := range sigTimes(t, l.Srv.Addr) {
				exp := sigTime(s.Expiration)
				left := exp.Sub(now)
				if left < refresh-slack {
					t.Errorf("RRSIG %s served with %v of validity left; refresh is %v", typeString(s.TypeCovered), left.Round(time.Second), refresh)
				}
				if left > validity+slack {
					t.Errorf("RRSIG %s: %v of validity left, more than validity %v", typeString(s.TypeCovered), left.Round(time.Second), validity)
				}
				if sigTime(s.Inception).After(now.Add(-5*time.Second + slack)) {
					t.Errorf("RRSIG %s: inception %v is not 5s back from now %v", typeString(s.TypeCovered), sigTime(s.Inception), now)
				}
				if f, ok := first[s.TypeCovered]; !ok {
					first[s.TypeCovered] = s.Expiration
				} else if s.Expiration != f {
					resigned = true
				}
			}
			if t.Failed() {
				break
			}
			time.Sleep(time.Second)
		}
		if !resigned {
			t.Errorf("no signature was renewed within %v (validity %v, refresh %v)", watch, validity, refresh)
		}
		// The zone is re-signed for secondaries in the background, each time under a new
		// serial; what is served keeps validating.
		if s := serialOf(t, l.Srv.Addr, "example.test"); s <= 2026112201 {
			t.Errorf("serial %d after %v of re-signing, want past the file's 2026112201", s, watch)
		}
		for _, c := range casesNamed(t, "mx1 A", "NXDOMAIN nope") {
			t.Run(c.name, func(t *testing.T) {
				e := l.Zones.Resolve(c.qname, c.qtype)
				for _, p := range JudgeDirect(l, c.qname, c.qtype, e) {
					t.Error(p)
				}
				if l.Delv != nil {
					for _, p := range JudgeDelv(l, c.qname, c.qtype, e) {
						t.Error(p)
					}
				}
			})
		}
	})
}

// TestCorefileForms: the PATH [ORIGINS...] forms of the contract. A single file is served
// under its name without ".zone" or under ORIGINS[0]; with a directory, ORIGINS selects zones.
func TestCorefileForms(t *testing.T) {
	example := RepoZone(t, "example.test.zone")
	forms := []struct {
		name     string
		cfg      ServerConfig
		notServe []string
	}{
		{"file named after the zone", ServerConfig{Zones: map[string]string{"example.test": example}, Path: "example.test.zone"}, nil},
		{"file with an origin", ServerConfig{Zones: map[string]string{"example.test": example}, Files: map[string]string{"mail.db": example},
			Path: "mail.db", Origins: []string{"example.test"}, Serve: []string{"example.test"}}, nil},
		{"directory with an origin filter", ServerConfig{Zones: LabZones(t), Origins: []string{"lab2.test"}, Serve: []string{"lab2.test"}},
			[]string{"example.test"}},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			f.cfg.Denial = "nsec"
			l := StartLab(t, f.cfg)
			for _, o := range l.Srv.Origins {
				for _, c := range casesNamed(t, "apex SOA", "mx1 A", "NXDOMAIN nope", "lab2 SOA", "lab2 NXDOMAIN") {
					if dns.IsSubDomain(o, dns.Fqdn(c.qname)) {
						t.Run(c.name, func(t *testing.T) { runAnswerCase(t, l, c) })
					}
				}
			}
			for _, z := range f.notServe {
				r, err := Query(l.Srv.Addr, z, dns.TypeSOA, QueryOpts{DO: true})
				if err != nil {
					t.Fatal(err)
				}
				if r.Authoritative || r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError {
					t.Errorf("%s is not among the ORIGINS but answered authoritatively: rcode %s AA=%v", z, dns.RcodeToString[r.Rcode], r.Authoritative)
				}
			}
		})
	}
}

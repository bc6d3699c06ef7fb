package danezone

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/serial"
	"github.com/danelab/danelab/plugin/danezone/signer"
	"github.com/miekg/dns"
)

// Signatures are refreshed for the secondaries ahead of need, in the background, under a new
// serial, and the journal holds just the new signatures.
func TestResignAhead(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	sz := d.zones.Load().byName["example.test."]
	now := time.Now()
	v1, fresh, err := sz.publish(now)
	if err != nil || !fresh {
		t.Fatalf("first publish: %v %v", fresh, err)
	}
	if v2, fresh, _ := sz.publish(now.Add(time.Minute)); fresh || v2 != v1 {
		t.Fatal("a version built again with nothing due")
	}
	p := sz.signer.Policy()
	// Just before the first refresh is within reach of Ahead: nothing yet.
	early := v1.RefreshAt.Add(-p.Ahead() - time.Minute)
	sz.signer.Now = func() time.Time { return early }
	if _, fresh, _ := sz.publish(early); fresh {
		t.Fatal("re-signed before anything was due")
	}
	later := v1.RefreshAt.Add(-p.Ahead() + time.Minute)
	sz.signer.Now = func() time.Time { return later }
	v3, fresh, err := sz.publish(later)
	if err != nil || !fresh || !serial.Less(v1.Serial, v3.Serial) {
		t.Fatalf("due signatures: fresh %v, serial %d after %d, %v", fresh, v3.Serial, v1.Serial, err)
	}
	if sz.cur.Load().z.Serial != v3.Serial {
		t.Errorf("served serial %d, published %d", sz.cur.Load().z.Serial, v3.Serial)
	}
	horizon := later.Add(p.Ahead())
	for _, s := range v3.Sets {
		for _, rr := range s.Sigs {
			sig := rr.(*dns.RRSIG)
			if exp := time.Unix(int64(sig.Expiration), 0); !exp.After(horizon.Add(p.Refresh)) {
				t.Errorf("%s %s: signature expires %s, due before %s", s.RRset.Name, dns.TypeToString[s.RRset.Type], exp, horizon)
			}
		}
	}
	deltas, ok := sz.journal.Since(v1.Serial, v3.Serial)
	if !ok || len(deltas) != 1 {
		t.Fatalf("journal from %d to %d: %v", v1.Serial, v3.Serial, ok)
	}
	for _, rr := range append(deltas[0].Del, deltas[0].Add...) {
		if rr.Header().Rrtype != dns.TypeRRSIG {
			t.Errorf("re-signing changed %s", rr)
		}
	}
	if len(deltas[0].Add) == 0 {
		t.Error("no new signatures in the delta")
	}
}

// Re-signing renews the signatures made together in one version, not one by one as the
// jitter spreads their refresh times: over eight weeks with the default policy (renewal with
// 7 of 14 days left, 1 day of jitter) the background re-signing makes about one version a week.
func TestResignBatches(t *testing.T) {
	d, _ := newTestZone(t, denial.NSEC)
	sz := d.zones.Load().byName["example.test."]
	now := time.Now()
	sz.signer.Now = func() time.Time { return now }
	v, _, err := sz.publish(now)
	if err != nil {
		t.Fatal(err)
	}
	versions := 0
	end := now.Add(8 * 7 * 24 * time.Hour)
	for now.Before(end) {
		// When the publisher's timer fires (publisher: RefreshAt - Ahead, at least a second).
		now = v.RefreshAt.Add(-sz.signer.Policy().Ahead())
		var fresh bool
		if v, fresh, err = sz.publish(now); err != nil {
			t.Fatal(err)
		}
		if !fresh {
			t.Fatalf("the timer fired at %s and nothing was due (refresh at %s)", now, v.RefreshAt)
		}
		versions++
	}
	if versions > 10 {
		t.Errorf("%d versions made by re-signing in 8 weeks, want about 8", versions)
	}
}

// A restart serves a serial greater than any served before, under every policy, also when
// the zone file was edited while the server was down without a new serial.
func TestSerialAcrossRestart(t *testing.T) {
	for _, p := range []serial.Policy{serial.File, serial.Increment, serial.Unixtime} {
		t.Run(string(p), func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "a.test.zone")
			text := "$ORIGIN a.test.\n$TTL 60\n@ SOA ns h 2026120201 1 1 1 1\n@ NS ns\nns A 127.0.0.1\n"
			os.WriteFile(file, []byte(text), 0o644)
			cfg := &config{path: file, keyDir: filepath.Join(dir, "keys"), algorithm: dns.ECDSAP256SHA256, serial: p,
				mode: denial.NSEC, modes: map[string]denial.Mode{}, policy: signer.DefaultPolicy()}
			served := func() uint32 {
				d, err := start(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return d.zones.Load().byName["a.test."].cur.Load().z.Serial
			}
			s1 := served()
			s2 := served()
			os.WriteFile(file, []byte(text+"www A 127.0.0.2\n"), 0o644) // edited while down, same serial
			s3 := served()
			if !serial.Less(s1, s2) || !serial.Less(s2, s3) {
				t.Fatalf("serials across restarts: %d, %d, %d", s1, s2, s3)
			}
			if p == serial.File && s1 != 2026120201 {
				t.Errorf("first serial %d, want the file's", s1)
			}
		})
	}
}

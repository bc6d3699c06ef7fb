package integration

// TLSA records that follow the certificates a mail server really uses (danezone `tlsa`
// lines): real certificates made here, judged by tools that compute TLSA data on their own
// (openssl pipelines, ldns-dane, hash-slinger), validated by Unbound, and used by Postfix's
// posttls-finger against a real STARTTLS receiver. Harness: tlsa_helpers_test.go.

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

const tlMX1 = "_25._tcp.mx1.example.test."

// TestTLSACertFile serves the TLSA of certificate files and compares it with what openssl,
// ldns-dane and hash-slinger compute from the same files: 3 1 1 of the leaf and 2 1 1 of the
// issuing lab CA for mx1 (fullchain.pem, leaf first), 3 1 1 of a self-signed RSA leaf at two
// ports for mx2. The zone's own static TLSA RRsets at those owners are replaced. Unbound
// validates the records (AD=1), including the new owner _465._tcp.mx2.
func TestTLSACertFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := tlMakeCert(t, tlCertOpts{CN: "danelab lab CA", CA: true})
	leaf := tlLeaf(t, "mx1.example.test", ca, nil)
	full := tlWriteTemp(t, dir, "fullchain.pem", tlChainPEM(leaf, ca))
	caFile := tlWriteTemp(t, dir, "ca.pem", ca.CertPEM)
	self := tlLeaf(t, "mx2.example.test", nil, tlKey(t, "rsa"))
	selfFile := tlWriteTemp(t, dir, "mx2.pem", self.CertPEM)

	leafData, caData, selfData := tlOpenSSLCertSPKI(t, full), tlOpenSSLCertSPKI(t, caFile), tlOpenSSLCertSPKI(t, selfFile)
	want1 := []string{"2 1 1 " + caData, "3 1 1 " + leafData}
	want2 := []string{"3 1 1 " + selfData}

	// Other independent tools, when installed, must agree with openssl.
	t.Run("ldns-dane", func(t *testing.T) {
		peer.Need(t, "ldns-dane")
		for _, c := range []struct {
			file, host, usage, want string
		}{{full, "mx1.example.test", "3", want1[1]}, {full, "mx1.example.test", "2", want1[0]}, {selfFile, "mx2.example.test", "3", want2[0]}} {
			cmd := exec.Command("ldns-dane", "-c", c.file, "create", c.host, "25", c.usage, "1", "1")
			out, code := tlRun(t, 20*time.Second, cmd)
			got, ok := tlRecordFrom(out)
			if code != 0 || !ok || got != c.want {
				t.Errorf("%v: exit %d, record %q, openssl computed %q\n%s", cmd.Args, code, got, c.want, out)
			}
		}
	})
	t.Run("hash-slinger", func(t *testing.T) {
		peer.Need(t, "tlsa")
		// hash-slinger's default selector is 0: ask for 3 1 1. For the CA's 2 1 1 data, hand
		// it the CA certificate alone (its usage-2 mode asks which certificate interactively).
		for _, c := range []struct{ file, want string }{{full, leafData}, {caFile, caData}, {selfFile, selfData}} {
			cmd := exec.Command("tlsa", "--create", "--usage", "3", "--selector", "1", "--mtype", "1", "--port", "25",
				"--certificate", c.file, "mx1.example.test")
			out, code := tlRun(t, 30*time.Second, cmd)
			got, ok := tlRecordFrom(out)
			if code != 0 || !ok || got != "3 1 1 "+c.want {
				t.Errorf("%v: exit %d, record %q, openssl computed 3 1 1 %s\n%s", cmd.Args, code, got, c.want, out)
			}
		}
	})

	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Lines: []string{
		"tlsa mx1.example.test cert " + full + " ports 25 records 311,211 ttl 300",
		"tlsa mx2.example.test cert " + selfFile + " ports 25,465",
	}})
	zoneStatic := map[string]string{}
	for _, line := range strings.Split(RepoZone(t, "example.test.zone"), "\n") {
		if f := strings.Fields(line); len(f) == 7 && f[2] == "TLSA" {
			zoneStatic[f[0]] = strings.Join(f[3:], " ")
		}
	}
	if zoneStatic["_25._tcp.mx1"] == "" || zoneStatic["_25._tcp.mx2"] == "" {
		t.Fatal("test bug: no static TLSA for _25._tcp.mx1/mx2 in zones/example.test.zone")
	}
	for _, c := range []struct {
		owner  string
		want   []string
		static string
	}{
		{tlMX1, want1, zoneStatic["_25._tcp.mx1"]},
		{"_25._tcp.mx2.example.test.", want2, zoneStatic["_25._tcp.mx2"]},
		{"_465._tcp.mx2.example.test.", want2, ""},
	} {
		a := tlMustQuery(t, srv.Addr, c.owner)
		if !slices.Equal(a.Records, c.want) {
			t.Errorf("TLSA %s served %v; openssl computed %v from the certificate files", c.owner, a.Records, c.want)
		}
		if a.TTL != 300 {
			t.Errorf("TLSA %s TTL %d, want 300", c.owner, a.TTL)
		}
		if c.static != "" && a.Has(c.static) {
			t.Errorf("TLSA %s still serves the zone file's static record %q beside the managed ones", c.owner, c.static)
		}
	}

	// A zone file reload keeps the managed records over the file's static ones. (The TLSA
	// records made a new version already: the serial served is past the file's.)
	before := serialOf(t, srv.Addr, "example.test")
	if err := os.WriteFile(srv.ZoneFile("example.test"), []byte(bumpSerial(t, RepoZone(t, "example.test.zone"), 2026112202)), 0o644); err != nil {
		t.Fatal(err)
	}
	if m := waitFor(5*time.Second, func() string {
		if s := serialOf(t, srv.Addr, "example.test"); s == before {
			return fmt.Sprintf("serial %d", s)
		}
		return ""
	}); m != "" {
		t.Fatalf("zone reload not served: %s", m)
	}
	if a := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(a.Records, want1) {
		t.Errorf("after a zone file reload: TLSA %s served %v, want %v", tlMX1, a.Records, want1)
	}

	t.Run("unbound", func(t *testing.T) {
		anchor, err := ReadAnchor(srv.KeyDir, "example.test")
		if err != nil {
			t.Fatal(err)
		}
		u := StartUnbound(t, Stub{Anchor: anchor, Addr: srv.Addr})
		for owner, want := range map[string][]string{tlMX1: want1, "_25._tcp.mx2.example.test.": want2, "_465._tcp.mx2.example.test.": want2} {
			r, err := u.Resolve(owner, dns.TypeTLSA)
			if err != nil {
				t.Fatal(err)
			}
			a := tlParse(r, owner)
			if a.Rcode != dns.RcodeSuccess || !a.AD || !slices.Equal(a.Records, want) {
				t.Errorf("Unbound: TLSA %s: %s %v, want NOERROR AD=1 %v\n%s", owner, a, EDE(r), want, u.LogTail(1500))
			}
		}
		// The new owner _465._tcp.mx2 must not break denial for its neighbours.
		r, err := u.Resolve("_587._tcp.mx2.example.test.", dns.TypeTLSA)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeNameError || !r.AuthenticatedData {
			t.Errorf("Unbound: TLSA _587._tcp.mx2: %s AD=%v, want a validated NXDOMAIN %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData, EDE(r))
		}
	})
}

// TestTLSARotation replaces the certificate file under the running server (default poll, 1 s):
// the new key's TLSA is served within a poll, the old one stays for the hold-down (hold 2s)
// and then goes. A second rotation writes the file in place (as cp does) rather than by rename.
func TestTLSARotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := tlLeaf(t, "mx1.example.test", nil, nil)
	b := tlLeaf(t, "mx1.example.test", nil, tlKey(t, "rsa"))
	c := tlLeaf(t, "mx1.example.test", nil, nil)
	file := tlWriteTemp(t, dir, "fullchain.pem", a.CertPEM)
	dataA := tlOpenSSLCertSPKI(t, file)
	dataB := tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "b.pem", b.CertPEM))
	dataC := tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "c.pem", c.CertPEM))
	recA, recB, recC := "3 1 1 "+dataA, "3 1 1 "+dataB, "3 1 1 "+dataC
	const hold = 2 * time.Second

	srv := tlStartServer(t, tlServerConfig{Lines: []string{"tlsa mx1.example.test cert " + file + " ttl 300 hold 2s"}})
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, []string{recA}) {
		t.Fatalf("before rotation: served %v, openssl computed %v", got.Records, recA)
	}

	// Write at a random phase of the server's 1s poll, so the figure logged is a sample.
	time.Sleep(time.Duration(mrand.Int64N(int64(time.Second))))
	changed := time.Now()
	tlWriteAtomic(t, file, b.CertPEM)
	got, took := tlWait(t, srv.Addr, tlMX1, 3*time.Second, "new certificate's TLSA", func(x tlAnswer) bool { return x.Has(recB) })
	seen := time.Now()
	t.Logf("rotation (rename, default 1s poll): new TLSA served %v after the file changed", took.Round(time.Millisecond))
	if took > 1300*time.Millisecond {
		t.Errorf("new TLSA served %v after the file changed; the default poll is 1s", took)
	}
	if !got.Has(recA) || !got.Signed {
		t.Errorf("right after the change: %s; want the old record %s held beside the new one, signed", got, recA)
	}
	// Within the hold-down the old record stays; probe up to shortly before it can end.
	for time.Since(seen) < hold-300*time.Millisecond {
		x := tlMustQuery(t, srv.Addr, tlMX1)
		if !x.Has(recA) || !x.Has(recB) {
			t.Fatalf("%v after the new TLSA appeared (hold 2s): served %v, want old and new", time.Since(seen).Round(time.Millisecond), x.Records)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var final tlAnswer
	if m := waitFor(hold+2*time.Second, func() string {
		final = tlMustQuery(t, srv.Addr, tlMX1)
		if final.Has(recA) {
			return fmt.Sprintf("%v after the change the old record is still served: %v", time.Since(changed).Round(time.Millisecond), final.Records)
		}
		return ""
	}); m != "" {
		st := srv.TLSAStatus(t, "mx1.example.test")
		t.Fatalf("end of the hold-down (2s): %s\nGET /tlsa meanwhile: current %v, next %v, held %v", m, st.Current, st.Next, st.Held)
	}
	gone := time.Since(changed)
	t.Logf("old TLSA withdrawn %v after the file changed (hold 2s + poll)", gone.Round(time.Millisecond))
	if !slices.Equal(final.Records, []string{recB}) {
		t.Errorf("after the hold-down: served %v, want only %s", final.Records, recB)
	}
	if gone < hold {
		t.Errorf("old TLSA withdrawn %v after the change, before the 2s hold-down ended", gone)
	}

	// In-place write (truncate + write, as cp or lego do): a poll may see a partial file; the
	// new key is served all the same, and no half-read file ever withdraws the records.
	obs := tlObserve(srv.Addr, tlMX1, 20*time.Millisecond)
	if err := os.WriteFile(file, c.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	_, took = tlWait(t, srv.Addr, tlMX1, 3*time.Second, "in-place rotation", func(x tlAnswer) bool { return x.Has(recC) })
	t.Logf("rotation (in-place write, default poll): new TLSA served after %v", took.Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	list, errs := obs.Stop()
	for _, o := range list {
		if !o.A.Has(recB) && !o.A.Has(recC) {
			t.Errorf("during the in-place rotation, %s served %v: neither the old nor the new key", o.At.Format("15:04:05.000"), o.A.Records)
		}
	}
	if len(errs) > 0 {
		t.Errorf("queries failed during the rotation: %v", errs[:min(3, len(errs))])
	}
}

// TestTLSARollover renews the certificate twice. First with the key staged ahead in the
// `next` directory, published for more than a TTL before the renewal: a sender that cached
// any RRset served at any moment finds the certificate presented during that RRset's TTL in
// it (the RRsets before the change hold the new key, those after it hold the old). Then with a
// key nobody staged: GET /tlsa, the metric, the log and `danelab status` all say so.
func TestTLSARollover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	next := filepath.Join(dir, "next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	keyB, keyC := tlKey(t, "ec"), tlKey(t, "rsa")
	a := tlLeaf(t, "mx1.example.test", nil, nil)
	b := tlLeaf(t, "mx1.example.test", nil, keyB)
	c := tlLeaf(t, "mx1.example.test", nil, keyC)
	file := tlWriteTemp(t, dir, "fullchain.pem", a.CertPEM)
	recA := "3 1 1 " + tlOpenSSLCertSPKI(t, file)
	recB := "3 1 1 " + tlOpenSSLKeySPKI(t, tlWriteTemp(t, dir, "b.key", b.KeyPEM))
	recC := "3 1 1 " + tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "c.pem", c.CertPEM))
	const ttl = 2 * time.Second
	const hold = 2 * ttl // the default hold-down

	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Lines: []string{
		"tlsa mx1.example.test cert " + file + " next " + next + " ttl 2"}})
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, []string{recA}) {
		t.Fatalf("start: served %v, want %v", got.Records, recA)
	}
	host := []string{"host", "mx1.example.test"}

	// Stage B's key (the private key file, as certbot --reuse-key users keep it).
	obs := tlObserve(srv.Addr, tlMX1, 10*time.Millisecond)
	tlWriteAtomic(t, filepath.Join(next, "mx1-next.key"), b.KeyPEM)
	got, took := tlWait(t, srv.Addr, tlMX1, 2*time.Second, "staged key", func(x tlAnswer) bool { return x.Has(recB) })
	if !slices.Equal(got.Records, tlSorted(recA, recB)) {
		t.Fatalf("after staging: served %v, want %v", got.Records, tlSorted(recA, recB))
	}
	stagedSeen := time.Now()
	t.Logf("staged key published %v after it was written", took.Round(time.Millisecond))
	time.Sleep(ttl + 500*time.Millisecond) // every cache now holds B's record

	swap := time.Now()
	tlWriteAtomic(t, file, b.CertPEM)
	after, took := tlWait(t, srv.Addr, tlMX1, 2*time.Second, "renewed certificate", func(x tlAnswer) bool {
		return slices.Contains(srv.TLSAStatus(t, "mx1.example.test").Current, recB)
	})
	t.Logf("renewal with the staged key picked up after %v; served %v", took.Round(time.Millisecond), after.Records)
	time.Sleep(hold + 1500*time.Millisecond)
	list, errs := obs.Stop()
	if len(errs) > 0 {
		t.Errorf("queries failed during the rollover: %v", errs[:min(3, len(errs))])
	}
	if len(list) < 100 {
		t.Fatalf("only %d observations", len(list))
	}
	// A sender caching an RRset observed at time o (its TTL is what we served) may meet any
	// certificate presented in [o, o+TTL]: A before the swap, B after.
	var bad []string
	for _, o := range list {
		if o.A.TTL != 2 {
			bad = append(bad, fmt.Sprintf("%s: TTL %d, want 2", o.At.Format("15:04:05.000"), o.A.TTL))
			continue
		}
		end := o.At.Add(ttl)
		needA := o.At.Before(swap)
		needB := end.After(swap)
		switch {
		case needA && !o.A.Has(recA), needB && !o.A.Has(recB):
			bad = append(bad, fmt.Sprintf("%s (swap %s): served %v, a sender caching it for %v meets certificate A=%v B=%v",
				o.At.Format("15:04:05.000"), swap.Format("15:04:05.000"), o.A.Records, ttl, needA, needB))
		}
		// The direct form: once B is published, every RRset before the change holds B,
		// and every RRset during the hold-down after it holds A.
		if o.At.After(stagedSeen) && o.At.Before(swap) && !o.A.Has(recB) {
			bad = append(bad, fmt.Sprintf("%s: before the swap, after the staged key was published, served without it: %v",
				o.At.Format("15:04:05.000"), o.A.Records))
		}
		if o.At.After(swap) && o.At.Before(swap.Add(hold-300*time.Millisecond)) && !o.A.Has(recA) {
			bad = append(bad, fmt.Sprintf("%s: %v after the swap (hold %v) the old key is gone: %v",
				o.At.Format("15:04:05.000"), o.At.Sub(swap).Round(time.Millisecond), hold, o.A.Records))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d observations would fail a DANE sender; first ones:\n%s", len(bad), len(list), strings.Join(bad[:min(5, len(bad))], "\n"))
	}
	last := list[len(list)-1].A
	if !slices.Equal(last.Records, []string{recB}) {
		t.Errorf("after the hold-down: served %v, want only %s", last.Records, recB)
	}
	st := srv.TLSAStatus(t, "mx1.example.test")
	if st.Unstaged || len(st.Warnings) > 0 {
		t.Errorf("staged renewal reported as unsafe: unstaged_key %v, warnings %q", st.Unstaged, st.Warnings)
	}
	if v, ok := srv.Metric(t, "coredns_danezone_tlsa_unstaged_key", host...); !ok || v != 0 {
		t.Errorf("coredns_danezone_tlsa_unstaged_key{host=mx1.example.test} = %v (present %v) after a staged renewal, want 0", v, ok)
	}
	danelab := tlDanelab(t)
	if out, code := tlRun(t, 20*time.Second, exec.Command(danelab, "status", "-api", srv.Control)); code != 0 || strings.Contains(out, "WARNING") {
		t.Errorf("danelab status after a staged renewal: exit %d, want 0 without warnings\n%s", code, out)
	}

	// The staged key is in use: unstage it (it stays published as the current key).
	if err := os.Remove(filepath.Join(next, "mx1-next.key")); err != nil {
		t.Fatal(err)
	}
	if m := waitFor(2*time.Second, func() string {
		if st := srv.TLSAStatus(t, "mx1.example.test"); len(st.Next) > 0 {
			return fmt.Sprintf("next still %v", st.Next)
		}
		return ""
	}); m != "" {
		t.Fatal(m)
	}
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, []string{recB}) {
		t.Errorf("after unstaging the key in use: served %v, want %s", got.Records, recB)
	}

	// Renewal with a key that was never staged.
	tlWriteAtomic(t, file, c.CertPEM)
	got, _ = tlWait(t, srv.Addr, tlMX1, 2*time.Second, "unstaged renewal", func(x tlAnswer) bool { return x.Has(recC) })
	if !got.Has(recB) {
		t.Errorf("unstaged renewal: served %v, want the previous key %s held", got.Records, recB)
	}
	st = srv.TLSAStatus(t, "mx1.example.test")
	if !st.Unstaged || len(st.Warnings) == 0 {
		t.Errorf("GET /tlsa after an unstaged renewal: unstaged_key %v, warnings %q; want true with a warning", st.Unstaged, st.Warnings)
	}
	if v, ok := srv.Metric(t, "coredns_danezone_tlsa_unstaged_key", host...); !ok || v != 1 {
		t.Errorf("coredns_danezone_tlsa_unstaged_key{host=mx1.example.test} = %v (present %v), want 1", v, ok)
	}
	warnRe := regexp.MustCompile(`(?m)^.*\[WARNING\].*mx1\.example\.test.*$`)
	if m := waitFor(2*time.Second, func() string {
		if warnRe.MatchString(srv.Log()) {
			return ""
		}
		return "no [WARNING] line naming mx1.example.test in the log"
	}); m != "" {
		t.Errorf("%s:\n%s", m, tail(srv.LogPath, 2000))
	} else {
		t.Logf("log: %s", warnRe.FindString(srv.Log()))
	}
	out, code := tlRun(t, 20*time.Second, exec.Command(danelab, "status", "-api", srv.Control))
	if code != 1 || !strings.Contains(out, "WARNING") {
		t.Errorf("danelab status after an unstaged renewal: exit %d, want 1 with WARNING\n%s", code, out)
	}
}

func tlSorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestTLSABadInput breaks the certificate file and the staged key file in turn: text that is
// not PEM, a PEM block that is not a certificate, an expired certificate, a missing file, a
// staged key that does not parse. The last good records keep serving, the log names the
// file, GET /tlsa reports it and coredns_danezone_tlsa_source_errors_total counts it.
func TestTLSABadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := tlLeaf(t, "mx1.example.test", nil, nil)
	staged := tlKey(t, "ec")
	file := tlWriteTemp(t, dir, "fullchain.pem", a.CertPEM)
	stagedPEM := tlMakeCert(t, tlCertOpts{CN: "staged", Key: staged}).KeyPEM
	keyFile := tlWriteTemp(t, dir, "next.key", stagedPEM)
	good := tlSorted("3 1 1 "+tlOpenSSLCertSPKI(t, file), "3 1 1 "+tlOpenSSLKeySPKI(t, keyFile))
	expired := tlMakeCert(t, tlCertOpts{CN: "mx1.example.test", DNSNames: []string{"mx1.example.test"},
		NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	expiredRec := "3 1 1 " + tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "expired.pem", expired.CertPEM))

	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Lines: []string{
		"tlsa mx1.example.test cert " + file + " next " + keyFile + " ttl 300"}})
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, good) {
		t.Fatalf("start: served %v, want %v", got.Records, good)
	}
	host := []string{"host", "mx1.example.test"}
	errCount := func() float64 {
		v, _ := srv.Metric(t, "coredns_danezone_tlsa_source_errors_total", host...)
		return v
	}
	if n := errCount(); n != 0 {
		t.Errorf("source errors before any fault: %v", n)
	}

	garbageDER := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo=\n-----END CERTIFICATE-----\n"
	for _, c := range []struct {
		name  string
		path  string
		apply func() error
		bad   string // a record that must not appear
	}{
		{"not PEM", file, func() error { return os.WriteFile(file, []byte("this is not a certificate\n"), 0o644) }, ""},
		{"garbage DER", file, func() error { return os.WriteFile(file, []byte(garbageDER), 0o644) }, ""},
		{"key instead of certificate", file, func() error { return os.WriteFile(file, a.KeyPEM, 0o644) }, ""},
		{"expired certificate", file, func() error { return os.WriteFile(file, expired.CertPEM, 0o644) }, expiredRec},
		{"missing file", file, func() error { return os.Remove(file) }, ""},
		{"staged key garbage", keyFile, func() error {
			if err := os.WriteFile(file, a.CertPEM, 0o644); err != nil {
				return err
			}
			return os.WriteFile(keyFile, []byte("-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n"), 0o600)
		}, ""},
	} {
		before := errCount()
		logBefore := len(srv.Log())
		if err := c.apply(); err != nil {
			t.Fatal(err)
		}
		// Wait until a poll has met the fault, then watch the answers for a few more polls.
		if m := waitFor(3*time.Second, func() string {
			if errCount() > before {
				return ""
			}
			return "source error counter did not move"
		}); m != "" {
			t.Errorf("%s: %s (%v)\n%s", c.name, m, before, tail(srv.LogPath, 1500))
			continue
		}
		for i := 0; i < 6; i++ {
			got := tlMustQuery(t, srv.Addr, tlMX1)
			if !slices.Equal(got.Records, good) || (c.bad != "" && got.Has(c.bad)) {
				t.Errorf("%s: served %v, want the last good %v", c.name, got.Records, good)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := errCount(); n <= before {
			t.Errorf("%s: coredns_danezone_tlsa_source_errors_total %v, was %v", c.name, n, before)
		}
		newLog := srv.Log()[logBefore:]
		var line string
		for _, l := range strings.Split(newLog, "\n") {
			if strings.Contains(l, "[ERROR]") && strings.Contains(l, c.path) {
				line = l
			}
		}
		if line == "" {
			t.Errorf("%s: no [ERROR] log line naming %s; new log:\n%s", c.name, c.path, newLog)
		} else {
			t.Logf("%s: %s", c.name, strings.TrimSpace(line))
		}
		if st := srv.TLSAStatus(t, "mx1.example.test"); !strings.Contains(st.LastError, c.path) {
			t.Errorf("%s: GET /tlsa last_error %q does not name %s", c.name, st.LastError, c.path)
		}
	}
	// Repaired: the error clears, the same records serve.
	if err := os.WriteFile(keyFile, stagedPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if m := waitFor(3*time.Second, func() string {
		if st := srv.TLSAStatus(t, "mx1.example.test"); st.LastError != "" {
			return "last_error still " + st.LastError
		}
		return ""
	}); m != "" {
		t.Error(m)
	}
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, good) {
		t.Errorf("repaired: served %v, want %v", got.Records, good)
	}
}

// TestTLSAPosttlsFinger lets Postfix judge the served records: posttls-finger -l dane, using a
// validating Unbound as its resolver, against a go-smtp STARTTLS receiver on port 25 of the
// address of mx1. The receiver presents, in turn: the certificate of the file (3 1 1 matches),
// another key issued by the same lab CA (only the 2 1 1 of the CA matches), a self-signed
// certificate with a key nobody published (no match: the negative control), and a certificate
// with the key staged in `next`, before the certificate file changes (the rollover). The
// matched record posttls-finger prints must carry openssl's digest.
func TestTLSAPosttlsFinger(t *testing.T) {
	for _, p := range []string{"posttls-finger", "unbound", "unshare"} {
		peer.Need(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (as in CI): a receiver on port 25 and a private mount namespace for resolv.conf")
	}
	mxIP, err := tlSpareLoopback(25, false, "127.0.0.11", "127.0.0.111", "127.0.0.112", "127.0.0.113")
	if err != nil {
		t.Fatal(err)
	}
	resolverIP, err := tlSpareLoopback(53, true, "127.0.0.54", "127.0.0.154", "127.0.0.155", "127.0.0.156")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := tlMakeCert(t, tlCertOpts{CN: "danelab lab CA", CA: true})
	leaf := tlLeaf(t, "mx1.example.test", ca, nil)
	file := tlWriteTemp(t, dir, "fullchain.pem", tlChainPEM(leaf, ca))
	leafData := tlOpenSSLCertSPKI(t, file)
	caData := tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "ca.pem", ca.CertPEM))
	next := filepath.Join(dir, "next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}

	zone := RepoZone(t, "example.test.zone")
	mxLine := regexp.MustCompile(`(?m)^mx1(\s+IN\s+A\s+)127\.0\.0\.11$`)
	if !mxLine.MatchString(zone) {
		t.Fatal("test bug: no `mx1 IN A 127.0.0.11` line in zones/example.test.zone")
	}
	zone = mxLine.ReplaceAllString(zone, "mx1${1}"+mxIP)
	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Zones: map[string]string{"example.test": zone},
		Lines: []string{"tlsa mx1.example.test cert " + file + " records 311,211 next " + next}})
	anchor, err := ReadAnchor(srv.KeyDir, "example.test")
	if err != nil {
		t.Fatal(err)
	}
	u := tlStartUnboundAt(t, resolverIP, Stub{Anchor: anchor, Addr: srv.Addr})
	if r, err := u.Resolve(tlMX1, dns.TypeTLSA); err != nil || !r.AuthenticatedData {
		t.Fatalf("lab resolver %s: TLSA %s not validated: %v %v", u.Addr, tlMX1, err, r)
	}
	mailConfig := filepath.Join(dir, "postfix")
	if err := os.Mkdir(mailConfig, 0o755); err != nil {
		t.Fatal(err)
	}
	mainCF := "compatibility_level = 3.6\ninet_protocols = ipv4\nsmtp_dns_support_level = dnssec\n" +
		"smtp_tls_security_level = dane\ndnssec_probe = ns:example.test\nsmtp_address_preference = ipv4\n"
	if err := os.WriteFile(filepath.Join(mailConfig, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}

	// finger runs posttls-finger against a receiver presenting chain and checks its verdict:
	// match is the line a verified DANE match prints ("" for the negative control).
	finger := func(t *testing.T, chain []*tlCert, match string) {
		t.Helper()
		r := tlStartReceiver(t, net.JoinHostPort(mxIP, "25"), tlTLSCert(chain[0], chain[1:]...), false)
		defer r.Close()
		cmd := tlInLabResolver(t, dir, resolverIP, "posttls-finger", "-t30", "-T180", "-c", "-a", "ipv4", "-l", "dane",
			"-P", "/etc/ssl/certs", "[mx1.example.test]")
		cmd.Env = append(os.Environ(), "MAIL_CONFIG="+mailConfig)
		start := time.Now()
		out, code := tlRun(t, 60*time.Second, cmd)
		t.Logf("posttls-finger (%v, exit %d):\n%s", time.Since(start).Round(time.Millisecond), code, out)
		verified := strings.Contains(out, "Verified TLS connection established")
		switch {
		case match != "" && (!verified || !strings.Contains(strings.ToLower(out), strings.ToLower(match))):
			t.Errorf("posttls-finger did not report a verified DANE match %q", match)
		case match == "" && verified:
			t.Errorf("posttls-finger verified a certificate whose key no TLSA record names")
		case match == "" && !strings.Contains(out, "Untrusted TLS connection established"):
			t.Errorf("negative control: posttls-finger did not report an untrusted connection")
		case match == "" && !strings.Contains(out, "num=65") && !strings.Contains(out, "no matching DANE TLSA records"):
			t.Errorf("negative control: no \"num=65\"/\"no matching DANE TLSA records\" in the output")
		}
	}
	t.Run("file's certificate (3 1 1)", func(t *testing.T) {
		finger(t, []*tlCert{leaf, ca}, "Matched DANE EE certificate at depth 0: 3 1 1 "+leafData)
	})
	t.Run("same CA, other key (2 1 1)", func(t *testing.T) {
		other := tlMakeCert(t, tlCertOpts{CN: "mx1.example.test", DNSNames: []string{"mx1.example.test"}, Issuer: ca})
		finger(t, []*tlCert{other, ca}, "Matched DANE TA certificate at depth 1: 2 1 1 "+caData)
	})
	t.Run("unpublished key (negative control)", func(t *testing.T) {
		finger(t, []*tlCert{tlLeaf(t, "mx1.example.test", nil, nil)}, "")
	})
	// Rollover as a sender sees it: a key staged in `next` reaches the resolver; the MTA then
	// switches to a certificate with that key (self-signed, so only its 3 1 1 can match)
	// before danezone has even seen the new file, and the sender, with the RRset it has,
	// verifies it.
	t.Run("staged key, certificate switched before the file changed", func(t *testing.T) {
		staged := tlLeaf(t, "mx1.example.test", nil, nil)
		stagedData := tlOpenSSLKeySPKI(t, tlWriteTemp(t, dir, "staged.key", staged.KeyPEM))
		tlWriteAtomic(t, filepath.Join(next, "mx1.key"), staged.KeyPEM)
		if m := waitFor(15*time.Second, func() string {
			r, err := u.Resolve(tlMX1, dns.TypeTLSA)
			if err != nil {
				return err.Error()
			}
			if a := tlParse(r, tlMX1); !a.AD || !a.Has("3 1 1 "+stagedData) {
				return fmt.Sprintf("lab resolver serves %s", a)
			}
			return ""
		}); m != "" {
			t.Fatalf("staged key not validated by the lab resolver: %s", m)
		}
		finger(t, []*tlCert{staged}, "Matched DANE EE certificate at depth 0: 3 1 1 "+stagedData)
	})
}

// TestTLSAProbe follows a live STARTTLS receiver (probe ... interval 1s) and an implicit-TLS
// one (probe ... tls): the TLSA served equals openssl's computation from the certificate the
// receiver holds; when the receiver restarts with another certificate the TLSA follows
// within the interval.
func TestTLSAProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c1 := tlLeaf(t, "mx2.example.test", nil, nil)
	c2 := tlLeaf(t, "mx2.example.test", nil, tlKey(t, "rsa"))
	c3 := tlLeaf(t, "mx1.example.test", nil, nil)
	rec1 := "3 1 1 " + tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "c1.pem", c1.CertPEM))
	rec2 := "3 1 1 " + tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "c2.pem", c2.CertPEM))
	rec3 := "3 1 1 " + tlOpenSSLCertSPKI(t, tlWriteTemp(t, dir, "c3.pem", c3.CertPEM))

	r := tlStartReceiver(t, "127.0.0.12:0", tlTLSCert(c1), false)
	addr := r.Addr
	implicit := tlStartReceiver(t, "127.0.0.12:0", tlTLSCert(c3), true)
	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Lines: []string{
		"tlsa mx2.example.test probe " + addr + " interval 1s",
		"tlsa mx1.example.test probe " + implicit.Addr + " tls ports 465 interval 1s",
	}})
	const mx2 = "_25._tcp.mx2.example.test."
	if got := tlMustQuery(t, srv.Addr, mx2); !slices.Equal(got.Records, []string{rec1}) {
		t.Errorf("STARTTLS probe of %s: served %v, openssl computed %v", addr, got.Records, rec1)
	}
	if got := tlMustQuery(t, srv.Addr, "_465._tcp.mx1.example.test."); !slices.Equal(got.Records, []string{rec3}) {
		t.Errorf("implicit TLS probe of %s: served %v, openssl computed %v", implicit.Addr, got.Records, rec3)
	}
	if st := srv.TLSAStatus(t, "mx2.example.test"); !strings.Contains(st.Source, addr) {
		t.Errorf("GET /tlsa source %q does not name %s", st.Source, addr)
	}

	r.Close()
	var err error
	r, err = tlNewReceiver(addr, tlTLSCert(c2), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	got, took := tlWait(t, srv.Addr, mx2, 5*time.Second, "probe after the receiver's certificate changed", func(x tlAnswer) bool { return x.Has(rec2) })
	t.Logf("probe: new certificate's TLSA served %v after the receiver restarted (interval 1s, poll 200ms)", took.Round(time.Millisecond))
	if took > 1500*time.Millisecond {
		t.Errorf("new TLSA served %v after the receiver restarted; interval 1s + poll 200ms", took)
	}
	if !got.Has(rec1) {
		t.Errorf("after the change: served %v, want the old record %s held (default hold 2×TTL)", got.Records, rec1)
	}
}

// TestTLSAACMERenewal issues a certificate for mx1 from pebble (an ACME test CA, validation
// switched off with PEBBLE_VA_ALWAYS_VALID) with lego, serves its TLSA from lego's
// certificates/mx1.example.test.crt, then renews: `lego renew` with a fresh key (not staged:
// the warning), and a renewal from a CSR whose key was staged in `next` first (no warning).
// danezone follows every file lego writes.
func TestTLSAACMERenewal(t *testing.T) {
	for _, p := range []string{"pebble", "lego"} {
		peer.Need(t, p)
	}
	t.Parallel()
	dir := t.TempDir()
	ca := startPebble(t)
	legoDir := filepath.Join(dir, "lego")
	lego := func(args ...string) {
		t.Helper()
		var base []string
		if !slices.Contains(args, "--csr") {
			base = []string{"--domains", "mx1.example.test"}
		}
		start := time.Now()
		out, code := ca.Lego(t, legoDir, 90*time.Second, append(base, args...)...)
		if code != 0 {
			t.Fatalf("lego %v: exit %d\n%s\npebble log:\n%s", args, code, out, ca.LogTail(2000))
		}
		t.Logf("lego %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}
	lego("--key-type", "ec256", "run")
	crt := filepath.Join(legoDir, "certificates", "mx1.example.test.crt")
	issuer := filepath.Join(legoDir, "certificates", "mx1.example.test.issuer.crt")
	caRec := "2 1 1 " + tlOpenSSLCertSPKI(t, issuer)
	leafRec := func() string { return "3 1 1 " + tlOpenSSLCertSPKI(t, crt) }
	first := leafRec()

	next := filepath.Join(dir, "next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	srv := tlStartServer(t, tlServerConfig{Reload: "200ms", Lines: []string{
		"tlsa mx1.example.test cert " + crt + " records 311,211 next " + next + " ttl 2 hold 3s"}})
	if got := tlMustQuery(t, srv.Addr, tlMX1); !slices.Equal(got.Records, tlSorted(caRec, first)) {
		t.Fatalf("lego's certificate: served %v, openssl computed %v", got.Records, tlSorted(caRec, first))
	}

	// Renewal with a new key nobody staged (lego's default). The CA's 2 1 1 has been published
	// for more than a TTL by then, so a sender holding the old RRset still authenticates the
	// new certificate through it (DANE-TA): the rollover is safe (RFC 7671 §8.1), whatever the
	// 3 1 1 says. (Without the wait the outcome would depend on how fast lego is.)
	time.Sleep(2500 * time.Millisecond) // > TTL 2
	lego("--key-type", "ec256", "renew", "--days", "9999", "--no-random-sleep")
	second := leafRec()
	if second == first {
		t.Fatal("lego renew kept the key; the test needs a new one")
	}
	got, took := tlWait(t, srv.Addr, tlMX1, 3*time.Second, "lego renew", func(x tlAnswer) bool { return x.Has(second) })
	t.Logf("lego renew: new TLSA served %v after lego exited; served %v", took.Round(time.Millisecond), got.Records)
	if !got.Has(first) || !got.Has(caRec) {
		t.Errorf("after lego renew: served %v, want the old %s held and the CA's %s", got.Records, first, caRec)
	}
	if st := srv.TLSAStatus(t, "mx1.example.test"); st.Unstaged {
		t.Errorf("lego renew with a fresh key under a CA record published a TTL ago: unstaged_key true, want false (warnings %q)", st.Warnings)
	}
	tlWait(t, srv.Addr, tlMX1, 6*time.Second, "end of hold-down", func(x tlAnswer) bool { return !x.Has(first) })

	// Staged renewal: make the next key and its CSR, stage the key, wait a TTL, renew from
	// the CSR.
	keyDir := filepath.Join(dir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(keyDir, "next.key")
	csrFile := filepath.Join(keyDir, "next.csr")
	out, code := tlRun(t, 20*time.Second, exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
		"-nodes", "-keyout", keyFile, "-out", csrFile, "-subj", "/CN=mx1.example.test", "-addext", "subjectAltName=DNS:mx1.example.test"))
	if code != 0 {
		t.Fatalf("openssl req: %s", out)
	}
	third := "3 1 1 " + tlOpenSSLKeySPKI(t, keyFile)
	csrPEM, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatal(err)
	}
	tlWriteAtomic(t, filepath.Join(next, "mx1.csr"), csrPEM)
	tlWait(t, srv.Addr, tlMX1, 2*time.Second, "staged CSR key", func(x tlAnswer) bool { return x.Has(third) })
	time.Sleep(2500 * time.Millisecond) // > TTL 2
	obs := tlObserve(srv.Addr, tlMX1, 10*time.Millisecond)
	lego("--csr", csrFile, "run")
	if got := leafRec(); got != third {
		t.Fatalf("lego run --csr wrote a certificate with %s, want the staged key %s", got, third)
	}
	tlWait(t, srv.Addr, tlMX1, 3*time.Second, "staged renewal", func(x tlAnswer) bool {
		return slices.Contains(srv.TLSAStatus(t, "mx1.example.test").Current, third)
	})
	time.Sleep(500 * time.Millisecond)
	list, _ := obs.Stop()
	for _, o := range list {
		if !o.A.Has(second) || !o.A.Has(third) || !o.A.Has(caRec) {
			t.Errorf("%s during the staged ACME renewal: served %v, want %s, %s and %s", o.At.Format("15:04:05.000"), o.A.Records, second, third, caRec)
			break
		}
	}
	if st := srv.TLSAStatus(t, "mx1.example.test"); st.Unstaged {
		t.Errorf("renewal with the staged key reported unstaged: %q", st.Warnings)
	}
}

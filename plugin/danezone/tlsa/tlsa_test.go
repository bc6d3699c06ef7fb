package tlsa

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/internal/peer"
)

// cert makes a certificate for name signed by parent (self-signed when parent is nil).
func cert(t *testing.T, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, notAfter time.Time, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, IsCA: isCA, BasicConstraintsValid: true}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, key *ecdsa.PrivateKey) {
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// openssl computes the TLSA data independently: SPKI or certificate DER, then the digest.
func openssl(t *testing.T, pemFile string, selector, matching int) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		peer.Absent(t, "openssl not installed")
	}
	extract := "openssl x509 -in " + pemFile + " -outform DER"
	if selector == 1 {
		extract = "openssl x509 -in " + pemFile + " -noout -pubkey | openssl pkey -pubin -outform DER"
	}
	digest := map[int]string{0: "xxd -p | tr -d '\\n'", 1: "openssl dgst -sha256 -r | cut -d' ' -f1", 2: "openssl dgst -sha512 -r | cut -d' ' -f1"}[matching]
	if matching == 0 {
		digest = "od -An -v -tx1 | tr -d ' \\n'"
	}
	out, err := exec.Command("sh", "-c", extract+" | "+digest).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func TestDataMatchesOpenSSL(t *testing.T) {
	dir := t.TempDir()
	leaf, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(90*24*time.Hour), false)
	f := filepath.Join(dir, "leaf.pem")
	writePEM(t, f, leaf)
	for sel := 0; sel <= 1; sel++ {
		for m := 0; m <= 2; m++ {
			got, err := Data(leaf, uint8(sel), uint8(m))
			if err != nil {
				t.Fatal(err)
			}
			if want := openssl(t, f, sel, m); got != want {
				t.Errorf("3 %d %d: got %s, openssl says %s", sel, m, got, want)
			}
		}
	}
}

func TestDANETA(t *testing.T) {
	ca, caKey := cert(t, "Lab CA", nil, nil, time.Now().Add(365*24*time.Hour), true)
	leaf, _ := cert(t, "mx1.example.test", ca, caKey, time.Now().Add(90*24*time.Hour), false)
	rrs, err := Records("_25._tcp.mx1.example.test.", 300, []*x509.Certificate{leaf, ca}, []Param{{2, 1, 1}, {3, 1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, ca)
	if !strings.Contains(rrs[0].String(), "2 1 1 "+openssl(t, caFile, 1, 1)) {
		t.Errorf("2 1 1 record %s is not the CA's SPKI digest", rrs[0])
	}
	if _, err := Records("x.", 300, []*x509.Certificate{leaf}, []Param{{2, 1, 1}}); err == nil || !strings.Contains(err.Error(), "needs the certificate that issued the leaf") {
		t.Errorf("2 1 1 without the CA: %v", err)
	}
}

func TestParseParam(t *testing.T) {
	for in, ok := range map[string]bool{"311": true, "3 1 1": true, "2-0-1": true, "312": true, "111": false, "321": false, "313": false, "31": false} {
		if _, err := ParseParam(in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestRollover walks a tracker through a staged renewal, an unstaged one, bad input and the
// hold-down, on a virtual clock.
func TestRollover(t *testing.T) {
	dir := t.TempDir()
	chainFile, nextFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "next.key")
	leaf1, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(90*24*time.Hour), false)
	writePEM(t, chainFile, leaf1)
	tr := NewTracker(Host{Name: "mx1.example.test", Source: File{chainFile}, TTL: 300, Next: nextFile})
	now := time.Now()
	ctx := context.Background()
	data := func(c *x509.Certificate) string { d, _ := Data(c, 1, 1); return "3 1 1 " + d }
	published := func() string {
		var s []string
		for _, rr := range tr.Records(now)["_25._tcp.mx1.example.test."] {
			s = append(s, strings.SplitN(rr.String(), "TLSA\t", 2)[1])
		}
		return strings.Join(s, " | ")
	}

	// No staged key file yet: an error, but the certificate's record is published.
	if _, err := tr.Update(ctx, now); err == nil || !strings.Contains(err.Error(), "next.key") {
		t.Fatalf("missing staged key: %v", err)
	}
	if p := published(); p != data(leaf1) {
		t.Fatalf("published %s", p)
	}
	// Stage the next key: published beside the current one.
	leaf2, key2 := cert(t, "mx1.example.test", nil, nil, time.Now().Add(90*24*time.Hour), false)
	writeKey(t, nextFile, key2)
	now = now.Add(time.Second)
	if changed, err := tr.Update(ctx, now); !changed || err != nil {
		t.Fatalf("staging: changed=%v err=%v", changed, err)
	}
	if p := published(); !strings.Contains(p, data(leaf1)) || !strings.Contains(p, data(leaf2)) {
		t.Fatalf("staged key not published: %s", p)
	}
	// Renew with the staged key well after one TTL: no warning; the old key is held.
	now = now.Add(10 * time.Minute)
	writePEM(t, chainFile, leaf2)
	tr.Update(ctx, now)
	st := tr.Status(now)
	if st.Unstaged || len(st.Held) != 1 || !strings.Contains(published(), data(leaf1)) {
		t.Fatalf("staged renewal: %+v", st)
	}
	// The hold-down is 2×TTL: at +599s the old key is still there, at +600s it is gone.
	now = now.Add(599 * time.Second)
	tr.Update(ctx, now)
	if !strings.Contains(published(), data(leaf1)) {
		t.Fatal("old key dropped before the hold-down ended")
	}
	now = now.Add(time.Second)
	tr.Update(ctx, now)
	if strings.Contains(published(), data(leaf1)) {
		t.Fatal("old key still published after the hold-down")
	}
	// Bad input keeps the last good records.
	os.WriteFile(chainFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644)
	now = now.Add(time.Second)
	if _, err := tr.Update(ctx, now); err == nil || !strings.Contains(err.Error(), "fullchain.pem") {
		t.Fatalf("bad PEM: %v", err)
	}
	expired, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(-time.Minute), false)
	writePEM(t, chainFile, expired)
	if _, err := tr.Update(ctx, now); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired certificate: %v", err)
	}
	if !strings.Contains(published(), data(leaf2)) {
		t.Fatal("last good record lost")
	}
	// Renew with a key that was never published: loud.
	leaf3, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(10*24*time.Hour), false)
	writePEM(t, chainFile, leaf3)
	now = now.Add(time.Second)
	tr.Update(ctx, now)
	st = tr.Status(now)
	if !st.Unstaged || !strings.Contains(strings.Join(st.Warnings, "\n"), "never published before use") {
		t.Fatalf("unstaged renewal not reported: %+v", st)
	}
	if !st.ExpiresSoon || !strings.Contains(strings.Join(st.Warnings, "\n"), "expires on") {
		t.Fatalf("expiry in 10 days not reported: %+v", st)
	}
	if p := published(); !strings.Contains(p, data(leaf3)) || !strings.Contains(p, data(leaf2)) {
		t.Fatalf("after unstaged renewal: %s", p)
	}
	// State survives a restart.
	statePath := filepath.Join(dir, "state.json")
	if err := SaveState(statePath, []*Tracker{tr}); err != nil {
		t.Fatal(err)
	}
	tr2 := NewTracker(tr.Host)
	if err := LoadState(statePath, []*Tracker{tr2}); err != nil || len(tr2.published) != len(tr.published) {
		t.Fatalf("state: %v %d/%d", err, len(tr2.published), len(tr.published))
	}
}

func TestStagedKeyForms(t *testing.T) {
	dir := t.TempDir()
	leaf, key := cert(t, "mx1.example.test", nil, nil, time.Now().Add(time.Hour), false)
	want, _ := Digest(leaf.RawSubjectPublicKeyInfo, 1)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ec, _ := x509.MarshalECPrivateKey(key)
	files := map[string][]byte{
		"pub.pem":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"ec.pem":   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ec}),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		spkis, err := StagedKeys(p)
		if err != nil || len(spkis) != 1 {
			t.Fatalf("%s: %v", name, err)
		}
		if got, _ := Digest(spkis[0], 1); got != want {
			t.Errorf("%s: SPKI digest differs", name)
		}
	}
	if spkis, err := StagedKeys(dir); err != nil || len(spkis) != 3 {
		t.Errorf("directory: %d keys, %v", len(spkis), err)
	}
	os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("hello"), 0o600)
	if _, err := StagedKeys(dir); err == nil || !strings.Contains(err.Error(), "junk.pem") {
		t.Errorf("junk file: %v", err)
	}
}

// TestUnstagedJudgement: a rollback to a withdrawn key is unsafe; a renewal whose DANE-EE key
// was staged is safe even when its DANE-TA record changes; a renewal while down is judged
// from the saved state.
func TestUnstagedJudgement(t *testing.T) {
	dir := t.TempDir()
	chainFile, nextFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "next.key")
	ca1, ca1Key := cert(t, "CA 1", nil, nil, time.Now().Add(365*24*time.Hour), true)
	ca2, ca2Key := cert(t, "CA 2", nil, nil, time.Now().Add(365*24*time.Hour), true)
	leaf1, _ := cert(t, "mx1.example.test", ca1, ca1Key, time.Now().Add(90*24*time.Hour), false)
	writePEM(t, chainFile, leaf1, ca1)
	tr := NewTracker(Host{Name: "mx1.example.test", Source: File{chainFile}, TTL: 60, Params: []Param{{3, 1, 1}, {2, 1, 1}}})
	now := time.Now()
	ctx := context.Background()
	tr.Update(ctx, now)
	// Stage a key, renew with it under another CA: 3 1 1 was published ahead, so it is safe.
	_, key2 := cert(t, "x", nil, nil, time.Now().Add(time.Hour), false)
	writeKey(t, nextFile, key2)
	tr.Next = nextFile
	now = now.Add(time.Second)
	tr.Update(ctx, now)
	now = now.Add(2 * time.Minute)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mx1.example.test"}, DNSNames: []string{"mx1.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca2, &key2.PublicKey, ca2Key)
	leaf2, _ := x509.ParseCertificate(der)
	writePEM(t, chainFile, leaf2, ca2)
	tr.Update(ctx, now)
	if st := tr.Status(now); st.Unstaged {
		t.Fatalf("staged key under a new CA reported unstaged: %v", st.Warnings)
	}
	// Roll back to the first certificate after its records were withdrawn: unsafe.
	tr.Next = ""
	now = now.Add(time.Hour)
	tr.Update(ctx, now)
	writePEM(t, chainFile, leaf1, ca1)
	now = now.Add(time.Second)
	tr.Update(ctx, now)
	if st := tr.Status(now); !st.Unstaged {
		t.Fatal("rollback to a withdrawn key not reported")
	}
	// Renewed while down: a tracker restored from state judges its first certificate. (With
	// 2 1 1 the CA's record, published long ago, would still match: only DANE-EE here.)
	state := filepath.Join(dir, "state.json")
	SaveState(state, []*Tracker{tr})
	leaf3, _ := cert(t, "mx1.example.test", ca1, ca1Key, time.Now().Add(90*24*time.Hour), false)
	writePEM(t, chainFile, leaf3, ca1)
	h := tr.Host
	h.Params = DefaultParams
	tr2 := NewTracker(h)
	LoadState(state, []*Tracker{tr2})
	now = now.Add(time.Hour)
	tr2.Update(ctx, now)
	if st := tr2.Status(now); !st.Unstaged {
		t.Fatal("renewal while down not reported after restart")
	}
}

// TestStateAcrossRestart: the state keeps the current and held records, so that a
// certificate renewed while nothing ran is seen as a change (the old record held) after a
// restart; the first format of the state file is still read.
func TestStateAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	chainFile, stateFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "state.json")
	leaf1, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(90*24*time.Hour), false)
	writePEM(t, chainFile, leaf1)
	data := func(c *x509.Certificate) string { d, _ := Data(c, 1, 1); return "3 1 1 " + d }
	ctx, now := context.Background(), time.Now()
	h := Host{Name: "mx1.example.test", Source: File{chainFile}, TTL: 300}
	tr := NewTracker(h)
	if _, err := tr.Update(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(stateFile, []*Tracker{tr}); err != nil {
		t.Fatal(err)
	}
	// Renewed while down.
	leaf2, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(90*24*time.Hour), false)
	writePEM(t, chainFile, leaf2)
	now = now.Add(time.Hour)
	tr2 := NewTracker(h)
	if err := LoadState(stateFile, []*Tracker{tr2}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr2.Update(ctx, now); err != nil {
		t.Fatal(err)
	}
	st := tr2.Status(now)
	if len(st.Current) != 1 || st.Current[0] != data(leaf2) || len(st.Held) != 1 || !strings.HasPrefix(st.Held[0], data(leaf1)) || !st.Unstaged {
		t.Fatalf("after a restart with a renewed certificate: %+v", st)
	}
	// The held record survives another restart, and ends at its time.
	if err := SaveState(stateFile, []*Tracker{tr2}); err != nil {
		t.Fatal(err)
	}
	tr3 := NewTracker(h)
	if err := LoadState(stateFile, []*Tracker{tr3}); err != nil {
		t.Fatal(err)
	}
	if n := len(tr3.Records(now)["_25._tcp.mx1.example.test."]); n != 2 {
		t.Errorf("restored: %d records, want current and held", n)
	}
	later := now.Add(601 * time.Second) // past the default hold, 2×TTL
	tr3.Update(ctx, later)
	if n := len(tr3.Records(later)["_25._tcp.mx1.example.test."]); n != 1 {
		t.Errorf("after the hold-down: %d records, want 1", n)
	}
	// The first format: host -> record -> first published.
	old := `{"mx1.example.test.": {"` + data(leaf2) + `": "2026-01-01T00:00:00Z"}}`
	os.WriteFile(stateFile, []byte(old), 0o600)
	tr4 := NewTracker(h)
	if err := LoadState(stateFile, []*Tracker{tr4}); err != nil {
		t.Fatal(err)
	}
	if at, ok := tr4.Published(data(leaf2)); !ok || at.Year() != 2026 {
		t.Errorf("first format: published %v %v", at, ok)
	}
	os.WriteFile(stateFile, []byte(`{"version": 3, "hosts": {}}`), 0o600)
	if err := LoadState(stateFile, []*Tracker{NewTracker(h)}); err == nil || !strings.Contains(err.Error(), "state.json") {
		t.Errorf("unknown version: %v", err)
	}
}

// TestParsePEMTruncated: a chain caught half-written is an error naming the file and block,
// not a shorter chain.
func TestParsePEMTruncated(t *testing.T) {
	leaf, _ := cert(t, "mx1.example.test", nil, nil, time.Now().Add(time.Hour), false)
	ca, _ := cert(t, "ca", nil, nil, time.Now().Add(time.Hour), true)
	full := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	if c, err := ParsePEM("full.pem", full); err != nil || len(c) != 2 {
		t.Fatalf("whole file: %d certificates, %v", len(c), err)
	}
	for _, cut := range []int{len(full) - 10, len(full)/2 + 20, 40} {
		_, err := ParsePEM("full.pem", full[:cut])
		if err == nil || !strings.Contains(err.Error(), "full.pem") || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}

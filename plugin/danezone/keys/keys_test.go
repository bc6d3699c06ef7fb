package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

const zone = "example.test."

var testAlgs = []struct {
	name string
	alg  uint8
}{
	{"ECDSAP256SHA256", dns.ECDSAP256SHA256},
	{"ED25519", dns.ED25519},
	{"RSASHA256", dns.RSASHA256},
}

// signVerify signs a small A RRset with k.Signer and verifies the signature
// against dnskey.
func signVerify(t *testing.T, k *Key, dnskey *dns.DNSKEY) {
	t.Helper()
	a, err := dns.NewRR("www." + zone + " 300 IN A 192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := dns.NewRR("www." + zone + " 300 IN A 192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	rrset := []dns.RR{a, b}
	now := time.Now()
	sig := &dns.RRSIG{
		Inception:  uint32(now.Add(-time.Hour).Unix()),
		Expiration: uint32(now.Add(time.Hour).Unix()),
		KeyTag:     k.Tag,
		SignerName: zone,
		Algorithm:  dnskey.Algorithm,
	}
	if err := sig.Sign(k.Signer, rrset); err != nil {
		t.Fatalf("sign with %s: %v", k.File, err)
	}
	if err := sig.Verify(dnskey, rrset); err != nil {
		t.Fatalf("verify with %s: %v", k.File, err)
	}
	if !sig.ValidityPeriod(now) {
		t.Fatal("signature not valid now")
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func privPath(keyFile string) string {
	return strings.TrimSuffix(keyFile, ".key") + ".private"
}

func TestGenerateLoadSign(t *testing.T) {
	for _, tc := range testAlgs {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state", "keys")
			k, err := Generate(dir, "Example.TEST", tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if !k.IsKSK() || k.DNSKEY.Flags != 257 {
				t.Errorf("flags = %d, want 257", k.DNSKEY.Flags)
			}
			if k.Tag != k.DNSKEY.KeyTag() {
				t.Errorf("Tag %d != KeyTag %d", k.Tag, k.DNSKEY.KeyTag())
			}
			wantBase := fmt.Sprintf("Kexample.test.+%03d+", tc.alg)
			if b := filepath.Base(k.File); !strings.HasPrefix(b, wantBase) || !strings.HasSuffix(b, ".key") {
				t.Errorf("file name %s, want %s<tag>.key", b, wantBase)
			}
			if m := mode(t, dir); m != 0o700 {
				t.Errorf("dir mode %o, want 700", m)
			}
			if m := mode(t, k.File); m != 0o644 {
				t.Errorf(".key mode %o, want 644", m)
			}
			if m := mode(t, privPath(k.File)); m != 0o600 {
				t.Errorf(".private mode %o, want 600", m)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("dir has %d entries, want 2 (no temp files left)", len(ents))
			}

			priv, err := os.ReadFile(privPath(k.File))
			if err != nil {
				t.Fatal(err)
			}
			algLine := fmt.Sprintf("Algorithm: %d (%s)", tc.alg, dns.AlgorithmToString[tc.alg])
			for _, re := range []string{
				`(?m)^Private-key-format: v1\.3$`,
				`(?m)^` + regexp.QuoteMeta(algLine) + `$`,
				`(?m)^Created: \d{14}$`,
				`(?m)^Publish: \d{14}$`,
				`(?m)^Activate: \d{14}$`,
			} {
				if !regexp.MustCompile(re).Match(priv) {
					t.Errorf(".private does not match %s:\n%s", re, priv)
				}
			}

			set, err := Load(dir, "example.test")
			if err != nil {
				t.Fatal(err)
			}
			if set.Zone != zone || len(set.Keys) != 1 {
				t.Fatalf("Load: zone %q, %d keys", set.Zone, len(set.Keys))
			}
			l := set.Keys[0]
			if l.DNSKEY.String() != k.DNSKEY.String() {
				t.Errorf("loaded DNSKEY\n%s\nwant\n%s", l.DNSKEY, k.DNSKEY)
			}
			if l.DNSKEY.Hdr.Ttl != 3600 || l.DNSKEY.Hdr.Name != zone {
				t.Errorf("loaded header %v", l.DNSKEY.Hdr)
			}
			if l.Tag != k.Tag || l.File != k.File {
				t.Errorf("loaded tag/file %d %s, want %d %s", l.Tag, l.File, k.Tag, k.File)
			}
			signVerify(t, l, l.DNSKEY)
			signVerify(t, k, l.DNSKEY)
			if len(set.KSKs()) != 1 || len(set.ZSKs()) != 1 || set.ZSKs()[0] != l {
				t.Errorf("CSK: KSKs %d, ZSKs %d", len(set.KSKs()), len(set.ZSKs()))
			}
		})
	}
}

func TestGenerateUnsupported(t *testing.T) {
	_, err := Generate(t.TempDir(), zone, dns.ECDSAP384SHA384)
	if err == nil || !strings.Contains(err.Error(), "ed25519") {
		t.Fatalf("err = %v, want an error listing valid algorithms", err)
	}
	if _, err := Generate(t.TempDir(), "bad..zone", dns.ED25519); err == nil {
		t.Fatal("invalid zone accepted")
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint8
	}{
		{"ecdsap256sha256", 13}, {"ECDSAP256SHA256", 13}, {"ecdsa", 13}, {"13", 13},
		{"ed25519", 15}, {"Ed25519", 15}, {"15", 15},
		{"rsasha256", 8}, {"RSASHA256", 8}, {"8", 8}, {" ecdsa ", 13},
	} {
		got, err := ParseAlgorithm(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseAlgorithm(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "rsasha1", "5", "14", "ecdsap384sha384", "ed448"} {
		_, err := ParseAlgorithm(in)
		if err == nil {
			t.Errorf("ParseAlgorithm(%q) succeeded", in)
			continue
		}
		for _, name := range []string{"ecdsap256sha256", "ed25519", "rsasha256"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not list %s", err, name)
			}
		}
	}
}

func TestKSKZSKSplit(t *testing.T) {
	dir := t.TempDir()
	ksk, err := Generate(dir, zone, dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	zsk, err := generate(dir, zone, dns.ED25519, dns.ZONE, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if zsk.IsKSK() {
		t.Fatal("256 key reports IsKSK")
	}
	set, err := Load(dir, zone)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	if k := set.KSKs(); len(k) != 1 || k[0].Tag != ksk.Tag || !k[0].IsKSK() {
		t.Errorf("KSKs = %v", k)
	}
	if k := set.ZSKs(); len(k) != 1 || k[0].Tag != zsk.Tag || k[0].IsKSK() {
		t.Errorf("ZSKs = %v", k)
	}
	for _, k := range set.Keys {
		signVerify(t, k, k.DNSKEY)
	}
	if got := set.DNSKEYs(); len(got) != 2 {
		t.Errorf("DNSKEYs: %d", len(got))
	} else {
		// Fresh copies: changing them must not change the set.
		got[0].Header().Ttl = 1
		got[0].(*dns.DNSKEY).Flags = 0
		if set.Keys[0].DNSKEY.Hdr.Ttl != 3600 || set.Keys[0].DNSKEY.Flags == 0 {
			t.Error("DNSKEYs returned shared records")
		}
	}
	ds := set.DS(dns.SHA256)
	if len(ds) != 1 || ds[0].KeyTag != ksk.Tag || ds[0].DigestType != dns.SHA256 || ds[0].Hdr.Name != zone {
		t.Errorf("DS = %v", ds)
	}
	if ds := set.DS(dns.SHA384); len(ds) != 1 || ds[0].DigestType != dns.SHA384 || len(ds[0].Digest) != 96 {
		t.Errorf("DS(SHA384) = %v", ds)
	}
	if ds := set.DS(200); len(ds) != 0 {
		t.Errorf("DS(200) = %v", ds)
	}
	cds := set.CDS()
	if len(cds) != 1 {
		t.Fatalf("CDS = %v", cds)
	}
	if c, ok := cds[0].(*dns.CDS); !ok || c.Hdr.Rrtype != dns.TypeCDS || c.Hdr.Name != zone ||
		c.KeyTag != ksk.Tag || c.DigestType != dns.SHA256 || c.Digest != ds[0].Digest {
		t.Errorf("CDS = %v", cds[0])
	}
	cdnskey := set.CDNSKEY()
	if len(cdnskey) != 1 {
		t.Fatalf("CDNSKEY = %v", cdnskey)
	}
	if c, ok := cdnskey[0].(*dns.CDNSKEY); !ok || c.Hdr.Rrtype != dns.TypeCDNSKEY || c.Hdr.Name != zone ||
		c.Flags != 257 || c.PublicKey != ksk.DNSKEY.PublicKey {
		t.Errorf("CDNSKEY = %v", cdnskey[0])
	}
	// CDNSKEY must not alias the key's DNSKEY.
	cdnskey[0].(*dns.CDNSKEY).Flags = 0
	if ksk := set.KSKs()[0]; ksk.DNSKEY.Flags != 257 {
		t.Error("CDNSKEY shares the DNSKEY")
	}
}

func TestOnlyZSKs(t *testing.T) {
	dir := t.TempDir()
	if _, err := generate(dir, zone, dns.ED25519, dns.ZONE, time.Now()); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, zone)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.KSKs()) != 1 || len(set.ZSKs()) != 1 {
		t.Errorf("KSKs %d ZSKs %d, want the single key in both", len(set.KSKs()), len(set.ZSKs()))
	}
}

// rewrite applies f to the contents of path.
func rewrite(t *testing.T, path string, f func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(f(string(b))), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		alg     uint8
		corrupt func(t *testing.T, dir string, k *Key) (file string)
		want    string
	}{
		{"private missing", dns.ECDSAP256SHA256, func(t *testing.T, dir string, k *Key) string {
			os.Remove(privPath(k.File))
			return privPath(k.File)
		}, ".private missing"},
		{"no PrivateKey", dns.ECDSAP256SHA256, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, privPath(k.File), func(s string) string {
				return regexp.MustCompile(`(?m)^PrivateKey:.*\n`).ReplaceAllString(s, "")
			})
			return privPath(k.File)
		}, "missing PrivateKey"},
		{"no Prime1", dns.RSASHA256, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, privPath(k.File), func(s string) string {
				return regexp.MustCompile(`(?m)^Prime1:.*\n`).ReplaceAllString(s, "")
			})
			return privPath(k.File)
		}, "missing Prime1"},
		{"no format", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, privPath(k.File), func(s string) string {
				return strings.Replace(s, "Private-key-format: v1.3\n", "", 1)
			})
			return privPath(k.File)
		}, "missing Private-key-format"},
		{"owner", dns.ECDSAP256SHA256, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, k.File, func(s string) string {
				return strings.Replace(s, "\nexample.test. IN", "\nother.test. IN", 1)
			})
			return k.File
		}, "owner other.test. is not the zone"},
		{"private algorithm", dns.ECDSAP256SHA256, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, privPath(k.File), func(s string) string {
				return strings.Replace(s, "Algorithm: 13 (ECDSAP256SHA256)", "Algorithm: 14 (ECDSAP384SHA384)", 1)
			})
			return privPath(k.File)
		}, "algorithm mismatch"},
		{"file name algorithm", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			nk := strings.Replace(k.File, "+015+", "+013+", 1)
			os.Rename(k.File, nk)
			os.Rename(privPath(k.File), privPath(nk))
			return nk
		}, "algorithm mismatch"},
		{"file name tag", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			base, _ := BaseName(zone, dns.ED25519, k.Tag+1)
			nk := filepath.Join(dir, base+".key")
			os.Rename(k.File, nk)
			os.Rename(privPath(k.File), privPath(nk))
			return nk
		}, "key tag mismatch"},
		{"not a DNSKEY", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			os.WriteFile(k.File, []byte("example.test. IN A 192.0.2.1\n"), 0o644)
			return k.File
		}, "want DNSKEY"},
		{"empty key file", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			os.WriteFile(k.File, []byte("; nothing here\n"), 0o644)
			return k.File
		}, "no DNSKEY"},
		{"garbage key file", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			os.WriteFile(k.File, []byte("example.test. IN DNSKEY 257 3 bogus\n"), 0o644)
			return k.File
		}, ""},
		{"two DNSKEYs", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, k.File, func(s string) string { return s + k.DNSKEY.String() + "\n" })
			return k.File
		}, "more than one DNSKEY"},
		{"no zone flag", dns.ED25519, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, k.File, func(s string) string { return strings.Replace(s, "DNSKEY 257 ", "DNSKEY 1 ", 1) })
			return k.File
		}, "Zone Key"},
		{"ecdsa private mismatch", dns.ECDSAP256SHA256, swapPrivate(dns.ECDSAP256SHA256), "does not match"},
		{"ed25519 private mismatch", dns.ED25519, swapPrivate(dns.ED25519), "does not match"},
		{"rsa private mismatch", dns.RSASHA256, swapPrivate(dns.RSASHA256), "does not match"},
		{"rsa primes mismatch", dns.RSASHA256, func(t *testing.T, dir string, k *Key) string {
			// Keep Modulus, replace the primes with another key's.
			other, err := generate(t.TempDir(), zone, dns.RSASHA256, dns.ZONE|dns.SEP, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			ob, _ := os.ReadFile(privPath(other.File))
			of := privateFields(ob)
			rewrite(t, privPath(k.File), func(s string) string {
				for _, f := range []string{"Prime1", "Prime2", "PrivateExponent"} {
					s = regexp.MustCompile(`(?m)^`+f+`: .*$`).ReplaceAllString(s, f+": "+of[strings.ToLower(f)])
				}
				return s
			})
			return privPath(k.File)
		}, "invalid RSA private key"},
		{"bad base64", dns.ECDSAP256SHA256, func(t *testing.T, dir string, k *Key) string {
			rewrite(t, privPath(k.File), func(s string) string {
				return regexp.MustCompile(`(?m)^PrivateKey: .*$`).ReplaceAllString(s, "PrivateKey: !!!")
			})
			return privPath(k.File)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := Generate(dir, zone, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			file := tc.corrupt(t, dir, k)
			set, err := Load(dir, zone)
			if err == nil {
				t.Fatalf("Load succeeded with %d keys", len(set.Keys))
			}
			if !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Errorf("error %q does not name %s", err, filepath.Base(file))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// swapPrivate replaces the PrivateKey (or RSA) fields of k's .private file
// with those of a fresh key of the same algorithm.
func swapPrivate(alg uint8) func(t *testing.T, dir string, k *Key) string {
	return func(t *testing.T, dir string, k *Key) string {
		other, err := Generate(t.TempDir(), zone, alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(privPath(other.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(privPath(k.File), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return privPath(k.File)
	}
}

func TestLoadIgnoresUnrelated(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate(dir, zone, dns.ED25519)
	if err != nil {
		t.Fatal(err)
	}
	// Other zones' keys, including one whose name extends ours.
	for _, z := range []string{"other.test.", "sub.example.test.", "test.", "xexample.test."} {
		if _, err := Generate(dir, z, dns.ED25519); err != nil {
			t.Fatal(err)
		}
	}
	base := strings.TrimSuffix(filepath.Base(k.File), ".key")
	for _, name := range []string{
		"README", "dsset-example.test.", base + ".state", base + ".key~", base + ".key.bak",
		"Kexample.test.+013+1.key", "Kexample.test+013+12345.key", "Kexample.test.+abc+12345.key",
		"Kexample.test.+013+12345.private", // orphan .private
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "Kexample.test.+013+54321.key"), 0o700); err != nil {
		t.Fatal(err)
	}
	set, err := Load(dir, zone)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Tag != k.Tag {
		t.Fatalf("Load returned %d keys", len(set.Keys))
	}
}

func TestLoadEmpty(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
		set, err := Load(dir, zone)
		if err != nil {
			t.Fatal(err)
		}
		if set == nil || set.Zone != zone || len(set.Keys) != 0 {
			t.Fatalf("Load(%s) = %+v", dir, set)
		}
		if len(set.KSKs()) != 0 || len(set.ZSKs()) != 0 || len(set.DS(dns.SHA256)) != 0 ||
			len(set.CDS()) != 0 || len(set.CDNSKEY()) != 0 || len(set.DNSKEYs()) != 0 {
			t.Error("empty set yields records")
		}
		if _, err := WriteDSSet(dir, set); err == nil {
			t.Error("WriteDSSet with no KSKs succeeded")
		}
	}
}

func TestLoadCaseInsensitive(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate(dir, zone, dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	// Upper-case file name and owner.
	nk := filepath.Join(dir, strings.Replace(filepath.Base(k.File), "Kexample.test.", "KExample.TEST.", 1))
	if err := os.Rename(k.File, nk); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(privPath(k.File), privPath(nk)); err != nil {
		t.Fatal(err)
	}
	rewrite(t, nk, func(s string) string { return strings.Replace(s, "\nexample.test. IN", "\nEXAMPLE.test. IN", 1) })
	for _, z := range []string{"example.test", "EXAMPLE.TEST.", "Example.Test"} {
		set, err := Load(dir, z)
		if err != nil {
			t.Fatal(err)
		}
		if len(set.Keys) != 1 || set.Zone != zone || set.Keys[0].DNSKEY.Hdr.Name != zone {
			t.Fatalf("Load(%q): %+v", z, set)
		}
	}
}

func TestLoadKeyFileVariants(t *testing.T) {
	// .key files as BIND may write them: comments, explicit TTL, relative
	// owner, split base64.
	dir := t.TempDir()
	k, err := Generate(dir, zone, dns.ECDSAP256SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pk := k.DNSKEY.PublicKey
	for _, tc := range []struct {
		text string
		ttl  uint32
	}{
		{"; comment\n;another\nexample.test. 300 IN DNSKEY 257 3 13 " + pk[:20] + " " + pk[20:] + " ; trailing\n", 300},
		{"@ IN DNSKEY 257 3 13 ( " + pk + " )\n", 3600},
		{"example.test. DNSKEY 257 3 13 " + pk + "\n", 3600},
		{"$TTL 60\nexample.test. IN DNSKEY 257 3 13 " + pk + "\n", 60},
	} {
		if err := os.WriteFile(k.File, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		set, err := Load(dir, zone)
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		if got := set.Keys[0].DNSKEY; got.Hdr.Ttl != tc.ttl || got.PublicKey != pk || got.Hdr.Name != zone {
			t.Errorf("%q: got %v", tc.text, got)
		}
	}
}

func TestFileNameText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"example.test", "example.test."},
		{"Example.TEST.", "example.test."},
		{".", "."},
		{"a-b_c.test", "a-b_c.test."},
		{`Ex_a*m/p\.le.TEST`, "ex_a%2Am%2Fp%2Ele.test."},
	} {
		got, err := FileNameText(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("FileNameText(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if b, _ := BaseName("example.test", 13, 42); b != "Kexample.test.+013+00042" {
		t.Errorf("BaseName = %q", b)
	}
	if n, _ := DSSetName("Example.test"); n != "dsset-example.test." {
		t.Errorf("DSSetName = %q", n)
	}
}

// wireName encodes a lowercase FQDN in uncompressed wire format, by hand.
func wireName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(strings.TrimSuffix(strings.ToLower(name), "."), ".") {
		if l == "" {
			continue
		}
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

// independentDigest computes the SHA-256 DS digest of RFC 4034 §5.1.4:
// digest = SHA-256(canonical owner name | DNSKEY RDATA).
func independentDigest(t *testing.T, owner string, flags uint16, protocol, alg uint8, pubB64 string) string {
	t.Helper()
	pub, err := base64.StdEncoding.DecodeString(pubB64)
	if err != nil {
		t.Fatal(err)
	}
	var rdata []byte
	rdata = binary.BigEndian.AppendUint16(rdata, flags)
	rdata = append(rdata, protocol, alg)
	rdata = append(rdata, pub...)
	h := sha256.New()
	h.Write(wireName(owner))
	h.Write(rdata)
	return hex.EncodeToString(h.Sum(nil))
}

func TestDSDigest(t *testing.T) {
	for _, tc := range []struct {
		name, rr string
		want     string // published value, if any
		tag      uint16
	}{
		{
			// RFC 4509 §2.3 example.
			name: "RFC 4509",
			rr: "dskey.example.com. 86400 IN DNSKEY 256 3 5 AQOeiiR0GOMYkDshWoSKz9Xzfw" +
				"Jr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvx" +
				"egXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
			want: "d4b7d520e7bb5f0f67674a0cceb1e3e0614b93c4f9e99b8383f6a1e4469da50a",
			tag:  60485,
		},
		{
			name: "ECDSA KSK, mixed-case owner",
			rr:   "Example.TEST. IN DNSKEY 257 3 13 UmorfdFuTG/oqkBSQEIIXWL/9A9GZgWpXKtpjEVM3gMiTSf+Rsa0vLYA sMVuuzGItAiaFvcxw33gGZl3Hqa+Zg==",
			tag:  19036,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := dns.NewRR(tc.rr)
			if err != nil {
				t.Fatal(err)
			}
			k := rr.(*dns.DNSKEY)
			set := &Set{Zone: dns.CanonicalName(k.Hdr.Name), Keys: []*Key{{DNSKEY: k, Tag: k.KeyTag()}}}
			ds := set.DS(dns.SHA256)
			if len(ds) != 1 {
				t.Fatalf("DS = %v", ds)
			}
			want := independentDigest(t, k.Hdr.Name, k.Flags, k.Protocol, k.Algorithm, k.PublicKey)
			if tc.want != "" && want != tc.want {
				t.Fatalf("test's own digest %s disagrees with published %s", want, tc.want)
			}
			if !strings.EqualFold(ds[0].Digest, want) {
				t.Errorf("digest %s, want %s", ds[0].Digest, want)
			}
			if ds[0].KeyTag != tc.tag || ds[0].Algorithm != k.Algorithm || ds[0].DigestType != dns.SHA256 {
				t.Errorf("DS = %v", ds[0])
			}
			cds := set.CDS()[0].(*dns.CDS)
			if !strings.EqualFold(cds.Digest, want) {
				t.Errorf("CDS digest %s, want %s", cds.Digest, want)
			}
		})
	}
}

func TestWriteDSSet(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir, zone, dns.ECDSAP256SHA256); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir, zone, dns.ED25519); err != nil { // second KSK (rollover)
		t.Fatal(err)
	}
	if _, err := generate(dir, zone, dns.ED25519, dns.ZONE, time.Now()); err != nil { // a ZSK: no DS
		t.Fatal(err)
	}
	set, err := Load(dir, zone)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for range 2 { // the second write replaces the first
		path, err := WriteDSSet(out, set)
		if err != nil {
			t.Fatal(err)
		}
		if path != filepath.Join(out, "dsset-example.test.") {
			t.Errorf("path = %s", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		want := set.DS(dns.SHA256)
		if len(lines) != 2 || len(want) != 2 {
			t.Fatalf("dsset:\n%s", b)
		}
		for i, l := range lines {
			rr, err := dns.NewRR(l)
			if err != nil {
				t.Fatal(err)
			}
			if rr.String() != want[i].String() {
				t.Errorf("line %d: %s, want %s", i, rr, want[i])
			}
		}
		if m := mode(t, path); m != 0o644 {
			t.Errorf("mode %o", m)
		}
	}
	if ents, _ := os.ReadDir(out); len(ents) != 1 {
		t.Errorf("%d files in out dir, want 1", len(ents))
	}
}

func TestLoadOrGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	set, gen, err := LoadOrGenerate(dir, "example.test", dns.ED25519)
	if err != nil || !gen || len(set.Keys) != 1 || set.Zone != zone {
		t.Fatalf("first: %+v %v %v", set, gen, err)
	}
	set2, gen, err := LoadOrGenerate(dir, "EXAMPLE.test.", dns.ECDSAP256SHA256)
	if err != nil || gen || len(set2.Keys) != 1 || set2.Keys[0].Tag != set.Keys[0].Tag {
		t.Fatalf("second: %+v %v %v", set2, gen, err)
	}
	signVerify(t, set2.Keys[0], set.Keys[0].DNSKEY)
	if _, _, err := LoadOrGenerate(dir, zone, 99); err != nil {
		t.Errorf("existing keys, bad alg: %v", err) // no generation needed
	}
	if _, _, err := LoadOrGenerate(t.TempDir(), zone, 99); err == nil {
		t.Error("generation with bad alg succeeded")
	}
}

func TestConcurrentLoadOrGenerate(t *testing.T) {
	dir := t.TempDir()
	done := make(chan uint16)
	for range 4 {
		go func() {
			set, _, err := LoadOrGenerate(dir, zone, dns.ED25519)
			if err != nil || len(set.Keys) != 1 {
				t.Error(err)
				done <- 0
				return
			}
			done <- set.Keys[0].Tag
		}()
	}
	first := <-done
	for range 3 {
		if tag := <-done; tag != first {
			t.Errorf("tags %d and %d: more than one key generated", first, tag)
		}
	}
}

// BIND interoperability, run when the BIND tools are installed.

func bindTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		peer.Absent(t, name+" not installed")
	}
	return p
}

func bindDS(t *testing.T, tool, keyFile string) *dns.DS {
	t.Helper()
	out, err := exec.Command(tool, "-2", keyFile).CombinedOutput()
	if err != nil {
		t.Fatalf("dnssec-dsfromkey: %v\n%s", err, out)
	}
	rr, err := dns.NewRR(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	return rr.(*dns.DS)
}

func sameDS(t *testing.T, got, want *dns.DS) {
	t.Helper()
	if got.KeyTag != want.KeyTag || got.Algorithm != want.Algorithm || got.DigestType != want.DigestType ||
		!strings.EqualFold(got.Digest, want.Digest) || !strings.EqualFold(got.Hdr.Name, want.Hdr.Name) {
		t.Errorf("DS\n%s\nwant (BIND)\n%s", got, want)
	}
}

func TestDSMatchesDsfromkey(t *testing.T) {
	tool := bindTool(t, "dnssec-dsfromkey")
	for _, tc := range testAlgs {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k, err := Generate(dir, zone, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			set, err := Load(dir, zone)
			if err != nil {
				t.Fatal(err)
			}
			sameDS(t, set.DS(dns.SHA256)[0], bindDS(t, tool, k.File))
			// And from our dsset file.
			path, err := WriteDSSet(dir, set)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			rr, err := dns.NewRR(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			sameDS(t, rr.(*dns.DS), bindDS(t, tool, k.File))
		})
	}
}

func TestLoadDnssecKeygen(t *testing.T) {
	keygen := bindTool(t, "dnssec-keygen")
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(keygen, append(args, "-K", dir, "example.test")...)
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("dnssec-keygen %v: %v\n%s", args, err, stderr)
		}
		return filepath.Join(dir, strings.TrimSpace(string(out))+".key")
	}
	kskFile := run("-a", "ECDSAP256SHA256", "-f", "KSK")
	zskFile := run("-a", "ED25519", "-L", "300")
	rsaFile := run("-a", "RSASHA256", "-b", "2048")

	set, err := Load(dir, zone)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 {
		t.Fatalf("%d keys", len(set.Keys))
	}
	byFile := map[string]*Key{}
	for _, k := range set.Keys {
		byFile[k.File] = k
		signVerify(t, k, k.DNSKEY)
	}
	ksk := byFile[kskFile]
	if ksk == nil || !ksk.IsKSK() || ksk.DNSKEY.Hdr.Ttl != 3600 {
		t.Fatalf("KSK %s: %+v", kskFile, ksk)
	}
	if z := byFile[zskFile]; z == nil || z.IsKSK() || z.DNSKEY.Hdr.Ttl != 300 {
		t.Fatalf("ZSK %s: %+v", zskFile, z)
	}
	if byFile[rsaFile] == nil {
		t.Fatalf("RSA key %s not loaded", rsaFile)
	}
	if k := set.KSKs(); len(k) != 1 || k[0] != ksk {
		t.Errorf("KSKs = %v", k)
	}
	if len(set.ZSKs()) != 2 {
		t.Errorf("ZSKs = %v", set.ZSKs())
	}
	want := independentDigest(t, zone, ksk.DNSKEY.Flags, 3, 13, ksk.DNSKEY.PublicKey)
	if ds := set.DS(dns.SHA256); len(ds) != 1 || !strings.EqualFold(ds[0].Digest, want) {
		t.Errorf("DS = %v, want digest %s", ds, want)
	}
	if tool, err := exec.LookPath("dnssec-dsfromkey"); err == nil {
		sameDS(t, set.DS(dns.SHA256)[0], bindDS(t, tool, kskFile))
	}
}

func TestBINDSignsWithOurKeys(t *testing.T) {
	// dnssec-signzone must be able to read our .key and .private files, and
	// dnssec-verify must accept the result.
	signzone := bindTool(t, "dnssec-signzone")
	verify := bindTool(t, "dnssec-verify")
	for _, tc := range testAlgs {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Generate(dir, zone, tc.alg); err != nil {
				t.Fatal(err)
			}
			zf := filepath.Join(dir, "db")
			text := "$TTL 300\n@ IN SOA ns hostmaster 1 3600 600 86400 300\n@ IN NS ns\nns IN A 192.0.2.1\n"
			if err := os.WriteFile(zf, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(signzone, "-z", "-S", "-K", dir, "-d", dir, "-o", zone, "-f", zf+".signed", zf).CombinedOutput()
			if err != nil {
				t.Fatalf("dnssec-signzone: %v\n%s", err, out)
			}
			out, err = exec.Command(verify, "-z", "-o", zone, zf+".signed").CombinedOutput()
			if err != nil {
				t.Fatalf("dnssec-verify: %v\n%s", err, out)
			}
		})
	}
}

// Package keys owns the DNSSEC key material of the danezone plugin: it reads
// and writes BIND key files (K<zone>+<alg>+<tag>.key / .private, as written by
// dnssec-keygen), generates new keys, and derives the records that publish or
// delegate trust to them (DNSKEY, DS, CDS, CDNSKEY, dsset files).
package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/atomicfile"
)

// DefaultTTL is the TTL of DNSKEY records whose key file gives none.
const DefaultTTL = 3600

// timeFormat is the layout of BIND's key timing metadata (UTC).
const timeFormat = "20060102150405"

// Key is one DNSSEC key of a zone.
type Key struct {
	DNSKEY *dns.DNSKEY   // owner = zone (lowercase FQDN), TTL as in the file (default 3600)
	Signer crypto.Signer // private key
	Tag    uint16
	File   string // path of the .key file
	Timing Timing // its schedule, from the files (timing.go)
}

// IsKSK reports whether the key has the SEP flag set (flags 257).
func (k *Key) IsKSK() bool { return k.DNSKEY.Flags&dns.SEP != 0 }

// Set is the keys of one zone as they stand at one moment, At: the DNSKEY RRset holds the keys
// published then, the signing keys are those active then, CDS and CDNSKEY name those synced
// then (Key.Published, Active, Synced). A Set is not changed once in use: a new moment is a
// new Set (Set.View).
type Set struct {
	Zone string // lowercase FQDN
	At   time.Time
	Keys []*Key
	// DeleteDS: the zone has asked its parent to remove its DS (the state file says so, see
	// SetDeleteDS): while no key is synced, CDS and CDNSKEY are the DELETE records.
	DeleteDS bool
	// Warnings are problems that do not stop the keys from being used (a private key file
	// others can read, a weak RSA key), each naming its file, for the caller to log.
	Warnings []string
}

// View is the same keys at another moment.
func (s *Set) View(at time.Time) *Set {
	return &Set{Zone: s.Zone, At: at, Keys: s.Keys, DeleteDS: s.DeleteDS, Warnings: s.Warnings}
}

// at is the moment of the view: At, or now for a Set made without one.
func (s *Set) at() time.Time {
	if s.At.IsZero() {
		return time.Now()
	}
	return s.At
}

// KSKs returns the keys that sign the DNSKEY, CDS and CDNSKEY RRsets: the active keys with the
// SEP flag. If no active key has it, every active key is returned, so that the DNSKEY RRset is
// still signed.
func (s *Set) KSKs() []*Key {
	ksk, zsk := s.split()
	if len(ksk) == 0 {
		return zsk
	}
	return ksk
}

// ZSKs returns the keys that sign every RRset other than DNSKEY, CDS and CDNSKEY: the active
// keys without the SEP flag, or, when only SEP keys are active (a CSK), those.
func (s *Set) ZSKs() []*Key {
	ksk, zsk := s.split()
	if len(zsk) == 0 {
		return ksk
	}
	return zsk
}

// split divides the active keys by the SEP flag.
func (s *Set) split() (ksk, zsk []*Key) {
	if s == nil {
		return nil, nil
	}
	at := s.at()
	for _, k := range s.Keys {
		if !k.Active(at) {
			continue
		}
		if k.IsKSK() {
			ksk = append(ksk, k)
		} else {
			zsk = append(zsk, k)
		}
	}
	return ksk, zsk
}

// Published returns the keys whose DNSKEY is in the zone.
func (s *Set) Published() []*Key {
	if s == nil {
		return nil
	}
	at := s.at()
	var out []*Key
	for _, k := range s.Keys {
		if k.Published(at) {
			out = append(out, k)
		}
	}
	return out
}

// Unsigned says whether the zone is served without DNSSEC at the Set's moment: no key is
// published and none signs (a zone taken insecure, or one that never had keys).
func (s *Set) Unsigned() bool {
	if s == nil {
		return true
	}
	at := s.at()
	for _, k := range s.Keys {
		if k.Published(at) || k.Active(at) {
			return false
		}
	}
	return true
}

// DNSKEYs returns fresh copies of the DNSKEY records of the published keys.
func (s *Set) DNSKEYs() []dns.RR {
	var rrs []dns.RR
	for _, k := range s.Published() {
		rrs = append(rrs, dns.Copy(k.DNSKEY))
	}
	return rrs
}

// CDSKeys are the keys CDS and CDNSKEY name.
func (s *Set) CDSKeys() []*Key { return s.synced() }

// synced are the keys CDS and CDNSKEY name: those with a sync schedule that holds at At, or,
// when no key has one (keys from before rollovers, or from a tool that writes none), the
// published keys that sign the DNSKEY RRset.
func (s *Set) synced() []*Key {
	if s == nil {
		return nil
	}
	at := s.at()
	var out []*Key
	scheduled := false
	for _, k := range s.Keys {
		if !k.Timing.SyncPublish.IsZero() || !k.Timing.SyncDelete.IsZero() {
			scheduled = true
		}
		if k.Synced(at) {
			out = append(out, k)
		}
	}
	if scheduled {
		return out
	}
	for _, k := range s.KSKs() {
		if k.Published(at) {
			out = append(out, k)
		}
	}
	return out
}

// DS returns a DS record with the given digest type (dns.SHA256 is the usual) for each key
// CDS names: the DS the parent should serve. Owner and TTL are those of the DNSKEY. An
// unsupported digest type yields no records.
func (s *Set) DS(digest uint8) []*dns.DS {
	var out []*dns.DS
	for _, k := range s.synced() {
		if ds := k.DNSKEY.ToDS(digest); ds != nil {
			out = append(out, ds)
		}
	}
	return out
}

// CDS returns a CDS record (RFC 7344/8078, SHA-256 digest) for each synced key, owned by the
// zone apex; or, when no key is synced and the zone asks its parent to remove its DS, the
// DELETE record (RFC 8078 §4: CDS 0 0 0 00).
func (s *Set) CDS() []dns.RR {
	if s.deleting() {
		return []dns.RR{&dns.CDS{DS: dns.DS{Hdr: s.apexHeader(dns.TypeCDS), Digest: "00"}}}
	}
	var out []dns.RR
	for _, ds := range s.DS(dns.SHA256) {
		out = append(out, ds.ToCDS())
	}
	return out
}

// CDNSKEY returns a CDNSKEY record (RFC 7344/8078) for each synced key; or the DELETE record
// (RFC 8078 §4: CDNSKEY 0 3 0 AA==) like CDS.
func (s *Set) CDNSKEY() []dns.RR {
	if s.deleting() {
		return []dns.RR{&dns.CDNSKEY{DNSKEY: dns.DNSKEY{Hdr: s.apexHeader(dns.TypeCDNSKEY), Protocol: 3, PublicKey: "AA=="}}}
	}
	var out []dns.RR
	for _, k := range s.synced() {
		out = append(out, dns.Copy(k.DNSKEY).(*dns.DNSKEY).ToCDNSKEY())
	}
	return out
}

// deleting says whether CDS and CDNSKEY are the DELETE records: the zone asks its parent to
// remove its DS, no key is synced, and a DNSKEY is published (without one the DELETE could
// not be authenticated, RFC 8078 §4).
func (s *Set) deleting() bool {
	return s != nil && s.DeleteDS && len(s.synced()) == 0 && len(s.Published()) > 0
}

// apexHeader is the header of a DELETE record: the apex, with the DNSKEY RRset's TTL.
func (s *Set) apexHeader(t uint16) dns.RR_Header {
	ttl := uint32(3600)
	if p := s.Published(); len(p) > 0 {
		ttl = p[0].DNSKEY.Hdr.Ttl
	}
	return dns.RR_Header{Name: s.Zone, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// algorithms are the algorithms ParseAlgorithm and Generate support.
var algorithms = []struct {
	alg   uint8
	names []string
	bits  int
}{
	{dns.ECDSAP256SHA256, []string{"ecdsap256sha256", "ecdsa", "13"}, 256},
	{dns.ED25519, []string{"ed25519", "15"}, 256},
	{dns.RSASHA256, []string{"rsasha256", "8"}, 2048},
}

// ParseAlgorithm parses a DNSSEC algorithm name or number, case-insensitively:
// "ecdsap256sha256"/"ecdsa"/"13", "ed25519"/"15", "rsasha256"/"8".
func ParseAlgorithm(s string) (uint8, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for _, a := range algorithms {
		for _, n := range a.names {
			if n == name {
				return a.alg, nil
			}
		}
	}
	return 0, fmt.Errorf("unknown DNSSEC algorithm %q (valid: %s)", s, validAlgorithms())
}

// validAlgorithms lists the names ParseAlgorithm accepts, for messages.
func validAlgorithms() string {
	var valid []string
	for _, a := range algorithms {
		valid = append(valid, strings.Join(a.names, "/"))
	}
	return strings.Join(valid, ", ")
}

// algorithmBits returns the key size Generate uses for alg.
func algorithmBits(alg uint8) (int, bool) {
	for _, a := range algorithms {
		if a.alg == alg {
			return a.bits, true
		}
	}
	return 0, false
}

func algName(alg uint8) string {
	if n, ok := dns.AlgorithmToString[alg]; ok {
		return n
	}
	return strconv.Itoa(int(alg))
}

// normalizeZone returns the lowercase FQDN of zone.
func normalizeZone(zone string) (string, error) {
	if _, ok := dns.IsDomainName(zone); !ok || zone == "" {
		return "", fmt.Errorf("invalid zone name %q", zone)
	}
	return dns.CanonicalName(zone), nil
}

// FileNameText returns zone as BIND writes it into file names
// (dns_name_tofilenametext): lowercase, with the trailing dot, and every
// byte other than a letter, digit, '-' or '_' written as %XX.
// The root zone is ".".
func FileNameText(zone string) (string, error) {
	z, err := normalizeZone(zone)
	if err != nil {
		return "", err
	}
	if z == "." {
		return ".", nil
	}
	wire := make([]byte, 256)
	n, err := dns.PackDomainName(z, wire, 0, nil, false)
	if err != nil {
		return "", fmt.Errorf("invalid zone name %q: %w", zone, err)
	}
	wire = wire[:n]
	var b strings.Builder
	for i := 0; i < len(wire) && wire[i] != 0; {
		l := int(wire[i])
		for _, c := range wire[i+1 : i+1+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
				b.WriteByte(c)
			case c >= 'A' && c <= 'Z':
				b.WriteByte(c + 'a' - 'A')
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		b.WriteByte('.')
		i += 1 + l
	}
	return b.String(), nil
}

// BaseName returns the BIND base name of a key file, without extension:
// "K<zone>+<alg:03d>+<tag:05d>", e.g. "Kexample.test.+013+12345".
func BaseName(zone string, alg uint8, tag uint16) (string, error) {
	z, err := FileNameText(zone)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("K%s+%03d+%05d", z, alg, tag), nil
}

// parseBaseName parses the "+<alg>+<tag>" tail of a key file base name.
func parseBaseName(tail string) (alg uint8, tag uint16, ok bool) {
	// tail is "+DDD+DDDDD"
	if len(tail) != 10 || tail[0] != '+' || tail[4] != '+' {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(tail[1:4], 10, 8)
	t, err2 := strconv.ParseUint(tail[5:], 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint8(a), uint16(t), true
}

// Load reads the keys of zone from dir: every K<zone>+<alg>+<tag>.key file
// (BIND naming, zone matched case-insensitively) and its .private file.
// Unrelated files are ignored. A missing or empty dir yields an empty Set.
// Every error names the offending file. Keys are sorted KSKs first, then by
// file name.
func Load(dir, zone string) (*Set, error) {
	z, err := normalizeZone(zone)
	if err != nil {
		return nil, err
	}
	prefix, err := FileNameText(z)
	if err != nil {
		return nil, err
	}
	prefix = strings.ToLower("K" + prefix)
	set := &Set{Zone: z, At: time.Now()}

	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return set, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading key directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, prefix) || !strings.HasSuffix(lower, ".key") || e.IsDir() {
			continue
		}
		alg, tag, ok := parseBaseName(lower[len(prefix) : len(lower)-len(".key")])
		if !ok {
			continue
		}
		k, warnings, err := loadKey(dir, name, z, alg, tag)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k)
		set.Warnings = append(set.Warnings, warnings...)
	}
	sort.SliceStable(set.Keys, func(i, j int) bool {
		a, b := set.Keys[i], set.Keys[j]
		if a.IsKSK() != b.IsKSK() {
			return a.IsKSK()
		}
		return a.File < b.File
	})
	// An unreadable state file is Open's and Remember's to report.
	if zs, _, err := Recorded(dir, z); err == nil {
		set.DeleteDS = zs.DeleteDS
	}
	return set, nil
}

// RSA key sizes. Below MinRSABits a key is refused: such a modulus can be factored with modest
// means, and Go's crypto/rsa (since Go 1.24) refuses to sign with it, so every signed answer
// would fail. Below WeakRSABits a key is used with a warning: NIST SP 800-131A Rev. 2 disallows
// RSA signature keys under 2048 bits since 2014 (RFC 6781 §3.4.2 on key sizes), and
// dnssec-keygen's default is 2048.
const (
	MinRSABits  = 1024
	WeakRSABits = 2048
)

// loadKey reads one .key/.private pair. name is the .key file name in dir;
// alg and tag come from that name. warnings are problems that do not stop the
// key from being used.
func loadKey(dir, name, zone string, alg uint8, tag uint16) (k *Key, warnings []string, err error) {
	keyPath := filepath.Join(dir, name)
	privPath := strings.TrimSuffix(keyPath, filepath.Ext(keyPath)) + ".private"

	dnskey, err := readKeyFile(keyPath, zone)
	if err != nil {
		return nil, nil, err
	}
	if dnskey.Algorithm != alg {
		return nil, nil, fmt.Errorf("%s: algorithm mismatch: file name says %d, DNSKEY has %d", keyPath, alg, dnskey.Algorithm)
	}
	if t := dnskey.KeyTag(); t != tag {
		return nil, nil, fmt.Errorf("%s: key tag mismatch: file name says %d, DNSKEY has %d", keyPath, tag, t)
	}
	if isRSA(dnskey.Algorithm) {
		switch bits := rsaBits(dnskey); {
		case bits < MinRSABits:
			return nil, nil, fmt.Errorf("%s: RSA key of %d bits refused: under %d bits it can be factored and cannot sign; replace it with a new key (ECDSAP256SHA256, or RSASHA256 of 2048 bits)", keyPath, bits, MinRSABits)
		case bits < WeakRSABits:
			warnings = append(warnings, fmt.Sprintf("%s: RSA key of only %d bits: under %d bits it is too weak for a signing key (NIST SP 800-131A); roll to a new key (ECDSAP256SHA256, or RSASHA256 of 2048 bits)", keyPath, bits, WeakRSABits))
		}
	}

	signer, err := readPrivateFile(privPath, dnskey)
	if err != nil {
		return nil, nil, err
	}
	if w := privateModeWarning(privPath, zone); w != "" {
		warnings = append(warnings, w)
	}
	keyData, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	privData, err := os.ReadFile(privPath)
	if err != nil {
		return nil, nil, err
	}
	timing, err := readTiming(keyData, privData, keyPath, privPath)
	if err != nil {
		return nil, nil, err
	}
	return &Key{DNSKEY: dnskey, Signer: signer, Tag: tag, File: keyPath, Timing: timing}, warnings, nil
}

// privateModeWarning returns a warning when the private key file at path grants any permission
// to group or others: whoever can read it can sign for the zone (dnssec-keygen and Generate
// write mode 0600).
func privateModeWarning(path, zone string) string {
	if runtime.GOOS == "windows" { // no Unix permission bits
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("%s: private key file has mode %04o: group or others can read or change it, and anyone who reads it can sign for %s; run chmod 600 %s", path, fi.Mode().Perm(), zone, path)
}

func isRSA(alg uint8) bool {
	switch alg {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512:
		return true
	}
	return false
}

// rsaBits returns the modulus size of an RSA DNSKEY (RFC 3110 §2: exponent length in one
// octet, or zero and two octets, then the exponent, then the modulus), 0 if it is malformed.
func rsaBits(k *dns.DNSKEY) int {
	pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil || len(pub) < 1 {
		return 0
	}
	expLen, off := int(pub[0]), 1
	if expLen == 0 {
		if len(pub) < 3 {
			return 0
		}
		expLen, off = int(pub[1])<<8|int(pub[2]), 3
	}
	if len(pub) <= off+expLen {
		return 0
	}
	return new(big.Int).SetBytes(pub[off+expLen:]).BitLen()
}

// readKeyFile parses a BIND .key file holding one DNSKEY of zone.
func readKeyFile(path, zone string) (*dns.DNSKEY, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	defer f.Close()

	var dnskey *dns.DNSKEY
	zp := dns.NewZoneParser(f, zone, "")
	zp.SetDefaultTTL(DefaultTTL)
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		k, isKey := rr.(*dns.DNSKEY)
		if !isKey {
			return nil, fmt.Errorf("%s: unexpected %s record, want DNSKEY", path, dns.TypeToString[rr.Header().Rrtype])
		}
		if dnskey != nil {
			return nil, fmt.Errorf("%s: more than one DNSKEY record", path)
		}
		dnskey = k
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dnskey == nil {
		return nil, fmt.Errorf("%s: no DNSKEY record", path)
	}
	if owner := dns.CanonicalName(dnskey.Hdr.Name); owner != zone {
		return nil, fmt.Errorf("%s: owner %s is not the zone %s", path, dnskey.Hdr.Name, zone)
	}
	if dnskey.Hdr.Class != dns.ClassINET {
		return nil, fmt.Errorf("%s: class %s, want IN", path, dns.ClassToString[dnskey.Hdr.Class])
	}
	if dnskey.Protocol != 3 {
		return nil, fmt.Errorf("%s: protocol %d, want 3", path, dnskey.Protocol)
	}
	if dnskey.Flags&dns.ZONE == 0 {
		return nil, fmt.Errorf("%s: flags %d lack the Zone Key bit (256)", path, dnskey.Flags)
	}
	if _, err := base64.StdEncoding.DecodeString(dnskey.PublicKey); err != nil || dnskey.PublicKey == "" {
		return nil, fmt.Errorf("%s: bad public key", path)
	}
	dnskey.Hdr.Name = zone
	return dnskey, nil
}

// privateFields parses "Name: value" lines of a BIND .private file into a map
// keyed by the lowercase name. It is used to check the file before handing
// it to dns.DNSKEY.ReadPrivateKey, which does not report missing fields.
func privateFields(data []byte) map[string]string {
	m := make(map[string]string)
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return m
}

// fieldNames gives the canonical spelling of private key fields, for errors.
var fieldNames = map[string]string{
	"private-key-format": "Private-key-format",
	"algorithm":          "Algorithm",
	"privatekey":         "PrivateKey",
	"modulus":            "Modulus",
	"publicexponent":     "PublicExponent",
	"privateexponent":    "PrivateExponent",
	"prime1":             "Prime1",
	"prime2":             "Prime2",
}

// readPrivateFile reads the .private file belonging to dnskey and checks that
// the private key matches the public key.
func readPrivateFile(path string, dnskey *dns.DNSKEY) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: .private missing", path)
	}
	if err != nil {
		return nil, err
	}
	m := privateFields(data)
	required := []string{"private-key-format", "algorithm"}
	switch dnskey.Algorithm {
	case dns.RSASHA1, dns.RSASHA1NSEC3SHA1, dns.RSASHA256, dns.RSASHA512:
		required = append(required, "modulus", "publicexponent", "privateexponent", "prime1", "prime2")
	case dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		required = append(required, "privatekey")
	default:
		return nil, fmt.Errorf("%s: unsupported algorithm %s", path, algName(dnskey.Algorithm))
	}
	for _, f := range required {
		if m[f] == "" {
			return nil, fmt.Errorf("%s: missing %s", path, fieldNames[f])
		}
	}
	if v := m["private-key-format"]; v != "v1.2" && v != "v1.3" {
		return nil, fmt.Errorf("%s: unsupported Private-key-format %s", path, v)
	}
	algStr, _, _ := strings.Cut(m["algorithm"], " ")
	if a, err := strconv.ParseUint(algStr, 10, 8); err != nil {
		return nil, fmt.Errorf("%s: bad Algorithm %q", path, m["algorithm"])
	} else if uint8(a) != dnskey.Algorithm {
		return nil, fmt.Errorf("%s: algorithm mismatch: .private has %d, .key has %d", path, a, dnskey.Algorithm)
	}

	priv, err := dnskey.ReadPrivateKey(bytes.NewReader(data), "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, err := base64.StdEncoding.DecodeString(dnskey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%s: bad public key in DNSKEY", path)
	}
	mismatch := fmt.Errorf("%s: private key does not match the public key in the .key file", path)

	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		// ReadPrivateKey copies the public key from the DNSKEY; derive it
		// from the private scalar instead, so a mismatch is detected.
		curve, size := elliptic.P256(), 32
		if dnskey.Algorithm == dns.ECDSAP384SHA384 {
			curve, size = elliptic.P384(), 48
		}
		raw, err := p.Bytes()
		if err != nil || len(raw) != size {
			return nil, fmt.Errorf("%s: bad PrivateKey", path)
		}
		k, err := ecdsa.ParseRawPrivateKey(curve, raw)
		if err != nil {
			return nil, fmt.Errorf("%s: bad PrivateKey: %w", path, err)
		}
		point, err := k.PublicKey.Bytes()
		if err != nil || !bytes.Equal(point[1:], pub) {
			return nil, mismatch
		}
		return k, nil
	case ed25519.PrivateKey:
		if len(p) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%s: bad PrivateKey", path)
		}
		if !bytes.Equal(p.Public().(ed25519.PublicKey), pub) {
			return nil, mismatch
		}
		return p, nil
	case *rsa.PrivateKey:
		// ReadPrivateKey takes N and E from the DNSKEY; compare them with
		// the file's own Modulus/PublicExponent, then validate the primes.
		mod, err1 := base64.StdEncoding.DecodeString(m["modulus"])
		exp, err2 := base64.StdEncoding.DecodeString(m["publicexponent"])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s: bad Modulus or PublicExponent", path)
		}
		if p.N == nil || new(big.Int).SetBytes(mod).Cmp(p.N) != 0 ||
			new(big.Int).SetBytes(exp).Cmp(big.NewInt(int64(p.E))) != 0 {
			return nil, mismatch
		}
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s: invalid RSA private key: %w", path, err)
		}
		p.Precompute()
		return p, nil
	default:
		return nil, fmt.Errorf("%s: unsupported private key type %T", path, priv)
	}
}

// genMu serialises Generate and LoadOrGenerate within this process, so that
// concurrent callers for one zone do not create two keys.
var genMu sync.Mutex

// Generate creates a new CSK (flags 257) for zone with algorithm alg
// (ECDSA P-256, Ed25519 or RSASHA256 with 2048 bits) and writes it to dir as
// a BIND .key (mode 0644) and .private (mode 0600) pair, creating dir with
// mode 0700 if needed.
func Generate(dir, zone string, alg uint8) (*Key, error) {
	genMu.Lock()
	defer genMu.Unlock()
	return generate(dir, zone, alg, dns.ZONE|dns.SEP, time.Now())
}

// generate does the work of Generate with the given flags and creation time.
func generate(dir, zone string, alg uint8, flags uint16, now time.Time) (*Key, error) {
	return generateWith(dir, zone, alg, flags, 0, nil, now)
}

// generateWith is generate with a DNSKEY TTL (0: DefaultTTL) and a schedule (nil: published
// and active from now), written with the key: a key is never on disk with another schedule.
func generateWith(dir, zone string, alg uint8, flags uint16, ttl uint32, sched *Timing, now time.Time) (*Key, error) {
	z, err := normalizeZone(zone)
	if err != nil {
		return nil, err
	}
	bits, ok := algorithmBits(alg)
	if !ok {
		return nil, fmt.Errorf("cannot generate keys of algorithm %s (valid: %s)", algName(alg), validAlgorithms())
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory: %w", err)
	}

	const attempts = 10
	for range attempts {
		if ttl == 0 {
			ttl = DefaultTTL
		}
		dnskey := &dns.DNSKEY{
			Hdr:       dns.RR_Header{Name: z, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
			Flags:     flags,
			Protocol:  3,
			Algorithm: alg,
		}
		priv, err := dnskey.Generate(bits)
		if err != nil {
			return nil, fmt.Errorf("generating %s key: %w", algName(alg), err)
		}
		signer, ok := priv.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("generating %s key: unexpected key type %T", algName(alg), priv)
		}
		tag := dnskey.KeyTag()
		base, err := BaseName(z, alg, tag)
		if err != nil {
			return nil, err
		}
		// Like dnssec-keygen, avoid a tag that collides with an existing
		// key, or with the tag that key would have once revoked.
		if collides(dir, z, alg, tag, dnskey) {
			continue
		}

		stampT := now.UTC().Truncate(time.Second)
		timing := Timing{Created: stampT, Publish: stampT, Activate: stampT}
		if sched != nil {
			timing = *sched
			timing.Created = stampT
			for _, f := range timingFields {
				if p := f.at(&timing); !p.IsZero() {
					*p = p.UTC().Truncate(time.Second)
				}
			}
		}
		pubText := keyFileText(flags&dns.SEP != 0, tag, dnskey, timing)
		privText := dnskey.PrivateKeyString(priv)
		if privText == "" {
			return nil, fmt.Errorf("generating %s key: cannot encode private key", algName(alg))
		}
		privText += timingLines(timing, false)

		keyPath := filepath.Join(dir, base+".key")
		privPath := filepath.Join(dir, base+".private")
		// The .private file goes first: Load treats a .key without its
		// .private as an error.
		if err := writeNew(privPath, []byte(privText), 0o600); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return nil, err
		}
		if err := writeNew(keyPath, []byte(pubText), 0o644); err != nil {
			os.Remove(privPath)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return nil, err
		}
		return &Key{DNSKEY: dnskey, Signer: signer, Tag: tag, File: keyPath, Timing: timing}, nil
	}
	return nil, fmt.Errorf("generating %s key for %s: key tag collisions in %s", algName(alg), z, dir)
}

// collides reports whether a key file with alg and tag (or with the tag of
// the revoked form of dnskey) already exists in dir.
func collides(dir, zone string, alg uint8, tag uint16, dnskey *dns.DNSKEY) bool {
	revoked := *dnskey
	revoked.Flags |= dns.REVOKE
	for _, t := range []uint16{tag, revoked.KeyTag()} {
		base, err := BaseName(zone, alg, t)
		if err != nil {
			return true
		}
		for _, ext := range []string{".key", ".private"} {
			if _, err := os.Lstat(filepath.Join(dir, base+ext)); err == nil {
				return true
			}
		}
	}
	return false
}

// writeNew writes data to path atomically, failing with fs.ErrExist if path
// already exists. The file gets exactly the given mode, whatever the umask.
func writeNew(path string, data []byte, mode os.FileMode) error {
	tmp, err := atomicfile.Temp(path, data, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// A hard link does not replace an existing file, unlike rename.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, fs.ErrExist)
		}
		// Fall back to rename on file systems without hard links.
		if _, statErr := os.Lstat(path); statErr == nil {
			return fmt.Errorf("%s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// LoadOrGenerate loads the keys of zone from dir and, if there are none,
// generates one CSK with algorithm alg. generated reports whether it did.
func LoadOrGenerate(dir, zone string, alg uint8) (set *Set, generated bool, err error) {
	genMu.Lock()
	defer genMu.Unlock()
	set, err = Load(dir, zone)
	if err != nil {
		return nil, false, err
	}
	if len(set.Keys) > 0 {
		return set, false, nil
	}
	k, err := generate(dir, zone, alg, dns.ZONE|dns.SEP, time.Now())
	if err != nil {
		return nil, false, err
	}
	// The view is of now, after the key's creation: Load's moment came before it, and a key
	// created in the next second would not be active in a view of the one before.
	set.Keys, set.At = []*Key{k}, time.Now()
	return set, true, nil
}

// DSSetName returns the BIND name of the dsset file of zone,
// e.g. "dsset-example.test.".
func DSSetName(zone string) (string, error) {
	z, err := FileNameText(zone)
	if err != nil {
		return "", err
	}
	return "dsset-" + z, nil
}

// WriteDSSet atomically writes dir/dsset-<zone>. with one SHA-256 DS record
// per KSK of s, in presentation format, and returns the file's path.
func WriteDSSet(dir string, s *Set) (path string, err error) {
	if s == nil {
		return "", errors.New("WriteDSSet: nil key set")
	}
	name, err := DSSetName(s.Zone)
	if err != nil {
		return "", err
	}
	path = filepath.Join(dir, name)
	dss := s.DS(dns.SHA256)
	if len(dss) == 0 {
		return "", fmt.Errorf("%s: no KSKs for %s", path, s.Zone)
	}
	var b strings.Builder
	for _, ds := range dss {
		b.WriteString(ds.String())
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

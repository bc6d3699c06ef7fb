package integration

// Primaries that take RFC 2136 dynamic updates signed with TSIG, for the tests of
// `danelab tlsa sync`: a real named (BIND 9.18) or knotd (Knot DNS 3.2) on a loopback port
// serves one zone, signs it itself (a single ECDSAP256SHA256 CSK, flags 257) and re-signs
// what an update changes; delv validates the result against the zone's CSK.
//
// Measured with BIND 9.18.49 and Knot 3.2.6 (TestUpdatePrimaries checks all of it):
//
//   - BIND: `dnssec-policy` needs a dynamic zone (allow-update or update-policy) or
//     `inline-signing yes` (named-checkconf: "'inline-signing yes;' must also be configured
//     explicitly for zones using dnssec-policy without a configured 'allow-update' or
//     'update-policy'"), and 9.18 warns unless inline-signing is set explicitly either way
//     (its default becomes yes in 9.20). The updatable zone uses `inline-signing no` with
//     `update-policy { grant KEY zonesub ANY; }`: named applies and signs an update in one
//     transaction (the RRSIG is served with the NOERROR answer) and keeps it in zone.db.jnl.
//     (inline-signing yes with update-policy works too; the signed copy followed within
//     50ms.) The read-only zone has no update-policy, so it needs `inline-signing yes`.
//   - Knot: an ACL `action: update` with the key on the zone is all it takes; with the
//     defaults (journal-content: changes, zonefile-sync: 0) Knot signs the update
//     incrementally before answering and writes the signed zone back into the zone file. Here
//     zonefile-sync is -1 so that the zone file stays what the test wrote (changes live in
//     the journal under db/), and zonefile-load is difference, as Knot warns for a signed
//     zone with outgoing transfers.
//   - A refused update: BIND answers REFUSED to an unsigned update and to one signed with a
//     key it knows but the update-policy does not grant (to the read-only zone too), and
//     NOTAUTH with TSIG error BADKEY to one signed with a key it does not know. Knot answers
//     NOTAUTH to every update its ACL does not allow, unsigned or signed (with TSIG error
//     BADKEY then, even for a key it knows): it never answers REFUSED. DeniedRcode holds the
//     kind's rcode; isUpdateDenied accepts either.
//   - A failed prerequisite ("RRset exists (value dependent)", RFC 2136 §2.4.2) is NXRRSET
//     on both, and nothing of the update is applied.
//
//	go test ./integration -run TestUpdatePrimaries -count=1 -v

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// updatePrimary is a named or knotd serving one zone, signed by itself, on 127.0.0.1.
type updatePrimary struct {
	Kind     string // "bind" or "knot"
	Addr     string // 127.0.0.1:port, UDP and TCP
	Port     int
	Zone     string // FQDN, lower case
	Dir      string // temporary directory: configuration, zone file, keys, journal, log
	Log      string // the daemon's log
	Conf     string // its configuration file
	ReadOnly bool   // no update is allowed (startReadOnlyPrimary)
	// Key may update anything in the zone (zonesub ANY); none may when ReadOnly. Other is a
	// second key the server knows but grants nothing.
	Key, Other TSIGKey
	// DeniedRcode is the rcode of the answer to an update the server does not allow:
	// REFUSED for BIND, NOTAUTH for Knot (see the top of this file).
	DeniedRcode int

	anchor  *Anchor
	proc    *process
	cleanup func()
}

// updateKinds maps each kind to the programs it needs.
var updateKinds = map[string][]string{
	"bind": {"named"},
	"knot": {"knotd", "knotc"},
}

// startUpdatePrimary starts a primary of kind ("bind" or "knot") for zone, loaded from
// content (zone file text, with the zone's SOA), that accepts RFC 2136 updates signed with
// key (hmac-sha256) for any name and type in the zone and refuses every other update. It
// returns once the zone is served signed (SOA and DNSKEY with RRSIGs, a CSK with flags 257),
// within 30s, and stops the server when the test ends. It skips the test if the daemon is not
// installed (fails it under CI=true).
func startUpdatePrimary(tb testing.TB, kind string, key TSIGKey, zone, content string) *updatePrimary {
	tb.Helper()
	return startUpdatePrimaryMode(tb, kind, key, zone, content, false)
}

// startReadOnlyPrimary is startUpdatePrimary for a zone that takes no update: the server
// knows key but grants it nothing, so an update signed with it is denied (DeniedRcode).
func startReadOnlyPrimary(tb testing.TB, kind string, key TSIGKey, zone, content string) *updatePrimary {
	tb.Helper()
	return startUpdatePrimaryMode(tb, kind, key, zone, content, true)
}

func startUpdatePrimaryMode(tb testing.TB, kind string, key TSIGKey, zone, content string, readOnly bool) *updatePrimary {
	tb.Helper()
	progs, ok := updateKinds[kind]
	if !ok {
		tb.Fatalf("unknown kind of update primary %q (want bind or knot)", kind)
	}
	needSecondaryPeers(tb, progs...)
	if key.Name == "" || key.Secret == "" {
		tb.Fatal("update primary: empty TSIG key")
	}
	key.Name = dns.CanonicalName(key.Name)
	dir, cleanup, err := tempDir("update-" + kind)
	if err != nil {
		tb.Fatal(err)
	}
	p := &updatePrimary{Kind: kind, Zone: dns.CanonicalName(zone), Dir: dir, ReadOnly: readOnly,
		Key: key, Other: NewTSIGKey("other-" + key.Name), cleanup: cleanup}
	tb.Cleanup(p.Stop)
	if p.Port, err = FreePort(); err != nil {
		tb.Fatal(err)
	}
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port))
	zoneFile := filepath.Join(dir, "zone.db")
	if err := os.WriteFile(zoneFile, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	var argv []string
	switch kind {
	case "bind":
		p.DeniedRcode = dns.RcodeRefused
		argv, err = p.configureBIND(zoneFile)
	case "knot":
		p.DeniedRcode = dns.RcodeNotAuth
		argv, err = p.configureKnot(zoneFile)
	}
	if err != nil {
		tb.Fatal(err)
	}
	if p.proc, err = startProcess(kind+" update primary", dir, p.Log, argv...); err != nil {
		tb.Fatal(err)
	}
	if err := p.waitSigned(30 * time.Second); err != nil {
		conf, _ := os.ReadFile(p.Conf)
		tb.Fatalf("%s update primary for %s: %v\nconfiguration %s:\n%s\nlog:\n%s", kind, p.Zone, err, p.Conf, conf, tail(p.Log, 4000))
	}
	return p
}

// configureBIND writes named.conf. named runs in the foreground (-g: logs to stderr, which
// goes to Log) as the current user; no control channel (controls { }), no NOTIFY, no
// recursion. Keys live in Dir (key-directory defaults to directory).
func (p *updatePrimary) configureBIND(zoneFile string) ([]string, error) {
	bin, err := lookPeer("named")
	if err != nil {
		return nil, errors.New(secondaryPeerMissing("named"))
	}
	p.Log = filepath.Join(p.Dir, "named.log")
	p.Conf = filepath.Join(p.Dir, "named.conf")
	zoneOpts := fmt.Sprintf("inline-signing no;\n    update-policy { grant %q zonesub ANY; };", p.Key.Name)
	if p.ReadOnly {
		zoneOpts = "inline-signing yes;"
	}
	conf := fmt.Sprintf(`options {
    directory %[1]q;
    listen-on port %[2]d { 127.0.0.1; };
    listen-on-v6 { none; };
    pid-file %[3]q;
    session-keyfile %[4]q;
    managed-keys-directory %[1]q;
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer { 127.0.0.1; };
};
controls { };
key %[5]q { algorithm hmac-sha256; secret %[6]q; };
key %[7]q { algorithm hmac-sha256; secret %[8]q; };
dnssec-policy "csk" {
    keys { csk lifetime unlimited algorithm ecdsap256sha256; };
};
zone %[9]q {
    type primary;
    file %[10]q;
    dnssec-policy "csk";
    %[11]s
};
`, p.Dir, p.Port, filepath.Join(p.Dir, "named.pid"), filepath.Join(p.Dir, "session.key"),
		p.Key.Name, p.Key.Secret, p.Other.Name, p.Other.Secret, p.Zone, zoneFile, zoneOpts)
	if err := os.WriteFile(p.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if chk, err := lookPeer("named-checkconf"); err == nil {
		if out, err := exec.Command(chk, p.Conf).CombinedOutput(); err != nil || len(out) > 0 {
			return nil, fmt.Errorf("named-checkconf %s: %v\n%s\n%s", p.Conf, err, out, conf)
		}
	}
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err == nil {
		// Debian's AppArmor profile for /usr/sbin/named only allows its own paths (see
		// configureBIND in secondary_helpers_test.go).
		if cp, err := copyExecutable(bin, filepath.Join(p.Dir, "named")); err == nil {
			bin = cp
		}
	}
	return []string{bin, "-g", "-c", p.Conf}, nil
}

// configureKnot writes knot.conf: the zone signed with a CSK policy (like knotPrimary's
// "csk:" zones), transfers to 127.0.0.1, and unless ReadOnly an ACL allowing updates signed
// with Key. The KASP database and journal live under db/, which must exist.
func (p *updatePrimary) configureKnot(zoneFile string) ([]string, error) {
	bin, err := lookPeer("knotd")
	if err != nil {
		return nil, errors.New(secondaryPeerMissing("knotd"))
	}
	db := filepath.Join(p.Dir, "db")
	if err := os.MkdirAll(db, 0o755); err != nil {
		return nil, err
	}
	p.Log = filepath.Join(p.Dir, "knotd.log")
	p.Conf = filepath.Join(p.Dir, "knot.conf")
	acls := "[transfer_local, update_with_key]"
	if p.ReadOnly {
		acls = "[transfer_local]"
	}
	conf := knotServerConf(p.Port, p.Dir, db, p.Key, p.Other) + fmt.Sprintf(`policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
acl:
  - id: transfer_local
    address: 127.0.0.1
    action: transfer
  - id: update_with_key
    address: 127.0.0.1
    key: %[1]q
    action: update
zone:
  - domain: %[2]q
    file: %[3]q
    dnssec-signing: on
    dnssec-policy: csk
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    acl: %[4]s
`, p.Key.Name, p.Zone, zoneFile, acls)
	if err := os.WriteFile(p.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if knotc, err := lookPeer("knotc"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, knotc, "-c", p.Conf, "conf-check").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("knotc conf-check: %v\n%s\n%s", err, out, conf)
		}
	}
	return []string{bin, "-c", p.Conf}, nil
}

// waitSigned polls (every 50ms) until the server answers the zone's SOA and DNSKEY RRsets
// authoritatively with their RRSIGs and a DNSKEY with flags 257, which it keeps as the anchor.
func (p *updatePrimary) waitSigned(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := "no answer yet"
	for {
		if !p.proc.running() {
			return fmt.Errorf("exited before serving %s signed: %v", p.Zone, p.proc.err)
		}
		if msg := p.signedNow(); msg == "" {
			return nil
		} else {
			last = msg
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not served signed within %v (last: %s)", p.Zone, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signedNow checks once what waitSigned waits for; "" when it holds.
func (p *updatePrimary) signedNow() string {
	var ksk *dns.DNSKEY
	for _, t := range []uint16{dns.TypeSOA, dns.TypeDNSKEY} {
		r, err := Query(p.Addr, p.Zone, t, QueryOpts{DO: true, TCP: true, Timeout: time.Second})
		if err != nil {
			return err.Error()
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
			return fmt.Sprintf("%s %s: rcode %s, aa %v", p.Zone, dns.TypeToString[t], dns.RcodeToString[r.Rcode], r.Authoritative)
		}
		if !hasType(r.Answer, t) || !hasType(r.Answer, dns.TypeRRSIG) {
			return fmt.Sprintf("%s %s: answer without the RRset or its RRSIG: %v", p.Zone, dns.TypeToString[t], r.Answer)
		}
		for _, rr := range r.Answer {
			if k, ok := rr.(*dns.DNSKEY); ok && k.Flags == 257 && ksk == nil {
				ksk = k
			}
		}
	}
	if ksk == nil {
		return "no DNSKEY with flags 257"
	}
	p.anchor = &Anchor{Zone: p.Zone, KSK: ksk, Keys: []*dns.DNSKEY{ksk}}
	return ""
}

// Anchor returns a delv/BIND trust-anchors statement with the zone's CSK (flags 257), read
// from the server when it started serving the zone signed (the key has an unlimited
// lifetime, so it does not change).
func (p *updatePrimary) Anchor(tb testing.TB) string {
	tb.Helper()
	if p.anchor == nil {
		tb.Fatalf("%s update primary: no anchor for %s", p.Kind, p.Zone)
	}
	return DelvAnchors(p.anchor)
}

// anchorsFile writes Anchor into Dir once and returns its path.
func (p *updatePrimary) anchorsFile(tb testing.TB) string {
	tb.Helper()
	f := filepath.Join(p.Dir, "delv-anchors.conf")
	if _, err := os.Stat(f); err == nil {
		return f
	}
	if err := os.WriteFile(f, []byte(p.Anchor(tb)), 0o644); err != nil {
		tb.Fatal(err)
	}
	return f
}

// DelvResult runs `delv @127.0.0.1 -p PORT -a ANCHORS +root=ZONE -q NAME -t QTYPE` (30s
// timeout) with the zone's CSK as the only anchor. It skips the test if delv is not installed
// (fails it under CI=true).
func (p *updatePrimary) DelvResult(tb testing.TB, name, qtype string) DelvResult {
	tb.Helper()
	bin := peer.Need(tb, "delv")
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		tb.Fatalf("delv: unknown type %q", qtype)
	}
	d := &Delv{Bin: bin, Server: "127.0.0.1", Port: p.Port, AnchorsFile: p.anchorsFile(tb)}
	res, err := d.Query(p.Zone, dns.Fqdn(name), t)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// Delv runs delv for name and qtype (see DelvResult) and returns its output and whether it
// printed "; fully validated": a secure positive answer. A proven negative answer ("; negative
// response, fully validated") reports false; DelvResult tells it apart.
func (p *updatePrimary) Delv(tb testing.TB, name, qtype string) (out string, validated bool) {
	tb.Helper()
	res := p.DelvResult(tb, name, qtype)
	sc := bufio.NewScanner(strings.NewReader(res.Output))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "; fully validated" {
			validated = true
		}
	}
	return res.Cmd + "\n" + res.Output, validated && res.Failure == ""
}

// Serial returns the SOA serial the server serves now.
func (p *updatePrimary) Serial() (uint32, error) { return SOASerial(p.Addr, p.Zone) }

// Update sends an update for the zone (m, made with SetUpdate) signed with key unless it is nil.
func (p *updatePrimary) Update(m *dns.Msg, key *TSIGKey) (*dns.Msg, error) {
	return sendUpdate(p.Addr, m, key)
}

// Stop stops the daemon (by PID) and removes its directory.
func (p *updatePrimary) Stop() {
	if p == nil {
		return
	}
	p.proc.stop()
	if p.cleanup != nil {
		p.cleanup()
		p.cleanup = nil
	}
}

// LogTail returns at most the last n bytes of the daemon's log.
func (p *updatePrimary) LogTail(n int) string { return tail(p.Log, n) }

// sendUpdate sends m over UDP to addr (5s timeout), signed with key (hmac-sha256, fudge 300)
// unless key is nil, and returns the answer. When the answer arrives but its TSIG does not
// verify, the answer is returned with the error: a server that denies a signed update with a
// TSIG error (BADKEY, BADSIG) answers with an unsigned TSIG, which miekg/dns reports as an
// error ("dns: bad signature"); the rcode is what counts there.
func sendUpdate(addr string, m *dns.Msg, key *TSIGKey) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	if key != nil {
		name := dns.CanonicalName(key.Name)
		c.TsigSecret = map[string]string{name: key.Secret}
		m.SetTsig(name, dns.HmacSHA256, 300, time.Now().Unix())
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		err = fmt.Errorf("update of %s @%s: %w", m.Question[0].Name, addr, err)
	}
	return r, err
}

// updateRcode renders an update's answer for messages: the rcode, and a TSIG error if any.
func updateRcode(r *dns.Msg) string {
	if r == nil {
		return "no answer"
	}
	s := dns.RcodeToString[r.Rcode]
	if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		s += " (TSIG error " + dns.RcodeToString[int(t.Error)] + ")"
	}
	return s
}

// isUpdateDenied reports whether r denies an update for want of permission: REFUSED (BIND)
// or NOTAUTH (Knot; BIND for an unknown key or a bad signature).
func isUpdateDenied(r *dns.Msg) bool {
	return r != nil && (r.Rcode == dns.RcodeRefused || r.Rcode == dns.RcodeNotAuth)
}

// ---------------------------------------------------------------------------------------------
// Self-test

const updateTestZone = `$ORIGIN upd.test.
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 900 1209600 60
        IN NS  ns1
ns1     IN A   127.0.0.1
mx      IN A   127.0.0.25
`

// tlsaRR makes `owner 300 IN TLSA 3 1 1 hex`.
func tlsaRR(tb testing.TB, owner, hex string) dns.RR {
	tb.Helper()
	rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN TLSA 3 1 1 %s", dns.Fqdn(owner), hex))
	if err != nil {
		tb.Fatal(err)
	}
	return rr
}

// delvTLSA returns the TLSA records delv printed as "u s m hex" (hex in lower case), sorted.
func delvTLSA(res DelvResult) []string {
	var out []string
	for _, rr := range res.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, strings.ToLower(t.Certificate)))
		}
	}
	slices.Sort(out)
	return out
}

// TestUpdatePrimaries checks the update primaries of both kinds: an update signed with the
// key adds a TLSA RRset (NOERROR), which delv validates at once; a replacement under a
// value-dependent prerequisite that holds succeeds, one whose prerequisite fails is NXRRSET
// and changes nothing; updates unsigned, signed with a key the server knows but does not
// grant, with an unknown key or with a wrong secret are denied and change nothing; a
// read-only primary denies the update signed with its key.
func TestUpdatePrimaries(t *testing.T) {
	for _, kind := range []string{"bind", "knot"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			peer.Need(t, "delv")
			start := time.Now()
			key := NewTSIGKey("tlsa-sync.example.")
			p := startUpdatePrimary(t, kind, key, "upd.test", updateTestZone)
			t.Logf("%s primary on %s serving upd.test signed after %v", kind, p.Addr, time.Since(start).Round(time.Millisecond))
			if a := p.Anchor(t); !strings.Contains(a, "upd.test. static-key 257 3 13 ") {
				t.Errorf("anchor: %s", a)
			}
			if out, ok := p.Delv(t, "mx.upd.test", "A"); !ok {
				t.Fatalf("delv does not validate mx.upd.test A before any update:\n%s", out)
			}
			const owner = "_25._tcp.mx.upd.test."
			h1, h2, h3 := strings.Repeat("a1", 32), strings.Repeat("b2", 32), strings.Repeat("c3", 32)
			serial0, err := p.Serial()
			if err != nil {
				t.Fatal(err)
			}

			// Add, signed with the key.
			m := new(dns.Msg)
			m.SetUpdate(p.Zone)
			m.Insert([]dns.RR{tlsaRR(t, owner, h1)})
			t0 := time.Now()
			r, err := p.Update(m, &key)
			if err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("signed update: %v, %s\n%s", err, updateRcode(r), p.LogTail(3000))
			}
			t.Logf("signed update: NOERROR after %v", time.Since(t0).Round(time.Millisecond))
			serial1, err := p.Serial()
			if err != nil || !SerialAtLeast(serial1, serial0+1) {
				t.Errorf("serial after the update %d (%v), was %d", serial1, err, serial0)
			}
			// waitValidated waits until delv validates the TLSA RRset as exactly want.
			waitValidated := func(what string, want ...string) {
				t.Helper()
				t0 := time.Now()
				var res DelvResult
				msg := waitFor(5*time.Second, func() string {
					res = p.DelvResult(t, owner, "TLSA")
					if got := delvTLSA(res); !res.Secure || !slices.Equal(got, want) {
						return fmt.Sprintf("secure %v, records %v", res.Secure, got)
					}
					return ""
				})
				if msg != "" {
					t.Fatalf("%s: delv did not validate TLSA %v within 5s (%s):\n%s\n%s", what, want, msg, res.Output, p.LogTail(3000))
				}
				t.Logf("%s: delv fully validated the TLSA %v after the update", what, time.Since(t0).Round(time.Millisecond))
			}
			waitValidated("add", "3 1 1 "+h1)

			// A value-dependent prerequisite that does not hold: NXRRSET, nothing changes.
			m = new(dns.Msg)
			m.SetUpdate(p.Zone)
			m.Used([]dns.RR{tlsaRR(t, owner, h2)})
			m.RemoveRRset([]dns.RR{tlsaRR(t, owner, h2)})
			m.Insert([]dns.RR{tlsaRR(t, owner, h3)})
			if r, err := p.Update(m, &key); err != nil || r.Rcode != dns.RcodeNXRrset {
				t.Errorf("update whose prerequisite fails: %v, %s, want NXRRSET", err, updateRcode(r))
			}
			// One that holds: the RRset is replaced in one transaction.
			m = new(dns.Msg)
			m.SetUpdate(p.Zone)
			m.Used([]dns.RR{tlsaRR(t, owner, h1)})
			m.RemoveRRset([]dns.RR{tlsaRR(t, owner, h1)})
			m.Insert([]dns.RR{tlsaRR(t, owner, h2)})
			if r, err := p.Update(m, &key); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("replacement whose prerequisite holds: %v, %s\n%s", err, updateRcode(r), p.LogTail(3000))
			}
			waitValidated("replace", "3 1 1 "+h2)

			// Denied updates change nothing.
			wrong := NewTSIGKey(key.Name)
			unknown := NewTSIGKey("unknown.example.")
			for _, c := range []struct {
				what  string
				key   *TSIGKey
				rcode int
			}{
				{"unsigned", nil, p.DeniedRcode},
				{"signed with a key the server knows but does not grant", &p.Other, p.DeniedRcode},
				{"signed with an unknown key", &unknown, dns.RcodeNotAuth},
				{"signed with a wrong secret", &wrong, dns.RcodeNotAuth},
			} {
				before, _ := p.Serial()
				m := new(dns.Msg)
				m.SetUpdate(p.Zone)
				m.Insert([]dns.RR{tlsaRR(t, owner, h3)})
				r, err := p.Update(m, c.key)
				if r == nil {
					t.Errorf("update %s: no answer: %v", c.what, err)
					continue
				}
				t.Logf("update %s: %s", c.what, updateRcode(r))
				if r.Rcode != c.rcode || !isUpdateDenied(r) {
					t.Errorf("update %s: %s, want %s", c.what, updateRcode(r), dns.RcodeToString[c.rcode])
				}
				if after, _ := p.Serial(); after != before {
					t.Errorf("update %s: serial %d -> %d", c.what, before, after)
				}
			}
			if res := p.DelvResult(t, owner, "TLSA"); !res.Secure || !slices.Equal(delvTLSA(res), []string{"3 1 1 " + h2}) {
				t.Errorf("after the denied updates, want the TLSA 3 1 1 %s alone, validated:\n%s", h2, res.Output)
			}
			t.Logf("%s done in %v", kind, time.Since(start).Round(time.Millisecond))
		})
		t.Run(kind+"-readonly", func(t *testing.T) {
			t.Parallel()
			peer.Need(t, "delv")
			key := NewTSIGKey("tlsa-sync.example.")
			p := startReadOnlyPrimary(t, kind, key, "upd.test", updateTestZone)
			before, err := p.Serial()
			if err != nil {
				t.Fatal(err)
			}
			m := new(dns.Msg)
			m.SetUpdate(p.Zone)
			m.Insert([]dns.RR{tlsaRR(t, "_25._tcp.mx.upd.test.", strings.Repeat("d4", 32))})
			r, err := p.Update(m, &key)
			if r == nil {
				t.Fatalf("update of a read-only zone: no answer: %v", err)
			}
			t.Logf("signed update of the read-only zone: %s", updateRcode(r))
			if r.Rcode != p.DeniedRcode || !isUpdateDenied(r) {
				t.Errorf("signed update of the read-only zone: %s, want %s", updateRcode(r), dns.RcodeToString[p.DeniedRcode])
			}
			if after, _ := p.Serial(); after != before {
				t.Errorf("read-only zone: serial %d -> %d", before, after)
			}
			if out, ok := p.Delv(t, "mx.upd.test", "A"); !ok {
				t.Errorf("read-only zone not validated:\n%s", out)
			}
			if res := p.DelvResult(t, "_25._tcp.mx.upd.test", "TLSA"); !res.Secure || !(res.NoData || res.Rcode == dns.RcodeNameError) {
				t.Errorf("read-only zone: want a validated negative answer for the TLSA:\n%s", res.Output)
			}
		})
	}
}

package integration

// Key rollovers in real time: a lab chain root -> test. -> example.test. served by one danezone
// with follow_cds (each parent serves its child's CDS as DS, as a registry following CDS
// would), timings of seconds, parental_agents the server itself. Unbound validates from the
// root's key while a question goes every 100 ms; no answer may be bogus at any step, every
// state of the zone passes dnssec-verify, a restart halfway resumes the roll, and at the end
// only the new keys remain.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

// rollZones are the lab chain: TTLs of 2 s, so that caches follow the keys within seconds.
var rollZones = map[string]string{
	"root.zone": `$TTL 2
. SOA ns. hostmaster. 1 60 60 600 2
. NS ns.
ns. A 127.0.0.1
test. NS ns.test.
ns.test. A 127.0.0.1
`,
	"test.zone": `$TTL 2
test. SOA ns.test. hostmaster.test. 1 60 60 600 2
test. NS ns.test.
ns.test. A 127.0.0.1
example.test. NS ns.example.test.
ns.example.test. A 127.0.0.1
`,
	"example.test.zone": `$TTL 2
example.test. SOA ns.example.test. hostmaster.example.test. 1 60 60 600 2
example.test. NS ns.example.test.
ns.example.test. A 127.0.0.1
www.example.test. A 192.0.2.1
example.test. MX 10 mx.example.test.
mx.example.test. A 192.0.2.25
_25._tcp.mx.example.test. TLSA 3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6
`,
}

// rollTiming: Ipub = 1+2+1 = 4 s, Iret = 1+3+1 = 5 s, the DS wait 1+2+1 = 4 s.
const rollTiming = "timing dnskey-ttl 2s max-zone-ttl 3s propagation 1s safety 1s parent-ds-ttl 2s parent-propagation 1s parent-warn 1m"

// rollLab is the running chain with its judge.
type rollLab struct {
	t                *testing.T
	cfg              ServerConfig
	srv              *Server
	control, keyDir  string
	unbound          *Unbound
	stop             chan struct{}
	wg               sync.WaitGroup
	asked, bad       atomic.Int64
	paused           atomic.Bool // during a restart: an outage, not a validation failure
	insecureOK       atomic.Bool // example.test. may be insecure: answers without AD are right
	mu               sync.Mutex
	bogus            []string
	verified, states int
}

func startRollLab(t *testing.T, policy string) *rollLab {
	for _, p := range []string{"unbound", "dnssec-verify"} {
		peer.Need(t, p)
	}
	cport, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l := &rollLab{t: t, control: "127.0.0.1:" + strconv.Itoa(cport), keyDir: filepath.Join(t.TempDir(), "keys"), stop: make(chan struct{})}
	l.cfg = ServerConfig{Files: rollZones, Serve: []string{".", "test", "example.test"}, KeyDir: l.keyDir, Port: port,
		Block: []string{"transfer {\n    to *\n}"},
		Extra: []string{"rollover " + policy, rollTiming, "parental_agents 127.0.0.1:" + strconv.Itoa(port), "follow_cds",
			"control " + l.control, "serial unixtime"}}
	l.srv = StartServer(t, l.cfg)
	// follow_cds puts each child's DS in its parent at the first poll.
	for _, z := range []string{"test.", "example.test."} {
		l.waitFor(10*time.Second, z+" DS at its parent", func() bool {
			r, err := Query(l.srv.Addr, z, dns.TypeDS, QueryOpts{DO: true, Timeout: time.Second})
			return err == nil && hasType(r.Answer, dns.TypeDS)
		})
	}
	root, err := ReadAnchor(l.keyDir, ".")
	if err != nil {
		t.Fatal(err)
	}
	l.unbound, err = startUnbound(unboundSpec{Anchors: []dns.RR{root.KSK}, Stubs: []Stub{{Anchor: root, Addr: l.srv.Addr}},
		Zones: []string{"test.", "example.test."}, StubAddr: l.srv.Addr, Probe: "www.example.test.", ProbeType: dns.TypeA,
		Server: []string{"cache-max-ttl: 2", "cache-max-negative-ttl: 2", "infra-host-ttl: 5"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.unbound.Stop)
	l.wg.Add(1)
	go l.ask()
	t.Cleanup(func() { l.halt() })
	return l
}

// ask is the judge: a question through Unbound every 100 ms, each answer validated (AD).
func (l *rollLab) ask() {
	defer l.wg.Done()
	qs := []struct {
		name  string
		qtype uint16
	}{{"www.example.test.", dns.TypeA}, {"example.test.", dns.TypeDNSKEY}, {"_25._tcp.mx.example.test.", dns.TypeTLSA},
		{"nx.example.test.", dns.TypeA}, {"example.test.", dns.TypeCDS}, {"test.", dns.TypeDNSKEY}}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		if l.paused.Load() {
			continue
		}
		q := qs[i%len(qs)]
		r, err := Query(l.unbound.Addr, q.name, q.qtype, QueryOpts{RD: true, DO: true, Timeout: 2 * time.Second})
		l.asked.Add(1)
		secure := err == nil && (r.AuthenticatedData || l.insecureOK.Load() && q.name != "test.")
		ok := secure && (r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError && q.name == "nx.example.test.")
		if !ok {
			l.bad.Add(1)
			what := fmt.Sprint(err)
			if r != nil {
				what = fmt.Sprintf("%s AD=%v %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData, EDE(r))
			}
			l.mu.Lock()
			l.bogus = append(l.bogus, fmt.Sprintf("%s %s %s: %s", time.Now().Format("15:04:05.000"), q.name, dns.TypeToString[q.qtype], what))
			l.mu.Unlock()
		}
	}
}

func (l *rollLab) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func (l *rollLab) waitFor(d time.Duration, what string, cond func() bool) {
	l.t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.t.Fatalf("no %s within %v\n%s", what, d, lastLines(l.srv.Log(), 40))
		}
	}
}

// zoneKeys is GET /keys for one zone.
type zoneKeys struct {
	Zone string
	Keys []struct {
		Tag                       uint16
		Role, Algorithm           string
		Published, Active, Synced bool
	}
	Waiting string
	DNSSEC  string
}

func (l *rollLab) keys(zone string) zoneKeys {
	l.t.Helper()
	var all []zoneKeys
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + l.control + "/keys")
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&all)
		resp.Body.Close()
	}
	if err != nil {
		l.t.Fatalf("GET /keys: %v", err)
	}
	for _, z := range all {
		if z.Zone == zone {
			return z
		}
	}
	l.t.Fatalf("GET /keys: no %s in %+v", zone, all)
	return zoneKeys{}
}

// roll asks for a roll over the control API.
func (l *rollLab) roll(zone, role string) {
	l.t.Helper()
	body, _ := json.Marshal(map[string]string{"zone": zone, "role": role})
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+l.control+"/keys/roll", "application/json", bytes.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		l.t.Fatalf("POST /keys/roll %s %s: %s", zone, role, resp.Status)
	}
}

// verify transfers example.test. and runs dnssec-verify on it, once per state (the DNSKEY and
// CDS sets and the keys signing).
func (l *rollLab) verify(seen map[string]bool) {
	l.t.Helper()
	rrs, err := AXFR(l.srv.Addr, "example.test.", nil)
	if err != nil {
		l.t.Logf("AXFR: %v", err) // the server may be restarting
		return
	}
	var state []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.DNSKEY:
			state = append(state, fmt.Sprintf("DNSKEY %d", rr.KeyTag()))
		case *dns.CDS:
			state = append(state, fmt.Sprintf("CDS %d", rr.KeyTag))
		case *dns.RRSIG:
			if rr.TypeCovered == dns.TypeSOA || rr.TypeCovered == dns.TypeDNSKEY {
				state = append(state, fmt.Sprintf("%s by %d", dns.TypeToString[rr.TypeCovered], rr.KeyTag))
			}
		}
	}
	key := strings.Join(state, ", ")
	if key == "" {
		key = "unsigned"
	}
	if seen[key] {
		return
	}
	seen[key] = true
	l.states++
	if key == "unsigned" {
		// Insecure: no DNSSEC record at all, not even a stray NSEC or signature.
		for _, rr := range rrs {
			switch rr.(type) {
			case *dns.RRSIG, *dns.NSEC, *dns.NSEC3, *dns.DNSKEY, *dns.CDS, *dns.CDNSKEY:
				l.t.Errorf("unsigned state serves %v", rr)
				return
			}
		}
		l.verified++
		l.t.Logf("state %d: unsigned, no DNSSEC record in the zone", l.states)
		return
	}
	if err := DnssecVerify(rrs, "example.test.", l.t.TempDir()); err != nil {
		l.t.Errorf("state %s: %v", key, err)
		return
	}
	l.verified++
	l.t.Logf("state %d verified by dnssec-verify: %s", l.states, key)
}

// rollAndWait asks for a roll of role and follows it until role's keys are one again and not
// old; restartAt, when set, restarts the server once that many keys of the role exist.
func (l *rollLab) rollAndWait(role string, restart bool) {
	l.t.Helper()
	sep := role != "zsk"
	// The keys of the role in the zone (the files of withdrawn keys stay in the directory).
	tags := func() (out []uint16) {
		for _, k := range l.keys("example.test.").Keys {
			if (k.Role == "ksk") == sep && k.Published {
				out = append(out, k.Tag)
			}
		}
		return out
	}
	old := tags()
	if len(old) != 1 {
		l.t.Fatalf("%s keys before the roll: %v", role, old)
	}
	start := time.Now()
	l.roll("example.test.", role)
	seen := map[string]bool{}
	restarted := !restart
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		l.verify(seen)
		now := tags()
		if !restarted && len(now) == 2 {
			// Halfway: the successor exists. A restart must resume the roll from the files.
			l.t.Logf("restarting the server halfway through the %s roll (keys %v)", role, now)
			l.restart()
			restarted = true
			continue
		}
		if len(now) == 1 && now[0] != old[0] {
			l.verify(seen)
			l.t.Logf("%s roll of example.test.: key %d -> %d in %v, %d states, each verified", strings.ToUpper(role), old[0], now[0], time.Since(start).Round(100*time.Millisecond), len(seen))
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s roll not done within a minute: keys %v (was %v), %+v\n%s", role, now, old, l.keys("example.test."), lastLines(l.srv.Log(), 60))
		}
	}
}

// restart stops the server and starts it again with l.cfg, the same keys and address.
func (l *rollLab) restart() {
	l.t.Helper()
	l.paused.Store(true)
	l.srv.Stop()
	l.srv = StartServer(l.t, l.cfg)
	// Unbound may hold the server as unreachable for a few seconds (infra-host-ttl): the
	// judge resumes once an answer comes through again.
	l.waitFor(20*time.Second, "validated answer through Unbound after the restart", func() bool {
		r, err := Query(l.unbound.Addr, "www.example.test.", dns.TypeA, QueryOpts{RD: true, DO: true, Timeout: time.Second})
		return err == nil && r.Rcode == dns.RcodeSuccess && (r.AuthenticatedData || l.insecureOK.Load())
	})
	l.paused.Store(false)
}

func (l *rollLab) judge() {
	l.t.Helper()
	l.halt()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("Unbound: %d questions every 100 ms, %d not validated; %d key states, %d verified by dnssec-verify", l.asked.Load(), l.bad.Load(), l.states, l.verified)
	if l.bad.Load() > 0 {
		l.t.Errorf("answers not validated during the rolls:\n%s\nunbound log:\n%s", strings.Join(l.bogus, "\n"), l.unbound.LogTail(3000))
	}
	// Unbound retries a bogus answer with other queries before it gives one (up to five
	// times): a failure it recovered from is in its log only (val-log-level 2).
	if log, err := os.ReadFile(l.unbound.LogPath); err != nil {
		l.t.Error(err)
	} else if n := strings.Count(string(log), "validation failure"); n > 0 {
		l.t.Errorf("Unbound logged %d validation failure(s) during the rolls:\n%s", n, l.unbound.LogTail(3000))
	}
	if l.asked.Load() < 50 {
		l.t.Errorf("only %d questions asked", l.asked.Load())
	}
}

// TestKeyRollSplit: a ZSK roll (pre-publication), then a KSK roll (double-KSK with CDS and the
// parent check) with a restart halfway.
func TestKeyRollSplit(t *testing.T) {
	l := startRollLab(t, "split")
	l.waitFor(20*time.Second, "KSK and ZSK for example.test.", func() bool {
		k := l.keys("example.test.")
		n := 0
		for _, key := range k.Keys {
			if key.Active {
				n++
			}
		}
		return published(k) == 2 && n == 2
	})
	l.rollAndWait("zsk", true)
	l.rollAndWait("ksk", true)
	if k := l.keys("example.test."); published(k) != 2 || k.Waiting != "" {
		t.Errorf("after the rolls: %+v", k)
	}
	l.judge()
}

// TestKeyRollCSK: a CSK roll with a restart halfway.
func TestKeyRollCSK(t *testing.T) {
	l := startRollLab(t, "csk")
	l.rollAndWait("csk", true)
	if k := l.keys("example.test."); published(k) != 1 || k.Waiting != "" {
		t.Errorf("after the roll: %+v", k)
	}
	l.judge()
}

// published counts the keys whose DNSKEY is in the zone.
func published(z zoneKeys) int {
	n := 0
	for _, k := range z.Keys {
		if k.Published {
			n++
		}
	}
	return n
}

// TestKeyRollAlgorithm: an algorithm rollover, ECDSAP256SHA256 to ED25519, started by a
// restart with the new algorithm in the Corefile (RFC 6781 §4.1.4: signatures of both
// algorithms first, then the new DNSKEY, then CDS, then the old algorithm goes).
func TestKeyRollAlgorithm(t *testing.T) {
	l := startRollLab(t, "csk")
	l.cfg.Extra = append(l.cfg.Extra, "algorithm ed25519")
	start := time.Now()
	l.restart()
	seen := map[string]bool{}
	restarted := false
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		l.verify(seen)
		k := l.keys("example.test.")
		if !restarted && len(seen) >= 3 {
			// Halfway: both algorithms sign, the new DNSKEY is published.
			t.Logf("restarting the server halfway through the algorithm rollover (%d states seen)", len(seen))
			l.restart()
			restarted = true
			continue
		}
		done := published(k) == 1
		for _, key := range k.Keys {
			if (key.Published || key.Active) && key.Algorithm != "ED25519" {
				done = false // its DNSKEY, or its signatures, still in the zone
			}
		}
		if done {
			l.verify(seen)
			t.Logf("algorithm rollover of example.test. to ED25519 in %v, %d states, each verified", time.Since(start).Round(100*time.Millisecond), len(seen))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("algorithm rollover not done within a minute: %+v\n%s", k, lastLines(l.srv.Log(), 60))
		}
	}
	l.judge()
}

// TestKeyInsecureAndBack: example.test. goes insecure with CDS/CDNSKEY DELETE (RFC 8078 §4):
// the parent (following CDS) removes the DS, the parent check sees it gone, and the keys go
// only once the DS has expired from caches; then the zone is served unsigned. With the
// `insecure` line removed it is signed again, and CDS names the new key once the signed zone
// is in every cache: Unbound validates it again. A restart halfway each way resumes it; no
// answer is bogus at any step (insecure answers come without AD, never SERVFAIL).
func TestKeyInsecureAndBack(t *testing.T) {
	peer.Need(t, "delv")
	l := startRollLab(t, "csk")
	base := slices.Clone(l.cfg.Extra)
	l.insecureOK.Store(true)
	l.cfg.Extra = append(base, "insecure example.test")
	start := time.Now()
	l.restart()
	seen := map[string]bool{}
	restarted, judged := false, false
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		l.verify(seen)
		k := l.keys("example.test.")
		if !judged && k.DNSSEC == "going insecure" && l.cdsDelete() {
			l.checkDeleteWithDelv()
			judged = true
		}
		if !restarted && judged {
			t.Logf("restarting halfway through going insecure (%s)", k.Waiting)
			l.restart()
			restarted = true
			continue
		}
		if k.DNSSEC == "insecure" && l.unboundInsecure() {
			l.verify(seen)
			t.Logf("example.test. insecure in %v, %d states", time.Since(start).Round(100*time.Millisecond), len(seen))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not insecure within a minute: %+v\n%s", k, lastLines(l.srv.Log(), 60))
		}
	}
	if r, err := Query(l.srv.Addr, "example.test.", dns.TypeDS, QueryOpts{DO: true, Timeout: time.Second}); err != nil || hasType(r.Answer, dns.TypeDS) {
		t.Fatalf("the parent still serves a DS for the insecure zone: %v %v", r, err)
	}

	// Back: the line removed.
	l.cfg.Extra = base
	start = time.Now()
	l.restart()
	restarted = false
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		l.verify(seen)
		k := l.keys("example.test.")
		if !restarted && k.DNSSEC == "going secure" {
			t.Logf("restarting halfway back (keys %+v)", k.Keys)
			l.restart()
			restarted = true
			continue
		}
		if k.DNSSEC == "signed" && l.unboundSecure() {
			t.Logf("example.test. signed and validated again in %v", time.Since(start).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not secure again within a minute: %+v\n%s", k, lastLines(l.srv.Log(), 60))
		}
	}
	if !restarted {
		t.Error("no restart while going back")
	}
	// Once the insecure answers Unbound cached have expired (cache-max-ttl 2 s), every answer
	// must validate again.
	time.Sleep(3 * time.Second)
	l.insecureOK.Store(false)
	time.Sleep(3 * time.Second)
	l.judge()
}

// cdsDelete says whether example.test. serves the CDS DELETE record.
func (l *rollLab) cdsDelete() bool {
	r, err := Query(l.srv.Addr, "example.test.", dns.TypeCDS, QueryOpts{DO: true, Timeout: time.Second})
	if err != nil {
		return false
	}
	for _, rr := range r.Answer {
		if c, ok := rr.(*dns.CDS); ok && c.Algorithm == 0 {
			return true
		}
	}
	return false
}

// checkDeleteWithDelv has delv validate the DELETE records (RFC 8078 §4) from the zone's own
// key, which a parent following CDS trusts through the DS it still holds: CDS 0 0 0 00 and
// CDNSKEY 0 3 0 AA==, fully validated.
func (l *rollLab) checkDeleteWithDelv() {
	l.t.Helper()
	anchor, err := ReadAnchor(l.keyDir, "example.test.")
	if err != nil {
		l.t.Fatal(err)
	}
	d := NewDelv(l.t, l.srv, l.t.TempDir(), anchor)
	for _, c := range []struct {
		qtype uint16
		want  string
	}{{dns.TypeCDS, "CDS\t0 0 0 00"}, {dns.TypeCDNSKEY, "CDNSKEY\t0 3 0 AA=="}} {
		res, err := d.Query("example.test.", "example.test.", c.qtype)
		if err != nil {
			l.t.Fatal(err)
		}
		var got []string
		for _, rr := range res.Answer {
			if rr.Header().Rrtype == c.qtype {
				got = append(got, rr.String())
			}
		}
		if !res.Secure || len(got) != 1 || !strings.HasSuffix(got[0], c.want) {
			l.t.Fatalf("delv on the DELETE %s: secure %v, %v, want one %q\n%s", dns.TypeToString[c.qtype], res.Secure, got, c.want, res.Output)
		}
		l.t.Logf("delv: %s, fully validated", got[0])
	}
}

// unboundInsecure says whether Unbound answers example.test. as insecure: NOERROR without AD.
func (l *rollLab) unboundInsecure() bool {
	r, err := Query(l.unbound.Addr, "www.example.test.", dns.TypeA, QueryOpts{RD: true, DO: true, Timeout: time.Second})
	return err == nil && r.Rcode == dns.RcodeSuccess && !r.AuthenticatedData && len(r.Answer) > 0
}

// unboundSecure says whether Unbound validates example.test.'s answers.
func (l *rollLab) unboundSecure() bool {
	r, err := Query(l.unbound.Addr, "www.example.test.", dns.TypeA, QueryOpts{RD: true, DO: true, Timeout: time.Second})
	return err == nil && r.Rcode == dns.RcodeSuccess && r.AuthenticatedData
}

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
		ok := err == nil && r.AuthenticatedData && (r.Rcode == dns.RcodeSuccess || r.Rcode == dns.RcodeNameError && q.name == "nx.example.test.")
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
	if seen[key] {
		return
	}
	seen[key] = true
	l.states++
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
		return err == nil && r.Rcode == dns.RcodeSuccess && r.AuthenticatedData
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

package integration

// danelab tlsa sync / gate / next against real primaries that take dynamic updates (BIND
// named, Knot DNS): the records follow the certificate on disk through renewals with and
// without a staged key, what the servers serve validates under delv, and bad input (a TSIG key
// that does not parse, a zone that refuses updates, a server that does not answer, a
// half-written certificate) changes nothing.
//
//	go test ./integration -run 'TestTLSASync|TestTLSAGate' -count=1 -v

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/harness/dane"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
)

const tsZoneTemplate = `$ORIGIN %s
$TTL 300
@       IN SOA ns1 hostmaster 1 3600 900 1209600 60
        IN NS  ns1
        IN MX  10 mx
ns1     IN A   127.0.0.1
mx      IN A   127.0.0.1
`

// tsEnv is one primary with a zone and what danelab needs to update it.
type tsEnv struct {
	p       *updatePrimary
	zone    string
	mx      string // mx.<zone> without the dot
	owner   string // _25._tcp.mx.<zone>.
	dir     string
	keyFile string // TSIG key, BIND format
	state   string
	cert    string // the installed certificate (the tracker's source)
}

func newTSEnv(t *testing.T, kind, zone string, readOnly bool) *tsEnv {
	t.Helper()
	key := NewTSIGKey("tlsa-sync." + zone)
	content := fmt.Sprintf(tsZoneTemplate, zone)
	e := &tsEnv{zone: zone, mx: "mx." + strings.TrimSuffix(zone, "."), owner: "_25._tcp.mx." + zone, dir: t.TempDir()}
	if readOnly {
		e.p = startReadOnlyPrimary(t, kind, key, zone, content)
	} else {
		e.p = startUpdatePrimary(t, kind, key, zone, content)
	}
	e.keyFile = tlWriteTemp(t, e.dir, "tsig.key", fmt.Appendf(nil, "# tsig-keygen\nkey %q {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", strings.TrimSuffix(key.Name, "."), key.Secret))
	e.state = filepath.Join(e.dir, "state", "tlsa-state.json")
	e.cert = filepath.Join(e.dir, "fullchain.pem")
	return e
}

// sync runs danelab tlsa sync -once with extra flags and returns its output and exit code.
func (e *tsEnv) sync(t *testing.T, extra ...string) (string, int) {
	t.Helper()
	args := append([]string{"tlsa", "sync", "-once", "-host", e.mx, "-cert", e.cert, "-zone", e.zone, "-server", e.p.Addr,
		"-tsig", e.keyFile, "-state", e.state, "-ttl", "2", "-hold", "3s", "-timeout", "3s"}, extra...)
	return tlRun(t, 60*time.Second, exec.Command(tlDanelab(t), args...))
}

func (e *tsEnv) mustSync(t *testing.T, extra ...string) string {
	t.Helper()
	out, code := e.sync(t, extra...)
	if code != 0 {
		t.Fatalf("danelab tlsa sync: exit %d\n%s\nserver log:\n%s", code, out, e.p.LogTail(1500))
	}
	return out
}

// served returns the TLSA records the primary serves at the owner, "U S M HEX", sorted.
func (e *tsEnv) served(t *testing.T) []string {
	t.Helper()
	r, err := Query(e.p.Addr, e.owner, dns.TypeTLSA, QueryOpts{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.TLSA); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", x.Usage, x.Selector, x.MatchingType, strings.ToLower(x.Certificate)))
		}
	}
	slices.Sort(out)
	return out
}

// validated checks that delv fully validates the owner's TLSA RRset and that it holds want.
func (e *tsEnv) validated(t *testing.T, want []string) {
	t.Helper()
	res := e.p.DelvResult(t, e.owner, "TLSA")
	got := delvTLSA(res)
	slices.Sort(got)
	if !res.Secure || !slices.Equal(got, want) {
		t.Errorf("delv %s TLSA: validated %v, records %v; want validated %v\n%s", e.owner, res.Secure, got, want, res.Output)
	}
}

func (e *tsEnv) install(t *testing.T, c *tlCert) {
	t.Helper()
	tlWriteAtomic(t, e.cert, c.CertPEM)
}

func spki311(t *testing.T, pemFile string) string { return "3 1 1 " + tlOpenSSLCertSPKI(t, pemFile) }

// TestTLSASync keeps the TLSA records of BIND's and Knot's zones equal to the certificate on
// disk: first publication, a renewal with an unstaged key (the old record held, then
// withdrawn), a staged key made by danelab tlsa next (published ahead, then current), with
// delv judging what the server serves at each step; an edit made by someone else at the same
// owner is replaced by a minimal update, and a run with nothing to do sends no update.
func TestTLSASync(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"bind", "knot"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			e := newTSEnv(t, kind, "sync-"+kind+".test.", false)
			a := tlLeaf(t, e.mx, nil, nil)
			e.install(t, a)
			recA := spki311(t, e.cert)

			out := e.mustSync(t)
			if got := e.served(t); !slices.Equal(got, []string{recA}) {
				t.Fatalf("after the first sync: %s serves %v, want [%s] (openssl's digest)\n%s", kind, got, recA, out)
			}
			e.validated(t, []string{recA})
			serial, _ := e.p.Serial()
			if out := e.mustSync(t); !strings.Contains(out, "up to date") {
				t.Errorf("second sync with nothing changed: %s", out)
			}
			if s, _ := e.p.Serial(); s != serial {
				t.Errorf("a sync with nothing to do changed the serial %d -> %d", serial, s)
			}

			// Renewal with a new key nobody staged: the new record at once, the old one held
			// for the hold-down (3s), then withdrawn.
			b := tlLeaf(t, e.mx, nil, nil)
			e.install(t, b)
			recB := spki311(t, e.cert)
			out = e.mustSync(t)
			if got, want := e.served(t), tlSorted(recA, recB); !slices.Equal(got, want) {
				t.Fatalf("after the renewal: serves %v, want %v held and new\n%s", got, want, out)
			}
			e.validated(t, tlSorted(recA, recB))
			time.Sleep(3200 * time.Millisecond)
			e.mustSync(t)
			if got := e.served(t); !slices.Equal(got, []string{recB}) {
				t.Fatalf("after the hold-down: serves %v, want [%s]", got, recB)
			}
			e.validated(t, []string{recB})

			// A staged key: tlsa next writes it and its CSR; sync publishes it beside the
			// current one; the certificate made from it becomes current, the old one held.
			next := filepath.Join(e.dir, "next.key")
			out, code := tlRun(t, 30*time.Second, exec.Command(tlDanelab(t), "tlsa", "next", "-key", next, "-cert", e.cert))
			if code != 0 {
				t.Fatalf("danelab tlsa next: exit %d\n%s", code, out)
			}
			recN := "3 1 1 " + tlOpenSSLKeySPKI(t, next)
			if !strings.Contains(out, recN) {
				t.Errorf("danelab tlsa next printed\n%s\nwant the record %s (openssl's digest of the key)", out, recN)
			}
			if _, code := tlRun(t, 30*time.Second, exec.Command(tlDanelab(t), "tlsa", "next", "-key", next, "-cert", e.cert)); code == 0 {
				t.Errorf("tlsa next replaced a staged key that is not in use yet")
			}
			e.mustSync(t, "-next", next)
			if got, want := e.served(t), tlSorted(recB, recN); !slices.Equal(got, want) {
				t.Fatalf("with the staged key: serves %v, want %v", got, want)
			}
			nk, err := os.ReadFile(next)
			if err != nil {
				t.Fatal(err)
			}
			key, err := parseTestKey(nk)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(2100 * time.Millisecond) // one TTL: the staged record has been seen
			c := tlLeaf(t, e.mx, nil, key)
			e.install(t, c)
			out = e.mustSync(t, "-next", next)
			if got, want := e.served(t), tlSorted(recB, recN); !slices.Equal(got, want) {
				t.Fatalf("after the staged renewal: serves %v, want %v (old held, staged now current)\n%s", got, want, out)
			}
			if strings.Contains(out, "defer mail") {
				t.Errorf("a staged renewal was reported unsafe:\n%s", out)
			}
			e.validated(t, tlSorted(recB, recN))

			// Someone else's record at the owner is replaced; the update is minimal (the
			// current record is not deleted and added again: its RRSIG stays valid).
			foreign, _ := dns.NewRR(e.owner + " 2 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))
			m := new(dns.Msg)
			m.SetUpdate(e.zone)
			m.Insert([]dns.RR{foreign})
			if r, err := e.p.Update(m, &e.p.Key); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("adding a foreign record: %v %v", err, r)
			}
			time.Sleep(3200 * time.Millisecond) // past the hold of recB
			out = e.mustSync(t, "-next", next)
			if got := e.served(t); !slices.Equal(got, []string{recN}) {
				t.Fatalf("after the foreign edit and the hold-down: serves %v, want [%s]\n%s", got, recN, out)
			}
			if !strings.Contains(out, "added [], removed [") || !strings.Contains(out, "3 1 1 "+strings.Repeat("ab", 32)) || strings.Contains(out, "3 1 1 "+recN[6:]+"]") {
				t.Errorf("the update was not minimal: %s", out)
			}
			e.validated(t, []string{recN})
		})
	}
}

// TestTLSASyncBadInput: each bad input gets a message that names the file, zone or server,
// exit status 1 (2 for bad usage), and the records on the server stay as they were.
func TestTLSASyncBadInput(t *testing.T) {
	t.Parallel()
	e := newTSEnv(t, "bind", "bad-sync.test.", false)
	a := tlLeaf(t, e.mx, nil, nil)
	e.install(t, a)
	e.mustSync(t)
	before := e.served(t)
	good := e.keyFile
	// Each case starts from the state of the good run (a case that reads a renewed
	// certificate keeps it in its state, as it should).
	goodState, err := os.ReadFile(e.state)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		prepare func(t *testing.T) []string // extra flags
		want    []string                    // in the output
		code    int
	}{
		{"tsig key does not parse", func(t *testing.T) []string {
			e.keyFile = tlWriteTemp(t, t.TempDir(), "broken.key", []byte("key \"x\" {\n\talgorithm hmac-sha256;\n\tsecret \"not base64!\";\n};\n"))
			return nil
		}, []string{"broken.key:1", "not base64"}, 1},
		{"wrong tsig secret", func(t *testing.T) []string {
			e.keyFile = tlWriteTemp(t, t.TempDir(), "wrong.key", []byte("hmac-sha256:tlsa-sync.bad-sync.test:"+NewTSIGKey("x").Secret+"\n"))
			// A renewed certificate, so that there is something to update.
			renewed := tlWriteTemp(t, t.TempDir(), "renewed.pem", tlLeaf(t, e.mx, nil, nil).CertPEM)
			return []string{"-cert", renewed}
		}, []string{"bad-sync.test.", "BADSIG"}, 1},
		{"server does not answer", func(t *testing.T) []string {
			port, _ := FreePort()
			return []string{"-server", fmt.Sprintf("127.0.0.1:%d", port)}
		}, []string{"127.0.0.1:"}, 1},
		{"half-written certificate", func(t *testing.T) []string {
			half := tlWriteTemp(t, t.TempDir(), "half.pem", tlLeaf(t, e.mx, nil, nil).CertPEM[:300])
			return []string{"-cert", half}
		}, []string{"half.pem", "truncated"}, 1},
		{"unknown record parameter", func(t *testing.T) []string { return []string{"-records", "391"} }, []string{"records"}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.keyFile = good
			e.state = tlWriteTemp(t, t.TempDir(), "state.json", goodState)
			extra := c.prepare(t)
			out, code := e.sync(t, extra...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
			if got := e.served(t); !slices.Equal(got, before) {
				t.Errorf("records changed: %v, were %v", got, before)
			}
		})
	}
	e.keyFile = good

	// A zone that refuses updates (Knot's answer NOTAUTH, BIND's REFUSED): named, nothing
	// changed.
	for _, kind := range []string{"bind", "knot"} {
		ro := newTSEnv(t, kind, "refuse-"+kind+".test.", true)
		ro.install(t, tlLeaf(t, ro.mx, nil, nil))
		out, code := ro.sync(t)
		if code != 1 || !strings.Contains(out, "refuse-"+kind+".test.") || !strings.Contains(out, "refused") {
			t.Errorf("%s read-only zone: exit %d, want 1 and a message naming the zone:\n%s", kind, code, out)
		}
		if got := ro.served(t); len(got) != 0 {
			t.Errorf("%s read-only zone serves %v", kind, got)
		}
	}
}

// parseTestKey reads a PKCS #8 private key in PEM.
func parseTestKey(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	return k.(crypto.Signer), nil
}

// tsReceiver is an SMTP server with STARTTLS that serves the certificate and key installed
// at its paths, read again when the reload marker file changes (what `postfix reload` does
// for Postfix): the gate's -reload command touches the marker.
type tsReceiver struct {
	*tlReceiver
	cert   atomic.Pointer[tls.Certificate]
	marker string
	loads  atomic.Int32
	stop   chan struct{}
}

func startTSReceiver(t *testing.T, certFile, keyFile, marker string) *tsReceiver {
	t.Helper()
	r := &tsReceiver{marker: marker, stop: make(chan struct{})}
	load := func() error {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return err
		}
		r.cert.Store(&c)
		r.loads.Add(1)
		return nil
	}
	if err := load(); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.tlReceiver, err = tlNewReceiver("127.0.0.1:0", tls.Certificate{}, false); err != nil {
		t.Fatal(err)
	}
	r.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.cert.Load(), nil }}
	go func() {
		var last time.Time
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if fi, err := os.Stat(marker); err == nil && fi.ModTime() != last {
				last = fi.ModTime()
				if err := load(); err != nil {
					t.Errorf("receiver reload: %v", err)
				}
			}
		}
	}()
	t.Cleanup(func() { close(r.stop); r.Close() })
	return r
}

// tsDANECheck is what a DANE sender does, polled: the TLSA RRset from a validating, caching
// resolver (Unbound, which keeps it for its TTL), then STARTTLS to the MX and the
// certificate matched against it (RFC 7672 §3).
type tsDANECheck struct {
	stop     chan struct{}
	done     chan struct{}
	checks   int
	failures []string
}

func startDANECheck(resolverAddr, owner, host, mxAddr string, every time.Duration) *tsDANECheck {
	c := &tsDANECheck{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			if msg := daneCheckOnce(resolverAddr, owner, host, mxAddr); msg != "" {
				c.failures = append(c.failures, time.Now().Format("15:04:05.000")+" "+msg)
			}
			c.checks++
			select {
			case <-c.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return c
}

func (c *tsDANECheck) Stop() (int, []string) {
	close(c.stop)
	<-c.done
	return c.checks, c.failures
}

func daneCheckOnce(resolverAddr, owner, host, mxAddr string) string {
	r, err := Query(resolverAddr, owner, dns.TypeTLSA, QueryOpts{RD: true, AD: true, DO: true, Timeout: 2 * time.Second})
	if err != nil {
		return "TLSA lookup: " + err.Error()
	}
	if r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData {
		return fmt.Sprintf("TLSA lookup: %s AD=%v", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
	}
	var tlsas []*dns.TLSA
	for _, rr := range r.Answer {
		if x, ok := rr.(*dns.TLSA); ok {
			tlsas = append(tlsas, x)
		}
	}
	chain, err := (tlsa.Probe{Addr: mxAddr, ServerName: host, Timeout: 3 * time.Second}).Fetch(context.Background())
	if err != nil {
		return err.Error()
	}
	if _, err := dane.Verify(chain, tlsas, []string{host}, time.Now()); err != nil {
		return fmt.Sprintf("DANE: %v (TLSA %d records)", err, len(tlsas))
	}
	return ""
}

// TestTLSAGate renews a certificate with lego from pebble, with danelab tlsa gate as lego's
// renew hook, while a DANE check of the MX (validating resolver with its cache, STARTTLS,
// the certificate matched against the TLSA RRset) runs every 100 ms: it must never fail. The
// first renewal has a new key nobody staged (the gate publishes it and waits a TTL after
// every server serves it); the second comes from the CSR of a key staged with danelab tlsa
// next two TTLs before (the gate installs at once, with the staged key). A gate whose update
// is refused leaves the old certificate in place and says why.
func TestTLSAGate(t *testing.T) {
	t.Parallel()
	e := newTSEnv(t, "bind", "gate.test.", false)
	u := StartUnbound(t, Stub{Anchor: e.p.anchor, Addr: e.p.Addr})
	ca := startPebble(t)
	legoDir := filepath.Join(e.dir, "lego")
	if out, code := ca.Lego(t, legoDir, 90*time.Second, "--domains", e.mx, "--key-type", "ec256", "run"); code != 0 {
		t.Fatalf("lego run: exit %d\n%s", code, out)
	}
	legoCert := filepath.Join(legoDir, "certificates", e.mx+".crt")
	legoKey := filepath.Join(legoDir, "certificates", e.mx+".key")
	installKey := filepath.Join(e.dir, "privkey.pem")
	for _, f := range [][2]string{{legoCert, e.cert}, {legoKey, installKey}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		tlWriteAtomic(t, f[1], b)
	}
	first := spki311(t, e.cert)
	e.mustSync(t)
	marker := filepath.Join(e.dir, "reloaded")
	rcv := startTSReceiver(t, e.cert, installKey, marker)
	if msg := waitFor(10*time.Second, func() string { return daneCheckOnce(u.Addr, e.owner, e.mx, rcv.Addr) }); msg != "" {
		t.Fatalf("DANE check before the renewal: %s", msg)
	}
	check := startDANECheck(u.Addr, e.owner, e.mx, rcv.Addr, 100*time.Millisecond)

	next := filepath.Join(e.dir, "next.key")
	hook := func(name string, extra ...string) string {
		args := []string{tlDanelab(t), "tlsa", "gate", "-host", e.mx, "-cert", e.cert, "-install-key", installKey,
			"-zone", e.zone, "-server", e.p.Addr, "-tsig", e.keyFile, "-state", e.state, "-ttl", "2", "-hold", "3s",
			"-validator", u.Addr, "-servers", e.p.Addr, "-poll", "200ms", "-wait", "30s", "-next", next,
			"-reload", "touch " + marker}
		script := "#!/bin/sh\nexec"
		for _, a := range append(args, extra...) {
			script += " '" + a + "'"
		}
		return tlWriteTemp(t, e.dir, name, []byte(script+" >>"+filepath.Join(e.dir, name+".log")+" 2>&1\n"))
	}
	// next must exist for -next: stage nothing yet (an empty directory would do too).
	if out, code := tlRun(t, 30*time.Second, exec.Command(tlDanelab(t), "tlsa", "next", "-key", next, "-cert", e.cert)); code != 0 {
		t.Fatalf("danelab tlsa next: %s", out)
	}
	staged := "3 1 1 " + tlOpenSSLKeySPKI(t, next)
	h1 := hook("gate1.sh")
	if err := os.Chmod(h1, 0o755); err != nil {
		t.Fatal(err)
	}
	// A sync daemon on the same state runs every 300 ms meanwhile: it must keep the records
	// the gate published (they are in the state) instead of removing them.
	syncStop, syncDone := make(chan struct{}), make(chan []string)
	go func() {
		var bad []string
		for {
			args := []string{"tlsa", "sync", "-once", "-host", e.mx, "-cert", e.cert, "-zone", e.zone, "-server", e.p.Addr,
				"-tsig", e.keyFile, "-state", e.state, "-ttl", "2", "-hold", "3s", "-next", next}
			if out, err := exec.Command(tlDanelab(t), args...).CombinedOutput(); err != nil {
				bad = append(bad, fmt.Sprintf("%v: %s", err, out))
			}
			select {
			case <-syncStop:
				syncDone <- bad
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	out, code := ca.Lego(t, legoDir, 120*time.Second, "--domains", e.mx, "--key-type", "ec256", "renew", "--days", "9999", "--no-random-sleep", "--renew-hook", h1)
	close(syncStop)
	if bad := <-syncDone; len(bad) > 0 {
		t.Errorf("the sync runs beside the gate failed:\n%s", strings.Join(bad, "\n"))
	}
	gateLog, _ := os.ReadFile(filepath.Join(e.dir, "gate1.sh.log"))
	if code != 0 {
		t.Fatalf("lego renew with the gate: exit %d\n%s\ngate:\n%s", code, out, gateLog)
	}
	took := time.Since(start)
	second := spki311(t, e.cert)
	if second == first || second != spki311(t, legoCert) {
		t.Fatalf("after the gate: installed %s, lego's %s, first %s", second, spki311(t, legoCert), first)
	}
	if took < 2*time.Second {
		t.Errorf("the gate installed an unstaged key after %v, less than the TTL (2s)\n%s", took, gateLog)
	}
	if !strings.Contains(string(gateLog), "for 2s (the TTL") {
		t.Errorf("gate log does not say it waited the TTL:\n%s", gateLog)
	}
	if msg := waitFor(3*time.Second, func() string {
		if c, _ := tls.LoadX509KeyPair(e.cert, installKey); rcv.loads.Load() < 2 || c.Leaf == nil {
			return "not reloaded"
		}
		return ""
	}); msg != "" {
		t.Errorf("the receiver was not reloaded by the gate's -reload: %s", msg)
	}
	t.Logf("unstaged renewal through the gate: %v", took.Round(time.Millisecond))

	// Staged: the key of tlsa next has been published since the first gate's sync (it ran
	// with -next); wait two TTLs, renew from its CSR: no wait, the staged key installed.
	if got := e.served(t); !slices.Contains(got, staged) {
		t.Fatalf("staged key not published: %v", got)
	}
	time.Sleep(4200 * time.Millisecond)
	h2 := hook("gate2.sh")
	if err := os.Chmod(h2, 0o755); err != nil {
		t.Fatal(err)
	}
	csr := strings.TrimSuffix(next, ".key") + ".csr"
	start = time.Now()
	out, code = ca.Lego(t, legoDir, 120*time.Second, "--csr", csr, "renew", "--days", "9999", "--no-random-sleep", "--renew-hook", h2)
	gateLog, _ = os.ReadFile(filepath.Join(e.dir, "gate2.sh.log"))
	if code != 0 {
		t.Fatalf("lego renew --csr with the gate: exit %d\n%s\ngate:\n%s", code, out, gateLog)
	}
	took = time.Since(start)
	if got := spki311(t, e.cert); got != staged {
		t.Fatalf("after the staged renewal: installed %s, want the staged %s\n%s", got, staged, gateLog)
	}
	if k := "3 1 1 " + tlOpenSSLKeySPKI(t, installKey); k != staged {
		t.Errorf("installed key %s, want the staged key %s", k, staged)
	}
	if !strings.Contains(string(gateLog), "no wait") {
		t.Errorf("the staged renewal waited:\n%s", gateLog)
	}
	t.Logf("staged renewal through the gate: %v", took.Round(time.Millisecond))
	time.Sleep(2500 * time.Millisecond) // keep checking past a TTL after the switch
	checks, failures := check.Stop()
	if len(failures) > 0 {
		t.Errorf("DANE check failed %d times of %d:\n%s", len(failures), checks, strings.Join(failures, "\n"))
	}
	if checks < 50 {
		t.Errorf("only %d DANE checks ran", checks)
	}
	t.Logf("%d DANE checks every 100ms, %d failures", checks, len(failures))
}

// TestTLSAGateRefused: the update is refused (a zone that takes none): the gate exits 1
// naming the zone and the refusal, and the installed certificate and key stay as they were.
func TestTLSAGateRefused(t *testing.T) {
	t.Parallel()
	e := newTSEnv(t, "knot", "gate-refused.test.", true)
	old := tlLeaf(t, e.mx, nil, nil)
	e.install(t, old)
	installKey := tlWriteTemp(t, e.dir, "privkey.pem", old.KeyPEM)
	renewed := tlLeaf(t, e.mx, nil, nil)
	newCert := tlWriteTemp(t, e.dir, "new.pem", renewed.CertPEM)
	newKey := tlWriteTemp(t, e.dir, "new.key", renewed.KeyPEM)
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"refused", []string{"-new-cert", newCert, "-new-key", newKey}, []string{"gate-refused.test.", "refused", "old one stays"}},
		{"key of another certificate", []string{"-new-cert", newCert, "-new-key", tlWriteTemp(t, e.dir, "other.key", old.KeyPEM)}, []string{"other.key", "not the key"}},
		{"installing over the ACME client's file", []string{"-new-cert", newCert, "-new-key", installKey}, []string{"privkey.pem", "ACME client's own file"}},
		// certbot runs the hook for every certificate it renews: not this host's, nothing to do.
		{"certificate for another host", []string{"-new-cert", tlWriteTemp(t, e.dir, "www.pem", tlLeaf(t, "www.gate-refused.test", nil, renewed.Key).CertPEM), "-new-key", newKey}, []string{"nothing to do"}},
		{"half-written certificate", []string{"-new-cert", tlWriteTemp(t, e.dir, "half.pem", renewed.CertPEM[:200]), "-new-key", newKey}, []string{"half.pem", "truncated"}},
	}
	for _, c := range cases {
		args := append([]string{"tlsa", "gate", "-host", e.mx, "-cert", e.cert, "-install-key", installKey, "-zone", e.zone,
			"-server", e.p.Addr, "-tsig", e.keyFile, "-state", e.state, "-ttl", "2", "-servers", e.p.Addr,
			"-validator", "127.0.0.1:1", "-wait", "5s", "-reload", "touch " + filepath.Join(e.dir, "reloaded")}, c.args...)
		out, code := tlRun(t, 60*time.Second, exec.Command(tlDanelab(t), args...))
		if want := map[bool]int{true: 0, false: 1}[c.name == "certificate for another host"]; code != want {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, code, want, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not say %q:\n%s", c.name, w, out)
			}
		}
		if b, _ := os.ReadFile(e.cert); string(b) != string(old.CertPEM) {
			t.Errorf("%s: the installed certificate changed", c.name)
		}
		if b, _ := os.ReadFile(installKey); string(b) != string(old.KeyPEM) {
			t.Errorf("%s: the installed key changed", c.name)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "reloaded")); err == nil {
			t.Errorf("%s: the reload command ran", c.name)
		}
	}
}

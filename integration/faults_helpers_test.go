package integration

// Harness of the fault tests (faults_test.go): a server with the control API, the repository's
// example.test and a secure child zone signed.example.test on the same server, a validating
// Unbound that reaches both, and a small client for the control API.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// faultChildZone is signed.example.test, served by the same server as its parent. Its DS in
// the parent is replaced by the real one once the server has made the child's key.
const faultChildZone = `$ORIGIN signed.example.test.
$TTL 3600
@               IN SOA   ns1.signed.example.test. hostmaster.signed.example.test. 1 3600 900 1209600 300
                IN NS    ns1.signed.example.test.
                IN MX    10 mx.signed.example.test.
ns1             IN A     127.0.0.1
mx              IN A     127.0.0.33
_25._tcp.mx     IN TLSA  3 1 1 0c72ac70b745ac19998811b131d662c9ac69dbdbe7cb23e5b514b56664c5d3d6
`

var (
	faultDSLine   = regexp.MustCompile(`(?m)^signed[ \t]+IN[ \t]+DS[ \t]+.*$`)
	faultGlueLine = regexp.MustCompile(`(?m)^ns1\.signed[ \t]+IN[ \t]+A[ \t]+\S+`)
)

// faultLab is one server under test with the control API and the two zones.
type faultLab struct {
	Srv     *Server
	API     string // http://127.0.0.1:port
	Parent  *Anchor
	Child   *Anchor
	ChildDS *dns.DS // the child's real DS, as written to the parent zone file
	// Want are the TLSA records of both zone files by owner: what the server serves
	// without faults.
	Want map[faultKey][]dns.RR
}

// faultKey names an RRset: owner (lower case) and type.
type faultKey struct {
	name  string
	rtype uint16
}

// faultParentZone is the repository's example.test with the glue of signed.example.test
// pointing at 127.0.0.1 (the stub-zones reach it on the server's port anyway).
func faultParentZone(tb testing.TB) string {
	tb.Helper()
	text := RepoZone(tb, "example.test.zone")
	if !faultDSLine.MatchString(text) || !faultGlueLine.MatchString(text) {
		tb.Fatalf("zones/example.test.zone no longer has the delegation signed.example.test with a DS and glue ns1.signed: the fault tests need it")
	}
	return faultGlueLine.ReplaceAllString(text, "ns1.signed      IN A     127.0.0.1")
}

// newFaultLab starts a server with the control API, then replaces the placeholder DS of
// signed.example.test in the parent zone file by the DS of the key the server generated for
// the child, and waits until the reloaded parent serves it.
func newFaultLab(parentText string) (*faultLab, error) {
	cport, err := FreePort()
	if err != nil {
		return nil, err
	}
	srv, err := NewServer(ServerConfig{
		Zones: map[string]string{"example.test": parentText, "signed.example.test": faultChildZone},
		Extra: []string{"control 127.0.0.1:" + strconv.Itoa(cport)},
	})
	if err != nil {
		return nil, err
	}
	l := &faultLab{Srv: srv, API: "http://127.0.0.1:" + strconv.Itoa(cport)}
	fail := func(err error) (*faultLab, error) {
		srv.Stop()
		return nil, err
	}
	if l.Parent, err = ReadAnchor(srv.KeyDir, "example.test."); err != nil {
		return fail(err)
	}
	if l.Child, err = ReadAnchor(srv.KeyDir, "signed.example.test."); err != nil {
		return fail(err)
	}
	for _, ds := range l.Child.DS {
		if ds.DigestType == dns.SHA256 {
			l.ChildDS = ds
		}
	}
	if l.ChildDS == nil || len(l.Parent.DS) == 0 {
		return fail(fmt.Errorf("no SHA-256 DS in %s/dsset-signed.example.test. or no dsset for example.test.", srv.KeyDir))
	}
	dsLine := fmt.Sprintf("signed          IN DS    %d %d %d %s", l.ChildDS.KeyTag, l.ChildDS.Algorithm, l.ChildDS.DigestType, l.ChildDS.Digest)
	parentText = faultDSLine.ReplaceAllString(parentText, dsLine)
	// Write a file the poller does not read (no .zone suffix) and rename it over the zone
	// file, so that the server never sees a half-written zone.
	tmp := srv.ZoneFile("example.test") + ".new"
	if err := os.WriteFile(tmp, []byte(parentText), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, srv.ZoneFile("example.test")); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := Query(srv.Addr, "signed.example.test.", dns.TypeDS, QueryOpts{DO: true, Timeout: time.Second})
		if err == nil && r.Rcode == dns.RcodeSuccess {
			if ds := faultDSOf(r.Answer); ds != nil && strings.EqualFold(ds.Digest, l.ChildDS.Digest) {
				break
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the parent does not serve the child's DS %s 15s after the zone file changed (last: %v)\n%s", dsLine, err, tail(srv.LogPath, 2000)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.Want = map[faultKey][]dns.RR{}
	for origin, text := range map[string]string{"example.test.": parentText, "signed.example.test.": faultChildZone} {
		zp := dns.NewZoneParser(strings.NewReader(text), origin, origin+"zone")
		for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
			if rr.Header().Rrtype != dns.TypeTLSA {
				continue // the fault tests compare TLSA data only (the DS is ChildDS)
			}
			k := faultKey{strings.ToLower(rr.Header().Name), rr.Header().Rrtype}
			l.Want[k] = append(l.Want[k], rr)
		}
		if err := zp.Err(); err != nil {
			return fail(fmt.Errorf("parsing %s: %w", origin, err))
		}
	}
	return l, nil
}

// Stop stops the server.
func (l *faultLab) Stop() { l.Srv.Stop() }

// faultDSOf returns the first DS of rrs.
func faultDSOf(rrs []dns.RR) *dns.DS {
	for _, rr := range rrs {
		if ds, ok := rr.(*dns.DS); ok {
			return ds
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// Control API client

var faultHTTP = &http.Client{Timeout: 5 * time.Second}

// call sends a request with an optional JSON body and decodes a JSON answer into out.
func (l *faultLab) call(method, path string, body any, wantCode int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, l.API+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := faultHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding %q: %w", method, path, b, err)
		}
	}
	return nil
}

// faultView is a fault as GET /faults and POST /faults show it.
type faultView struct {
	ID      string         `json:"id"`
	Spec    map[string]any `json:"spec"`
	Created time.Time      `json:"created"`
	Matched int64          `json:"matched"`
	Applied int64          `json:"applied"`
	Active  bool           `json:"active"`
}

// AddFault posts a fault and returns what the API answered (201).
func (l *faultLab) AddFault(spec map[string]any) (faultView, error) {
	var v faultView
	err := l.call(http.MethodPost, "/faults", spec, http.StatusCreated, &v)
	if err == nil && v.ID == "" {
		err = fmt.Errorf("POST /faults %v: no id in the answer", spec)
	}
	return v, err
}

// Faults lists the faults.
func (l *faultLab) Faults() ([]faultView, error) {
	var vs []faultView
	err := l.call(http.MethodGet, "/faults", nil, http.StatusOK, &vs)
	return vs, err
}

// Reset removes every fault and runtime record and forgets the history.
func (l *faultLab) Reset() error { return l.call(http.MethodPost, "/reset", nil, http.StatusOK, nil) }

// historyEntry is one question of GET /history.
type historyEntry struct {
	Time  time.Time `json:"time"`
	Zone  string    `json:"zone"`
	Name  string    `json:"name"`
	Type  string    `json:"type"`
	Proto string    `json:"proto"`
	Rcode string    `json:"rcode"`
	Fault string    `json:"fault"`
	Mode  string    `json:"mode"`
}

// History returns the questions asked for name and type.
func (l *faultLab) History(name, qtype string) ([]historyEntry, error) {
	var hs []historyEntry
	err := l.call(http.MethodGet, "/history?name="+name+"&type="+qtype, nil, http.StatusOK, &hs)
	return hs, err
}

// ---------------------------------------------------------------------------------------------
// Unbound for the fault lab

// startFaultUnbound starts a validating Unbound whose only trust anchor is the DS of
// example.test, with stub-zones for example.test and for signed.example.test (Unbound would
// follow the referral to port 53 of the glue address otherwise), so that the child is secure
// only through the DS its parent serves. Unbound's defaults that decide verdicts are kept:
// QNAME minimisation, aggressive NSEC (RFC 8198), val-sig-skew-min/max, discard-timeout.
// Extra lines go into the server section.
func startFaultUnbound(l *faultLab, extra ...string) (*Unbound, error) {
	var anchors []dns.RR
	for _, ds := range l.Parent.DS {
		anchors = append(anchors, ds)
	}
	// The probe is a name no test asks about, so that nothing useful is cached.
	return startUnbound(unboundSpec{Anchors: anchors, Zones: []string{"example.test", "signed.example.test"}, StubAddr: l.Srv.Addr,
		Server: extra, Probe: "ns2.example.test.", ProbeType: dns.TypeAAAA})
}

// ---------------------------------------------------------------------------------------------
// DNSSEC checks of direct answers

// faultSigs returns the RRSIGs in rrs covering type t at name.
func faultSigs(rrs []dns.RR, name string, t uint16) []*dns.RRSIG {
	var out []*dns.RRSIG
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok && s.TypeCovered == t && strings.EqualFold(s.Hdr.Name, name) {
			out = append(out, s)
		}
	}
	return out
}

// faultSet returns the records of type t at name in rrs.
func faultSet(rrs []dns.RR, name string, t uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == t && strings.EqualFold(rr.Header().Name, name) {
			out = append(out, rr)
		}
	}
	return out
}

// faultVerify checks the signature's cryptography with the keys given (not its dates).
func faultVerify(set []dns.RR, sig *dns.RRSIG, keys []*dns.DNSKEY) error {
	cp := make([]dns.RR, len(set))
	for i, rr := range set {
		cp[i] = dns.Copy(rr)
		cp[i].Header().Name = strings.ToLower(rr.Header().Name)
	}
	s := dns.Copy(sig).(*dns.RRSIG)
	s.Hdr.Name = strings.ToLower(s.Hdr.Name)
	var errs []string
	for _, k := range keys {
		if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
			continue
		}
		err := s.Verify(k, cp)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 0 {
		return fmt.Errorf("no key with tag %d algorithm %d", sig.KeyTag, sig.Algorithm)
	}
	return errors.New(strings.Join(errs, "; "))
}

// faultSignedNow checks that set has an RRSIG that verifies with keys and is valid now.
func faultSignedNow(rrs []dns.RR, name string, t uint16, keys []*dns.DNSKEY) error {
	set := faultSet(rrs, name, t)
	if len(set) == 0 {
		return fmt.Errorf("no %s %s", name, typeString(t))
	}
	sigs := faultSigs(rrs, name, t)
	if len(sigs) == 0 {
		return fmt.Errorf("%s %s has no RRSIG", name, typeString(t))
	}
	var errs []string
	for _, s := range sigs {
		if err := faultVerify(set, s, keys); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if !s.ValidityPeriod(time.Now()) {
			errs = append(errs, fmt.Sprintf("RRSIG %d..%d not valid now", s.Inception, s.Expiration))
			continue
		}
		return nil
	}
	return fmt.Errorf("%s %s: %s", name, typeString(t), strings.Join(errs, "; "))
}

// faultWireLabels returns the labels of name as octets, lower-cased, rightmost first.
func faultWireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil
	}
	var labels [][]byte
	for i := 0; i < off && buf[i] != 0; i += int(buf[i]) + 1 {
		labels = append(labels, bytes.ToLower(buf[i+1:i+1+int(buf[i])]))
	}
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return labels
}

// faultCanonCmp orders names canonically (RFC 4034 §6.1).
func faultCanonCmp(a, b string) int {
	la, lb := faultWireLabels(a), faultWireLabels(b)
	for i := 0; i < len(la) && i < len(lb); i++ {
		if c := bytes.Compare(la[i], lb[i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// faultCovers reports whether the NSEC owner→next covers name (owner < name < next, the
// last NSEC of the chain wrapping around to the apex).
func faultCovers(owner, next, name string) bool {
	if faultCanonCmp(owner, next) < 0 {
		return faultCanonCmp(owner, name) < 0 && faultCanonCmp(name, next) < 0
	}
	return faultCanonCmp(owner, name) < 0 || faultCanonCmp(name, next) < 0
}

// faultEDECodes returns the extended DNS error codes of r.
func faultEDECodes(r *dns.Msg) []uint16 {
	var out []uint16
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_EDE); ok {
				out = append(out, e.InfoCode)
			}
		}
	}
	return out
}

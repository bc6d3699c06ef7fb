package check_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/check"
	"github.com/danelab/danelab/harness/resolver"
	"github.com/danelab/danelab/internal/peer"
	"github.com/miekg/dns"
)

// ldnsDaneScenarios are the scenarios whose hosts have secure TLSA records that ldns-dane can
// judge from the records and the chain alone.
var ldnsDaneScenarios = regexp.MustCompile(`^tlsa-(311-match|mismatch|211-issuer|211-name-mismatch|310-full|312-match|301-match|211-leaf-expired|311-cert-expired)$`)

// TestLdnsDaneAgrees: for every MX host of the TLSA scenarios above, check's "DANE
// authentication" verdict must equal ldns-dane's (ldnsutils), an independent DANE
// implementation (OpenSSL's chain building and dates, ldns's matching).
//
// ldns-dane (1.8.3) cannot speak SMTP: it has no STARTTLS option, and with -t it connects to
// the port of the TLSA owner name (25). So the test does the STARTTLS itself, saves the chain
// the server presents as PEM, and runs
//
//	ldns-dane -c CHAIN.pem -t TLSAFILE verify HOST 25
//
// which verifies the chain against the TLSA records of the file without DNS and without a
// connection. HOST is given without its final dot: with "-t FILE verify" alone ldns-dane
// takes the reference name from the TLSA owner, with the dot, and then fails every name
// check ("hostname mismatch"). The records in the file come from the harness resolver; they
// are secure (check's own TLSA item passes). ldns-dane checks names for every usage (RFC
// 6698), RFC 7672 only for DANE-TA (2); the scenarios here serve DANE-EE (3) certificates
// that name the host, so that difference does not show.
func TestLdnsDaneAgrees(t *testing.T) {
	bin := peer.Need(t, "ldns-dane")
	f, newResolver := labFixture(t, "127.11", ldnsDaneScenarios.MatchString)
	in := f.Info()
	if len(in.Scenarios) != 9 {
		t.Fatalf("%d scenarios match, want 9", len(in.Scenarios))
	}
	dir := t.TempDir()

	start := time.Now()
	compared := 0
	for _, sc := range in.Scenarios {
		res := newResolver()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rep, err := check.Run(ctx, sc.Domain, check.Config{Resolver: res, Iterative: true, Port: in.SMTPPort, Timeout: 3 * time.Second})
		if err != nil {
			cancel()
			t.Errorf("%s: %v", sc.Name, err)
			continue
		}
		hosts := 0
		for _, it := range rep.Items {
			if it.Name != "DANE authentication" || !strings.HasPrefix(it.Group, "host ") {
				continue
			}
			hosts++
			host := dns.Fqdn(strings.TrimPrefix(it.Group, "host "))
			ok, out, err := ldnsDane(ctx, bin, res, host, in.SMTPPort, filepath.Join(dir, fmt.Sprintf("%s-%d", sc.Name, hosts)))
			if err != nil {
				t.Errorf("%s %s: ldns-dane: %v\n%s", sc.Name, host, err, out)
				continue
			}
			compared++
			want := check.Fail
			if ok {
				want = check.Pass
			}
			t.Logf("%s %s: check %s (%s); ldns-dane %s", sc.Name, strings.TrimSuffix(host, "."), it.Verdict, it.Detail, strings.TrimSpace(out))
			if it.Verdict != want {
				t.Errorf("%s %s: check says %s (%s), ldns-dane says %q", sc.Name, host, it.Verdict, it.Detail, strings.TrimSpace(out))
			}
		}
		cancel()
		if hosts == 0 {
			t.Errorf("%s: no \"DANE authentication\" item", sc.Name)
		}
	}
	t.Logf("%d hosts compared in %v", compared, time.Since(start).Round(time.Millisecond))
}

// ldnsDane fetches host's TLSA records and the chain its SMTP server presents (STARTTLS at
// its first address, the given port) and asks ldns-dane whether they DANE-validate. It
// returns ldns-dane's verdict and its output; err when ldns-dane could not decide.
func ldnsDane(ctx context.Context, bin string, res *resolver.Resolver, host string, port int, prefix string) (bool, string, error) {
	owner := "_25._tcp." + host
	r, err := res.Resolve(ctx, owner, dns.TypeTLSA)
	if err != nil {
		return false, "", err
	}
	var tlsa strings.Builder
	for _, rr := range r.Msg.Answer {
		if rr, ok := rr.(*dns.TLSA); ok {
			tlsa.WriteString(rr.String() + "\n")
		}
	}
	if tlsa.Len() == 0 {
		return false, "", fmt.Errorf("no TLSA records at %s", owner)
	}
	a, err := res.Resolve(ctx, host, dns.TypeA)
	if err != nil {
		return false, "", err
	}
	var addr string
	for _, rr := range a.Msg.Answer {
		if rr, ok := rr.(*dns.A); ok {
			addr = rr.A.String()
			break
		}
	}
	if addr == "" {
		return false, "", fmt.Errorf("no A record for %s", host)
	}
	chain, err := starttlsChain(ctx, net.JoinHostPort(addr, fmt.Sprint(port)), strings.TrimSuffix(host, "."))
	if err != nil {
		return false, "", err
	}
	tlsaFile, certFile := prefix+".tlsa", prefix+".pem"
	if err := os.WriteFile(tlsaFile, []byte(tlsa.String()), 0o644); err != nil {
		return false, "", err
	}
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		return false, "", err
	}
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ectx, bin, "-c", certFile, "-t", tlsaFile, "verify", strings.TrimSuffix(host, "."), "25").CombinedOutput()
	s := string(out)
	var ee *exec.ExitError
	switch {
	case err == nil && strings.Contains(s, "dane-validated successfully"):
		return true, s, nil
	case (err == nil || errors.As(err, &ee)) && strings.Contains(s, "did not dane-validate"):
		return false, s, nil
	}
	return false, s, fmt.Errorf("no verdict (exit: %v)", err)
}

// starttlsChain does EHLO and STARTTLS at addr and returns the certificates the server
// presents, as PEM, leaf first.
func starttlsChain(ctx context.Context, addr, sni string) ([]byte, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if _, err := tp.Cmd("EHLO ldns-dane.test"); err != nil {
		return nil, err
	}
	if _, _, err := tp.ReadResponse(250); err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if _, err := tp.Cmd("STARTTLS"); err != nil {
		return nil, err
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, fmt.Errorf("STARTTLS: %w", err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	defer tc.Close()
	var b strings.Builder
	w := bufio.NewWriter(&b)
	for _, c := range tc.ConnectionState().PeerCertificates {
		if err := pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return []byte(b.String()), nil
}

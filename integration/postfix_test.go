package integration

// A real Postfix as the DANE sender (postfix_helpers_test.go) against a lab: a matching TLSA
// record delivers over verified TLS, a mismatching one defers with 4.7.5 and, once the queue
// lifetime is over, bounces with a delivery status notification that reaches the sender's
// own domain by SMTP.

import (
	"bytes"
	"crypto/x509"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danelab/danelab/harness/lab"
	"github.com/danelab/danelab/harness/receiver"
	"github.com/danelab/danelab/internal/peer"
	"github.com/danelab/danelab/plugin/danezone/tlsa"
	"github.com/miekg/dns"
)

// pfSpareIPs returns n distinct candidates on which port is free right now.
func pfSpareIPs(t *testing.T, port, n int, udp bool, candidates ...string) []string {
	t.Helper()
	var ips []string
	for _, c := range candidates {
		if len(ips) == n {
			break
		}
		if ip, err := tlSpareLoopback(port, udp, c); err == nil {
			ips = append(ips, ip)
		}
	}
	if len(ips) < n {
		t.Fatalf("port %d is free on only %v of %v", port, ips, candidates)
	}
	return ips
}

// pfLabUnbound runs an Unbound on ip:53 with the configuration the lab writes (root anchor,
// a stub per lab zone); stopped at test end.
func pfLabUnbound(t *testing.T, l *lab.Lab, ip string) *Unbound {
	t.Helper()
	dir, cleanup, err := tempDir("unbound53")
	if err != nil {
		t.Fatal(err)
	}
	u := &Unbound{Dir: dir, LogPath: filepath.Join(dir, "unbound.log"), Conf: filepath.Join(dir, "unbound.conf"),
		cleanup: cleanup, Port: 53, Addr: net.JoinHostPort(ip, "53")}
	t.Cleanup(u.Stop)
	anchor := filepath.Join(dir, "root.anchor")
	if err := l.WriteAnchor(anchor); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteUnboundConfig(u.Conf, lab.UnboundOptions{Listen: u.Addr, AnchorFile: anchor, Dir: dir, Verbosity: 1}); err != nil {
		t.Fatal(err)
	}
	tlRunUnbound(t, u, "test.")
	return u
}

// pfMessageID returns the Message-ID header of a raw message ("" when none).
func pfMessageID(data []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return ""
	}
	return msg.Header.Get("Message-Id")
}

// TestPostfixSmoke: good.test publishes the 3 1 1 of its receiver's key, bad.test the 3 1 1 of
// a key nobody serves, sender.test (the sender's domain) the 3 1 1 of its own receiver. One
// message to each of good.test and bad.test: the first is delivered over TLS that Postfix
// calls Verified; the second never reaches bad.test's receiver, is deferred with 4.7.5
// "Server certificate not verified" after an Untrusted TLS handshake, and when
// maximal_queue_lifetime (30s here) is over, its DSN (Status: 4.7.5) arrives at sender.test.
func TestPostfixSmoke(t *testing.T) {
	for _, p := range []string{"postfix", "unbound", "unshare"} {
		peer.Need(t, p)
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root (as in CI): receivers on port 25, Unbound on port 53, a private mount namespace for Postfix")
	}
	const lifetime = 30 * time.Second
	testStart := time.Now()
	ips := pfSpareIPs(t, 25, 3, false, "127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64", "127.0.0.65",
		"127.0.0.66", "127.0.0.67", "127.0.0.68", "127.0.0.69")
	resolverIP := pfSpareIPs(t, 53, 1, true, "127.0.0.55", "127.0.0.157", "127.0.0.158", "127.0.0.159")[0]

	startReceiver := func(ip, host string) *receiver.Receiver {
		t.Helper()
		r, err := receiver.Start(receiver.Config{Addr: net.JoinHostPort(ip, "25"), Hostname: host, Personality: receiver.SelfSigned})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		return r
	}
	good := startReceiver(ips[0], "mx1.good.test")
	bad := startReceiver(ips[1], "mx1.bad.test")
	home := startReceiver(ips[2], "mx1.sender.test")
	spki := func(c *x509.Certificate) string {
		t.Helper()
		d, err := tlsa.Data(c, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	unrelated, err := receiver.NewSelfSigned([]string{"mx1.bad.test"}, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	domain := func(name, ip, data string) lab.Domain {
		return lab.Domain{Name: name, Records: []string{"@ MX 10 mx1", "mx1 A " + ip, "_25._tcp.mx1 TLSA 3 1 1 " + data}}
	}
	l, err := lab.Start(lab.Config{Domains: []lab.Domain{
		domain("good.test", ips[0], spki(good.Identity().Leaf)),
		domain("bad.test", ips[1], spki(unrelated.Leaf)),
		domain("sender.test", ips[2], spki(home.Identity().Leaf)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Stop() })
	u := pfLabUnbound(t, l, resolverIP)
	for _, owner := range []string{"_25._tcp.mx1.good.test.", "_25._tcp.mx1.bad.test.", "_25._tcp.mx1.sender.test."} {
		if r, err := u.Resolve(owner, dns.TypeTLSA); err != nil || !r.AuthenticatedData {
			t.Fatalf("lab resolver %s: TLSA %s not validated: %v %v", u.Addr, owner, err, r)
		}
	}
	t.Logf("lab, receivers %v and Unbound on %s ready in %v", ips, u.Addr, time.Since(testStart).Round(time.Millisecond))

	start := time.Now()
	m := startPostfix(t, postfixOptions{Dir: t.TempDir(), ResolverIP: resolverIP, MyHostname: "mta.sender.test",
		Settings: map[string]string{"maximal_queue_lifetime": lifetime.String(), "bounce_queue_lifetime": lifetime.String()}})
	tStart := time.Since(start)
	t.Logf("timing: postfix start (check, start, namespace verified) %v", tStart.Round(time.Millisecond))
	if v, err := m.Postconf("maximal_queue_lifetime"); err != nil || v != lifetime.String() {
		t.Fatalf("maximal_queue_lifetime = %q (%v), want %s", v, err, lifetime)
	}

	// The good message.
	start = time.Now()
	const goodMID = "<smoke-good@danelab.test>"
	qGood, err := m.SendMail(postfixMail{From: "alice@sender.test", To: []string{"bob@good.test"}, Subject: "good",
		Body: "to a matching TLSA record\n", MessageID: goodMID})
	if err != nil {
		t.Fatal(err)
	}
	dGood, err := m.WaitDelivery(qGood, "bob@good.test", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tGood := time.Since(start)
	t.Logf("timing: submission to status=%s %v (queue ID %s)\n  %s", dGood.Status, tGood.Round(time.Millisecond), qGood, dGood.Raw)
	if dGood.Status != "sent" || dGood.DSN != "2.0.0" || dGood.RelayHost != "mx1.good.test" || dGood.RelayAddr != ips[0] {
		t.Errorf("good.test: %s", dGood.Raw)
	}
	if dGood.TLS == nil || dGood.TLS.Trust != "Verified" {
		t.Errorf("good.test: no Verified TLS line for the delivery (TLS %+v)\n%s", dGood.TLS, m.Log())
	} else {
		t.Logf("  %s", dGood.TLS.Raw)
	}
	if ds := good.Deliveries(); len(ds) != 1 || !ds[0].TLS || pfMessageID(ds[0].Data) != goodMID || !slices.Equal(ds[0].To, []string{"bob@good.test"}) {
		t.Errorf("good.test's receiver: want one delivery over TLS of %s, got %d: %+v", goodMID, len(ds), ds)
	} else {
		t.Logf("  receiver: TLS %#x SNI %q helo %q", ds[0].TLSVersion, ds[0].SNI, ds[0].Helo)
	}

	// The bad message.
	start = time.Now()
	const badMID = "<smoke-bad@danelab.test>"
	qBad, err := m.SendMail(postfixMail{From: "alice@sender.test", To: []string{"carol@bad.test"}, Subject: "bad",
		Body: "to a TLSA record of another key\n", MessageID: badMID})
	if err != nil {
		t.Fatal(err)
	}
	submitted := time.Now()
	dBad, err := m.WaitDelivery(qBad, "carol@bad.test", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tDeferred := time.Since(start)
	t.Logf("timing: submission to status=%s %v (queue ID %s)\n  %s", dBad.Status, tDeferred.Round(time.Millisecond), qBad, dBad.Raw)
	if dBad.Status != "deferred" || dBad.DSN != "4.7.5" || !strings.Contains(dBad.Reason, "Server certificate not verified") || dBad.RelayAddr != ips[1] {
		t.Errorf("bad.test: want status=deferred dsn=4.7.5 (Server certificate not verified) via %s, got %s", ips[1], dBad.Raw)
	}
	if dBad.TLS == nil || dBad.TLS.Trust != "Untrusted" || !strings.Contains(dBad.TLS.VerifyError, "no matching DANE TLSA records") {
		t.Errorf("bad.test: no Untrusted TLS line after \"no matching DANE TLSA records\" for the attempt (TLS %+v)", dBad.TLS)
	} else {
		t.Logf("  %s (after %q)", dBad.TLS.Raw, dBad.TLS.VerifyError)
	}
	if ss := bad.Sessions(); !slices.ContainsFunc(ss, func(s receiver.Session) bool { return s.TLS }) {
		t.Errorf("bad.test's receiver: no completed TLS handshake (Postfix judges the certificate after it): %+v", ss)
	}
	q, err := m.Queue()
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(q, func(x queuedMsg) bool { return x.QueueID == qBad }); i < 0 {
		t.Errorf("postqueue -j: %s not queued: %+v", qBad, q)
	} else if x := q[i]; x.QueueName != "deferred" || len(x.Recipients) != 1 || !strings.Contains(x.Recipients[0].DelayReason, "Server certificate not verified") {
		t.Errorf("postqueue -j: %+v", x)
	} else {
		t.Logf("  postqueue -j: %s in %s: %s", x.QueueID, x.QueueName, x.Recipients[0].DelayReason)
	}
	if names, err := m.CheckResolver(); err != nil {
		t.Error(err)
	} else if !slices.Contains(names, "smtp") {
		t.Errorf("no smtp process among %v to check the resolver of", names)
	} else {
		t.Logf("resolv.conf of the namespace seen by %v", names)
	}

	// The bounce: once the lifetime is over the next attempt expires the message; flush then
	// rather than wait for the next queue run (up to queue_run_delay + backoff later).
	var dsn receiver.Delivery
	flushed := false
	if msg := waitFor(lifetime+90*time.Second, func() string {
		for _, d := range home.Deliveries() {
			if d.From == "" && slices.Contains(d.To, "alice@sender.test") {
				dsn = d
				return ""
			}
		}
		if !flushed && time.Since(submitted) > lifetime+time.Second {
			flushed = true
			if err := m.Flush(); err != nil {
				t.Errorf("flush: %v", err)
			}
			t.Logf("flushed the queue %v after submission", time.Since(submitted).Round(time.Millisecond))
		}
		return "no DSN at sender.test's receiver"
	}); msg != "" {
		t.Fatalf("%s within %v\n%s", msg, lifetime+90*time.Second, m.Log())
	}
	tDSN := time.Since(submitted)
	t.Logf("timing: submission to the DSN's arrival %v (maximal_queue_lifetime %v)", tDSN.Round(time.Millisecond), lifetime)
	if !dsn.TLS {
		t.Errorf("the DSN came without TLS")
	}
	report, err := parseDSN(dsn.Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, dsn.Data)
	}
	if len(report.Recipients) != 1 {
		t.Fatalf("DSN: want one per-recipient block, got %d\n%s", len(report.Recipients), dsn.Data)
	}
	rcpt := report.Recipients[0]
	t.Logf("DSN per-recipient fields: %v", rcpt)
	if rcpt.Get("Status") != "4.7.5" || rcpt.Get("Action") != "failed" || !strings.Contains(rcpt.Get("Final-Recipient"), "carol@bad.test") {
		t.Errorf("DSN: want Status 4.7.5, Action failed for carol@bad.test, got %v", rcpt)
	}
	if !strings.Contains(rcpt.Get("Diagnostic-Code"), "Server certificate not verified") {
		t.Errorf("DSN Diagnostic-Code %q does not give the reason", rcpt.Get("Diagnostic-Code"))
	}
	if !strings.Contains(report.Original, badMID) {
		t.Errorf("DSN does not return the message %s:\n%s", badMID, report.Original)
	}
	if ds := bad.Deliveries(); len(ds) != 0 {
		t.Errorf("bad.test's receiver got %d messages despite the TLSA mismatch", len(ds))
	}

	ev := m.Events()
	if !ev.Expired(qBad) {
		t.Errorf("no status=expired line for %s", qBad)
	}
	ndr := ev.NDR(qBad)
	if d, ok := ev.Find(ndr, "alice@sender.test", "sent"); ndr == "" || !ok || d.TLS == nil || d.TLS.Trust != "Verified" {
		t.Errorf("the DSN %q was not logged as sent over Verified TLS: %+v", ndr, d)
	}
	attempts := 0
	for _, d := range ev.For(qBad) {
		attempts++
		t.Logf("  attempt: %s", d.Raw)
	}
	t.Logf("%d attempts for %s before it expired", attempts, qBad)
	for _, p := range ev.Problems() {
		t.Logf("postfix: %s", p.Raw)
		if strings.Contains(p.Text, "DNSSEC validation may be unavailable") {
			t.Errorf("Postfix doubts the resolver: %s", p.Raw)
		}
	}
	t.Logf("timing summary: postfix start %v, delivery %v, deferral %v, DSN %v after submission; test %v",
		tStart.Round(time.Millisecond), tGood.Round(time.Millisecond), tDeferred.Round(time.Millisecond),
		tDSN.Round(time.Millisecond), time.Since(testStart).Round(time.Millisecond))
}

// TestPostfixLogParse checks the maillog parser on lines Postfix 3.7 wrote in TestPostfixSmoke
// plus the cases it must not get wrong: a retry in the same smtp process whose connection had
// no TLS must not inherit the TLS line of the attempt before, interleaved processes keep their
// own TLS lines, and a recipient of the same attempt shares its TLS.
func TestPostfixLogParse(t *testing.T) {
	const log = `Nov 22 13:45:40 mta postfix/postfix-script[27783]: starting the Postfix mail system
Nov 22 13:45:40 mta postfix/cleanup[27795]: 4jXVhN4HMRz1SM72: message-id=<smoke-good@danelab.test>
Nov 22 13:45:40 mta postfix/smtp[27801]: Verified TLS connection established to mx1.good.test[127.0.0.61]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Nov 22 13:45:40 mta postfix/smtp[27801]: 4jXVhN4HMRz1SM72: to=<bob@good.test>, relay=mx1.good.test[127.0.0.61]:25, delay=0.19, delays=0.07/0.07/0.05/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 22 13:45:40 mta postfix/smtp[27801]: 4jXVhN4HMRz1SM72: to=<dave@good.test>, relay=mx1.good.test[127.0.0.61]:25, delay=0.19, delays=0.07/0.07/0.05/0, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 22 13:45:40 mta postfix/smtp[27801]: server certificate verification failed for mx1.bad.test[127.0.0.62]:25: num=65:no matching DANE TLSA records
Nov 22 13:45:40 mta postfix/smtp[27802]: Verified TLS connection established to mx1.good.test[127.0.0.61]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
Nov 22 13:45:40 mta postfix/smtp[27801]: Untrusted TLS connection established to mx1.bad.test[127.0.0.62]:25: TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256
Nov 22 13:45:40 mta postfix/smtp[27801]: 4jXVs13zC1z1SL5Q: to=<carol@bad.test>, relay=mx1.bad.test[127.0.0.62]:25, delay=0.02, delays=0.01/0/0.01/0, dsn=4.7.5, status=deferred (Server certificate not verified)
Nov 22 13:45:41 mta postfix/smtp[27802]: 4jXVhN6xxxz1SM80: to=<erin@good.test>, orig_to=<erin>, relay=mx1.good.test[127.0.0.61]:25, delay=1.2, delays=1/0/0.1/0.1, dsn=2.0.0, status=sent (250 2.0.0 OK: queued)
Nov 22 13:45:50 mta postfix/smtp[27801]: 4jXVs13zC1z1SL5Q: to=<carol@bad.test>, relay=mx1.bad.test[127.0.0.62]:25, delay=10, delays=10/0/0/0, dsn=4.7.0, status=deferred (TLS is required, but was not offered by host mx1.bad.test[127.0.0.62])
Nov 22 13:46:11 mta postfix/qmgr[27788]: 4jXVs13zC1z1SL5Q: from=<alice@sender.test>, status=expired, returned to sender
Nov 22 13:46:11 mta postfix/bounce[27820]: 4jXVs13zC1z1SL5Q: sender non-delivery notification: 4jXVhz6G1mz1SKRc
Nov 22 13:46:11 mta postfix/qmgr[27788]: 4jXVs13zC1z1SL5Q: removed
Nov 22 13:46:12 mta postfix/smtp[27801]: warning: something to look at
`
	l := parsePostfixLog(log)
	if len(l.Lines) != 15 || len(l.TLS) != 3 || len(l.Deliveries) != 5 {
		t.Fatalf("parsed %d lines, %d TLS lines, %d deliveries", len(l.Lines), len(l.TLS), len(l.Deliveries))
	}
	for _, rcpt := range []string{"bob@good.test", "dave@good.test"} {
		d, ok := l.Find("4jXVhN4HMRz1SM72", rcpt, "sent")
		if !ok || d.TLS == nil || d.TLS.Trust != "Verified" || d.TLS.PID != 27801 || d.DSN != "2.0.0" ||
			d.RelayHost != "mx1.good.test" || d.RelayAddr != "127.0.0.61" || d.Delay != 190*time.Millisecond || d.Reason != "250 2.0.0 OK: queued" {
			t.Errorf("%s: %+v (TLS %+v)", rcpt, d, d.TLS)
		}
	}
	if d, ok := l.Find("4jXVhN6xxxz1SM80", "erin@good.test"); !ok || d.OrigTo != "erin" || d.TLS == nil || d.TLS.PID != 27802 || d.TLS.Cipher != "TLS_AES_256_GCM_SHA384" {
		t.Errorf("erin: %+v (TLS %+v)", d, d.TLS)
	}
	bad := l.For("4jXVs13zC1z1SL5Q")
	if len(bad) != 2 {
		t.Fatalf("carol: %d events", len(bad))
	}
	if d := bad[0]; d.Status != "deferred" || d.DSN != "4.7.5" || d.Reason != "Server certificate not verified" || d.TLS == nil ||
		d.TLS.Trust != "Untrusted" || d.TLS.VerifyError != "num=65:no matching DANE TLSA records" || d.TLS.Protocol != "TLSv1.3" {
		t.Errorf("carol, first attempt: %+v (TLS %+v)", d, d.TLS)
	}
	if d := bad[1]; d.TLS != nil || d.DSN != "4.7.0" || !strings.HasPrefix(d.Reason, "TLS is required") {
		t.Errorf("carol, retry without TLS: %+v (TLS %+v)", d, d.TLS)
	}
	if !l.Expired("4jXVs13zC1z1SL5Q") || l.NDR("4jXVs13zC1z1SL5Q") != "4jXVhz6G1mz1SKRc" || !l.Removed("4jXVs13zC1z1SL5Q") || l.Removed("4jXVhN4HMRz1SM72") {
		t.Errorf("expired %v, NDR %q, removed %v", l.Expired("4jXVs13zC1z1SL5Q"), l.NDR("4jXVs13zC1z1SL5Q"), l.Removed("4jXVs13zC1z1SL5Q"))
	}
	if ids := l.QueueIDsByMessageID("smoke-good@danelab.test"); !slices.Equal(ids, []string{"4jXVhN4HMRz1SM72"}) {
		t.Errorf("Message-ID lookup: %v", ids)
	}
	if p := l.Problems(); len(p) != 1 || p[0].Program != "postfix/smtp" || p[0].QueueID != "" {
		t.Errorf("problems: %+v", p)
	}
	if ts := l.Lines[0].Time; ts.Month() != time.November || ts.Day() != 22 || ts.Hour() != 13 || ts.Second() != 40 {
		t.Errorf("time of the first line: %v", ts)
	}

	const dsn = "From: MAILER-DAEMON@mta.sender.test (Mail Delivery System)\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\nTo: alice@sender.test\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B1\"\r\n\r\n" +
		"--B1\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nsorry\r\n\r\n" +
		"--B1\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n" +
		"Reporting-MTA: dns; mta.sender.test\r\nX-Postfix-Queue-ID: 4jXVs13zC1z1SL5Q\r\n\r\n" +
		"Final-Recipient: rfc822; carol@bad.test\r\nOriginal-Recipient: rfc822;carol@bad.test\r\nAction: failed\r\n" +
		"Status: 4.7.5\r\nDiagnostic-Code: X-Postfix; Server certificate not verified\r\n\r\n" +
		"--B1\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Message-ID: <smoke-bad@danelab.test>\r\n\r\nbody\r\n\r\n--B1--\r\n"
	r, err := parseDSN([]byte(dsn))
	if err != nil {
		t.Fatal(err)
	}
	if r.PerMessage.Get("Reporting-MTA") != "dns; mta.sender.test" || len(r.Recipients) != 1 || r.Recipients[0].Get("status") != "4.7.5" ||
		r.Recipients[0].Get("Action") != "failed" || !strings.Contains(r.Original, "<smoke-bad@danelab.test>") || !strings.HasPrefix(r.Human, "sorry") {
		t.Errorf("DSN: %+v", r)
	}
}

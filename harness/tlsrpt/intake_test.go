package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestParseAndFromMail: a report built here comes back from its gzip and JSON forms and from
// its §5.3 mail; broken input is refused with the class of the fault, never a panic.
func TestParseAndFromMail(t *testing.T) {
	r := Build("Lab", "mailto:tlsrpt@sender.test", "r", time.Time{}, sampleAttempts())[0]
	gz, err := Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := r.JSON()
	for _, c := range []struct {
		mt   string
		data []byte
	}{{MediaTypeGzip, gz}, {MediaTypeJSON + "; charset=utf-8", j}} {
		got, err := Parse(c.mt, c.data)
		if err != nil || got.ReportID != r.ReportID || len(got.Policies) != len(r.Policies) {
			t.Errorf("%s: %v %+v", c.mt, err, got)
		}
	}
	msg, err := BuildMail(&r, "tlsrpt@sender.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := FromMail(msg); err != nil || got.ReportID != r.ReportID {
		t.Errorf("from mail: %v %+v", err, got)
	}

	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte(" "), MaxJSONSize+10))
	zw.Close()
	// The attachment replaced by the base64 of something that is not gzip.
	brokenMail := "Content-Type: multipart/report; report-type=tlsrpt; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nbm90IGd6aXA=\r\n--b--\r\n"
	for _, c := range []struct {
		name, mt string
		data     []byte
		want     error
	}{
		{"not gzip", MediaTypeGzip, []byte(`{"report-id":"x"}`), ErrNotGzip},
		{"truncated gzip", MediaTypeGzip, gz[:len(gz)/2], ErrNotGzip},
		{"not JSON", MediaTypeJSON, []byte("hello"), ErrNotJSON},
		{"not a report", MediaTypeJSON, []byte(`{"hello":1}`), ErrNotReport},
		{"wrong types", MediaTypeJSON, []byte(`{"report-id":5}`), ErrNotReport},
		{"bad policy type", MediaTypeJSON, []byte(`{"report-id":"x","policies":[{"policy":{"policy-type":"x","policy-domain":"d"}}]}`), ErrNotReport},
		{"2 MiB", MediaTypeJSON, make([]byte, 2<<20), ErrTooLarge},
		{"gzip bomb", MediaTypeGzip, bomb.Bytes(), ErrTooLarge},
		{"other media type", "text/plain", j, ErrMediaType},
	} {
		if _, err := Parse(c.mt, c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name, msg string
		want      error
	}{
		{"no attachment", "Subject: x\r\n\r\nhello\r\n", ErrNoReport},
		{"broken attachment", brokenMail, ErrNotGzip},
		{"bad base64", strings.Replace(brokenMail, "bm90IGd6aXA=", "!!!", 1), ErrBadMessage},
		{"no header", "garbage", ErrBadMessage},
		{"bad multipart", "Content-Type: multipart/report\r\n\r\nx\r\n", ErrBadMessage},
		{"plain JSON body", "Content-Type: application/tlsrpt+json\r\n\r\n{}", ErrNotReport},
	} {
		if _, err := FromMail([]byte(c.msg)); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzFromMail(f *testing.F) {
	r := Build("Lab", "mailto:tlsrpt@sender.test", "r", time.Time{}, sampleAttempts())[0]
	msg, _ := BuildMail(&r, "tlsrpt@sender.test", time.Now())
	f.Add(msg)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		FromMail(b) // an error or a report, never a panic
	})
}

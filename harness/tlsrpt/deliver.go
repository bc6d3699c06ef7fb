package tlsrpt

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// MediaTypeGzip is the media type of a gzip-compressed report (§6.4).
const MediaTypeGzip = "application/tlsrpt+gzip"

// now is the Date of report mails (tests may replace it).
var now = time.Now

// Deliver sends the report to every rua URI: https: by POST with Content-Type
// application/tlsrpt+gzip (§5.4, a 2xx answer is success), mailto: as a mail built by
// BuildMail handed to mail(to, msg) (§5.3). Every URI is tried; the errors are joined.
// client nil means http.DefaultClient.
func Deliver(ctx context.Context, r *Report, rua []string, mail func(to string, msg []byte) error, client *http.Client) error {
	if client == nil {
		client = http.DefaultClient
	}
	gz, err := Encode(r)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range rua {
		u, err := url.Parse(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("tlsrpt: bad rua URI %q", s))
			continue
		}
		switch strings.ToLower(u.Scheme) {
		case "https":
			errs = append(errs, post(ctx, client, s, gz))
		case "mailto":
			addrs, err := mailtoAddrs(u)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if mail == nil {
				errs = append(errs, fmt.Errorf("tlsrpt: no mail function for %q", s))
				continue
			}
			for _, to := range addrs {
				msg, err := buildMail(r, to, gz, now())
				if err == nil {
					err = mail(to, msg)
				}
				if err != nil {
					err = fmt.Errorf("tlsrpt: mail to %s: %w", to, err)
				}
				errs = append(errs, err)
			}
		default:
			errs = append(errs, fmt.Errorf("tlsrpt: unsupported rua scheme %q", s))
		}
	}
	return errors.Join(errs...)
}

func post(ctx context.Context, client *http.Client, uri string, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("tlsrpt: POST %s: %w", uri, err)
	}
	req.Header.Set("Content-Type", MediaTypeGzip)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("tlsrpt: POST %s: %w", uri, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("tlsrpt: POST %s: %s", uri, resp.Status)
	}
	return nil
}

// BuildMail returns the §5.3 report mail to address to: multipart/report; report-type="tlsrpt"
// with a text/plain part and the gzip report as application/tlsrpt+gzip attachment (base64,
// file name per §5.1), Subject "Report Domain: D Submitter: S Report-ID: <ID>", and the
// TLS-Report-Domain and TLS-Report-Submitter header fields.
func BuildMail(r *Report, to string, date time.Time) ([]byte, error) {
	gz, err := Encode(r)
	if err != nil {
		return nil, err
	}
	return buildMail(r, to, gz, date)
}

func buildMail(r *Report, to string, gz []byte, date time.Time) ([]byte, error) {
	sender := oneLine(r.Sender())
	domain := oneLine(r.PolicyDomain())
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", `text/plain; charset="us-ascii"`)
	h.Set("Content-Transfer-Encoding", "7bit")
	w, err := mw.CreatePart(h)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "This is an aggregate TLS report from %s for %s.\r\n", sender, domain)

	h = textproto.MIMEHeader{}
	h.Set("Content-Type", MediaTypeGzip)
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": r.Filename("")}))
	if w, err = mw.CreatePart(h); err != nil {
		return nil, err
	}
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		io.WriteString(w, enc[:76]+"\r\n")
		enc = enc[76:]
	}
	io.WriteString(w, enc+"\r\n")
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var out bytes.Buffer
	hdr := func(name, value string) { fmt.Fprintf(&out, "%s: %s\r\n", name, value) }
	hdr("From", (&mail.Address{Address: "tlsrpt-noreply@" + sender}).String())
	hdr("To", (&mail.Address{Address: oneLine(to)}).String())
	hdr("Date", date.Format(time.RFC1123Z))
	hdr("Subject", mime.QEncoding.Encode("utf-8",
		fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, sender, oneLine(r.ReportID))))
	hdr("Message-ID", fmt.Sprintf("<%d.%s@%s>", date.UnixNano(), strings.NewReplacer("@", ".", "<", "", ">", "", " ", "").Replace(oneLine(r.ReportID)), sender))
	hdr("TLS-Report-Domain", domain)
	hdr("TLS-Report-Submitter", sender)
	hdr("Auto-Submitted", "auto-generated")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+mw.Boundary()+`"`)
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

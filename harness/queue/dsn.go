package queue

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// DSNInfo is what a DSN reports.
type DSNInfo struct {
	ReportingMTA string // host name of the reporting MTA
	Message      *Message
	Final        Status    // Status and Diagnostic-Code of every recipient
	Last         Record    // the last attempt (Remote-MTA, Last-Attempt-Date); zero if none
	Date         time.Time // when the DSN is generated
	Expired      bool      // the lifetime ended (else: permanent failure)
}

// BuildDSN returns an RFC 3464 delivery status notification: a multipart/report;
// report-type=delivery-status with a human-readable part, a message/delivery-status part
// (per-message fields, then per-recipient Final-Recipient, Action: failed, Status, Remote-MTA,
// Diagnostic-Code, Last-Attempt-Date) and a text/rfc822-headers part with the original header.
func BuildDSN(in DSNInfo) ([]byte, error) {
	msg := in.Message
	if msg == nil {
		return nil, fmt.Errorf("queue: DSN without a message")
	}
	host := oneLine(in.ReportingMTA)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)

	// 1. Human-readable part.
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Description", "Notification")
	w, err := mw.CreatePart(h)
	if err != nil {
		return nil, err
	}
	why := "could not be delivered to one or more recipients; the error was permanent."
	if in.Expired {
		why = "could not be delivered to one or more recipients before it expired in the queue."
	}
	fmt.Fprintf(w, "This is the mail system at host %s.\r\n\r\nYour message %s\r\n\r\n", host, why)
	for _, rcpt := range msg.To {
		fmt.Fprintf(w, "<%s>: %s\r\n", oneLine(rcpt), in.Final.Diagnostic)
	}

	// 2. message/delivery-status.
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "message/delivery-status")
	h.Set("Content-Description", "Delivery report")
	if w, err = mw.CreatePart(h); err != nil {
		return nil, err
	}
	field := func(name, value string) { fmt.Fprintf(w, "%s: %s\r\n", name, oneLine(value)) }
	field("Reporting-MTA", "dns; "+host)
	field("X-Queue-ID", msg.ID)
	if msg.From != "" {
		field("X-Original-Envelope-From", "rfc822; "+msg.From)
	}
	field("Arrival-Date", msg.Submitted.Format(time.RFC1123Z))
	for _, rcpt := range msg.To {
		fmt.Fprint(w, "\r\n")
		field("Final-Recipient", "rfc822; "+rcpt)
		field("Action", "failed")
		field("Status", in.Final.Code)
		if in.Last.Outcome.Host != "" {
			field("Remote-MTA", "dns; "+in.Last.Outcome.Host)
		}
		field("Diagnostic-Code", in.Final.DiagnosticCode())
		if !in.Last.Time.IsZero() {
			field("Last-Attempt-Date", in.Last.Time.Format(time.RFC1123Z))
		}
	}

	// 3. The original header.
	origHeader, origID := originalHeader(msg.Data)
	if len(origHeader) > 0 {
		h = textproto.MIMEHeader{}
		h.Set("Content-Type", "text/rfc822-headers")
		h.Set("Content-Description", "Undelivered Message Headers")
		if w, err = mw.CreatePart(h); err != nil {
			return nil, err
		}
		w.Write(origHeader)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var out bytes.Buffer
	hdr := func(name, value string) { fmt.Fprintf(&out, "%s: %s\r\n", name, value) }
	hdr("From", (&mail.Address{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + host}).String())
	hdr("To", (&mail.Address{Address: oneLine(msg.From)}).String())
	hdr("Subject", "Undelivered Mail Returned to Sender")
	hdr("Date", in.Date.Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<%d.dsn.%s@%s>", in.Date.Unix(), oneLine(msg.ID), host))
	if origID != "" {
		hdr("In-Reply-To", origID)
		hdr("References", origID)
	}
	hdr("Auto-Submitted", "auto-replied")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+mw.Boundary()+`"`)
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// originalHeader returns the header section of data with CRLF line ends and its Message-ID.
func originalHeader(data []byte) ([]byte, string) {
	if len(data) == 0 {
		return nil, ""
	}
	var id string
	if m, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		id = oneLine(m.Header.Get("Message-Id"))
	}
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	if i := strings.Index(s, "\n\n"); i >= 0 {
		s = s[:i+1]
	} else if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return []byte(strings.ReplaceAll(s, "\n", "\r\n")), id
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

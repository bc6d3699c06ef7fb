package queue

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
)

// DSNFields are the first recipient's fields of a delivery status notification.
type DSNFields struct {
	Recipient  string // Final-Recipient (or Original-Recipient), the address only, lowercase
	Status     string // "5.7.323"
	Action     string // "failed", lowercase
	Diagnostic string
}

// ReadDSN reads the first recipient's fields of an RFC 3464 report: from its
// message/delivery-status part (continuation lines unfolded), or, for a message that is not
// a multipart report, from the first such fields anywhere.
func ReadDSN(data []byte) DSNFields {
	var d DSNFields
	status := data
	if m, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		if mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type")); err == nil && strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(m.Body, params["boundary"])
			for {
				part, err := mr.NextPart()
				if err != nil {
					break
				}
				if pt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); pt == "message/delivery-status" {
					status, _ = io.ReadAll(part)
					break
				}
			}
		}
	}
	// Unfold, then read "Field: value" lines; the first recipient's values win.
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(status), "\r\n", "\n"), "\n") {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(lines) > 0 {
			lines[len(lines)-1] += " " + strings.TrimSpace(l)
			continue
		}
		lines = append(lines, l)
	}
	for _, line := range lines {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "final-recipient", "original-recipient":
			if _, addr, ok := strings.Cut(v, ";"); ok && d.Recipient == "" {
				d.Recipient = strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
			}
		case "status":
			if f := strings.Fields(v); d.Status == "" && len(f) > 0 {
				d.Status = f[0] // "5.7.323 (comment)"
			}
		case "action":
			if d.Action == "" {
				d.Action = strings.ToLower(v)
			}
		case "diagnostic-code":
			if d.Diagnostic == "" {
				d.Diagnostic = v
			}
		}
	}
	return d
}

package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
)

// MediaTypeJSON is the media type of an uncompressed report (RFC 8460 §6.4).
const MediaTypeJSON = "application/tlsrpt+json"

// Intake limits. RFC 8460 sets none; a lab receiver keeps them so that one careless or hostile
// submitter cannot exhaust its memory. A real report is a few KiB: a day of sessions for one
// domain aggregates into a handful of failure-details.
const (
	// MaxReportSize bounds a report as it travels: the HTTPS body or the decoded mail
	// attachment, compressed or not.
	MaxReportSize = 1 << 20
	// MaxJSONSize bounds the JSON of a report after gzip decompression (a gzip bomb).
	MaxJSONSize = 10 << 20
	// maxMIMEDepth bounds the nesting of multipart bodies searched for the report.
	maxMIMEDepth = 8
)

// Why a report was refused: errors.Is(err, ErrX) tells the class, the message the detail.
var (
	ErrTooLarge   = errors.New("too large")
	ErrNotGzip    = errors.New("not gzip")
	ErrNotJSON    = errors.New("not JSON")
	ErrNotReport  = errors.New("not a report")
	ErrMediaType  = errors.New("unsupported media type")
	ErrNoReport   = errors.New("no report attachment")
	ErrBadMessage = errors.New("malformed message")
)

// Parse reads a report of the given media type (MediaTypeGzip or MediaTypeJSON, as in an
// HTTPS Content-Type or a MIME part, §5.3, §5.4) within the intake limits and checks that it
// is an RFC 8460 §4.4 report. The error wraps one of the Err classes above.
func Parse(mediaType string, data []byte) (*Report, error) {
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("tlsrpt: %w: %d bytes, at most %d", ErrTooLarge, len(data), MaxReportSize)
	}
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w: %q: %v", ErrMediaType, mediaType, err)
	}
	raw := data
	switch mt {
	case MediaTypeJSON:
	case MediaTypeGzip:
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("tlsrpt: %w: %v", ErrNotGzip, err)
		}
		if raw, err = io.ReadAll(io.LimitReader(zr, MaxJSONSize+1)); err != nil {
			return nil, fmt.Errorf("tlsrpt: %w: %v", ErrNotGzip, err)
		}
		if len(raw) > MaxJSONSize {
			return nil, fmt.Errorf("tlsrpt: %w: more than %d bytes decompressed", ErrTooLarge, MaxJSONSize)
		}
	default:
		return nil, fmt.Errorf("tlsrpt: %w: %q, want %s or %s", ErrMediaType, mt, MediaTypeGzip, MediaTypeJSON)
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("tlsrpt: %w: %.60q", ErrNotJSON, raw)
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("tlsrpt: %w: %v", ErrNotReport, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks the fields RFC 8460 §4.4 requires, as far as a reader of the report needs
// them: a report id, at least one policy with its type and domain, counts that are not
// negative, and a result type on every failure detail.
func (r *Report) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("tlsrpt: %w: %s", ErrNotReport, fmt.Sprintf(format, args...))
	}
	if r.ReportID == "" {
		return bad("no report-id")
	}
	if len(r.Policies) == 0 {
		return bad("no policies")
	}
	for i, p := range r.Policies {
		switch p.Policy.Type {
		case PolicyTLSA, PolicySTS, PolicyNoPolicyFound:
		default:
			return bad("policies[%d].policy.policy-type %q", i, p.Policy.Type)
		}
		if p.Policy.Domain == "" {
			return bad("policies[%d].policy.policy-domain is empty", i)
		}
		if p.Summary.Successful < 0 || p.Summary.Failure < 0 {
			return bad("policies[%d].summary: negative count", i)
		}
		for j, f := range p.FailureDetails {
			if f.ResultType == "" {
				return bad("policies[%d].failure-details[%d]: no result-type", i, j)
			}
			if f.FailedSessionCount < 0 {
				return bad("policies[%d].failure-details[%d]: negative failed-session-count", i, j)
			}
		}
	}
	return nil
}

// FromMail finds the report in a §5.3 report mail: the first part of media type
// application/tlsrpt+gzip or application/tlsrpt+json, in a multipart/report, any other
// multipart body (nested up to 8 deep), or as the message body itself; base64 and
// quoted-printable transfer encodings are decoded. It is read within the intake limits.
func FromMail(msg []byte) (*Report, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w: %v", ErrBadMessage, err)
	}
	mt, data, err := findReport(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body, 0)
	if err != nil {
		return nil, err
	}
	if mt == "" {
		return nil, fmt.Errorf("tlsrpt: %w: no %s or %s part", ErrNoReport, MediaTypeGzip, MediaTypeJSON)
	}
	return Parse(mt, data)
}

// findReport returns the media type and decoded content of the first report part of a body
// ("" when there is none).
func findReport(contentType, encoding string, body io.Reader, depth int) (string, []byte, error) {
	if contentType == "" {
		return "", nil, nil // text/plain (RFC 2045 §5.2)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", nil, fmt.Errorf("tlsrpt: %w: Content-Type %q: %v", ErrBadMessage, contentType, err)
	}
	switch {
	case mt == MediaTypeGzip || mt == MediaTypeJSON:
		data, err := decodePart(encoding, body)
		return mt, data, err
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= maxMIMEDepth {
			return "", nil, fmt.Errorf("tlsrpt: %w: multipart nested more than %d deep", ErrBadMessage, maxMIMEDepth)
		}
		if params["boundary"] == "" {
			return "", nil, fmt.Errorf("tlsrpt: %w: %s without boundary", ErrBadMessage, mt)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return "", nil, nil
			}
			if err != nil {
				return "", nil, fmt.Errorf("tlsrpt: %w: %s: %v", ErrBadMessage, mt, err)
			}
			// multipart.Reader has already decoded (and removed) a quoted-printable encoding.
			pmt, data, err := findReport(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1)
			if err != nil || pmt != "" {
				return pmt, data, err
			}
		}
	}
	return "", nil, nil
}

// decodePart reads a report part's content, undoing its transfer encoding (RFC 2045 §6),
// at most MaxReportSize bytes of it.
func decodePart(encoding string, body io.Reader) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body) // skips the line breaks
	case "", "7bit", "8bit", "binary":
	default:
		return nil, fmt.Errorf("tlsrpt: %w: Content-Transfer-Encoding %q", ErrBadMessage, encoding)
	}
	data, err := io.ReadAll(io.LimitReader(body, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w: attachment: %v", ErrBadMessage, err)
	}
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("tlsrpt: %w: attachment of more than %d bytes", ErrTooLarge, MaxReportSize)
	}
	return data, nil
}

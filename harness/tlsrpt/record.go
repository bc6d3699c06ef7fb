package tlsrpt

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
)

// Record is a parsed _smtp._tls TXT record (RFC 8460 §3).
type Record struct {
	RUA        []string          // usable report URIs (mailto: and https:) in record order
	Ignored    []string          // syntactically valid URIs of other schemes, ignored
	Extensions map[string]string // other fields
}

// ErrNoRecord: the domain publishes no single TLSRPTv1 record (§3: then the sender must
// assume the domain does not implement TLS-RPT).
var ErrNoRecord = errors.New("tlsrpt: no unique TLSRPTv1 record")

var extName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$`)

const wsp = " \t"

// ParseRecord parses one TXT record (its strings already concatenated):
// "v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrpt".
// The version must come first and be exactly v=TLSRPTv1; rua is required, once; extension
// fields must follow the §3 ABNF. rua URIs of schemes other than mailto/https are ignored; a
// record without a usable URI is an error.
func ParseRecord(txt string) (Record, error) {
	var rec Record
	fields := strings.Split(txt, ";")
	if strings.TrimRight(fields[0], wsp) != "v=TLSRPTv1" {
		return rec, fmt.Errorf("tlsrpt: record does not start with v=TLSRPTv1: %q", txt)
	}
	seenRUA := false
	for i, f := range fields[1:] {
		f = strings.Trim(f, wsp)
		if f == "" {
			if i == len(fields)-2 { // a trailing ";" is allowed
				continue
			}
			return rec, fmt.Errorf("tlsrpt: empty field in %q", txt)
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return rec, fmt.Errorf("tlsrpt: malformed field %q", f)
		}
		if name == "rua" {
			if seenRUA {
				return rec, fmt.Errorf("tlsrpt: duplicate rua in %q", txt)
			}
			seenRUA = true
			for _, u := range strings.Split(value, ",") {
				u = strings.Trim(u, wsp)
				kind, err := checkURI(u)
				if err != nil {
					return rec, err
				}
				if kind == "" {
					rec.Ignored = append(rec.Ignored, u)
				} else {
					rec.RUA = append(rec.RUA, u)
				}
			}
			continue
		}
		if name == "v" {
			return rec, fmt.Errorf("tlsrpt: duplicate version in %q", txt)
		}
		if !extName.MatchString(name) || value == "" || strings.ContainsAny(value, " =;\t") {
			return rec, fmt.Errorf("tlsrpt: malformed extension %q", f)
		}
		for _, c := range value {
			if c < 0x21 || c > 0x7e {
				return rec, fmt.Errorf("tlsrpt: malformed extension %q", f)
			}
		}
		if rec.Extensions == nil {
			rec.Extensions = map[string]string{}
		}
		rec.Extensions[name] = value
	}
	if !seenRUA {
		return rec, fmt.Errorf("tlsrpt: record without rua: %q", txt)
	}
	if len(rec.RUA) == 0 {
		return rec, fmt.Errorf("tlsrpt: no mailto: or https: URI in %q", txt)
	}
	return rec, nil
}

// SelectRecord applies §3 to all TXT records at _smtp._tls.<domain> (each with its strings
// concatenated): records not starting with "v=TLSRPTv1" are discarded; exactly one must remain.
func SelectRecord(txts []string) (Record, error) {
	var cands []string
	for _, t := range txts {
		if rest, ok := strings.CutPrefix(t, "v=TLSRPTv1"); ok &&
			strings.HasPrefix(strings.TrimLeft(rest, wsp), ";") {
			cands = append(cands, t)
		}
	}
	if len(cands) != 1 {
		return Record{}, fmt.Errorf("%w (%d candidates)", ErrNoRecord, len(cands))
	}
	return ParseRecord(cands[0])
}

// checkURI returns "mailto" or "https" for a usable URI, "" for a valid URI of another
// scheme, or an error.
func checkURI(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("tlsrpt: bad rua URI %q", s)
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		if _, err := mailtoAddrs(u); err != nil {
			return "", err
		}
		return "mailto", nil
	case "https":
		if u.Host == "" || u.Opaque != "" {
			return "", fmt.Errorf("tlsrpt: bad https URI %q", s)
		}
		return "https", nil
	}
	return "", nil
}

// mailtoAddrs returns the addresses of a mailto: URI (RFC 6068; query ignored).
func mailtoAddrs(u *url.URL) ([]string, error) {
	raw := u.Opaque
	if raw == "" {
		raw = u.Path
	}
	p, err := url.PathUnescape(raw)
	if err != nil || p == "" {
		return nil, fmt.Errorf("tlsrpt: bad mailto URI %q", u.String())
	}
	var out []string
	for _, a := range strings.Split(p, ",") {
		addr, err := mail.ParseAddress(a)
		if err != nil || addr.Name != "" {
			return nil, fmt.Errorf("tlsrpt: bad address in mailto URI %q", u.String())
		}
		out = append(out, addr.Address)
	}
	return out, nil
}

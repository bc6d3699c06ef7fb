// Package tlsasync publishes the TLSA records that follow a mail server's certificates
// (package tlsa's trackers, the ones danezone serves) on any DNS server that takes RFC 2136
// dynamic updates signed with TSIG (BIND, Knot, PowerDNS, providers), and gates the
// installation of a renewed certificate on its records being served (danelab tlsa sync,
// danelab tlsa gate).
package tlsasync

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// Key is a TSIG key (RFC 8945).
type Key struct {
	Name      string // FQDN, lower case
	Algorithm string // miekg/dns name, e.g. dns.HmacSHA256
	Secret    string // base64
}

// tsigAlgorithms maps the names BIND, Knot and nsupdate use to miekg/dns's.
var tsigAlgorithms = map[string]string{
	"hmac-md5":    dns.HmacMD5,
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// ReadKey reads a TSIG key file: BIND's `key "NAME" { algorithm ALG; secret "BASE64"; };`
// (tsig-keygen, ddns-confgen) or one line ALG:NAME:SECRET (nsupdate -y, kdig -y, Knot's
// keymgr -t comment). Errors name the file and line.
func ReadKey(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("TSIG key: %v", err)
	}
	return ParseKey(path, data)
}

var (
	bindKey    = regexp.MustCompile(`(?s)key\s+("([^"]*)"|(\S+))\s*\{(.*?)\}\s*;`)
	bindAlg    = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	bindSecret = regexp.MustCompile(`secret\s+"([^"]*)"\s*;`)
)

// ParseKey reads a TSIG key from data (see ReadKey); from names it in errors.
func ParseKey(from string, data []byte) (Key, error) {
	text := stripComments(data)
	if m := bindKey.FindAllStringSubmatchIndex(text, -1); len(m) > 0 {
		if len(m) > 1 {
			return Key{}, fmt.Errorf("%s: %d keys: give a file with one", from, len(m))
		}
		loc := m[0]
		line := 1 + strings.Count(text[:loc[0]], "\n")
		var name string
		if loc[4] >= 0 {
			name = text[loc[4]:loc[5]]
		} else {
			name = text[loc[6]:loc[7]]
		}
		body := text[loc[8]:loc[9]]
		alg, sec := bindAlg.FindStringSubmatch(body), bindSecret.FindStringSubmatch(body)
		if alg == nil {
			return Key{}, fmt.Errorf("%s:%d: key %q has no algorithm", from, line, name)
		}
		if sec == nil {
			return Key{}, fmt.Errorf("%s:%d: key %q has no secret", from, line, name)
		}
		return newKey(fmt.Sprintf("%s:%d", from, line), alg[1], name, sec[1])
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		l = strings.TrimSpace(strings.TrimPrefix(l, "#")) // keymgr -t prints "# ALG:NAME:SECRET"
		f := strings.Split(l, ":")
		if len(f) == 3 && tsigAlgorithms[strings.ToLower(f[0])] != "" {
			return newKey(fmt.Sprintf("%s:%d", from, n), f[0], f[1], f[2])
		}
	}
	return Key{}, fmt.Errorf(`%s: no TSIG key: want key "NAME" { algorithm hmac-sha256; secret "BASE64"; }; or ALG:NAME:SECRET`, from)
}

func newKey(at, alg, name, secret string) (Key, error) {
	a := tsigAlgorithms[strings.ToLower(strings.TrimSuffix(alg, "."))]
	if a == "" {
		return Key{}, fmt.Errorf("%s: algorithm %q: want one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1, hmac-md5", at, alg)
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return Key{}, fmt.Errorf("%s: key name %q is not a domain name", at, name)
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
	if err != nil || len(b) == 0 {
		return Key{}, fmt.Errorf("%s: secret of key %q is not base64", at, name)
	}
	return Key{Name: dns.CanonicalName(name), Algorithm: a, Secret: base64.StdEncoding.EncodeToString(b)}, nil
}

// stripComments removes BIND's comments (#, //, /* */) outside strings, keeping line breaks
// so that line numbers stay right.
func stripComments(data []byte) string {
	var b strings.Builder
	s := string(data)
	inStr := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inStr:
			if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '#' || (c == '/' && i+1 < len(s) && s[i+1] == '/'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
			if i < len(s) {
				b.WriteByte('\n')
			}
			continue
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				end = len(s) - i - 2
			}
			b.WriteString(strings.Repeat("\n", strings.Count(s[i:i+2+end], "\n")))
			i += end + 3
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

package world

import (
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// renamer puts name in front of every base domain: mx1.example.test -> mx1.<name>.example.test.
// A name under several bases is renamed by the shortest, so zones nested in the scenario's
// domain stay nested in its renamed domain.
func renamer(name string, bases []string) func(string) string {
	bs := make([]string, len(bases))
	for i, b := range bases {
		bs[i] = strings.ToLower(dns.Fqdn(b))
	}
	sort.Slice(bs, func(i, j int) bool { return len(bs[i]) < len(bs[j]) })
	var rename func(string) string
	rename = func(n string) string {
		if strings.HasPrefix(n, "*") && !strings.HasPrefix(n, "*.") { // a glob like "*mx1.example.test"
			if r := rename(n[1:]); r != n[1:] {
				return "*" + r
			}
			return n
		}
		abs := strings.HasSuffix(n, ".")
		l := strings.ToLower(dns.Fqdn(n))
		for _, b := range bs {
			if l == b || strings.HasSuffix(l, "."+b) {
				out := l[:len(l)-len(b)] + strings.ToLower(name) + "." + b
				if !abs {
					out = strings.TrimSuffix(out, ".")
				}
				return out
			}
		}
		return n
	}
	return rename
}

// renameRecord renames the absolute names (ending in ".") of a record in zone file syntax,
// leaving quoted strings and the spacing as they are.
func renameRecord(r string, rename func(string) string) string {
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case c == '"':
			inQuote = !inQuote
			b.WriteByte(c)
			i++
		case inQuote || c == ' ' || c == '\t':
			if c == '\\' && inQuote && i+1 < len(r) {
				b.WriteString(r[i : i+2])
				i += 2
				continue
			}
			b.WriteByte(c)
			i++
		default:
			j := i
			for j < len(r) && r[j] != ' ' && r[j] != '\t' && r[j] != '"' {
				j++
			}
			tok := r[i:j]
			if strings.HasSuffix(tok, ".") && len(tok) > 1 {
				tok = rename(tok)
			}
			b.WriteString(tok)
			i = j
		}
	}
	return b.String()
}

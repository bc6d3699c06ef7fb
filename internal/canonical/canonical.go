// Package canonical is the canonical order of DNS names (RFC 4034 §6.1) computed the plain
// way, from each name's wire form, label by label: the reference against which tests judge
// the faster orders danezone keeps.
package canonical

import (
	"bytes"
	"cmp"
	"fmt"

	"github.com/miekg/dns"
)

// Labels returns the labels of name (presentation form, escapes allowed) as octets, ASCII
// letters lowered (RFC 4034 §6.2: the other octets are left alone), leftmost first. It panics
// on a name that has no wire form: a test's own mistake.
func Labels(name string) [][]byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		panic(fmt.Sprintf("canonical.Labels(%q): %v", name, err))
	}
	var out [][]byte
	for i := 0; i < n && buf[i] != 0; i += int(buf[i]) + 1 {
		l := bytes.Clone(buf[i+1 : i+1+int(buf[i])])
		for k, c := range l {
			if c >= 'A' && c <= 'Z' {
				l[k] = c + 'a' - 'A'
			}
		}
		out = append(out, l)
	}
	return out
}

// Compare orders two names as RFC 4034 §6.1 does: label by label from the right, each label
// as an octet string, a name before its descendants.
func Compare(a, b string) int {
	la, lb := Labels(a), Labels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := bytes.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
}

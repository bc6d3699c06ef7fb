package resolver

import (
	"bytes"
	"cmp"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// canonical returns name fully qualified and lowercase (RFC 4034 §6.2).
func canonical(name string) string { return dns.CanonicalName(name) }

// canonicalLabels returns the labels of name from the rightmost, as lowercase octet strings
// (escapes resolved through the wire format).
func canonicalLabels(name string) [][]byte {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil { // not a valid name: compare the presentation form, label by label
		var labels [][]byte
		for _, l := range dns.SplitDomainName(name) {
			labels = append(labels, lowerASCII([]byte(l)))
		}
		slices.Reverse(labels)
		return labels
	}
	var labels [][]byte
	for i := 0; i < off && buf[i] != 0; {
		l := int(buf[i])
		if i+1+l > off {
			break
		}
		labels = append(labels, lowerASCII(buf[i+1:i+1+l]))
		i += 1 + l
	}
	slices.Reverse(labels)
	return labels
}

func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// compareNames orders two domain names canonically (RFC 4034 §6.1): label by label from the
// rightmost, each compared as a lowercase octet string, a name sorting before its descendants.
func compareNames(a, b string) int {
	la, lb := canonicalLabels(a), canonicalLabels(b)
	for i := 0; i < len(la) && i < len(lb); i++ {
		if c := bytes.Compare(la[i], lb[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(la), len(lb))
}

// equalNames reports whether a and b are the same name (case-insensitively, escapes resolved).
func equalNames(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	return compareNames(a, b) == 0
}

// isSubDomain reports whether child is parent or below it.
func isSubDomain(parent, child string) bool { return dns.IsSubDomain(parent, child) }

// isStrictSubDomain reports whether child is below parent and not parent itself.
func isStrictSubDomain(parent, child string) bool {
	return dns.IsSubDomain(parent, child) && dns.CountLabel(child) > dns.CountLabel(parent)
}

// lastLabels returns the ancestor of name with n labels (n = 0 gives the root).
func lastLabels(name string, n int) string {
	if n <= 0 {
		return "."
	}
	idx := dns.Split(name)
	if n >= len(idx) {
		return name
	}
	return name[idx[len(idx)-n]:]
}

// parentName returns the parent of name; the root is its own parent.
func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// commonAncestor returns the longest name that is an ancestor of (or equal to) both a and b.
func commonAncestor(a, b string) string {
	return lastLabels(a, dns.CompareDomainName(a, b))
}

// childToward returns the child of ancestor on the way down to name.
func childToward(ancestor, name string) string {
	return lastLabels(name, dns.CountLabel(ancestor)+1)
}

// nsecCovers reports whether the NSEC interval (owner, next) covers name: owner < name < next
// in canonical order, or, for the last NSEC of the chain (next at or before owner), name
// after owner.
func nsecCovers(owner, next, name string) bool {
	co := compareNames(owner, name)
	cn := compareNames(name, next)
	if compareNames(owner, next) < 0 {
		return co < 0 && cn < 0
	}
	return co < 0 || cn < 0
}

func hasType(bitmap []uint16, t uint16) bool { return slices.Contains(bitmap, t) }

package zone

import (
	"strings"

	"github.com/miekg/dns"
)

// Key returns the canonical sort key of a domain name (RFC 4034 §6.1): its labels from the
// rightmost, each unescaped, lowercased and terminated by 0x00, with 0x00 and 0x01 inside a
// label escaped as 0x01 0x00 and 0x01 0x01 so that comparing keys as strings is comparing
// names in canonical order. The key of an ancestor is a prefix of the key of a descendant, at
// a label boundary, which lets one key serve a whole walk down the tree.
func Key(name string) string {
	k, _ := appendKey(make([]byte, 0, keyRoom), []int(nil), name)
	return string(k)
}

// appendKey appends Key(name) to dst and, unless bounds is nil, to bounds the end offset in
// the key of each label from the right: bounds[i] is the length of the key of the ancestor
// with i+1 labels. It allocates nothing when they have room: lookups call it with arrays on the stack.
func appendKey[T int | uint16](dst []byte, bounds []T, name string) ([]byte, []T) {
	if name == "" || name == "." {
		return dst, bounds
	}
	if name[len(name)-1] != '.' || (len(name) > 1 && name[len(name)-2] == '\\') {
		name = dns.Fqdn(name)
	}
	if strings.IndexByte(name, '\\') < 0 {
		return appendPlainKey(dst, bounds, name)
	}
	return appendEscapedKey(dst, bounds, name)
}

// appendEscapedKey is appendKey for a fully qualified name with escapes.
func appendEscapedKey[T int | uint16](dst []byte, bounds []T, name string) ([]byte, []T) {
	// Label starts, left to right (dns.NextLabel knows escapes); then the labels right to left.
	starts := make([]uint16, 0, labelRoom)
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		starts = append(starts, uint16(off))
	}
	end := len(name) - 1 // drop the trailing dot
	for i := len(starts) - 1; i >= 0; i-- {
		label := name[starts[i]:end]
		end = int(starts[i]) - 1
		dst = appendLabel(dst, label)
		dst = append(dst, 0)
		if bounds != nil {
			bounds = append(bounds, T(len(dst)))
		}
	}
	return dst, bounds
}

// appendPlainKey is appendKey for a fully qualified name without escapes, the names of
// nearly every query: every dot ends a label, so the labels are found from the right. (An
// empty leftmost label, ".a.", which no valid name has, is dropped.)
func appendPlainKey[T int | uint16](dst []byte, bounds []T, name string) ([]byte, []T) {
	for end := len(name) - 1; end > 0; {
		start := strings.LastIndexByte(name[:end], '.') + 1
		for i := start; i < end; i++ {
			c := name[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c <= 1 {
				dst = append(dst, 1)
			}
			dst = append(dst, c)
		}
		dst = append(dst, 0)
		if bounds != nil {
			bounds = append(bounds, T(len(dst)))
		}
		end = start - 1
	}
	return dst, bounds
}

// keyRoom and labelRoom size the buffers that lookups keep on the goroutine's stack: a key of
// up to keyRoom octets, names of up to labelRoom labels. Longer ones go to the heap. Room for
// the longest name (twice 255 octets, 128 labels) made every query whose name the answer
// cache does not know grow its goroutine's stack, a copy that cost a fifth of the server's
// time in a flood of random names.
const (
	keyRoom   = 96
	labelRoom = 16
)

// appendLabel appends the canonical form of one presentation-format label: its octets (see
// octetAt), ASCII letters lowered, 0x00 and 0x01 escaped.
func appendLabel(dst []byte, label string) []byte {
	for i := 0; i < len(label); {
		var c byte
		c, i = octetAt(label, i)
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c <= 1 {
			dst = append(dst, 1)
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendOctets appends the octets of a presentation-format label to dst.
func AppendOctets(dst []byte, label string) []byte {
	for i := 0; i < len(label); {
		var c byte
		c, i = octetAt(label, i)
		dst = append(dst, c)
	}
	return dst
}

// octetAt returns the octet of a presentation-format label at i, \DDD and \X escapes
// resolved, and where the next one starts.
func octetAt(label string, i int) (byte, int) {
	c := label[i]
	if c != '\\' || i+1 == len(label) {
		return c, i + 1
	}
	if i+3 < len(label) && isDigit(label[i+1]) && isDigit(label[i+2]) && isDigit(label[i+3]) {
		return (label[i+1]-'0')*100 + (label[i+2]-'0')*10 + (label[i+3] - '0'), i + 4
	}
	return label[i+1], i + 2
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Canonical returns the canonical presentation form of name: fully qualified, lowercase
// (RFC 4034 §6.2), with escapes normalised by a round trip through the wire format. Raw octets
// outside printable ASCII come back as \DDD escapes, so that one name has one spelling. Only
// ASCII letters are lowered, octet by octet: a name is octets, not UTF-8 (RFC 2181 §11), and
// a rune-wise lowercase (strings.ToLower, dns.CanonicalName) turns an invalid byte into U+FFFD.
func Canonical(name string) string {
	name = dns.Fqdn(name)
	if needsRoundTrip(name) {
		buf := make([]byte, 256)
		if off, err := dns.PackDomainName(name, buf, 0, nil, false); err == nil {
			if out, _, err := dns.UnpackDomainName(buf[:off], 0); err == nil {
				name = out
			}
		}
	}
	return lowerASCII(name)
}

// needsRoundTrip reports an escape or an octet outside printable ASCII.
func needsRoundTrip(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '\\' || c < '!' || c > '~' {
			return true
		}
	}
	return false
}

// lowerASCII lowercases the ASCII letters of s and leaves every other octet alone.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && (s[i] < 'A' || s[i] > 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Below reports whether name is origin or under it, letters in any case (RFC 4343): what
// dns.IsSubDomain says, without splitting both names into labels (this runs for every query
// and every record loaded).
func Below(origin, name string) bool {
	if origin == "." {
		return true
	}
	cut := len(name) - len(origin)
	if cut < 0 || !equalFoldASCII(name[cut:], origin) {
		return false
	}
	if cut == 0 {
		return true
	}
	// The octet before must end a label: a dot that is not itself escaped ("a\.example.").
	if name[cut-1] != '.' {
		return false
	}
	escapes := 0
	for i := cut - 2; i >= 0 && name[i] == '\\'; i-- {
		escapes++
	}
	return escapes%2 == 0
}

// equalFoldASCII compares a and b, of the same length, with ASCII letters folded.
func equalFoldASCII(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

package zone

import (
	"errors"
	"fmt"
	"math"
	"reflect"

	"github.com/miekg/dns"
)

// The rules that keep every zone servable, in one place for zone files (Parse) and runtime
// edits (Apply): each record must encode to the wire (miekg/dns parses some data it cannot
// pack, and packs an empty RDATA where a name or an address is missing), each RRset must fit
// one DNS message together with its signatures, and a zone has at most so many records.

// DefaultMaxRecords is the default of Limits.MaxRecords: four times the bench zone of 100,000
// names (about 230,000 records and empty non-terminals), and about 2 GB of memory once loaded,
// signed and chained. A zone file of a few lines of $GENERATE cannot take more.
const DefaultMaxRecords = 1_000_000

// maxMessage is the largest DNS message (RFC 1035 §4.2.2: the TCP length field is 16 bits).
const maxMessage = dns.MaxMsgSize

// answerReserve is the room an answer keeps beside the RRset it answers with: the header (12
// octets), the question (at most 259), the OPT record with its options, and the NSEC proof
// with its RRSIG that a wildcard answer carries (RFC 4035 §3.1.3.3), with long names.
const answerReserve = 4096

// Limits bound what a zone may hold, so that whatever loads can be answered.
type Limits struct {
	// MaxRecords caps the records of a zone; each empty non-terminal (a name that exists only
	// because names below it do) counts as one, since it takes memory like one. 0 means
	// DefaultMaxRecords.
	MaxRecords int
	// SigSize is the room the RRSIGs over one RRset take in an answer (every key that signs
	// it: owner pointer, fixed fields, signer name, signature); 0 for an unsigned zone.
	SigSize int
}

func (l Limits) maxRecords() int {
	if l.MaxRecords > 0 {
		return l.MaxRecords
	}
	return DefaultMaxRecords
}

// setBudget is how many octets the records of one RRset may take in an answer.
func (l Limits) setBudget() int { return maxMessage - answerReserve - l.SigSize }

// RRSIGSize returns the room one RRSIG by a key of the given algorithm and signature length
// takes in an answer for a zone named signer: a compressed owner (2), type, class, TTL and
// RDLENGTH (10), the fixed RDATA fields (18, RFC 4034 §3.1), the signer's name, uncompressed
// (RFC 4034 §3.1.7), and the signature.
func RRSIGSize(signer string, sigLen int) int {
	return 2 + 10 + 18 + nameWireLen(signer) + sigLen
}

func nameWireLen(name string) int {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return 255
	}
	return n
}

// checker validates records; it keeps one buffer for packing.
type checker struct {
	lim Limits
	buf []byte
}

func newChecker(lim Limits) *checker { return &checker{lim: lim, buf: make([]byte, 4096)} }

// maxRecordWire is the largest record: a name, the fixed fields and 65535 octets of RDATA.
// A record that does not pack into that many octets is too large, which is what we want to
// know; the buffer grows to it only for a record that needs it.
const maxRecordWire = 255 + 10 + 0xFFFF

// record checks that rr encodes to a well-formed wire record and returns the room it takes in
// an answer (a compressed owner, the fixed fields and its RDATA).
func (c *checker) record(rr dns.RR) (int, error) {
	h := rr.Header()
	if err := complete(rr); err != nil {
		return 0, fmt.Errorf("%s record at %s %v", dns.TypeToString[h.Rrtype], h.Name, err)
	}
	// RFC 2181 §8: a TTL is at most 2^31-1; a receiver treats a larger one as 0, so the zone
	// would not mean what it says.
	if h.Ttl > math.MaxInt32 {
		return 0, fmt.Errorf("%s record at %s has the TTL %d, over 2147483647 (RFC 2181 §8)", dns.TypeToString[h.Rrtype], h.Name, h.Ttl)
	}
	_, err := dns.PackRR(rr, c.buf, 0, nil, false)
	if errors.Is(err, dns.ErrBuf) && len(c.buf) < maxRecordWire {
		c.buf = make([]byte, maxRecordWire)
		_, err = dns.PackRR(rr, c.buf, 0, nil, false)
	}
	if err != nil {
		what := fmt.Sprintf("%s record at %s", dns.TypeToString[h.Rrtype], h.Name)
		if errors.Is(err, dns.ErrBuf) || errors.Is(err, dns.ErrRdata) {
			return 0, fmt.Errorf("%s is too large: a record holds at most 65535 octets of data (RFC 1035 §3.2.1)", what)
		}
		return 0, fmt.Errorf("%s: its data cannot be encoded: %v", what, err)
	}
	return 2 + 10 + int(h.Rdlength), nil // PackRR sets Rdlength
}

// complete reports a record whose data is missing, which miekg/dns accepts (the empty RDATA of
// an RFC 2136 update) but encodes as a malformed record: no data at all, or an empty domain
// name, address or text where one is required.
func complete(rr dns.RR) error {
	switch rr.(type) {
	case *dns.RFC3597: // `\# 0` is explicitly empty (RFC 3597 §5)
		return nil
	case *dns.HINFO, *dns.APL, *dns.NULL: // empty strings, no prefixes, no data: all valid
		return nil
	}
	v := reflect.ValueOf(rr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	v = v.Elem()
	t := v.Type()
	empty, numeric := true, true
	var missing string
	for i := range t.NumField() {
		f, sf := v.Field(i), t.Field(i)
		if sf.Name == "Hdr" {
			continue
		}
		zero := f.IsZero()
		empty = empty && zero
		switch f.Kind() {
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			numeric = false
		}
		switch sf.Tag.Get("dns") {
		case "domain-name", "cdomain-name":
			if f.Kind() == reflect.String && zero && missing == "" { // HIP's list of servers may be empty
				missing = "a domain name (" + sf.Name + ")"
			}
		case "a", "aaaa":
			if f.Len() == 0 && missing == "" {
				missing = "the address"
			}
		case "txt":
			if f.Len() == 0 && missing == "" {
				missing = "the text"
			}
		}
	}
	switch {
	case empty && !numeric: // all-numeric data may well be all zero (EUI48 00-00-00-00-00-00)
		return fmt.Errorf("has no data")
	case missing != "":
		return fmt.Errorf("lacks %s", missing)
	}
	return nil
}

// setTooLarge explains an RRset whose records take size octets in an answer.
func (c *checker) setTooLarge(name string, t uint16, size int) error {
	if size <= c.lim.setBudget() {
		return nil
	}
	sig := ""
	if c.lim.SigSize > 0 {
		sig = fmt.Sprintf(" (%d with its signatures)", size+c.lim.SigSize)
	}
	return fmt.Errorf("the %s RRset at %s takes %d octets%s: an answer holds at most %d octets (RFC 1035 §4.2.2), which leaves %d for the records of one RRset",
		dns.TypeToString[t], name, size, sig, maxMessage, c.lim.setBudget())
}

// setSize returns the room the records of set take in an answer.
func (c *checker) setSize(set *RRset) (int, error) {
	size := 0
	for _, rr := range set.RRs {
		n, err := c.record(rr)
		if err != nil {
			return 0, err
		}
		size += n
	}
	return size, nil
}

// tooMany explains a zone of more than the limit of records.
func (c *checker) tooMany() error {
	return fmt.Errorf("the zone holds more than %d records (each empty non-terminal counts as one): raise max_records if it really is that large", c.lim.maxRecords())
}

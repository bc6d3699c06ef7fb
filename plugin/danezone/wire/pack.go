package wire

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/miekg/dns"
)

// maxTarget bounds the offsets a compression pointer may name in a packed body: Append moves
// every pointer by the length of the question, at most 255 + 4 octets, and a pointer holds 14
// bits (RFC 1035 §4.1.4).
const maxTarget = 0x3fff - maxName - 4

// Pack packs m, the response to the query q (its question q's name), into an entry that
// Append turns into the bytes for q, or for any query with the same key (and, for an entry
// any name can use, any name).
//
// Names are compressed (RFC 1035 §4.1.4) as a packet cache needs them: never into the
// question, which Append writes per query and which a negative answer shares between names,
// and never into an answer owner spelled as the question, which Append patches per query;
// only later owners spelled as the question point there. The pointers' targets are kept
// relative to a message without a question, and Append moves them by the question's length.
// Owner names and the names in the RDATA of NS, CNAME, PTR, MX and SOA records are
// compressed, as every name server does; no other RDATA name is (RFC 3597 §4), which keeps
// the NSEC next name and the RRSIG signer whole (RFC 4034 §3.1.7, §4.1.1) and the DNAME
// target too (RFC 6672 §2.5). Each name is matched as spelled, octet for octet, so that a
// name's letter case is what the zone gave it.
func Pack(m *dns.Msg, q *Query) (*Entry, error) {
	if len(m.Question) != 1 || m.Rcode > 0xf || m.Opcode > 0xf {
		return nil, fmt.Errorf("%w: %d questions, rcode %d, opcode %d", errShape, len(m.Question), m.Rcode, m.Opcode)
	}
	p := packers.Get().(*packer)
	defer p.release()
	p.q, p.e, p.first = q, &Entry{opt: -1, klen: uint16(q.klen)}, -1
	p.buf = append(append(p.buf[:0], q.key[:q.klen]...), make([]byte, 12)...)
	h := p.buf[q.klen:]
	binary.BigEndian.PutUint16(h[0:], m.Id)
	binary.BigEndian.PutUint16(h[2:], flags(m))
	binary.BigEndian.PutUint16(h[4:], 1)
	binary.BigEndian.PutUint16(h[6:], uint16(len(m.Answer)))
	binary.BigEndian.PutUint16(h[8:], uint16(len(m.Ns)))
	binary.BigEndian.PutUint16(h[10:], uint16(len(m.Extra)))
	for i, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if err := p.record(rr, i == 0); err != nil {
				return nil, err
			}
		}
	}
	if len(p.buf) > int(q.klen)+12+dns.MaxMsgSize {
		return nil, fmt.Errorf("%w: %d octets", errShape, len(p.buf)-q.klen)
	}
	p.e.blen = uint16(len(p.buf) - p.body())
	p.e.names, p.e.ptrs = uint16(len(p.names)), uint16(len(p.ptrs))
	for _, o := range p.names {
		p.buf = binary.BigEndian.AppendUint16(p.buf, o)
	}
	for _, o := range p.ptrs {
		p.buf = binary.BigEndian.AppendUint16(p.buf, o)
	}
	p.e.data = string(p.buf)
	return p.e, nil
}

// flags returns the second 16 bits of m's header (RFC 1035 §4.1.1).
func flags(m *dns.Msg) uint16 {
	f := uint16(m.Opcode)<<11 | uint16(m.Rcode&0xf)
	for _, b := range []struct {
		set bool
		bit uint16
	}{{m.Response, 1 << 15}, {m.Authoritative, 1 << 10}, {m.Truncated, 1 << 9}, {m.RecursionDesired, 1 << 8},
		{m.RecursionAvailable, 1 << 7}, {m.Zero, 1 << 6}, {m.AuthenticatedData, 1 << 5}, {m.CheckingDisabled, 1 << 4}} {
		if b.set {
			f |= b.bit
		}
	}
	return f
}

// packers keeps packers between responses: their dictionary, buffers and one-record message
// are the uncached path's allocations otherwise.
var packers = sync.Pool{New: func() any { return &packer{dict: make(map[string]uint16, 32)} }}

func (p *packer) release() {
	clear(p.dict)
	p.q, p.e, p.names, p.ptrs = nil, nil, p.names[:0], p.ptrs[:0]
	clear(p.one.Answer) // the zone's records: not kept alive by the pool
	if cap(p.buf) > 16<<10 || cap(p.tmp) > 16<<10 {
		p.buf, p.tmp = nil, nil
	}
	packers.Put(p)
}

type packer struct {
	q   *Query
	e   *Entry
	buf []byte  // key, header, body, offsets (copied into the entry: the packer is reused)
	one dns.Msg // one record at a time, packed uncompressed
	// dict maps each name suffix written out (wire form, as spelled) to its offset in a
	// message without a question.
	dict  map[string]uint16
	names []uint16 // offsets in the body of answer owners spelled as the question name
	ptrs  []uint16 // offsets in the body of compression pointers
	first int      // offset in the body of the first answer owner spelled as the question, or -1
	tmp   []byte
}

// off is the offset in a message without a question of what is appended next.
func (p *packer) off() int { return len(p.buf) - int(p.e.klen) }

// body is the offset in buf of the body.
func (p *packer) body() int { return int(p.e.klen) + 12 }

func (p *packer) record(rr dns.RR, answer bool) error {
	hdr := rr.Header()
	// The record uncompressed, from miekg/dns: its owner in wire form and its RDATA. Packed
	// in a message: dns.PackRR sets the header's Rdlength, and the record is the zone's,
	// shared with every other answer.
	need := 12 + dns.Len(rr) + 1
	if cap(p.tmp) < need {
		p.tmp = make([]byte, need)
	}
	p.one.Answer = append(p.one.Answer[:0], rr)
	tmp, err := p.one.PackBuffer(p.tmp[:need])
	if err != nil {
		return err
	}
	tmp = tmp[12:]
	ownerEnd, err := nameEnd(tmp, 0)
	if err != nil || ownerEnd+10 > len(tmp) {
		return errShape
	}
	owner, fixed, rdata := tmp[:ownerEnd], tmp[ownerEnd:ownerEnd+10], tmp[ownerEnd+10:]
	start := len(p.buf)
	switch {
	case answer && len(owner) == p.q.nlen && equalFold(owner, p.q.name[:p.q.nlen]):
		// Spelled as the question per query (RFC 1034 §3.1 leaves case to the server): the
		// first such owner is patched by Append, the later ones point to it.
		// (A pointer to the root name would be longer than the name.)
		if p.first >= 0 && 12+p.first <= maxTarget && p.q.nlen > 2 {
			p.pointer(12 + p.first)
			break
		}
		p.first = start - p.body()
		p.names = append(p.names, uint16(p.first))
		p.buf = append(p.buf, owner...)
	case hdr.Rrtype == dns.TypeOPT:
		p.e.opt = int32(start - p.body())
		p.buf = append(p.buf, owner...)
	default:
		p.name(owner)
	}
	p.buf = append(p.buf, fixed...)
	lenAt := len(p.buf) - 2
	rstart := len(p.buf)
	switch hdr.Rrtype {
	case dns.TypeNS, dns.TypeCNAME, dns.TypePTR:
		err = p.rdataNames(rdata, 0, 1)
	case dns.TypeMX:
		p.buf = append(p.buf, rdata[:2]...)
		err = p.rdataNames(rdata, 2, 1)
	case dns.TypeSOA:
		err = p.rdataNames(rdata, 0, 2)
	case dns.TypeNSEC, dns.TypeDNAME:
		// Written out, but later names may point to them (as to the signer below).
		p.buf = append(p.buf, rdata...)
		err = p.register(rdata, 0, rstart)
	case dns.TypeRRSIG:
		p.buf = append(p.buf, rdata...)
		err = p.register(rdata, 18, rstart) // the signer, after the fixed fields (RFC 4034 §3.1)
	default:
		p.buf = append(p.buf, rdata...)
	}
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint16(p.buf[lenAt:], uint16(len(p.buf)-rstart))
	return nil
}

// rdataNames appends the n names of rdata from off on, compressed, then the rest of rdata.
func (p *packer) rdataNames(rdata []byte, off, n int) error {
	for range n {
		end, err := nameEnd(rdata, off)
		if err != nil {
			return err
		}
		p.name(rdata[off:end])
		off = end
	}
	p.buf = append(p.buf, rdata[off:]...)
	return nil
}

// name appends the uncompressed wire-form name w: its labels up to the longest suffix already
// written, then a pointer to it.
func (p *packer) name(w []byte) {
	if p.dict == nil {
		p.dict = make(map[string]uint16, 16)
	}
	for i := 0; i < len(w); i += 1 + int(w[i]) {
		if w[i] == 0 {
			p.buf = append(p.buf, 0)
			return
		}
		if t, ok := p.dict[string(w[i:])]; ok {
			p.pointer(int(t))
			return
		}
		if at := p.off(); at <= maxTarget {
			p.dict[string(w[i:])] = uint16(at)
		}
		p.buf = append(p.buf, w[i:i+1+int(w[i])]...)
	}
}

// register notes the suffixes of the name at off in rdata, written out at rstart in buf, as
// targets for the names after it.
func (p *packer) register(rdata []byte, off, rstart int) error {
	end, err := nameEnd(rdata, off)
	if err != nil {
		return err
	}
	if p.dict == nil {
		p.dict = make(map[string]uint16, 16)
	}
	w := rdata[off:end]
	for i := 0; w[i] != 0; i += 1 + int(w[i]) {
		at := rstart - int(p.e.klen) + off + i
		if _, ok := p.dict[string(w[i:])]; !ok && at <= maxTarget {
			p.dict[string(w[i:])] = uint16(at)
		}
	}
	return nil
}

// pointer appends a compression pointer to target (in a message without a question) and
// notes it for Append to move.
func (p *packer) pointer(target int) {
	p.ptrs = append(p.ptrs, uint16(len(p.buf)-p.body()))
	p.buf = binary.BigEndian.AppendUint16(p.buf, 0xc000|uint16(target))
}

// nameEnd returns the end of the uncompressed wire-form name at off in b.
func nameEnd(b []byte, off int) (int, error) {
	for off < len(b) {
		c := int(b[off])
		if c == 0 {
			return off + 1, nil
		}
		if c&0xc0 != 0 {
			return 0, errShape
		}
		off += 1 + c
	}
	return 0, errShape
}

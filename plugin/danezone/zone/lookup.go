package zone

import "github.com/miekg/dns"

// Kind classifies a lookup.
type Kind int

// The lookup results.
const (
	Answer   Kind = iota // Set holds the answer (at Node, or expanded from Wildcard)
	CNAME                // Set holds a CNAME RRset; the answer continues at its target
	NoData               // the name exists without the type
	NXDomain             // the name does not exist; Encloser is the closest encloser
	Referral             // the name is at or below the delegation point Node
	DNAME                // an ancestor of the name owns the DNAME Set (RFC 6672)
)

func (k Kind) String() string {
	return [...]string{"answer", "cname", "nodata", "nxdomain", "referral", "dname"}[k]
}

// Result is what a lookup found.
type Result struct {
	Kind Kind
	Node *Node  // the matching node: exact, the wildcard, or the delegation point
	Set  *RRset // for Answer and CNAME
	// Wildcard is true when Node is a wildcard that matched a name that does not exist.
	Wildcard bool
	// Encloser is the closest encloser (RFC 4592) for NXDomain and wildcard results.
	Encloser string
	// NextCloser is the name one label longer than Encloser on the way to the query name.
	NextCloser string
}

// Lookup finds qname (any case) and qtype in the zone. qname must be at or below the origin.
// DS and NSEC at a delegation point are answered from this, the parent side (RFC 4035
// §3.1.4.1). ANY returns the node's first RRset (RFC 8482 §4.1).
func (z *Zone) Lookup(qname string, qtype uint16) Result {
	// The key and its label bounds on the stack: this runs for every query the answer cache
	// does not answer, and for every NXDOMAIN it does.
	key, bounds := appendKey(make([]byte, 0, keyRoom), make([]uint16, 0, labelRoom), qname)
	nl := len(bounds)
	var last *Node
	depth := z.originLabels
	for i := z.originLabels; i <= nl; i++ {
		n := z.apex
		if i > z.originLabels {
			n = z.nodes[string(key[:bounds[i-1]])]
		}
		if n == nil {
			break
		}
		last, depth = n, i
		if n.Cut && (i < nl || (qtype != dns.TypeDS && qtype != dns.TypeNSEC)) {
			return Result{Kind: Referral, Node: n}
		}
		if n.dname && i < nl {
			return Result{Kind: DNAME, Node: n, Set: n.Set(dns.TypeDNAME)}
		}
	}
	if depth == nl && last != nil {
		return match(last, qtype, false, "", "")
	}
	ce := last.Name
	nc := nameWithLabels(qname, nl-depth-1)
	// The wildcard's key is the closest encloser's with the label "*" after it.
	wk := key[:0]
	if depth > 0 {
		wk = key[:bounds[depth-1]]
	}
	wk = append(wk, '*', 0) // over the rest of the key, which is not needed any more
	// Never the apex, so the map itself: indexing converts the key without a copy.
	if wc := z.nodes[string(wk)]; wc != nil {
		return match(wc, qtype, true, ce, nc)
	}
	return Result{Kind: NXDomain, Encloser: ce, NextCloser: Canonical(nc)}
}

func match(n *Node, qtype uint16, wild bool, ce, nc string) Result {
	r := Result{Node: n, Wildcard: wild, Kind: NoData}
	if wild {
		r.Encloser, r.NextCloser = ce, Canonical(nc)
	}
	if n.ENT() {
		return r
	}
	if qtype == dns.TypeANY {
		r.Kind, r.Set = Answer, n.sets[0]
		return r
	}
	var cname *RRset
	for _, s := range n.sets {
		switch s.Type {
		case qtype:
			r.Kind, r.Set = Answer, s
			return r
		case dns.TypeCNAME:
			cname = s
		}
	}
	// RRSIG and NSEC live beside a CNAME and are answered from its owner (RFC 4035 §2.5).
	if cname != nil && qtype != dns.TypeNSEC && qtype != dns.TypeRRSIG {
		r.Kind, r.Set = CNAME, cname
	}
	return r
}

// nameWithLabels returns the suffix of name that drops the first `drop` labels.
func nameWithLabels(name string, drop int) string {
	off := 0
	for range drop {
		off, _ = dns.NextLabel(name, off)
	}
	return name[off:]
}

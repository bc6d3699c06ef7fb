package resolver

// A compact zone signer for the tests: ECDSA P-256 keys, an NSEC or NSEC3 chain, RRSIGs over
// every authoritative RRset, and hooks to break things on purpose.

import (
	"crypto"
	"encoding/base64"
	"slices"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

type tzone struct {
	origin string
	ip     string // the server that serves it
	signed bool
	nsec3  *dns.NSEC3PARAM // nil: NSEC

	ksk, zsk         *dns.DNSKEY
	kskPriv, zskPriv crypto.Signer
	extraKeys        []*dns.DNSKEY // published in the DNSKEY RRset, no private key

	rrs []dns.RR

	// Faults applied while signing, keyed by "owner|TYPE".
	noSig     map[string]bool
	badSig    map[string]bool
	extraSigs map[string][]dns.RR  // published besides (or instead of, with noSig) the real RRSIG
	windows   map[string][2]uint32 // validity periods other than the zone's

	// Built by sign.
	data   map[string]map[uint16][]dns.RR
	sigs   map[string]map[uint16][]dns.RR
	cuts   map[string]bool
	exists map[string]bool // authoritative names and empty non-terminals
	chain  []string        // NSEC owners, canonical order
	nsecs  map[string]*dns.NSEC
	n3     []*n3entry // by hash
}

type n3entry struct {
	hash string // uppercase base32hex
	name string // the name hashed
	rr   *dns.NSEC3
}

func newZone(origin, ip string, signed bool) *tzone {
	return newZoneAlg(origin, ip, signed, dns.ECDSAP256SHA256)
}

func newZoneAlg(origin, ip string, signed bool, alg uint8) *tzone {
	z := &tzone{origin: canonical(origin), ip: ip, signed: signed,
		noSig: map[string]bool{}, badSig: map[string]bool{}, extraSigs: map[string][]dns.RR{},
		windows: map[string][2]uint32{}}
	if signed {
		z.ksk, z.kskPriv = genKeyAlg(z.origin, 257, alg)
		z.zsk, z.zskPriv = genKeyAlg(z.origin, 256, alg)
	}
	return z
}

func genKey(owner string, flags uint16) (*dns.DNSKEY, crypto.Signer) {
	return genKeyAlg(owner, flags, dns.ECDSAP256SHA256)
}

func genKeyAlg(owner string, flags uint16, alg uint8) (*dns.DNSKEY, crypto.Signer) {
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: owner, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     flags,
		Protocol:  3,
		Algorithm: alg,
	}
	bits := 256
	if alg == dns.RSASHA256 {
		bits = 2048
	}
	priv, err := k.Generate(bits)
	if err != nil {
		panic(err)
	}
	return k, priv.(crypto.Signer)
}

func (z *tzone) add(records ...string) {
	for _, s := range records {
		z.rrs = append(z.rrs, mustRR(s))
	}
}

// ds returns the DS of the zone's KSK.
func (z *tzone) ds() *dns.DS { return z.ksk.ToDS(dns.SHA256) }

func fkey(owner string, t uint16) string { return canonical(owner) + "|" + dns.Type(t).String() }

// occluded reports whether name lies below a delegation of the zone (glue, not authoritative).
func (z *tzone) occluded(name string) bool {
	for c := range z.cuts {
		if isStrictSubDomain(c, name) {
			return true
		}
	}
	return false
}

func (z *tzone) put(rr dns.RR) {
	owner := canonical(rr.Header().Name)
	rr.Header().Name = owner
	if z.data[owner] == nil {
		z.data[owner] = map[uint16][]dns.RR{}
	}
	z.data[owner][rr.Header().Rrtype] = append(z.data[owner][rr.Header().Rrtype], rr)
}

// sign builds the zone: its data, denial chain and signatures valid from inception to
// expiration (Unix seconds).
func (z *tzone) sign(inception, expiration uint32) {
	z.data = map[string]map[uint16][]dns.RR{}
	z.sigs = map[string]map[uint16][]dns.RR{}
	z.cuts = map[string]bool{}
	z.exists = map[string]bool{}
	z.nsecs = map[string]*dns.NSEC{}
	z.chain, z.n3 = nil, nil
	for _, rr := range z.rrs {
		z.put(dns.Copy(rr))
	}
	if z.signed {
		for _, k := range append([]*dns.DNSKEY{z.ksk, z.zsk}, z.extraKeys...) {
			z.put(dns.Copy(k))
		}
		if z.nsec3 != nil {
			p := *z.nsec3
			p.Hdr = dns.RR_Header{Name: z.origin, Rrtype: dns.TypeNSEC3PARAM, Class: dns.ClassINET, Ttl: 0}
			z.put(&p)
		}
	}
	for owner, types := range z.data {
		if owner != z.origin && types[dns.TypeNS] != nil {
			z.cuts[owner] = true
		}
	}
	var auth []string
	for owner := range z.data {
		if z.occluded(owner) || !isSubDomain(z.origin, owner) {
			continue
		}
		auth = append(auth, owner)
		for n := owner; ; n = parentName(n) {
			z.exists[n] = true
			if n == z.origin || n == "." {
				break
			}
		}
	}
	sort.Slice(auth, func(i, j int) bool { return compareNames(auth[i], auth[j]) < 0 })
	if !z.signed {
		return
	}
	negTTL := uint32(300)
	bitmap := func(owner string, withSig bool) []uint16 {
		var types []uint16
		for t := range z.data[owner] {
			if z.cuts[owner] && t != dns.TypeNS && t != dns.TypeDS {
				continue
			}
			types = append(types, t)
		}
		if withSig && (!z.cuts[owner] || z.data[owner][dns.TypeDS] != nil) {
			types = append(types, dns.TypeRRSIG)
		}
		slices.Sort(types)
		return types
	}
	if z.nsec3 == nil {
		z.chain = auth
		for i, owner := range auth {
			n := &dns.NSEC{
				Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: negTTL},
				NextDomain: auth[(i+1)%len(auth)],
				TypeBitMap: append(bitmap(owner, false), dns.TypeRRSIG, dns.TypeNSEC),
			}
			slices.Sort(n.TypeBitMap)
			n.TypeBitMap = slices.Compact(n.TypeBitMap)
			z.nsecs[owner] = n
		}
	} else {
		p := z.nsec3
		for name := range z.exists {
			if p.Flags&1 != 0 && z.cuts[name] && z.data[name][dns.TypeDS] == nil {
				continue // opt-out: unsigned delegations are left out of the chain
			}
			z.n3 = append(z.n3, &n3entry{hash: dns.HashName(name, p.Hash, p.Iterations, p.Salt), name: name})
		}
		sort.Slice(z.n3, func(i, j int) bool { return z.n3[i].hash < z.n3[j].hash })
		for i, e := range z.n3 {
			var types []uint16
			if z.data[e.name] != nil {
				types = bitmap(e.name, true)
			}
			e.rr = &dns.NSEC3{
				Hdr:        dns.RR_Header{Name: strings.ToLower(e.hash) + "." + z.origin, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: negTTL},
				Hash:       p.Hash,
				Flags:      p.Flags,
				Iterations: p.Iterations,
				SaltLength: p.SaltLength,
				Salt:       p.Salt,
				HashLength: 20,
				NextDomain: z.n3[(i+1)%len(z.n3)].hash,
				TypeBitMap: types,
			}
		}
	}

	signSet := func(rrs []dns.RR) {
		h := rrs[0].Header()
		k := fkey(h.Name, h.Rrtype)
		var out []dns.RR
		if !z.noSig[k] {
			key, priv := z.zsk, z.zskPriv
			if h.Rrtype == dns.TypeDNSKEY {
				key, priv = z.ksk, z.kskPriv
			}
			sig := &dns.RRSIG{
				Hdr:        dns.RR_Header{Ttl: h.Ttl},
				Algorithm:  key.Algorithm,
				SignerName: z.origin,
				KeyTag:     key.KeyTag(),
				Inception:  inception,
				Expiration: expiration,
			}
			if w, ok := z.windows[k]; ok {
				sig.Inception, sig.Expiration = w[0], w[1]
			}
			if err := sig.Sign(priv, rrs); err != nil {
				panic(err)
			}
			if z.badSig[k] {
				b, _ := base64.StdEncoding.DecodeString(sig.Signature)
				b[len(b)/2] ^= 0x55
				sig.Signature = base64.StdEncoding.EncodeToString(b)
			}
			out = append(out, sig)
		}
		out = append(out, z.extraSigs[k]...)
		if z.sigs[canonical(h.Name)] == nil {
			z.sigs[canonical(h.Name)] = map[uint16][]dns.RR{}
		}
		z.sigs[canonical(h.Name)][h.Rrtype] = out
	}
	for _, owner := range auth {
		for t, rrs := range z.data[owner] {
			if z.cuts[owner] && t != dns.TypeDS {
				continue // delegation NS: not authoritative, not signed
			}
			signSet(rrs)
		}
	}
	for _, n := range z.nsecs {
		signSet([]dns.RR{n})
	}
	for _, e := range z.n3 {
		signSet([]dns.RR{e.rr})
	}
}

// predecessor returns the NSEC whose owner is the last chain name before name (wrapping).
func (z *tzone) predecessor(name string) *dns.NSEC {
	i := sort.Search(len(z.chain), func(i int) bool { return compareNames(z.chain[i], name) >= 0 })
	if i == 0 {
		i = len(z.chain)
	}
	return z.nsecs[z.chain[i-1]]
}

func (z *tzone) n3match(name string) *dns.NSEC3 {
	h := dns.HashName(name, z.nsec3.Hash, z.nsec3.Iterations, z.nsec3.Salt)
	for _, e := range z.n3 {
		if e.hash == h {
			return e.rr
		}
	}
	return nil
}

func (z *tzone) n3cover(name string) *dns.NSEC3 {
	h := dns.HashName(name, z.nsec3.Hash, z.nsec3.Iterations, z.nsec3.Salt)
	i := sort.Search(len(z.n3), func(i int) bool { return z.n3[i].hash >= h })
	if i == 0 {
		i = len(z.n3)
	}
	return z.n3[i-1].rr
}

// closestEncloser returns the longest existing ancestor of name in the zone.
func (z *tzone) closestEncloser(name string) string {
	for n := name; ; n = parentName(n) {
		if z.exists[n] || n == z.origin || n == "." {
			return n
		}
	}
}

package resolver

// The test world: a signed hierarchy served by two in-process authoritative servers on one
// port (127.0.0.1: the root and test., 127.0.0.2: the zones below, so that the resolver
// follows real referrals; everything on 127.0.0.1 where 127.0.0.2 is unavailable).

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type world struct {
	base     time.Time // the virtual "now" the signatures are made for
	port     int
	rootAddr string
	zones    map[string]*tzone
	servers  map[string]*authServer // by IP
	rootDS   *dns.DS
	rootKSK  *dns.DNSKEY
	ktZSKTag uint16
}

var fix *world

func TestMain(m *testing.M) {
	w, err := buildWorld()
	if err != nil {
		fmt.Fprintln(os.Stderr, "test world:", err)
		os.Exit(1)
	}
	fix = w
	code := m.Run()
	for _, s := range w.servers {
		s.stop()
	}
	os.Exit(code)
}

func soaFor(origin string) string {
	ns, mbox := "ns1."+origin, "hostmaster."+origin
	if origin == "." {
		ns, mbox = "a.root.", "hostmaster.root."
	}
	return fmt.Sprintf("%s 3600 IN SOA %s %s 1 3600 900 1209600 300", origin, ns, mbox)
}

// delegate makes child a zone below parent, served at ip, with DS records ds (none: an
// unsigned delegation). nsName gets glue in parent when it lies below child.
func delegate(parent, child *tzone, nsName, ip string, ds ...dns.RR) {
	parent.add(fmt.Sprintf("%s 3600 IN NS %s", child.origin, nsName))
	child.add(soaFor(child.origin), fmt.Sprintf("%s 3600 IN NS %s", child.origin, nsName))
	if isSubDomain(child.origin, nsName) {
		parent.add(fmt.Sprintf("%s 3600 IN A %s", nsName, ip))
		child.add(fmt.Sprintf("%s 3600 IN A %s", nsName, ip))
	}
	for _, d := range ds {
		d.Header().Name = child.origin
		d.Header().Ttl = 3600
		parent.rrs = append(parent.rrs, d)
	}
}

// collidingKeys returns n DNSKEYs that share k's key tag (and are not valid keys): the
// public key with one octet raised and another of the same parity lowered by as much.
func collidingKeys(k *dns.DNSKEY, n int) []*dns.DNSKEY {
	pub, _ := base64.StdEncoding.DecodeString(k.PublicKey)
	var out []*dns.DNSKEY
	for d := 1; len(out) < n; d++ {
		for j := 0; j+2 < len(pub) && len(out) < n; j++ {
			if int(pub[j])+d > 255 || int(pub[j+2])-d < 0 {
				continue
			}
			b := append([]byte(nil), pub...)
			b[j] += byte(d)
			b[j+2] -= byte(d)
			f := *k
			f.PublicKey = base64.StdEncoding.EncodeToString(b)
			if f.KeyTag() != k.KeyTag() {
				panic("collidingKeys: tag changed")
			}
			out = append(out, &f)
		}
	}
	return out
}

func buildWorld() (*world, error) {
	w := &world{base: time.Now().Truncate(time.Second), zones: map[string]*tzone{}, servers: map[string]*authServer{}}
	ip1, ip2 := "127.0.0.1", "127.0.0.2"
	if l, err := net.ListenPacket("udp", ip2+":0"); err != nil {
		ip2 = ip1
	} else {
		l.Close()
	}

	root := newZone(".", ip1, true)
	tld := newZone("test.", ip1, true)
	ex := newZone("example.test.", ip2, true)
	uns := newZone("unsigned.test.", ip2, false)
	dsm := newZone("dsmismatch.test.", ip2, true)
	kt := newZone("keytrap.test.", ip2, true)
	ng := newZone("noglue.test.", ip2, true)
	n3 := newZone("nsec3.test.", ip2, true)
	n3.nsec3 = &dns.NSEC3PARAM{Hash: dns.SHA1, Iterations: 0, Salt: ""}
	it := newZone("iter.test.", ip2, true)
	it.nsec3 = &dns.NSEC3PARAM{Hash: dns.SHA1, Iterations: 200, SaltLength: 2, Salt: "ABCD"}
	a16 := newZone("alg16.test.", ip2, false)
	oo := newZone("optout.test.", ip2, true)
	oo.nsec3 = &dns.NSEC3PARAM{Hash: dns.SHA1, Flags: 1, Iterations: 0, Salt: ""}
	ooc := newZone("child.optout.test.", ip2, false)
	n3u := newZone("unsigned.nsec3.test.", ip2, false)
	rsa := newZoneAlg("rsa.test.", ip2, true, dns.RSASHA256)
	ed := newZoneAlg("ed.test.", ip2, true, dns.ED25519)
	for _, z := range []*tzone{root, tld, ex, uns, dsm, kt, ng, n3, it, a16, oo, ooc, n3u, rsa, ed} {
		w.zones[z.origin] = z
	}

	root.add(soaFor("."), ". 3600 IN NS a.root.", "a.root. 3600 IN A "+ip1)
	delegate(root, tld, "ns1.test.", ip1, tld.ds())

	delegate(tld, ex, "ns1.example.test.", ip2, ex.ds())
	delegate(tld, uns, "ns1.unsigned.test.", ip2)
	other, _ := genKey("dsmismatch.test.", 257)
	delegate(tld, dsm, "ns1.dsmismatch.test.", ip2, other.ToDS(dns.SHA256))
	delegate(tld, kt, "ns1.keytrap.test.", ip2, kt.ds())
	delegate(tld, ng, "ns2.example.test.", ip2, ng.ds()) // no glue: ns2.example.test must be looked up
	delegate(tld, n3, "ns1.nsec3.test.", ip2, n3.ds())
	delegate(tld, it, "ns1.iter.test.", ip2, it.ds())
	delegate(tld, oo, "ns1.optout.test.", ip2, oo.ds())
	delegate(oo, ooc, "ns1.child.optout.test.", ip2)
	delegate(n3, n3u, "ns1.unsigned.nsec3.test.", ip2)
	delegate(tld, rsa, "ns1.rsa.test.", ip2, rsa.ds())
	delegate(tld, ed, "ns1.ed.test.", ip2, ed.ds())
	digest := make([]byte, 32)
	rand.Read(digest)
	delegate(tld, a16, "ns1.alg16.test.", ip2, &dns.DS{Hdr: dns.RR_Header{Rrtype: dns.TypeDS, Class: dns.ClassINET},
		KeyTag: 4242, Algorithm: 16, DigestType: dns.SHA256, Digest: hex.EncodeToString(digest)})

	ex.add(
		"www.example.test. 300 IN A 192.0.2.1",
		"ns2.example.test. 300 IN A "+ip2,
		"mx1.example.test. 300 IN A 192.0.2.25",
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1",
		"*.users.example.test. 300 IN A 192.0.2.99",
		"mail.example.test. 300 IN CNAME www.example.test.",
		"webmail.example.test. 300 IN CNAME mail.example.test.",
		"alias.example.test. 300 IN CNAME www.unsigned.test.",
		"ext.example.test. 300 IN CNAME www.nsec3.test.",
		"badlink.example.test. 300 IN CNAME badsig.example.test.",
		"badsig.example.test. 300 IN A 192.0.2.66",
		"nosig.example.test. 300 IN A 192.0.2.67",
		"tc.example.test. 300 IN A 192.0.2.68",
		"drop.example.test. 300 IN A 192.0.2.69",
		"expired.example.test. 300 IN A 192.0.2.70",
		"dn.example.test. 300 IN DNAME nsec3.test.",
		"loop1.example.test. 300 IN CNAME loop2.example.test.",
		"loop2.example.test. 300 IN CNAME loop1.example.test.",
	)
	ex.badSig[fkey("badsig.example.test.", dns.TypeA)] = true
	ex.noSig[fkey("nosig.example.test.", dns.TypeA)] = true
	day := uint32(86400)
	b := uint32(w.base.Unix())
	ex.windows[fkey("expired.example.test.", dns.TypeA)] = [2]uint32{b - 10*day, b - 3*day}

	for _, z := range []*tzone{uns, dsm, ng, a16, it, oo, ooc, n3u, rsa, ed} {
		z.add(fmt.Sprintf("www.%s 300 IN A 192.0.2.10", z.origin))
	}
	n3.add("www.nsec3.test. 300 IN A 192.0.2.3", "a.b.nsec3.test. 300 IN A 192.0.2.4", "*.wild.nsec3.test. 300 IN A 192.0.2.5")

	// KeyTrap: 20 more DNSKEYs sharing the ZSK's key tag, and an A RRset with 10 RRSIGs of
	// that tag, none of which verifies.
	kt.extraKeys = collidingKeys(kt.zsk, 20)
	kt.add("www.keytrap.test. 300 IN A 192.0.2.11")
	k := fkey("www.keytrap.test.", dns.TypeA)
	kt.noSig[k] = true
	for range 10 {
		junk := make([]byte, 64)
		rand.Read(junk)
		kt.extraSigs[k] = append(kt.extraSigs[k], &dns.RRSIG{
			Hdr:         dns.RR_Header{Name: "www.keytrap.test.", Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
			TypeCovered: dns.TypeA, Algorithm: dns.ECDSAP256SHA256, Labels: 3, OrigTtl: 300,
			Expiration: b + 7*day, Inception: b - 3600, KeyTag: kt.zsk.KeyTag(), SignerName: "keytrap.test.",
			Signature: base64.StdEncoding.EncodeToString(junk),
		})
	}
	w.ktZSKTag = kt.zsk.KeyTag()

	for _, z := range w.zones {
		z.sign(b-3600, b+7*day)
	}
	w.rootDS, w.rootKSK = root.ds(), root.ksk

	// One port for every server (Config.Port).
	var err error
	for range 20 {
		var l net.PacketConn
		l, err = net.ListenPacket("udp", ip1+":0")
		if err != nil {
			return nil, err
		}
		w.port = l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		w.servers = map[string]*authServer{}
		err = nil
		for _, z := range w.zones {
			s := w.servers[z.ip]
			if s == nil {
				s = newAuthServer(z.ip)
				w.servers[z.ip] = s
			}
			s.zones[z.origin] = z
		}
		for _, s := range w.servers {
			if err = s.start(w.port); err != nil {
				break
			}
		}
		if err == nil {
			break
		}
		for _, s := range w.servers {
			s.stop()
		}
	}
	if err != nil {
		return nil, err
	}
	w.rootAddr = net.JoinHostPort(ip1, fmt.Sprint(w.port))
	s2 := w.servers[ip2]
	s2.drop["drop.example.test."] = true
	s2.tcOnly["tc.example.test."] = true
	s2.noDenial["nonsec.example.test."] = true
	return w, nil
}

// config returns a resolver configuration for the world at virtual time now.
func (w *world) config(now time.Time) Config {
	return Config{
		TrustAnchors: []dns.RR{w.rootDS},
		Roots:        []string{w.rootAddr},
		Port:         w.port,
		Now:          func() time.Time { return now },
		Timeout:      time.Second,
	}
}

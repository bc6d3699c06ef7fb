package danezone

// Fault application: what the faults of package fault do to a response. Transport and rcode
// faults decide whether and how an answer is sent; data faults serve an alternate snapshot;
// DNSSEC faults damage the signatures and proofs of the finished response.

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns/coredns/plugin/metrics"
	"github.com/danelab/danelab/plugin/danezone/denial"
	"github.com/danelab/danelab/plugin/danezone/duration"
	"github.com/danelab/danelab/plugin/danezone/fault"
	"github.com/danelab/danelab/plugin/danezone/keys"
	"github.com/danelab/danelab/plugin/danezone/zone"
	"github.com/miekg/dns"
)

// rcodeFaults answer with an rcode and nothing else.
var rcodeFaults = map[fault.Mode]int{
	fault.ServFail: dns.RcodeServerFailure,
	fault.Refused:  dns.RcodeRefused,
	fault.NotImp:   dns.RcodeNotImplemented,
	fault.FormErr:  dns.RcodeFormatError,
}

// transport applies the faults that decide whether and how an answer is sent at all, to a
// query of zone. It returns true when it has dealt with the query, and the rcode sent (-1:
// nothing sent).
func transport(ctx context.Context, zone string, f *fault.Fault, w dns.ResponseWriter, r *dns.Msg, udp bool, record func(rcode int)) bool {
	switch f.Mode() {
	case fault.Drop:
		record(-1)
		return true
	case fault.Delay:
		// Answered after the delay, or at once when the fault is removed; dropped when too
		// many queries are already held (see fault.Hold).
		answer, dropped := f.Hold(ctx)
		if dropped > 0 {
			faultDelayDropped.WithLabelValues(metrics.WithServer(ctx), zone).Inc()
			if dropped == 1 { // once per fault: a flood must not flood the log too
				log.Warningf("Fault %s (delay %s): the most queries delayed at once are waiting; dropping the others",
					f.ID, duration.Format(time.Duration(f.Spec.Delay)))
			}
		}
		if !answer {
			record(-1)
			return true
		}
		return false
	case fault.Truncate, fault.TruncateNoTCP:
		if !udp {
			if f.Mode() == fault.TruncateNoTCP {
				record(-1)
				w.Close() // TCP "refused": the connection ends unanswered
				return true
			}
			return false
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		m.Truncated = true
		record(dns.RcodeSuccess)
		w.WriteMsg(m)
		return true
	}
	if rc, ok := rcodeFaults[f.Mode()]; ok {
		m := new(dns.Msg)
		m.SetRcode(r, rc)
		record(rc)
		w.WriteMsg(m)
		return true
	}
	return false
}

// alternates caches, per data fault, the changed snapshot served to the queries it matches.
type alternates struct {
	mu sync.Mutex
	m  map[*fault.Fault]*snapshot // keyed by fault; valid for one base snapshot
	bs map[*fault.Fault]*snapshot // the base each entry was built from
}

func (a *alternates) reset() {
	a.mu.Lock()
	a.m, a.bs = nil, nil
	a.mu.Unlock()
}

// get returns the snapshot base as changed by the data fault f, built once per base version.
func (a *alternates) get(f *fault.Fault, base *snapshot, mode denial.Mode) *snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bs[f] == base {
		return a.m[f]
	}
	alt := alternate(f, base, mode)
	if a.m == nil {
		a.m, a.bs = map[*fault.Fault]*snapshot{}, map[*fault.Fault]*snapshot{}
	}
	a.m[f], a.bs[f] = alt, base
	return alt
}

// alternate builds the snapshot a data fault serves: base with the fault's RRsets changed,
// re-signed like any other version.
func alternate(f *fault.Fault, base *snapshot, mode denial.Mode) *snapshot {
	if f.Mode() == fault.NSEC3Iterations {
		// The same data, denied by an NSEC3 chain of the fault's iterations, validly signed.
		m := denial.NSEC3
		m.Iterations = f.Iterations()
		return newSnapshot(base.z, denial.New(m, base.z, nil), base.keys, 0)
	}
	want := uint16(dns.TypeTLSA)
	if f.Mode() == fault.DSMismatch || f.Mode() == fault.Insecure {
		want = dns.TypeDS
	}
	changes := map[string]map[uint16]*zone.RRset{}
	base.z.Sets(func(set *zone.RRset) {
		if set.Type != want || !f.MatchName(set.Name) {
			return
		}
		byType := map[uint16]*zone.RRset{}
		for _, s := range base.z.Node(set.Name).RRsets() {
			byType[s.Type] = s
		}
		if changed := change(f.Mode(), set); changed != nil {
			byType[want] = changed
		} else {
			delete(byType, want)
		}
		changes[set.Name] = byType
	})
	if len(changes) == 0 {
		return base
	}
	z := base.z.WithSets(changes)
	return newSnapshot(z, denial.New(mode, z, base.d), base.keys, 0)
}

// change returns the RRset a data fault serves instead of set, or nil to remove it.
func change(m fault.Mode, set *zone.RRset) *zone.RRset {
	var out []dns.RR
	for _, rr := range set.RRs {
		c := dns.Copy(rr)
		switch m {
		case fault.Insecure, fault.TLSAAbsent:
			return nil
		case fault.DSMismatch:
			ds := c.(*dns.DS)
			ds.Digest = scramble(ds.Digest)
		case fault.TLSAMismatch:
			t := c.(*dns.TLSA)
			t.Certificate = scramble(t.Certificate)
		case fault.TLSAUnusable:
			t := c.(*dns.TLSA)
			switch t.Usage { // DANE-EE -> PKIX-EE, DANE-TA -> PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3)
			case 3:
				t.Usage = 1
			case 2:
				t.Usage = 0
			}
		}
		out = append(out, c)
	}
	return zone.NewRRset(out)
}

// scramble returns hex data of the same length that matches nothing: a hash of the original.
func scramble(h string) string {
	var out strings.Builder
	seed := []byte("danezone fault: " + h)
	for out.Len() < len(h) {
		sum := sha256.Sum256(seed)
		out.WriteString(hex.EncodeToString(sum[:]))
		seed = sum[:]
	}
	return strings.ToUpper(out.String()[:len(h)])
}

// damage applies a DNSSEC fault to a finished response.
func (d *DaneZone) damage(m *dns.Msg, f *fault.Fault, sz *servedZone) error {
	switch f.Mode() {
	case fault.NoSig:
		for _, sec := range []*[]dns.RR{&m.Answer, &m.Ns, &m.Extra} {
			*sec = filter(*sec, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeRRSIG })
		}
	case fault.NoDenial:
		for _, sec := range []*[]dns.RR{&m.Answer, &m.Ns} {
			*sec = filter(*sec, func(rr dns.RR) bool { return !isDenial(rr) })
		}
	case fault.BadSig:
		for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for i, rr := range sec {
				if sig, ok := rr.(*dns.RRSIG); ok {
					c := dns.Copy(sig).(*dns.RRSIG)
					b, _ := base64.StdEncoding.DecodeString(c.Signature)
					if len(b) > 0 {
						b[0] ^= 0xff
						b[len(b)-1] ^= 0xff
					}
					c.Signature = base64.StdEncoding.EncodeToString(b)
					sec[i] = c
				}
			}
		}
	case fault.ExpiredSig, fault.FutureSig, fault.WrongKey:
		now := sz.signer.Now()
		inc, exp := now.Add(-time.Hour), now.Add(14*24*time.Hour)
		var with []*keys.Key
		switch f.Mode() {
		// Validators forgive clock skew up to a tenth of the validity period, capped at a
		// day by default (Unbound's val-sig-skew-max): stay well clear of it.
		case fault.ExpiredSig:
			inc, exp = now.Add(-37*24*time.Hour), now.Add(-7*24*time.Hour)
		case fault.FutureSig:
			inc, exp = now.Add(7*24*time.Hour), now.Add(37*24*time.Hour)
		case fault.WrongKey:
			k, err := sz.wrongKey()
			if err != nil {
				return err
			}
			with = []*keys.Key{k}
		}
		for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			if err := resign(sec, sz, inc, exp, with); err != nil {
				return err
			}
		}
	case fault.CompactNoNXNAME, fault.CompactTypeInBitmap:
		q := question(m)
		changed := false
		for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
			for i, rr := range sec {
				n, ok := rr.(*dns.NSEC)
				if !ok {
					continue
				}
				var types []uint16
				switch {
				case f.Mode() == fault.CompactNoNXNAME && slices.Contains(n.TypeBitMap, denial.TypeNXNAME):
					types = slices.DeleteFunc(slices.Clone(n.TypeBitMap), func(t uint16) bool { return t == denial.TypeNXNAME })
					m.Rcode = dns.RcodeSuccess // an NXDOMAIN kept for CO would now contradict its NSEC
				case f.Mode() == fault.CompactTypeInBitmap && strings.EqualFold(n.Hdr.Name, q.Name) && !slices.Contains(n.TypeBitMap, q.Qtype):
					types = append(slices.Clone(n.TypeBitMap), q.Qtype)
					slices.Sort(types)
				default:
					continue
				}
				c := dns.Copy(n).(*dns.NSEC) // the zone's record stays as it is
				c.TypeBitMap = types
				sec[i], changed = c, true
			}
		}
		if changed {
			now := sz.signer.Now()
			for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
				if err := resign(sec, sz, now.Add(-time.Hour), now.Add(14*24*time.Hour), nil); err != nil {
					return err
				}
			}
		}
	case fault.BadDenial:
		for _, sec := range []*[]dns.RR{&m.Answer, &m.Ns} {
			var out []dns.RR
			for _, rr := range *sec {
				n, ok := rr.(*dns.NSEC)
				if !ok {
					if !isDenial(rr) {
						out = append(out, rr)
					}
					continue
				}
				// An NSEC just below its real owner: it neither matches nor covers the name.
				owner := zone.Canonical(n.Hdr.Name)
				bad := &dns.NSEC{Hdr: dns.RR_Header{Name: "\\000." + owner, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: n.Hdr.Ttl},
					NextDomain: "\\001." + owner, TypeBitMap: []uint16{dns.TypeRRSIG, dns.TypeNSEC}}
				set := zone.NewRRset([]dns.RR{bad})
				sigs, err := sz.signer.SignOnce(set)
				if err != nil {
					return err
				}
				out = append(out, bad)
				out = append(out, sigs...)
			}
			*sec = out
		}
	}
	return nil
}

func isDenial(rr dns.RR) bool {
	switch x := rr.(type) {
	case *dns.NSEC, *dns.NSEC3:
		return true
	case *dns.RRSIG:
		return x.TypeCovered == dns.TypeNSEC || x.TypeCovered == dns.TypeNSEC3
	}
	return false
}

func filter(rrs []dns.RR, keep func(dns.RR) bool) []dns.RR {
	out := rrs[:0:0]
	for _, rr := range rrs {
		if keep(rr) {
			out = append(out, rr)
		}
	}
	return out
}

// resign replaces every RRSIG of section by one made with the given validity and keys, over
// the records of the section it covers. A wildcard expansion is signed as the wildcard.
func resign(section []dns.RR, sz *servedZone, inc, exp time.Time, with []*keys.Key) error {
	for i, rr := range section {
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		owner := zone.Canonical(sig.Hdr.Name)
		signAs := owner
		if n := dns.CountLabel(owner); n > int(sig.Labels) {
			off := 0
			for range n - int(sig.Labels) {
				off, _ = dns.NextLabel(owner, off)
			}
			signAs = "*." + owner[off:]
		}
		var rrs []dns.RR
		for _, o := range section {
			if o.Header().Rrtype == sig.TypeCovered && strings.EqualFold(o.Header().Name, owner) {
				c := dns.Copy(o)
				c.Header().Name = signAs
				c.Header().Ttl = sig.OrigTtl
				rrs = append(rrs, c)
			}
		}
		if len(rrs) == 0 {
			continue
		}
		set := zone.NewRRset(rrs)
		keysUsed := with
		if keysUsed == nil {
			for _, k := range sz.signer.Keys().Keys {
				if k.Tag == sig.KeyTag {
					keysUsed = []*keys.Key{k}
				}
			}
		}
		sigs, err := sz.signer.SignAt(set, inc, exp, keysUsed)
		if err != nil {
			return err
		}
		c := sigs[0].(*dns.RRSIG)
		c.Hdr.Name, c.Hdr.Ttl = sig.Hdr.Name, sig.Hdr.Ttl
		section[i] = c
	}
	return nil
}

// wrongKey returns a key of the zone's algorithm that is not in its DNSKEY set, made once.
func (sz *servedZone) wrongKey() (*keys.Key, error) {
	sz.wrongOnce.Do(func() {
		real := sz.signer.Keys()
		alg := real.Keys[0].DNSKEY.Algorithm
		for {
			dk := &dns.DNSKEY{Hdr: dns.RR_Header{Name: sz.origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
				Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: alg}
			bits := 256
			if alg == dns.RSASHA256 {
				bits = 2048
			}
			priv, err := dk.Generate(bits)
			if err != nil {
				sz.wrongErr = err
				return
			}
			tag := dk.KeyTag()
			clash := false
			for _, k := range real.Keys {
				clash = clash || k.Tag == tag
			}
			if !clash {
				sz.wrong = &keys.Key{DNSKEY: dk, Signer: priv.(crypto.Signer), Tag: tag}
				return
			}
		}
	})
	return sz.wrong, sz.wrongErr
}

// question is the question of a response.
func question(m *dns.Msg) dns.Question {
	if len(m.Question) == 0 {
		return dns.Question{}
	}
	return m.Question[0]
}

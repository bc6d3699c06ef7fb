package zone

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/danelab/danelab/internal/canonical"
	"github.com/miekg/dns"
)

// TestBuildAgainstNaive: the index of a snapshot (which names exist, which are empty
// non-terminals, occluded, in the chain, in what order) agrees with a naive reading of the
// RFCs on random trees, names with escaped 0x00 and 0x01 octets (the key's own escapes)
// included: every ancestor of an owner up to the origin exists (RFC 4592 §2.2.2), a name
// strictly below a delegation point is occluded, and the chain is in canonical order
// compared label by label from the right (RFC 4034 §6.1).
func TestBuildAgainstNaive(t *testing.T) {
	origin := "example.test."
	labels := []string{"a", "B", "*", `\000`, `\001`, `\001\000`, "a-b", `\255`, "zz"}
	rng := rand.New(rand.NewPCG(1, 2))
	soa := dns.Fqdn(origin)
	for round := range 300 {
		owners := map[string][]uint16{origin: {dns.TypeSOA, dns.TypeNS}}
		for range 1 + rng.IntN(12) {
			name := origin
			for range 1 + rng.IntN(4) {
				name = labels[rng.IntN(len(labels))] + "." + name
			}
			name = Canonical(name)
			t := dns.TypeA
			if rng.IntN(4) == 0 && !isWildcard(name) {
				t = dns.TypeNS
			}
			if !slices.Contains(owners[name], t) {
				owners[name] = append(owners[name], t)
			}
		}
		var in []owned
		for name, types := range owners {
			slices.Sort(types)
			o := owned{name: name}
			for _, ty := range types {
				rr := dns.TypeToRR[ty]()
				*rr.Header() = dns.RR_Header{Name: name, Rrtype: ty, Class: dns.ClassINET, Ttl: 60}
				switch r := rr.(type) {
				case *dns.SOA:
					r.Ns, r.Mbox, r.Minttl = "ns."+soa, "h."+soa, 60
				case *dns.NS:
					r.Ns = "ns." + soa
				case *dns.A:
					r.A = []byte{127, 0, 0, 1}
				}
				o.sets = append(o.sets, NewRRset([]dns.RR{rr}))
			}
			in = append(in, o)
		}
		z := build(origin, "t", Limits{}, in)
		// The covers of a name and of the wildcard at its parent, from one key, are those of
		// the two names.
		for range 20 {
			next := Canonical(labels[rng.IntN(len(labels))] + "." + labels[rng.IntN(len(labels))] + "." + origin)
			// The search against a scan of the chain.
			want := len(z.chain) - 1
			for k, n := range z.chain {
				if n.Key < Key(next) {
					want = k
				}
			}
			if k := search(z, Key(next)); k == 0 && want != len(z.chain)-1 || k > 0 && k-1 != want {
				t.Fatalf("round %d: search(%s) = %d, a scan says the predecessor is %d", round, next, k, want)
			}
			i, j := z.NXDomainCovers(next)
			if wi, wj := z.PredecessorIndex(next), z.PredecessorIndex("*."+parent(next)); i != wi || j != wj {
				t.Fatalf("round %d: NXDomainCovers(%s) = %d, %d; PredecessorIndex says %d, %d", round, next, i, j, wi, wj)
			}
		}

		// The naive model: every ancestor below the origin exists; occluded when a strict
		// ancestor below the origin owns NS.
		exists := map[string]bool{}
		for name := range owners {
			for p := name; p != "" && dns.IsSubDomain(origin, p); p = parent(p) {
				exists[p] = true
			}
		}
		var chain, ents, glue []string
		for name := range exists {
			occluded := false
			for p := parent(name); p != "" && p != origin && dns.IsSubDomain(origin, p); p = parent(p) {
				occluded = occluded || slices.Contains(owners[p], dns.TypeNS)
			}
			n := z.Node(name)
			if n == nil {
				t.Fatalf("round %d: %s exists and has no node", round, name)
			}
			if n.Occluded != occluded || n.ENT() != (owners[name] == nil) {
				t.Fatalf("round %d: %s occluded=%v ENT=%v, want %v %v", round, name, n.Occluded, n.ENT(), occluded, owners[name] == nil)
			}
			switch {
			case occluded && owners[name] != nil:
				glue = append(glue, name)
			case occluded:
			case owners[name] == nil:
				ents = append(ents, name)
			default:
				chain = append(chain, name)
			}
		}
		if z.Nodes() != len(exists) {
			t.Fatalf("round %d: %d nodes, want %d", round, z.Nodes(), len(exists))
		}
		for _, l := range [][]string{chain, ents, glue} {
			slices.SortFunc(l, canonical.Compare)
		}
		var gotGlue []string
		for _, n := range z.glue {
			gotGlue = append(gotGlue, n.Name)
		}
		if got := names(z.Chain()); !slices.Equal(got, chain) {
			t.Fatalf("round %d: chain\n%q\nwant\n%q", round, got, chain)
		}
		if got := names(z.EmptyNonTerminals()); !slices.Equal(got, ents) {
			t.Fatalf("round %d: empty non-terminals %q, want %q", round, got, ents)
		}
		if !slices.Equal(gotGlue, glue) {
			t.Fatalf("round %d: glue %q, want %q", round, gotGlue, glue)
		}
	}
}

func names(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	return out
}

// TestReloadsDoNotAccumulate: a version built against the previous one takes over its
// unchanged RRsets, and nothing else of it: reload after reload, each changing every record
// but one and adding a name that stays, the live heap does not grow with the number of
// reloads (an RRset taken over must not keep the rest of its load alive).
func TestReloadsDoNotAccumulate(t *testing.T) {
	const sets = 10000
	zoneText := func(v int) string {
		var b strings.Builder
		b.WriteString(head)
		for i := range sets {
			fmt.Fprintf(&b, "h%d %d IN TXT \"x\"\n", i, 300+v)
		}
		for i := range v {
			fmt.Fprintf(&b, "stay%d 60 IN TXT \"stays\"\n", i)
		}
		return b.String()
	}
	var heap []uint64
	var z *Zone
	for v := range 7 {
		nz, err := Parse(strings.NewReader(zoneText(v)), "example.test.", "db", z)
		if err != nil {
			t.Fatal(err)
		}
		z = nz
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
	}
	runtime.KeepAlive(z)
	if heap[6] > heap[1]+heap[1]/4 {
		t.Errorf("live heap after reloads 1..6: %v: it grows with the reloads", heap[1:])
	}
}

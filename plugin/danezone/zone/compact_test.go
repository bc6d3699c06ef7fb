package zone

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// randomEdit returns a change of a few names, types and records, so that changes meet.
func randomEdit(rng *rand.Rand) Edit {
	names := []string{"a.example.test.", "B.example.test.", "c.d.example.test."}
	types := []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX}
	name, t := names[rng.IntN(len(names))], types[rng.IntN(len(types))]
	ttl := []int{60, 300, 3600}[rng.IntN(3)]
	record := func() dns.RR {
		var data string
		switch t {
		case dns.TypeA:
			data = fmt.Sprintf("127.0.0.%d", 1+rng.IntN(4))
		case dns.TypeTXT:
			data = fmt.Sprintf("%q", fmt.Sprint(rng.IntN(4)))
		default:
			data = fmt.Sprintf("10 MX%d.example.test.", rng.IntN(3))
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", name, ttl, dns.TypeToString[t], data))
		if err != nil {
			panic(err)
		}
		return rr
	}
	records := func(n int) []dns.RR {
		var out []dns.RR
		for range n {
			out = append(out, record())
		}
		return out
	}
	switch rng.IntN(10) {
	case 0, 1, 2, 3:
		return Edit{Op: Add, Name: name, Type: t, RRs: records(1 + rng.IntN(2))}
	case 4:
		return Edit{Op: Replace, Name: name, Type: t, RRs: records(rng.IntN(3))}
	case 5, 6, 7:
		return Edit{Op: Remove, Name: name, Type: t, RRs: records(1 + rng.IntN(2))}
	case 8:
		return Edit{Op: Remove, Name: name, Type: t}
	default:
		return Edit{Op: Remove, Name: name}
	}
}

// sameData reports how two snapshots differ in their records and TTLs, or "".
func sameData(a, b *Zone) string {
	sets := func(z *Zone) map[string]*RRset {
		m := map[string]*RRset{}
		z.Sets(func(s *RRset) { m[s.Name+" "+dns.TypeToString[s.Type]] = s })
		return m
	}
	sa, sb := sets(a), sets(b)
	for k, s := range sa {
		if o := sb[k]; o == nil || !EqualSets(s, o) {
			return fmt.Sprintf("%s: %v, want %v", k, o, s)
		}
	}
	for k := range sb {
		if sa[k] == nil {
			return k + ": should not exist"
		}
	}
	return ""
}

// Compaction keeps the result: a history of random changes (each applied as the control API
// does, kept when it succeeded) and its compaction give the same zone, on the file it was made
// on and on other versions of the file (as after a reload), while the compacted log stays
// within a few entries per RRset.
func TestCompactKeepsTheResult(t *testing.T) {
	files := []string{
		head,
		head + "a A 127.0.0.1\na A 127.0.0.9\nB TXT \"1\" \"2\"\nc.d MX 10 mx0\n",
		head + "a 60 A 127.0.0.3\nB 7200 TXT \"3\"\nB A 127.0.0.2\nc.d TXT \"0\"\nx.c.d A 127.0.0.1\n",
	}
	var versions []*Zone
	for _, f := range files {
		z, err := Parse(strings.NewReader(f), "example.test.", "db", nil)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, z)
	}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 9))
		base := versions[rng.IntN(len(versions))]
		live := base
		var log []Edit
		for range 1 + rng.IntN(60) {
			e := randomEdit(rng)
			z, err := live.Apply([]Edit{e}, 0)
			if err != nil {
				continue // refused: not in the log, as with the API
			}
			live, log = z, append(log, e)
		}
		compact := Compact(log)
		if len(compact) > 2*3*3+3 {
			t.Fatalf("seed %d: %d changes compacted to %d edits, want at most 21 (2 per RRset, 1 per name)", seed, len(log), len(compact))
		}
		for i, v := range versions {
			full, errFull := v.Apply(log, len(log))
			short, errShort := v.Apply(compact, len(compact))
			if (errFull == nil) != (errShort == nil) {
				t.Fatalf("seed %d, file %d: the history gives %v, the compaction %v", seed, i, errFull, errShort)
			}
			if errFull != nil {
				continue
			}
			if v == base {
				if d := sameData(live, full); d != "" {
					t.Fatalf("seed %d: replaying the history differs from applying it: %s", seed, d)
				}
			}
			if d := sameData(full, short); d != "" {
				t.Fatalf("seed %d, file %d: compaction changed the result: %s\nhistory %v\ncompacted %v", seed, i, d, log, compact)
			}
		}
	}
}

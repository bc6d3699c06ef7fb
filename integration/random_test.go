package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danelab/danelab/internal/peer"
)

var randomTypes = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeTLSA, dns.TypeSOA, dns.TypeNS,
	dns.TypeDS, dns.TypeCNAME, dns.TypeSRV, dns.TypeCAA, dns.TypeDNSKEY, dns.TypeNSEC,
}

const (
	randomQueries = 1200 // asked to Unbound and directly
	delvSample    = 100  // of those, also asked to delv
)

type randomQuery struct {
	name  string
	qtype uint16
}

// randomLabel returns a label of random length (1..maxLen) in mixed case.
func randomLabel(rng *rand.Rand, maxLen int) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	n := 1 + rng.IntN(maxLen)
	if rng.IntN(20) == 0 {
		n = 40 + rng.IntN(24) // now and then a long one (up to 63)
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		if rng.IntN(40) == 0 {
			// Now and then an octet that needs an escape: the extremes of the canonical
			// order, a dot inside the label, DEL.
			fmt.Fprintf(&b, "\\%03d", []int{0, 1, 46, 127, 254, 255}[rng.IntN(6)])
			continue
		}
		b.WriteByte(chars[rng.IntN(len(chars))])
	}
	return b.String()
}

// randomCase flips the case of letters at random.
func randomCase(rng *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && rng.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// randomQueriesFor draws n queries against zone z: random names under the apex, under
// existing names, under the wildcard, deep names, and existing names, all in mixed case.
// Names at or below a zone cut and DS at the apex are left out (validators would chase the
// referral or ask the parent of the trust anchor); NSEC queries at wildcard-synthesized names
// are left out (RFC 4592 §4.7 leaves them undefined).
func randomQueriesFor(rng *rand.Rand, z *Zone, n int) []randomQuery {
	names := z.Names()
	var wildParents []string
	for _, nm := range names {
		if strings.HasPrefix(nm, "*.") {
			wildParents = append(wildParents, strings.TrimPrefix(nm, "*."))
		}
	}
	labels := func(k, maxLen int) string {
		var parts []string
		for range k {
			parts = append(parts, randomLabel(rng, maxLen))
		}
		return strings.Join(parts, ".")
	}
	var out []randomQuery
	for len(out) < n {
		var name string
		switch p := rng.IntN(100); {
		case p < 25: // directly under the apex
			name = labels(1+rng.IntN(2), 12) + "." + z.Origin
		case p < 45: // under an existing name
			name = labels(1+rng.IntN(2), 10) + "." + names[rng.IntN(len(names))]
		case p < 65 && len(wildParents) > 0: // under the wildcard, sometimes deep
			name = labels(1+rng.IntN(3), 10) + "." + wildParents[rng.IntN(len(wildParents))]
		case p < 75: // deep
			base := names[rng.IntN(len(names))]
			name = labels(3+rng.IntN(5), 6) + "." + base
		default: // an existing name
			name = names[rng.IntN(len(names))]
		}
		if len(name) > 250 || strings.Contains(name, "*") && !strings.HasPrefix(name, "*.") {
			continue
		}
		if _, ok := dns.IsDomainName(name); !ok {
			continue
		}
		qtype := randomTypes[rng.IntN(len(randomTypes))]
		lname := canon(name)
		// Half of the time ask for a type the name (or its wildcard) has, to get positives.
		if rng.IntN(2) == 0 {
			owner := lname
			if e := (&ZoneSet{Zones: map[string]*Zone{z.Origin: z}}).Resolve(lname, dns.TypeA); e.Wildcard != "" {
				owner = e.Wildcard
			}
			var have []uint16
			for t := range z.Data[owner] {
				if slices.Contains(randomTypes, t) {
					have = append(have, t)
				}
			}
			if len(have) > 0 {
				slices.Sort(have)
				qtype = have[rng.IntN(len(have))]
			}
		}
		if z.BelowCut(lname, true) {
			continue
		}
		if qtype == dns.TypeDS && lname == z.Origin {
			continue
		}
		e := (&ZoneSet{Zones: map[string]*Zone{z.Origin: z}}).Resolve(lname, qtype)
		if qtype == dns.TypeNSEC && e.Wildcard != "" {
			continue
		}
		if e.Kind == Referral {
			continue
		}
		out = append(out, randomQuery{name: randomCase(rng, name), qtype: qtype})
	}
	return out
}

func randomSeed(t *testing.T) uint64 {
	if s := os.Getenv("DANELAB_IT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DANELAB_IT_SEED: %v", err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// TestRandomNames asks Unbound (and the server directly) about many random names and types;
// every answer must validate as secure with the rcode the zone file implies, never SERVFAIL.
// A sample also goes through delv.
func TestRandomNames(t *testing.T) {
	for _, mode := range denialModes {
		t.Run(mode, func(t *testing.T) {
			l := sharedLab(t, mode)
			seed := randomSeed(t)
			t.Logf("seed %d (rerun with DANELAB_IT_SEED=%d)", seed, seed)
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			qs := randomQueriesFor(rng, l.Zones.Zones["example.test."], randomQueries)
			qs = append(qs, randomQueriesFor(rng, l.Zones.Zones["lab2.test."], randomQueries/4)...)
			rng.Shuffle(len(qs), func(i, j int) { qs[i], qs[j] = qs[j], qs[i] })

			counts := map[Kind]int{}
			for _, q := range qs {
				counts[l.Zones.Resolve(q.name, q.qtype).Kind]++
			}
			t.Logf("%d queries: %d positive, %d nodata, %d nxdomain, %d unknown-content", len(qs),
				counts[Positive], counts[NoData], counts[NXDomain], counts[Unknown])
			for _, k := range []Kind{Positive, NoData, NXDomain} {
				if counts[k] < len(qs)/20 {
					t.Errorf("test bug: only %d %s queries in the random set", counts[k], k)
				}
			}

			judges := []struct {
				name  string
				need  func(testing.TB) bool
				judge func(*Lab, string, uint16, Expect) []string
				n     int
			}{
				{"direct", func(testing.TB) bool { return true }, JudgeDirect, len(qs)},
				{"unbound", func(tb testing.TB) bool { return l.Unbound != nil }, JudgeUnbound, len(qs)},
				{"delv", func(tb testing.TB) bool { return l.Delv != nil }, JudgeDelv, min(delvSample, len(qs))},
			}
			for _, j := range judges {
				t.Run(j.name, func(t *testing.T) {
					t.Parallel()
					if !j.need(t) {
						if j.name == "unbound" {
							peer.Absent(t, l.UnboundMissing)
						}
						peer.Absent(t, l.DelvMissing)
					}
					var (
						mu     sync.Mutex
						failed []string
						wg     sync.WaitGroup
					)
					work := make(chan randomQuery)
					workers := 8
					if j.name == "delv" {
						workers = 4
					}
					for range workers {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for q := range work {
								e := l.Zones.Resolve(q.name, q.qtype)
								if probs := j.judge(l, q.name, q.qtype, e); len(probs) > 0 {
									mu.Lock()
									failed = append(failed, fmt.Sprintf("%s %s (want %s):\n  %s", q.name,
										typeString(q.qtype), e.Kind, strings.Join(probs, "\n  ")))
									mu.Unlock()
								}
							}
						}()
					}
					// Spread the delv sample over the whole set.
					step := max(1, len(qs)/j.n)
					for i := 0; i < len(qs) && i/step < j.n; i += step {
						work <- qs[i]
					}
					close(work)
					wg.Wait()
					if len(failed) > 0 {
						const show = 15
						t.Errorf("%s: %d of %d random queries failed (seed %d); first %d:\n%s", j.name, len(failed), j.n,
							seed, min(show, len(failed)), strings.Join(failed[:min(show, len(failed))], "\n"))
					}
				})
			}
		})
	}
}

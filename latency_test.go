package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// testPendingPacket returns a packet of the pending-query table's key:
// resolver 198.51.100.7, port, DNS ID and name.
func testPendingPacket(dir direction, port, dnsID uint16, name string) *dnsttPacket {
	return &dnsttPacket{
		dir:          dir,
		resolver:     netip.MustParseAddr("198.51.100.7"),
		resolverPort: port,
		dnsID:        dnsID,
		qname:        wireName(name),
		dnsLen:       100,
	}
}

// wireName returns name in DNS wire form.
func wireName(name string) []byte {
	var b []byte
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	return append(b, 0)
}

// latencyState is what a pendingTable counted for domain 0.
type latencyState struct {
	count, sum, unanswered, unmatched, overflow uint64
	pending                                     int
}

func pendingState(t *pendingTable) latencyState {
	st := &t.domains[0]
	var n uint64
	for i := range st.latency.counts {
		n += st.latency.counts[i].Load()
	}
	return latencyState{n, st.latency.sum.Load(), st.unanswered.Load(), t.unmatched.Load(), t.overflow.Load(), t.pending()}
}

func TestPendingTable(t *testing.T) {
	const name = "aaaaaaaaaaaaaaaaaaaaaaaa.t.example.com"
	q := func(port, id uint16, n string) *dnsttPacket { return testPendingPacket(dirQuery, port, id, n) }
	r := func(port, id uint16, n string) *dnsttPacket { return testPendingPacket(dirResponse, port, id, n) }
	tests := []struct {
		name string
		run  func(tab *pendingTable)
		want latencyState
	}{
		{"answered", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.response(r(1000, 7, name), atSec(10.25))
		}, latencyState{count: 1, sum: 250000}},
		{"case-insensitive name", func(tab *pendingTable) {
			tab.query(q(1000, 7, "AaAaaAAAAAAAAAaaaaaaaaaa.T.Example.COM"), atSec(10))
			tab.response(r(1000, 7, name), atSec(10.001))
		}, latencyState{count: 1, sum: 1000}},
		{"other port, ID or name does not match", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.response(r(1001, 7, name), atSec(10.1))
			tab.response(r(1000, 8, name), atSec(10.1))
			tab.response(r(1000, 7, "b"+name[1:]), atSec(10.1))
		}, latencyState{unmatched: 3, pending: 1}},
		{"a repeated query keeps the first time", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.query(q(1000, 7, name), atSec(11))
			tab.response(r(1000, 7, name), atSec(11.5))
			tab.response(r(1000, 7, name), atSec(11.6)) // the second answer finds nothing
		}, latencyState{count: 1, sum: 1500000, unmatched: 1}},
		{"never answered", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.sweep(atSec(15)) // exactly 5 s: still waiting
			tab.sweep(atSec(15.001))
			tab.response(r(1000, 7, name), atSec(16))
		}, latencyState{unanswered: 1, unmatched: 1}},
		{"answered after 5 s, before a sweep", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.response(r(1000, 7, name), atSec(15.2))
		}, latencyState{unanswered: 1, unmatched: 1}},
		{"answered at exactly 5 s", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.response(r(1000, 7, name), atSec(15))
		}, latencyState{count: 1, sum: 5000000}},
		{"repeated after 5 s: the first was unanswered", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.query(q(1000, 7, name), atSec(16))
			tab.response(r(1000, 7, name), atSec(16.5))
		}, latencyState{count: 1, sum: 500000, unanswered: 1}},
		{"younger than 5 s at the end: neither", func(tab *pendingTable) {
			tab.query(q(1000, 7, name), atSec(10))
			tab.sweep(atSec(14.9))
		}, latencyState{pending: 1}},
		{"overflow", func(tab *pendingTable) {
			for i := range 5 {
				tab.query(q(1000, uint16(i), name), atSec(10))
			}
			for i := range 5 {
				tab.response(r(1000, uint16(i), name), atSec(10.002))
			}
		}, latencyState{count: 3, sum: 3 * 2000, unmatched: 2, overflow: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newPendingTable(3, 1)
			tt.run(tab)
			if got := pendingState(tab); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			tab.check(t)
		})
	}
}

func TestPendingBuckets(t *testing.T) {
	tab := newPendingTable(100, 1)
	// Latencies on and around the bounds: a bound is inclusive (le).
	lat := []float64{0, 0.001, 0.0011, 0.0025, 0.3, 1, 4.9, 5}
	want := []uint64{2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 0, 2, 0}
	for i, l := range lat {
		tab.query(testPendingPacket(dirQuery, 1, uint16(i), "x.t.example.com"), atSec(100))
		tab.response(testPendingPacket(dirResponse, 1, uint16(i), "x.t.example.com"), atSec(100+l))
	}
	for i := range want {
		if got := tab.domains[0].latency.counts[i].Load(); got != want[i] {
			t.Errorf("bucket %d = %d, want %d", i, got, want[i])
		}
	}
}

func TestPendingRcodes(t *testing.T) {
	for _, size := range []int{0, 10} {
		tab := newPendingTable(size, 2)
		for rc := range 20 {
			p := testPendingPacket(dirResponse, 1, 1, "x.t.example.com")
			p.rcode, p.domain = uint8(rc%16), uint16(rc%2)
			tab.response(p, 0)
		}
		if !tab.on() != (size == 0) {
			t.Errorf("size %d: on = %v", size, tab.on())
		}
		for rc := range 16 {
			n := tab.domains[0].rcodes[rc].Load() + tab.domains[1].rcodes[rc].Load()
			if want := uint64(1 + btoi(rc < 4)); n != want {
				t.Errorf("size %d: rcode %d counted %d, want %d", size, rc, n, want)
			}
		}
		if got := tab.unmatched.Load(); size == 0 && got != 0 {
			t.Errorf("off: unmatched = %d, want 0", got)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// check verifies the structural invariants: every entry is found from its
// home slot in its shard, counts match, no shard is over its limit.
func (t *pendingTable) check(tb testing.TB) {
	tb.Helper()
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		n := 0
		for i, e := range s.slots {
			if e.key == 0 {
				continue
			}
			n++
			if t.shard(e.key) != s {
				tb.Errorf("shard %d slot %d: key of another shard", k, i)
			}
			if j, ok := s.find(e.key); !ok || j != i {
				tb.Errorf("shard %d slot %d: find = %d, %v", k, i, j, ok)
			}
		}
		if n != s.n || n > s.limit {
			tb.Errorf("shard %d: %d entries, n = %d, limit %d", k, n, s.n, s.limit)
		}
		s.mu.Unlock()
	}
}

// TestPendingModel drives the table and a map with the same random
// queries, responses and sweeps, over tables of one and of many shards.
func TestPendingModel(t *testing.T) {
	for _, size := range []int{50, 5000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			tab := newPendingTable(size, 1)
			limit := tab.shards[0].limit * len(tab.shards)
			model := map[uint16]int64{} // DNS ID → query time
			var unanswered, count, unmatched uint64
			rng := rand.New(rand.NewPCG(1, 2))
			now := atSec(100)
			for step := range 40000 {
				now += int64(rng.IntN(2e8))
				id := uint16(rng.IntN(size * 2))
				p := testPendingPacket(dirQuery, 53000, id, "abcdefghijklmnop.t.example.com")
				switch rng.IntN(5) {
				case 0, 1:
					if at, ok := model[id]; ok && now-at > atSec(5) {
						unanswered++
						model[id] = now
					} else if !ok && (size < 2048 && len(model) < limit || size >= 2048) {
						// Many shards: the model cannot know which one is full.
						model[id] = now
					}
					tab.query(p, now)
					if size >= 2048 {
						tab.sweep(now) // keep shards from filling
						for i, at := range model {
							if now-at > atSec(5) {
								unanswered++
								delete(model, i)
							}
						}
					}
				case 2, 3:
					p.dir = dirResponse
					at, ok := model[id]
					switch {
					case !ok:
						unmatched++
					case now-at > atSec(5):
						unanswered++
						unmatched++
					default:
						count++
					}
					delete(model, id)
					tab.response(p, now)
				case 4:
					for i, at := range model {
						if now-at > atSec(5) {
							unanswered++
							delete(model, i)
						}
					}
					tab.sweep(now)
				}
				got := pendingState(tab)
				if size < 2048 && (got.pending != len(model) || got.unanswered != unanswered || got.count != count || got.unmatched != unmatched) {
					t.Fatalf("step %d: got %+v; model: pending %d, unanswered %d, count %d, unmatched %d", step, got, len(model), unanswered, count, unmatched)
				}
			}
			tab.check(t)
			if got := pendingState(tab); got.count+got.unmatched == 0 || got.unanswered == 0 {
				t.Errorf("the model run matched nothing or never timed out: %+v", got)
			}
		})
	}
}

func TestPendingAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tab := newPendingTable(1000, 1)
	q := testPendingPacket(dirQuery, 1000, 7, "abcdefghijklmnopqrstuvwxyz234567.t.example.com")
	r := testPendingPacket(dirResponse, 1000, 7, "abcdefghijklmnopqrstuvwxyz234567.t.example.com")
	now := int64(0)
	if n := testing.AllocsPerRun(100, func() {
		now += atSec(0.01)
		tab.query(q, now)
		tab.response(r, now)
		tab.query(q, now)
		tab.sweep(now + atSec(6))
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

// TestInsightImports: latency.go and resolvers.go stay free of fmt, log
// and reflect, and read no clock (time is a parameter).
func TestInsightImports(t *testing.T) {
	for _, file := range []string{"latency.go", "resolvers.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch path {
			case "fmt", "log", "log/slog", "reflect":
				t.Errorf("%s imports %q", file, path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" && sel.Sel.Name != "Second" && sel.Sel.Name != "Microsecond" && sel.Sel.Name != "Duration" {
					t.Errorf("%s uses time.%s", file, sel.Sel.Name)
				}
			}
			return true
		})
	}
}

// sinkPending keeps benchmark tables alive.
var sinkPending *pendingTable

// BenchmarkPendingQueryResponse: a query and its response (a real
// four-label data query's name), the table holding 10,000 other queries.
func BenchmarkPendingQueryResponse(b *testing.B) {
	tab := newPendingTable(defaultPendingMax, 1)
	name := "gezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbv.t.example.com"
	for i := range 10000 {
		tab.query(testPendingPacket(dirQuery, uint16(i), 1, name), 0)
	}
	q := testPendingPacket(dirQuery, 1, 2, name)
	r := testPendingPacket(dirResponse, 1, 2, name)
	b.SetBytes(int64(len(q.qname)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		q.dnsID, r.dnsID = uint16(i), uint16(i)
		tab.query(q, atSec(1))
		tab.response(r, atSec(1.1))
	}
	sinkPending = tab
}

// sinkKey keeps benchmark results alive.
var sinkKey uint64

// BenchmarkPendingKey: the key of a real four-label data query.
func BenchmarkPendingKey(b *testing.B) {
	tab := newPendingTable(0, 1)
	p := testPendingPacket(dirQuery, 1, 2, "gezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbvgy3tqoj.qgezdgnbvgy3tqojqgezdgnbvgy3tqojqgezdgnbv.t.example.com")
	b.SetBytes(int64(len(p.qname)))
	b.ReportAllocs()
	for b.Loop() {
		sinkKey += tab.pendingKey(p)
	}
}

// TestInsightTablesConcurrent runs queries, responses and sweeps of the
// pending-query and resolver tables from several goroutines at once
// (growth, shrinking and backward shifts included; run it with -race),
// then checks their structure and that every query ended up matched,
// unanswered or still pending.
func TestInsightTablesConcurrent(t *testing.T) {
	tab := newTestTable(1000, 1, 4)
	pt := newPendingTable(5000, 1)
	rt := newResolverTable(3000, tab)
	const workers, perWorker = 4, 20000
	var wg sync.WaitGroup
	var queries atomic.Uint64
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				now := atSec(float64(i) * 0.001)
				port := uint16(w*10000 + i%5000)
				q := testPendingPacket(dirQuery, port, uint16(i), "abcdefghijklmnopqrstuvwxyz.t.example.com")
				q.resolver = netip.AddrFrom4([4]byte{10, byte(w), byte(i % 700 >> 8), byte(i % 700)})
				pt.query(q, now)
				queries.Add(1)
				rt.query(q, geoID(rng.IntN(4)), now)
				if rng.IntN(4) != 0 {
					r := *q
					r.dir = dirResponse
					pt.response(&r, now+int64(rng.IntN(2e9)))
				}
				if i%997 == 0 {
					pt.sweep(now)
					rt.sweep(now)
				}
			}
		})
	}
	wg.Wait()
	pt.check(t)
	rt.check(t)
	st := pendingState(pt)
	if got := st.count + st.unanswered + uint64(st.pending) + st.overflow; got > queries.Load() || st.count == 0 || st.unanswered == 0 {
		t.Errorf("matched %d + unanswered %d + pending %d + overflow %d = %d, for %d queries", st.count, st.unanswered, st.pending, st.overflow, got, queries.Load())
	}
	var active int64
	for g := range geoID(4) {
		active += resolversOf(tab, 0, g)
	}
	if active != int64(rt.tracked()) {
		t.Errorf("active resolvers %d, tracked %d", active, rt.tracked())
	}
	pt.sweep(atSec(1000))
	rt.sweep(atSec(1000))
	if pt.pending() != 0 || rt.tracked() != 0 || resolversOf(tab, 0, 0)+resolversOf(tab, 0, 1)+resolversOf(tab, 0, 2)+resolversOf(tab, 0, 3) != 0 {
		t.Errorf("after the final sweep: pending %d, resolvers %d", pt.pending(), rt.tracked())
	}
	pt.check(t)
	rt.check(t)
}

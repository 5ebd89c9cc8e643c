package main

import (
	"net/netip"
	"testing"
)

// testResolverPacket returns a query of domain d from resolver addr.
func testResolverPacket(d uint16, addr string) *dnsttPacket {
	return &dnsttPacket{dir: dirQuery, domain: d, resolver: netip.MustParseAddr(addr), dnsLen: 60}
}

// resolversOf returns dnstt_active_resolvers of label set (d, g).
func resolversOf(tab *sessionTable, d uint16, g geoID) int64 {
	return tab.counters(d, g).resolvers.Load()
}

func TestResolverTable(t *testing.T) {
	tab := newTestTable(100, 2, 3)
	rt := newResolverTable(4, tab)
	type want struct{ d0g0, d0g1, d1g0 int64 }
	check := func(step string, w want) {
		t.Helper()
		got := want{resolversOf(tab, 0, 0), resolversOf(tab, 0, 1), resolversOf(tab, 1, 0)}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", step, got, w)
		}
		rt.check(t)
	}
	rt.query(testResolverPacket(0, "198.51.100.1"), 0, atSec(0))
	rt.query(testResolverPacket(0, "198.51.100.1"), 0, atSec(1)) // same resolver
	rt.query(testResolverPacket(0, "2001:db8::1"), 0, atSec(2))
	check("two resolvers", want{2, 0, 0})
	rt.query(testResolverPacket(1, "198.51.100.1"), 0, atSec(3)) // the same address for another domain
	check("a resolver carrying two domains counts in both", want{2, 0, 1})
	rt.query(testResolverPacket(0, "2001:db8::1"), 1, atSec(4)) // GeoIP says another country now
	check("a resolver that changes country moves", want{1, 1, 1})
	rt.sweep(atSec(31))
	check("198.51.100.1 of domain 0 last queried 30 s ago: still active", want{1, 1, 1})
	rt.sweep(atSec(31.001))
	check("expired after a window", want{0, 1, 1})
	rt.query(testResolverPacket(0, "198.51.100.1"), 0, atSec(32))
	check("back", want{1, 1, 1})
	// Table of 4: the fourth pair fits, the fifth overflows.
	rt.query(testResolverPacket(1, "198.51.100.2"), 0, atSec(33))
	rt.query(testResolverPacket(1, "198.51.100.3"), 0, atSec(33))
	check("full", want{1, 1, 2})
	if got := rt.overflow.Load(); got != 1 {
		t.Errorf("overflow = %d, want 1", got)
	}
	if got := rt.tracked(); got != 4 {
		t.Errorf("tracked = %d, want 4", got)
	}
	rt.sweep(atSec(100))
	check("all expired", want{0, 0, 0})
	if got := rt.tracked(); got != 0 {
		t.Errorf("tracked after expiry = %d, want 0", got)
	}
}

func TestResolverTableOff(t *testing.T) {
	tab := newTestTable(100, 1, 1)
	rt := newResolverTable(0, tab)
	rt.query(testResolverPacket(0, "198.51.100.1"), 0, 0)
	rt.sweep(atSec(100))
	if rt.on() || resolversOf(tab, 0, 0) != 0 || rt.tracked() != 0 {
		t.Errorf("an off table counted: on %v, resolvers %d", rt.on(), resolversOf(tab, 0, 0))
	}
}

// TestResolverTableMany fills a table of several shards, expires half and
// checks the count and the structure.
func TestResolverTableMany(t *testing.T) {
	tab := newTestTable(100, 1, 1)
	rt := newResolverTable(10000, tab)
	if len(rt.shards) < 2 {
		t.Fatalf("%d shards, want several", len(rt.shards))
	}
	for i := range 8000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
		p := &dnsttPacket{dir: dirQuery, resolver: a}
		rt.query(p, 0, atSec(float64(i%2)*20))
	}
	rt.check(t)
	if got := resolversOf(tab, 0, 0) + int64(rt.overflow.Load()); got != 8000 {
		t.Errorf("active + overflow = %d, want 8000", got)
	}
	rt.sweep(atSec(40))
	rt.check(t)
	if got, want := resolversOf(tab, 0, 0), int64(rt.tracked()); got != want || got > 4000 || got < 3500 {
		t.Errorf("after expiring half: active %d, tracked %d, want about 4000", got, want)
	}
}

// check verifies the structural invariants, as pendingTable.check.
func (t *resolverTable) check(tb testing.TB) {
	tb.Helper()
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		n := 0
		for i := range s.slots {
			e := &s.slots[i]
			if e.domain1 == 0 {
				continue
			}
			n++
			h := resolverHash(t.seed, &e.addr, e.domain1)
			if &t.shards[h>>t.shift&uint64(len(t.shards)-1)] != s {
				tb.Errorf("shard %d slot %d: entry of another shard", k, i)
			}
			if j, ok := s.find(uint32(h), &e.addr, e.domain1); !ok || j != i {
				tb.Errorf("shard %d slot %d: find = %d, %v", k, i, j, ok)
			}
		}
		if n != s.n || n > s.limit {
			tb.Errorf("shard %d: %d entries, n = %d, limit %d", k, n, s.n, s.limit)
		}
		s.mu.Unlock()
	}
}

// TestResolverMemo: the lock-free memo never hides a change. Queries of
// one resolver in one ms tick, with the label set switching back and
// forth, and one of an earlier tick (packets of two rings out of order),
// leave the resolver counted once, on the label set of the latest query
// applied; a query of another resolver of the same shard and tick, and
// a sweep that expires the memo's entry, change nothing of that.
func TestResolverMemo(t *testing.T) {
	tab := newTestTable(100, 1, 3)
	rt := newResolverTable(100, tab) // one shard: every resolver shares its memo
	p := testResolverPacket(0, "2001:db8::53")
	o := testResolverPacket(0, "2001:db8::54")
	counts := func() [3]int64 {
		var c [3]int64
		for g := range c {
			c[g] = tab.counters(0, geoID(g)).resolvers.Load()
		}
		return c
	}
	now := atSec(1)
	steps := []struct {
		p    *dnsttPacket
		g    geoID
		at   int64
		want [3]int64
	}{
		{p, 1, now, [3]int64{0, 1, 0}},
		{p, 1, now, [3]int64{0, 1, 0}}, // the memo's case
		{p, 2, now, [3]int64{0, 0, 1}},
		{p, 1, now, [3]int64{0, 1, 0}},
		{p, 2, now - atSec(0.5), [3]int64{0, 0, 1}}, // earlier tick: lastSeen stays, the set moves
		{p, 1, now, [3]int64{0, 1, 0}},
		{o, 0, now, [3]int64{1, 1, 0}},
		{p, 2, now, [3]int64{1, 0, 1}},
		{p, 2, now, [3]int64{1, 0, 1}},
	}
	for i, s := range steps {
		rt.query(s.p, s.g, s.at)
		if got := counts(); got != s.want {
			t.Fatalf("step %d: active resolvers by label set = %v, want %v", i, got, s.want)
		}
	}
	rt.sweep(now + atSec(100)) // both expire
	if got := counts(); got != [3]int64{} {
		t.Fatalf("after the sweep: %v, want none", got)
	}
	rt.query(p, 2, now) // the same query as the memo's before the sweep
	if got := counts(); got != [3]int64{0, 0, 1} {
		t.Fatalf("after the sweep, the memo's query again: %v, want [0 0 1]", got)
	}
}

func TestResolverAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tab := newTestTable(100, 1, 2)
	rt := newResolverTable(100, tab)
	p := testResolverPacket(0, "2001:db8::53")
	now := int64(0)
	if n := testing.AllocsPerRun(100, func() {
		now += atSec(0.01)
		rt.query(p, 0, now)
		rt.query(p, 1, now)
		rt.sweep(now + atSec(40))
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

// sinkResolvers keeps benchmark tables alive.
var sinkResolvers *resolverTable

// BenchmarkResolverQuery: a query of a known resolver, cycling through
// 1,000 IPv4 resolvers.
func BenchmarkResolverQuery(b *testing.B) {
	tab := newTestTable(100, 1, 1)
	rt := newResolverTable(defaultResolversMax, tab)
	ps := make([]dnsttPacket, 1000)
	for i := range ps {
		ps[i] = dnsttPacket{dir: dirQuery, resolver: netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})}
		rt.query(&ps[i], 0, 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		rt.query(&ps[i%len(ps)], 0, atSec(1))
	}
	sinkResolvers = rt
}

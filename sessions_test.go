package main

import (
	"encoding/binary"
	"encoding/hex"
	"go/ast"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testWindow is the default -dnstt.window.
const testWindow = 30 * time.Second

// atSec converts seconds to table-clock ns.
func atSec(s float64) int64 { return int64(s * float64(time.Second)) }

// testSessionID returns a ClientID derived from n.
func testSessionID(n uint64) clientID {
	var id clientID
	binary.BigEndian.PutUint64(id[:], n*0x9E3779B97F4A7C15+1)
	return id
}

// testSessionPacket returns a packet of session n on domain d with a DNS length.
func testSessionPacket(dir direction, d uint16, n uint64, dnsLen int) *dnsttPacket {
	return &dnsttPacket{dir: dir, domain: d, id: testSessionID(n), dnsLen: dnsLen}
}

// setState is one label set's counters, for comparisons.
type setState struct {
	active, peak                          int64
	queries, bytesIn, bytesOut, sessionsN uint64
}

// state reads the counters of label set (d, g).
func state(t *sessionTable, d uint16, g geoID) setState {
	c := t.counters(d, g)
	return setState{
		active: c.active.Load(), peak: c.peak.Load(),
		queries: c.counts[countQueries].Load(), bytesIn: c.counts[countBytesIn].Load(), bytesOut: c.counts[countBytesOut].Load(),
		sessionsN: c.counts[countSessions].Load(),
	}
}

func newTestTable(max, domains, geoIDs int) *sessionTable {
	return newSessionTable(sessionConfig{window: testWindow, max: max, domains: domains, geoIDs: geoIDs})
}

func TestSessionWindowEdges(t *testing.T) {
	tests := []struct {
		name       string
		first      int64 // first query
		at         int64 // sweep, then query, at this time
		wantActive int64 // after the sweep, before the second query
		wantTotal  uint64
	}{
		{name: "29.9s", first: 0, at: atSec(29.9), wantActive: 1, wantTotal: 1},
		{name: "30s", first: 0, at: atSec(30), wantActive: 1, wantTotal: 1},
		{name: "30s-less-than-a-tick", first: atSec(0.0009999), at: atSec(30.0000001), wantActive: 1, wantTotal: 1},
		{name: "30.002s", first: 0, at: atSec(30.002), wantActive: 0, wantTotal: 2},
		{name: "31s", first: 0, at: atSec(31), wantActive: 0, wantTotal: 2},
		{name: "31s-late-start", first: atSec(1795607787.99606), at: atSec(1795607787.99606 + 31), wantActive: 0, wantTotal: 2},
		{name: "uint32-tick-wrap", first: (1<<32 - 10) * nsPerTick, at: (1<<32-10)*nsPerTick + atSec(31), wantActive: 0, wantTotal: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := newTestTable(10, 1, 1)
			tab.query(testSessionPacket(dirQuery, 0, 1, 100), 0, tt.first)
			tab.sweep(tt.at)
			if got := state(tab, 0, 0).active; got != tt.wantActive {
				t.Errorf("active after sweep at %d ns (first %d) = %d, want %d", tt.at, tt.first, got, tt.wantActive)
			}
			tab.query(testSessionPacket(dirQuery, 0, 1, 100), 0, tt.at)
			got := state(tab, 0, 0)
			if got.sessionsN != tt.wantTotal || got.active != 1 || got.peak != 1 {
				t.Errorf("after second query: %+v, want sessions_total %d, active 1, peak 1", got, tt.wantTotal)
			}
			if n := tab.tracked.Load(); n != 1 {
				t.Errorf("tracked = %d, want 1", n)
			}
		})
	}
}

// TestSessionReactivationWithoutSweep: a query more than a window after the
// previous one starts a new session even though the sweep never ran.
func TestSessionReactivationWithoutSweep(t *testing.T) {
	tab := newTestTable(10, 1, 1)
	p := testSessionPacket(dirQuery, 0, 7, 50)
	tab.query(p, 0, 0)
	tab.query(p, 0, atSec(10))
	tab.query(p, 0, atSec(41)) // 31 s after the previous query
	tab.query(p, 0, atSec(42))
	want := setState{active: 1, peak: 1, queries: 4, bytesIn: 200, sessionsN: 2}
	if got := state(tab, 0, 0); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	tab.sweep(atSec(60)) // 18 s after the latest query
	if got := state(tab, 0, 0).active; got != 1 {
		t.Errorf("active after sweep = %d, want 1", got)
	}
	tab.sweep(atSec(72.5))
	if got := state(tab, 0, 0).active; got != 0 {
		t.Errorf("active after final sweep = %d, want 0", got)
	}
}

func TestSessionResolverSwitch(t *testing.T) {
	tab := newTestTable(10, 2, 3)
	p := testSessionPacket(dirQuery, 1, 3, 10)
	tab.query(p, 1, 0)
	tab.query(p, 2, atSec(1)) // resolver change: moves to (1, 2)
	if got, want := state(tab, 1, 1), (setState{active: 0, peak: 1, queries: 1, bytesIn: 10, sessionsN: 1}); got != want {
		t.Errorf("old set: got %+v, want %+v", got, want)
	}
	if got, want := state(tab, 1, 2), (setState{active: 1, peak: 1, queries: 1, bytesIn: 10}); got != want {
		t.Errorf("new set: got %+v, want %+v", got, want)
	}
	// Back to the first resolver after more than a window, not yet swept:
	// a new session there, moved from the set that still counts it.
	tab.query(p, 1, atSec(40))
	if got, want := state(tab, 1, 1), (setState{active: 1, peak: 1, queries: 2, bytesIn: 20, sessionsN: 2}); got != want {
		t.Errorf("old set after return: got %+v, want %+v", got, want)
	}
	if got := state(tab, 1, 2).active; got != 0 {
		t.Errorf("new set active after return = %d, want 0", got)
	}
	// Responses count on the response's own label set.
	tab.response(testSessionPacket(dirResponse, 1, 3, 500), 2, atSec(40))
	if got := state(tab, 1, 2).bytesOut; got != 500 {
		t.Errorf("bytes_out on the response's set = %d, want 500", got)
	}
	if got := tab.tracked.Load(); got != 1 {
		t.Errorf("tracked = %d, want 1", got)
	}
	for d := range uint16(2) {
		for g := range geoID(3) {
			if d != 1 && state(tab, d, g) != (setState{}) {
				t.Errorf("set (%d, %d) = %+v, want zero", d, g, state(tab, d, g))
			}
		}
	}
}

// TestSessionPeakBurst: sessions that come and go between two sweeps still
// raise the peak, which is set when a session becomes active.
func TestSessionPeakBurst(t *testing.T) {
	tab := newTestTable(100, 1, 1)
	tab.query(testSessionPacket(dirQuery, 0, 1, 1), 0, 0)
	tab.sweep(atSec(0.5))
	for n := range uint64(5) {
		tab.query(testSessionPacket(dirQuery, 0, 100+n, 1), 0, atSec(0.6))
	}
	if got := state(tab, 0, 0); got.active != 6 || got.peak != 6 {
		t.Errorf("after burst: %+v, want active 6, peak 6", got)
	}
	tab.sweep(atSec(31))
	tab.sweep(atSec(31.5))
	if got := state(tab, 0, 0); got.active != 0 || got.peak != 6 || got.sessionsN != 6 {
		t.Errorf("after expiry: %+v, want active 0, peak 6, sessions_total 6", got)
	}
	tab.query(testSessionPacket(dirQuery, 0, 1, 1), 0, atSec(32))
	if got := state(tab, 0, 0); got.active != 1 || got.peak != 6 || got.sessionsN != 7 {
		t.Errorf("after return: %+v, want active 1, peak 6, sessions_total 7", got)
	}
}

func TestSessionCap(t *testing.T) {
	tab := newTestTable(2, 1, 1)
	for n := range uint64(3) {
		tab.query(testSessionPacket(dirQuery, 0, n, 10), 0, 0)
	}
	tab.query(testSessionPacket(dirQuery, 0, 2, 10), 0, atSec(1)) // still untracked
	tab.query(testSessionPacket(dirQuery, 0, 0, 10), 0, atSec(1)) // tracked: an update
	if got, want := state(tab, 0, 0), (setState{active: 2, peak: 2, queries: 5, bytesIn: 50, sessionsN: 2}); got != want {
		t.Errorf("at cap: got %+v, want %+v", got, want)
	}
	if got := tab.untracked.Load(); got != 2 {
		t.Errorf("untracked = %d, want 2", got)
	}
	if got := tab.tracked.Load(); got != 2 {
		t.Errorf("tracked = %d, want 2", got)
	}
	tab.response(testSessionPacket(dirResponse, 0, 2, 99), 0, atSec(1)) // untracked: counted, not inserted
	tab.sweep(atSec(30.5))                                              // session 1 expires, 0 stays
	tab.query(testSessionPacket(dirQuery, 0, 2, 10), 0, atSec(32))
	if got, want := state(tab, 0, 0), (setState{active: 2, peak: 2, queries: 6, bytesIn: 60, bytesOut: 99, sessionsN: 3}); got != want {
		t.Errorf("after a place freed: got %+v, want %+v", got, want)
	}
	if got := tab.untracked.Load(); got != 2 {
		t.Errorf("untracked = %d, want 2", got)
	}
}

func TestSessionResponse(t *testing.T) {
	tab := newTestTable(10, 1, 2)
	tab.response(testSessionPacket(dirResponse, 0, 1, 300), 1, 0) // unknown session: not inserted
	if n := tab.tracked.Load(); n != 0 {
		t.Fatalf("a response inserted a session: tracked = %d", n)
	}
	tab.query(testSessionPacket(dirQuery, 0, 1, 40), 0, 0)
	tab.response(testSessionPacket(dirResponse, 0, 1, 300), 1, 0)
	if got, want := state(tab, 0, 1), (setState{bytesOut: 600}); got != want {
		t.Errorf("response set: got %+v, want %+v", got, want)
	}
	e := tab.entry(0, testSessionID(1))
	if e == nil || e.bytes != 340 {
		t.Errorf("entry = %+v, want bytes 40 + 300", e)
	}
	if !tab.counters(0, 1).seen.Load() || !tab.counters(0, 0).seen.Load() {
		t.Errorf("seen flags not set")
	}
	if got := tab.seenSets.Load(); got != 2 {
		t.Errorf("seenSets = %d, want 2", got)
	}
}

// insight is what a label set's SPEC section 7 session numbers add up to.
type insight struct {
	millis                        uint64 // tunnel time
	durations, durationSum, bytes uint64 // observations, their sums
	bytesSum                      uint64
}

// insightOf reads the SPEC section 7 session numbers of label set (d, g).
func insightOf(t *sessionTable, d uint16, g geoID) insight {
	i := int(d)*t.geoIDs + int(g) // as set and hist number label sets
	h := t.hist(i)
	var n, nb uint64
	for b := range h.duration.counts {
		n += h.duration.counts[b].Load()
		nb += h.bytes.counts[b].Load()
	}
	return insight{t.set(i).counts[countSessionMillis].Load(), n, h.duration.sum.Load(), nb, h.bytes.sum.Load()}
}

// TestSessionInsight: tunnel time, duration and bytes of activations,
// each under several sweep schedules (none at all; every 0.5 s; at odd
// times): an expired activation adds exactly latest − first query +
// window, and its duration and bytes are observed once, under the label
// set it has at expiry.
func TestSessionInsight(t *testing.T) {
	type step struct {
		at    float64
		g     geoID
		query bool // else a response
		n     int  // DNS bytes
	}
	tests := []struct {
		name  string
		steps []step
		end   float64    // the last sweep
		want  [2]insight // label sets (0, 0) and (0, 1)
	}{
		{"one query", []step{{10, 0, true, 50}}, 100,
			[2]insight{{millis: 30000, durations: 1, durationSum: 0, bytes: 1, bytesSum: 50}}},
		{"queries and responses", []step{{10, 0, true, 50}, {10.2, 0, false, 700}, {12, 0, true, 60}, {20.25, 0, true, 70}, {21, 0, false, 300}}, 100,
			[2]insight{{millis: 40250, durations: 1, durationSum: 10250, bytes: 1, bytesSum: 1180}}},
		{"expires and comes back, no sweep between", []step{{10, 0, true, 50}, {15, 0, true, 50}, {45.5, 0, true, 50}, {50, 0, true, 50}}, 100,
			[2]insight{{millis: 35000 + 34500, durations: 2, durationSum: 5000 + 4500, bytes: 2, bytesSum: 200}}},
		{"still active at the end: tunnel time up to then, not observed", []step{{10, 0, true, 50}, {20, 0, true, 50}}, 45,
			[2]insight{{millis: 35000}}},
		{"moves to another label set", []step{{0, 0, true, 50}, {10, 1, true, 50}, {20, 1, true, 50}}, 100,
			[2]insight{{millis: 10000}, {millis: 40000, durations: 1, durationSum: 20000, bytes: 1, bytesSum: 150}}},
	}
	schedules := map[string]func(from, to float64) []float64{
		"no sweep": func(from, to float64) []float64 { return nil },
		"every 0.5 s": func(from, to float64) []float64 {
			var s []float64
			for at := float64(int(from*2)+1) / 2; at < to; at += 0.5 {
				s = append(s, at)
			}
			return s
		},
		"odd times": func(from, to float64) []float64 {
			var s []float64
			for at := from + 0.37; at < to; at += 3.71 {
				s = append(s, at)
			}
			return s
		},
	}
	for _, tt := range tests {
		for sname, sched := range schedules {
			t.Run(tt.name+"/"+sname, func(t *testing.T) {
				tab := newTestTable(10, 1, 2)
				prev := -1.0
				for _, st := range tt.steps {
					for _, at := range sched(prev, st.at) {
						tab.sweep(atSec(at))
					}
					prev = st.at
					if st.query {
						tab.query(testSessionPacket(dirQuery, 0, 1, st.n), st.g, atSec(st.at))
					} else {
						tab.response(testSessionPacket(dirResponse, 0, 1, st.n), 0, atSec(st.at))
					}
				}
				for _, at := range sched(prev, tt.end) {
					tab.sweep(atSec(at))
				}
				tab.sweep(atSec(tt.end))
				for g := range 2 {
					if got := insightOf(tab, 0, geoID(g)); got != tt.want[g] {
						t.Errorf("label set %d: got %+v, want %+v", g, got, tt.want[g])
					}
				}
			})
		}
	}
}

// TestSessionHistogramBuckets: durations and bytes land in the bucket
// whose bound is the first at or above them.
func TestSessionHistogramBuckets(t *testing.T) {
	tab := newTestTable(100, 1, 1)
	durations := []float64{0, 10, 10.001, 30, 86400, 86401}
	for i, d := range durations {
		tab.query(testSessionPacket(dirQuery, 0, uint64(i), 1024*(1<<(2*i))), 0, atSec(0))
		for at := 1.0; at < d; at += 20 {
			tab.query(testSessionPacket(dirQuery, 0, uint64(i), 0), 0, atSec(at))
		}
		tab.query(testSessionPacket(dirQuery, 0, uint64(i), 0), 0, atSec(d))
	}
	tab.sweep(atSec(86401 + 31))
	h := tab.hist(0)
	wantDur := []uint64{2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}
	wantBytes := []uint64{1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}
	for b := range wantDur {
		if got := h.duration.counts[b].Load(); got != wantDur[b] {
			t.Errorf("duration bucket %d = %d, want %d", b, got, wantDur[b])
		}
		if got := h.bytes.counts[b].Load(); got != wantBytes[b] {
			t.Errorf("bytes bucket %d = %d, want %d", b, got, wantBytes[b])
		}
	}
}

// entry returns a copy of the entry of (domain, id), or nil.
func (t *sessionTable) entry(domain uint16, id clientID) *sessionEntry {
	dom1 := domain + 1
	h := sessionHash(t.seed, dom1, &id)
	s := &t.shards[h>>(64-sessionShardBits)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.find(uint32(h), dom1, &id); ok {
		e := s.slots[i]
		return &e
	}
	return nil
}

// check verifies the table's structural invariants: every entry is found
// from its home slot, counts match, no shard is over its load limit.
func (t *sessionTable) check(tb testing.TB) {
	tb.Helper()
	total := 0
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
			h := sessionHash(t.seed, e.domain1, &e.id)
			if int(h>>(64-sessionShardBits)) != k {
				tb.Errorf("shard %d slot %d: entry of shard %d", k, i, h>>(64-sessionShardBits))
			}
			if j, ok := s.find(uint32(h), e.domain1, &e.id); !ok || j != i {
				tb.Errorf("shard %d slot %d: find = %d, %v", k, i, j, ok)
			}
		}
		if n != s.n {
			tb.Errorf("shard %d: %d entries, n = %d", k, n, s.n)
		}
		if len(s.slots) > 0 && s.n*sessionLoadDen > len(s.slots)*sessionLoadNum {
			tb.Errorf("shard %d: %d entries in %d slots", k, s.n, len(s.slots))
		}
		total += n
		s.mu.Unlock()
	}
	if int64(total) != t.tracked.Load() {
		tb.Errorf("%d entries, tracked = %d", total, t.tracked.Load())
	}
}

// TestSessionModel drives the table and a plain map model with the same
// random queries, responses and sweeps (many inserts, expiries, growth,
// shrinking and backward shifts) and compares them after every step.
func TestSessionModel(t *testing.T) {
	type modelSession struct {
		last int64
		geo  geoID
	}
	type key struct {
		d  uint16
		id uint64
	}
	const domains, geoIDs, ids = 2, 3, 3000
	tab := newTestTable(2500, domains, geoIDs)
	model := map[key]modelSession{}
	want := make([]setState, domains*geoIDs)
	var untracked uint64
	rng := rand.New(rand.NewPCG(1, 2))
	now := int64(0)
	window := testWindow.Nanoseconds()
	for step := range 60000 {
		now += rng.Int64N(atSec(0.02))
		if step%7000 > 5000 {
			now += atSec(0.2) // quiet phases let the table empty and shrink
		}
		k := key{d: uint16(rng.IntN(domains)), id: uint64(rng.IntN(ids))}
		g := geoID(rng.IntN(geoIDs))
		ws := &want[int(g)*domains+int(k.d)]
		switch r := rng.IntN(10); {
		case r < 6:
			tab.query(testSessionPacket(dirQuery, k.d, k.id, 10), g, now)
			ws.queries++
			ws.bytesIn += 10
			m, ok := model[k]
			switch {
			case !ok && len(model) >= 2500:
				untracked++
			case !ok:
				model[k] = modelSession{last: now, geo: g}
				ws.sessionsN++
				ws.active++
				ws.peak = max(ws.peak, ws.active)
			default:
				if now/nsPerTick-m.last/nsPerTick > window/nsPerTick {
					ws.sessionsN++
				}
				if m.geo != g {
					want[int(m.geo)*domains+int(k.d)].active--
					ws.active++
					ws.peak = max(ws.peak, ws.active)
				}
				model[k] = modelSession{last: now, geo: g}
			}
		case r < 9:
			tab.response(testSessionPacket(dirResponse, k.d, k.id, 7), g, now)
			ws.bytesOut += 7
		default:
			tab.sweep(now)
			for mk, m := range model {
				if now/nsPerTick-m.last/nsPerTick > window/nsPerTick {
					want[int(m.geo)*domains+int(mk.d)].active--
					delete(model, mk)
				}
			}
		}
		if step%500 == 0 || step == 59999 {
			tab.check(t)
			for d := range uint16(domains) {
				for g := range geoID(geoIDs) {
					if got := state(tab, d, g); got != want[int(g)*domains+int(d)] {
						t.Fatalf("step %d set (%d, %d): got %+v, want %+v", step, d, g, got, want[int(g)*domains+int(d)])
					}
				}
			}
			if got := tab.untracked.Load(); got != untracked {
				t.Fatalf("step %d: untracked = %d, want %d", step, got, untracked)
			}
			if got := tab.tracked.Load(); got != int64(len(model)) {
				t.Fatalf("step %d: tracked = %d, want %d", step, got, len(model))
			}
		}
	}
}

// TestSessionConcurrent runs ring readers, a sweeper and a scraper at once
// (meant for -race), then checks that the counters add up.
func TestSessionConcurrent(t *testing.T) {
	const readers, perReader, ids = 4, 20000, 500
	tab := newTestTable(ids*2, 2, 4)
	var wg sync.WaitGroup
	var clock sync.Mutex
	now := int64(0)
	tick := func() int64 {
		clock.Lock()
		defer clock.Unlock()
		now += atSec(0.001)
		return now
	}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // sweeper
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				tab.sweep(tick())
			}
		}
	}()
	go func() { // scraper
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				var sum int64
				for i := range tab.labelSets() {
					sum += tab.set(i).active.Load()
				}
				_ = sum + tab.tracked.Load()
			}
		}
	}()
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for range perReader {
				d, n, g := uint16(rng.IntN(2)), uint64(rng.IntN(ids)), geoID(rng.IntN(4))
				if rng.IntN(2) == 0 {
					tab.query(testSessionPacket(dirQuery, d, n, 3), g, tick())
				} else {
					tab.response(testSessionPacket(dirResponse, d, n, 5), g, tick())
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	tab.check(t)
	var active, peakMax int64
	var queries, bytesIn, bytesOut uint64
	for i := range tab.labelSets() {
		c := tab.set(i)
		if a := c.active.Load(); a < 0 || a > c.peak.Load() {
			t.Errorf("set %d: active %d, peak %d", i, a, c.peak.Load())
		}
		active += c.active.Load()
		peakMax = max(peakMax, c.peak.Load())
		queries += c.counts[countQueries].Load()
		bytesIn += c.counts[countBytesIn].Load()
		bytesOut += c.counts[countBytesOut].Load()
	}
	if active != tab.tracked.Load() {
		t.Errorf("sum of active = %d, tracked = %d", active, tab.tracked.Load())
	}
	if queries*3 != bytesIn || bytesOut%5 != 0 || queries+bytesOut/5 != readers*perReader {
		t.Errorf("queries %d, bytes in %d, bytes out %d: do not add up to %d packets", queries, bytesIn, bytesOut, readers*perReader)
	}
	tab.sweep(now + atSec(31))
	tab.check(t)
	for i := range tab.labelSets() {
		if a := tab.set(i).active.Load(); a != 0 {
			t.Errorf("set %d: active %d after the final sweep", i, a)
		}
	}
}

func TestSessionUpdateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	tab := newTestTable(100, 1, 1)
	q := testSessionPacket(dirQuery, 0, 1, 10)
	r := testSessionPacket(dirResponse, 0, 1, 10)
	tab.query(q, 0, 0)
	now := int64(0)
	if n := testing.AllocsPerRun(100, func() {
		now += atSec(0.01)
		tab.query(q, 0, now)
		tab.response(r, 0, now)
		tab.sweep(now)
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

func TestSessionSizes(t *testing.T) {
	if got := reflect.TypeFor[sessionEntry]().Size(); got != 40 {
		t.Errorf("sessionEntry is %d bytes, want 40 (see the size note in sessions.go)", got)
	}
	if got := reflect.TypeFor[sessionShard]().Size(); got != 64 {
		t.Errorf("sessionShard is %d bytes, want 64 (one cache line)", got)
	}
	if got := reflect.TypeFor[labelCounters]().Size(); got != 128 {
		t.Errorf("labelCounters is %d bytes, want 128 (two cache lines)", got)
	}
	if got := reflect.TypeFor[pendingEntry]().Size(); got != 16 {
		t.Errorf("pendingEntry is %d bytes, want 16", got)
	}
	if got := reflect.TypeFor[resolverEntry]().Size(); got != 24 {
		t.Errorf("resolverEntry is %d bytes, want 24", got)
	}
	if got := reflect.TypeFor[resolverShard]().Size(); got != 128 {
		t.Errorf("resolverShard is %d bytes, want 128 (two cache lines: the lock and its lock-free memo)", got)
	}
	for _, sz := range []uintptr{reflect.TypeFor[pendingShard]().Size(), reflect.TypeFor[responseStats]().Size() % 64} {
		if sz != 64 && sz != 0 {
			t.Errorf("a shard or responseStats is %d bytes, want 64 (a multiple of 64 for responseStats)", sz)
		}
	}
}

// TestSessionsImports: sessions.go stays free of fmt, log and reflect, and
// reads no clock (time is a parameter).
func TestSessionsImports(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "sessions.go", nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		switch path {
		case "fmt", "log", "log/slog", "reflect":
			t.Errorf("sessions.go imports %q", path)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "time" {
				switch sel.Sel.Name {
				case "Now", "Since", "Until", "Sleep", "After", "Tick", "NewTimer", "NewTicker":
					t.Errorf("sessions.go calls time.%s", sel.Sel.Name)
				}
			}
		}
		return true
	})
}

// TestSessionsRealCapture feeds the real dnstt and VayDNS captures through
// the decoder and the session table on the packet-time clock (SPEC section 4: every
// record moves the clock, sweeps at 500 ms steps, a final sweep at the last
// record) and compares with the truth file. Per-resolver and per-client
// totals are summed here from the decoder's output: the table keeps no
// addresses.
func TestSessionsRealCapture(t *testing.T) {
	for _, c := range realCaptures {
		t.Run(c.name, func(t *testing.T) { testSessionsRealCapture(t, c) })
	}
}

// testSessionsRealCapture is TestSessionsRealCapture for one capture.
func testSessionsRealCapture(t *testing.T, c realCapture) {
	truth := loadTruth(t, c.truth)
	domain := truth.tunnelDomain(t)
	lt, recs := readTestPcap(t, c.pcap)
	dec := newDecoder([]tunnelDomain{domain}, truth.Port)
	tab := newSessionTable(sessionConfig{window: testWindow, max: 1000, domains: 1, geoIDs: 1})

	type sums struct{ queries, bytesIn, responses, bytesOut uint64 }
	byResolver := map[netip.Addr]*sums{}
	byClient := map[clientID]*sums{}
	get := func(m map[netip.Addr]*sums, a netip.Addr) *sums {
		if m[a] == nil {
			m[a] = &sums{}
		}
		return m[a]
	}
	const sweepStep = 500 * time.Millisecond
	var now, step, peak int64
	var p dnsttPacket
	for i, r := range recs {
		if i == 0 || r.ts > now {
			now = r.ts // never backwards
		}
		if s := now / int64(sweepStep); s != step {
			tab.sweep(now)
			step = s
		}
		if reason, _ := dec.decodeLink(lt, r.data, &p); reason != ignoreNone {
			continue
		}
		rs := get(byResolver, p.resolver.Unmap())
		if byClient[p.id] == nil {
			byClient[p.id] = &sums{}
		}
		cs := byClient[p.id]
		if p.dir == dirQuery {
			tab.query(&p, 0, now)
			rs.queries++
			rs.bytesIn += uint64(p.dnsLen)
			cs.queries++
			cs.bytesIn += uint64(p.dnsLen)
			peak = max(peak, tab.counters(0, 0).active.Load())
		} else {
			tab.response(&p, 0, now)
			rs.responses++
			rs.bytesOut += uint64(p.dnsLen)
			cs.responses++
			cs.bytesOut += uint64(p.dnsLen)
		}
	}
	tab.sweep(now)

	got := state(tab, 0, 0)
	if got.queries != truth.Totals.Queries || got.bytesIn != truth.Totals.BytesIn ||
		got.bytesOut != truth.Totals.BytesOut || got.sessionsN != truth.Totals.SessionsTotal {
		t.Errorf("queries %d, bytes in %d, bytes out %d, sessions %d; want %d, %d, %d, %d",
			got.queries, got.bytesIn, got.bytesOut, got.sessionsN,
			truth.Totals.Queries, truth.Totals.BytesIn, truth.Totals.BytesOut, truth.Totals.SessionsTotal)
	}
	if got.active < truth.ActiveAtEnd.Min || got.active > truth.ActiveAtEnd.Max {
		t.Errorf("active at end = %d, want %d..%d", got.active, truth.ActiveAtEnd.Min, truth.ActiveAtEnd.Max)
	}
	if got.peak < truth.Peak.Min || got.peak > truth.Peak.Max || got.peak != peak {
		t.Errorf("peak = %d (observed %d), want %d..%d", got.peak, peak, truth.Peak.Min, truth.Peak.Max)
	}
	var responses uint64
	for addr, want := range truth.Resolvers {
		g := byResolver[netip.MustParseAddr(addr)]
		if g == nil || *g != (sums{want.Queries, want.BytesIn, want.Responses, want.BytesOut}) {
			t.Errorf("resolver %s: got %+v, want %+v", addr, g, want)
		}
		responses += want.Responses
	}
	if len(byResolver) != len(truth.Resolvers) || responses != truth.Totals.Responses {
		t.Errorf("%d resolvers, want %d (responses %d, want %d)", len(byResolver), len(truth.Resolvers), responses, truth.Totals.Responses)
	}
	for hexID, want := range truth.Clients {
		var id clientID // a VayDNS ClientID's bytes after its N are zero
		if n, err := hex.Decode(id[:], []byte(hexID)); err != nil || n != domain.idLen {
			t.Fatalf("truth ClientID %q: %d bytes, %v", hexID, n, err)
		}
		g := byClient[id]
		if g == nil || g.queries != want.Queries || g.bytesIn != want.BytesIn || g.bytesOut != want.BytesOut {
			t.Errorf("client %s: got %+v, want %+v", hexID, g, want)
			continue
		}
		e := tab.entry(0, id)
		if e == nil || e.bytes != want.BytesIn+want.BytesOut {
			t.Errorf("client %s: session entry %+v, want %d bytes", hexID, e, want.BytesIn+want.BytesOut)
		}
	}
	if len(byClient) != len(truth.Clients) {
		t.Errorf("%d ClientIDs, want %d", len(byClient), len(truth.Clients))
	}
}

// sinkTable keeps benchmark tables alive.
var sinkTable *sessionTable

// fillTable returns a table of geoIDs label sets holding n sessions on one
// domain and geoID 0, and their IDs in random order.
func fillTable(n int, now int64, geoIDs int) (*sessionTable, []clientID) {
	tab := newSessionTable(sessionConfig{window: testWindow, max: n, domains: 1, geoIDs: geoIDs})
	ids := make([]clientID, n)
	p := testSessionPacket(dirQuery, 0, 0, 60)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range ids {
		binary.LittleEndian.PutUint64(ids[i][:], rng.Uint64())
		p.id = ids[i]
		tab.query(p, 0, now)
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	return tab, ids
}

// BenchmarkSessionUpdate: a query of a known session, cycling through
// 131,072 sessions in random order.
//
// It guards a code shape chosen for the Go compiler's register allocation
// (1.26, amd64): sessionTable.query handles only the common case and
// hands the rest to querySlow, which is //go:noinline, so that the hot
// path stays small enough to keep its values in registers. Re-check
// after a Go upgrade.
func BenchmarkSessionUpdate(b *testing.B) {
	const n = 1 << 17
	tab, ids := fillTable(n, 0, 1)
	p := testSessionPacket(dirQuery, 0, 0, 60)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.id = ids[i&(n-1)]
		tab.query(p, 0, atSec(1))
	}
	sinkTable = tab
}

// BenchmarkSessionUpdateParallel is BenchmarkSessionUpdate from GOMAXPROCS
// ring readers at once. In shared-set every query counts on one label set
// (no GeoIP), whose counters' cache line the readers then share; in
// set-per-reader each reader's sessions have their own label set, which
// shows how the sharded table itself scales.
func BenchmarkSessionUpdateParallel(b *testing.B) {
	for _, perReader := range []bool{false, true} {
		name := "shared-set"
		if perReader {
			name = "set-per-reader"
		}
		b.Run(name, func(b *testing.B) {
			const n = 1 << 17
			chunks := runtime.GOMAXPROCS(0) // RunParallel's goroutines
			tab, ids := fillTable(n, 0, chunks)
			if perReader { // move each reader's sessions to its label set first
				p := testSessionPacket(dirQuery, 0, 0, 60)
				for i := range ids {
					p.id = ids[i]
					tab.query(p, geoID(i*chunks/n), 0)
				}
			}
			var seq sync.Mutex
			next := 0
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				seq.Lock()
				j := next % chunks
				next++
				seq.Unlock()
				g := geoID(0)
				if perReader {
					g = geoID(j)
				}
				mine := ids[j*n/chunks : (j+1)*n/chunks] // i*chunks/n == j above
				p := testSessionPacket(dirQuery, 0, 0, 60)
				for i := 0; pb.Next(); i++ {
					if i == len(mine) {
						i = 0
					}
					p.id = mine[i]
					tab.query(p, g, atSec(1))
				}
			})
			sinkTable = tab
		})
	}
}

// BenchmarkSessionInsert: a query of a new session, growth included: the
// table is filled from empty to 1,048,576 sessions, then replaced.
func BenchmarkSessionInsert(b *testing.B) {
	const n = 1 << 20
	newTab := func() *sessionTable {
		return newSessionTable(sessionConfig{window: testWindow, max: n, domains: 1, geoIDs: 1})
	}
	tab := newTab()
	p := testSessionPacket(dirQuery, 0, 0, 60)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%n == n-1 {
			b.StopTimer()
			tab = newTab()
			b.StartTimer()
		}
		binary.LittleEndian.PutUint64(p.id[:], uint64(i)*0x9E3779B97F4A7C15)
		tab.query(p, 0, 0)
	}
	sinkTable = tab
}

// BenchmarkSessionSweep1M: a sweep over 1,000,000 sessions that expires
// none (the steady state); ns/session is the cost per tracked session.
func BenchmarkSessionSweep1M(b *testing.B) {
	const n = 1000000
	tab, _ := fillTable(n, 0, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tab.sweep(atSec(1))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/session")
	sinkTable = tab
}

// BenchmarkSessionMemory1M: heap bytes per tracked session after inserting
// 1,000,000 sessions.
func BenchmarkSessionMemory1M(b *testing.B) {
	const n = 1000000
	ids := make([]clientID, n)
	for i := range ids {
		binary.LittleEndian.PutUint64(ids[i][:], uint64(i+1)*0x9E3779B97F4A7C15)
	}
	p := testSessionPacket(dirQuery, 0, 0, 60)
	var perSession float64
	for range b.N {
		sinkTable = nil
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tab := newSessionTable(sessionConfig{window: testWindow, max: n, domains: 1, geoIDs: 1})
		for i := range ids {
			p.id = ids[i]
			tab.query(p, 0, 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tab.tracked.Load() != n {
			b.Fatalf("tracked = %d, want %d", tab.tracked.Load(), n)
		}
		perSession = float64(after.HeapAlloc-before.HeapAlloc) / n
		sinkTable = tab
	}
	b.ReportMetric(perSession, "B/session")
}

// TestSessionOutOfRange: a domain or geoID beyond the configuration folds
// into label set (0, 0) instead of panicking or corrupting the table.
func TestSessionOutOfRange(t *testing.T) {
	tab := newTestTable(10, 1, 1)
	tab.query(testSessionPacket(dirQuery, 0xffff, 1, 10), 999, 0)
	tab.query(testSessionPacket(dirQuery, 0xffff, 1, 10), 999, atSec(1))
	tab.response(testSessionPacket(dirResponse, 0xffff, 1, 20), 999, atSec(1))
	if got, want := state(tab, 0, 0), (setState{active: 1, peak: 1, queries: 2, bytesIn: 20, bytesOut: 20, sessionsN: 1}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	tab.check(t)
	tab.sweep(atSec(40))
	tab.check(t)
	if got := state(tab, 0, 0).active; got != 0 {
		t.Errorf("active after sweep = %d, want 0", got)
	}
}

package main

// The session table: sharded dnstt sessions keyed by ClientID, their
// expiry on the caller's clock, and the per-label-set counters and peaks.

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// sessionConfig sizes a sessionTable.
type sessionConfig struct {
	window  time.Duration // -dnstt.window: activity window
	max     int           // -sessions.max: tracked sessions cap
	domains int           // domain ids at start (the configured tunnel domains); growDomains adds more
	geoIDs  int           // number of geoIDs (geoResolver.maxIDs)
}

// Session table geometry.
//
// Sizes (64-bit): a sessionEntry is 40 bytes (36 on 32-bit). A shard
// grows by 3/2 once it is more than 85% full, so its load stays between
// 0.85/1.5 ≈ 0.57 and 0.85, and the entries of -sessions.max sessions take
// at most max × 40 / 0.57 ≈ max × 70 bytes (70 MB at the default 1,000,000),
// plus one shard's old array while that shard grows. A sweep shrinks a
// shard that fell below 1/8 full, so a past flood does not pin memory.
// BenchmarkSessionMemory1M measures the heap per tracked session (about
// 57 B; README: Performance). The per-label-set counters and session
// histograms add 128 + 224 bytes × domains × geoIDs, where domains counts
// every domain id since start (at most maxDomainIDs).
const (
	sessionShardBits = 8
	sessionShards    = 1 << sessionShardBits // power of two; picked by the top hash bits
	sessionShardMin  = 16                    // slots of a shard's first array
	sessionLoadNum   = 85                    // grow above sessionLoadNum/sessionLoadDen full
	sessionLoadDen   = 100
	sessionGrowNum   = 3 // grow to sessionGrowNum/sessionGrowDen × the capacity
	sessionGrowDen   = 2
	sessionShrinkDiv = 8 // a sweep shrinks a shard less than 1/sessionShrinkDiv full
)

// Time units of the session table. Entries keep 32-bit times: lastSeen in
// millisecond ticks, compared by wrapping subtraction. That is exact because
// an entry never outlives window + sweep interval, far below the 24.8 days
// (2^31 ms) after which a signed 32-bit difference would wrap.
const (
	nsPerTick       = int64(time.Millisecond)
	nsPerSecond     = int64(time.Second)
	maxSessionTicks = 1<<31 - 1 // longest window the 32-bit tick arithmetic allows
)

// sessionEntry is one tracked session: 40 bytes on 64-bit. One entry
// holds one activation at a time (SPEC section 4): a query after more
// than a window ends the old activation and starts a new one in the same
// entry.
//
// firstSeen, accounted and bytes describe the current activation. They
// feed SPEC section 7: the sweep advances tunnel time from accounted, and
// endSession, the one place an activation ends, observes its duration and
// bytes exactly once.
type sessionEntry struct {
	id        clientID // the session's ClientID
	bytes     uint64   // DNS message bytes of this activation's queries and of responses carrying its ClientID
	domain1   uint16   // domain index + 1; 0 marks an empty slot
	geo       geoID    // geoID of the latest query: the session's label set is (domain, geo)
	lastSeen  uint32   // latest query, ms ticks: uint32(now / 1e6)
	accounted uint32   // ms tick up to which this activation's tunnel time has been counted
	firstSeen int64    // first query of this activation, ms ticks, not truncated to 32 bits
}

// sessionShard is one lock stripe of the table: an open-addressing,
// linear-probing hash table with backward-shift deletion (no tombstones).
// Its capacity is not a power of two; a hash maps onto it by fastrange.
type sessionShard struct {
	mu    sync.Mutex
	slots []sessionEntry // guarded by mu; never full (load ≤ sessionLoadNum/sessionLoadDen)
	n     int            // guarded by mu; occupied slots
	seed  uint64         // hash seed, copied from the table; read-only
	_     [16]byte       // pad to 64 bytes: neighbouring shards do not share a cache line
}

// labelCount names a per-label-set counter: an index into
// labelCounters.counts. exposition.go's labelSetFamilies gives each its
// family; adding one is a constant here, a row there and the line that
// counts it.
type labelCount uint8

const (
	countQueries       labelCount = iota // dnstt queries
	countBytesIn                         // DNS message bytes of queries
	countBytesOut                        // DNS message bytes of responses
	countSessions                        // sessions that became active here
	countSessionMillis                   // tunnel time, ms: SPEC section 7
	labelCountCount
)

// maxDomainIDs bounds the domain ids of a table: every distinct domain
// name configured since start, through reloads of -dnstm.config, has one
// (SPEC section 8; a removed domain keeps its id and its counters, which
// must not go backwards). A dnstm host has a handful.
const maxDomainIDs = 256

// labelCountersPad pads labelCounters to a multiple of 64 bytes, so that
// ring readers on different label sets share no cache line: counts, then
// seen (rounded up to 8 bytes), counts, active, peak and resolvers.
const labelCountersPad = (64 - (int(labelCountCount)*8+4*8)%64) % 64

// labelCounters are the dnstt counters of one label set (domain, geoID):
// 128 bytes. What every query touches (seen, queries, bytes in, active,
// peak) shares the first cache line; resolvers is on the second.
type labelCounters struct {
	seen      atomic.Bool                    // had a query or response
	counts    [labelCountCount]atomic.Uint64 // indexed by labelCount
	active    atomic.Int64                   // sessions whose latest query came here, not yet swept
	peak      atomic.Int64                   // highest active since start
	resolvers atomic.Int64                   // active resolvers whose latest query came here (resolverTable)
	_         [labelCountersPad]byte
}

// Session histograms (SPEC section 7): bucket upper bounds, inclusive,
// in the units the entries keep. exposition.go prints them in seconds
// and bytes.
var (
	// sessionDurationBounds, ms: 10 s, 30 s, 1 m, 5 m, 15 m, 30 m, 1 h,
	// 2 h, 6 h, 12 h, 24 h.
	sessionDurationBounds = []uint64{10e3, 30e3, 60e3, 300e3, 900e3, 1800e3, 3600e3, 7200e3, 21600e3, 43200e3, 86400e3}
	// sessionBytesBounds: 1 KiB × 4^k up to 1 GiB.
	sessionBytesBounds = []uint64{1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26, 1 << 28, 1 << 30}
)

// histMaxBuckets is the most buckets (bounds and +Inf) a histCounts holds.
const histMaxBuckets = 13

// histCounts is one histogram series: per-bucket (not cumulative) counts,
// the last one above every bound, and the sum of the observations, in the
// units of its bounds. Atomics: observations come from several shards.
type histCounts struct {
	counts [histMaxBuckets]atomic.Uint64
	sum    atomic.Uint64
}

// observe counts v in the bucket of bounds it falls in (v ≤ bound; the
// one after the last bound when above all).
func (h *histCounts) observe(bounds []uint64, v uint64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// sessionHists are the session histograms of one label set: 224 bytes.
// The exposition sums them over the label sets of a (domain, country).
type sessionHists struct {
	duration histCounts // ms, by sessionDurationBounds
	bytes    histCounts // bytes, by sessionBytesBounds
}

// sessionTable tracks dnstt sessions and the per-label-set dnstt counters.
// A label set is (domain, geoID); its counters are element geoID of the
// domain's block, sets[domain]. A domain id's block is allocated once, at
// start or by growDomains before any packet can carry the id, and never
// moves; exposition numbers the label sets domain*geoIDs + geoID. All
// methods are safe for concurrent use: the per-packet methods lock one
// shard; counters are atomics.
type sessionTable struct {
	// shards comes first, at most 16 bytes (Go's 8-byte malloc header)
	// past a cache line boundary: the 48 bytes of a shard that are used
	// then stay within one line, shared with no other shard.
	shards    [sessionShards]sessionShard
	cfg       sessionConfig
	window    int32 // cfg.window in ms ticks
	max       int64 // cfg.max
	geoIDs    int   // ≥ 1
	seed      uint64
	sets      [maxDomainIDs]atomic.Pointer[[]labelCounters] // by domain id: geoIDs label sets each; nil past domains
	hists     [maxDomainIDs]atomic.Pointer[[]sessionHists]  // indexed like sets; stored before sets
	domains   atomic.Int32                                  // domain ids with a block, ≥ 1; only grows
	growMu    sync.Mutex                                    // serialises growDomains
	seenSets  atomic.Uint32                                 // label sets whose seen flag is set; changes tell the exposition to re-sort
	tracked   atomic.Int64                                  // entries in the table, ≤ max
	untracked atomic.Uint64                                 // queries of sessions not tracked because of the cap
}

// newSessionTable returns an empty table. A window that is not positive or
// longer than 24.8 days is a bug in the caller (exporter.go validates the flag).
func newSessionTable(cfg sessionConfig) *sessionTable {
	w := cfg.window / time.Millisecond
	if cfg.window <= 0 || w > maxSessionTicks {
		panic("BUG: session window out of range")
	}
	if cfg.domains > maxDomainIDs {
		panic("BUG: more domains than maxDomainIDs")
	}
	t := &sessionTable{
		cfg:    cfg,
		window: int32(w),
		max:    int64(max(cfg.max, 0)),
		geoIDs: max(cfg.geoIDs, 1),
		// A random seed keeps remote senders, who choose ClientIDs, from
		// aiming many sessions at one probe sequence.
		seed: rand.Uint64(),
	}
	for i := range t.shards {
		t.shards[i].seed = t.seed
	}
	t.growDomains(max(cfg.domains, 1))
	return t
}

// growDomains gives domain ids below n their label sets; n ≤ maxDomainIDs.
// Existing ids keep theirs. Call it before a decoder that reports the new
// ids is published.
func (t *sessionTable) growDomains(n int) {
	if n > maxDomainIDs {
		panic("BUG: more domains than maxDomainIDs")
	}
	t.growMu.Lock()
	defer t.growMu.Unlock()
	for d := int(t.domains.Load()); d < n; d++ {
		hists := make([]sessionHists, t.geoIDs)
		t.hists[d].Store(&hists)
		sets := make([]labelCounters, t.geoIDs)
		t.sets[d].Store(&sets)
	}
	if n > int(t.domains.Load()) {
		t.domains.Store(int32(n))
	}
}

// domainCount is the number of domain ids with label sets.
func (t *sessionTable) domainCount() int { return int(t.domains.Load()) }

// labelSets is the number of label sets, numbered as set numbers them.
func (t *sessionTable) labelSets() int { return t.domainCount() * t.geoIDs }

// set returns label set i, numbered domain*geoIDs + geoID; i <
// labelSets().
func (t *sessionTable) set(i int) *labelCounters {
	return &(*t.sets[i/t.geoIDs].Load())[i%t.geoIDs]
}

// hist returns the session histograms of label set i, numbered as set
// numbers them.
func (t *sessionTable) hist(i int) *sessionHists {
	return &(*t.hists[i/t.geoIDs].Load())[i%t.geoIDs]
}

// domainSets returns the label sets of domain id d and d itself; an id
// without label sets (a decoder bug) folds into 0 rather than panicking on
// the packet path.
func (t *sessionTable) domainSets(d uint16) ([]labelCounters, uint16) {
	if int(d) < maxDomainIDs {
		if p := t.sets[d].Load(); p != nil {
			return *p, d
		}
	}
	return *t.sets[0].Load(), 0
}

// sessionHash hashes a session key: the murmur3 64-bit finaliser over the
// ClientID, the domain and the seed. Its top bits pick the shard, its low 32
// bits the home slot.
func sessionHash(seed uint64, domain1 uint16, id *clientID) uint64 {
	x := binary.LittleEndian.Uint64(id[:]) ^ seed ^ uint64(domain1)<<48
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// fastrange maps h uniformly onto [0, n) without a division.
func fastrange(h uint32, n int) int {
	return int(uint64(h) * uint64(n) >> 32)
}

// counters returns the counters of label set (domain, g). A geoID beyond
// the configured range folds into 0 rather than panicking on the packet path.
func (t *sessionTable) counters(domain uint16, g geoID) *labelCounters {
	if int(g) >= t.geoIDs {
		g = 0
	}
	sets, _ := t.domainSets(domain)
	return &sets[g]
}

// markSeen sets c's seen flag once.
func (t *sessionTable) markSeen(c *labelCounters) {
	if !c.seen.Load() && c.seen.CompareAndSwap(false, true) {
		t.seenSets.Add(1)
	}
}

// raise counts one more active session on c and raises its peak to match
// (SPEC section 4: at the moment the session becomes active).
func raise(c *labelCounters) {
	a := c.active.Add(1)
	for {
		p := c.peak.Load()
		if a <= p || c.peak.CompareAndSwap(p, a) {
			return
		}
	}
}

// reserve takes one place under the -sessions.max cap.
func (t *sessionTable) reserve() bool {
	for {
		n := t.tracked.Load()
		if n >= t.max {
			return false
		}
		if t.tracked.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// expired reports whether a session last seen at tick last is no longer
// active at tick now: more than one window has passed (SPEC section 4; at
// exactly one window it still counts, which the 1 s of slack allows and
// which, with truncation to whole ms, keeps it from ever expiring early).
// A last time after now (clocks of neighbouring ring blocks are not
// strictly ordered) is not expired.
func (t *sessionTable) expired(last, now uint32) bool {
	return int32(now-last) > t.window
}

// query records a dnstt query at now (ns on the table's clock: monotonic
// when live, packet time in file mode) from a resolver of geoID g.
//
// It handles the common case inline: a tracked session, still active, whose
// label set has not changed. Everything else goes to querySlow, kept out
// of line (BenchmarkSessionUpdate says why).
func (t *sessionTable) query(p *dnsttPacket, g geoID, now int64) {
	sets, d := t.domainSets(p.domain) // as counters folds it; and domain1 must not wrap to 0
	if int(g) >= t.geoIDs {
		g = 0 // as counters folds it, so that e.geo compares equal
	}
	c := &sets[g] // counters(d, g), both already in range
	n := uint64(p.dnsLen)
	c.counts[countQueries].Add(1)
	c.counts[countBytesIn].Add(n)
	t.markSeen(c)

	dom1 := d + 1
	h := sessionHash(t.seed, dom1, &p.id)
	s := &t.shards[h>>(64-sessionShardBits)]
	tick := uint32(now / nsPerTick)
	s.mu.Lock()
	i, e := s.lookup(uint32(h), dom1, &p.id)
	if e != nil && e.geo == g && !t.expired(e.lastSeen, tick) {
		if int32(tick-e.lastSeen) > 0 {
			e.lastSeen = tick
		}
		e.bytes += n
		s.mu.Unlock()
		return
	}
	t.querySlow(s, c, &p.id, h, d, g, n, now, i, e != nil)
}

// querySlow is the rest of query, called with s.mu held; it unlocks s.mu.
// It handles a session that becomes active again, a resolver change, a new
// session and the cap. c is the counters of label set (d, g), h the key's
// hash, n the query's DNS message bytes, and i, found what find returns for
// the key (query has just looked it up under the same lock hold).
//
//go:noinline
func (t *sessionTable) querySlow(s *sessionShard, c *labelCounters, id *clientID, h uint64, d uint16, g geoID, n uint64, now int64, i int, found bool) {
	dom1 := d + 1
	tick := uint32(now / nsPerTick)
	reserved := false
	for {
		if found {
			if reserved {
				t.tracked.Add(-1)
			}
			e := &s.slots[i]
			switch {
			case t.expired(e.lastSeen, tick):
				// Active again after more than a window: the old
				// activation ends here, not yet swept, and a new session
				// starts in the same entry, decided here whether or not
				// the sweep has run (SPEC section 4).
				t.endSession(e, now)
				c.counts[countSessions].Add(1)
				raise(c)
				e.geo = g
				e.firstSeen = now / nsPerTick
				e.accounted = tick
				e.lastSeen = tick
				e.bytes = 0
			case e.geo != g:
				// The same activation moves to the label set of its
				// latest query, taking the tunnel time it had there so
				// far with it.
				old := t.counters(d, e.geo)
				if dt := int32(tick - e.accounted); dt > 0 {
					old.counts[countSessionMillis].Add(uint64(dt))
					e.accounted = tick
				}
				old.active.Add(-1)
				raise(c)
				e.geo = g
			}
			if int32(tick-e.lastSeen) > 0 {
				e.lastSeen = tick
			}
			e.bytes += n
			s.mu.Unlock()
			return
		}
		if !reserved {
			if !t.reserve() {
				s.mu.Unlock()
				t.untracked.Add(1)
				return
			}
			reserved = true
		}
		if i >= 0 && (s.n+1)*sessionLoadDen <= len(s.slots)*sessionLoadNum {
			s.slots[i] = sessionEntry{
				id:        *id,
				domain1:   dom1,
				geo:       g,
				bytes:     n,
				lastSeen:  tick,
				accounted: tick,
				firstSeen: now / nsPerTick,
			}
			s.n++
			c.counts[countSessions].Add(1)
			raise(c)
			s.mu.Unlock()
			return
		}
		// resize unlocks while it allocates; look the key up again after.
		s.resize(max(sessionShardMin, len(s.slots)*sessionGrowNum/sessionGrowDen))
		i, found = s.find(uint32(h), dom1, id)
	}
}

// response records a dnstt response at now to a resolver of geoID g: its
// bytes count on the response's label set, and on the session if tracked.
func (t *sessionTable) response(p *dnsttPacket, g geoID, now int64) {
	_, d := t.domainSets(p.domain)
	c := t.counters(d, g)
	n := uint64(p.dnsLen)
	c.counts[countBytesOut].Add(n)
	t.markSeen(c)

	dom1 := d + 1
	h := sessionHash(t.seed, dom1, &p.id)
	s := &t.shards[h>>(64-sessionShardBits)]
	s.mu.Lock()
	if i, found := s.find(uint32(h), dom1, &p.id); found {
		s.slots[i].bytes += n
	}
	s.mu.Unlock()
}

// sweep expires sessions whose latest query is more than one window older
// than now. Called every 500 ms (live), or in file mode before the record
// whose time crosses a 500 ms step and once at the last record's time, it
// keeps expiry within the 1 s of slack of SPEC section 4. It locks one
// shard at a time. It advances the tunnel time of every session still
// active up to now (SPEC section 7).
func (t *sessionTable) sweep(now int64) {
	tick := uint32(now / nsPerTick)
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		removed := 0
		for i := 0; i < len(s.slots); {
			e := &s.slots[i]
			if e.domain1 == 0 {
				i++
				continue
			}
			if !t.expired(e.lastSeen, tick) {
				if d := int32(tick - e.accounted); d > 0 {
					t.counters(e.domain1-1, e.geo).counts[countSessionMillis].Add(uint64(d))
					e.accounted = tick
				}
				i++
				continue
			}
			t.endSession(e, now)
			removed++
			// The backward shift may move a later entry into slot i:
			// look at slot i again. Entries it moves from the start of
			// the array (a wrapped cluster) were already looked at.
			s.remove(i)
		}
		if removed > 0 {
			t.tracked.Add(int64(-removed))
		}
		if len(s.slots) > sessionShardMin && s.n*sessionShrinkDiv < len(s.slots) {
			s.resize(max(sessionShardMin, s.n*sessionGrowNum))
		}
		s.mu.Unlock()
	}
}

// endSession ends the activation held in e, found expired at now (ns on
// the table's clock). It is the one place a session ends: the sweep calls
// it before removing e, querySlow before starting a new activation in e.
// With s.mu held; e's fields are still those of the ending activation, so
// the observations made here happen exactly once per activation.
//
// The activation's label set loses an active session and gains the rest
// of its tunnel time, up to its expiry (latest query + window): so an
// activation adds exactly latest − first query + window in all, however
// the sweeps fell. Its duration (latest − first query) and bytes are
// observed under that label set (SPEC section 7).
func (t *sessionTable) endSession(e *sessionEntry, now int64) {
	sets, d := t.domainSets(e.domain1 - 1)
	g := e.geo
	if int(g) >= t.geoIDs {
		g = 0
	}
	c := &sets[g]
	c.active.Add(-1)
	end := e.lastSeen + uint32(t.window)
	if d := int32(end - e.accounted); d > 0 {
		c.counts[countSessionMillis].Add(uint64(d))
	}
	e.accounted = end
	// The full latest query time, from the 32-bit tick: now is at most a
	// window (plus the sweep's slack) after it.
	last := now/nsPerTick - int64(int32(uint32(now/nsPerTick)-e.lastSeen))
	h := &(*t.hists[d].Load())[g]
	h.duration.observe(sessionDurationBounds, uint64(max(last-e.firstSeen, 0)))
	h.bytes.observe(sessionBytesBounds, e.bytes)
}

// find returns the slot of key (domain1, id) with hash h and true, or the
// empty slot where it would go and false; -1 when s has no array yet.
// Guarded by s.mu.
func (s *sessionShard) find(h uint32, domain1 uint16, id *clientID) (int, bool) {
	i, e := s.lookup(h, domain1, id)
	return i, e != nil
}

// lookup returns the slot of key (domain1, id) with hash h and its entry,
// or the empty slot where it would go and nil; -1 and nil when s has no
// array yet. Guarded by s.mu.
func (s *sessionShard) lookup(h uint32, domain1 uint16, id *clientID) (int, *sessionEntry) {
	slots := s.slots
	if len(slots) == 0 {
		return -1, nil
	}
	// The inner loop's form lets the compiler drop the bounds check.
	for i := uint(fastrange(h, len(slots))); ; i = 0 {
		for ; i < uint(len(slots)); i++ {
			e := &slots[i]
			if e.domain1 == 0 {
				return int(i), nil
			}
			if e.id == *id && e.domain1 == domain1 {
				return int(i), e
			}
		}
	}
}

// home returns the slot where e's probe sequence starts in an array of n.
func (s *sessionShard) home(e *sessionEntry, n int) int {
	return fastrange(uint32(sessionHash(s.seed, e.domain1, &e.id)), n)
}

// remove empties slot i and shifts the entries after it back, so that
// every entry stays reachable from its home slot. Guarded by s.mu.
func (s *sessionShard) remove(i int) {
	slots := s.slots
	n := len(slots)
	j := i
	for {
		if j++; j == n {
			j = 0
		}
		e := &slots[j]
		if e.domain1 == 0 {
			break
		}
		if !shiftable(i, j, s.home(e, n)) {
			continue
		}
		slots[i] = *e
		i = j
	}
	slots[i] = sessionEntry{}
	s.n--
}

// shiftable reports whether, in backward-shift deletion from a
// linear-probing table, the entry at slot j whose home slot is h may fill
// the hole at slot i: unless its home lies cyclically in (i, j]. The
// session, pending-query and resolver tables all delete this way.
func shiftable(i, j, h int) bool {
	if i <= j {
		return h <= i || h > j
	}
	return h <= i && h > j
}

// resize moves the shard into a new array of size slots. It is called with
// s.mu held and returns with it held, but releases it while it allocates, so
// no large allocation happens under the lock; the caller must look its key
// up again. The new array is dropped if the shard no longer fits it.
func (s *sessionShard) resize(size int) {
	s.mu.Unlock()
	fresh := make([]sessionEntry, size)
	s.mu.Lock()
	if (s.n+1)*sessionLoadDen > size*sessionLoadNum {
		return // grew meanwhile: fresh is too small
	}
	for i := range s.slots {
		e := &s.slots[i]
		if e.domain1 == 0 {
			continue
		}
		j := s.home(e, size)
		for fresh[j].domain1 != 0 {
			if j++; j == size {
				j = 0
			}
		}
		fresh[j] = *e
	}
	s.slots = fresh
}

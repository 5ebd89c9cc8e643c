package main

// The resolver table of SPEC section 7: which resolver addresses sent a
// dnstt query within the activity window, per domain, for
// dnstt_active_resolvers. Addresses stay in this table; only counts per
// label set leave it.

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Resolver table geometry.
//
// Sizes (64-bit): a resolverEntry is 24 bytes. A shard holds at most its
// limit; its array grows and shrinks as the pending-query table's does, up
// to limit × 4/3 + 1 slots, so -resolvers.max N takes at most about
// N × 32 bytes (2.1 MB at the default 65,536).
const (
	resolverMaxShardBits = 6    // at most 64 shards
	resolverShardSize    = 1024 // entries per shard before another shard is added
	resolverLoadNum      = 4    // most slots = limit × resolverLoadNum/resolverLoadDen + 1;
	resolverLoadDen      = 3    // grow above resolverLoadDen/resolverLoadNum full
	resolverMinSlots     = 8
	resolverShrinkDiv    = 8 // a sweep shrinks a shard less than 1/resolverShrinkDiv full
)

// resolverEntry is one active (resolver address, domain): 24 bytes.
type resolverEntry struct {
	addr     [16]byte // the resolver's address, IPv4 as IPv4-mapped IPv6
	domain1  uint16   // domain index + 1; 0 marks an empty slot
	geo      geoID    // geoID of its latest query: its label set is (domain, geo)
	lastSeen uint32   // latest query, ms ticks, as sessionEntry.lastSeen
}

// resolverShard is one lock stripe: an open-addressing, linear-probing
// table with backward-shift deletion, of fixed size.
type resolverShard struct {
	mu    sync.Mutex
	slots []resolverEntry // guarded by mu; never full
	n     int             // guarded by mu; occupied slots
	limit int             // most entries; read-only
	most  int             // most slots: limit × resolverLoadNum/resolverLoadDen + 1; read-only
	seed  uint64          // hash seed, copied from the table; read-only
	memo  resolverMemo    // the shard's latest query, read without mu
	_     [32]byte        // pad to 128 bytes: shards share no cache line
}

// resolverMemo remembers an entry of its shard: its address, domain1,
// geoID and lastSeen tick. While it holds, the table has that entry with
// that geoID and that lastSeen, so a query
// equal to it in all four would change nothing and needs no lock: the
// common case of a busy resolver, which sends many queries per ms tick.
// It is written only under the shard's mu: query offers it every entry
// it finds or adds, as the entry then is (set always takes the offer for
// the memo's own entry, so the memo follows every change of it), and the
// sweep clears it whenever it removes an entry of the shard; readers use it as a seqlock: seq is
// odd while a write is under way, and a read that sees seq change is
// discarded.
type resolverMemo struct {
	seq    atomic.Uint32
	lo, hi atomic.Uint64 // address halves, as resolverHash reads them
	meta   atomic.Uint64 // tick<<32 | geo<<16 | domain1; 0 when empty
}

// memoMeta packs a memo's tick, geoID and domain1 (never 0: domain1 ≥ 1).
func memoMeta(tick uint32, g geoID, domain1 uint16) uint64 {
	return uint64(tick)<<32 | uint64(g)<<16 | uint64(domain1)
}

// holds reports whether the memo is the query (addr, meta), without a lock.
func (m *resolverMemo) holds(addr *[16]byte, meta uint64) bool {
	seq := m.seq.Load()
	if seq&1 != 0 {
		return false
	}
	ok := m.meta.Load() == meta &&
		m.lo.Load() == binary.LittleEndian.Uint64(addr[:8]) &&
		m.hi.Load() == binary.LittleEndian.Uint64(addr[8:])
	return ok && m.seq.Load() == seq
}

// set makes the memo (addr, meta); meta 0 empties it. A memo of another
// resolver (or domain) of the same tick stays: a write costs five atomic
// stores, so the memo changes hands at most once per tick while queries
// of many resolvers take turns in a shard (BenchmarkResolverQuery), and
// the first resolver of a tick keeps it. A memo of the same resolver and
// domain is always rewritten, for its geoID may have changed. Guarded by
// the shard's mu.
func (m *resolverMemo) set(addr *[16]byte, meta uint64) {
	lo, hi := binary.LittleEndian.Uint64(addr[:8]), binary.LittleEndian.Uint64(addr[8:])
	if old := m.meta.Load(); old == meta && m.lo.Load() == lo && m.hi.Load() == hi {
		return // already this
	} else if meta != 0 && old != 0 && old>>32 == meta>>32 &&
		(uint16(old) != uint16(meta) || m.lo.Load() != lo || m.hi.Load() != hi) {
		return // another resolver's memo of this tick
	}
	seq := m.seq.Load()
	m.seq.Store(seq + 1)
	m.meta.Store(meta)
	m.lo.Store(lo)
	m.hi.Store(hi)
	m.seq.Store(seq + 2)
}

// resolverTable tracks the resolvers with a query in the activity window
// and keeps dnstt_active_resolvers of each label set in the session
// table's counters (labelCounters.resolvers), counted the way active
// sessions are: up when a resolver becomes active, moved when its label
// set changes (a GeoIP reload), down when the sweep expires it. All
// methods are safe for concurrent use. A table made with max 0 tracks
// nothing.
type resolverTable struct {
	shards   []resolverShard // a power of two of them; nil when off
	shift    uint            // 64 − log2(len(shards))
	seed     uint64
	sessions *sessionTable // the label sets and the window
	overflow atomic.Uint64 // queries of resolvers not held because their shard was full
}

// newResolverTable returns a table of about size resolvers (exactly size
// up to 2047; larger tables are split into up to 64 shards of equal
// limit), counting into the label sets of sessions; 0 turns it off.
func newResolverTable(size int, sessions *sessionTable) *resolverTable {
	t := &resolverTable{seed: rand.Uint64(), sessions: sessions}
	if size <= 0 {
		return t
	}
	bits := 0
	for bits < resolverMaxShardBits && size>>(bits+1) >= resolverShardSize {
		bits++
	}
	n := 1 << bits
	limit := (size + n - 1) / n
	t.shards = make([]resolverShard, n)
	t.shift = uint(64 - bits)
	for i := range t.shards {
		s := &t.shards[i]
		s.limit, s.seed = limit, t.seed
		s.most = limit*resolverLoadNum/resolverLoadDen + 1
		s.slots = make([]resolverEntry, min(resolverMinSlots, s.most))
	}
	return t
}

// on reports whether the table tracks resolvers.
func (t *resolverTable) on() bool { return t.shards != nil }

// resolverHash hashes a key (address, domain1) with the seed: the murmur3
// finaliser over each address half. Its top bits pick the shard, its low
// 32 bits the home slot.
func resolverHash(seed uint64, addr *[16]byte, domain1 uint16) uint64 {
	x := binary.LittleEndian.Uint64(addr[:8]) ^ seed ^ uint64(domain1)<<48
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= binary.LittleEndian.Uint64(addr[8:])
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// query records a dnstt query of p from a resolver of geoID g at now (ns
// on the sessions' clock). Queries of untracked sessions count here too
// (SPEC section 7).
func (t *resolverTable) query(p *dnsttPacket, g geoID, now int64) {
	a := p.resolver.As16()
	t.queryAt(p, &a, g, now)
}

// queryAt is query with p.resolver already in 16-byte form, addr.
func (t *resolverTable) queryAt(p *dnsttPacket, addr *[16]byte, g geoID, now int64) {
	if t.shards == nil {
		return
	}
	st := t.sessions
	_, d := st.domainSets(p.domain) // folded as sessionTable.counters folds it
	if int(g) >= st.geoIDs {
		g = 0
	}
	dom1 := d + 1
	h := resolverHash(t.seed, addr, dom1)
	s := &t.shards[h>>t.shift&uint64(len(t.shards)-1)]
	tick := uint32(now / nsPerTick)
	meta := memoMeta(tick, g, dom1)
	if s.memo.holds(addr, meta) {
		return // recorded already in this tick: nothing would change
	}
	s.mu.Lock()
	for {
		i, found := s.find(uint32(h), addr, dom1)
		if found {
			e := &s.slots[i]
			if e.geo != g {
				// Its label set changed: an expired entry not yet swept
				// still counts on its old set, so it moves the same way.
				st.counters(d, e.geo).resolvers.Add(-1)
				st.counters(d, g).resolvers.Add(1)
				e.geo = g
			}
			if int32(tick-e.lastSeen) > 0 {
				e.lastSeen = tick
			}
			// The memo states the entry as it now is, whatever the order
			// of the queries.
			s.memo.set(addr, memoMeta(e.lastSeen, e.geo, dom1))
			s.mu.Unlock()
			return
		}
		if s.n >= s.limit {
			s.mu.Unlock()
			t.overflow.Add(1)
			return
		}
		if (s.n+1)*resolverLoadNum <= len(s.slots)*resolverLoadDen || len(s.slots) == s.most {
			s.slots[i] = resolverEntry{addr: *addr, domain1: dom1, geo: g, lastSeen: tick}
			s.n++
			s.memo.set(addr, meta)
			s.mu.Unlock()
			st.counters(d, g).resolvers.Add(1)
			return
		}
		// resize unlocks while it allocates; look the key up again after.
		s.resize(min(2*len(s.slots), s.most))
	}
}

// sweep expires the resolvers whose latest query is more than one window
// older than now, with the session sweep, locking one shard at a time.
func (t *resolverTable) sweep(now int64) {
	st := t.sessions
	tick := uint32(now / nsPerTick)
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		if s.n == 0 { // nothing to expire: skip the scan
			if len(s.slots) > resolverMinSlots {
				s.resize(resolverMinSlots)
			}
			s.mu.Unlock()
			continue
		}
		for i := 0; i < len(s.slots); {
			e := &s.slots[i]
			if e.domain1 == 0 || !st.expired(e.lastSeen, tick) {
				i++
				continue
			}
			st.counters(e.domain1-1, e.geo).resolvers.Add(-1)
			s.remove(i) // may move a later entry into slot i: look again
			s.memo.set(&[16]byte{}, 0)
		}
		if len(s.slots) > resolverMinSlots && s.n*resolverShrinkDiv < len(s.slots) {
			s.resize(max(resolverMinSlots, len(s.slots)/2))
		}
		s.mu.Unlock()
	}
}

// tracked returns the number of resolvers in the table, locking one shard
// at a time.
func (t *resolverTable) tracked() int {
	n := 0
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// find returns the slot of key (addr, domain1) with hash h and true, or
// the empty slot where it would go and false. Guarded by s.mu.
func (s *resolverShard) find(h uint32, addr *[16]byte, domain1 uint16) (int, bool) {
	slots := s.slots
	for i := uint(fastrange(h, len(slots))); ; i = 0 {
		for ; i < uint(len(slots)); i++ {
			e := &slots[i]
			if e.domain1 == 0 {
				return int(i), false
			}
			if e.addr == *addr && e.domain1 == domain1 {
				return int(i), true
			}
		}
	}
}

// remove empties slot i and shifts the entries after it back. Guarded by
// s.mu.
func (s *resolverShard) remove(i int) {
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
		if !shiftable(i, j, fastrange(uint32(resolverHash(s.seed, &e.addr, e.domain1)), n)) {
			continue
		}
		slots[i] = *e
		i = j
	}
	slots[i] = resolverEntry{}
	s.n--
}

// resize moves the shard into a new array of size slots, as
// pendingShard.resize does: it releases s.mu while it allocates, and the
// caller must look its key up again. Guarded by s.mu.
func (s *resolverShard) resize(size int) {
	s.mu.Unlock()
	fresh := make([]resolverEntry, size)
	s.mu.Lock()
	if s.n*resolverLoadNum > size*resolverLoadDen && size < s.most || s.n >= size {
		return // grew meanwhile: fresh is too small
	}
	for i := range s.slots {
		e := &s.slots[i]
		if e.domain1 == 0 {
			continue
		}
		j := fastrange(uint32(resolverHash(s.seed, &e.addr, e.domain1)), size)
		for fresh[j].domain1 != 0 {
			if j++; j == size {
				j = 0
			}
		}
		fresh[j] = *e
	}
	s.slots = fresh
}

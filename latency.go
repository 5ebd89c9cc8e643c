package main

// The pending-query table of SPEC section 7: dnstt queries waiting for
// their response, matched by resolver address and port, DNS ID and
// question name, for the response latency, the unanswered queries and the
// responses by RCODE of each domain.

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Pending-query table geometry and timing.
//
// Sizes (64-bit): a pendingEntry is 16 bytes. A shard holds at most its
// limit. Its array starts at pendingMinSlots, doubles when more than 3/4
// full (linear probing stays short), up to limit × 4/3 + 1 slots, and a
// sweep halves it when it is less than 1/8 full: so -latency.max-pending N
// takes at most about N × 21.3 bytes (1.4 MB at the default 65,536), and
// a server with few queries in flight keeps a small table that stays in
// the CPU cache (BenchmarkPipeline).
const (
	pendingMaxShardBits = 6    // at most 64 shards
	pendingShardSize    = 1024 // entries per shard before another shard is added
	pendingLoadNum      = 4    // most slots = limit × pendingLoadNum/pendingLoadDen + 1;
	pendingLoadDen      = 3    // grow above pendingLoadDen/pendingLoadNum full
	pendingMinSlots     = 8
	pendingShrinkDiv    = 8 // a sweep shrinks a shard less than 1/pendingShrinkDiv full

	// pendingTimeout is how long a query waits for its response before
	// it counts as unanswered (SPEC section 7: 5 s).
	pendingTimeout = 5 * time.Second
	// nsPerMicro is the unit of the table's times: µs ticks, 32 bits,
	// compared by wrapping subtraction, exact because an entry lives at
	// most pendingTimeout plus a sweep interval, far below the 35 minutes
	// (2^31 µs) at which a signed difference wraps.
	nsPerMicro       = int64(time.Microsecond)
	pendingTimeoutUs = int32(pendingTimeout / time.Microsecond)

	// rcodeCount is the number of 4-bit header RCODE values.
	rcodeCount = 16
)

// responseLatencyBounds are the latency histogram's bucket upper bounds,
// µs: 1 ms … 5 s (SPEC section 7). exposition.go prints them in seconds.
var responseLatencyBounds = []uint64{1e3, 2.5e3, 5e3, 10e3, 25e3, 50e3, 100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6}

// pendingEntry is one query waiting for its response: 16 bytes.
type pendingEntry struct {
	key    uint64 // pendingKey of the query; 0 marks an empty slot
	us     uint32 // when the query was seen, µs ticks: uint32(now / 1e3)
	domain uint16 // the query's domain index
}

// pendingShard is one lock stripe: an open-addressing, linear-probing
// table with backward-shift deletion, of fixed size.
type pendingShard struct {
	mu    sync.Mutex
	slots []pendingEntry // guarded by mu; never full
	n     int            // guarded by mu; occupied slots
	limit int            // most entries; read-only
	most  int            // most slots: limit × pendingLoadNum/pendingLoadDen + 1; read-only
	_     [8]byte        // pad to 64 bytes
}

// responseStats are one domain's server-health counters.
type responseStats struct {
	rcodes     [rcodeCount]atomic.Uint64 // responses by header RCODE
	latency    histCounts                // µs, by responseLatencyBounds
	unanswered atomic.Uint64             // queries without a response within pendingTimeout
	_          [8]byte                   // pad to 256 bytes: domains share no cache line
}

// pendingTable holds the queries that wait for a response, and the
// per-domain response counters. All methods are safe for concurrent use.
// A table made with max 0 matches nothing: it only counts RCODEs.
type pendingTable struct {
	shards    []pendingShard          // a power of two of them; nil when off
	shift     uint                    // 64 − log2(len(shards)): the hash's top bits pick the shard
	keys      [pendingKeyWords]uint64 // random keys of pendingKey: remote senders cannot aim at one slot
	domains   []responseStats         // by domain index
	overflow  atomic.Uint64           // queries not held because their shard was full
	unmatched atomic.Uint64           // responses whose query was not pending (any more)
}

// newPendingTable returns a table for domains tunnel domains holding at
// most about size pending queries (exactly max up to 2047; larger tables
// are split into up to 64 shards of equal limit); 0 turns matching off.
func newPendingTable(size, domains int) *pendingTable {
	t := &pendingTable{domains: make([]responseStats, max(domains, 1))}
	for i := range t.keys {
		t.keys[i] = rand.Uint64()
	}
	if size <= 0 {
		return t
	}
	bits := 0
	for bits < pendingMaxShardBits && size>>(bits+1) >= pendingShardSize {
		bits++
	}
	n := 1 << bits
	limit := (size + n - 1) / n
	t.shards = make([]pendingShard, n)
	t.shift = uint(64 - bits)
	for i := range t.shards {
		s := &t.shards[i]
		s.limit = limit
		s.most = limit*pendingLoadNum/pendingLoadDen + 1
		s.slots = make([]pendingEntry, min(pendingMinSlots, s.most))
	}
	return t
}

// on reports whether the table matches queries and responses.
func (t *pendingTable) on() bool { return t.shards != nil }

// pendingKey hashes what ties a response to its query: the resolver's
// address and port, the DNS ID and the question name, whose letters are
// folded to lower case (resolvers may randomise case: SPEC section 2).
//
// The fold sets bit 0x20 of every byte, which turns A–Z into a–z; the
// other bytes of a counted name (digits 2–7, lower-case letters, the
// domain's hyphens) already have it, but for label lengths, so two names
// can share a key only by differing in a length byte's 0x20 bit with the
// same total length — never for the same (resolver, port, ID) in 5 s.
// The name is hashed 16 bytes at a time, NH-style: each pair of words,
// plus random per-position keys, is multiplied to 128 bits and the folded
// products are summed, so the multiplications overlap in the CPU; the
// last, partial block is read overlapping the one before it, with no
// copy (BenchmarkPendingKey). The result is never 0.
//
// The table keeps only this key, not the name: a response (or a repeated
// query) could match another pending query only if their keys collide.
// With random keys that is about one chance in 2^64 per pair, so with the
// default table full (65,536 queries pending) about 4 × 10^-15 per
// packet: one false match in about 90 years at 100,000 packets/s, far
// rarer with the few queries a server really has pending. Storing the
// names instead would take up to 255 bytes per entry.
func (t *pendingTable) pendingKey(p *dnsttPacket) uint64 {
	a := p.resolver.As16()
	return t.pendingKeyAt(p, &a)
}

// pendingKeyAt is pendingKey with p.resolver already in 16-byte form, a:
// the pipeline converts it once for both tables.
func (t *pendingTable) pendingKeyAt(p *dnsttPacket, a *[16]byte) uint64 {
	const fold = 0x2020202020202020
	k := &t.keys
	name := p.qname
	if len(name) > pendingNameMax {
		name = name[:pendingNameMax] // longer than SPEC section 3 allows: never
	}
	n := len(name)
	h := pendingMix(binary.LittleEndian.Uint64(a[:8])+k[0], binary.LittleEndian.Uint64(a[8:])+k[1])
	h += pendingMix(uint64(p.resolverPort)<<48|uint64(p.dnsID)<<32|uint64(n)+k[2], k[3])
	j := 4
	i := 0
	h2 := uint64(0)
	for ; i+32 <= n; i += 32 {
		b := name[i : i+32]
		kk := k[j : j+4]
		h += pendingMix(binary.LittleEndian.Uint64(b[0:])|fold+kk[0], binary.LittleEndian.Uint64(b[8:])|fold+kk[1])
		h2 += pendingMix(binary.LittleEndian.Uint64(b[16:])|fold+kk[2], binary.LittleEndian.Uint64(b[24:])|fold+kk[3])
		j += 4
	}
	h += h2
	if i+16 <= n {
		h += pendingMix(binary.LittleEndian.Uint64(name[i:])|fold+k[j], binary.LittleEndian.Uint64(name[i+8:])|fold+k[j+1])
		j += 2
		i += 16
	}
	if i < n {
		var w0, w1 uint64
		if n >= 16 {
			w0, w1 = binary.LittleEndian.Uint64(name[n-16:]), binary.LittleEndian.Uint64(name[n-8:])
		} else {
			for b := i; b < n; b++ {
				if b < 8 {
					w0 |= uint64(name[b]) << (8 * b)
				} else {
					w1 |= uint64(name[b]) << (8 * (b - 8))
				}
			}
		}
		h += pendingMix(w0|fold+k[j], w1|fold+k[j+1])
	}
	h = pendingMix(h^k[0], pendingK1)
	if h == 0 {
		h = 1
	}
	return h
}

// pendingNameMax is the longest question name a counted packet has (SPEC
// section 3); pendingKeyWords is the number of random keys pendingKey
// uses: four for the fixed fields, two per 16 bytes of the name.
const (
	pendingNameMax  = 255
	pendingKeyWords = 4 + 2*(pendingNameMax+15)/16
)

// pendingK1 is an odd constant of the final mix (wyhash's).
const pendingK1 = 0xa0761d6478bd642f

// pendingMix multiplies a and b to 128 bits and folds the halves.
func pendingMix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// shard returns the shard of key k.
func (t *pendingTable) shard(k uint64) *pendingShard {
	return &t.shards[k>>t.shift&uint64(len(t.shards)-1)]
}

// query records dnstt query p seen at now (ns on the sessions' clock). A
// query already pending keeps its first time (SPEC section 7), unless it
// waited more than pendingTimeout: then that one was unanswered and this
// is a new one.
func (t *pendingTable) query(p *dnsttPacket, now int64) {
	a := p.resolver.As16()
	t.queryAt(p, &a, now)
}

// queryAt is query with p.resolver already in 16-byte form, a.
func (t *pendingTable) queryAt(p *dnsttPacket, a *[16]byte, now int64) {
	if t.shards == nil {
		return
	}
	k := t.pendingKeyAt(p, a)
	s := t.shard(k)
	us := uint32(now / nsPerMicro)
	s.mu.Lock()
	for {
		i, found := s.find(k)
		if found {
			e := &s.slots[i]
			if int32(us-e.us) > pendingTimeoutUs {
				t.domainStats(e.domain).unanswered.Add(1)
				e.us, e.domain = us, p.domain
			}
			s.mu.Unlock()
			return
		}
		if s.n >= s.limit {
			s.mu.Unlock()
			t.overflow.Add(1)
			return
		}
		if (s.n+1)*pendingLoadNum <= len(s.slots)*pendingLoadDen || len(s.slots) == s.most {
			s.slots[i] = pendingEntry{key: k, us: us, domain: p.domain}
			s.n++
			s.mu.Unlock()
			return
		}
		// resize unlocks while it allocates; look the key up again after.
		s.resize(min(2*len(s.slots), s.most))
	}
}

// domainStats returns the counters of domain d, folding an index out of
// range into 0.
func (t *pendingTable) domainStats(d uint16) *responseStats {
	if int(d) >= len(t.domains) {
		d = 0
	}
	return &t.domains[d]
}

// response records dnstt response p seen at now: its RCODE, and the
// latency of the query it answers, which stops waiting. A response whose
// query is not pending, or waited more than pendingTimeout (it counts as
// unanswered), is unmatched.
func (t *pendingTable) response(p *dnsttPacket, now int64) {
	a := p.resolver.As16()
	t.responseAt(p, &a, now)
}

// responseAt is response with p.resolver already in 16-byte form, a.
func (t *pendingTable) responseAt(p *dnsttPacket, a *[16]byte, now int64) {
	st := t.domainStats(p.domain)
	st.rcodes[p.rcode&(rcodeCount-1)].Add(1)
	if t.shards == nil {
		return
	}
	k := t.pendingKeyAt(p, a)
	s := t.shard(k)
	us := uint32(now / nsPerMicro)
	s.mu.Lock()
	i, found := s.find(k)
	if !found {
		s.mu.Unlock()
		t.unmatched.Add(1)
		return
	}
	e := &s.slots[i]
	age, d := int32(us-e.us), e.domain
	s.remove(i)
	s.mu.Unlock()
	if age > pendingTimeoutUs {
		t.domainStats(d).unanswered.Add(1)
		t.unmatched.Add(1)
		return
	}
	t.domainStats(d).latency.observe(responseLatencyBounds, uint64(max(age, 0)))
}

// sweep removes the queries that waited more than pendingTimeout at now
// and counts them as unanswered. It runs with the session sweep (every
// 500 ms live, on the packet clock in file mode and once at the last
// record), locking one shard at a time; in file mode the queries younger
// than pendingTimeout at the end therefore count in neither latency nor
// unanswered (SPEC section 7).
func (t *pendingTable) sweep(now int64) {
	us := uint32(now / nsPerMicro)
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		if s.n == 0 { // nothing to expire: skip the scan
			if len(s.slots) > pendingMinSlots {
				s.resize(pendingMinSlots)
			}
			s.mu.Unlock()
			continue
		}
		for i := 0; i < len(s.slots); {
			e := &s.slots[i]
			if e.key == 0 || int32(us-e.us) <= pendingTimeoutUs {
				i++
				continue
			}
			t.domainStats(e.domain).unanswered.Add(1)
			// The backward shift may move a later entry into slot i:
			// look at it again (as sessionTable.sweep).
			s.remove(i)
		}
		if len(s.slots) > pendingMinSlots && s.n*pendingShrinkDiv < len(s.slots) {
			s.resize(max(pendingMinSlots, len(s.slots)/2))
		}
		s.mu.Unlock()
	}
}

// pending returns the number of queries waiting, locking one shard at a
// time.
func (t *pendingTable) pending() int {
	n := 0
	for k := range t.shards {
		s := &t.shards[k]
		s.mu.Lock()
		n += s.n
		s.mu.Unlock()
	}
	return n
}

// find returns the slot of key k and true, or the empty slot where it
// would go and false. Guarded by s.mu.
func (s *pendingShard) find(k uint64) (int, bool) {
	slots := s.slots
	for i := uint(fastrange(uint32(k), len(slots))); ; i = 0 {
		for ; i < uint(len(slots)); i++ {
			switch slots[i].key {
			case k:
				return int(i), true
			case 0:
				return int(i), false
			}
		}
	}
}

// remove empties slot i and shifts the entries after it back, so that
// every entry stays reachable from its home slot. Guarded by s.mu.
func (s *pendingShard) remove(i int) {
	slots := s.slots
	n := len(slots)
	j := i
	for {
		if j++; j == n {
			j = 0
		}
		e := &slots[j]
		if e.key == 0 {
			break
		}
		if !shiftable(i, j, fastrange(uint32(e.key), n)) {
			continue
		}
		slots[i] = *e
		i = j
	}
	slots[i] = pendingEntry{}
	s.n--
}

// resize moves the shard into a new array of size slots. It is called
// with s.mu held and returns with it held, but releases it while it
// allocates, so no allocation happens under the lock; the caller must look
// its key up again. The new array is dropped if the shard no longer fits
// it. Guarded by s.mu.
func (s *pendingShard) resize(size int) {
	s.mu.Unlock()
	fresh := make([]pendingEntry, size)
	s.mu.Lock()
	if s.n*pendingLoadNum > size*pendingLoadDen && size < s.most || s.n >= size {
		return // grew meanwhile: fresh is too small
	}
	for _, e := range s.slots {
		if e.key == 0 {
			continue
		}
		j := fastrange(uint32(e.key), size)
		for fresh[j].key != 0 {
			if j++; j == size {
				j = 0
			}
		}
		fresh[j] = e
	}
	s.slots = fresh
}

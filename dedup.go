package main

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
)

// The duplicate check of SPEC section 3: when several interfaces are
// captured, one datagram can pass more than one of them (a bridge and its
// port, a host interface and a container veth after DNAT). A copy is a
// duplicate when a packet with the same direction, resolver address and
// port, DNS ID, DNS message length and question name (as on the wire) was
// counted on a different interface less than dedupWindowMs earlier. NAT
// changes only the server side, which the key leaves out.
const (
	dedupWindowMs = 2000    // SPEC section 3: 2 s
	dedupWays     = 4       // entries per bucket; the oldest is overwritten
	dedupBuckets  = 1 << 16 // 256 Ki entries, 4 MiB: 2 s of 128,000 dnstt packets/s
	dedupLocks    = 64      // lock stripes, for several ring readers
)

// dedupEntry is one remembered datagram: 16 bytes.
type dedupEntry struct {
	key   uint64 // hash of the datagram's key fields; 0 = empty
	iface uint32 // folded interface identity of the counted copy
	ms    uint32 // when it was counted, ms on the caller's clock (wraps)
}

// dedupTable remembers recently counted datagrams by key hash. It is fixed
// in size and safe for concurrent use.
type dedupTable struct {
	seed    maphash.Seed
	locks   [dedupLocks]sync.Mutex
	buckets [][dedupWays]dedupEntry // dedupBuckets long; bucket i guarded by locks[i%dedupLocks]
}

// newDedupTable returns an empty table with a random hash seed, so that
// remote senders cannot aim for collisions.
func newDedupTable() *dedupTable {
	return &dedupTable{
		seed:    maphash.MakeSeed(),
		buckets: make([][dedupWays]dedupEntry, dedupBuckets),
	}
}

// dedupFixedLen is the size of the fixed-width part of the key:
// direction, resolver address (16), resolver port, DNS ID, DNS length.
const dedupFixedLen = 1 + 16 + 2 + 2 + 4

// duplicate reports whether p is a copy of a datagram counted on another
// interface within the window. When it is not, p is remembered as counted
// on iface at now (ns).
func (d *dedupTable) duplicate(p *dnsttPacket, iface uint64, now int64) bool {
	var fixed [dedupFixedLen]byte
	fixed[0] = byte(p.dir)
	a := p.resolver.As16()
	copy(fixed[1:17], a[:])
	binary.BigEndian.PutUint16(fixed[17:], p.resolverPort)
	binary.BigEndian.PutUint16(fixed[19:], p.dnsID)
	binary.BigEndian.PutUint32(fixed[21:], uint32(p.dnsLen))
	key := maphash.Bytes(d.seed, fixed[:])*0x9E3779B97F4A7C15 ^ maphash.Bytes(d.seed, p.qname)
	if key == 0 {
		key = 1
	}
	tag := uint32(iface) ^ uint32(iface>>32)*0x9E3779B1
	ms := uint32(now / 1e6)

	i := key % dedupBuckets
	mu := &d.locks[i%dedupLocks]
	mu.Lock()
	defer mu.Unlock()
	b := &d.buckets[i]
	oldest, oldestAge := 0, int64(-1)
	for w := range b {
		e := &b[w]
		// Signed age: with several ring readers, clocks of neighbouring
		// blocks may be slightly out of order.
		age := int64(int32(ms - e.ms))
		if age < 0 {
			age = -age
		}
		if e.key == key {
			if age < dedupWindowMs && e.iface != tag {
				return true
			}
			e.iface, e.ms = tag, ms
			return false
		}
		if e.key == 0 {
			age = 1 << 32 // an empty slot is the best victim
		}
		if age > oldestAge {
			oldest, oldestAge = w, age
		}
	}
	b[oldest] = dedupEntry{key: key, iface: tag, ms: ms}
	return false
}

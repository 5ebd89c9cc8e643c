package main

import (
	"net/netip"
	"testing"
)

// dedupPacket returns a counted query from resolver 192.0.2.1:5353 with
// DNS ID id and question name qname.
func dedupPacket(id uint16, qname string) *dnsttPacket {
	return &dnsttPacket{
		dir:          dirQuery,
		resolver:     netip.MustParseAddr("192.0.2.1"),
		resolverPort: 5353,
		dnsID:        id,
		dnsLen:       60,
		qname:        []byte(qname),
	}
}

// msAt returns t ms as ns on the table's clock.
func msAt(t int64) int64 { return t * 1e6 }

// TestDedupRules walks SPEC section 3's duplicate rule: a copy on another
// interface within 2 s is a duplicate, on the same interface or later it
// is counted, and every key field tells datagrams apart.
func TestDedupRules(t *testing.T) {
	const q = "\x0daaaaaaaaaaaaa\x01t\x07example\x03com\x00"
	type step struct {
		p     *dnsttPacket
		iface uint64
		ms    int64
		dup   bool
	}
	other := func(f func(p *dnsttPacket)) *dnsttPacket {
		p := dedupPacket(7, q)
		f(p)
		return p
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"copy on another interface", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, q), 2, 10, true},
		}},
		{"again on the same interface", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, q), 1, 10, false}, // a retransmission, not a copy
		}},
		{"just inside the window", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, q), 2, dedupWindowMs - 1, true},
		}},
		{"at the window", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, q), 2, dedupWindowMs, false},
		}},
		{"clock slightly backwards", []step{
			{dedupPacket(7, q), 1, 100, false},
			{dedupPacket(7, q), 2, 99, true},
		}},
		{"question name case", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, "\x0dAaaaaaaaaaaaa\x01t\x07example\x03com\x00"), 2, 1, false}, // as on the wire
		}},
		{"key fields", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(8, q), 2, 1, false},
			{other(func(p *dnsttPacket) { p.dir = dirResponse }), 2, 1, false},
			{other(func(p *dnsttPacket) { p.resolver = netip.MustParseAddr("192.0.2.2") }), 2, 1, false},
			{other(func(p *dnsttPacket) { p.resolver = netip.MustParseAddr("2001:db8::1") }), 2, 1, false},
			{other(func(p *dnsttPacket) { p.resolverPort = 5354 }), 2, 1, false},
			{other(func(p *dnsttPacket) { p.dnsLen = 61 }), 2, 1, false},
		}},
		{"counted copy moves the entry", []step{
			{dedupPacket(7, q), 1, 0, false},
			{dedupPacket(7, q), 1, 1500, false}, // same interface: counted, remembered at 1.5 s
			{dedupPacket(7, q), 2, 3000, true},  // 1.5 s after that
		}},
		{"interfaces with the same low bits", []step{
			{dedupPacket(7, q), 1<<32 | 3, 0, false}, // file interface 1, ifindex 3
			{dedupPacket(7, q), 2<<32 | 3, 1, true},  // file interface 2, ifindex 3
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDedupTable()
			for i, s := range tt.steps {
				if got := d.duplicate(s.p, s.iface, msAt(s.ms)); got != s.dup {
					t.Fatalf("step %d: duplicate(%+v, iface %#x, %d ms) = %v, want %v", i, *s.p, s.iface, s.ms, got, s.dup)
				}
			}
		})
	}
}

// TestDedupBucketEviction: a full bucket overwrites its oldest entry, so
// the table stays fixed in size and recent datagrams are still recognised.
func TestDedupBucketEviction(t *testing.T) {
	d := newDedupTable()
	// More distinct datagrams than the table has entries, 1 ms apart.
	const n = dedupBuckets*dedupWays + 1000
	for i := range int64(n) {
		p := dedupPacket(uint16(i), "\x0daaaaaaaaaaaaa\x01t\x00")
		p.dnsLen = int(i >> 16)
		if d.duplicate(p, 1, msAt(i/1000)) {
			t.Fatalf("datagram %d: a first copy reported as duplicate", i)
		}
	}
	// The latest one is still remembered.
	last := int64(n - 1)
	p := dedupPacket(uint16(last), "\x0daaaaaaaaaaaaa\x01t\x00")
	p.dnsLen = int(last >> 16)
	if !d.duplicate(p, 2, msAt(last/1000)) {
		t.Errorf("the latest datagram was evicted")
	}
}

// TestDedupAllocs: the duplicate check allocates nothing.
func TestDedupAllocs(t *testing.T) {
	d := newDedupTable()
	p := dedupPacket(7, "\x0daaaaaaaaaaaaa\x01t\x07example\x03com\x00")
	var now int64
	checkNoAllocs(t, func() {
		now += 1e6
		d.duplicate(p, uint64(now/1e6)&1, now)
	}, "duplicate")
}

// BenchmarkDedup measures the check of a new datagram and of its copy.
func BenchmarkDedup(b *testing.B) {
	d := newDedupTable()
	p := dedupPacket(7, "\x0daaaaaaaaaaaaa\x01t\x07example\x03com\x00")
	b.ReportAllocs()
	var now int64
	for i := range b.N {
		now += 1e5
		p.dnsID = uint16(i >> 1)
		sinkDuplicate = d.duplicate(p, uint64(i&1), now)
	}
}

// sinkDuplicate keeps BenchmarkDedup's result alive.
var sinkDuplicate bool

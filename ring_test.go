package main

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runFilter interprets the subset of classic BPF that captureFilter uses,
// with the kernel's rules: a load past the end of the packet drops it, and
// SKF_AD_PROTOCOL reads proto (skb->protocol, host order).
func runFilter(t *testing.T, prog []unix.SockFilter, proto uint16, pkt []byte) uint32 {
	t.Helper()
	var a, x uint32
	load := func(off uint32, size uint32) (uint32, bool) {
		if uint64(off)+uint64(size) > uint64(len(pkt)) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(pkt[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(pkt[off:])), true
		}
		return binary.BigEndian.Uint32(pkt[off:]), true
	}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		var ok bool
		switch in.Code {
		case bpfLdW:
			if in.K == skfAdOff+skfAdProtocol {
				a, ok = uint32(proto), true
			} else {
				a, ok = load(in.K, 4)
			}
		case bpfLdH:
			a, ok = load(in.K, 2)
		case bpfLdB:
			a, ok = load(in.K, 1)
		case bpfLdHX:
			a, ok = load(x+in.K, 2)
		case bpfLdxIP:
			var v uint32
			v, ok = load(in.K, 1)
			x = 4 * (v & 0xf)
		case bpfLdxK:
			x, ok = in.K, true
		case bpfAddK:
			a, ok = a+in.K, true
		case bpfLshK:
			a, ok = a<<in.K, true
		case bpfTax:
			x, ok = a, true
		case bpfJa:
			pc, ok = pc+int(in.K), true
		case bpfJeq:
			ok = true
			if a == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfJset:
			ok = true
			if a&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRet:
			return in.K
		default:
			t.Fatalf("instruction %d: unexpected code %#x", pc, in.Code)
		}
		if !ok {
			return 0
		}
	}
	t.Fatalf("program fell off its end")
	return 0
}

// ipv4Packet returns an IPv4 packet of protocol proto carrying payload.
// frag is the flags/fragment-offset field.
func ipv4Packet(src, dst [4]byte, proto uint8, frag uint16, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	return append(b, payload...)
}

// ipv6Packet returns an IPv6 packet whose first next header is next.
func ipv6Packet(src, dst [16]byte, next uint8, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = next
	b[7] = 64
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	return append(b, payload...)
}

// udpDatagram returns a UDP header (checksum 0) followed by payload.
func udpDatagram(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

var (
	ringV4Client = [4]byte{198, 51, 100, 10}
	ringV4Server = [4]byte{192, 0, 2, 1}
	ringV6Client = [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: 0, 15: 0x10}
	ringV6Server = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
)

func TestCaptureFilter(t *testing.T) {
	dns := make([]byte, 600)
	// ext returns an extension header of 8×(1+n) bytes naming next.
	ext := func(next uint8, n int, rest []byte) []byte {
		h := make([]byte, 8*(1+n))
		h[0], h[1] = next, byte(n)
		return append(h, rest...)
	}
	frag := func(next uint8, offset uint16, rest []byte) []byte {
		h := []byte{next, 0, byte(offset >> 8), byte(offset), 0, 0, 0, 1}
		return append(h, rest...)
	}
	query := udpDatagram(40000, 53, dns)
	other := udpDatagram(40000, 5353, dns)
	icmp := make([]byte, 24)
	hopByHop := ext(unix.IPPROTO_UDP, 0, query)
	tests := []struct {
		name  string
		proto uint16
		pkt   []byte
		want  uint32
	}{
		{"ipv4 query", unix.ETH_P_IP, ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, udpDatagram(40000, 53, dns)), ringSnapLen},
		{"ipv4 response", unix.ETH_P_IP, ipv4Packet(ringV4Server, ringV4Client, unix.IPPROTO_UDP, 0, udpDatagram(53, 40000, dns)), ringSnapLen},
		{"ipv4 first fragment", unix.ETH_P_IP, ipv4Packet(ringV4Server, ringV4Client, unix.IPPROTO_UDP, 0x2000, udpDatagram(53, 40000, dns)), ringSnapLen},
		{"ipv4 later fragment", unix.ETH_P_IP, ipv4Packet(ringV4Server, ringV4Client, unix.IPPROTO_UDP, 0x2000|185, udpDatagram(53, 40000, dns)), 0},
		{"ipv4 last fragment", unix.ETH_P_IP, ipv4Packet(ringV4Server, ringV4Client, unix.IPPROTO_UDP, 185, udpDatagram(53, 40000, dns)), 0},
		{"ipv4 other ports", unix.ETH_P_IP, ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, udpDatagram(40000, 5353, dns)), 0},
		{"ipv4 tcp", unix.ETH_P_IP, ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_TCP, 0, udpDatagram(40000, 53, dns)), 0},
		{"ipv4 options", unix.ETH_P_IP, func() []byte {
			p := ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, append(make([]byte, 4), udpDatagram(40000, 53, dns)...))
			p[0] = 0x46
			return p
		}(), ringSnapLen},
		{"ipv4 truncated", unix.ETH_P_IP, ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, nil), 0},
		{"ipv6 query", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_UDP, udpDatagram(40000, 53, dns)), ringSnapLen},
		{"ipv6 response", unix.ETH_P_IPV6, ipv6Packet(ringV6Server, ringV6Client, unix.IPPROTO_UDP, udpDatagram(53, 40000, dns)), ringSnapLen},
		{"ipv6 other ports", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_UDP, udpDatagram(40000, 5353, dns)), 0},
		{"ipv6 hop-by-hop udp", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, hopByHop), ringSnapLen},
		{"ipv6 hop-by-hop udp other ports", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, ext(unix.IPPROTO_UDP, 0, other)), 0},
		{"ipv6 hop-by-hop icmpv6 (mld)", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, ext(unix.IPPROTO_ICMPV6, 0, icmp)), 0},
		{"ipv6 routing udp, long", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 43, ext(unix.IPPROTO_UDP, 2, query)), ringSnapLen},
		{"ipv6 destination options udp", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 60, ext(unix.IPPROTO_UDP, 1, query)), ringSnapLen},
		{"ipv6 destination options tcp", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 60, ext(unix.IPPROTO_TCP, 1, query)), 0},
		{"ipv6 two extension headers", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, ext(60, 0, ext(unix.IPPROTO_UDP, 0, other))), ringSnapLen},
		{"ipv6 hop-by-hop then fragment", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, ext(44, 0, frag(unix.IPPROTO_UDP, 0, query))), ringSnapLen},
		{"ipv6 hop-by-hop then ah", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, ext(51, 0, query)), ringSnapLen},
		{"ipv6 first fragment udp", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 44, frag(unix.IPPROTO_UDP, 0, query)), ringSnapLen},
		{"ipv6 first fragment other ports", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 44, frag(unix.IPPROTO_UDP, 0, other)), 0},
		{"ipv6 later fragment", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 44, frag(unix.IPPROTO_UDP, 1480, query)), 0},
		{"ipv6 first fragment then destination options", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 44, frag(60, 0, ext(unix.IPPROTO_UDP, 0, other))), ringSnapLen},
		{"ipv6 authentication header", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 51, hopByHop), ringSnapLen},
		{"ipv6 hop-by-hop truncated", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, 0, nil), 0},
		{"ipv6 icmpv6", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_ICMPV6, make([]byte, 32)), 0},
		{"ipv6 tcp", unix.ETH_P_IPV6, ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_TCP, udpDatagram(40000, 53, dns)), 0},
		{"arp", unix.ETH_P_ARP, make([]byte, 28), 0},
		{"ipv6 port in ipv4 frame", unix.ETH_P_IP, ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_UDP, udpDatagram(40000, 53, dns)), 0},
	}
	prog := captureFilter(53)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runFilter(t, prog, tt.proto, tt.pkt); got != tt.want {
				t.Errorf("filter(%x…) = %d, want %d", tt.pkt[:min(len(tt.pkt), 48)], got, tt.want)
			}
		})
	}
	t.Run("port 5353", func(t *testing.T) {
		p := ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, udpDatagram(40000, 5353, dns))
		if got := runFilter(t, captureFilter(5353), unix.ETH_P_IP, p); got != ringSnapLen {
			t.Errorf("filter = %d, want %d", got, ringSnapLen)
		}
	})
}

func TestCaptureFilterJumps(t *testing.T) {
	prog := captureFilter(53)
	for i, in := range prog {
		if in.Code&0x07 != unix.BPF_JMP {
			continue
		}
		jumps := []int{int(in.Jt), int(in.Jf)}
		if in.Code == bpfJa {
			jumps = []int{int(in.K)}
		}
		for _, j := range jumps {
			if to := i + 1 + j; to >= len(prog) {
				t.Errorf("instruction %d jumps to %d, past the end (%d)", i, to, len(prog))
			}
		}
	}
	if last := prog[len(prog)-1]; last.Code != bpfRet {
		t.Errorf("last instruction %#x, want a return", last.Code)
	}
}

func TestRingSnapLen(t *testing.T) {
	if ringSnapLen != 511 {
		t.Errorf("ringSnapLen = %d, want 511 (the value the docs give)", ringSnapLen)
	}
	// A whole frame (header, sockaddr_ll, padding, snap) must fit the
	// nominal frame size the ring is declared with.
	const netOff = (tpFrameMinLen + 16 + 15) &^ 15 // TPACKET_ALIGN(hdrlen + 16): SOCK_DGRAM
	if netOff+ringSnapLen > ringFrameSize {
		t.Errorf("frame %d+%d bytes exceeds ringFrameSize %d", netOff, ringSnapLen, ringFrameSize)
	}
}

func TestRingGeometry(t *testing.T) {
	tests := []struct {
		name       string
		bufferSize int
		pageSize   int
		blockSize  int
		blockNr    int
		wantErr    string
	}{
		{"default", defaultBufferSize, 4096, 256 << 10, 16, ""},
		{"1 MiB", 1 << 20, 4096, 256 << 10, 4, ""},
		{"512 KiB", 512 << 10, 4096, 128 << 10, 4, ""},
		{"not a block multiple", 4<<20 + 1000, 4096, 256 << 10, 16, ""},
		{"64 MiB", 64 << 20, 4096, 256 << 10, 256, ""},
		{"smallest", ringMinBufferSize, 4096, 32 << 10, 4, ""},
		{"largest", ringMaxBufferSize, 4096, 256 << 10, 4096, ""},
		{"too small", ringMinBufferSize - 1, 4096, 0, 0, "-capture.buffer-size 131071: want 128KiB to 1GiB"},
		{"too large", ringMaxBufferSize + 1, 4096, 0, 0, "-capture.buffer-size 1073741825: want 128KiB to 1GiB"},
		{"64 KiB pages", 256 << 10, 64 << 10, 64 << 10, 4, ""},
		{"64 KiB pages, too small", 128 << 10, 64 << 10, 0, 0, "-capture.buffer-size 128KiB: want 256KiB to 1GiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, nr, err := ringGeometry(tt.bufferSize, tt.pageSize)
			if err != nil || tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ringGeometry(%d, %d) error = %v, want %q", tt.bufferSize, tt.pageSize, err, tt.wantErr)
				}
				return
			}
			if bs != tt.blockSize || nr != tt.blockNr {
				t.Errorf("ringGeometry(%d) = %d×%d, want %d×%d", tt.bufferSize, nr, bs, tt.blockNr, tt.blockSize)
			}
		})
	}
}

func TestHtons(t *testing.T) {
	b := make([]byte, 2)
	binary.NativeEndian.PutUint16(b, htons(unix.ETH_P_ALL))
	if got := binary.BigEndian.Uint16(b); got != unix.ETH_P_ALL {
		t.Errorf("htons(%#x) in memory reads %#x big-endian", unix.ETH_P_ALL, got)
	}
}

// testFrame is one frame of a synthetic ring block.
type testFrame struct {
	ifindex int32
	hatype  uint16
	pkttype uint8
	pkt     []byte
}

// buildBlock lays frames out as the kernel's tpacket_rcv does for a
// SOCK_DGRAM TPACKET_V3 socket: block descriptor, then per frame a
// tpacket3_hdr, the sockaddr_ll, and the packet at a 16-byte aligned tp_net.
func buildBlock(size int, frames []testFrame) []byte {
	blk := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(blk[tpBlockStatusOff:], tpStatusUser)
	ne.PutUint32(blk[tpBlockFirstPktOff:], tpBlockDescLen)
	off, n := tpBlockDescLen, 0
	const netOff = (tpFrameMinLen + 16 + 15) &^ 15
	for i, f := range frames {
		frameLen := (netOff + len(f.pkt) + 15) &^ 15
		if off+frameLen > size {
			break
		}
		h := blk[off:]
		ne.PutUint32(h[tpFrameSnaplenOff:], uint32(len(f.pkt)))
		ne.PutUint32(h[16:], uint32(len(f.pkt))) // tp_len
		ne.PutUint16(h[24:], netOff)             // tp_mac
		ne.PutUint16(h[tpFrameNetOff:], netOff)
		sll := h[tpFrameSockaddrOff:]
		ne.PutUint16(sll[0:], unix.AF_PACKET)
		ne.PutUint32(sll[tpSllIfindexOff:], uint32(f.ifindex))
		ne.PutUint16(sll[tpSllHatypeOff:], f.hatype)
		sll[tpSllPkttypeOff] = f.pkttype
		copy(h[netOff:], f.pkt)
		if i < len(frames)-1 && off+frameLen+(netOff+len(frames[i+1].pkt)+15)&^15 <= size {
			ne.PutUint32(h[tpFrameNextOff:], uint32(frameLen))
		}
		off += frameLen
		n++
	}
	ne.PutUint32(blk[tpBlockNumPktsOff:], uint32(n))
	return blk
}

// newTestPipeline returns a pipeline for t.example.com on port 53 with
// its own counters, without GeoIP.
func newTestPipeline(dedup bool) *pipeline {
	pl := &pipeline{
		sessions: newSessionTable(sessionConfig{window: 30 * time.Second, max: 10000, domains: 1, geoIDs: 1}),
		stats:    &captureStats{},
	}
	port := uint16(53)
	pl.tunnels.Store(newTunnelSet(dnsttDomains("t.example.com"), &port))
	pl.pending = newPendingTable(defaultPendingMax, 1)
	pl.resolvers = newResolverTable(defaultResolversMax, pl.sessions)
	if dedup {
		pl.dedup = newDedupTable()
	}
	return pl
}

func TestWalkBlock(t *testing.T) {
	// ICMP packets are not_udp for any decoder, skeleton or real, so the
	// not_udp count is the number of frames handed to the decoder.
	icmp := ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_ICMP, 0, make([]byte, 40))
	eth := func(n int) []testFrame {
		f := make([]testFrame, n)
		for i := range f {
			f[i] = testFrame{ifindex: 2, hatype: unix.ARPHRD_ETHER, pkttype: unix.PACKET_HOST, pkt: icmp}
			if i%2 == 1 {
				f[i].pkttype = unix.PACKET_OUTGOING
			}
		}
		return f
	}
	lo := func(n int) []testFrame {
		f := make([]testFrame, n)
		for i := range f {
			f[i] = testFrame{ifindex: 1, hatype: unix.ARPHRD_LOOPBACK, pkttype: unix.PACKET_HOST, pkt: icmp}
			if i%2 == 0 {
				f[i].pkttype = unix.PACKET_OUTGOING
			}
		}
		return f
	}
	corrupt := func(mod func(blk []byte)) []byte {
		blk := buildBlock(4096, eth(3))
		mod(blk)
		return blk
	}
	frame2 := tpBlockDescLen + (tpFrameMinLen+16+15)&^15 + len(icmp) // start of frame 2, before alignment
	frame2 = (frame2 + 15) &^ 15
	tests := []struct {
		name     string
		blk      []byte
		received uint64
		decoded  uint64
	}{
		{"ethernet in and out", buildBlock(4096, eth(6)), 6, 6},
		{"loopback outgoing copies skipped", buildBlock(4096, lo(6)), 6, 3},
		{"full block", buildBlock(4096, eth(100)), 25, 25}, // (4096-48)/160-byte frames
		{"empty", buildBlock(4096, nil), 0, 0},
		{"short block", make([]byte, 10), 0, 0},
		{"num_pkts past the frames", corrupt(func(b []byte) { binary.NativeEndian.PutUint32(b[tpBlockNumPktsOff:], 1000) }), 3, 3},
		{"first frame outside", corrupt(func(b []byte) { binary.NativeEndian.PutUint32(b[tpBlockFirstPktOff:], 4090) }), 0, 0},
		{"first frame in descriptor", corrupt(func(b []byte) { binary.NativeEndian.PutUint32(b[tpBlockFirstPktOff:], 8) }), 0, 0},
		{"snaplen past block", corrupt(func(b []byte) { binary.NativeEndian.PutUint32(b[frame2+tpFrameSnaplenOff:], 5000) }), 1, 1},
		{"tp_net in header", corrupt(func(b []byte) { binary.NativeEndian.PutUint16(b[frame2+tpFrameNetOff:], 8) }), 1, 1},
		{"next offset past block", corrupt(func(b []byte) { binary.NativeEndian.PutUint32(b[frame2+tpFrameNextOff:], 1<<31) }), 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := newTestPipeline(false)
			walkBlock(tt.blk, pl, 1)
			if got := pl.stats.received.Load(); got != tt.received {
				t.Errorf("received = %d, want %d", got, tt.received)
			}
			if got := pl.stats.ignored[ignoreNotUDP].Load(); got != tt.decoded {
				t.Errorf("decoded (not_udp) = %d, want %d", got, tt.decoded)
			}
		})
	}
}

// testDNSTTBlock is a block of dnstt queries and responses over IPv4 and
// IPv6 from a few sessions, as the ring would hold them.
func testDNSTTBlock(size int) []byte {
	var frames []testFrame
	for i := 0; ; i++ {
		cid := [8]byte{1, 2, 3, 4, 5, 6, 7, byte(i % 16)}
		q := dnsttQuery(uint16(i), cid, i%4*60, "t.example.com")
		r := dnsttResponse(q, 400)
		pq := ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_UDP, 0, udpDatagram(40000, 53, q))
		pr := ipv4Packet(ringV4Server, ringV4Client, unix.IPPROTO_UDP, 0, udpDatagram(53, 40000, r))
		if i%2 == 1 {
			pq = ipv6Packet(ringV6Client, ringV6Server, unix.IPPROTO_UDP, udpDatagram(40000, 53, q))
			pr = ipv6Packet(ringV6Server, ringV6Client, unix.IPPROTO_UDP, udpDatagram(53, 40000, r))
		}
		pr = pr[:min(len(pr), ringSnapLen)]
		frames = append(frames,
			testFrame{ifindex: 2, hatype: unix.ARPHRD_ETHER, pkttype: unix.PACKET_HOST, pkt: pq},
			testFrame{ifindex: 2, hatype: unix.ARPHRD_ETHER, pkttype: unix.PACKET_OUTGOING, pkt: pr})
		if len(frames)*(96+ringSnapLen) > size {
			break
		}
	}
	return buildBlock(size, frames)
}

func TestWalkBlockAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	blk := testDNSTTBlock(ringMaxBlockSize)
	pl := newTestPipeline(true)
	var now int64 = 1e9
	walkBlock(blk, pl, now) // sessions seen once: later walks update known ones
	if n := testing.AllocsPerRun(20, func() {
		now += 1e6
		walkBlock(blk, pl, now)
	}); n != 0 {
		t.Errorf("walkBlock allocs = %v, want 0", n)
	}
	if pl.stats.received.Load() == 0 {
		t.Errorf("received nothing from the test block")
	}
}

func BenchmarkWalkBlock(b *testing.B) {
	blk := testDNSTTBlock(ringMaxBlockSize)
	frames := binary.NativeEndian.Uint32(blk[tpBlockNumPktsOff:])
	pl := newTestPipeline(false)
	var now int64 = 1e9
	b.ReportAllocs()
	b.SetBytes(int64(len(blk)))
	b.ResetTimer()
	for range b.N {
		now += 1e6
		walkBlock(blk, pl, now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(frames), "ns/frame")
}

// TestOpenCaptureErrors: every name is looked up and the size checked
// before a packet socket is opened, so these errors need no privilege.
func TestOpenCaptureErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  captureConfig
		want string
	}{
		{"no such interface", captureConfig{interfaces: []string{"nosuch0dnstt"}, bufferSize: defaultBufferSize, port: 53}, `-capture.interface "nosuch0dnstt": no such network interface`},
		{"name too long", captureConfig{interfaces: []string{"averyveryverylonginterfacename"}, bufferSize: defaultBufferSize, port: 53}, `-capture.interface "averyveryverylonginterfacename": `},
		{"second interface missing", captureConfig{interfaces: []string{"lo", "nosuch0dnstt"}, bufferSize: defaultBufferSize, port: 53}, `"nosuch0dnstt": no such network interface`},
		{"buffer too small", captureConfig{bufferSize: 1000, port: 53}, "-capture.buffer-size 1000: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := openFDs(t)
			c, err := openCapture(tt.cfg)
			if err == nil {
				c.close()
				t.Fatalf("openCapture(%+v) succeeded, want error %q", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error = %q, want one line containing %q", err, tt.want)
			}
			for fd := range openFDs(t) {
				if !before[fd] {
					t.Errorf("descriptor %s opened and not closed: partial setup was not undone", fd)
				}
			}
		})
	}
}

// openFDs returns the open descriptors of this process as "fd -> target".
// Comparing these, not a count, keeps descriptors that other goroutines
// close meanwhile from hiding or faking a leak: the process-metrics reader
// of every earlier newMetrics holds two until the garbage collector runs
// its cleanup, which can happen between two counts.
func openFDs(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]bool{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the ReadDir descriptor itself, or one closed since
		}
		fds[e.Name()+" -> "+target] = true
	}
	return fds
}

func TestNeedCapNetRawMessage(t *testing.T) {
	msg := errNeedCapNetRaw.Error()
	for _, want := range []string{"CAP_NET_RAW", "setcap cap_net_raw+ep", "AmbientCapabilities=CAP_NET_RAW"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not mention %q", msg, want)
		}
	}
	if strings.ContainsAny(msg, "\n") {
		t.Errorf("%q: want one line", msg)
	}
}

// FuzzWalkBlock feeds arbitrary bytes to the walker as a ring block: a
// kernel/user mismatch must never make it read outside the block, loop
// without bound or allocate.
func FuzzWalkBlock(f *testing.F) {
	f.Add(testDNSTTBlock(8192))
	icmp := ipv4Packet(ringV4Client, ringV4Server, unix.IPPROTO_ICMP, 0, make([]byte, 8))
	f.Add(buildBlock(1024, []testFrame{
		{ifindex: 1, hatype: unix.ARPHRD_LOOPBACK, pkttype: unix.PACKET_OUTGOING, pkt: icmp},
		{ifindex: 1, hatype: unix.ARPHRD_LOOPBACK, pkttype: unix.PACKET_HOST, pkt: icmp},
	}))
	f.Add(make([]byte, tpBlockDescLen))
	pl := newTestPipeline(true)
	f.Fuzz(func(t *testing.T, blk []byte) {
		before := pl.stats.received.Load()
		walkBlock(blk, pl, 1e9)
		// Every frame takes at least a header and a sockaddr_ll.
		if got, most := pl.stats.received.Load()-before, uint64(len(blk)/tpFrameMinLen); got > most {
			t.Errorf("walked %d frames in a %d-byte block, at most %d fit", got, len(blk), most)
		}
	})
}

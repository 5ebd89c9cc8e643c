package main

// Live capture: one AF_PACKET socket per captured interface (or one for all
// of them), each with an in-kernel classic BPF filter and a TPACKET_V3
// memory-mapped receive ring, read by one goroutine that hands every frame's
// IP packet to the pipeline inline. See packet(7), Documentation/networking/
// packet_mmap.rst and include/uapi/linux/if_packet.h.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Snap length: how much of each packet the filter keeps. The decoder needs
// the IP and UDP headers, the DNS header and the whole question; byte counts
// come from the UDP length field, so nothing after the question is needed.
// The worst case is IPv6 (an IPv4 header is at most 60 bytes, less than
// the IPv6 header plus the extension-header allowance). The header lengths
// are the decoder's (packet.go, dnsname.go).
const (
	snapIPv6ExtLen = 192 // extension headers kept: hop-by-hop, routing, fragment (8), destination options, AH

	// ringSnapLen is 511 bytes: every DNS question behind up to 192 bytes
	// of IPv6 extension headers fits. A longer packet is cut (the ring
	// frame records its full length; the decoder counts the UDP length).
	ringSnapLen = ipv6HeaderLen + snapIPv6ExtLen + udpHeaderLen +
		dnsHeaderLen + dnsMaxNameLen + dnsQTailLen
)

// Ring geometry and timing.
const (
	// ringMinBufferSize and ringMaxBufferSize bound -capture.buffer-size
	// (checkRingBufferSize): a 128 KiB ring has 4 blocks of 32 KiB.
	ringMinBufferSize = 128 << 10
	ringMaxBufferSize = 1 << 30
	// ringMaxBlockSize is the block size for buffers of 4 blocks or more:
	// a block is handed to user space whole, so smaller blocks keep more
	// of the ring in the kernel's hands while the reader works on one.
	ringMaxBlockSize = 256 << 10
	// ringMinBlocks is the fewest blocks a ring may have.
	ringMinBlocks = 4
	// ringFrameSize is the nominal frame size PACKET_RX_RING requires
	// (tp_frame_nr = blocks × tp_block_size/tp_frame_size); TPACKET_V3
	// packs variable-size frames, so it only has to be at least one
	// frame: header, sockaddr_ll and a full snap (about 608 bytes).
	ringFrameSize = 1024
	// ringRetireTimeoutMs is tp_retire_blk_tov: a partly filled block is
	// handed to user space after this long, so quiet traffic is still
	// counted within a fraction of a second.
	ringRetireTimeoutMs = 50
	// ringPollMs is how long a reader waits in poll(2) before it looks
	// at the stop channel and the kernel statistics again.
	ringPollMs = 200
	// ringStatsEveryNs is how often a reader folds PACKET_STATISTICS
	// into the dropped counter and checks that its interface still exists.
	ringStatsEveryNs = 1e9
)

// Offsets into the TPACKET_V3 ring (include/uapi/linux/if_packet.h).
// Ring headers are in host byte order.
const (
	// struct tpacket_block_desc: version, offset_to_priv, then
	// struct tpacket_hdr_v1.
	tpBlockStatusOff   = 8                      // hdr.bh1.block_status
	tpBlockNumPktsOff  = 12                     // hdr.bh1.num_pkts
	tpBlockFirstPktOff = 16                     // hdr.bh1.offset_to_first_pkt
	tpBlockDescLen     = 48                     // sizeof(struct tpacket_block_desc)
	tpFrameNextOff     = 0                      // tpacket3_hdr.tp_next_offset
	tpFrameSnaplenOff  = 12                     // tpacket3_hdr.tp_snaplen
	tpFrameNetOff      = 26                     // tpacket3_hdr.tp_net
	tpFrameSockaddrOff = unix.SizeofTpacket3Hdr // TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): the sockaddr_ll
	tpSllIfindexOff    = 4                      // sockaddr_ll.sll_ifindex
	tpSllHatypeOff     = 8                      // sockaddr_ll.sll_hatype
	tpSllPkttypeOff    = 10                     // sockaddr_ll.sll_pkttype
	tpSllLen           = 20                     // sizeof(struct sockaddr_ll)
	tpFrameMinLen      = tpFrameSockaddrOff + tpSllLen
	tpStatusLen        = 4
	tpStatusUser       = unix.TP_STATUS_USER
	tpStatusKernel     = unix.TP_STATUS_KERNEL
)

// allInterfacesLabel names the socket bound to ifindex 0 in errors.
const allInterfacesLabel = "all interfaces"

// Classic BPF ancillary load (include/uapi/linux/filter.h): x/sys lacks
// these. A load from SKF_AD_OFF+SKF_AD_PROTOCOL reads skb->protocol, the
// ethertype, in host order; a SOCK_DGRAM socket has no link header to read
// it from.
const (
	skfAdOff      = 0xfffff000 // SKF_AD_OFF, -0x1000 as the __u32 k field
	skfAdProtocol = 0          // SKF_AD_PROTOCOL
)

var (
	// errNeedCapNetRaw is returned when the kernel refuses a packet socket.
	errNeedCapNetRaw = errors.New("capture: need CAP_NET_RAW: run as root or grant it " +
		"(setcap cap_net_raw+ep dnstt_exporter, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)")
	// errInterfaceGone is returned when a captured interface is deleted.
	errInterfaceGone = errors.New("interface was removed")
)

// captureConfig is what the live capture takes from the command line.
type captureConfig struct {
	interfaces []string // -capture.interface; empty = all, through one socket
	bufferSize int      // -capture.buffer-size: ring bytes per socket
	port       uint16   // -dnstt.port, for the in-kernel filter
	// clock is the sessions' clock (monotonic ns), read once per ring
	// block; nil means monotonicNow.
	clock func() int64
}

// capture is a set of open packet rings, one per captured interface (or
// one for all). Build it with openCapture, read it with run, then close.
type capture struct {
	rings []*ring
	clock func() int64 // captureConfig.clock
}

// ring is one AF_PACKET socket and its mapped TPACKET_V3 receive ring.
type ring struct {
	name      string // interface name, or allInterfacesLabel
	fd        int    // the packet socket; -1 once closed
	named     bool   // bound to one interface (not ifindex 0)
	mem       []byte // the mmap'd ring: blockNr blocks of blockSize bytes
	blockSize int    // bytes per block, a multiple of the page size
	blockNr   int    // number of blocks
	next      int    // the next block to read; reader goroutine only
}

// monotonicNow returns CLOCK_MONOTONIC in ns, the clock of a capture
// opened without one.
func monotonicNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		// CLOCK_MONOTONIC exists on every kernel Go supports.
		panic("BUG: clock_gettime(CLOCK_MONOTONIC): " + err.Error())
	}
	return ts.Nano()
}

// checkRingBufferSize checks a ring size of size bytes on a machine with
// pages of pageSize: ringMinBufferSize to ringMaxBufferSize, and at least
// ringMinBlocks pages, which only pages over 32 KiB make more than the
// minimum. validate and ringGeometry both use it.
func checkRingBufferSize(size, pageSize int) error {
	lo := max(ringMinBufferSize, ringMinBlocks*max(pageSize, ringFrameSize))
	if size < lo || size > ringMaxBufferSize {
		return fmt.Errorf("want %s to %s", formatByteSize(lo), formatByteSize(ringMaxBufferSize))
	}
	return nil
}

// ringGeometry splits a buffer of bufferSize bytes into blocks: blocks of
// ringMaxBlockSize when there are at least ringMinBlocks of them, otherwise
// smaller power-of-two blocks of at least one page.
// It fails as validate does for a size checkRingBufferSize rejects.
func ringGeometry(bufferSize, pageSize int) (blockSize, blockNr int, err error) {
	if err := checkRingBufferSize(bufferSize, pageSize); err != nil {
		return 0, 0, fmt.Errorf("-capture.buffer-size %s: %w", formatByteSize(bufferSize), err)
	}
	blockSize = ringMaxBlockSize
	for blockSize > pageSize && bufferSize/blockSize < ringMinBlocks {
		blockSize /= 2
	}
	blockSize = max(blockSize, pageSize, ringFrameSize)
	return blockSize, bufferSize / blockSize, nil
}

// Classic BPF instructions used by captureFilter
// (include/uapi/linux/bpf_common.h, under their x/sys names).
const (
	bpfLdW   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfLdH   = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
	bpfLdB   = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
	bpfLdHX  = unix.BPF_LD | unix.BPF_H | unix.BPF_IND
	bpfLdxIP = unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH // X = 4*(P[k]&0xf): IPv4 header length
	bpfLdxK  = unix.BPF_LDX | unix.BPF_W | unix.BPF_IMM // X = k
	bpfAddK  = unix.BPF_ALU | unix.BPF_ADD | unix.BPF_K
	bpfLshK  = unix.BPF_ALU | unix.BPF_LSH | unix.BPF_K
	bpfTax   = unix.BPF_MISC | unix.BPF_TAX // X = A
	bpfJa    = unix.BPF_JMP | unix.BPF_JA   // jump by k, always
	bpfJeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet   = unix.BPF_RET | unix.BPF_K
)

// Offsets and values the filter reads, from the start of the IP header:
// the start of the data a SOCK_DGRAM packet socket's filter sees. The
// offsets and masks are the decoder's (packet.go).
const (
	bpfIPv4ProtoOff    = ipv4ProtoOff                     // IPv4 protocol (RFC 791)
	bpfIPv4FragOff     = ipv4FragOff                      // IPv4 flags and fragment offset
	bpfIPv4FragMask    = ipv4FragOffMask                  //
	bpfIPv6NextOff     = ipv6NextOff                      // IPv6 next header (RFC 8200 section 3)
	bpfExtNextOff      = ipv6HeaderLen                    // first extension header: its next header
	bpfExtLenOff       = ipv6HeaderLen + ipv6ExtLenOff    // and its length in 8-byte units, not counting the first 8
	bpfFragOffsetOff   = ipv6HeaderLen + ipv6FragFieldOff // fragment header: offset and flags
	bpfFragOffsetMask  = ipv6FragOffMask                  // the fragment offset
	bpfFragHeaderLen   = ipv6FragHdrLen                   // RFC 8200 section 4.5
	bpfUDPSrcPortOff   = udpSrcPortOff                    // from the UDP header
	bpfUDPDstPortOff   = udpDstPortOff                    //
	bpfProtoUDP        = unix.IPPROTO_UDP                 //
	bpfIPv6HopByHop    = unix.IPPROTO_HOPOPTS             // IPv6 extension headers (RFC 8200 section 4)
	bpfIPv6Routing     = unix.IPPROTO_ROUTING             //
	bpfIPv6Fragment    = unix.IPPROTO_FRAGMENT            //
	bpfIPv6DestOptions = unix.IPPROTO_DSTOPTS             //
	bpfIPv6AH          = unix.IPPROTO_AH                  // RFC 4302
	bpfEtherTypeIPv4   = unix.ETH_P_IP                    //
	bpfEtherTypeIPv6   = unix.ETH_P_IPV6                  //
)

// bpfLine is one instruction of a filter in source form: jumps name their
// targets by label ("" = the next instruction; bpfJa takes its target in jt).
type bpfLine struct {
	label  string
	code   uint16
	k      uint32
	jt, jf string
}

// assembleBPF resolves labels into classic BPF jump offsets.
func assembleBPF(src []bpfLine) []unix.SockFilter {
	at := map[string]int{}
	for i, l := range src {
		if l.label != "" {
			at[l.label] = i
		}
	}
	rel := func(i int, label string) uint8 {
		if label == "" {
			return 0
		}
		to, ok := at[label]
		if !ok || to <= i || to-i-1 > 255 {
			panic("BUG: BPF jump from " + fmt.Sprint(i) + " to " + label)
		}
		return uint8(to - i - 1)
	}
	prog := make([]unix.SockFilter, len(src))
	for i, l := range src {
		if l.code == bpfJa {
			prog[i] = unix.SockFilter{Code: l.code, K: uint32(rel(i, l.jt))}
			continue
		}
		prog[i] = unix.SockFilter{Code: l.code, K: l.k, Jt: rel(i, l.jt), Jf: rel(i, l.jf)}
	}
	return prog
}

// captureFilter returns the classic BPF program every capture socket runs
// before a packet is copied to the ring. It keeps ringSnapLen bytes of
//   - IPv4 UDP from or to port, unless it is a non-first fragment;
//   - IPv6 UDP from or to port, also behind one hop-by-hop, routing,
//     destination options or first-fragment header;
//   - IPv6 whose extension headers the filter does not walk: a second one
//     after the first, or AH (the decoder walks them and decides);
//
// and drops everything else, so ICMPv6 behind a hop-by-hop header (MLD)
// and non-first IPv6 fragments never reach user space either.
func captureFilter(port uint16) []unix.SockFilter {
	p := uint32(port)
	return assembleBPF([]bpfLine{
		{code: bpfLdW, k: skfAdOff + skfAdProtocol},
		{code: bpfJeq, k: bpfEtherTypeIPv4, jf: "ipv6"},
		// IPv4.
		{code: bpfLdB, k: bpfIPv4ProtoOff},
		{code: bpfJeq, k: bpfProtoUDP, jf: "drop"},
		{code: bpfLdH, k: bpfIPv4FragOff},
		{code: bpfJset, k: bpfIPv4FragMask, jt: "drop"},
		{code: bpfLdxIP, k: 0},
		{code: bpfJa, jt: "ports"}, // X = IPv4 header length
		// IPv6.
		{label: "ipv6", code: bpfJeq, k: bpfEtherTypeIPv6, jf: "drop"},
		{code: bpfLdxK, k: ipv6HeaderLen},
		{code: bpfLdB, k: bpfIPv6NextOff},
		{code: bpfJeq, k: bpfProtoUDP, jt: "ports"},
		{code: bpfJeq, k: bpfIPv6Fragment, jt: "fragment"},
		{code: bpfJeq, k: bpfIPv6HopByHop, jt: "ext"},
		{code: bpfJeq, k: bpfIPv6Routing, jt: "ext"},
		{code: bpfJeq, k: bpfIPv6DestOptions, jt: "ext"},
		{code: bpfJeq, k: bpfIPv6AH, jt: "accept", jf: "drop"},
		// A fragment header: later fragments carry no UDP header.
		{label: "fragment", code: bpfLdH, k: bpfFragOffsetOff},
		{code: bpfJset, k: bpfFragOffsetMask, jt: "drop"},
		{code: bpfLdxK, k: ipv6HeaderLen + bpfFragHeaderLen},
		{code: bpfJa, jt: "second"},
		// Hop-by-hop, routing, destination options: X = 40 + (len+1)*8.
		{label: "ext", code: bpfLdB, k: bpfExtLenOff},
		{code: bpfAddK, k: 1},
		{code: bpfLshK, k: 3},
		{code: bpfAddK, k: ipv6HeaderLen},
		{code: bpfTax},
		// The header after the first extension header.
		{label: "second", code: bpfLdB, k: bpfExtNextOff},
		{code: bpfJeq, k: bpfProtoUDP, jt: "ports"},
		{code: bpfJeq, k: bpfIPv6HopByHop, jt: "accept"},
		{code: bpfJeq, k: bpfIPv6Routing, jt: "accept"},
		{code: bpfJeq, k: bpfIPv6Fragment, jt: "accept"},
		{code: bpfJeq, k: bpfIPv6DestOptions, jt: "accept"},
		{code: bpfJeq, k: bpfIPv6AH, jt: "accept", jf: "drop"},
		// UDP at X.
		{label: "ports", code: bpfLdHX, k: bpfUDPSrcPortOff},
		{code: bpfJeq, k: p, jt: "accept"},
		{code: bpfLdHX, k: bpfUDPDstPortOff},
		{code: bpfJeq, k: p, jt: "accept", jf: "drop"},
		{label: "accept", code: bpfRet, k: ringSnapLen},
		{label: "drop", code: bpfRet, k: 0},
	})
}

// interfaceIndex returns the index of the named interface. It asks on a
// plain AF_UNIX socket, which needs no privilege (netdevice(7):
// SIOCGIFINDEX works on any socket).
func interfaceIndex(name string) (int, error) {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("-capture.interface %q: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("-capture.interface %q: %w", name, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if err == unix.ENODEV {
			return 0, fmt.Errorf("-capture.interface %q: no such network interface (see ip link)", name)
		}
		return 0, fmt.Errorf("-capture.interface %q: %w", name, os.NewSyscallError("ioctl SIOCGIFINDEX", err))
	}
	return int(ifr.Uint32()), nil
}

// openCapture opens one ring per configured interface, or one for all
// interfaces when none is named. Nothing is left open when it fails: the
// error is one line naming the interface and the fix where there is one.
func openCapture(cfg captureConfig) (*capture, error) {
	names := cfg.interfaces
	if len(names) == 0 {
		names = []string{""}
	}
	// Every name is looked up before any packet socket is opened: a wrong
	// name is reported as such, with or without CAP_NET_RAW.
	ifindexes := make([]int, len(names))
	for i, name := range names {
		if name == "" {
			continue
		}
		var err error
		if ifindexes[i], err = interfaceIndex(name); err != nil {
			return nil, err
		}
	}
	c := &capture{clock: cfg.clock}
	if c.clock == nil {
		c.clock = monotonicNow
	}
	for i, name := range names {
		r, err := openRing(name, ifindexes[i], cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.rings = append(c.rings, r)
	}
	return c, nil
}

// openRing sets up one socket: created with protocol 0 so that it receives
// nothing until bound, the filter attached and the ring mapped before the
// bind, so that no packet is ever queued outside the ring or unfiltered.
// ifindex is name's index (interfaceIndex); name "" binds to ifindex 0:
// all interfaces, also ones created later.
func openRing(name string, ifindex int, cfg captureConfig) (_ *ring, err error) {
	blockSize, blockNr, err := ringGeometry(cfg.bufferSize, os.Getpagesize())
	if err != nil {
		return nil, err
	}
	r := &ring{name: name, fd: -1, named: name != "", blockSize: blockSize, blockNr: blockNr}
	if name == "" {
		r.name = allInterfacesLabel
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()

	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if err == unix.EPERM || err == unix.EACCES {
			return nil, errNeedCapNetRaw
		}
		return nil, r.wrap("socket", err)
	}
	r.fd = fd

	filter := captureFilter(cfg.port)
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return nil, r.wrap("setsockopt SO_ATTACH_FILTER", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, r.wrap("setsockopt PACKET_VERSION", err)
	}
	req := unix.TpacketReq3{
		Block_size:     uint32(blockSize),
		Block_nr:       uint32(blockNr),
		Frame_size:     ringFrameSize,
		Frame_nr:       uint32(blockSize / ringFrameSize * blockNr),
		Retire_blk_tov: ringRetireTimeoutMs,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		if err == unix.ENOMEM {
			return nil, fmt.Errorf("%w: lower -capture.buffer-size (%d)", r.wrap("setsockopt PACKET_RX_RING", err), cfg.bufferSize)
		}
		return nil, r.wrap("setsockopt PACKET_RX_RING", err)
	}
	mem, err := unix.Mmap(fd, 0, blockSize*blockNr, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, r.wrap("mmap", err)
	}
	r.mem = mem

	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return nil, r.wrap("bind", err)
	}
	return r, nil
}

// htons converts a 16-bit value from host to network byte order, as
// sockaddr_ll.sll_protocol wants it (packet(7)).
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// wrap names the call and the interface in a setup or read error.
func (r *ring) wrap(call string, err error) error {
	return fmt.Errorf("capture on %s: %w", r.name, os.NewSyscallError(call, err))
}

// run reads every ring, one goroutine each, handing packets to pl, until
// stop is closed (then it returns nil) or a ring fails (then it stops the
// others and returns the first error). Call close after run returns.
func (c *capture) run(pl *pipeline, stop <-chan struct{}) error {
	quit := make(chan struct{})
	var quitOnce sync.Once
	halt := func() { quitOnce.Do(func() { close(quit) }) }
	go func() {
		select {
		case <-stop:
			halt()
		case <-quit:
		}
	}()

	errc := make(chan error, len(c.rings))
	var wg sync.WaitGroup
	for _, r := range c.rings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.read(pl, c.clock, quit); err != nil {
				errc <- err
				halt()
			}
		}()
	}
	wg.Wait()
	halt()
	close(errc)
	return <-errc // nil when no ring failed
}

// close unmaps the rings and closes the sockets. It is safe to call twice.
// munmap and close of a packet socket cannot fail for a valid mapping and
// descriptor, which is all close is given, so there is no error to return.
func (c *capture) close() {
	for _, r := range c.rings {
		r.close()
	}
}

// close unmaps the ring and closes the socket.
func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// read is one ring's reader loop: wait for the next block to be handed to
// user space, walk it, hand it back, and fold the kernel's statistics into
// pl.stats now and then and on the way out.
func (r *ring) read(pl *pipeline, clock func() int64, quit <-chan struct{}) error {
	fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN | unix.POLLERR}}
	lastStats := clock()
	for {
		select {
		case <-quit:
			return r.readStats(pl.stats)
		default:
		}
		status := r.blockStatus(r.next)
		if atomic.LoadUint32(status)&tpStatusUser == 0 {
			fds[0].Revents = 0
			if _, err := unix.Poll(fds, ringPollMs); err != nil && err != unix.EINTR {
				return r.wrap("poll", err)
			}
			if fds[0].Revents&unix.POLLERR != 0 {
				if err := r.socketError(); err != nil {
					return err
				}
			}
		} else {
			now := clock()
			off := r.next * r.blockSize
			walkBlock(r.mem[off:off+r.blockSize:off+r.blockSize], pl, now)
			// Hand the block back only after the walk. The atomic store
			// orders every read of the block before it: the kernel reuses
			// a block as soon as it sees TP_STATUS_KERNEL in block_status.
			atomic.StoreUint32(status, tpStatusKernel)
			r.next++
			if r.next == r.blockNr {
				r.next = 0
			}
		}
		if now := clock(); now-lastStats >= ringStatsEveryNs {
			lastStats = now
			if err := r.readStats(pl.stats); err != nil {
				return err
			}
			if err := r.checkBound(); err != nil {
				return err
			}
		}
	}
}

// blockStatus returns a pointer to block i's block_status word.
func (r *ring) blockStatus(i int) *uint32 {
	off := i*r.blockSize + tpBlockStatusOff
	// unsafe: r.mem is the mmap'd TPACKET_V3 ring of r.blockNr blocks of
	// r.blockSize bytes (page-aligned), and i < r.blockNr, so off+4 is
	// inside r.mem and off is 4-byte aligned: struct tpacket_block_desc
	// starts each block and hdr.bh1.block_status is its third __u32. The
	// kernel and the reader hand the block over through this word, so it
	// must be read and written atomically, which needs a *uint32. r.mem
	// stays mapped until close, which runs only after the readers stop.
	return (*uint32)(unsafe.Pointer(&r.mem[off : off+tpStatusLen][0]))
}

// socketError reads and clears the socket's pending error after POLLERR:
// the kernel reports ENETDOWN when the bound interface goes down. Capture
// resumes by itself when it comes back up.
func (r *ring) socketError() error {
	if _, err := unix.GetsockoptInt(r.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil {
		return r.wrap("getsockopt SO_ERROR", err)
	}
	return nil
}

// checkBound returns errInterfaceGone when the named interface the socket
// is bound to was deleted: the kernel then unbinds the socket (its
// ifindex becomes -1) and it will never receive again.
func (r *ring) checkBound() error {
	if !r.named {
		return nil
	}
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		return r.wrap("getsockname", err)
	}
	if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Ifindex <= 0 {
		return fmt.Errorf("capture on %s: %w", r.name, errInterfaceGone)
	}
	return nil
}

// readStats adds the kernel's drop count since the last read to st.
// PACKET_STATISTICS resets the kernel's counters on every read.
func (r *ring) readStats(st *captureStats) error {
	s, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return r.wrap("getsockopt PACKET_STATISTICS", err)
	}
	st.dropped.Add(uint64(s.Drops))
	return nil
}

// walkBlock hands every frame of one TPACKET_V3 block to pl, at now. It
// trusts nothing in the block: a frame whose offsets point outside the
// block ends the walk, so a kernel/user mismatch cannot fault. Copies of
// outgoing packets on a loopback interface are counted as received but not
// decoded: the same packet comes back as incoming (SPEC section 3).
func walkBlock(blk []byte, pl *pipeline, now int64) {
	if len(blk) < tpBlockDescLen {
		return
	}
	n := binary.NativeEndian.Uint32(blk[tpBlockNumPktsOff:])
	off := int(binary.NativeEndian.Uint32(blk[tpBlockFirstPktOff:]))
	for range n {
		if off < tpBlockDescLen || off > len(blk)-tpFrameMinLen {
			return
		}
		f := blk[off:]
		snap := int(binary.NativeEndian.Uint32(f[tpFrameSnaplenOff:]))
		net := int(binary.NativeEndian.Uint16(f[tpFrameNetOff:]))
		if net < tpFrameMinLen || snap > len(f)-net {
			return
		}
		sll := f[tpFrameSockaddrOff:]
		ifindex := binary.NativeEndian.Uint32(sll[tpSllIfindexOff:])
		if binary.NativeEndian.Uint16(sll[tpSllHatypeOff:]) == unix.ARPHRD_LOOPBACK &&
			sll[tpSllPkttypeOff] == unix.PACKET_OUTGOING {
			pl.stats.received.Add(1)
		} else {
			pl.handleIP(f[net:net+snap:net+snap], uint64(ifindex), now)
		}
		// The last frame's tp_next_offset is 0; any other is at least a
		// frame header, so the walk visits at most len(blk)/tpFrameMinLen.
		next := int(binary.NativeEndian.Uint32(f[tpFrameNextOff:]))
		if next < tpFrameMinLen {
			return
		}
		off += next
	}
}

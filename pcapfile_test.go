package main

import (
	"bytes"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// This file holds the pcap/pcapng reader's tests and a synthetic-capture
// generator (frames, DNS messages, pcap and pcapng writers) that
// exporter_test.go uses too.

// genOrder is a byte order that can append.
type genOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// genRecord is one record of a synthetic capture.
type genRecord struct {
	ts    int64  // Unix ns
	iface int    // pcapng interface id in its section; 0 for classic pcap
	data  []byte // link-layer frame
	spb   bool   // pcapng: write as a simple packet block (interface 0, no timestamp)
	pb    bool   // pcapng: write as an obsolete packet block
}

// genInterface is a pcapng interface description.
type genInterface struct {
	lt       linkType
	snaplen  uint32
	tsresol  byte  // 0 = option absent (microseconds)
	tsoffset int64 // seconds; 0 = option absent
}

// genSection is one pcapng section.
type genSection struct {
	order   genOrder
	ifaces  []genInterface
	records []genRecord
	extra   bool // write unknown and statistics blocks the reader must skip
}

// genPcap writes a classic pcap file.
func genPcap(dst []byte, order genOrder, nano bool, lt linkType, recs []genRecord) []byte {
	magic := uint32(pcapMagicMicro)
	if nano {
		magic = pcapMagicNano
	}
	dst = order.AppendUint32(dst, magic)
	dst = order.AppendUint16(dst, 2)
	dst = order.AppendUint16(dst, 4)
	dst = order.AppendUint32(dst, 0)
	dst = order.AppendUint32(dst, 0)
	dst = order.AppendUint32(dst, 262144)
	dst = order.AppendUint32(dst, uint32(lt))
	for _, r := range recs {
		frac := r.ts % 1e9
		if !nano {
			frac /= 1000
		}
		dst = order.AppendUint32(dst, uint32(r.ts/1e9))
		dst = order.AppendUint32(dst, uint32(frac))
		dst = order.AppendUint32(dst, uint32(len(r.data)))
		dst = order.AppendUint32(dst, uint32(len(r.data)))
		dst = append(dst, r.data...)
	}
	return dst
}

// genBlock writes a pcapng block of type t with body, padded.
func genBlock(dst []byte, order genOrder, t uint32, body []byte) []byte {
	pad := (4 - len(body)%4) % 4
	n := uint32(12 + len(body) + pad)
	dst = order.AppendUint32(dst, t)
	dst = order.AppendUint32(dst, n)
	dst = append(dst, body...)
	dst = append(dst, make([]byte, pad)...)
	return order.AppendUint32(dst, n)
}

// genTicks converts ns into units of if_tsresol v, minus the offset.
func genTicks(ns int64, ifc genInterface) uint64 {
	ns -= ifc.tsoffset * 1e9
	v := ifc.tsresol
	if v == 0 {
		v = pcapngDefaultTSResol
	}
	if v&0x80 != 0 {
		// ns * 2^n / 1e9
		hi, lo := bits.Mul64(uint64(ns), 1<<(v&0x7f))
		q, _ := bits.Div64(hi, lo, 1e9)
		return q
	}
	if v <= 9 {
		d := int64(1)
		for range 9 - v {
			d *= 10
		}
		return uint64(ns / d)
	}
	u := uint64(ns)
	for range v - 9 {
		u *= 10
	}
	return u
}

// genPcapng writes a pcapng file of the sections.
func genPcapng(dst []byte, sections []genSection) []byte {
	for _, s := range sections {
		o := s.order
		var b []byte
		b = o.AppendUint32(b, pcapngByteOrderMagic)
		b = o.AppendUint16(b, 1)
		b = o.AppendUint16(b, 0)
		b = o.AppendUint64(b, ^uint64(0))
		dst = genBlock(dst, o, pcapngSHBType, b)
		for _, ifc := range s.ifaces {
			b = b[:0]
			b = o.AppendUint16(b, uint16(ifc.lt))
			b = o.AppendUint16(b, 0)
			b = o.AppendUint32(b, ifc.snaplen)
			// if_name, a string option the reader skips
			b = o.AppendUint16(b, 2)
			b = o.AppendUint16(b, 3)
			b = append(b, 'e', 't', 'h', 0)
			if ifc.tsresol != 0 {
				b = o.AppendUint16(b, pcapngOptTSResol)
				b = o.AppendUint16(b, 1)
				b = append(b, ifc.tsresol, 0, 0, 0)
			}
			if ifc.tsoffset != 0 {
				b = o.AppendUint16(b, pcapngOptTSOffset)
				b = o.AppendUint16(b, 8)
				b = o.AppendUint64(b, uint64(ifc.tsoffset))
			}
			b = o.AppendUint32(b, 0) // opt_endofopt
			dst = genBlock(dst, o, pcapngIDBType, b)
		}
		if s.extra {
			dst = genBlock(dst, o, 0x00000bad, []byte("custom block"))
			dst = genBlock(dst, o, 0x00000004, o.AppendUint32(nil, 0)) // name resolution block, empty
		}
		for _, r := range s.records {
			b = b[:0]
			if r.spb {
				b = o.AppendUint32(b, uint32(len(r.data)))
				b = append(b, r.data...)
				dst = genBlock(dst, o, pcapngSPBType, b)
				continue
			}
			t := genTicks(r.ts, s.ifaces[r.iface])
			if r.pb {
				b = o.AppendUint16(b, uint16(r.iface))
				b = o.AppendUint16(b, 0) // drops
				b = o.AppendUint32(b, uint32(t>>32))
				b = o.AppendUint32(b, uint32(t))
				b = o.AppendUint32(b, uint32(len(r.data)))
				b = o.AppendUint32(b, uint32(len(r.data)))
				b = append(b, r.data...)
				dst = genBlock(dst, o, pcapngPBType, b)
				continue
			}
			b = o.AppendUint32(b, uint32(r.iface))
			b = o.AppendUint32(b, uint32(t>>32))
			b = o.AppendUint32(b, uint32(t))
			b = o.AppendUint32(b, uint32(len(r.data)))
			b = o.AppendUint32(b, uint32(len(r.data)))
			b = append(b, r.data...)
			dst = genBlock(dst, o, pcapngEPBType, b)
		}
		if s.extra {
			var st []byte
			st = o.AppendUint32(st, 0)
			st = o.AppendUint64(st, 0)
			dst = genBlock(dst, o, 0x00000005, st) // interface statistics block
		}
	}
	return dst
}

// genPcapngFromPcap converts a classic pcap file (as genPcap writes it, any
// byte order, µs or ns) into a one-section, one-interface pcapng file with
// nanosecond timestamps, as `editcap -F pcapng` would.
func genPcapngFromPcap(t testing.TB, in []byte) []byte {
	t.Helper()
	r, err := newPcapReader("in", bytes.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	sec := genSection{order: binary.LittleEndian, ifaces: []genInterface{{lt: r.lt, snaplen: 262144, tsresol: 9}}}
	var rec pcapRecord
	for {
		err := r.next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sec.records = append(sec.records, genRecord{ts: rec.ts, data: bytes.Clone(rec.data)})
	}
	return genPcapng(nil, []genSection{sec})
}

// Frame builders.

// genIPv4 returns IPv4 packets carrying a UDP datagram; with mtu > 0 the
// datagram is fragmented so that no packet exceeds mtu bytes.
func genIPv4(src, dst netip.Addr, sport, dport uint16, payload []byte, ipID uint16, mtu int) [][]byte {
	udp := genUDP(sport, dport, payload)
	const hdr = 20
	maxData := len(udp)
	if mtu > 0 && hdr+len(udp) > mtu {
		maxData = (mtu - hdr) &^ 7
	}
	var pkts [][]byte
	for off := 0; off < len(udp); off += maxData {
		end := min(off+maxData, len(udp))
		frag := uint16(off / 8)
		if end < len(udp) {
			frag |= 0x2000 // MF
		}
		h := make([]byte, hdr, hdr+end-off)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(hdr+end-off))
		binary.BigEndian.PutUint16(h[4:], ipID)
		binary.BigEndian.PutUint16(h[6:], frag)
		h[8] = 64
		h[9] = 17
		s4, d4 := src.As4(), dst.As4()
		copy(h[12:], s4[:])
		copy(h[16:], d4[:])
		binary.BigEndian.PutUint16(h[10:], ^genChecksum(0, h))
		pkts = append(pkts, append(h, udp[off:end]...))
	}
	return pkts
}

// genIPv6 returns an IPv6 packet carrying a UDP datagram.
func genIPv6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udp := genUDP(sport, dport, payload)
	h := make([]byte, 40, 40+len(udp))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(udp)))
	h[6] = 17
	h[7] = 64
	s16, d16 := src.As16(), dst.As16()
	copy(h[8:], s16[:])
	copy(h[24:], d16[:])
	// UDP checksum over the pseudo-header.
	var ph []byte
	ph = append(ph, s16[:]...)
	ph = append(ph, d16[:]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(udp)))
	ph = append(ph, 0, 0, 0, 17)
	c := ^genChecksum(genChecksum(0, ph), udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return append(h, udp...)
}

// genUDP returns a UDP header and payload (checksum 0: none, for IPv4).
func genUDP(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

// genChecksum adds b to the one's-complement sum c.
func genChecksum(c uint16, b []byte) uint16 {
	s := uint32(c)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// genEtherType returns the EtherType of an IP packet.
func genEtherType(ip []byte) uint16 {
	if ip[0]>>4 == 6 {
		return 0x86dd
	}
	return 0x0800
}

// genEthernet frames ip, with VLAN tags (outermost first; 0x88a8 for the
// outer of two).
func genEthernet(ip []byte, vlans ...uint16) []byte {
	f := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2}
	for i, v := range vlans {
		tpid := uint16(0x8100)
		if len(vlans) > 1 && i == 0 {
			tpid = 0x88a8
		}
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, v)
	}
	f = binary.BigEndian.AppendUint16(f, genEtherType(ip))
	return append(f, ip...)
}

// genSLL frames ip in a Linux cooked v1 header; outgoing sets the packet
// type PACKET_OUTGOING.
func genSLL(ip []byte, outgoing bool) []byte {
	f := make([]byte, 16, 16+len(ip))
	if outgoing {
		binary.BigEndian.PutUint16(f, 4)
	}
	binary.BigEndian.PutUint16(f[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(f[4:], 6)
	copy(f[6:], []byte{2, 0, 0, 0, 0, 9})
	binary.BigEndian.PutUint16(f[14:], genEtherType(ip))
	return append(f, ip...)
}

// genSLL2 frames ip in a Linux cooked v2 header for ifindex.
func genSLL2(ip []byte, ifindex uint32, outgoing bool) []byte {
	f := make([]byte, 20, 20+len(ip))
	binary.BigEndian.PutUint16(f, genEtherType(ip))
	binary.BigEndian.PutUint32(f[4:], ifindex)
	binary.BigEndian.PutUint16(f[8:], 1)
	if outgoing {
		f[10] = 4
	}
	f[11] = 6
	copy(f[12:], []byte{2, 0, 0, 0, 0, 9})
	return append(f, ip...)
}

// genQName returns the dnstt query name for a ClientID and payload under
// domain; with mixCase, letters alternate case (0x20 encoding).
func genQName(id clientID, payload []byte, domain string, mixCase bool) string {
	raw := append(append([]byte{}, id[:]...), 0xe8)
	raw = append(raw, payload...)
	enc := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	var labels []string
	for len(enc) > 63 {
		labels = append(labels, enc[:63])
		enc = enc[63:]
	}
	labels = append(labels, enc)
	name := strings.Join(labels, ".") + "." + domain
	if mixCase {
		b := []byte(name)
		for i := range b {
			if i%2 == 0 && 'a' <= b[i] && b[i] <= 'z' {
				b[i] -= 'a' - 'A'
			}
		}
		name = string(b)
	}
	return name
}

// genDNS returns a DNS message: a query for name (type qtype, class IN)
// or, with response, an answer carrying a TXT record of txtLen bytes.
func genDNS(dnsID uint16, name string, qtype uint16, response bool, txtLen int) []byte {
	m := binary.BigEndian.AppendUint16(nil, dnsID)
	flags := uint16(0x0100)
	if response {
		flags = 0x8500
	}
	m = binary.BigEndian.AppendUint16(m, flags)
	an := uint16(0)
	if response {
		an = 1
	}
	m = binary.BigEndian.AppendUint16(m, 1)
	m = binary.BigEndian.AppendUint16(m, an)
	m = binary.BigEndian.AppendUint32(m, 0)
	for l := range strings.SplitSeq(name, ".") {
		m = append(m, byte(len(l)))
		m = append(m, l...)
	}
	m = append(m, 0)
	m = binary.BigEndian.AppendUint16(m, qtype)
	m = binary.BigEndian.AppendUint16(m, 1)
	if response {
		m = append(m, 0xc0, 12)
		m = binary.BigEndian.AppendUint16(m, 16)
		m = binary.BigEndian.AppendUint16(m, 1)
		m = binary.BigEndian.AppendUint32(m, 60)
		var rdata []byte
		for left := txtLen; left > 0; {
			n := min(left, 255)
			rdata = append(rdata, byte(n))
			rdata = append(rdata, bytes.Repeat([]byte{'x'}, n)...)
			left -= n
		}
		m = binary.BigEndian.AppendUint16(m, uint16(len(rdata)))
		m = append(m, rdata...)
	}
	return m
}

// Reader tests.

// readAllRecords reads every record of a capture.
func readAllRecords(t testing.TB, b []byte) ([]pcapRecord, *pcapReader, error) {
	t.Helper()
	r, err := newPcapReader("test.pcap", bytes.NewReader(b), nil)
	if err != nil {
		return nil, nil, err
	}
	defer r.close()
	var out []pcapRecord
	for {
		var rec pcapRecord
		err := r.next(&rec)
		if err == io.EOF {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		rec.data = bytes.Clone(rec.data)
		out = append(out, rec)
	}
}

// genFrames returns n distinct frames of increasing size.
func genFrames(n int) [][]byte {
	var f [][]byte
	for i := range n {
		f = append(f, bytes.Repeat([]byte{byte(i + 1)}, 20+i*7))
	}
	return f
}

func TestPcapReaderClassic(t *testing.T) {
	frames := genFrames(5)
	const base = int64(1795607787)*1e9 + 123456789
	var recs []genRecord
	for i, f := range frames {
		recs = append(recs, genRecord{ts: base + int64(i)*1001001, data: f})
	}
	tests := []struct {
		name  string
		order genOrder
		nano  bool
		lt    linkType
	}{
		{"microseconds little-endian", binary.LittleEndian, false, linkEthernet},
		{"microseconds big-endian", binary.BigEndian, false, linkLinuxSLL},
		{"nanoseconds little-endian", binary.LittleEndian, true, linkRaw},
		{"nanoseconds big-endian", binary.BigEndian, true, linkLinuxSLL2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r, err := readAllRecords(t, genPcap(nil, tt.order, tt.nano, tt.lt, recs))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(recs) {
				t.Fatalf("got %d records, want %d", len(got), len(recs))
			}
			if want := tt.lt == linkLinuxSLL2; r.multiInterface() != want {
				t.Errorf("multiInterface() = %v, want %v", r.multiInterface(), want)
			}
			off := int64(pcapFileHeaderLen)
			for i, g := range got {
				wantTS := recs[i].ts
				if !tt.nano {
					wantTS -= wantTS % 1000
				}
				if g.ts != wantTS || g.lt != tt.lt || g.iface != 0 || g.off != off || !bytes.Equal(g.data, recs[i].data) {
					t.Errorf("record %d = {ts %d lt %d iface %d off %d data %x}, want {ts %d lt %d iface 0 off %d data %x}",
						i, g.ts, g.lt, g.iface, g.off, g.data, wantTS, tt.lt, off, recs[i].data)
				}
				off += pcapRecordHeaderLen + int64(len(recs[i].data))
			}
		})
	}
}

func TestPcapReaderPcapng(t *testing.T) {
	frames := genFrames(8)
	const base = int64(1795607787) * 1e9
	sections := []genSection{
		{
			order: binary.LittleEndian,
			ifaces: []genInterface{
				{lt: linkEthernet, snaplen: 65535},                // microseconds by default
				{lt: linkRaw, tsresol: 9, tsoffset: 1000},         // ns, offset
				{lt: linkLinuxSLL2, tsresol: 0x80 | 20},           // 2^-20 s
				{lt: linkIPv4, tsresol: 3},                        // ms
				{lt: linkIPv6, tsresol: 12, tsoffset: 1795607000}, // ps: 64 bits hold 213 days, so an offset
			},
			records: []genRecord{
				{ts: base + 1000, iface: 0, data: frames[0]},
				{ts: base + 2001, iface: 1, data: frames[1]},
				{ts: base + 3*1953125, iface: 2, data: frames[2]}, // 2^11 units of 2^-20 s are 1953125 ns
				{iface: 0, spb: true, data: frames[3]},
				{ts: base + 5e6, iface: 3, data: frames[4]},
				{ts: base + 6007, iface: 4, data: frames[5]},
			},
			extra: true,
		},
		{
			order:   binary.BigEndian,
			ifaces:  []genInterface{{lt: linkLinuxSLL, tsresol: 9}, {lt: linkEthernet, tsresol: 6}},
			records: []genRecord{{ts: base + 7007, iface: 1, data: frames[6], pb: true}, {iface: 0, spb: true, data: frames[7]}},
		},
	}
	got, r, err := readAllRecords(t, genPcapng(nil, sections))
	if err != nil {
		t.Fatal(err)
	}
	if !r.multiInterface() {
		t.Error("multiInterface() = false for pcapng")
	}
	type want struct {
		ts    int64
		lt    linkType
		iface uint64
	}
	wants := []want{
		{base + 1000, linkEthernet, 0},
		{base + 2001, linkRaw, 1},
		{base + 3*1953125, linkLinuxSLL2, 2},
		{base + 3*1953125, linkEthernet, 0}, // simple packet block: previous time, interface 0
		{base + 5e6, linkIPv4, 3},
		{base + 6007, linkIPv6, 4},
		{base + 7000, linkEthernet, 1<<16 | 1},
		{base + 7000, linkLinuxSLL, 1 << 16},
	}
	if len(got) != len(wants) {
		t.Fatalf("got %d records, want %d", len(got), len(wants))
	}
	for i, g := range got {
		w := wants[i]
		if g.ts != w.ts || g.lt != w.lt || g.iface != w.iface || !bytes.Equal(g.data, frames[i]) {
			t.Errorf("record %d = {ts %d lt %d iface %#x data %x}, want {ts %d lt %d iface %#x data %x}",
				i, g.ts, g.lt, g.iface, g.data, w.ts, w.lt, w.iface, frames[i])
		}
	}
}

func TestPcapReaderLargeRecords(t *testing.T) {
	// Records that straddle and exceed the read chunk.
	var recs []genRecord
	for i := range 40 {
		recs = append(recs, genRecord{ts: int64(i) * 1e9, data: bytes.Repeat([]byte{byte(i)}, 1+i*6011)})
	}
	recs = append(recs, genRecord{ts: 41e9, data: bytes.Repeat([]byte{7}, pcapMaxCaptureLen)})
	file := genPcap(nil, binary.LittleEndian, true, linkRaw, recs)
	ng := genPcapng(nil, []genSection{{order: binary.BigEndian, ifaces: []genInterface{{lt: linkRaw, tsresol: 9}}, records: recs}})
	// A 3 MiB block the reader skips, larger than a chunk and its headroom.
	shb := int(binary.BigEndian.Uint32(ng[4:]))
	idb := int(binary.BigEndian.Uint32(ng[shb+4:]))
	ng = append(genBlock(append([]byte{}, ng[:shb+idb]...), binary.BigEndian, 0xbad, make([]byte, 3<<20)), ng[shb+idb:]...)
	for name, b := range map[string][]byte{"pcap": file, "pcapng": ng} {
		t.Run(name, func(t *testing.T) {
			// A source that returns a few bytes at a time, like a pipe.
			r, err := newPcapReader("pipe", &pcapTrickleReader{b: b, n: 4093}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			for i := range recs {
				var rec pcapRecord
				if err := r.next(&rec); err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if rec.ts != recs[i].ts || !bytes.Equal(rec.data, recs[i].data) {
					t.Fatalf("record %d: ts %d, %d bytes; want ts %d, %d bytes", i, rec.ts, len(rec.data), recs[i].ts, len(recs[i].data))
				}
			}
			var rec pcapRecord
			if err := r.next(&rec); err != io.EOF {
				t.Fatalf("after the last record: %v, want io.EOF", err)
			}
		})
	}
}

// pcapTrickleReader returns at most n bytes per Read.
type pcapTrickleReader struct {
	b []byte
	n int
}

func (r *pcapTrickleReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// pcapErrReader fails every read after its data.
type pcapErrReader struct{ b []byte }

func (r *pcapErrReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("input/output error")
	}
	k := copy(p, r.b)
	r.b = r.b[k:]
	return k, nil
}

func TestPcapReaderErrors(t *testing.T) {
	frames := genFrames(3)
	recs := []genRecord{{ts: 1e9, data: frames[0]}, {ts: 2e9, data: frames[1]}, {ts: 3e9, data: frames[2]}}
	good := genPcap(nil, binary.LittleEndian, false, linkEthernet, recs)
	rec1 := pcapFileHeaderLen + pcapRecordHeaderLen + len(frames[0]) // offset of record 1
	ngSec := genSection{order: binary.LittleEndian, ifaces: []genInterface{{lt: linkEthernet}}, records: recs}
	ng := genPcapng(nil, []genSection{ngSec})
	shbLen := int(binary.LittleEndian.Uint32(ng[4:]))
	idbLen := int(binary.LittleEndian.Uint32(ng[shbLen+4:]))
	epb0 := shbLen + idbLen

	patch := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	badLT := patch(good, pcapLinkTypeOff, 147) // LINKTYPE_USER0
	badIDB := bytes.Clone(ng)
	binary.LittleEndian.PutUint16(badIDB[shbLen+8:], 147)

	tests := []struct {
		name    string
		in      []byte
		src     io.Reader // instead of in
		atOpen  bool
		records int // read before the error
		off     int64
		msg     string
	}{
		{name: "empty", in: nil, atOpen: true, off: 0, msg: "empty file"},
		{name: "not pcap", in: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), atOpen: true, off: 0, msg: "not a pcap or pcapng file"},
		{name: "truncated file header", in: good[:10], atOpen: true, off: 0, msg: "truncated file header"},
		{name: "unknown link type", in: badLT, atOpen: true, off: pcapLinkTypeOff, msg: "unsupported link type 147"},
		{name: "truncated record header", in: good[:rec1+5], records: 1, off: int64(rec1), msg: "truncated record header"},
		{name: "truncated record data", in: good[:len(good)-1], records: 2, off: int64(len(good) - pcapRecordHeaderLen - len(frames[2])), msg: "truncated record"},
		{name: "absurd captured length", in: patch(good, rec1+8, 1<<30), records: 1, off: int64(rec1), msg: "corrupt record: captured length"},
		{name: "read error", src: &pcapErrReader{b: good[:rec1+3]}, records: 1, off: int64(rec1 + 3), msg: "read: input/output error"},
		{name: "pcapng bad byte-order magic", in: patch(ng, 8, 0x01020304), atOpen: false, off: 8, msg: "bad byte-order magic"},
		{name: "pcapng unknown link type", in: badIDB, off: int64(shbLen), msg: "interface 0: unsupported link type 147"},
		{name: "pcapng block length not a multiple of 4", in: patch(ng, epb0+4, 53), off: int64(epb0), msg: "corrupt block: total length 53"},
		{name: "pcapng block length too small", in: patch(ng, epb0+4, 8), off: int64(epb0), msg: "corrupt block: total length 8"},
		{name: "pcapng trailing length mismatch", in: patch(ng, epb0+int(binary.LittleEndian.Uint32(ng[epb0+4:]))-4, 99), off: int64(epb0), msg: "trailing length 99 does not match"},
		{name: "pcapng captured length over block", in: patch(ng, epb0+8+12, 4000), off: int64(epb0), msg: "captured length 4000 is over"},
		{name: "pcapng undescribed interface", in: patch(ng, epb0+8, 3), off: int64(epb0), msg: "interface 3 not described"},
		{name: "pcapng truncated block", in: ng[:len(ng)-2], records: 2, msg: "truncated block"},
		{name: "pcapng huge block", in: patch(ng, epb0+4, 1<<30), off: int64(epb0), msg: "corrupt block: total length"},
		{name: "pcapng bad version", in: func() []byte { b := bytes.Clone(ng); binary.LittleEndian.PutUint16(b[12:], 2); return b }(), off: 0, msg: "unsupported pcapng version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if src == nil {
				src = bytes.NewReader(tt.in)
			}
			r, err := newPcapReader("test.pcap", src, nil)
			if r != nil {
				defer r.close()
			}
			if tt.atOpen {
				if err == nil {
					t.Fatal("newPcapReader succeeded, want an error")
				}
			} else {
				if err != nil {
					t.Fatalf("newPcapReader: %v", err)
				}
				var rec pcapRecord
				for i := 0; ; i++ {
					if err = r.next(&rec); err != nil {
						if i != tt.records {
							t.Errorf("error after %d records, want %d", i, tt.records)
						}
						break
					}
				}
			}
			var pe *pcapError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *pcapError", err, err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), `-capture.file "test.pcap": offset `) {
				t.Errorf("error %q, want it to name the file and contain %q", err, tt.msg)
			}
			if tt.name != "pcapng truncated block" && pe.off != tt.off {
				t.Errorf("offset %d, want %d (%v)", pe.off, tt.off, err)
			}
		})
	}
}

func TestPcapngResolution(t *testing.T) {
	tests := []struct {
		name  string
		resol byte
		ts    uint64
		want  int64
	}{
		{"seconds", 0, 3, 3e9},
		{"microseconds", 6, 3, 3000},
		{"nanoseconds", 9, 3, 3},
		{"picoseconds", 12, 3999, 3},
		{"2^-0", 0x80, 2, 2e9},
		{"2^-1", 0x81, 3, 1.5e9},
		{"2^-30", 0x80 | 30, 1 << 30, 1e9},
		{"2^-63", 0x80 | 63, 1 << 63, 1e9},
		{"10^-28", 28, 1e19, 1e0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ifc pcapngInterface
			if !ifc.setResolution(tt.resol) {
				t.Fatalf("setResolution(%#x) = false", tt.resol)
			}
			if got := ifc.nanoseconds(tt.ts); got != tt.want {
				t.Errorf("nanoseconds(%d) at resolution %#x = %d, want %d", tt.ts, tt.resol, got, tt.want)
			}
		})
	}
	for _, bad := range []byte{29, 0x7f, 0x80 | 64, 0xff} {
		var ifc pcapngInterface
		if ifc.setResolution(bad) {
			t.Errorf("setResolution(%#x) = true, want false", bad)
		}
	}
}

// pcapLoopReader serves the records of a capture file endlessly: after the
// file header it repeats the record bytes.
type pcapLoopReader struct {
	head, body []byte
	off        int
}

func (l *pcapLoopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(l.head) > 0 {
			k := copy(p[n:], l.head)
			l.head = l.head[k:]
			n += k
			continue
		}
		k := copy(p[n:], l.body[l.off:])
		n += k
		l.off = (l.off + k) % len(l.body)
	}
	return n, nil
}

// genBenchCapture returns a file header and a body of n realistic records.
func genBenchCapture(ng bool, n int) (head, body []byte) {
	var recs []genRecord
	src, dst := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("192.0.2.1")
	for i := range n {
		var id clientID
		id[0] = byte(i)
		q := genDNS(uint16(i), genQName(id, make([]byte, 8), "t.example.com", false), 16, false, 0)
		recs = append(recs, genRecord{ts: int64(i) * 1e6, data: genEthernet(genIPv4(src, dst, 40000, 53, q, uint16(i), 0)[0])})
	}
	if ng {
		b := genPcapng(nil, []genSection{{order: binary.LittleEndian, ifaces: []genInterface{{lt: linkEthernet, tsresol: 9}}, records: recs}})
		shb := int(binary.LittleEndian.Uint32(b[4:]))
		idb := int(binary.LittleEndian.Uint32(b[shb+4:]))
		return b[:shb+idb], b[shb+idb:]
	}
	b := genPcap(nil, binary.LittleEndian, true, linkEthernet, recs)
	return b[:pcapFileHeaderLen], b[pcapFileHeaderLen:]
}

func TestPcapReaderAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, ng := range []bool{false, true} {
		head, body := genBenchCapture(ng, 64)
		r, err := newPcapReader("loop", &pcapLoopReader{head: head, body: body}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		var rec pcapRecord
		if n := testing.AllocsPerRun(100000, func() {
			if err := r.next(&rec); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("pcapng %v: allocs per record = %v, want 0", ng, n)
		}
	}
}

// sinkRecordLen keeps the benchmark's reads alive.
var sinkRecordLen int

func BenchmarkPcapReader(b *testing.B) {
	for _, ng := range []bool{false, true} {
		name := "pcap"
		if ng {
			name = "pcapng"
		}
		b.Run(name, func(b *testing.B) {
			head, body := genBenchCapture(ng, 1024)
			r, err := newPcapReader("loop", &pcapLoopReader{head: head, body: body}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer r.close()
			b.SetBytes(int64(len(body) / 1024))
			b.ReportAllocs()
			var rec pcapRecord
			for b.Loop() {
				if err := r.next(&rec); err != nil {
					b.Fatal(err)
				}
				sinkRecordLen += len(rec.data)
			}
		})
	}
}

func TestPcapReaderStop(t *testing.T) {
	// A source that blocks (a pipe nobody writes to any more): closing
	// stop ends the read with errPcapStopped.
	pr, pw := io.Pipe()
	defer pw.Close()
	stop := make(chan struct{})
	go func() {
		pw.Write(genPcap(nil, binary.LittleEndian, false, linkRaw, []genRecord{{ts: 1e9, data: []byte{0x45}}}))
	}()
	r, err := newPcapReader("-", pr, stop)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var rec pcapRecord
	if err := r.next(&rec); err != nil {
		t.Fatalf("first record: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.next(&rec) }()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	select {
	case err := <-done:
		if err != errPcapStopped {
			t.Errorf("after stop: %v, want errPcapStopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next still blocked 5 s after stop")
	}
}

func FuzzPcapReader(f *testing.F) {
	frames := genFrames(4)
	var recs []genRecord
	for i, fr := range frames {
		recs = append(recs, genRecord{ts: int64(i+1) * 1e9, data: fr, iface: i % 2, spb: i == 2})
	}
	f.Add(genPcap(nil, binary.LittleEndian, false, linkEthernet, recs))
	f.Add(genPcap(nil, binary.BigEndian, true, linkLinuxSLL2, recs))
	f.Add(genPcapng(nil, []genSection{
		{order: binary.LittleEndian, ifaces: []genInterface{{lt: linkEthernet}, {lt: linkRaw, tsresol: 0x80 | 20, tsoffset: 5}}, records: recs, extra: true},
		{order: binary.BigEndian, ifaces: []genInterface{{lt: linkLinuxSLL, tsresol: 9}}, records: recs[:1]},
	}))
	if b, err := os.ReadFile("testdata/pcap/visible-small.pcap"); err == nil {
		f.Add(b[:4096])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Whatever the input: no panic, and either the end of the file or
		// a *pcapError at an offset inside it.
		r, err := newPcapReader("fuzz", bytes.NewReader(b), nil)
		for err == nil {
			var rec pcapRecord
			err = r.next(&rec)
			if err == nil && (rec.off < 0 || rec.off >= int64(len(b)) || len(rec.data) > len(b)) {
				t.Fatalf("record at offset %d with %d bytes in a %d-byte file", rec.off, len(rec.data), len(b))
			}
		}
		if r != nil {
			r.close()
		}
		if err == io.EOF {
			return
		}
		var pe *pcapError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T), want a *pcapError", err, err)
		}
		if pe.off < 0 || pe.off > int64(len(b)) {
			t.Fatalf("error offset %d outside the %d-byte file: %v", pe.off, len(b), err)
		}
	})
}

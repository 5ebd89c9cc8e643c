package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// testDomain and testPort are those of the lab capture (testdata/pcap/README.md).
// The sample capture's tunnel domain and port (sampleTruth has them too).
const (
	testDomain = "t.example.com"
	testPort   = 53
	// testVayPoll is a real poll of the VayDNS sample: one 10-character
	// label, ClientID 9836.
	testVayPoll = "ta3mobas7q"
)

// testVayDomain is the VayDNS sample's domain.
var testVayDomain = vaydnsDomain(testDomain, 2, dnsTypeTXT)

// dnsttDomains returns dnstt domains of the given normalised names.
func dnsttDomains(names ...string) []tunnelDomain {
	ds := make([]tunnelDomain, len(names))
	for i, n := range names {
		ds[i] = dnsttDomain(n)
	}
	return ds
}

// vaydnsDomain returns a VayDNS domain of a normalised name, ClientID size
// and query type.
func vaydnsDomain(name string, idLen int, qtype uint16) tunnelDomain {
	return tunnelDomain{name: name, protocol: protocolVayDNS, idLen: idLen, qtype: qtype}
}

// testRecord is one record of a classic pcap file.
type testRecord struct {
	ts   int64 // Unix ns
	data []byte
}

// readTestPcap reads a classic (microsecond or nanosecond) pcap file whole:
// just enough for tests, the exporter has its own reader.
func readTestPcap(tb testing.TB, path string) (linkType, []testRecord) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 24 {
		tb.Fatalf("%s: short file header", path)
	}
	var bo binary.ByteOrder
	nano := false
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo, nano = binary.LittleEndian, m == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo, nano = binary.BigEndian, m == 0x4d3cb2a1
	default:
		tb.Fatalf("%s: not a classic pcap file (magic %#x)", path, m)
	}
	lt := linkType(bo.Uint32(b[20:]) & 0x0fffffff)
	var recs []testRecord
	for off := 24; off < len(b); {
		if len(b)-off < 16 {
			tb.Fatalf("%s: short record header at %d", path, off)
		}
		sec, frac := int64(bo.Uint32(b[off:])), int64(bo.Uint32(b[off+4:]))
		incl := int(bo.Uint32(b[off+8:]))
		off += 16
		if len(b)-off < incl {
			tb.Fatalf("%s: short record at %d", path, off)
		}
		if !nano {
			frac *= 1000
		}
		recs = append(recs, testRecord{ts: sec*1e9 + frac, data: b[off : off+incl]})
		off += incl
	}
	return lt, recs
}

// testCaptureIP returns the IP packets of the lab capture, Ethernet
// header stripped.
func testCaptureIP(tb testing.TB) [][]byte {
	tb.Helper()
	return testCaptureIPOf(tb, sampleCapture)
}

// testCaptureIPOf returns the IP packets of an Ethernet capture file.
func testCaptureIPOf(tb testing.TB, path string) [][]byte {
	tb.Helper()
	lt, recs := readTestPcap(tb, path)
	if lt != linkEthernet {
		tb.Fatalf("%s: link type %d, want %d", path, lt, linkEthernet)
	}
	pkts := make([][]byte, len(recs))
	for i, r := range recs {
		if len(r.data) < etherHeaderLen {
			tb.Fatalf("record %d: %d bytes", i, len(r.data))
		}
		pkts[i] = r.data[etherHeaderLen:]
	}
	return pkts
}

// TestDecodeCapture runs the real captures through the decoder and
// compares the totals with their independent truth files: the dnstt lab
// capture, and the VayDNS sample (2-byte ClientIDs, no marker, TXT).
func TestDecodeCapture(t *testing.T) {
	for _, c := range realCaptures {
		t.Run(c.name, func(t *testing.T) { testDecodeCapture(t, c) })
	}
}

// truthReason maps a key of a truth file's ignored_breakdown_records
// onto the first rule of SPEC section 3 its records fail: a wrong type
// comes before the domain and prefix rules.
func truthReason(key string) (ignoreReason, bool) {
	switch {
	case strings.Contains(key, "not_to_port"):
		return ignoreWrongPort, true
	case strings.Contains(key, "qtype_not_txt"), strings.Contains(key, "wrong_qtype"):
		return ignoreWrongType, true
	case strings.Contains(key, "prefix_lt"), strings.Contains(key, "prefix_not_all_base32"):
		return ignoreBadPrefix, true
	case strings.Contains(key, "not_in_domain"), strings.Contains(key, "no_prefix_label"):
		return ignoreNotTunnel, true
	}
	return 0, false
}

// testDecodeCapture is TestDecodeCapture for one capture.
func testDecodeCapture(t *testing.T, c realCapture) {
	truth := loadTruth(t, c.truth)
	dom := truth.tunnelDomain(t)
	_, recs := readTestPcap(t, c.pcap)
	if uint64(len(recs)) != truth.Packets.Total {
		t.Fatalf("records = %d, want %d", len(recs), truth.Packets.Total)
	}

	type clientTotals struct {
		queries, responses, bytesIn, bytesOut uint64
		resolvers                             map[string]bool
	}
	d := newDecoder([]tunnelDomain{dom}, testPort)
	var (
		reasons                               [ignoreReasonCount]uint64
		queries, responses, bytesIn, bytesOut uint64
		clients                               = map[clientID]*clientTotals{}
	)
	for i, r := range recs {
		var p, q dnsttPacket
		reason, ifindex := d.decodeLink(linkEthernet, r.data, &p)
		if ifindex != -1 {
			t.Errorf("record %d: ifindex = %d, want -1", i, ifindex)
		}
		if r2 := d.decodeIP(r.data[etherHeaderLen:], &q); r2 != reason {
			t.Errorf("record %d: decodeIP = %v, decodeLink = %v", i, r2, reason)
		}
		reasons[reason]++
		if reason != ignoreNone {
			continue
		}
		if !bytes.Equal(p.qname, q.qname) || p.id != q.id || p.resolver != q.resolver {
			t.Errorf("record %d: decodeIP and decodeLink disagree: %+v vs %+v", i, p, q)
		}
		if !bytes.Equal(p.id[dom.idLen:], make([]byte, clientIDLen-dom.idLen)) {
			t.Errorf("record %d: ClientID %x has bytes after its %d", i, p.id, dom.idLen)
		}
		c := clients[p.id]
		if c == nil {
			c = &clientTotals{resolvers: map[string]bool{}}
			clients[p.id] = c
		}
		c.resolvers[p.resolver.String()] = true
		if p.dir == dirQuery {
			queries++
			bytesIn += uint64(p.dnsLen)
			c.queries++
			c.bytesIn += uint64(p.dnsLen)
		} else {
			responses++
			bytesOut += uint64(p.dnsLen)
			c.responses++
			c.bytesOut += uint64(p.dnsLen)
		}
	}

	if queries != truth.Totals.Queries || responses != truth.Totals.Responses {
		t.Errorf("queries, responses = %d, %d, want %d, %d", queries, responses, truth.Totals.Queries, truth.Totals.Responses)
	}
	if bytesIn != truth.Totals.BytesIn || bytesOut != truth.Totals.BytesOut {
		t.Errorf("bytes in, out = %d, %d, want %d, %d", bytesIn, bytesOut, truth.Totals.BytesIn, truth.Totals.BytesOut)
	}
	if len(clients) != truth.Totals.DistinctClientIDs {
		t.Errorf("distinct ClientIDs = %d, want %d", len(clients), truth.Totals.DistinctClientIDs)
	}
	for hexID, want := range truth.Clients {
		raw, err := hex.DecodeString(hexID)
		if err != nil || len(raw) != dom.idLen {
			t.Fatalf("truth ClientID %q: %v", hexID, err)
		}
		var id clientID
		copy(id[:], raw)
		got := clients[id]
		if got == nil {
			t.Errorf("ClientID %s: not seen", hexID)
			continue
		}
		if got.queries != want.Queries || got.responses != want.Responses ||
			got.bytesIn != want.BytesIn || got.bytesOut != want.BytesOut {
			t.Errorf("ClientID %s: queries %d responses %d in %d out %d, want %d %d %d %d", hexID,
				got.queries, got.responses, got.bytesIn, got.bytesOut,
				want.Queries, want.Responses, want.BytesIn, want.BytesOut)
		}
		for _, r := range want.Resolvers {
			if !got.resolvers[r] || len(got.resolvers) != len(want.Resolvers) {
				t.Errorf("ClientID %s: resolvers %v, want %v", hexID, got.resolvers, want.Resolvers)
			}
		}
	}

	// The truth file's ignore breakdown, mapped onto the first rule each
	// record fails.
	want := [ignoreReasonCount]uint64{ignoreNone: truth.Packets.DnsttQueries + truth.Packets.DnsttResponses}
	sum := uint64(0)
	for k, n := range truth.Ignored {
		r, ok := truthReason(k)
		if !ok {
			t.Fatalf("truth breakdown %q: no reason for it", k)
		}
		want[r] += n
		sum += n
	}
	if sum != truth.Packets.Ignored {
		t.Fatalf("truth breakdown sums to %d, ignored = %d", sum, truth.Packets.Ignored)
	}
	if reasons != want {
		t.Errorf("reasons:")
		for r := range ignoreReasonCount {
			t.Errorf("  %-10s got %4d want %4d", ignoreReasonNames[r], reasons[r], want[r])
		}
	}
}

// TestIgnoreReasonNames checks the reason labels against SPEC section 5.
func TestIgnoreReasonNames(t *testing.T) {
	want := []string{"not_udp", "wrong_port", "fragment", "malformed", "not_query", "wrong_type", "not_tunnel", "bad_prefix"}
	if ignoreReasonNames[ignoreNone] != "" {
		t.Errorf("ignoreReasonNames[ignoreNone] = %q, want empty", ignoreReasonNames[ignoreNone])
	}
	if got := ignoreReasonNames[1:]; !slices.Equal(got, want) {
		t.Errorf("ignoreReasonNames = %q, want %q", got, want)
	}
}

// Builders of hand-made packets.

// testID is the ClientID of hand-built queries.
var testID = clientID{0x96, 0x46, 0x8e, 0xac, 0x04, 0x27, 0x5b, 0xff}

// testPrefix is a base32 query prefix as the reference client writes it:
// the ClientID, the padding marker 0xe8 and 8 bytes of padding
// (28 characters).
const testPrefix = "szdi5laee5n772aaaaaaaaaaaaaa"

// testName returns the wire form of a dotted name.
func testName(s string) []byte {
	var b []byte
	for len(s) > 0 {
		i := bytes.IndexByte([]byte(s), '.')
		if i < 0 {
			i = len(s)
		}
		b = append(b, byte(i))
		b = append(b, s[:i]...)
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return append(b, 0)
}

// testMsg returns a DNS message: header with flags and qdcount, then
// the wire name and, if qtype ≥ 0, QTYPE and QCLASS, then extra.
func testMsg(flags, qdcount uint16, name []byte, qtype, qclass int, extra ...byte) []byte {
	b := []byte{0xbe, 0xef, byte(flags >> 8), byte(flags), byte(qdcount >> 8), byte(qdcount), 0, 0, 0, 0, 0, 0}
	b = append(b, name...)
	if qtype >= 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(qtype))
		b = binary.BigEndian.AppendUint16(b, uint16(qclass))
	}
	return append(b, extra...)
}

// testQuery returns a TXT IN query for name.
func testQuery(name string) []byte { return testMsg(0x0100, 1, testName(name), 16, 1) }

// testResponse returns a TXT IN response for name.
func testResponse(name string) []byte { return testMsg(0x8400, 1, testName(name), 16, 1, 0xc0, 0x0c) }

// testUDP returns a UDP header and payload.
func testUDP(sport, dport uint16, payload []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(udpHeaderLen+len(payload)))
	b = append(b, 0, 0)
	return append(b, payload...)
}

// Addresses of hand-built packets (documentation ranges).
var (
	testV4Client = [4]byte{198, 51, 100, 10}
	testV4Server = [4]byte{192, 0, 2, 1}
	testV6Client = netip.MustParseAddr("2001:db8:1::10").As16()
	testV6Server = netip.MustParseAddr("2001:db8::1").As16()
)

// testIPv4 returns an IPv4 packet with proto, the flags/fragment field
// and options (a multiple of 4 bytes).
func testIPv4(src, dst [4]byte, proto byte, frag uint16, options []byte, payload []byte) []byte {
	ihl := ipv4MinHeaderLen + len(options)
	b := []byte{0x40 | byte(ihl/4), 0}
	b = binary.BigEndian.AppendUint16(b, uint16(ihl+len(payload)))
	b = append(b, 0x12, 0x34)
	b = binary.BigEndian.AppendUint16(b, frag)
	b = append(b, 64, proto, 0, 0)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = append(b, options...)
	return append(b, payload...)
}

// testIPv6 returns an IPv6 packet whose payload (extension headers
// included) follows a header with the given next header.
func testIPv6(src, dst [16]byte, next byte, payload []byte) []byte {
	b := []byte{0x60, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	b = append(b, next, 64)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	return append(b, payload...)
}

// testExt returns an 8-byte-unit IPv6 extension header (hop-by-hop,
// routing, destination options) of units × 8 bytes.
func testExt(next byte, units int, rest []byte) []byte {
	b := make([]byte, units*8)
	b[0], b[1] = next, byte(units-1)
	return append(b, rest...)
}

// testFragHdr returns an IPv6 fragment header: offset in 8-byte units.
func testFragHdr(next byte, offset uint16, more bool, rest []byte) []byte {
	f := offset << 3
	if more {
		f |= 1
	}
	b := []byte{next, 0, byte(f >> 8), byte(f), 0, 0, 0, 1}
	return append(b, rest...)
}

// testQ4 and friends build the common cases.
func testQ4(msg []byte) []byte {
	return testIPv4(testV4Client, testV4Server, protoUDP, 0, nil, testUDP(40000, 53, msg))
}
func testR4(msg []byte) []byte {
	return testIPv4(testV4Server, testV4Client, protoUDP, 0, nil, testUDP(53, 40000, msg))
}
func testQ6(msg []byte) []byte {
	return testIPv6(testV6Client, testV6Server, protoUDP, testUDP(40001, 53, msg))
}
func testR6(msg []byte) []byte {
	return testIPv6(testV6Server, testV6Client, protoUDP, testUDP(53, 40001, msg))
}

// withUDPLen overwrites the UDP length field of an IPv4 packet without
// options.
func withUDPLen(b []byte, n uint16) []byte {
	b = slices.Clone(b)
	binary.BigEndian.PutUint16(b[ipv4MinHeaderLen+4:], n)
	return b
}

// decodeCase is a hand-built packet and what the decoder must say of it.
type decodeCase struct {
	name    string
	pkt     []byte
	want    ignoreReason
	dir     direction
	domain  uint16
	id      clientID
	addr    string // resolver
	port    uint16 // resolver port
	dnsLen  int
	qname   string         // dotted
	domains []tunnelDomain // nil: testDomain as a dnstt domain
}

// decodeCases covers every rule of SPEC section 3 and every ignore reason.
func decodeCases() []decodeCase {
	q := testQuery(testPrefix + "." + testDomain)
	r := testResponse(testPrefix + "." + testDomain)
	name := testPrefix + "." + testDomain
	long := testPrefix + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" // 63 characters
	four := long + "." + long + "." + long + "." + long[:40]
	ok := func(c decodeCase) decodeCase {
		if c.id == (clientID{}) {
			c.id = testID
		}
		return c
	}
	v4q := func(n string, c decodeCase) decodeCase {
		msg := testQuery(n)
		c.pkt, c.addr, c.port, c.dnsLen, c.qname = testQ4(msg), "198.51.100.10", 40000, len(msg), n
		return ok(c)
	}
	cases := []decodeCase{
		ok(decodeCase{name: "ipv4 query", pkt: testQ4(q), dir: dirQuery, addr: "198.51.100.10", port: 40000, dnsLen: len(q), qname: name}),
		ok(decodeCase{name: "ipv4 response", pkt: testR4(r), dir: dirResponse, addr: "198.51.100.10", port: 40000, dnsLen: len(r), qname: name}),
		ok(decodeCase{name: "ipv6 query", pkt: testQ6(q), dir: dirQuery, addr: "2001:db8:1::10", port: 40001, dnsLen: len(q), qname: name}),
		ok(decodeCase{name: "ipv6 response", pkt: testR6(r), dir: dirResponse, addr: "2001:db8:1::10", port: 40001, dnsLen: len(r), qname: name}),
		v4q("SzDi5LaEe5N772AaaaaaaaaaaaaA.T.eXaMpLe.CoM", decodeCase{name: "0x20 mixed case"}),
		v4q("SZDI5LAEE5N772AAAAAAAAAAAAAA.T.EXAMPLE.COM", decodeCase{name: "upper case"}),
		v4q("szd.i5lae.e5n772aaa."+testDomain, decodeCase{name: "ClientID across labels"}),
		v4q("szdi5laee5n7.72aaa."+testDomain, decodeCase{name: "13th character in second label"}),
		v4q("szdi5laee5n77.2aaa."+testDomain, decodeCase{name: "label ends after 13th character"}),
		v4q(four+"."+testDomain, decodeCase{name: "four labels, 229 characters"}),
		v4q("szdi5laee5n772a."+testDomain, decodeCase{name: "15 characters"}),
		v4q("szdi5laee5n7777."+testDomain, decodeCase{name: "any byte after the ClientID"}),
		v4q(testPrefix+".example.com", decodeCase{name: "shared suffix: shorter domain", domain: 1,
			domains: dnsttDomains(testDomain, "example.com")}),
		v4q(name, decodeCase{name: "shared suffix: longest wins", domain: 1,
			domains: dnsttDomains("example.com", testDomain)}),
		v4q(name, decodeCase{name: "shared suffix: longest wins, other order", domain: 1,
			domains: dnsttDomains("com", testDomain, "example.com")}),
		v4q(testPrefix+".x.t.example.com", decodeCase{name: "shared suffix: prefix labels before the longest", domain: 0,
			domains: dnsttDomains("x.t.example.com", testDomain), id: testID, want: ignoreNone}),
		v4q(testPrefix+".t.example.com", decodeCase{name: "shorter domain with two prefix labels", domain: 1,
			domains: dnsttDomains("x.t.example.com", "example.com")}),
		v4q("szdi5laee5n76222."+testDomain, decodeCase{name: "13th character's low bit not in the ClientID"}),
		{name: "bare domain with shorter domain configured", pkt: testQ4(testQuery(testDomain)),
			domains: dnsttDomains(testDomain, "example.com"), want: ignoreBadPrefix},

		{name: "ipv4 options", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 0, []byte{1, 1, 1, 0, 7, 7, 4, 0}, testUDP(40000, 53, q)),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "198.51.100.10", port: 40000, dnsLen: len(q), qname: name},
		{name: "ethernet padding trimmed", pkt: append(testQ4(q), 0, 0, 0, 0),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "198.51.100.10", port: 40000, dnsLen: len(q), qname: name},
		{name: "ipv6 padding trimmed", pkt: append(testQ6(q), 0, 0, 0, 0),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "2001:db8:1::10", port: 40001, dnsLen: len(q), qname: name},
		{name: "ipv6 hop-by-hop, routing, destination options, AH", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop,
			testExt(ipv6Routing, 1, testExt(ipv6DestOptions, 3, testExt(ipv6AuthHeader, 2,
				append([]byte{protoUDP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, testUDP(40001, 53, q)...))))),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "2001:db8:1::10", port: 40001, dnsLen: len(q), qname: name},
		{name: "ipv6 atomic fragment", pkt: testIPv6(testV6Client, testV6Server, ipv6Fragment, testFragHdr(protoUDP, 0, false, testUDP(40001, 53, q))),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "2001:db8:1::10", port: 40001, dnsLen: len(q), qname: name},

		// Fragments.
		{name: "ipv4 first fragment, UDP length covers the datagram",
			pkt:  testIPv4(testV4Client, testV4Server, protoUDP, ipv4FlagMF, nil, testUDP(40000, 53, q)[:udpHeaderLen+60]),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "198.51.100.10", port: 40000, dnsLen: len(q), qname: name},
		{name: "ipv4 later fragment", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 10, nil, q[40:]), want: ignoreFragment},
		{name: "ipv4 last fragment", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 10|ipv4FlagMF, nil, q[40:]), want: ignoreFragment},
		{name: "ipv4 later fragment of TCP", pkt: testIPv4(testV4Client, testV4Server, 6, 10, nil, q[40:]), want: ignoreNotUDP},
		{name: "ipv6 first fragment", pkt: testIPv6(testV6Client, testV6Server, ipv6Fragment,
			testFragHdr(protoUDP, 0, true, testUDP(40001, 53, q)[:udpHeaderLen+64])),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "2001:db8:1::10", port: 40001, dnsLen: len(q), qname: name},
		{name: "ipv6 later fragment", pkt: testIPv6(testV6Client, testV6Server, ipv6Fragment, testFragHdr(protoUDP, 8, false, q[56:])),
			want: ignoreFragment},
		{name: "ipv6 later fragment after hop-by-hop", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop,
			testExt(ipv6Fragment, 1, testFragHdr(protoUDP, 8, true, q[56:]))), want: ignoreFragment},
		{name: "ipv6 later fragment of TCP", pkt: testIPv6(testV6Client, testV6Server, ipv6Fragment, testFragHdr(6, 8, false, q[56:])),
			want: ignoreNotUDP},
		{name: "unfragmented, UDP length beyond the packet", pkt: withUDPLen(testQ4(q), uint16(udpHeaderLen+len(q)+1)), want: ignoreNotUDP},

		// not_udp.
		{name: "empty", pkt: nil, want: ignoreNotUDP},
		{name: "version 5", pkt: append([]byte{0x55}, testQ4(q)[1:]...), want: ignoreNotUDP},
		{name: "ipv4 truncated header", pkt: testQ4(q)[:19], want: ignoreNotUDP},
		{name: "ipv4 IHL 4", pkt: append([]byte{0x44}, testQ4(q)[1:]...), want: ignoreNotUDP},
		{name: "ipv4 IHL beyond capture", pkt: append([]byte{0x4f}, testQ4(q)[1:30]...), want: ignoreNotUDP},
		{name: "ipv4 total length below header", pkt: func() []byte {
			b := testQ4(q)
			binary.BigEndian.PutUint16(b[2:], 19)
			return b
		}(), want: ignoreNotUDP},
		{name: "ipv4 total length cuts UDP header", pkt: func() []byte {
			b := testQ4(q)
			binary.BigEndian.PutUint16(b[2:], 24)
			return b
		}(), want: ignoreNotUDP},
		{name: "ipv4 TCP", pkt: testIPv4(testV4Client, testV4Server, 6, 0, nil, testUDP(40000, 53, q)), want: ignoreNotUDP},
		{name: "ipv4 truncated UDP header", pkt: testQ4(q)[:ipv4MinHeaderLen+7], want: ignoreNotUDP},
		{name: "UDP length 7", pkt: withUDPLen(testQ4(q), 7), want: ignoreNotUDP},
		{name: "UDP length 0", pkt: withUDPLen(testQ4(q), 0), want: ignoreNotUDP},
		{name: "ipv6 truncated header", pkt: testQ6(q)[:39], want: ignoreNotUDP},
		{name: "ipv6 jumbogram", pkt: func() []byte {
			b := testQ6(q)
			binary.BigEndian.PutUint16(b[4:], 0)
			return b
		}(), want: ignoreNotUDP},
		{name: "ipv6 ICMPv6", pkt: testIPv6(testV6Client, testV6Server, 58, testUDP(40001, 53, q)), want: ignoreNotUDP},
		{name: "ipv6 ESP", pkt: testIPv6(testV6Client, testV6Server, 50, testUDP(40001, 53, q)), want: ignoreNotUDP},
		{name: "ipv6 no next header", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop, testExt(59, 1, testUDP(40001, 53, q))), want: ignoreNotUDP},
		{name: "ipv6 truncated extension header", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop, []byte{protoUDP}), want: ignoreNotUDP},
		{name: "ipv6 extension header beyond payload", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop, testExt(protoUDP, 1, nil)[:8]), want: ignoreNotUDP},
		{name: "ipv6 extension header longer than packet", pkt: testIPv6(testV6Client, testV6Server, ipv6HopByHop, []byte{protoUDP, 200, 0, 0, 0, 0, 0, 0}), want: ignoreNotUDP},
		{name: "ipv6 too many extension headers", pkt: testIPv6(testV6Client, testV6Server, ipv6DestOptions, func() []byte {
			b := testUDP(40001, 53, q)
			b = testExt(protoUDP, 1, b)
			for range maxIPv6ExtHeaders {
				b = testExt(ipv6DestOptions, 1, b)
			}
			return b
		}()), want: ignoreNotUDP},
		{name: "ipv6 truncated fragment header", pkt: testIPv6(testV6Client, testV6Server, ipv6Fragment, []byte{protoUDP, 0, 0, 8}), want: ignoreNotUDP},

		// wrong_port.
		{name: "neither port", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 0, nil, testUDP(40000, 5353, q)), want: ignoreWrongPort},
		{name: "query from port 53 to 5353", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 0, nil, testUDP(53, 5353, q)), want: ignoreWrongPort},
		{name: "response to port 53 from 5353", pkt: testIPv4(testV4Server, testV4Client, protoUDP, 0, nil, testUDP(5353, 53, r)), want: ignoreWrongPort},
		{name: "neither port, short message", pkt: testIPv4(testV4Client, testV4Server, protoUDP, 0, nil, testUDP(40000, 5353, q[:3])), want: ignoreWrongPort},

		// malformed.
		{name: "DNS header 11 bytes", pkt: testQ4(q[:11]), want: ignoreMalformed},
		{name: "header cut by UDP length", pkt: withUDPLen(testQ4(q), udpHeaderLen+11), want: ignoreMalformed},
		{name: "name cut by UDP length", pkt: withUDPLen(testQ4(q), udpHeaderLen+30), want: ignoreMalformed},
		{name: "name cut by snap length", pkt: testQ4(q)[:ipv4MinHeaderLen+udpHeaderLen+30], want: ignoreMalformed},
		{name: "no QCLASS", pkt: testQ4(q[:len(q)-2]), want: ignoreMalformed},
		{name: "no QTYPE", pkt: testQ4(q[:len(q)-4]), want: ignoreMalformed},
		{name: "compression pointer", pkt: testQ4(testMsg(0x0100, 1, append(testName(testPrefix)[:len(testPrefix)+1], 0xc0, 12), 16, 1)), want: ignoreMalformed},
		{name: "label type 0b01", pkt: testQ4(testMsg(0x0100, 1, []byte{0x41, 'a', 0}, 16, 1)), want: ignoreMalformed},
		{name: "label type 0b10", pkt: testQ4(testMsg(0x0100, 1, []byte{0x81, 'a', 0}, 16, 1)), want: ignoreMalformed},
		{name: "label 64", pkt: testQ4(testQuery(long + "a." + testDomain)), want: ignoreMalformed},
		{name: "name 256 bytes", pkt: testQ4(testQuery(long + "." + long + "." + long + "." + long[:48] + "." + testDomain)), want: ignoreMalformed},
		{name: "name 255 bytes", pkt: testQ4(testQuery(long + "." + long + "." + long + "." + long[:47] + "." + testDomain)),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "198.51.100.10", port: 40000,
			dnsLen: len(testQuery(long + "." + long + "." + long + "." + long[:47] + "." + testDomain)),
			qname:  long + "." + long + "." + long + "." + long[:47] + "." + testDomain},
		{name: "128 one-byte labels", pkt: testQ4(testMsg(0x0100, 1, bytes.Repeat([]byte{1, 'a'}, 128), 16, 1)), want: ignoreMalformed},

		// not_query.
		{name: "opcode 4", pkt: testQ4(testMsg(0x0100|4<<11, 1, testName(name), 16, 1)), want: ignoreNotQuery},
		{name: "qdcount 0", pkt: testQ4(testMsg(0x0100, 0, testName(name), 16, 1)), want: ignoreNotQuery},
		{name: "qdcount 2", pkt: testQ4(testMsg(0x0100, 2, testName(name), 16, 1)), want: ignoreNotQuery},
		{name: "response opcode 5", pkt: testR4(testMsg(0x8000|5<<11, 1, testName(name), 16, 1)), want: ignoreNotQuery},
		{name: "not_query before malformed name", pkt: testQ4(testMsg(0x0100, 2, []byte{0xc0, 12}, 16, 1)), want: ignoreNotQuery},

		// Flags and RCODE are not checked.
		{name: "response NXDOMAIN, TC, RA", pkt: testR4(testMsg(0x8383, 1, testName(name), 16, 1)),
			want: ignoreNone, dir: dirResponse, id: testID, addr: "198.51.100.10", port: 40000, dnsLen: len(testMsg(0x8383, 1, testName(name), 16, 1)), qname: name},
		{name: "query RD=0, other counts", pkt: testQ4(testMsg(0x0000, 1, testName(name), 16, 1, 1, 2, 3)[:12+len(testName(name))+4]),
			want: ignoreNone, dir: dirQuery, id: testID, addr: "198.51.100.10", port: 40000, dnsLen: 12 + len(testName(name)) + 4, qname: name},

		// wrong_type.
		{name: "qtype A", pkt: testQ4(testMsg(0x0100, 1, testName(name), 1, 1)), want: ignoreWrongType},
		{name: "qclass CH", pkt: testQ4(testMsg(0x0100, 1, testName(name), 16, 3)), want: ignoreWrongType},
		{name: "wrong type outside the domain", pkt: testQ4(testMsg(0x0100, 1, testName("example.org"), 1, 1)), want: ignoreWrongType},

		// not_tunnel.
		{name: "other domain", pkt: testQ4(testQuery(testPrefix + ".example.org")), want: ignoreNotTunnel},
		{name: "root name", pkt: testQ4(testQuery("")), want: ignoreNotTunnel},
		{name: "bare domain", pkt: testQ4(testQuery(testDomain)), want: ignoreNotTunnel},
		{name: "domain in the middle", pkt: testQ4(testQuery("t.example.com.evil.net")), want: ignoreNotTunnel},
		{name: "partial label match", pkt: testQ4(testQuery(testPrefix + ".xt.example.com")), want: ignoreNotTunnel},
		{name: "suffix of a label", pkt: testQ4(testQuery(testPrefix + "t.example.com")), want: ignoreNotTunnel},
		{name: "fold does not match @ to `", pkt: testQ4(testQuery(testPrefix + ".t.ex@mple.com")),
			domains: dnsttDomains("t.ex`mple.com"), want: ignoreNotTunnel},

		// bad_prefix.
		{name: "14 characters", pkt: testQ4(testQuery("szdi5laee5n772." + testDomain)), want: ignoreBadPrefix},
		{name: "14 characters in two labels", pkt: testQ4(testQuery("szdi5la.ee5n772." + testDomain)), want: ignoreBadPrefix},
		{name: "padding", pkt: testQ4(testQuery("szdi5laee5n772a=." + testDomain)), want: ignoreBadPrefix},
		{name: "digit 1", pkt: testQ4(testQuery("szdi5laee5n772a1." + testDomain)), want: ignoreBadPrefix},
		{name: "digit 8", pkt: testQ4(testQuery("8zdi5laee5n772aa." + testDomain)), want: ignoreBadPrefix},
		{name: "digit 0 in a short label", pkt: testQ4(testQuery("szdi5laee5n772aa.0." + testDomain)), want: ignoreBadPrefix},
		{name: "hyphen in a long label", pkt: testQ4(testQuery(long[:40] + "-" + long[:20] + "." + testDomain)), want: ignoreBadPrefix},
		{name: "bad character in the last, overlapping word", pkt: testQ4(testQuery(long[:60] + "_" + "." + testDomain)), want: ignoreBadPrefix},
		{name: "high bit", pkt: testQ4(testQuery("szdi5laee5n772a\xe1." + testDomain)), want: ignoreBadPrefix},
		{name: "high bit, letter below", pkt: testQ4(testQuery("szdi5laee5n772a\xc1aaaaaa." + testDomain)), want: ignoreBadPrefix},
		{name: "bad character in the fourth label", pkt: testQ4(testQuery(long + "." + long + "." + long + "." + long[:30] + "!" + "." + testDomain)), want: ignoreBadPrefix},
		{name: "notbase32!", pkt: testQ4(testQuery("notbase32!." + testDomain)), want: ignoreBadPrefix},
	}
	cases = append(cases, vaydnsCases()...)
	// Every character just outside the alphabet's ranges.
	for _, c := range []byte{'1', '8', '@', '[', '`', '{', 0x7f, 0x80, 0xff, 0} {
		p := []byte(long)
		p[37] = c
		cases = append(cases, decodeCase{name: "outside the alphabet " + hex.EncodeToString([]byte{c}),
			pkt: testQ4(testQuery(string(p) + "." + testDomain)), want: ignoreBadPrefix})
	}
	return cases
}

// testVayID is the ClientID of testVayPoll (base32 "ta3mobas…": 98 36
// c7 04 12) for a ClientID size of n bytes.
func testVayID(n int) clientID {
	var id clientID
	copy(id[:n], []byte{0x98, 0x36, 0xc7, 0x04, 0x12, 0xfc}[:n])
	return id
}

// vaydnsCases are the VayDNS rules of SPEC section 3: the matched domain's
// type, ⌈8(N+1)/5⌉ characters, an N-byte ClientID, and dnstt and VayDNS
// domains on one host.
func vaydnsCases() []decodeCase {
	null := uint16(10)
	vay := []tunnelDomain{testVayDomain}
	q := func(name string, qtype uint16, c decodeCase) decodeCase {
		msg := testMsg(0x0100, 1, testName(name), int(qtype), 1)
		c.pkt = testQ4(msg)
		if c.want == ignoreNone {
			c.dir, c.addr, c.port, c.dnsLen, c.qname = dirQuery, "198.51.100.10", 40000, len(msg), name
		}
		return c
	}
	poll := testVayPoll + "." + testDomain
	mixed := []tunnelDomain{dnsttDomain(testDomain), vaydnsDomain("v.example.net", 2, dnsTypeTXT)}
	return []decodeCase{
		q(poll, dnsTypeTXT, decodeCase{name: "vaydns poll", domains: vay, id: testVayID(2)}),
		{name: "vaydns poll response", pkt: testR6(testMsg(0x8180, 1, testName(poll), dnsTypeTXT, 1)), domains: vay,
			dir: dirResponse, id: testVayID(2), addr: "2001:db8:1::10", port: 40001,
			dnsLen: len(testMsg(0x8180, 1, testName(poll), dnsTypeTXT, 1)), qname: poll},
		q("TA3M"+"obas7q."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns upper case", domains: vay, id: testVayID(2)}),
		q("ta3mo."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 5 characters", domains: vay, id: testVayID(2)}),
		q("ta.3.m.o."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns ClientID across labels", domains: vay, id: testVayID(2)}),
		q("ta3m."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 4 characters, one too few", domains: vay, want: ignoreBadPrefix}),
		q("ta.3m."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 4 characters in two labels", domains: vay, want: ignoreBadPrefix}),
		q("notbase32!."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns prefix not base32", domains: vay, want: ignoreBadPrefix}),
		q("ta3m1."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns digit 1", domains: vay, want: ignoreBadPrefix}),
		q(testDomain, dnsTypeTXT, decodeCase{name: "vaydns bare domain", domains: vay, want: ignoreNotTunnel}),
		q(poll, null, decodeCase{name: "vaydns NULL query under a TXT domain", domains: vay, want: ignoreWrongType}),
		q("ta3mobas7q.example.org", dnsTypeTXT, decodeCase{name: "vaydns other domain", domains: vay, want: ignoreNotTunnel}),

		q(poll, null, decodeCase{name: "vaydns NULL domain", id: testVayID(2),
			domains: []tunnelDomain{vaydnsDomain(testDomain, 2, null)}}),
		q(poll, dnsTypeTXT, decodeCase{name: "vaydns TXT query under a NULL domain",
			domains: []tunnelDomain{vaydnsDomain(testDomain, 2, null)}, want: ignoreWrongType}),
		q(poll, null, decodeCase{name: "vaydns NULL query under a TXT domain, NULL domain elsewhere",
			domains: []tunnelDomain{testVayDomain, vaydnsDomain("n.example.net", 2, null)}, want: ignoreWrongType}),
		q("ta3mobas7q.example.org", null, decodeCase{name: "vaydns NULL query outside, NULL domain elsewhere",
			domains: []tunnelDomain{testVayDomain, vaydnsDomain("n.example.net", 2, null)}, want: ignoreNotTunnel}),
		q("ta3mobas7q.example.org", 28, decodeCase{name: "vaydns type no domain uses, outside",
			domains: []tunnelDomain{testVayDomain, vaydnsDomain("n.example.net", 2, null)}, want: ignoreWrongType}),
		q("ta3mobas7q.n.example.net", null, decodeCase{name: "vaydns second domain", domain: 1, id: testVayID(2),
			domains: []tunnelDomain{testVayDomain, vaydnsDomain("n.example.net", 2, null)}}),

		q(poll, dnsTypeTXT, decodeCase{name: "vaydns 4-byte ClientID", id: testVayID(4),
			domains: []tunnelDomain{vaydnsDomain(testDomain, 4, dnsTypeTXT)}}),
		q("ta3mobas."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 4-byte ClientID, 8 characters", id: testVayID(4),
			domains: []tunnelDomain{vaydnsDomain(testDomain, 4, dnsTypeTXT)}}),
		q("ta3moba."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 4-byte ClientID, 7 characters, one too few",
			domains: []tunnelDomain{vaydnsDomain(testDomain, 4, dnsTypeTXT)}, want: ignoreBadPrefix}),
		q("ta3mo."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns type A domain, TXT query",
			domains: []tunnelDomain{vaydnsDomain(testDomain, 1, 1)}, want: ignoreWrongType}),
		q("ta3m."+testDomain, 1, decodeCase{name: "vaydns 1-byte ClientID, type A, 4 characters", id: testVayID(1),
			domains: []tunnelDomain{vaydnsDomain(testDomain, 1, 1)}}),
		q(testPrefix+"."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 8-byte ClientID", id: testID,
			domains: []tunnelDomain{vaydnsDomain(testDomain, 8, dnsTypeTXT)}}),
		q("szdi5laee5n772."+testDomain, dnsTypeTXT, decodeCase{name: "vaydns 8-byte ClientID, 14 characters",
			domains: []tunnelDomain{vaydnsDomain(testDomain, 8, dnsTypeTXT)}, want: ignoreBadPrefix}),

		q(testPrefix+"."+testDomain, dnsTypeTXT, decodeCase{name: "mixed host: dnstt query", id: testID, domains: mixed}),
		q("ta3mobas7q.v.example.net", dnsTypeTXT, decodeCase{name: "mixed host: vaydns poll", domain: 1, id: testVayID(2), domains: mixed}),
		q(poll, dnsTypeTXT, decodeCase{name: "mixed host: vaydns poll under the dnstt domain", domains: mixed, want: ignoreBadPrefix}),
		q("ta3mobas7q.x.v.example.net", dnsTypeTXT, decodeCase{name: "mixed host: dnstt domain under the vaydns one",
			domains: []tunnelDomain{testVayDomain, dnsttDomain("x.v.example.net"), vaydnsDomain("v.example.net", 2, dnsTypeTXT)},
			domain:  1, want: ignoreBadPrefix}),
		q(testPrefix+".x.v.example.net", dnsTypeTXT, decodeCase{name: "mixed host: longest domain wins, dnstt",
			domains: []tunnelDomain{vaydnsDomain("v.example.net", 2, dnsTypeTXT), dnsttDomain("x.v.example.net")},
			domain:  1, id: testID}),
	}
}

// TestDecodeIP runs the hand-built packets through decodeIP.
func TestDecodeIP(t *testing.T) {
	for _, tt := range decodeCases() {
		t.Run(tt.name, func(t *testing.T) {
			domains := tt.domains
			if domains == nil {
				domains = dnsttDomains(testDomain)
			}
			d := newDecoder(domains, testPort)
			var p dnsttPacket
			got := d.decodeIP(tt.pkt, &p)
			if got != tt.want {
				t.Fatalf("decodeIP(%x) = %v, want %v", tt.pkt, got, tt.want)
			}
			if got != ignoreNone {
				return
			}
			checkPacket(t, tt, &p)
		})
	}
}

// checkPacket compares a decoded packet with a case's expectations.
func checkPacket(t *testing.T, tt decodeCase, p *dnsttPacket) {
	t.Helper()
	if p.dir != tt.dir || p.domain != tt.domain || p.id != tt.id {
		t.Errorf("dir, domain, id = %v, %d, %x, want %v, %d, %x", p.dir, p.domain, p.id, tt.dir, tt.domain, tt.id)
	}
	if want := netip.MustParseAddr(tt.addr); p.resolver != want || p.resolverPort != tt.port {
		t.Errorf("resolver = %v port %d, want %v port %d", p.resolver, p.resolverPort, want, tt.port)
	}
	if p.dnsLen != tt.dnsLen || p.dnsID != 0xbeef {
		t.Errorf("dnsLen, dnsID = %d, %#x, want %d, 0xbeef", p.dnsLen, p.dnsID, tt.dnsLen)
	}
	if want := testName(tt.qname); !bytes.EqualFold(p.qname, want) {
		t.Errorf("qname = %q, want %q", p.qname, want)
	}
}

func (r ignoreReason) String() string {
	if r == ignoreNone {
		return "none"
	}
	if r < ignoreReasonCount {
		return ignoreReasonNames[r]
	}
	return "reason(" + hex.EncodeToString([]byte{byte(r)}) + ")"
}

// TestDecodeLink wraps hand-built packets in every link layer.
func TestDecodeLink(t *testing.T) {
	q := testQ4(testQuery(testPrefix + "." + testDomain))
	q6 := testQ6(testQuery(testPrefix + "." + testDomain))
	eth := func(et uint16, tags []uint16, pkt []byte) []byte {
		b := make([]byte, 12)
		for _, tag := range tags {
			b = binary.BigEndian.AppendUint16(b, tag)
			b = append(b, 0x00, 0x2a)
		}
		b = binary.BigEndian.AppendUint16(b, et)
		return append(b, pkt...)
	}
	sll := func(et uint16, pkt []byte) []byte {
		b := []byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0}
		b = binary.BigEndian.AppendUint16(b, et)
		return append(b, pkt...)
	}
	sll2 := func(et uint16, ifindex uint32, pkt []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, et)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint32(b, ifindex)
		b = append(b, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0)
		return append(b, pkt...)
	}
	many := make([]uint16, maxVLANTags+1)
	for i := range many {
		many[i] = etherType8021Q
	}
	tests := []struct {
		name    string
		lt      linkType
		b       []byte
		want    ignoreReason
		ifindex int32
	}{
		{"ethernet ipv4", linkEthernet, eth(etherTypeIPv4, nil, q), ignoreNone, -1},
		{"ethernet ipv6", linkEthernet, eth(etherTypeIPv6, nil, q6), ignoreNone, -1},
		{"ethernet 802.1Q", linkEthernet, eth(etherTypeIPv4, []uint16{etherType8021Q}, q), ignoreNone, -1},
		{"ethernet QinQ", linkEthernet, eth(etherTypeIPv6, []uint16{etherTypeQinQ, etherType8021Q}, q6), ignoreNone, -1},
		{"ethernet 0x9100", linkEthernet, eth(etherTypeIPv4, []uint16{etherTypeQinQ1, etherTypeQinQ1, etherType8021Q}, q), ignoreNone, -1},
		{"ethernet too many tags", linkEthernet, eth(etherTypeIPv4, many, q), ignoreNotUDP, -1},
		{"ethernet truncated tag", linkEthernet, eth(etherType8021Q, nil, []byte{0, 1}), ignoreNotUDP, -1},
		{"ethernet ARP", linkEthernet, eth(0x0806, nil, q), ignoreNotUDP, -1},
		{"ethernet ipv4 type, ipv6 packet", linkEthernet, eth(etherTypeIPv4, nil, q6), ignoreNotUDP, -1},
		{"ethernet ipv6 type, empty", linkEthernet, eth(etherTypeIPv6, nil, nil), ignoreNotUDP, -1},
		{"ethernet truncated", linkEthernet, eth(etherTypeIPv4, nil, nil)[:13], ignoreNotUDP, -1},
		{"ethernet padding", linkEthernet, append(eth(etherTypeIPv4, nil, q), make([]byte, 20)...), ignoreNone, -1},
		{"sll ipv4", linkLinuxSLL, sll(etherTypeIPv4, q), ignoreNone, -1},
		{"sll ipv6", linkLinuxSLL, sll(etherTypeIPv6, q6), ignoreNone, -1},
		{"sll truncated", linkLinuxSLL, sll(etherTypeIPv4, nil)[:15], ignoreNotUDP, -1},
		{"sll other protocol", linkLinuxSLL, sll(0x0806, q), ignoreNotUDP, -1},
		{"sll2 ipv4", linkLinuxSLL2, sll2(etherTypeIPv4, 7, q), ignoreNone, 7},
		{"sll2 ipv6", linkLinuxSLL2, sll2(etherTypeIPv6, 1<<20, q6), ignoreNone, 1 << 20},
		{"sll2 truncated", linkLinuxSLL2, sll2(etherTypeIPv4, 7, nil)[:19], ignoreNotUDP, -1},
		{"sll2 other protocol, ifindex kept", linkLinuxSLL2, sll2(0x0806, 3, q), ignoreNotUDP, 3},
		{"raw ipv4", linkRaw, q, ignoreNone, -1},
		{"raw ipv6", linkRaw, q6, ignoreNone, -1},
		{"LINKTYPE_IPV4", linkIPv4, q, ignoreNone, -1},
		{"LINKTYPE_IPV6", linkIPv6, q6, ignoreNone, -1},
		{"unknown link type", 147, q, ignoreNotUDP, -1},
	}
	d := newDecoder(dnsttDomains(testDomain), testPort)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p dnsttPacket
			got, ifindex := d.decodeLink(tt.lt, tt.b, &p)
			if got != tt.want || ifindex != tt.ifindex {
				t.Fatalf("decodeLink(%d, %x) = %v, %d, want %v, %d", tt.lt, tt.b, got, ifindex, tt.want, tt.ifindex)
			}
			if got == ignoreNone && p.id != testID {
				t.Errorf("id = %x, want %x", p.id, testID)
			}
		})
	}
	for _, lt := range []linkType{linkEthernet, linkRaw, linkLinuxSLL, linkIPv4, linkIPv6, linkLinuxSLL2} {
		if !knownLinkType(lt) {
			t.Errorf("knownLinkType(%d) = false", lt)
		}
	}
	if knownLinkType(147) {
		t.Errorf("knownLinkType(147) = true")
	}
}

// TestDecodeAllocs asserts zero allocations for every hand-built case and
// every packet of the lab capture.
func TestDecodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	pkts := testCaptureIP(t)
	for _, tt := range decodeCases() {
		pkts = append(pkts, tt.pkt)
	}
	d := newDecoder(dnsttDomains(testDomain, "example.com"), testPort)
	var p dnsttPacket
	if n := testing.AllocsPerRun(10, func() {
		for _, b := range pkts {
			d.decodeIP(b, &p)
			d.decodeLink(linkRaw, b, &p)
		}
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

// errNoPacket is returned by testFindPacket when nothing fits.
var errNoPacket = errors.New("no such packet in the capture")

// testFindPacket returns the first IP packet of the lab capture for which
// pick returns true.
func testFindPacket(tb testing.TB, pick func(b []byte, r ignoreReason, p *dnsttPacket) bool) ([]byte, error) {
	d := newDecoder(dnsttDomains(testDomain), testPort)
	var best []byte
	for _, b := range testCaptureIP(tb) {
		var p dnsttPacket
		if pick(b, d.decodeIP(b, &p), &p) {
			best = b
		}
	}
	if best == nil {
		return nil, errNoPacket
	}
	return best, nil
}

// testLongestQuery returns the longest real dnstt query of the capture
// over IPv4 (version 4) or IPv6 (6).
func testLongestQuery(tb testing.TB, version byte) []byte {
	var longest []byte
	b, err := testFindPacket(tb, func(b []byte, r ignoreReason, p *dnsttPacket) bool {
		if r == ignoreNone && p.dir == dirQuery && b[0]>>4 == version && len(p.qname) > len(longest) {
			longest = b
			return true
		}
		return false
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// sinkReason keeps benchmark results alive.
var sinkReason ignoreReason

// benchDecode benchmarks decodeIP on one packet.
func benchDecode(b *testing.B, pkt []byte, want ignoreReason) {
	d := newDecoder(dnsttDomains(testDomain), testPort)
	var p dnsttPacket
	if r := d.decodeIP(pkt, &p); r != want {
		b.Fatalf("decodeIP = %v, want %v", r, want)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		sinkReason = d.decodeIP(pkt, &p)
	}
}

// BenchmarkDecodeQueryIPv4 decodes the longest real IPv4 data query of the
// capture (four labels, about 230 base32 characters).
//
// It guards code shapes in dnsname.go chosen for how the Go compiler
// (1.26, amd64) allocates registers; re-check them against this benchmark
// after a Go upgrade, they may no longer pay:
//   - walkName is //go:noinline: inlined into parseMessage, the offset
//     chain it follows spilled to the stack once per label.
//   - validRegularPrefix and validPrefix copy swarBase32's constants into
//     locals and fold one word at a time through base32Lanes, which takes
//     them one by one: a struct of five is kept in memory and reloaded at
//     every use, and few live values keep the constants in registers.
//   - The prefix loops have no call or slow-path branch per word: Go's
//     calls save no registers, so a slow path in the loop made every step
//     reload its state. validPrefix XORs the marks in, which folds into
//     one instruction with its load, where masking the check's result took
//     three (load, NOT, AND; GOAMD64=v1 has no ANDN).
//   - base32Lanes uses additions only: each bound compiles to a
//     three-operand LEA, where the subtractions from a constant of
//     base32Bad needed a copy first (12 instructions per word from 16).
func BenchmarkDecodeQueryIPv4(b *testing.B) {
	benchDecode(b, testLongestQuery(b, 4), ignoreNone)
}

// BenchmarkDecodeQueryIPv6 is the same for IPv6.
func BenchmarkDecodeQueryIPv6(b *testing.B) {
	benchDecode(b, testLongestQuery(b, 6), ignoreNone)
}

// BenchmarkDecodeResponse decodes a real dnstt response.
func BenchmarkDecodeResponse(b *testing.B) {
	var longest []byte
	pkt, err := testFindPacket(b, func(pkt []byte, r ignoreReason, p *dnsttPacket) bool {
		if r == ignoreNone && p.dir == dirResponse && len(pkt) > len(longest) {
			longest = pkt
			return true
		}
		return false
	})
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, pkt, ignoreNone)
}

// BenchmarkDecodeOther decodes a real non-dnstt query (example.org A).
func BenchmarkDecodeOther(b *testing.B) {
	name := testName("example.org")
	pkt, err := testFindPacket(b, func(pkt []byte, r ignoreReason, p *dnsttPacket) bool {
		return r == ignoreWrongType && bytes.Contains(pkt, name)
	})
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, pkt, ignoreWrongType)
}

// testVayQuery returns the first real VayDNS query of the sample over
// IPv4 whose prefix has chars base32 characters.
func testVayQuery(tb testing.TB, chars int) []byte {
	d := newDecoder([]tunnelDomain{testVayDomain}, testPort)
	for _, b := range testCaptureIPOf(tb, vaydnsCapture) {
		var p dnsttPacket
		if d.decodeIP(b, &p) == ignoreNone && p.dir == dirQuery && b[0]>>4 == 4 &&
			len(p.qname)-len(testName(testDomain)) == chars+(chars+dnsMaxLabelLen-1)/dnsMaxLabelLen {
			return b
		}
	}
	tb.Fatalf("%s: no IPv4 query of %d characters", vaydnsCapture, chars)
	return nil
}

// benchDecodeVayDNS benchmarks decodeIP on one packet under the VayDNS
// sample's domain.
func benchDecodeVayDNS(b *testing.B, pkt []byte) {
	d := newDecoder([]tunnelDomain{testVayDomain}, testPort)
	var p dnsttPacket
	if r := d.decodeIP(pkt, &p); r != ignoreNone {
		b.Fatalf("decodeIP = %v, want %v", r, ignoreNone)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		sinkReason = d.decodeIP(pkt, &p)
	}
}

// BenchmarkDecodeQueryVayDNS decodes a real VayDNS data query of the
// sample: 85 base32 characters in labels of 63 and 22 (the longest the
// client's 101-octet name limit allows), 2-byte ClientID.
func BenchmarkDecodeQueryVayDNS(b *testing.B) {
	benchDecodeVayDNS(b, testVayQuery(b, 85))
}

// BenchmarkDecodeQueryVayDNSPoll decodes a real VayDNS poll: one label of
// 10 characters.
func BenchmarkDecodeQueryVayDNSPoll(b *testing.B) {
	benchDecodeVayDNS(b, testVayQuery(b, 10))
}

// BenchmarkDecodeMalformed decodes a real query whose name is cut short.
func BenchmarkDecodeMalformed(b *testing.B) {
	pkt := slices.Clone(testLongestQuery(b, 4))
	binary.BigEndian.PutUint16(pkt[ipv4MinHeaderLen+4:], udpHeaderLen+dnsHeaderLen+100)
	benchDecode(b, pkt, ignoreMalformed)
}

// FuzzDecodeIP fuzzes the whole decoder from the IP header, seeded with
// every packet of the lab capture and the hand-built cases.
func FuzzDecodeIP(f *testing.F) {
	for _, path := range []string{sampleCapture, vaydnsCapture} {
		for _, b := range testCaptureIPOf(f, path) {
			f.Add(b)
		}
	}
	for _, tt := range decodeCases() {
		f.Add(tt.pkt)
	}
	decs := []*decoder{newDecoder(fuzzDomains, testPort), newDecoder(fuzzVayDomains, testPort)}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, d := range decs {
			fuzzDecodeIP(t, d, b)
		}
	})
}

// fuzzDecodeIP checks one input of FuzzDecodeIP with one decoder.
func fuzzDecodeIP(t *testing.T, d *decoder, b []byte) {
	var p dnsttPacket
	r := d.decodeIP(b, &p)
	if r >= ignoreReasonCount {
		t.Fatalf("decodeIP(%x) = %d", b, r)
	}
	if r2, ifindex := d.decodeLink(linkRaw, b, &p); r2 != r || ifindex != -1 {
		t.Fatalf("decodeLink(raw, %x) = %v, %d, decodeIP = %v", b, r2, ifindex, r)
	}
	checkNoAllocs(t, func() { d.decodeIP(b, &p) }, "decodeIP(%x)", b)
	if r != ignoreNone {
		return
	}
	checkAccepted(t, &d.domains, &p, b)
	if p.dnsLen < dnsHeaderLen+len(p.qname)+4 {
		t.Fatalf("decodeIP(%x): dnsLen %d too short for qname %q", b, p.dnsLen, p.qname)
	}
	if v := b[0] >> 4; !p.resolver.IsValid() || p.resolver.Is4() != (v == 4) {
		t.Fatalf("decodeIP(%x): resolver %v for IP version %d", b, p.resolver, v)
	}
}

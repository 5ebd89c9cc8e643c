// Package synth generates a large, deterministic, synthetic classic-pcap
// capture (Ethernet link type) of dnstt traffic as a dnstt server host sees
// it, for the file-mode throughput benchmark of dnstt_exporter, together with
// the totals a correct file-mode run must report.
//
// The traffic follows testdata/pcap/README.md: queries from many resolvers
// (documentation addresses, IPv4 and IPv6) to 192.0.2.1 / 2001:db8::1 port 53
// whose QNAME is the lower-case unpadded base32 of ClientID + padding marker +
// payload, split in labels of at most 63 characters, under t.example.com; TXT,
// IN, EDNS(0) 4096; each answered (NOERROR, AA, same question, one TXT answer)
// a few packets later. A fraction of names has 0x20 random case, and about
// 10 % of the transactions are other DNS the exporter must ignore.
//
// With Config.VayDNSIDLen set it writes VayDNS's default format instead
// (testdata/pcap/README.md, the VayDNS section): an N-byte ClientID with no
// marker, polls of ClientID + 4 random bytes, data of ClientID + a length
// byte + payload in names of at most 101 octets, and the configured query
// type (Config.VayDNSType) in the queries and their answers.
//
// Nothing is sent anywhere: the addresses only live in the file.
package synth

import (
	"bufio"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
)

// Version changes whenever the same Config would give different bytes, so a
// kept capture is not reused across generator changes.
const Version = 2

// Domain is the tunnel domain of the generated traffic.
const Domain = domain

// Port is the dnstt server's UDP port in the generated traffic.
const Port = dnsPort

// Lengths of the headers the generator writes.
const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	dnsHeaderLen  = 12
	clientIDLen   = 8
	pcapHeaderLen = 24
	recHeaderLen  = 16
	maxLabelLen   = 63
	maxPrefixLen  = 3*maxLabelLen + 40 // the reference client's longest prefix: 63,63,63,40
	// maxVayPrefixLen is VayDNS's longest prefix: the client limits names
	// to 101 octets, which under t.example.com leaves 63,22.
	maxVayPrefixLen = maxLabelLen + 22
	vayPollLen      = 4    // random bytes after the ClientID of a VayDNS poll
	maxDNSLen       = 1232 // the reference server's default maximum response size
	optRRLen        = 11
	frameCap        = 2048
)

// DNS constants (RFC 1035, RFC 6891).
const (
	typeA    = 1
	typeNS   = 2
	typeTXT  = 16
	typeAAAA = 28
	typeOPT  = 41
	classIN  = 1
	ednsSize = 4096
	dnsPort  = 53
	mdnsPort = 5353
)

// domain is the tunnel domain, in wire format below.
const domain = "t.example.com"

// lowerBase32 is the dnstt client's encoding: RFC 4648 base32, lower case, unpadded.
var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// MAC addresses of the server and of the router in front of it.
var (
	serverMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	routerMAC = [6]byte{0x02, 0, 0, 0, 0, 0xfe}
	server4   = [4]byte{192, 0, 2, 1}
	server6   = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
)

// Config says what to generate; the zero value of a field is not a default,
// use DefaultConfig.
type Config struct {
	Packets   int     // records to write
	Seed      uint64  // the same seed and Config give the same bytes
	Clients   int     // dnstt sessions (ClientIDs)
	Resolvers int     // resolver addresses
	PPS       float64 // mean packet rate in packet time (packets/s)
	Noise     float64 // fraction of transactions that are other DNS
	Case20    float64 // fraction of names with 0x20 random case
	Nano      bool    // nanosecond timestamps instead of microsecond
	Snaplen   int     // truncate records to this many bytes; 0 keeps them whole
	Checksum  bool    // compute valid UDP checksums
	Start     int64   // Unix time of the first packet (s)
	// VayDNSIDLen is 0 for dnstt traffic, or VayDNS's ClientID size (1 to
	// 8) for VayDNS traffic in its default format, of query type
	// VayDNSType (an RFC 1035 TYPE; 0 means TXT).
	VayDNSIDLen int
	VayDNSType  uint16
}

// DefaultConfig is the benchmark's capture: 20M packets, 50,000 sessions,
// 5,000 resolvers, 200k packets/s, 10 % other DNS, 5 % 0x20 case.
func DefaultConfig() Config {
	return Config{
		Packets: 20_000_000, Seed: 1, Clients: 50_000, Resolvers: 5_000, PPS: 200_000,
		Noise: 0.10, Case20: 0.05, Checksum: true, Start: 1769299200,
	}
}

// resolver is one resolver address.
type resolver struct {
	v4   bool
	addr [16]byte // IPv4 in the first 4 bytes
}

// client is one dnstt session: its ClientID, home resolver and the packet-time
// interval(s) in which it is running.
type client struct {
	id         [clientIDLen]byte
	home       int32
	start, end int64 // ns since the first packet
	gap0, gap1 int64 // not running in [gap0, gap1)
}

// active reports whether c sends queries at t (ns since the first packet).
func (c *client) active(t int64) bool {
	return t >= c.start && t < c.end && (t < c.gap0 || t >= c.gap1)
}

// kind says what a generated packet is, for the totals.
type kind uint8

const (
	kindIgnored kind = iota
	kindQuery
	kindResponse
)

// pending is a response waiting in the reorder ring.
type pending struct {
	used  bool
	kind  kind
	len   int // frame length
	dnsN  int // DNS message length
	frame [frameCap]byte
}

// reorderSlots is how many packets a response may lag behind its query.
const reorderSlots = 64

// gen holds the generator state.
type gen struct {
	cfg       Config
	rng       *rand.Rand
	clients   []client
	resolvers []resolver
	w         *bufio.Writer
	counter   *tally.Counter
	t         int64 // ns since the first packet
	meanGap   float64
	ring      [reorderSlots]pending
	recHeader [recHeaderLen]byte
	dns       [frameCap]byte
	frame     [frameCap]byte
	name      [256]byte // QNAME in wire format
	nameLen   int
	raw       [160]byte
	b32       [256]byte
	ipID      uint16
	written   int
}

// validate checks the ranges of c.
func (c Config) validate() error {
	switch {
	case c.Packets <= 0:
		return fmt.Errorf("packets %d: must be positive", c.Packets)
	case c.Clients <= 0 || c.Clients > math.MaxInt32:
		return fmt.Errorf("clients %d: out of range", c.Clients)
	case c.Resolvers < 2 || c.Resolvers > 1<<24:
		return fmt.Errorf("resolvers %d: out of range", c.Resolvers)
	case !(c.PPS > 0):
		return fmt.Errorf("pps %v: must be positive", c.PPS)
	case !(c.Noise >= 0 && c.Noise < 1):
		return fmt.Errorf("noise %v: must be in [0, 1)", c.Noise)
	case !(c.Case20 >= 0 && c.Case20 <= 1):
		return fmt.Errorf("case20 %v: must be in [0, 1]", c.Case20)
	case c.Snaplen < 0:
		return fmt.Errorf("snaplen %d: must not be negative", c.Snaplen)
	case c.VayDNSIDLen < 0 || c.VayDNSIDLen > clientIDLen:
		return fmt.Errorf("vaydns clientid size %d: want 0 (dnstt) or 1 to 8", c.VayDNSIDLen)
	}
	return nil
}

// Generate writes the capture to w and returns its totals.
func Generate(cfg Config, w io.Writer) (tally.Totals, error) {
	if err := cfg.validate(); err != nil {
		return tally.Totals{}, err
	}
	g := &gen{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, 0x646e7374745f6765)),
		w:       bufio.NewWriterSize(w, 8<<20),
		counter: tally.NewCounter(),
		meanGap: 1e9 / cfg.PPS,
	}
	g.makeResolvers()
	g.makeClients()
	g.writeFileHeader()
	for g.written < cfg.Packets {
		slot := &g.ring[g.written%reorderSlots]
		if slot.used {
			g.emit(slot.frame[:slot.len], slot.kind, slot.dnsN, 0)
			slot.used = false
			continue
		}
		g.transaction()
	}
	if err := g.w.Flush(); err != nil {
		return tally.Totals{}, err
	}
	return g.counter.Finish(), nil
}

// makeResolvers picks the resolver addresses: up to half from the three IPv4
// documentation /24s (all hosts but the server), the rest random in 2001:db8::/32.
func (g *gen) makeResolvers() {
	var v4 []resolver
	for _, net := range [][3]byte{{198, 51, 100}, {203, 0, 113}, {192, 0, 2}} {
		for h := 1; h <= 254; h++ {
			if net == [3]byte{192, 0, 2} && h == 1 {
				continue
			}
			r := resolver{v4: true}
			copy(r.addr[:], net[:])
			r.addr[3] = byte(h)
			v4 = append(v4, r)
		}
	}
	g.rng.Shuffle(len(v4), func(i, j int) { v4[i], v4[j] = v4[j], v4[i] })
	n4 := min(len(v4), g.cfg.Resolvers/2)
	g.resolvers = append(g.resolvers, v4[:n4]...)
	seen := make(map[[16]byte]bool)
	for len(g.resolvers) < g.cfg.Resolvers {
		r := resolver{}
		copy(r.addr[:4], server6[:4])
		binary.BigEndian.PutUint32(r.addr[4:], g.rng.Uint32())
		binary.BigEndian.PutUint64(r.addr[8:], g.rng.Uint64())
		if r.addr == server6 || seen[r.addr] {
			continue
		}
		seen[r.addr] = true
		g.resolvers = append(g.resolvers, r)
	}
}

// makeClients draws the sessions: most run for the whole capture, some start
// late, some stop early and some pause for more than a window (and so count
// twice in sessions_total).
func (g *gen) makeClients() {
	span := int64(float64(g.cfg.Packets) * g.meanGap)
	n4 := 0
	for _, r := range g.resolvers {
		if r.v4 {
			n4++
		}
	}
	g.clients = make([]client, g.cfg.Clients)
	for i := range g.clients {
		c := &g.clients[i]
		binary.BigEndian.PutUint64(c.id[:], g.rng.Uint64())
		if n := g.cfg.VayDNSIDLen; n > 0 {
			clear(c.id[n:]) // the exporter keeps an N-byte ClientID so, and so does the tally
		}
		if g.rng.Float64() < 0.6 {
			c.home = int32(g.rng.IntN(n4))
		} else {
			c.home = int32(n4 + g.rng.IntN(len(g.resolvers)-n4))
		}
		c.end = math.MaxInt64
		switch p := g.rng.IntN(10); {
		case p == 7 || span < 10: // always running, as is every client of a degenerate capture
		case p == 8:
			c.start = g.rng.Int64N(span * 8 / 10)
		case p == 9:
			c.end = span/5 + g.rng.Int64N(span*8/10)
		case p == 6:
			gl := (31 + g.rng.Int64N(30)) * 1e9
			if span > gl {
				c.gap0 = g.rng.Int64N(span - gl)
				c.gap1 = c.gap0 + gl
			}
		}
	}
}

// writeFileHeader writes the classic pcap file header (little endian).
func (g *gen) writeFileHeader() {
	var h [pcapHeaderLen]byte
	magic := uint32(0xa1b2c3d4)
	if g.cfg.Nano {
		magic = 0xa1b23c4d
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	snap := uint32(262144)
	if g.cfg.Snaplen > 0 {
		snap = uint32(g.cfg.Snaplen)
	}
	binary.LittleEndian.PutUint32(h[16:], snap)
	binary.LittleEndian.PutUint32(h[20:], 1) // LINKTYPE_ETHERNET
	g.w.Write(h[:])
}

// emit writes one record at the next packet time and counts it. id is the
// ClientID of a query.
func (g *gen) emit(frame []byte, k kind, dnsN int, id uint64) {
	g.t += int64(g.rng.ExpFloat64() * g.meanGap)
	ts := g.cfg.Start*1e9 + g.t
	h := g.recHeader[:]
	binary.LittleEndian.PutUint32(h[0:], uint32(ts/1e9))
	frac := ts % 1e9
	if !g.cfg.Nano {
		frac /= 1e3
	}
	binary.LittleEndian.PutUint32(h[4:], uint32(frac))
	capLen := len(frame)
	if g.cfg.Snaplen > 0 && capLen > g.cfg.Snaplen {
		capLen = g.cfg.Snaplen
	}
	binary.LittleEndian.PutUint32(h[8:], uint32(capLen))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	g.w.Write(h)
	g.w.Write(frame[:capLen])
	g.written++
	// The counter's clock has microsecond resolution when the file has.
	g.counter.Record(ts - ts%1e9 + frac*(1e9/timeUnit(g.cfg.Nano)))
	switch k {
	case kindQuery:
		g.counter.Query(id, dnsN)
	case kindResponse:
		g.counter.Response(dnsN)
	default:
		g.counter.Ignore()
	}
}

// timeUnit is the number of timestamp fractions per second.
func timeUnit(nano bool) int64 {
	if nano {
		return 1e9
	}
	return 1e6
}

// noise kinds: other DNS the exporter must ignore (testdata/pcap/README.md).
const (
	noiseOtherZone    = iota // example.org A
	noiseApex                // t.example.com NS
	noiseQmin                // _.t.example.com A
	noiseShort               // abc.t.example.com TXT and friends
	noiseNotBase32           // notbase32!.t.example.com TXT
	noiseWrongType           // a dnstt name with QTYPE A
	noiseMiddle              // t.example.com.evil.net A
	noiseWrongPort           // a dnstt query from port 53 to 5353, unanswered
	noiseAlmostClient        // 14 base32 characters: one short of a ClientID and a byte
	noiseOtherTXT            // TXT outside the tunnel: example.org, a look-alike zone
	noiseKinds
)

// transaction generates one query (dnstt or other) and schedules its answer.
func (g *gen) transaction() {
	now := g.t
	var c *client
	for {
		c = &g.clients[g.rng.IntN(len(g.clients))]
		if c.active(now) {
			break
		}
	}
	r := &g.resolvers[c.home]
	if g.rng.IntN(10) == 0 {
		r = &g.resolvers[g.rng.IntN(len(g.resolvers))]
	}
	srcPort := uint16(1024 + g.rng.IntN(65536-1024))
	dnsID := uint16(g.rng.Uint32())
	qtype := g.tunnelType()
	dstPort := uint16(dnsPort)
	k := kindQuery
	answered := true
	rcode := 0
	aa := true
	id := binary.BigEndian.Uint64(c.id[:])

	if g.rng.Float64() < g.cfg.Noise {
		k = kindIgnored
		rcode = 3 // NXDOMAIN
		switch g.rng.IntN(noiseKinds) {
		case noiseOtherZone:
			g.setName("example.org")
			qtype, aa = typeA, false
		case noiseApex:
			g.setName(domain)
			qtype, rcode = typeNS, 0
		case noiseQmin:
			g.setName("_." + domain)
			qtype = typeA
		case noiseShort:
			if g.cfg.VayDNSIDLen > 0 {
				// A VayDNS server takes any prefix of ⌈8(N+1)/5⌉
				// base32 characters (4 at least) as its traffic.
				g.setName("abc." + domain)
			} else {
				g.setName([]string{"abc.", "abcdefgh.", "73olvgdwkq."}[g.rng.IntN(3)] + domain)
			}
		case noiseNotBase32:
			g.setName("notbase32!." + domain)
		case noiseWrongType:
			g.dnsttName(c, true)
			qtype = typeA
			if g.tunnelType() == typeA {
				qtype = typeAAAA
			}
		case noiseMiddle:
			g.setName(domain + ".evil.net")
			qtype, aa = typeA, false
		case noiseWrongPort:
			g.dnsttName(c, true)
			srcPort, dstPort, answered = dnsPort, mdnsPort, false
		case noiseAlmostClient:
			g.dnsttName(c, true)
			g.truncatePrefix(g.minChars() - 1)
		case noiseOtherTXT:
			if g.rng.IntN(2) == 0 {
				g.setName("example.org")
			} else {
				g.dnsttName(c, true)
				g.setSuffix("\x01t\x07example\x03org\x00")
			}
			aa = false
		}
	} else {
		g.dnsttName(c, g.rng.IntN(2) == 0)
	}
	if g.rng.Float64() < g.cfg.Case20 {
		g.randomCase()
	}

	// Query.
	n := g.appendQuestion(g.dns[:0], dnsID, 0x0100, qtype, 0, 1)
	n = appendOPT(n)
	qLen := len(n)
	frame := g.frame[:g.buildFrame(g.frame[:], r, true, srcPort, dstPort, n)]
	g.emit(frame, k, qLen, id)
	if !answered {
		return
	}

	// Response: same question, one TXT answer for a dnstt query.
	flags := uint16(0x8100 | rcode)
	if aa {
		flags |= 0x0400
	}
	an := uint16(0)
	if k == kindQuery {
		an = 1
	}
	n = g.appendQuestion(g.dns[:0], dnsID, flags, qtype, an, 1)
	if k == kindQuery {
		n = g.appendTXTAnswer(n, qtype)
	}
	n = appendOPT(n)
	rk := kindIgnored
	if k == kindQuery {
		rk = kindResponse
	}
	base := g.written % reorderSlots
	d := 1 + g.rng.IntN(reorderSlots-1)
	for g.ring[(base+d)%reorderSlots].used {
		d = d%reorderSlots + 1
	}
	slot := &g.ring[(base+d)%reorderSlots]
	slot.used, slot.kind, slot.dnsN = true, rk, len(n)
	slot.len = g.buildFrame(slot.frame[:], r, false, srcPort, dstPort, n)
}

// tunnelType is the query type of the tunnel's queries.
func (g *gen) tunnelType() uint16 {
	if g.cfg.VayDNSIDLen > 0 && g.cfg.VayDNSType != 0 {
		return g.cfg.VayDNSType
	}
	return typeTXT
}

// minChars is the shortest prefix the exporter counts, in base32
// characters: the ClientID and one more byte (SPEC section 3).
func (g *gen) minChars() int {
	n := clientIDLen
	if g.cfg.VayDNSIDLen > 0 {
		n = g.cfg.VayDNSIDLen
	}
	return (8*(n+1) + 4) / 5
}

// setName sets the QNAME from a dotted name.
func (g *gen) setName(s string) {
	n := 0
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '.' {
			i++
		}
		g.name[n] = byte(i)
		n++
		n += copy(g.name[n:], s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	g.name[n] = 0
	g.nameLen = n + 1
}

// dnsttName sets the QNAME of a dnstt query of client c: a poll (marker 0xe8
// and 8 bytes of padding) or a data query (marker 0xe3, 3 bytes of padding and
// a payload of up to the reference client's longest name).
func (g *gen) dnsttName(c *client, poll bool) {
	raw := g.raw[:0]
	var total int
	if n := g.cfg.VayDNSIDLen; n > 0 {
		// VayDNS: [ClientID:N][4 random bytes] for a poll,
		// [ClientID:N][length][payload] for data.
		raw = append(raw, c.id[:n]...)
		if poll {
			total = n + vayPollLen
		} else {
			maxRaw := maxVayPrefixLen * 5 / 8
			payload := 1 + g.rng.IntN(maxRaw-n-1)
			raw = append(raw, byte(payload))
			total = n + 1 + payload
		}
	} else {
		raw = append(raw, c.id[:]...)
		pad := 8
		if poll {
			raw = append(raw, 0xe8)
		} else {
			raw = append(raw, 0xe3)
			pad = 3
		}
		maxRaw := maxPrefixLen * 5 / 8
		total = len(raw) + pad
		if !poll {
			total += 1 + g.rng.IntN(maxRaw-total)
		}
	}
	for len(raw) < total {
		v := g.rng.Uint64()
		for i := 0; i < 8 && len(raw) < total; i++ {
			raw = append(raw, byte(v))
			v >>= 8
		}
	}
	chars := lowerBase32.EncodedLen(len(raw))
	lowerBase32.Encode(g.b32[:], raw)
	n := 0
	for off := 0; off < chars; off += maxLabelLen {
		l := min(maxLabelLen, chars-off)
		g.name[n] = byte(l)
		n++
		n += copy(g.name[n:], g.b32[off:off+l])
	}
	n += copy(g.name[n:], "\x01t\x07example\x03com\x00")
	g.nameLen = n
}

// truncatePrefix replaces the prefix labels of the current dnstt QNAME by
// their first chars characters, in one label.
func (g *gen) truncatePrefix(chars int) {
	const suffix = "\x01t\x07example\x03com\x00"
	tail := g.nameLen - len(suffix)
	g.name[0] = byte(chars)
	n := 1 + chars
	n += copy(g.name[n:], g.name[tail:g.nameLen])
	g.nameLen = n
}

// setSuffix replaces the tunnel domain of the current dnstt QNAME by suffix
// (wire format, same length).
func (g *gen) setSuffix(suffix string) {
	copy(g.name[g.nameLen-len(suffix):], suffix)
}

// randomCase flips the case of about half the letters of the QNAME (0x20).
func (g *gen) randomCase() {
	var bits uint64
	for i := 0; i < g.nameLen; i++ {
		if i%64 == 0 {
			bits = g.rng.Uint64()
		}
		b := g.name[i] | 0x20
		if b >= 'a' && b <= 'z' && bits&1 != 0 {
			g.name[i] ^= 0x20
		}
		bits >>= 1
	}
}

// appendQuestion appends a DNS header and the current question.
func (g *gen) appendQuestion(b []byte, id, flags, qtype, an, ar uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, an)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, ar)
	b = append(b, g.name[:g.nameLen]...)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, classIN)
}

// appendOPT appends an EDNS(0) OPT record advertising 4096 bytes.
func appendOPT(b []byte) []byte {
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, typeOPT)
	b = binary.BigEndian.AppendUint16(b, ednsSize)
	b = binary.BigEndian.AppendUint32(b, 0)
	return binary.BigEndian.AppendUint16(b, 0)
}

// appendTXTAnswer appends one answer of type qtype (name compressed to the
// question) with downstream data in TXT's character-string form: half
// small (idle polls), half up to what fits in the server's 1232-byte
// limit. (VayDNS answers in the query's type; the exporter reads no
// answer.)
func (g *gen) appendTXTAnswer(b []byte, qtype uint16) []byte {
	room := maxDNSLen - len(b) - 12 - optRRLen // 12: pointer, type, class, TTL, RDLENGTH
	room -= (room + 254) / 255                 // one length byte per character-string
	data := g.rng.IntN(64)
	if g.rng.IntN(2) == 0 {
		data = g.rng.IntN(room + 1)
	}
	rdlen := data + max(1, (data+254)/255)
	b = append(b, 0xc0, dnsHeaderLen)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, classIN)
	b = binary.BigEndian.AppendUint32(b, 60)
	b = binary.BigEndian.AppendUint16(b, uint16(rdlen))
	if data == 0 {
		return append(b, 0)
	}
	for data > 0 {
		l := min(255, data)
		b = append(b, byte(l))
		for i := 0; i < l; i += 8 {
			v := g.rng.Uint64()
			for j := i; j < min(i+8, l); j++ {
				b = append(b, byte(v))
				v >>= 8
			}
		}
		data -= l
	}
	return b
}

// buildFrame writes Ethernet, IP and UDP headers around msg into f and returns
// the frame length. toServer is a query's direction.
func (g *gen) buildFrame(f []byte, r *resolver, toServer bool, resolverPort, serverPort uint16, msg []byte) int {
	src, dst := routerMAC, serverMAC
	sport, dport := resolverPort, serverPort
	ttl := byte(57)
	if !toServer {
		src, dst = serverMAC, routerMAC
		sport, dport = serverPort, resolverPort
		ttl = 64
	}
	copy(f[0:], dst[:])
	copy(f[6:], src[:])
	udpLen := udpHeaderLen + len(msg)
	off := ethHeaderLen
	var sum uint32
	if r.v4 {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := f[off : off+ipv4HeaderLen]
		ip[0], ip[1] = 0x45, 0
		binary.BigEndian.PutUint16(ip[2:], uint16(ipv4HeaderLen+udpLen))
		g.ipID++
		binary.BigEndian.PutUint16(ip[4:], g.ipID)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = ttl, 17
		ip[10], ip[11] = 0, 0
		s, d := r.addr[:4], server4[:]
		if !toServer {
			s, d = d, s
		}
		copy(ip[12:], s)
		copy(ip[16:], d)
		binary.BigEndian.PutUint16(ip[10:], ^fold(sumBytes(0, ip)))
		sum = sumBytes(sumBytes(0, s), d)
		off += ipv4HeaderLen
	} else {
		binary.BigEndian.PutUint16(f[12:], 0x86dd)
		ip := f[off : off+ipv6HeaderLen]
		binary.BigEndian.PutUint32(ip[0:], 0x60000000)
		binary.BigEndian.PutUint16(ip[4:], uint16(udpLen))
		ip[6], ip[7] = 17, ttl
		s, d := r.addr[:], server6[:]
		if !toServer {
			s, d = d, s
		}
		copy(ip[8:], s)
		copy(ip[24:], d)
		sum = sumBytes(sumBytes(0, s), d)
		off += ipv6HeaderLen
	}
	u := f[off : off+udpHeaderLen]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(udpLen))
	u[6], u[7] = 0, 0
	copy(f[off+udpHeaderLen:], msg)
	if g.cfg.Checksum {
		sum += 17 + uint32(udpLen)
		sum = sumBytes(sum, f[off:off+udpLen])
		c := ^fold(sum)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
	return off + udpLen
}

// sumBytes adds b to a ones'-complement checksum accumulator (RFC 1071).
func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// fold folds a checksum accumulator to 16 bits.
func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

package main

// The link, IP and UDP layers of the decoder: pure functions over a captured
// packet's bytes that classify it by SPEC section 3 and hand the DNS message
// to dnsname.go.

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
)

// ignoreReason says why a packet was not counted. The zero value means the
// packet is a dnstt query or response. Reasons follow the order of the rules
// in SPEC section 3: a packet is ignored for the first rule it fails.
type ignoreReason uint8

const (
	ignoreNone      ignoreReason = iota // counted
	ignoreNotUDP                        // not IPv4/IPv6, not UDP, or a broken IP/UDP header
	ignoreWrongPort                     // neither a query to nor a response from -dnstt.port
	ignoreFragment                      // a non-first IP fragment
	ignoreMalformed                     // DNS header or question name unparsable
	ignoreNotQuery                      // OPCODE ≠ 0 or QDCOUNT ≠ 1
	ignoreWrongType                     // QCLASS ≠ IN, or QTYPE not the type of the matched domain (of any domain when none matches)
	ignoreNotTunnel                     // name not under a tunnel domain, or no prefix label
	ignoreBadPrefix                     // prefix not base32, or shorter than the ClientID and one byte (15 characters for dnstt)
	ignoreReasonCount
)

// ignoreReasonNames are the reason label values of
// dnstt_exporter_packets_ignored_total, indexed by ignoreReason.
var ignoreReasonNames = [ignoreReasonCount]string{
	ignoreNone:      "",
	ignoreNotUDP:    "not_udp",
	ignoreWrongPort: "wrong_port",
	ignoreFragment:  "fragment",
	ignoreMalformed: "malformed",
	ignoreNotQuery:  "not_query",
	ignoreWrongType: "wrong_type",
	ignoreNotTunnel: "not_tunnel",
	ignoreBadPrefix: "bad_prefix",
}

// direction tells a dnstt query (client to server) from a response.
type direction uint8

const (
	dirQuery direction = iota
	dirResponse
)

// clientIDLen is the length of a dnstt ClientID, the session identifier
// carried in the first bytes of every query name (SPEC section 2), and the
// longest VayDNS one (SPEC section 2a).
const clientIDLen = 8

// clientID is a dnstt or VayDNS session identifier. A VayDNS ClientID of
// N < 8 bytes is held in the first N bytes, the others zero.
type clientID [clientIDLen]byte

// dnsttPacket describes one counted dnstt datagram. The decoder fills it; it
// is owned by the caller and reused for every packet.
type dnsttPacket struct {
	dir          direction
	domain       uint16     // index into the configured tunnel domains
	id           clientID   // the session's ClientID
	resolver     netip.Addr // source of a query, destination of a response
	resolverPort uint16     // the resolver's UDP port
	dnsID        uint16     // DNS message ID
	dnsLen       int        // DNS message length: UDP length − 8
	qname        []byte     // question name as on the wire; aliases the input
	rcode        uint8      // a response's 4-bit header RCODE (RFC 1035 section 4.1.1); 0 for a query
}

// captureStats are the packet self-metrics, shared by every capture source.
type captureStats struct {
	received  atomic.Uint64                    // packets read, every copy
	dropped   atomic.Uint64                    // kernel drops, accumulated from PACKET_STATISTICS
	ignored   [ignoreReasonCount]atomic.Uint64 // by reason; index ignoreNone unused
	duplicate atomic.Uint64                    // copies of an already counted datagram
}

// linkType is a pcap LINKTYPE_ value: the framing of a captured record.
type linkType uint32

// Link types read from capture files (https://www.tcpdump.org/linktypes.html).
const (
	linkEthernet  linkType = 1   // LINKTYPE_ETHERNET
	linkRaw       linkType = 101 // LINKTYPE_RAW: IPv4 or IPv6 by version nibble
	linkLinuxSLL  linkType = 113 // LINKTYPE_LINUX_SLL: Linux cooked v1
	linkIPv4      linkType = 228 // LINKTYPE_IPV4
	linkIPv6      linkType = 229 // LINKTYPE_IPV6
	linkLinuxSLL2 linkType = 276 // LINKTYPE_LINUX_SLL2: Linux cooked v2, records the ifindex
)

// decoder classifies packets for one set of tunnel domains and one port.
// It is read-only after newDecoder and safe for concurrent use.
type decoder struct {
	port    uint16
	domains domainTable
}

// newDecoder returns a decoder for domains, whose names must already be
// normalised by parseDomain (lower case, no trailing dot) and unique.
func newDecoder(domains []tunnelDomain, port uint16) *decoder {
	return &decoder{port: port, domains: newDomainTable(domains)}
}

// Header sizes and field values of the layers below DNS.
const (
	ipv4MinHeaderLen = 20 // RFC 791, IHL = 5
	ipv6HeaderLen    = 40 // RFC 8200 section 3
	udpHeaderLen     = 8  // RFC 768

	// Field offsets from the start of each header. ring.go's BPF filter
	// reads the same fields.
	ipv4TotalLenOff   = 2  // RFC 791: total length
	ipv4FragOff       = 6  // flags and fragment offset
	ipv4ProtoOff      = 9  // protocol
	ipv4SrcOff        = 12 // source address
	ipv4DstOff        = 16 // destination address
	ipv6PayloadLenOff = 4  // RFC 8200 section 3: payload length
	ipv6NextOff       = 6  // next header
	ipv6SrcOff        = 8  // source address
	ipv6DstOff        = 24 // destination address
	ipv6ExtLenOff     = 1  // extension header: length, after its next header
	ipv6FragFieldOff  = 2  // fragment header: offset and flags
	udpSrcPortOff     = 0  // RFC 768
	udpDstPortOff     = 2
	udpLenOff         = 4
	dnsRcodeMask      = 0x0f // RCODE, in DNS header byte 3 (RFC 1035 section 4.1.1)

	protoUDP = 17 // IANA protocol number

	// IPv6 extension headers walked to find UDP (RFC 8200 section 4,
	// RFC 4302 for AH). ESP (50) and No Next Header (59) end the walk.
	ipv6HopByHop    = 0
	ipv6Routing     = 43
	ipv6Fragment    = 44
	ipv6AuthHeader  = 51
	ipv6DestOptions = 60
	ipv6FragHdrLen  = 8
	// maxIPv6ExtHeaders bounds the walk: real packets carry at most a few
	// (RFC 8200 section 4.1 allows each type once, destination options twice).
	maxIPv6ExtHeaders = 8

	ipv4FlagMF        = 0x2000 // more fragments, in the flags/offset field
	ipv4FragOffMask   = 0x1fff // fragment offset, 8-byte units
	ipv6FragOffMask   = 0xfff8 // fragment offset, in the fragment header's bytes 2-3
	ipv6FragMoreFlags = 0x0001 // M flag, same field

	etherHeaderLen = 14 // destination, source, EtherType
	vlanTagLen     = 4  // 802.1Q / 802.1ad tag: TCI + inner EtherType
	maxVLANTags    = 8  // bound on stacked tags (QinQ uses two)
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherType8021Q = 0x8100
	etherTypeQinQ  = 0x88a8
	etherTypeQinQ1 = 0x9100 // pre-standard 802.1ad

	sllHeaderLen   = 16 // LINKTYPE_LINUX_SLL: protocol at 14
	sllProtoOff    = 14
	sll2HeaderLen  = 20 // LINKTYPE_LINUX_SLL2: protocol at 0, ifindex at 4
	sll2IfindexOff = 4
)

// decodeIP classifies b, a packet starting at its IPv4 or IPv6 header. On
// ignoreNone it has filled p; p.qname then aliases b.
func (d *decoder) decodeIP(b []byte, p *dnsttPacket) ignoreReason {
	if len(b) == 0 {
		return ignoreNotUDP
	}
	switch b[0] >> 4 {
	case 4:
		return d.decodeIPv4(b, p)
	case 6:
		return d.decodeIPv6(b, p)
	}
	return ignoreNotUDP
}

// decodeIPv4 is decodeIP for an IPv4 header (RFC 791).
func (d *decoder) decodeIPv4(b []byte, p *dnsttPacket) ignoreReason {
	if len(b) < ipv4MinHeaderLen {
		return ignoreNotUDP
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[ipv4TotalLenOff:]))
	if ihl < ipv4MinHeaderLen || len(b) < ihl || total < ihl {
		return ignoreNotUDP
	}
	if b[ipv4ProtoOff] != protoUDP {
		return ignoreNotUDP
	}
	frag := binary.BigEndian.Uint16(b[ipv4FragOff:])
	if frag&ipv4FragOffMask != 0 {
		return ignoreFragment
	}
	if len(b) > total {
		b = b[:total] // Ethernet padding
	}
	r := d.decodeUDP(b[ihl:], total-ihl, frag&ipv4FlagMF != 0, p)
	if r != ignoreNone {
		return r
	}
	if p.dir == dirQuery {
		p.resolver = netip.AddrFrom4([4]byte(b[ipv4SrcOff:]))
	} else {
		p.resolver = netip.AddrFrom4([4]byte(b[ipv4DstOff:]))
	}
	return ignoreNone
}

// decodeIPv6 is decodeIP for an IPv6 header (RFC 8200), walking the
// extension headers that may precede UDP.
func (d *decoder) decodeIPv6(b []byte, p *dnsttPacket) ignoreReason {
	if len(b) < ipv6HeaderLen {
		return ignoreNotUDP
	}
	// A payload length of 0 is a jumbogram (RFC 2675) or carries nothing:
	// neither holds a UDP header we can use.
	end := ipv6HeaderLen + int(binary.BigEndian.Uint16(b[ipv6PayloadLenOff:]))
	if end == ipv6HeaderLen {
		return ignoreNotUDP
	}
	if len(b) > end {
		b = b[:end] // Ethernet padding
	}
	next, off, fragmented := b[ipv6NextOff], ipv6HeaderLen, false
	for range maxIPv6ExtHeaders {
		if next == protoUDP {
			break
		}
		if len(b) < off+2 {
			return ignoreNotUDP
		}
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOptions:
			next, off = b[off], off+(int(b[off+ipv6ExtLenOff])+1)*8
		case ipv6AuthHeader:
			next, off = b[off], off+(int(b[off+ipv6ExtLenOff])+2)*4
		case ipv6Fragment:
			if len(b) < off+ipv6FragHdrLen {
				return ignoreNotUDP
			}
			f := binary.BigEndian.Uint16(b[off+ipv6FragFieldOff:])
			next, off = b[off], off+ipv6FragHdrLen
			if f&ipv6FragOffMask != 0 {
				// The rest of a later fragment is payload, not headers:
				// only a fragment header naming UDP tells it is UDP.
				if next == protoUDP {
					return ignoreFragment
				}
				return ignoreNotUDP
			}
			fragmented = fragmented || f&ipv6FragMoreFlags != 0
		default: // TCP, ICMPv6, ESP, No Next Header, …
			return ignoreNotUDP
		}
	}
	if next != protoUDP || off > len(b) {
		return ignoreNotUDP
	}
	r := d.decodeUDP(b[off:], end-off, fragmented, p)
	if r != ignoreNone {
		return r
	}
	if p.dir == dirQuery {
		p.resolver = netip.AddrFrom16([16]byte(b[ipv6SrcOff:]))
	} else {
		p.resolver = netip.AddrFrom16([16]byte(b[ipv6DstOff:]))
	}
	return ignoreNone
}

// decodeUDP classifies b, the IP payload starting at the UDP header, and on
// success fills p except the resolver address. ipPayloadLen is the payload
// length the IP header states; fragmented is set for the first fragment of
// a fragmented datagram, whose UDP length covers the whole datagram.
func (d *decoder) decodeUDP(b []byte, ipPayloadLen int, fragmented bool, p *dnsttPacket) ignoreReason {
	if len(b) < udpHeaderLen {
		return ignoreNotUDP
	}
	ulen := int(binary.BigEndian.Uint16(b[udpLenOff:]))
	if ulen < udpHeaderLen || (!fragmented && ulen > ipPayloadLen) {
		return ignoreNotUDP
	}
	sport := binary.BigEndian.Uint16(b[udpSrcPortOff:])
	dport := binary.BigEndian.Uint16(b[udpDstPortOff:])
	if sport != d.port && dport != d.port {
		return ignoreWrongPort
	}
	// The DNS message length comes from the UDP header; the bytes we may
	// read are those captured of it (a snap length may cut the packet).
	dnsLen := ulen - udpHeaderLen
	msg := b[udpHeaderLen:]
	if len(msg) > dnsLen {
		msg = msg[:dnsLen]
	}
	if len(msg) < dnsHeaderLen {
		return ignoreMalformed
	}
	// The QR bit decides which definition of SPEC section 3 applies.
	if msg[2]&dnsFlagQR == 0 {
		if dport != d.port {
			return ignoreWrongPort
		}
		p.dir, p.resolverPort, p.rcode = dirQuery, sport, 0
	} else {
		if sport != d.port {
			return ignoreWrongPort
		}
		p.dir, p.resolverPort = dirResponse, dport
		p.rcode = msg[3] & dnsRcodeMask
	}
	if r := d.domains.parseMessage(msg, p); r != ignoreNone {
		return r
	}
	p.dnsLen = dnsLen
	return ignoreNone
}

// decodeLink classifies b, a captured record of link type lt. ifindex is the
// interface index recorded by the link header (Linux cooked v2), or -1.
// A truncated link header or a protocol other than IPv4/IPv6 is ignoreNotUDP.
func (d *decoder) decodeLink(lt linkType, b []byte, p *dnsttPacket) (r ignoreReason, ifindex int32) {
	switch lt {
	case linkRaw, linkIPv4, linkIPv6:
		// Dispatch on the version nibble: a LINKTYPE_IPV4 record holding
		// anything else is not worth a reason of its own.
		return d.decodeIP(b, p), -1
	case linkEthernet:
		if len(b) < etherHeaderLen {
			return ignoreNotUDP, -1
		}
		off, et := etherHeaderLen, binary.BigEndian.Uint16(b[12:14])
		for range maxVLANTags {
			if et != etherType8021Q && et != etherTypeQinQ && et != etherTypeQinQ1 {
				break
			}
			if len(b) < off+vlanTagLen {
				return ignoreNotUDP, -1
			}
			et, off = binary.BigEndian.Uint16(b[off+2:off+4]), off+vlanTagLen
		}
		return d.decodeEtherType(et, b[off:], p), -1
	case linkLinuxSLL:
		if len(b) < sllHeaderLen {
			return ignoreNotUDP, -1
		}
		et := binary.BigEndian.Uint16(b[sllProtoOff : sllProtoOff+2])
		return d.decodeEtherType(et, b[sllHeaderLen:], p), -1
	case linkLinuxSLL2:
		if len(b) < sll2HeaderLen {
			return ignoreNotUDP, -1
		}
		et := binary.BigEndian.Uint16(b[0:2])
		ifindex = int32(binary.BigEndian.Uint32(b[sll2IfindexOff : sll2IfindexOff+4]))
		return d.decodeEtherType(et, b[sll2HeaderLen:], p), ifindex
	}
	return ignoreNotUDP, -1
}

// decodeEtherType classifies b, the payload of a link header whose
// protocol field is et.
func (d *decoder) decodeEtherType(et uint16, b []byte, p *dnsttPacket) ignoreReason {
	switch et {
	case etherTypeIPv4:
		if len(b) == 0 || b[0]>>4 != 4 {
			return ignoreNotUDP
		}
		return d.decodeIPv4(b, p)
	case etherTypeIPv6:
		if len(b) == 0 || b[0]>>4 != 6 {
			return ignoreNotUDP
		}
		return d.decodeIPv6(b, p)
	}
	return ignoreNotUDP
}

// knownLinkType reports whether decodeLink understands lt.
func knownLinkType(lt linkType) bool {
	switch lt {
	case linkEthernet, linkRaw, linkLinuxSLL, linkIPv4, linkIPv6, linkLinuxSLL2:
		return true
	}
	return false
}

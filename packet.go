package main

import (
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
	ignoreWrongType                     // QTYPE ≠ TXT or QCLASS ≠ IN
	ignoreNotTunnel                     // name not under a tunnel domain, or no prefix label
	ignoreBadPrefix                     // prefix not base32 or shorter than 15 characters
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
// carried in the first bytes of every query name (SPEC section 2).
const clientIDLen = 8

// clientID is a dnstt session identifier.
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

// newDecoder returns a decoder for domains, which must already be
// normalised by parseDomain (lower case, no trailing dot).
func newDecoder(domains []string, port uint16) *decoder {
	return &decoder{port: port, domains: newDomainTable(domains)}
}

// decodeIP classifies b, a packet starting at its IPv4 or IPv6 header. On
// ignoreNone it has filled p.
func (d *decoder) decodeIP(b []byte, p *dnsttPacket) ignoreReason {
	return ignoreNotUDP // SKELETON: replaced by the decoder work
}

// decodeLink classifies b, a captured record of link type lt. ifindex is the
// interface index recorded by the link header (Linux cooked v2), or -1.
func (d *decoder) decodeLink(lt linkType, b []byte, p *dnsttPacket) (r ignoreReason, ifindex int32) {
	return ignoreNotUDP, -1 // SKELETON: replaced by the decoder work
}

// knownLinkType reports whether decodeLink understands lt.
func knownLinkType(lt linkType) bool {
	switch lt {
	case linkEthernet, linkRaw, linkLinuxSLL, linkIPv4, linkIPv6, linkLinuxSLL2:
		return true
	}
	return false
}

// dnstt_exporter is a Prometheus exporter for dnstt DNS tunnel servers.
//
// It runs beside dnstt-server, watches the host's DNS traffic passively
// through a Linux AF_PACKET socket (or reads a pcap/pcapng file), decodes the
// dnstt session ID (ClientID) from each query name and exports how many
// tunnel sessions are active, the peak, queries, bytes in and out, and
// sessions started, optionally broken down by the resolver's country and ASN.
// Metrics are served at http://127.0.0.1:9713/metrics by default.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is main without os.Exit, returning the exit code.
func run(args []string) int {
	return 0 // SKELETON: replaced by the exporter program work
}

// pipeline turns captured packets into metrics: decode, count the reason,
// drop duplicates, resolve GeoIP labels, update sessions. Capture sources
// (the live ring and the file reader) call it inline, one packet at a time.
type pipeline struct {
	dec      *decoder
	geo      *geoResolver
	sessions *sessionTable
	stats    *captureStats
	dedup    *dedupTable // nil when copies on several interfaces are impossible
}

// handleIP handles a packet that starts at its IP header, seen on interface
// iface (an ifindex when live) at now (ns on the sessions' clock).
func (pl *pipeline) handleIP(b []byte, iface uint64, now int64) {
	var p dnsttPacket
	pl.stats.received.Add(1)
	pl.count(&p, pl.dec.decodeIP(b, &p), iface, now)
}

// handleLink handles a captured record of link type lt from interface iface
// (the file's own interface number). A link header that records an
// interface (Linux cooked v2) refines it.
func (pl *pipeline) handleLink(lt linkType, b []byte, iface uint64, now int64) {
	var p dnsttPacket
	pl.stats.received.Add(1)
	r, ifindex := pl.dec.decodeLink(lt, b, &p)
	if ifindex >= 0 {
		iface = iface<<32 | uint64(uint32(ifindex))
	}
	pl.count(&p, r, iface, now)
}

// count records a decoded packet.
func (pl *pipeline) count(p *dnsttPacket, r ignoreReason, iface uint64, now int64) {
	if r != ignoreNone {
		pl.stats.ignored[r].Add(1)
		return
	}
	if pl.dedup != nil && pl.dedup.duplicate(p, iface, now) {
		pl.stats.duplicate.Add(1)
		return
	}
	g := pl.geo.lookup(p.resolver)
	if p.dir == dirQuery {
		pl.sessions.query(p, g, now)
	} else {
		pl.sessions.response(p, g, now)
	}
}

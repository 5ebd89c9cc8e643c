package main

// The per-packet hub: takes one captured record through decode, the reason
// counters, duplicates, GeoIP and sessions, for the ring and the file alike;
// with the clocks that drive it (the live monotonic clock and sweeper, the
// file's packet-time clock and its replay loops).

import (
	"bytes"
	"errors"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pipeline turns captured packets into metrics: decode, count the reason,
// drop duplicates, resolve GeoIP labels, update sessions, pending queries
// and resolvers. Capture sources (the live ring and the file reader) call
// it inline, one packet at a time.
type pipeline struct {
	// tunnels is the tunnel-domain configuration in force with its
	// decoder: one atomic load per packet, replaced whole by setDomains
	// (a SIGHUP reload of -dnstm.config).
	tunnels   atomic.Pointer[tunnelSet]
	setMu     sync.Mutex // serialises setDomains
	geo       *geoResolver
	sessions  *sessionTable
	pending   *pendingTable  // latency, unanswered queries, RCODEs (SPEC section 7)
	resolvers *resolverTable // active resolvers (SPEC section 7)
	stats     *captureStats
	dedup     *dedupTable // nil when copies on several interfaces are impossible
}

// tunnelSet is a tunnel-domain configuration: immutable once published.
//
// Domain ids (dnsttPacket.domain, the session key, the label sets) are
// stable for the life of the process: names holds every domain name
// configured since start, and a name keeps its id when its settings
// change, when it is removed (its sessions then expire normally and its
// counters stay exported, since counters must not go backwards) and when
// it comes back.
type tunnelSet struct {
	domains []tunnelDomain // in force, in configuration order (domain_info)
	names   []string       // every domain name since start, index = domain id
	dec     *decoder       // matches domains, reporting their ids; nil in exposition-only tests
}

// newTunnelSet returns the set of domains at start, ids in order, with a
// decoder for port (none when port is nil).
func newTunnelSet(domains []tunnelDomain, port *uint16) *tunnelSet {
	ts := &tunnelSet{domains: domains, names: domainNames(domains)}
	if port != nil {
		ts.dec = newDecoder(domains, *port)
	}
	return ts
}

// newPipeline builds the packet path for cfg.
func newPipeline(cfg *config, geo *geoResolver, dedup bool) *pipeline {
	pl := &pipeline{
		geo: geo,
		sessions: newSessionTable(sessionConfig{
			window:  cfg.window,
			max:     cfg.sessionsMax,
			domains: len(cfg.domains),
			geoIDs:  geo.maxIDs(),
		}),
		stats: &captureStats{},
	}
	pl.tunnels.Store(newTunnelSet(cfg.domains, &cfg.port))
	// Room for every domain id a reload can add: responseStats are
	// 256 bytes each, 64 KiB in all.
	pl.pending = newPendingTable(cfg.pendingMax, maxDomainIDs)
	pl.resolvers = newResolverTable(cfg.resolversMax, pl.sessions)
	if dedup {
		pl.dedup = newDedupTable()
	}
	return pl
}

// currentTunnels returns the tunnel set in force.
func (pl *pipeline) currentTunnels() *tunnelSet { return pl.tunnels.Load() }

// errTooManyDomains: the domain ids are used up.
var errTooManyDomains = errors.New("more than " + strconv.Itoa(maxDomainIDs) +
	" distinct tunnel domains since start: restart the exporter to count this configuration")

// setDomains makes domains (valid, unique names) the ones in force,
// keeping every known name's id and giving new names the next ones. The
// session table gains the new ids' label sets before the decoder that
// reports them is published, so a packet never carries an id without
// them. It fails, changing nothing, when the ids would pass maxDomainIDs.
func (pl *pipeline) setDomains(domains []tunnelDomain) error {
	pl.setMu.Lock()
	defer pl.setMu.Unlock()
	old := pl.tunnels.Load()
	names := slices.Clip(old.names) // appending copies: old readers keep theirs
	for i := range domains {
		if !slices.Contains(names, domains[i].name) {
			names = append(names, domains[i].name)
		}
	}
	if len(names) > maxDomainIDs {
		return errTooManyDomains
	}
	byID := make([]tunnelDomain, len(names)) // a zero entry: an id not in force
	for _, d := range domains {
		byID[slices.Index(names, d.name)] = d
	}
	pl.sessions.growDomains(len(names))
	pl.tunnels.Store(&tunnelSet{
		domains: domains,
		names:   names,
		dec:     &decoder{port: old.dec.port, domains: newDomainTable(byID)},
	})
	return nil
}

// handleIP handles a packet that starts at its IP header, seen on interface
// iface (an ifindex when live) at now (ns on the sessions' clock).
func (pl *pipeline) handleIP(b []byte, iface uint64, now int64) {
	var p dnsttPacket
	pl.count(&p, pl.tunnels.Load().dec.decodeIP(b, &p), iface, now)
}

// handleLink handles a captured record of link type lt from interface iface
// (the file's own interface number).
func (pl *pipeline) handleLink(lt linkType, b []byte, iface uint64, now int64) {
	var p dnsttPacket
	r, iface := decodeRecord(pl.tunnels.Load().dec, lt, b, iface, &p)
	pl.count(&p, r, iface, now)
}

// decodeRecord decodes a captured record of link type lt from interface
// iface into p and returns the reason and the interface identity the
// duplicate check uses: iface, refined by a link header that records an
// interface (Linux cooked v2). It is the decode step of handleLink and of
// decodeAhead; it is pure, so it may run ahead on another goroutine.
func decodeRecord(dec *decoder, lt linkType, b []byte, iface uint64, p *dnsttPacket) (ignoreReason, uint64) {
	r, ifindex := dec.decodeLink(lt, b, p)
	if ifindex >= 0 {
		iface = iface<<32 | uint64(uint32(ifindex))
	}
	return r, iface
}

// count records a received, decoded packet: the reason counter, the
// duplicate check, GeoIP and the sessions. Every capture path ends here.
func (pl *pipeline) count(p *dnsttPacket, r ignoreReason, iface uint64, now int64) {
	pl.stats.received.Add(1)
	if r != ignoreNone {
		pl.stats.ignored[r].Add(1)
		return
	}
	if pl.dedup != nil && pl.dedup.duplicate(p, iface, now) {
		pl.stats.duplicate.Add(1)
		return
	}
	g := pl.geo.lookup(p.resolver)
	a := p.resolver.As16() // converted once for both tables
	if p.dir == dirQuery {
		pl.sessions.query(p, g, now)
		pl.pending.queryAt(p, &a, now)
		pl.resolvers.queryAt(p, &a, g, now)
	} else {
		pl.sessions.response(p, g, now)
		pl.pending.responseAt(p, &a, now)
	}
}

// sweep expires sessions, pending queries and resolvers at now (ns on the
// sessions' clock) and advances tunnel time.
func (pl *pipeline) sweep(now int64) {
	pl.sessions.sweep(now)
	pl.pending.sweep(now)
	pl.resolvers.sweep(now)
}

// sweepInterval is how often sessions are expired, on the sessions' clock:
// half the 1 s of slack SPEC section 4 allows.
const sweepInterval = 500 * time.Millisecond

// replayFile replays r into pl: with decoding on a second goroutine when
// there is a second CPU, else on this one. It returns as replay does.
func replayFile(r *pcapReader, pl *pipeline, stopped *atomic.Bool) (last int64, records uint64, err error) {
	if runtime.GOMAXPROCS(0) > 1 {
		return replayParallel(r, pl, stopped)
	}
	return replay(r, pl, stopped)
}

// replay feeds every record of r to pl on the packet-time clock of SPEC
// section 4: every record moves the clock, which never goes backwards;
// sessions are swept every sweepInterval of that clock and once more at the
// last record's time. It returns that time and the number of records.
func replay(r *pcapReader, pl *pipeline, stopped *atomic.Bool) (last int64, records uint64, err error) {
	var rec pcapRecord
	clock := newPacketClock()
	for !stopped.Load() {
		if err := r.next(&rec); err != nil {
			if err == io.EOF || err == errPcapStopped {
				break
			}
			return 0, clock.records, err
		}
		pl.handleLink(rec.lt, rec.data, rec.iface, clock.advance(rec.ts, pl))
	}
	last, records = clock.finish(pl)
	return last, records, nil
}

// packetClock is the packet-time clock of file mode (SPEC section 4),
// shared by replay and replayParallel.
type packetClock struct {
	now       int64  // latest record time so far, ns
	nextSweep int64  // sweep when now reaches this
	records   uint64 // records seen
}

// newPacketClock returns a clock before any record.
func newPacketClock() packetClock {
	return packetClock{now: math.MinInt64, nextSweep: math.MinInt64}
}

// advance counts a record stamped ts, moves the clock to it unless that
// is backwards, sweeps pl when sweepInterval has passed and returns the
// clock.
func (c *packetClock) advance(ts int64, pl *pipeline) int64 {
	c.records++
	c.now = max(c.now, ts)
	if c.now >= c.nextSweep {
		pl.sweep(c.now)
		c.nextSweep = c.now + int64(sweepInterval)
	}
	return c.now
}

// finish sweeps pl once more at the last record's time and returns that
// time and the number of records; both are 0 without records.
func (c *packetClock) finish(pl *pipeline) (last int64, records uint64) {
	if c.records == 0 {
		return 0, 0
	}
	pl.sweep(c.now)
	return c.now, c.records
}

// File mode on two cores: one goroutine reads and decodes records (the
// decoder is pure and read-only) into batches, the other takes the batches
// in file order and does everything with state exactly as replay does:
// clock, sweeps, the reason counters, duplicates, GeoIP, sessions. The
// output is therefore identical to replay's (TestReplayParallel checks).
// Batches are large so that the hand-offs between the goroutines (a
// wake-up each when one waits) cost little per record.
const (
	replayBatchLen = 2048 // records per batch
	replayBatches  = 4    // batches in flight
	replayNameLen  = 255  // longest question name a counted packet has (SPEC section 3)
)

// decodedRecord is one record decoded ahead of the in-order stage.
type decodedRecord struct {
	p     dnsttPacket // p.qname points into the batch's names
	r     ignoreReason
	iface uint64 // from decodeRecord
	ts    int64
}

// decodedBatch is a batch of decoded records in file order, then the
// error that ended reading, if any (io.EOF at the end).
type decodedBatch struct {
	recs  [replayBatchLen]decodedRecord
	names []byte // question names of the counted records, copied: the read buffer moves on
	n     int
	err   error
}

// replayParallel is replay with decoding on another goroutine.
func replayParallel(r *pcapReader, pl *pipeline, stopped *atomic.Bool) (last int64, records uint64, err error) {
	free := make(chan *decodedBatch, replayBatches)
	full := make(chan *decodedBatch, replayBatches)
	quit := make(chan struct{})
	defer close(quit)
	for range replayBatches {
		free <- &decodedBatch{names: make([]byte, 0, replayBatchLen*replayNameLen)}
	}
	go decodeAhead(r, pl.tunnels.Load().dec, free, full, quit, stopped) // file mode: no reloads
	clock := newPacketClock()
	for {
		b := <-full
		for i := range b.recs[:b.n] {
			d := &b.recs[i]
			pl.count(&d.p, d.r, d.iface, clock.advance(d.ts, pl))
		}
		err := b.err
		free <- b
		if err == io.EOF || err == errPcapStopped || (err == nil && stopped.Load()) {
			break
		}
		if err != nil {
			return 0, clock.records, err
		}
	}
	last, records = clock.finish(pl)
	return last, records, nil
}

// decodeAhead reads and decodes records into batches from free and sends
// them on full, until reading ends (the last batch carries the error),
// stopped is set or quit closes.
func decodeAhead(r *pcapReader, dec *decoder, free <-chan *decodedBatch, full chan<- *decodedBatch, quit <-chan struct{}, stopped *atomic.Bool) {
	var rec pcapRecord
	for {
		var b *decodedBatch
		select {
		case b = <-free:
		case <-quit:
			return
		}
		b.n, b.err, b.names = 0, nil, b.names[:0]
		for b.n < replayBatchLen {
			if stopped.Load() {
				b.err = errPcapStopped
				break
			}
			if err := r.next(&rec); err != nil {
				b.err = err
				break
			}
			d := &b.recs[b.n]
			d.p = dnsttPacket{}
			d.r, d.iface = decodeRecord(dec, rec.lt, rec.data, rec.iface, &d.p)
			d.ts = rec.ts
			switch {
			case d.r != ignoreNone:
				d.p.qname = nil
			case len(d.p.qname) <= replayNameLen:
				// names has room for replayNameLen per record: no growth.
				at := len(b.names)
				b.names = append(b.names, d.p.qname...)
				d.p.qname = b.names[at:len(b.names):len(b.names)]
			default:
				d.p.qname = bytes.Clone(d.p.qname) // longer than SPEC section 3 allows: never
			}
			b.n++
		}
		select {
		case full <- b:
		case <-quit:
			return
		}
		if b.err != nil {
			return
		}
	}
}

// monoClock is the sessions' clock when capturing live: monotonic ns since
// an origin one hour before the process started, so that values are never
// near zero. The live capture and the sweeper share one monoClock.
type monoClock struct {
	start time.Time // holds a monotonic reading
}

// monoClockBase keeps the clock's values away from zero.
const monoClockBase = int64(time.Hour)

// newMonoClock returns a clock started now.
func newMonoClock() monoClock { return monoClock{start: time.Now()} }

// now returns the clock's current value in ns.
func (c monoClock) now() int64 { return int64(time.Since(c.start)) + monoClockBase }

// sweepLoop sweeps pl every sweepInterval on clock until stop.
func sweepLoop(pl *pipeline, clock monoClock, stop <-chan struct{}) {
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			pl.sweep(clock.now())
		case <-stop:
			return
		}
	}
}

package main

import "time"

// sessionConfig sizes a sessionTable.
type sessionConfig struct {
	window  time.Duration // -dnstt.window: activity window
	max     int           // -sessions.max: tracked sessions cap
	domains int           // number of configured tunnel domains
	geoIDs  int           // number of geoIDs (geoResolver.maxIDs)
}

// sessionTable tracks dnstt sessions and the per-label-set dnstt counters.
// A label set is (domain, geoID).
type sessionTable struct {
	cfg sessionConfig
}

// newSessionTable returns an empty table.
func newSessionTable(cfg sessionConfig) *sessionTable {
	return &sessionTable{cfg: cfg}
}

// query records a dnstt query at now (ns on the table's clock: monotonic
// when live, packet time in file mode) from a resolver of geoID g.
func (t *sessionTable) query(p *dnsttPacket, g geoID, now int64) {}

// response records a dnstt response at now to a resolver of geoID g.
func (t *sessionTable) response(p *dnsttPacket, g geoID, now int64) {}

// sweep expires sessions whose latest query is older than the window.
func (t *sessionTable) sweep(now int64) {}

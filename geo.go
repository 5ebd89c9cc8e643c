package main

import (
	"net/netip"
	"sync/atomic"
)

// geoID identifies an interned (country, asn) label combination. 0 is the
// unknown combination (country ZZ, asn 0) and the only id without GeoIP.
type geoID uint16

// geoConfig is what the GeoIP part takes from the command line.
type geoConfig struct {
	countryPath  string // -geoip.country-database, "" = no country label
	asnPath      string // -geoip.asn-database, "" = no asn label
	maxLabelSets int    // -geoip.max-label-sets
}

// geoDatabase indexes per-database self-metrics.
type geoDatabase uint8

const (
	geoCountry geoDatabase = iota
	geoASN
	geoDatabaseCount
)

// geoDatabaseNames are the database label values of the GeoIP self-metrics.
var geoDatabaseNames = [geoDatabaseCount]string{geoCountry: "country", geoASN: "asn"}

// geoStats are the GeoIP self-metrics.
type geoStats struct {
	errors         [geoDatabaseCount]atomic.Uint64 // failed lookups
	reloadFailures [geoDatabaseCount]atomic.Uint64 // SIGHUP reloads that kept the old file
	buildTime      [geoDatabaseCount]atomic.Int64  // loaded database build time, Unix seconds; 0 = none
	folded         atomic.Uint64                   // lookups folded by the -geoip.max-label-sets cap
}

// geoResolver maps resolver addresses to geoIDs. A nil *geoResolver means
// GeoIP is off: every address is geoID 0 and no label is exported.
type geoResolver struct {
	stats geoStats
}

// openGeo opens the configured databases. With neither path set it returns
// nil, nil.
func openGeo(cfg geoConfig) (*geoResolver, error) {
	return nil, nil // SKELETON: replaced by the GeoIP work
}

// lookup returns the geoID of addr. It is on the packet path: a cache hit
// must not allocate. Safe for concurrent use; nil receiver returns 0.
func (g *geoResolver) lookup(addr netip.Addr) geoID {
	return 0
}

// labels returns the label values of id. ok is false for the labels the
// configuration does not export (country without a country database, …).
func (g *geoResolver) labels(id geoID) (country string, hasCountry bool, asn string, hasASN bool) {
	return "", false, "", false
}

// maxIDs is the number of distinct geoIDs lookup can return (1 when nil).
func (g *geoResolver) maxIDs() int {
	return 1
}

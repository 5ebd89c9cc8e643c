package main

// GeoIP: opens the MaxMind-format databases, maps a resolver address to an
// interned (country, asn) label set through a bounded cache, and reloads the
// databases on request. It knows nothing of sessions.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// geoID identifies an interned (country, asn) label combination. 0 is the
// unknown combination (country ZZ, asn 0) and the only id without GeoIP.
// Ids are dense, handed out in first-seen order, and never renumbered, not
// even by a reload.
type geoID uint16

// geoConfig is what the GeoIP part takes from the command line.
type geoConfig struct {
	countryPath  string // -geoip.country-database, "" = no country label
	asnPath      string // -geoip.asn-database, "" = no asn label
	maxLabelSets int    // -geoip.max-label-sets; 0 = geoDefaultMaxLabelSets
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

// geoDatabaseFlags name the flag of each database in errors and logs.
var geoDatabaseFlags = [geoDatabaseCount]string{
	geoCountry: "-geoip.country-database",
	geoASN:     "-geoip.asn-database",
}

const (
	// geoDefaultMaxLabelSets is the default of -geoip.max-label-sets.
	geoDefaultMaxLabelSets = 5000

	// geoCountryCodes is the number of two-letter codes (ZZ included). With
	// a country database this many ids are reserved beyond
	// -geoip.max-label-sets, so the (country, 0) set a folded lookup goes to
	// can always be created and per-country sums stay exact past the cap.
	geoCountryCodes = 26 * 26

	// geoMaxLabelSetsLimit keeps maxIDs within the geoID range.
	geoMaxLabelSetsLimit = 1<<16 - geoCountryCodes

	// geoCacheBits sizes the address cache: 1<<16 entries of 32 bytes is
	// 2 MiB, far more resolvers than a dnstt server sees, so real traffic
	// stays at the hit cost and spoofed sources only cost misses.
	geoCacheBits = 16
	geoCacheSize = 1 << geoCacheBits

	// geoRecordCacheMax bounds each database's record-offset cache; when it
	// is full it is emptied and refilled. GeoLite2-Country has a few hundred
	// distinct records, GeoLite2-ASN tens of thousands.
	geoRecordCacheMax = 1 << 16

	// geoProbeRecords is how many records are inspected to learn the shape
	// of a database whose database_type is not one geoTypeCaps knows.
	geoProbeRecords = 1024

	// geoMaxFileSize bounds the database file read into memory. The
	// largest MaxMind product files are a few hundred MB.
	geoMaxFileSize = 1 << 30

	// geoIPv4Len and geoIPv6Len are the byte lengths of IPv4 and IPv6 addresses.
	geoIPv4Len = 4
	geoIPv6Len = 16

	// geoValFolded marks a cached geoID that was folded by the cap, so
	// hits count in stats.folded too; the generation is above it.
	geoValFolded   = 1 << 16
	geoValGenShift = 17
)

// Errors of reading a database file.
var (
	errGeoTooLarge   = errors.New("file too large for a GeoIP database") // over geoMaxFileSize
	errGeoNotRegular = errors.New("not a regular file")
	errGeoEmpty      = errors.New("file is empty")
)

// geoUnknownCountry is the country of an address without one (SPEC §5).
var geoUnknownCountry = [2]byte{'Z', 'Z'}

// geoStats are the GeoIP self-metrics.
type geoStats struct {
	errors         [geoDatabaseCount]atomic.Uint64 // failed lookups
	reloadFailures [geoDatabaseCount]atomic.Uint64 // SIGHUP reloads that kept the old file
	buildTime      [geoDatabaseCount]atomic.Int64  // loaded database build time, Unix seconds; 0 = none
	folded         atomic.Uint64                   // lookups folded by the -geoip.max-label-sets cap
}

// geoSchema is how a database's records spell country and ASN.
type geoSchema uint8

const (
	// geoSchemaMaxMind is MaxMind's and DB-IP's: country.iso_code and
	// autonomous_system_number (uint32).
	geoSchemaMaxMind geoSchema = iota
	// geoSchemaIPinfo is IPinfo Lite's flat one: country_code and asn
	// ("AS64500", a string).
	geoSchemaIPinfo
)

// geoCaps is what a database's records carry.
type geoCaps struct {
	schema  geoSchema
	country bool
	asn     bool
}

// geoRecord is the part of a database record the labels use.
// Size: 8 bytes.
type geoRecord struct {
	country [2]byte // upper-case ISO 3166-1 alpha-2, geoUnknownCountry when none
	asn     uint32  // 0 when unknown
}

// geoLabel holds the label values of one geoID, formatted once.
type geoLabel struct {
	country string
	asn     string
}

// geoDB is one database file, read into memory. Reading it instead of
// mapping it costs its size in heap (GeoLite2-Country and -ASN about 10 MB
// each, City about 70 MB) but makes replacing the file safe however it is
// done: a mapped file rewritten in place (cp over it) kills the process
// with SIGBUS, and a reader is freed by the garbage collector only when no
// lookup still holds it, so a reload never needs to close one.
type geoDB struct {
	reader   *maxminddb.Reader
	caps     geoCaps
	ipv4Only bool // ip_version 4: the reader refuses IPv6 lookups with an error

	// mu guards records, the record-offset cache: a record is decoded
	// once however many addresses share it, and a record that fails to
	// decode fails once, however many addresses (spoofed sources in a
	// damaged range) lead to it. Capture goroutines missing the address
	// cache at once mostly read it, hence the RWMutex.
	mu      sync.RWMutex
	records map[uintptr]geoDecoded
}

// geoDecoded is a record-offset cache entry: the decoded fields, or the
// error decoding them gave. Size: 24 bytes.
type geoDecoded struct {
	rec geoRecord
	err error
}

// geoState is one generation of open databases. A reload publishes a new
// one; lookups that still hold the old one finish on it.
type geoState struct {
	gen uint64                   // ≥ 1, stamped into address cache entries
	dbs [geoDatabaseCount]*geoDB // by flag; the same *geoDB twice when one file serves both
}

// geoCacheEntry is one slot of the address cache, a seqlock built from
// atomics: seq is odd while a writer fills the slot, and a reader that saw
// seq change discards what it read. Size: 32 bytes.
type geoCacheEntry struct {
	seq atomic.Uint64
	hi  atomic.Uint64 // address bytes 0-7 (IPv4 as ::ffff:a.b.c.d)
	lo  atomic.Uint64 // address bytes 8-15
	val atomic.Uint64 // gen<<geoValGenShift | geoValFolded | geoID
}

// geoDBInfo describes one loaded database for the start-up and reload logs.
type geoDBInfo struct {
	flag         string
	path         string
	databaseType string
	buildTime    time.Time
}

// geoResolver maps resolver addresses to geoIDs. A nil *geoResolver means
// GeoIP is off: every address is geoID 0 and no label is exported.
//
// lookup first tries a fixed-size, direct-mapped address cache (no lock, no
// allocation). On a miss it walks each database's search tree, decodes the
// record unless its offset is in that database's record cache, and interns
// the (country, asn) combination. A reload swaps the databases atomically
// and bumps the generation, which invalidates every cached address at once.
type geoResolver struct {
	// seed and state are read by every lookup and written only by openGeo
	// and reload.
	seed  uint64
	state atomic.Pointer[geoState]

	log       *slog.Logger // the reload's and the cap's messages
	cfg       geoConfig
	countryOn bool
	asnOn     bool
	maxSets   int // -geoip.max-label-sets

	// The pad keeps the counters off the cache line every lookup reads:
	// folded hits and failing lookups add to them at packet rate.
	_     [64]byte
	stats geoStats

	// reloadMu serialises reloads.
	reloadMu sync.Mutex

	// mu guards ids and sets, the intern table; sets is never longer than
	// maxIDs and sets[0] is (ZZ, 0).
	mu         sync.RWMutex
	ids        map[geoRecord]geoID
	sets       []geoLabel
	foldLogged bool

	cache [geoCacheSize]geoCacheEntry
}

// checkMaxLabelSets checks a -geoip.max-label-sets value: 1 to
// geoMaxLabelSetsLimit, so that the label sets and the ids reserved for
// each country's asn 0 fit the geoID range. validate and openGeo both
// use it.
func checkMaxLabelSets(n int) error {
	if n < 1 || n > geoMaxLabelSetsLimit {
		return fmt.Errorf("want 1 to %d", geoMaxLabelSetsLimit)
	}
	return nil
}

// openGeo opens the configured databases; the resolver logs to log (nil:
// nowhere). With neither path set it returns nil, nil. Errors name the flag and quote the path.
func openGeo(cfg geoConfig, log *slog.Logger) (*geoResolver, error) {
	if cfg.countryPath == "" && cfg.asnPath == "" {
		return nil, nil
	}
	if cfg.maxLabelSets == 0 {
		cfg.maxLabelSets = geoDefaultMaxLabelSets
	}
	if err := checkMaxLabelSets(cfg.maxLabelSets); err != nil {
		return nil, fmt.Errorf("-geoip.max-label-sets %d: %w", cfg.maxLabelSets, err)
	}
	dbs, errs := openGeoDBs(cfg)
	for _, err := range errs {
		if err != nil {
			// One line for the caller: the first failure is enough to act on.
			return nil, err
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &geoResolver{
		log:       log,
		cfg:       cfg,
		countryOn: cfg.countryPath != "",
		asnOn:     cfg.asnPath != "",
		maxSets:   cfg.maxLabelSets,
		seed:      rand.Uint64(),
		ids:       make(map[geoRecord]geoID),
	}
	g.sets = make([]geoLabel, 0, g.maxIDs())
	g.add(geoRecord{country: geoUnknownCountry})
	g.state.Store(&geoState{gen: 1, dbs: dbs})
	g.setBuildTimes(dbs, [geoDatabaseCount]bool{true, true})
	return g, nil
}

// openGeoDBs opens the files of cfg. When both flags name the same file
// it is opened once. errs holds each flag's failure; a database is nil for
// a flag that is unset or failed.
func openGeoDBs(cfg geoConfig) (dbs [geoDatabaseCount]*geoDB, errs [geoDatabaseCount]error) {
	paths := [geoDatabaseCount]string{geoCountry: cfg.countryPath, geoASN: cfg.asnPath}
	shared := paths[geoCountry] != "" && paths[geoASN] != "" && sameFile(paths[geoCountry], paths[geoASN])
	var d *geoDB
	var err error
	for db := range geoDatabaseCount {
		if paths[db] == "" {
			continue
		}
		if db == geoCountry || !shared {
			d, err = openGeoDB(paths[db])
		}
		switch {
		case err != nil:
			errs[db] = fmt.Errorf("%s %q: %w", geoDatabaseFlags[db], paths[db], err)
		case db == geoCountry && !d.caps.country:
			errs[db] = fmt.Errorf("%s %q: database type %q has no country data",
				geoDatabaseFlags[db], paths[db], d.reader.Metadata.DatabaseType)
		case db == geoASN && !d.caps.asn:
			errs[db] = fmt.Errorf("%s %q: database type %q has no ASN data",
				geoDatabaseFlags[db], paths[db], d.reader.Metadata.DatabaseType)
		default:
			dbs[db] = d
		}
	}
	return dbs, errs
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// openGeoDB reads the database at path into memory and learns what its
// records carry. Errors do not repeat the path; the caller adds it.
func openGeoDB(path string) (*geoDB, error) {
	b, err := readGeoFile(path)
	if err != nil {
		return nil, err
	}
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, err
	}
	caps, err := geoDetect(r)
	if err != nil {
		return nil, err
	}
	return &geoDB{
		reader:   r,
		caps:     caps,
		ipv4Only: r.Metadata.IPVersion == 4,
		records:  make(map[uintptr]geoDecoded),
	}, nil
}

// readGeoFile reads a regular file of at most geoMaxFileSize bytes.
func readGeoFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, unwrapPathError(err)
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, errGeoNotRegular
	case fi.Size() == 0:
		return nil, errGeoEmpty
	case fi.Size() > geoMaxFileSize:
		return nil, errGeoTooLarge
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if n == len(b) {
		err = nil
	}
	if err != nil {
		return nil, unwrapPathError(err)
	}
	return b, nil
}

// unwrapPathError drops the operation and path of an *fs.PathError: the
// caller's message already names the file.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// geoDetect learns what the records of r carry: from its database_type when
// geoTypeCaps knows it, else from the shape of its first records.
func geoDetect(r *maxminddb.Reader) (geoCaps, error) {
	if caps, ok := geoTypeCaps(r.Metadata.DatabaseType); ok {
		return caps, nil
	}
	return geoProbe(r)
}

// geoTypeCaps knows the database_type values of MaxMind (GeoLite2-*,
// GeoIP2-*) and DB-IP (DBIP-*, e.g. "DBIP-Country-Lite",
// "DBIP-ASN-Lite (compat=GeoLite2-ASN)"), which share MaxMind's schema.
// IPinfo's types name the file, not the schema, so they are probed.
func geoTypeCaps(t string) (geoCaps, bool) {
	if !strings.HasPrefix(t, "GeoLite2-") && !strings.HasPrefix(t, "GeoIP2-") && !strings.HasPrefix(t, "DBIP-") {
		return geoCaps{}, false
	}
	return geoCaps{
		schema: geoSchemaMaxMind,
		// GeoIP2-Enterprise and the DB-IP "compat=City" types carry
		// country like City does.
		country: strings.Contains(t, "Country") || strings.Contains(t, "City") || strings.Contains(t, "Enterprise"),
		// Enterprise keeps the ASN under traits: not supported.
		asn: strings.Contains(t, "ASN") || t == "GeoIP2-ISP",
	}, true
}

// geoProbe inspects up to geoProbeRecords records for the fields the
// labels need: country_code and asn (IPinfo) or country.iso_code and
// autonomous_system_number (MaxMind).
func geoProbe(r *maxminddb.Reader) (geoCaps, error) {
	var caps geoCaps
	n := 0
	for res := range r.Networks() {
		var m map[string]any
		if err := res.Decode(&m); err != nil {
			return geoCaps{}, fmt.Errorf("reading records: %w", err)
		}
		if _, ok := m["country_code"].(string); ok {
			caps.schema, caps.country = geoSchemaIPinfo, true
		}
		if s, ok := m["asn"].(string); ok && parseASN(s) != 0 {
			caps.schema, caps.asn = geoSchemaIPinfo, true
		}
		if caps.schema == geoSchemaMaxMind {
			if c, ok := m["country"].(map[string]any); ok {
				if _, ok := c["iso_code"].(string); ok {
					caps.country = true
				}
			}
			if _, ok := m["autonomous_system_number"]; ok {
				caps.asn = true
			}
		}
		n++
		if caps.country && caps.asn || n == geoProbeRecords {
			break
		}
	}
	return caps, nil
}

// maxMindRecord is the part of a MaxMind or DB-IP record the labels use.
// registered_country is deliberately absent (SPEC §5).
type maxMindRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	ASN uint32 `maxminddb:"autonomous_system_number"`
}

// ipinfoRecord is the part of an IPinfo Lite record the labels use.
type ipinfoRecord struct {
	CountryCode string `maxminddb:"country_code"`
	ASN         string `maxminddb:"asn"`
}

// lookup returns the fields of the record for addr: from the record cache,
// or decoded once per record offset. A decoding error is cached like the
// fields, under the same bound; an error of the search tree walk is not
// (it has no record offset), the address cache holds that.
func (d *geoDB) lookup(addr netip.Addr) (geoRecord, error) {
	if d.ipv4Only && addr.Is6() {
		// Not in the database, rather than the reader's error.
		return geoRecord{country: geoUnknownCountry}, nil
	}
	res := d.reader.Lookup(addr)
	if err := res.Err(); err != nil {
		return geoRecord{}, err
	}
	if !res.Found() {
		return geoRecord{country: geoUnknownCountry}, nil
	}
	off := res.Offset()
	d.mu.RLock()
	c, ok := d.records[off]
	d.mu.RUnlock()
	if ok {
		return c.rec, c.err
	}
	rec, err := d.decode(res)
	if err != nil {
		rec = geoRecord{}
	}
	d.mu.Lock()
	if len(d.records) >= geoRecordCacheMax {
		clear(d.records)
	}
	d.records[off] = geoDecoded{rec: rec, err: err}
	d.mu.Unlock()
	return rec, err
}

// decode reads the label fields of the record res found.
func (d *geoDB) decode(res maxminddb.Result) (geoRecord, error) {
	if d.caps.schema == geoSchemaIPinfo {
		var v ipinfoRecord
		if err := res.Decode(&v); err != nil {
			return geoRecord{}, err
		}
		return geoRecord{country: parseCountry(v.CountryCode), asn: parseASN(v.ASN)}, nil
	}
	var v maxMindRecord
	if err := res.Decode(&v); err != nil {
		return geoRecord{}, err
	}
	return geoRecord{country: parseCountry(v.Country.ISOCode), asn: v.ASN}, nil
}

// parseCountry returns the upper-cased ISO code s, or geoUnknownCountry when
// s is not two ASCII letters: label values come from a closed set.
func parseCountry(s string) [2]byte {
	if len(s) != 2 {
		return geoUnknownCountry
	}
	var c [2]byte
	for i := range c {
		b := s[i] &^ 0x20 // upper-case, valid only for letters
		if b < 'A' || b > 'Z' {
			return geoUnknownCountry
		}
		c[i] = b
	}
	return c
}

// parseASN returns the number of an IPinfo asn value ("AS64500"), or 0.
func parseASN(s string) uint32 {
	if len(s) < 3 || s[0]|0x20 != 'a' || s[1]|0x20 != 's' {
		return 0
	}
	n, err := strconv.ParseUint(s[2:], 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// lookup returns the geoID of addr. It is on the packet path: a cache hit
// does not allocate and takes no lock. Safe for concurrent use with other
// lookups, labels and reload; nil receiver returns 0. IPv4 and IPv4-mapped
// IPv6 addresses are the same resolver.
func (g *geoResolver) lookup(addr netip.Addr) geoID {
	if g == nil || !addr.IsValid() {
		return 0
	}
	addr = addr.Unmap()
	hi, lo := geoAddrKey(addr)
	st := g.state.Load()
	e := &g.cache[g.slot(hi, lo)]
	if s := e.seq.Load(); s&1 == 0 && e.hi.Load() == hi && e.lo.Load() == lo {
		v := e.val.Load()
		if e.seq.Load() == s && v>>geoValGenShift == st.gen {
			if v&geoValFolded != 0 {
				g.stats.folded.Add(1)
			}
			return geoID(v)
		}
	}
	return g.miss(st, addr, hi, lo, e)
}

// geoAddrKey returns the 16 bytes of an unmapped address as two words,
// IPv4 as ::ffff:a.b.c.d. It reads AsSlice, which the compiler keeps on the
// stack, rather than As16, whose result it copies with a 16-byte load right
// after two 8-byte stores: a store-forwarding stall that made an IPv6 hit
// cost 18 ns instead of 7 (BenchmarkGeoLookupHitIPv6, amd64).
func geoAddrKey(addr netip.Addr) (hi, lo uint64) {
	b := addr.AsSlice()
	switch len(b) {
	case geoIPv4Len:
		return 0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b))
	case geoIPv6Len:
		return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	}
	return 0, 0
}

// slot picks the cache slot of an address. The random seed keeps an
// attacker from choosing spoofed sources that evict a given resolver.
func (g *geoResolver) slot(hi, lo uint64) uint64 {
	h := (hi^g.seed)*0x9e3779b97f4a7c15 + lo
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return h >> (64 - geoCacheBits)
}

// miss resolves addr through the databases of st, interns the result and
// caches it in e. A lookup that failed is cached like one that succeeded,
// as the label set it fell back to (ZZ or asn 0), so a failing address
// costs a full lookup and counts in stats.errors once per cache entry:
// again only after its slot was taken by another address or a reload.
func (g *geoResolver) miss(st *geoState, addr netip.Addr, hi, lo uint64, e *geoCacheEntry) geoID {
	rec := geoRecord{country: geoUnknownCountry}
	cd, ad := st.dbs[geoCountry], st.dbs[geoASN]
	if cd != nil {
		r, err := cd.lookup(addr)
		switch {
		case err != nil:
			g.stats.errors[geoCountry].Add(1)
			if ad == cd {
				g.stats.errors[geoASN].Add(1)
			}
		case ad == cd:
			rec = r
		default:
			rec.country = r.country
		}
	}
	if ad != nil && ad != cd {
		r, err := ad.lookup(addr)
		if err != nil {
			g.stats.errors[geoASN].Add(1)
		} else {
			rec.asn = r.asn
		}
	}
	if !g.countryOn {
		rec.country = geoUnknownCountry
	}
	if !g.asnOn {
		rec.asn = 0
	}
	id, folded := g.intern(rec)
	v := st.gen<<geoValGenShift | uint64(id)
	if folded {
		g.stats.folded.Add(1)
		v |= geoValFolded
	}
	e.store(hi, lo, v)
	return id
}

// store writes a slot unless another writer holds it (it is a cache: losing
// the race only costs a later miss).
func (e *geoCacheEntry) store(hi, lo, v uint64) {
	s := e.seq.Load()
	if s&1 != 0 || !e.seq.CompareAndSwap(s, s+1) {
		return
	}
	e.hi.Store(hi)
	e.lo.Store(lo)
	e.val.Store(v)
	e.seq.Store(s + 2)
}

// intern returns the geoID of k, creating it while there is room. Past
// -geoip.max-label-sets a new combination folds into (country, 0), which is
// created from the reserve of geoCountryCodes ids when new; folded reports
// that the ASN was dropped. Combinations seen with an earlier database
// version keep their ids after a reload, so each update may spend a few.
func (g *geoResolver) intern(k geoRecord) (id geoID, folded bool) {
	g.mu.RLock()
	id, ok := g.ids[k]
	g.mu.RUnlock()
	if ok {
		return id, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if id, ok := g.ids[k]; ok {
		return id, false
	}
	if len(g.sets) < g.maxSets {
		return g.add(k), false
	}
	if k.asn != 0 {
		folded = true
		k.asn = 0
		if !g.foldLogged {
			g.foldLogged = true
			g.log.Warn("GeoIP label sets reached -geoip.max-label-sets: new (country, asn) combinations are counted under asn \"0\" of their country",
				"max_label_sets", g.maxSets)
		}
		if id, ok := g.ids[k]; ok {
			return id, true
		}
	}
	if len(g.sets) < cap(g.sets) {
		return g.add(k), folded
	}
	return 0, true // unreachable: the reserve holds every (country, 0)
}

// add interns k as the next geoID. Called with g.mu held (or before g is
// shared).
func (g *geoResolver) add(k geoRecord) geoID {
	id := geoID(len(g.sets))
	g.ids[k] = id
	g.sets = append(g.sets, geoLabel{
		country: string(k.country[:]),
		asn:     strconv.FormatUint(uint64(k.asn), 10),
	})
	return id
}

// labels returns the label values of id. ok is false for the labels the
// configuration does not export (country without a country database, …).
// An id lookup has not returned yet has the labels of id 0.
func (g *geoResolver) labels(id geoID) (country string, hasCountry bool, asn string, hasASN bool) {
	if g == nil {
		return "", false, "", false
	}
	g.mu.RLock()
	l := g.sets[0]
	if int(id) < len(g.sets) {
		l = g.sets[id]
	}
	g.mu.RUnlock()
	if g.countryOn {
		country, hasCountry = l.country, true
	}
	if g.asnOn {
		asn, hasASN = l.asn, true
	}
	return country, hasCountry, asn, hasASN
}

// labelSets is the number of geoIDs handed out so far (1 when nil), for a
// gauge next to the cap: ids below it are the only ones labels describes.
func (g *geoResolver) labelSets() int {
	if g == nil {
		return 1
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.sets)
}

// maxIDs is the number of distinct geoIDs lookup can return (1 when nil):
// with an ASN database -geoip.max-label-sets, plus geoCountryCodes with a
// country database too; with a country database only, geoCountryCodes
// (nothing folds: the countries bound the sets).
func (g *geoResolver) maxIDs() int {
	switch {
	case g == nil:
		return 1
	case !g.asnOn:
		return geoCountryCodes
	case !g.countryOn:
		return g.maxSets
	}
	return g.maxSets + geoCountryCodes
}

// reload re-opens both databases (SIGHUP: geoipupdate replaces the files).
// A flag whose new file fails keeps its loaded database, counts in
// stats.reloadFailures and is logged with the reason; on any success the
// databases are swapped atomically and every cached address is invalidated
// (geoIDs stay as they are). It logs each outcome itself; the returned
// error joins the failures.
func (g *geoResolver) reload() error {
	if g == nil {
		return nil
	}
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.state.Load()
	dbs, errs := openGeoDBs(g.cfg)
	next := &geoState{gen: old.gen + 1}
	var changed [geoDatabaseCount]bool
	swap := false
	for db := range geoDatabaseCount {
		if errs[db] != nil {
			g.stats.reloadFailures[db].Add(1)
			g.log.Error("GeoIP reload failed, keeping the loaded database", "err", errs[db])
			next.dbs[db] = old.dbs[db]
			continue
		}
		next.dbs[db] = dbs[db]
		changed[db] = dbs[db] != nil
		swap = swap || changed[db]
	}
	if swap {
		g.state.Store(next)
		g.setBuildTimes(next.dbs, changed)
		for db, d := range next.dbs {
			if changed[db] {
				info := g.info(geoDatabase(db), d)
				g.log.Info("GeoIP database reloaded", "flag", info.flag, "path", info.path,
					"type", info.databaseType, "build_time", info.buildTime.UTC().Format(time.RFC3339))
			}
		}
	}
	return errors.Join(errs[:]...)
}

// setBuildTimes publishes the build time of the databases set in which.
func (g *geoResolver) setBuildTimes(dbs [geoDatabaseCount]*geoDB, which [geoDatabaseCount]bool) {
	for db, d := range dbs {
		if d != nil && which[db] {
			g.stats.buildTime[db].Store(int64(d.reader.Metadata.BuildEpoch))
		}
	}
}

// describe lists the loaded databases in flag order, for the start-up log.
func (g *geoResolver) describe() []geoDBInfo {
	if g == nil {
		return nil
	}
	st := g.state.Load()
	var out []geoDBInfo
	for db, d := range st.dbs {
		if d != nil {
			out = append(out, g.info(geoDatabase(db), d))
		}
	}
	return out
}

// info describes database d, loaded for db.
func (g *geoResolver) info(db geoDatabase, d *geoDB) geoDBInfo {
	path := g.cfg.countryPath
	if db == geoASN {
		path = g.cfg.asnPath
	}
	return geoDBInfo{
		flag:         geoDatabaseFlags[db],
		path:         path,
		databaseType: d.reader.Metadata.DatabaseType,
		buildTime:    d.reader.Metadata.BuildTime(),
	}
}

// geoDescription names the loaded GeoIP databases for the start-up log:
// flag, type and build date of each.
func geoDescription(g *geoResolver) string {
	dbs := g.describe()
	if len(dbs) == 0 {
		return "off"
	}
	var parts []string
	for _, d := range dbs {
		parts = append(parts, d.flag+"="+d.path+" ("+d.databaseType+", built "+d.buildTime.UTC().Format(time.DateOnly)+")")
	}
	return strings.Join(parts, ", ")
}

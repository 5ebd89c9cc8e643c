package main

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// geoFixture is the path of a GeoIP fixture (testdata/geo/README.md).
func geoFixture(name string) string { return filepath.Join("testdata", "geo", name) }

// geoFixtureEpoch is the build_epoch of every fixture (2025-01-01T00:00:00Z).
const geoFixtureEpoch = 1735689600

// openGeoTest opens cfg, logging nowhere, and fails t on error.
func openGeoTest(t testing.TB, cfg geoConfig) *geoResolver {
	t.Helper()
	return openGeoLogged(t, cfg, nil)
}

// openGeoLogged is openGeoTest logging to log.
func openGeoLogged(t testing.TB, cfg geoConfig, log *slog.Logger) *geoResolver {
	t.Helper()
	g, err := openGeo(cfg, log)
	if err != nil {
		t.Fatalf("openGeo(%+v): %v", cfg, err)
	}
	if g == nil {
		t.Fatalf("openGeo(%+v) = nil", cfg)
	}
	return g
}

// geoWant is the expected (country, asn) of an address.
type geoWant struct {
	addr    string
	country string
	asn     string
}

// geoFixtureTable is the README's range table, with the IPv4 ranges also
// reached through their IPv4-mapped, 6to4 and Teredo aliases. Every fixture
// set below answers it the same way: 203.0.113.128/25 has no ASN anywhere,
// and 127.0.3.0/24 is either unmapped or has registered_country only.
var geoFixtureTable = []geoWant{
	{"198.51.100.1", "DE", "64500"},
	{"::ffff:198.51.100.1", "DE", "64500"},
	{"2002:c633:6401::1", "DE", "64500"},   // 6to4 of 198.51.100.1
	{"2001:0:c633:6401::1", "DE", "64500"}, // Teredo prefix of 198.51.100.1
	{"198.51.100.127", "DE", "64500"},
	{"198.51.100.128", "BR", "64500"},
	{"::ffff:198.51.100.200", "BR", "64500"},
	{"203.0.113.1", "JP", "64501"},
	{"203.0.113.200", "JP", "0"},
	{"::ffff:203.0.113.200", "JP", "0"},
	{"2001:db8:1::1", "NL", "64502"},
	{"2001:db8:1:ffff:ffff:ffff:ffff:ffff", "NL", "64502"},
	{"127.0.1.1", "FR", "64510"},
	{"127.0.2.254", "IR", "64511"},
	{"10.99.1.2", "US", "4200000001"},
	{"::ffff:10.99.255.255", "US", "4200000001"},
	{"127.0.3.1", "ZZ", "0"}, // registered_country GB only: never used
	{"::ffff:127.0.3.1", "ZZ", "0"},
	{"192.0.2.1", "ZZ", "0"},
	{"::ffff:192.0.2.1", "ZZ", "0"},
	{"2001:db8::1", "ZZ", "0"},
	{"2001:db8:2::1", "ZZ", "0"},
	{"127.0.0.1", "ZZ", "0"},
	{"::1", "ZZ", "0"},
	{"fe80::1%eth0", "ZZ", "0"},
}

func TestGeoLookupFixtures(t *testing.T) {
	tests := []struct {
		name    string
		country string
		asn     string
	}{
		{"geolite2", "country.mmdb", "asn.mmdb"},
		{"city", "city.mmdb", "asn.mmdb"},
		{"dbip", "dbip-country-lite.mmdb", "dbip-asn-lite.mmdb"},
		{"ipinfo both flags", "ipinfo-lite.mmdb", "ipinfo-lite.mmdb"},
		{"ipinfo country, geolite2 asn", "ipinfo-lite.mmdb", "asn.mmdb"},
		{"country only", "country.mmdb", ""},
		{"city only", "city.mmdb", ""},
		{"dbip country only", "dbip-country-lite.mmdb", ""},
		{"ipinfo country only", "ipinfo-lite.mmdb", ""},
		{"asn only", "", "asn.mmdb"},
		{"dbip asn only", "", "dbip-asn-lite.mmdb"},
		{"ipinfo asn only", "", "ipinfo-lite.mmdb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg geoConfig
			if tt.country != "" {
				cfg.countryPath = geoFixture(tt.country)
			}
			if tt.asn != "" {
				cfg.asnPath = geoFixture(tt.asn)
			}
			g := openGeoTest(t, cfg)
			// Twice: the second pass answers from the address cache.
			for pass := range 2 {
				for _, w := range geoFixtureTable {
					id := g.lookup(netip.MustParseAddr(w.addr))
					country, hasCountry, asn, hasASN := g.labels(id)
					if hasCountry != (tt.country != "") || hasASN != (tt.asn != "") {
						t.Fatalf("%s: labels(%d) exports country %v, asn %v; want %v, %v",
							w.addr, id, hasCountry, hasASN, tt.country != "", tt.asn != "")
					}
					wantCountry, wantASN := w.country, w.asn
					if !hasCountry {
						wantCountry = ""
					}
					if !hasASN {
						wantASN = ""
					}
					if country != wantCountry || asn != wantASN {
						t.Errorf("pass %d: lookup(%s) = %d (%q, %q), want (%q, %q)",
							pass, w.addr, id, country, asn, wantCountry, wantASN)
					}
					if w.country == "ZZ" && w.asn == "0" && id != 0 {
						t.Errorf("lookup(%s) = %d, want 0 (ZZ, 0)", w.addr, id)
					}
				}
			}
			for db := range geoDatabaseCount {
				want := int64(0)
				if db == geoCountry && tt.country != "" || db == geoASN && tt.asn != "" {
					want = geoFixtureEpoch
				}
				if got := g.stats.buildTime[db].Load(); got != want {
					t.Errorf("buildTime[%s] = %d, want %d", geoDatabaseNames[db], got, want)
				}
				if got := g.stats.errors[db].Load(); got != 0 {
					t.Errorf("errors[%s] = %d, want 0", geoDatabaseNames[db], got)
				}
			}
		})
	}
}

func TestGeoIPv4OnlyDatabase(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("country-ipv4.mmdb")})
	tests := []struct {
		name string
		addr string
		want string
	}{
		{"IPv4", "198.51.100.1", "DE"},
		{"IPv4-mapped", "::ffff:10.99.0.1", "US"},
		{"IPv4 not found", "192.0.2.1", "ZZ"},
		{"IPv6 is not in it", "2001:db8:1::1", "ZZ"},
		{"6to4 is not in it", "2002:c633:6401::1", "ZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, _, _, _ := g.labels(g.lookup(netip.MustParseAddr(tt.addr))); c != tt.want {
				t.Errorf("lookup(%s) = %q, want %q", tt.addr, c, tt.want)
			}
		})
	}
	if n := g.stats.errors[geoCountry].Load(); n != 0 {
		t.Errorf("errors[country] = %d, want 0: IPv6 in an IPv4 database is not found, not an error", n)
	}
}

func TestGeoSharedFile(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("ipinfo-lite.mmdb"), asnPath: geoFixture("ipinfo-lite.mmdb")})
	st := g.state.Load()
	if st.dbs[geoCountry] != st.dbs[geoASN] {
		t.Errorf("both flags at one file opened it twice")
	}
}

func TestGeoOff(t *testing.T) {
	g, err := openGeo(geoConfig{maxLabelSets: 10}, nil)
	if g != nil || err != nil {
		t.Fatalf("openGeo without databases = %v, %v; want nil, nil", g, err)
	}
	if id := g.lookup(netip.MustParseAddr("198.51.100.1")); id != 0 {
		t.Errorf("nil lookup = %d, want 0", id)
	}
	if c, hc, a, ha := g.labels(0); c != "" || hc || a != "" || ha {
		t.Errorf("nil labels = %q %v %q %v, want no labels", c, hc, a, ha)
	}
	if n := g.maxIDs(); n != 1 {
		t.Errorf("nil maxIDs = %d, want 1", n)
	}
	if n := g.labelSets(); n != 1 {
		t.Errorf("nil labelSets = %d, want 1", n)
	}
	if err := g.reload(); err != nil {
		t.Errorf("nil reload = %v", err)
	}
	if d := g.describe(); d != nil {
		t.Errorf("nil describe = %v", d)
	}
}

func TestGeoOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  geoConfig
		want string
	}{
		{
			name: "country database at asn flag",
			cfg:  geoConfig{asnPath: geoFixture("country.mmdb")},
			want: `-geoip.asn-database "testdata/geo/country.mmdb": database type "GeoLite2-Country" has no ASN data`,
		},
		{
			name: "city database at asn flag",
			cfg:  geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("city.mmdb")},
			want: `-geoip.asn-database "testdata/geo/city.mmdb": database type "GeoLite2-City" has no ASN data`,
		},
		{
			name: "asn database at country flag",
			cfg:  geoConfig{countryPath: geoFixture("asn.mmdb"), asnPath: geoFixture("asn.mmdb")},
			want: `-geoip.country-database "testdata/geo/asn.mmdb": database type "GeoLite2-ASN" has no country data`,
		},
		{
			name: "dbip asn at country flag",
			cfg:  geoConfig{countryPath: geoFixture("dbip-asn-lite.mmdb")},
			want: `-geoip.country-database "testdata/geo/dbip-asn-lite.mmdb": database type "DBIP-ASN-Lite (compat=GeoLite2-ASN)" has no country data`,
		},
		{
			name: "unknown type without country",
			cfg:  geoConfig{countryPath: geoFixture("anonymous-ip.mmdb")},
			want: `-geoip.country-database "testdata/geo/anonymous-ip.mmdb": database type "Example-Anonymous-IP" has no country data`,
		},
		{
			name: "unknown type without asn",
			cfg:  geoConfig{asnPath: geoFixture("anonymous-ip.mmdb")},
			want: `-geoip.asn-database "testdata/geo/anonymous-ip.mmdb": database type "Example-Anonymous-IP" has no ASN data`,
		},
		{
			name: "corrupt",
			cfg:  geoConfig{countryPath: geoFixture("corrupt.mmdb")},
			want: `-geoip.country-database "testdata/geo/corrupt.mmdb": error opening database: invalid MaxMind DB file`,
		},
		{
			name: "empty",
			cfg:  geoConfig{asnPath: geoFixture("empty.mmdb")},
			want: `-geoip.asn-database "testdata/geo/empty.mmdb": file is empty`,
		},
		{
			name: "missing",
			cfg:  geoConfig{countryPath: filepath.Join(dir, "missing.mmdb")},
			want: `-geoip.country-database "` + filepath.Join(dir, "missing.mmdb") + `": no such file or directory`,
		},
		{
			name: "directory",
			cfg:  geoConfig{asnPath: dir},
			want: `-geoip.asn-database "` + dir + `": not a regular file`,
		},
		{
			name: "good country, bad asn",
			cfg:  geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("corrupt.mmdb")},
			want: `-geoip.asn-database "testdata/geo/corrupt.mmdb": error opening database: invalid MaxMind DB file`,
		},
		{
			name: "negative max label sets",
			cfg:  geoConfig{countryPath: geoFixture("country.mmdb"), maxLabelSets: -1},
			want: `-geoip.max-label-sets -1: want 1 to 64860`,
		},
		{
			name: "max label sets too large",
			cfg:  geoConfig{asnPath: geoFixture("asn.mmdb"), maxLabelSets: 1 << 16},
			want: `-geoip.max-label-sets 65536: want 1 to 64860`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := openGeo(tt.cfg, nil)
			if err == nil {
				t.Fatalf("openGeo(%+v) = %v, nil; want error %q", tt.cfg, g, tt.want)
			}
			if g != nil {
				t.Errorf("openGeo(%+v) returned a resolver with its error", tt.cfg)
			}
			if err.Error() != tt.want {
				t.Errorf("openGeo(%+v) error\n got %q\nwant %q", tt.cfg, err, tt.want)
			}
		})
	}
}

func TestGeoDamaged(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("damaged.mmdb"), asnPath: geoFixture("asn.mmdb")})
	tests := []struct {
		name       string
		addr       string
		country    string
		asn        string
		wantErrors uint64 // country lookup errors after this lookup
	}{
		{"damaged record", "198.51.100.1", "ZZ", "64500", 1},
		{"damaged record again: the failure is cached", "198.51.100.1", "ZZ", "64500", 1},
		{"damaged record through IPv6", "2001:db8:1::1", "ZZ", "64502", 2},
		{"same damaged record, another address: a new cache entry", "198.51.100.2", "ZZ", "64500", 3},
		{"first address still cached", "198.51.100.1", "ZZ", "64500", 3},
		{"IPv4-mapped form of a cached address", "::ffff:198.51.100.2", "ZZ", "64500", 3},
		{"not found: no record to decode", "192.0.2.1", "ZZ", "0", 3},
	}
	// A fixed seed under which the addresses take distinct slots, so that
	// none evicts another and the counts are exact.
	g.seed = 1
	slots := map[uint64]string{}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr).Unmap()
		hi, lo := geoAddrKey(a)
		if o, ok := slots[g.slot(hi, lo)]; ok && o != a.String() {
			t.Fatalf("%s and %s share a cache slot under seed %d: pick another seed", o, a, g.seed)
		}
		slots[g.slot(hi, lo)] = a.String()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			country, _, asn, _ := g.labels(g.lookup(netip.MustParseAddr(tt.addr)))
			if country != tt.country || asn != tt.asn {
				t.Errorf("lookup(%s) = (%q, %q), want (%q, %q)", tt.addr, country, asn, tt.country, tt.asn)
			}
			if got := g.stats.errors[geoCountry].Load(); got != tt.wantErrors {
				t.Errorf("errors[country] = %d, want %d", got, tt.wantErrors)
			}
			if got := g.stats.errors[geoASN].Load(); got != 0 {
				t.Errorf("errors[asn] = %d, want 0", got)
			}
		})
	}
	// The record cache holds the failure: both damaged records once.
	d := g.state.Load().dbs[geoCountry]
	d.mu.RLock()
	failed := 0
	for _, c := range d.records {
		if c.err != nil {
			failed++
		}
	}
	d.mu.RUnlock()
	if failed != 2 {
		t.Errorf("record cache holds %d failed records, want 2 (198.51.100.0/24 and 2001:db8:1::/48)", failed)
	}
}

// TestGeoDamagedCacheBound checks that failures share the address cache's
// bound: a flood of distinct sources in a damaged range keeps at most
// geoCacheSize addresses and one failed record, and counts one error per
// lookup that missed the address cache.
func TestGeoDamagedCacheBound(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("damaged.mmdb")})
	base := netip.MustParseAddr("2001:db8:1::").As16()
	const n = 3 * geoCacheSize
	for i := range uint64(n) {
		a := base
		binary.BigEndian.PutUint64(a[8:], i)
		g.lookup(netip.AddrFrom16(a))
	}
	if got := g.stats.errors[geoCountry].Load(); got != n {
		t.Errorf("errors = %d after %d distinct addresses, want %d", got, n, n)
	}
	d := g.state.Load().dbs[geoCountry]
	if len(d.records) != 1 {
		t.Errorf("record cache has %d entries, want 1", len(d.records))
	}
	// The last addresses looked up are cached: looking them up again
	// counts nothing new, unless a later address took the slot.
	before := g.stats.errors[geoCountry].Load()
	a := base
	binary.BigEndian.PutUint64(a[8:], n-1)
	g.lookup(netip.AddrFrom16(a))
	if got := g.stats.errors[geoCountry].Load(); got != before {
		t.Errorf("errors = %d after looking up the last address again, want %d", got, before)
	}
}

func TestGeoDescribe(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("city.mmdb"), asnPath: geoFixture("dbip-asn-lite.mmdb")})
	got := g.describe()
	want := []geoDBInfo{
		{flag: "-geoip.country-database", path: geoFixture("city.mmdb"), databaseType: "GeoLite2-City"},
		{flag: "-geoip.asn-database", path: geoFixture("dbip-asn-lite.mmdb"), databaseType: "DBIP-ASN-Lite (compat=GeoLite2-ASN)"},
	}
	if len(got) != len(want) {
		t.Fatalf("describe() = %+v, want %d entries", got, len(want))
	}
	for i := range want {
		if got[i].flag != want[i].flag || got[i].path != want[i].path || got[i].databaseType != want[i].databaseType ||
			got[i].buildTime.Unix() != geoFixtureEpoch {
			t.Errorf("describe()[%d] = %+v, want %+v built %d", i, got[i], want[i], geoFixtureEpoch)
		}
	}
}

func TestGeoTypeCaps(t *testing.T) {
	tests := []struct {
		name    string
		known   bool
		country bool
		asn     bool
	}{
		{"GeoLite2-Country", true, true, false},
		{"GeoLite2-City", true, true, false},
		{"GeoIP2-Country", true, true, false},
		{"GeoIP2-City", true, true, false},
		{"GeoIP2-Enterprise", true, true, false},
		{"GeoLite2-ASN", true, false, true},
		{"GeoIP2-ISP", true, false, true},
		{"GeoIP2-Anonymous-IP", true, false, false},
		{"DBIP-Country-Lite", true, true, false},
		{"DBIP-City-Lite", true, true, false},
		{"DBIP-ASN-Lite", true, false, true},
		{"DBIP-ASN-Lite (compat=GeoLite2-ASN)", true, false, true},
		{"ipinfo bundle_location_lite.mmdb", false, false, false},
		{"", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps, known := geoTypeCaps(tt.name)
			if known != tt.known || caps.country != tt.country || caps.asn != tt.asn {
				t.Errorf("geoTypeCaps(%q) = %+v, %v; want country %v asn %v known %v",
					tt.name, caps, known, tt.country, tt.asn, tt.known)
			}
		})
	}
}

func TestParseCountry(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"upper", "DE", "DE"},
		{"lower", "de", "DE"},
		{"empty", "", "ZZ"},
		{"three letters", "DEU", "ZZ"},
		{"digit", "A1", "ZZ"},
		{"punctuation", "D@", "ZZ"},
		{"quote", `D"`, "ZZ"},
		{"non-ASCII", "\xc3\x84", "ZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCountry(tt.in); string(got[:]) != tt.want {
				t.Errorf("parseCountry(%q) = %q, want %q", tt.in, got[:], tt.want)
			}
		})
	}
}

func TestParseASN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint32
	}{
		{"ipinfo", "AS64500", 64500},
		{"32-bit", "AS4200000001", 4200000001},
		{"lower case", "as13335", 13335},
		{"no prefix", "64500", 0},
		{"prefix only", "AS", 0},
		{"empty", "", 0},
		{"too large", "AS4294967296", 0},
		{"sign", "AS+1", 0},
		{"trailing", "AS1x", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseASN(tt.in); got != tt.want {
				t.Errorf("parseASN(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// geoManyAddr is an address of the i-th network of many-lite.mmdb
// (tools/mmdbgen: 10.H.L.0/24, H = 1 + i/256, L = i%256).
func geoManyAddr(i int, host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(1 + i/256), byte(i % 256), host})
}

// geoManyCountries is the country cycle of many-lite.mmdb.
var geoManyCountries = []string{"DE", "BR", "JP", "NL", "FR", "IR", "US", "GB"}

// captureGeoLog returns a buffer and a logger that writes to it, for the
// resolver under test.
func captureGeoLog() (*geoLogBuffer, *slog.Logger) {
	buf := &geoLogBuffer{}
	return buf, slog.New(slog.NewTextHandler(buf, nil))
}

// geoLogBuffer is a bytes.Buffer safe for concurrent writes.
type geoLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *geoLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *geoLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestGeoCardinalityCap(t *testing.T) {
	const manyCount = 6000 // networks in many-lite.mmdb
	tests := []struct {
		name      string
		country   bool
		asn       bool
		max       int
		wantIDs   int // distinct ids after the stream
		wantMax   int // maxIDs
		wantFolds uint64
	}{
		// 1 + 99 combinations, then each later ASN folds into its
		// country's asn 0, created from the reserve: 8 more.
		{"both, small cap", true, true, 100, 100 + 8, 100 + geoCountryCodes, manyCount - 99},
		{"both, default cap", true, true, 0, 5000 + 8, 5000 + geoCountryCodes, manyCount - 4999},
		// Without a country database every fold goes to (ZZ, 0).
		{"asn only", false, true, 10, 10, 10, manyCount - 9},
		// Countries alone never fold: they bound themselves.
		{"country only", true, false, 1, 1 + 8, geoCountryCodes, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs, log := captureGeoLog()
			cfg := geoConfig{maxLabelSets: tt.max}
			if tt.country {
				cfg.countryPath = geoFixture("many-lite.mmdb")
			}
			if tt.asn {
				cfg.asnPath = geoFixture("many-lite.mmdb")
			}
			g := openGeoLogged(t, cfg, log)
			if got := g.maxIDs(); got != tt.wantMax {
				t.Fatalf("maxIDs() = %d, want %d", got, tt.wantMax)
			}
			seen := map[geoID]bool{0: true}
			for i := range manyCount {
				id := g.lookup(geoManyAddr(i, 1))
				if int(id) >= g.maxIDs() {
					t.Fatalf("lookup(%s) = %d, beyond maxIDs %d", geoManyAddr(i, 1), id, g.maxIDs())
				}
				seen[id] = true
				country, _, asn, _ := g.labels(id)
				wantCountry := geoManyCountries[i%len(geoManyCountries)]
				if !tt.country {
					wantCountry = ""
				}
				if tt.country && country != wantCountry {
					t.Fatalf("lookup(%s) country %q, want %q", geoManyAddr(i, 1), country, wantCountry)
				}
				if tt.asn && asn != "0" && asn != strconv.FormatUint(uint64(4200000000+i), 10) {
					t.Fatalf("lookup(%s) asn %q, want %d or 0", geoManyAddr(i, 1), asn, 4200000000+i)
				}
			}
			if len(seen) != tt.wantIDs {
				t.Errorf("%d distinct ids, want %d", len(seen), tt.wantIDs)
			}
			if got := g.labelSets(); got != tt.wantIDs {
				t.Errorf("labelSets() = %d, want %d", got, tt.wantIDs)
			}
			if got := g.stats.folded.Load(); got != tt.wantFolds {
				t.Errorf("folded = %d, want %d", got, tt.wantFolds)
			}
			// Another address of a folded network hits the same cached
			// decision path and counts again; the same address hits the
			// address cache and counts again too.
			if tt.wantFolds > 0 {
				before := g.stats.folded.Load()
				a, b := g.lookup(geoManyAddr(manyCount-1, 2)), g.lookup(geoManyAddr(manyCount-1, 2))
				if a != b {
					t.Errorf("repeated lookup gave %d then %d", a, b)
				}
				if got := g.stats.folded.Load() - before; got != 2 {
					t.Errorf("two folded lookups counted %d", got)
				}
			}
			wantWarnings := 0
			if tt.wantFolds > 0 {
				wantWarnings = 1
			}
			if n := strings.Count(logs.String(), "max-label-sets"); n != wantWarnings {
				t.Errorf("%d warnings logged, want %d:\n%s", n, wantWarnings, logs)
			}
		})
	}
}

// copyGeoFixture copies the fixture src to dst, replacing dst by rename as
// geoipupdate does.
func copyGeoFixture(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func TestGeoReload(t *testing.T) {
	logs, log := captureGeoLog()
	dir := t.TempDir()
	countryPath, asnPath := filepath.Join(dir, "country.mmdb"), filepath.Join(dir, "asn.mmdb")
	copyGeoFixture(t, geoFixture("country.mmdb"), countryPath)
	copyGeoFixture(t, geoFixture("asn.mmdb"), asnPath)
	g := openGeoLogged(t, geoConfig{countryPath: countryPath, asnPath: asnPath}, log)

	de := netip.MustParseAddr("198.51.100.1")
	changed := netip.MustParseAddr("10.1.0.1") // ZZ in country.mmdb, DE in many-lite.mmdb
	deID := g.lookup(de)
	if c, _, a, _ := g.labels(deID); c != "DE" || a != "64500" {
		t.Fatalf("lookup(%s) = (%q, %q) before reload", de, c, a)
	}
	if id := g.lookup(changed); id != 0 {
		t.Fatalf("lookup(%s) = %d before reload, want 0", changed, id)
	}

	// Capture goroutines and a scraper run through every reload.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				// DE in country.mmdb, ZZ in many-lite.mmdb.
				if c, _, a, _ := g.labels(g.lookup(de)); c != "DE" && c != "ZZ" || a != "64500" {
					bad.Store("lookup of 198.51.100.1 = " + c + " " + a)
				}
				// Fresh addresses force misses during the swaps.
				a := netip.AddrFrom4([4]byte{10, byte(1 + w), byte(i >> 8), byte(i)})
				c, _, _, _ := g.labels(g.lookup(a))
				if c != "ZZ" && c != "DE" && c != "BR" && c != "JP" && c != "NL" && c != "FR" && c != "IR" && c != "US" && c != "GB" {
					bad.Store("unexpected country " + c)
				}
				g.lookup(changed)
			}
		})
	}
	wg.Go(func() {
		for !stop.Load() {
			for id := range g.maxIDs() {
				g.labels(geoID(id))
			}
			_ = g.stats.buildTime[geoCountry].Load()
		}
	})

	steps := []struct {
		name        string
		country     string // fixture copied over the country file, "" = unchanged
		asn         string
		wantErr     string
		wantFails   [geoDatabaseCount]uint64
		wantChanged string // country of `changed` afterwards
		wantDE      string // country of `de` afterwards
	}{
		{name: "good replacement with new data", country: "many-lite.mmdb", wantChanged: "DE", wantDE: "ZZ"},
		{name: "corrupt country keeps the loaded one", country: "corrupt.mmdb",
			wantErr: "invalid MaxMind DB file", wantFails: [geoDatabaseCount]uint64{1, 0}, wantChanged: "DE", wantDE: "ZZ"},
		{name: "empty asn keeps the loaded one", asn: "empty.mmdb",
			wantErr: `-geoip.asn-database "` + asnPath + `": file is empty`, wantFails: [geoDatabaseCount]uint64{2, 1},
			wantChanged: "DE", wantDE: "ZZ"},
		{name: "wrong kind keeps the loaded one", country: "asn.mmdb", asn: "asn.mmdb",
			wantErr: "has no country data", wantFails: [geoDatabaseCount]uint64{3, 1}, wantChanged: "DE", wantDE: "ZZ"},
		{name: "back to the original", country: "country.mmdb", asn: "dbip-asn-lite.mmdb",
			wantFails: [geoDatabaseCount]uint64{3, 1}, wantChanged: "ZZ", wantDE: "DE"},
	}
	for _, st := range steps {
		if st.country != "" {
			copyGeoFixture(t, geoFixture(st.country), countryPath)
		}
		if st.asn != "" {
			copyGeoFixture(t, geoFixture(st.asn), asnPath)
		}
		err := g.reload()
		switch {
		case st.wantErr == "" && err != nil:
			t.Errorf("%s: reload() = %v, want nil", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Errorf("%s: reload() = %v, want error containing %q", st.name, err, st.wantErr)
		}
		for db := range geoDatabaseCount {
			if got := g.stats.reloadFailures[db].Load(); got != st.wantFails[db] {
				t.Errorf("%s: reloadFailures[%s] = %d, want %d", st.name, geoDatabaseNames[db], got, st.wantFails[db])
			}
			if got := g.stats.buildTime[db].Load(); got != geoFixtureEpoch {
				t.Errorf("%s: buildTime[%s] = %d", st.name, geoDatabaseNames[db], got)
			}
		}
		if c, _, a, _ := g.labels(g.lookup(de)); c != st.wantDE || a != "64500" {
			t.Errorf("%s: lookup(%s) = (%q, %q), want (%q, \"64500\")", st.name, de, c, a, st.wantDE)
		}
		if c, _, a, _ := g.labels(g.lookup(changed)); c != st.wantChanged || a != "0" {
			t.Errorf("%s: lookup(%s) = (%q, %q), want (%q, \"0\")", st.name, changed, c, a, st.wantChanged)
		}
	}
	// Interned combinations are never renumbered.
	if id := g.lookup(de); id != deID {
		t.Errorf("lookup(%s) = %d after the reloads, want %d as before", de, id, deID)
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Errorf("concurrent lookups: %v", v)
	}
	if !strings.Contains(logs.String(), "GeoIP database reloaded") {
		t.Errorf("reload outcomes not logged:\n%s", logs)
	}
	// Each failure is logged once: 3 country and 1 asn failures above.
	if n := strings.Count(logs.String(), "GeoIP reload failed"); n != 4 {
		t.Errorf("%d reload failures logged, want 4, one per failure:\n%s", n, logs)
	}
}

func TestGeoCacheEviction(t *testing.T) {
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	de := netip.MustParseAddr("198.51.100.1")
	deID := g.lookup(de)
	nl := netip.MustParseAddr("2001:db8:1::").As16()
	// Four times the cache size of distinct sources (a spoofed flood)
	// evicts every slot many times; each answer must stay right.
	for i := range uint64(4 * geoCacheSize) {
		a := nl
		binary.BigEndian.PutUint64(a[8:], i)
		if c, _, asn, _ := g.labels(g.lookup(netip.AddrFrom16(a))); c != "NL" || asn != "64502" {
			t.Fatalf("lookup(%s) = (%q, %q), want (NL, 64502)", netip.AddrFrom16(a), c, asn)
		}
		if i%1024 == 0 {
			if id := g.lookup(de); id != deID {
				t.Fatalf("lookup(%s) = %d after %d other sources, want %d", de, id, i, deID)
			}
		}
	}
	st := g.state.Load()
	st.dbs[geoASN].mu.Lock()
	n := len(st.dbs[geoASN].records)
	st.dbs[geoASN].mu.Unlock()
	if n != 2 {
		t.Errorf("ASN record cache holds %d records for two networks, want 2", n)
	}
}

// FuzzGeoLookup checks that any address resolves without panicking to an
// id below maxIDs whose labels come from the closed set.
func FuzzGeoLookup(f *testing.F) {
	for _, w := range geoFixtureTable {
		f.Add(netip.MustParseAddr(w.addr).AsSlice())
	}
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	g := openGeoTest(f, geoConfig{countryPath: geoFixture("city.mmdb"), asnPath: geoFixture("ipinfo-lite.mmdb"), maxLabelSets: 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, _ := netip.AddrFromSlice(b)
		id := g.lookup(a)
		if int(id) >= g.maxIDs() {
			t.Fatalf("lookup(%s) = %d, beyond maxIDs %d", a, id, g.maxIDs())
		}
		c, _, asn, _ := g.labels(id)
		if parseCountry(c) != [2]byte{c[0], c[1]} {
			t.Fatalf("lookup(%s) country %q is not an upper-case code", a, c)
		}
		if asn != "0" && (asn[0] < '1' || asn[0] > '9') {
			t.Fatalf("lookup(%s) asn %q is not a decimal number", a, asn)
		}
		if again := g.lookup(a); again != id {
			t.Fatalf("lookup(%s) = %d, then %d", a, id, again)
		}
	})
}

func TestGeoReloadShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipinfo.mmdb")
	copyGeoFixture(t, geoFixture("ipinfo-lite.mmdb"), path)
	g := openGeoTest(t, geoConfig{countryPath: path, asnPath: path})
	a := netip.MustParseAddr("10.1.0.1") // unmapped in ipinfo-lite, DE AS4200000000 in many-lite
	steps := []struct {
		name    string
		fixture string
		wantErr bool
		fails   [geoDatabaseCount]uint64 // reloadFailures afterwards
		country string
		asn     string
	}{
		{"unchanged file", "ipinfo-lite.mmdb", false, [2]uint64{0, 0}, "ZZ", "0"},
		{"new data", "many-lite.mmdb", false, [2]uint64{0, 0}, "DE", "4200000000"},
		{"corrupt keeps both", "corrupt.mmdb", true, [2]uint64{1, 1}, "DE", "4200000000"},
		// The country flag takes the new file, the ASN flag keeps the old.
		{"country-only file keeps the ASN data", "country.mmdb", true, [2]uint64{1, 2}, "ZZ", "4200000000"},
	}
	for _, st := range steps {
		copyGeoFixture(t, geoFixture(st.fixture), path)
		if err := g.reload(); (err != nil) != st.wantErr {
			t.Errorf("%s: reload() = %v, want error %v", st.name, err, st.wantErr)
		}
		for db := range geoDatabaseCount {
			if got := g.stats.reloadFailures[db].Load(); got != st.fails[db] {
				t.Errorf("%s: reloadFailures[%s] = %d, want %d", st.name, geoDatabaseNames[db], got, st.fails[db])
			}
		}
		if c, _, asn, _ := g.labels(g.lookup(a)); c != st.country || asn != st.asn {
			t.Errorf("%s: lookup(%s) = (%q, %q), want (%q, %q)", st.name, a, c, asn, st.country, st.asn)
		}
	}
}

func TestGeoLookupAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	g := openGeoTest(t, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	addrs := []netip.Addr{
		netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("::ffff:203.0.113.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("192.0.2.1"),
	}
	for _, a := range addrs {
		g.lookup(a)
	}
	if n := testing.AllocsPerRun(100, func() {
		for _, a := range addrs {
			sinkGeoID = g.lookup(a)
		}
	}); n != 0 {
		t.Fatalf("cache hit allocs = %v, want 0", n)
	}
}

// sinkGeoID keeps benchmark results alive.
var sinkGeoID geoID

func BenchmarkGeoLookupHit(b *testing.B) {
	g := openGeoTest(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	addrs := []netip.Addr{
		netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("::ffff:203.0.113.1"),
		netip.MustParseAddr("127.0.1.1"),
		netip.MustParseAddr("10.99.1.2"),
	}
	for _, a := range addrs {
		g.lookup(a)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		sinkGeoID = g.lookup(addrs[i&3])
	}
}

func BenchmarkGeoLookupHitIPv6(b *testing.B) {
	g := openGeoTest(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	addrs := []netip.Addr{
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("2001:db8:1::2"),
		netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8:2::1"),
	}
	for _, a := range addrs {
		g.lookup(a)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		sinkGeoID = g.lookup(addrs[i&3])
	}
}

func BenchmarkGeoLookupHitParallel(b *testing.B) {
	g := openGeoTest(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	a := netip.MustParseAddr("198.51.100.1")
	g.lookup(a)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var id geoID
		for pb.Next() {
			id = g.lookup(a)
		}
		sinkGeoID = id
	})
}

// BenchmarkGeoLookupSpoofedParallel is the flood from every capture
// goroutine at once: the miss path's locks are shared.
func BenchmarkGeoLookupSpoofedParallel(b *testing.B) {
	g := openGeoTest(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		a := netip.MustParseAddr("2001:db8:1::").As16()
		binary.BigEndian.PutUint32(a[6:10], uint32(next.Add(1))) // a /80 per goroutine
		var id geoID
		var n [8]byte
		for i := uint64(0); pb.Next(); i++ {
			binary.BigEndian.PutUint64(n[:], i)
			copy(a[10:], n[2:])
			id = g.lookup(netip.AddrFrom16(a))
		}
		sinkGeoID = id
	})
}

// benchmarkGeoMiss measures the cache-miss path (search tree walk, record
// cache, intern) for mapped addresses of the fixture ranges.
func benchmarkGeoMiss(b *testing.B, cfg geoConfig) {
	g := openGeoTest(b, cfg)
	addrs := []netip.Addr{
		netip.MustParseAddr("198.51.100.1"),
		netip.MustParseAddr("203.0.113.1"),
		netip.MustParseAddr("2001:db8:1::1"),
		netip.MustParseAddr("10.99.1.2"),
	}
	var e geoCacheEntry
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a := addrs[i&3]
		b16 := a.As16()
		st := g.state.Load()
		sinkGeoID = g.miss(st, a, binary.BigEndian.Uint64(b16[:8]), binary.BigEndian.Uint64(b16[8:]), &e)
	}
}

func BenchmarkGeoLookupMissCountry(b *testing.B) {
	benchmarkGeoMiss(b, geoConfig{countryPath: geoFixture("country.mmdb")})
}

func BenchmarkGeoLookupMissCity(b *testing.B) {
	benchmarkGeoMiss(b, geoConfig{countryPath: geoFixture("city.mmdb")})
}

func BenchmarkGeoLookupMissASN(b *testing.B) {
	benchmarkGeoMiss(b, geoConfig{asnPath: geoFixture("asn.mmdb")})
}

func BenchmarkGeoLookupMissBoth(b *testing.B) {
	benchmarkGeoMiss(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
}

func BenchmarkGeoLookupMissIPinfo(b *testing.B) {
	f := geoFixture("ipinfo-lite.mmdb")
	benchmarkGeoMiss(b, geoConfig{countryPath: f, asnPath: f})
}

// BenchmarkGeoLookupSpoofedDamaged is a spoofed-source flood into a range
// whose record fails to decode: with the failure cached by record offset,
// a never-repeating source costs the address hash, the tree walk and a
// record cache read, not a failing decode. Sub-benchmarks: every source
// new, and sources cycling through 4096 addresses (the address cache hit).
func BenchmarkGeoLookupSpoofedDamaged(b *testing.B) {
	for _, bc := range []struct {
		name string
		mask uint64
	}{{"distinct", math.MaxUint64}, {"repeating4096", 4095}} {
		b.Run(bc.name, func(b *testing.B) {
			g := openGeoTest(b, geoConfig{countryPath: geoFixture("damaged.mmdb"), asnPath: geoFixture("asn.mmdb")})
			base := netip.MustParseAddr("2001:db8:1::").As16()
			b.ReportAllocs()
			b.ResetTimer()
			for i := uint64(0); b.Loop(); i++ {
				a := base
				binary.BigEndian.PutUint64(a[8:], i&bc.mask) // all in 2001:db8:1::/48, damaged
				sinkGeoID = g.lookup(netip.AddrFrom16(a))
			}
			b.ReportMetric(float64(g.stats.errors[geoCountry].Load())/float64(b.N), "errors/op")
		})
	}
}

// BenchmarkGeoLookupSpoofed is a flood of never-repeating sources: every
// lookup hashes, misses the address cache, walks both trees and stores.
func BenchmarkGeoLookupSpoofed(b *testing.B) {
	g := openGeoTest(b, geoConfig{countryPath: geoFixture("country.mmdb"), asnPath: geoFixture("asn.mmdb")})
	b.ReportAllocs()
	b.ResetTimer()
	base := netip.MustParseAddr("2001:db8:1::").As16()
	for i := uint64(0); b.Loop(); i++ {
		a := base
		binary.BigEndian.PutUint64(a[8:], i) // all in 2001:db8:1::/48 (NL)
		sinkGeoID = g.lookup(netip.AddrFrom16(a))
	}
}

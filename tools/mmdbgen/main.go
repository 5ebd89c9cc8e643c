// Command mmdbgen writes the GeoIP test fixtures that the shared fixture set
// lacks (see ../../testdata/geo/README.md, section "Generated fixtures"):
//
//	city.mmdb           GeoLite2-City schema
//	dbip-asn-lite.mmdb  DB-IP ASN Lite schema
//	damaged.mmdb        GeoLite2-Country whose data section is overwritten
//	anonymous-ip.mmdb   a database of neither kind (wrong for both flags)
//	many-lite.mmdb      IPinfo Lite schema with many ASNs (cardinality cap)
//	country-ipv4.mmdb   GeoLite2-Country schema in an IPv4-only tree
//
// Every record is invented; all networks are documentation, loopback or
// private ranges. The output is deterministic: the build epoch is fixed and
// mmdbwriter writes map keys in sorted order. Tests do not run this program;
// run it by hand after changing it and commit the files:
//
//	cd tools/mmdbgen && go run . -out ../../testdata/geo
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"
)

// buildEpoch is 2025-01-01T00:00:00Z, the same as the shared fixtures.
const buildEpoch = 1735689600

// descriptionSuffix ends every fixture's description.en.
const descriptionSuffix = " Synthetic test fixture, not real GeoIP data. Test data, public domain (CC0)."

// manyCount is the number of /24 networks (and distinct ASNs) in
// many-lite.mmdb: more than the default -geoip.max-label-sets of 5,000.
const manyCount = 6000

// manyFirstASN is the ASN of the first many-lite.mmdb network, the start
// of the 32-bit private-use range (RFC 6996).
const manyFirstASN = 4200000000

// dataSectionSeparatorLen is the 16 zero bytes between the search tree and
// the data section (MaxMind DB format spec, "Data Section Separator").
const dataSectionSeparatorLen = 16

// metadataMarker starts the metadata section (MaxMind DB format spec).
var metadataMarker = []byte("\xAB\xCD\xEFMaxMind.com")

// country is one country of the fixtures, with the values of the shared
// README's "Country and continent values used" table.
type country struct {
	iso, name          string
	geonameID          uint32
	continent, cname   string
	continentGeonameID uint32
	eu                 bool
}

var (
	de = country{"DE", "Germany", 2921044, "EU", "Europe", 6255148, true}
	br = country{"BR", "Brazil", 3469034, "SA", "South America", 6255150, false}
	jp = country{"JP", "Japan", 1861060, "AS", "Asia", 6255147, false}
	nl = country{"NL", "Netherlands", 2750405, "EU", "Europe", 6255148, true}
	fr = country{"FR", "France", 3017382, "EU", "Europe", 6255148, true}
	ir = country{"IR", "Iran", 130758, "AS", "Asia", 6255147, false}
	us = country{"US", "United States", 6252001, "NA", "North America", 6255149, false}
	gb = country{"GB", "United Kingdom", 2635167, "EU", "Europe", 6255148, false}
)

// asnEntry is one network of the ASN fixtures (the shared asn.mmdb table).
type asnEntry struct {
	network string
	asn     uint32
	org     string
}

var asnEntries = []asnEntry{
	{"198.51.100.0/24", 64500, "Example Transit"},
	{"203.0.113.0/25", 64501, "Example Mobile"},
	{"2001:db8:1::/48", 64502, "Example Cloud"},
	{"127.0.1.0/24", 64510, "Loopback One"},
	{"127.0.2.0/24", 64511, "Loopback Two"},
	{"10.99.0.0/16", 4200000001, "Example Big"},
}

// cityEntry is one network of city.mmdb.
type cityEntry struct {
	network   string
	c         country
	city      string
	cityID    uint32
	lat, long float64
	tz        string
}

var cityEntries = []cityEntry{
	{"198.51.100.0/25", de, "Berlin", 2950159, 52.5244, 13.4105, "Europe/Berlin"},
	{"198.51.100.128/25", br, "São Paulo", 3448439, -23.5475, -46.6361, "America/Sao_Paulo"},
	{"203.0.113.0/24", jp, "Tokyo", 1850147, 35.6895, 139.6917, "Asia/Tokyo"},
	{"2001:db8:1::/48", nl, "Amsterdam", 2759794, 52.3740, 4.8897, "Europe/Amsterdam"},
	{"127.0.1.0/24", fr, "Paris", 2988507, 48.8534, 2.3488, "Europe/Paris"},
	{"127.0.2.0/24", ir, "Tehran", 112931, 35.6944, 51.4215, "Asia/Tehran"},
	{"10.99.0.0/16", us, "Chicago", 4887398, 41.8500, -87.6500, "America/Chicago"},
}

func main() {
	out := flag.String("out", "../../testdata/geo", "output directory")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "mmdbgen:", err)
		os.Exit(1)
	}
}

// run writes every fixture into dir.
func run(dir string) error {
	files := []struct {
		name string
		gen  func() ([]byte, error)
	}{
		{"city.mmdb", genCity},
		{"dbip-asn-lite.mmdb", genDBIPASN},
		{"damaged.mmdb", genDamaged},
		{"anonymous-ip.mmdb", genAnonymous},
		{"many-lite.mmdb", genMany},
		{"country-ipv4.mmdb", genCountryIPv4},
	}
	for _, f := range files {
		b, err := f.gen()
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// newTree returns a writer with the options common to every fixture.
func newTree(dbType, desc string, recordSize int, languages []string) (*mmdbwriter.Tree, error) {
	return mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:              buildEpoch,
		DatabaseType:            dbType,
		Description:             map[string]string{"en": desc + descriptionSuffix},
		IncludeReservedNetworks: true, // documentation, loopback and private ranges
		IPVersion:               6,
		Languages:               languages,
		RecordSize:              recordSize,
	})
}

// insert adds value at the network given in CIDR notation.
func insert(t *mmdbwriter.Tree, network string, value mmdbtype.DataType) error {
	_, n, err := net.ParseCIDR(network)
	if err != nil {
		return err
	}
	return t.Insert(n, value)
}

// serialize returns the database bytes.
func serialize(t *mmdbwriter.Tree) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := t.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// names is a names map with an English name only.
func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"en": mmdbtype.String(en)}
}

// countryMap is a GeoLite2 country or registered_country value.
func countryMap(c country) mmdbtype.Map {
	m := mmdbtype.Map{
		"iso_code":   mmdbtype.String(c.iso),
		"geoname_id": mmdbtype.Uint32(c.geonameID),
		"names":      names(c.name),
	}
	if c.eu {
		m["is_in_european_union"] = mmdbtype.Bool(true)
	}
	return m
}

// continentMap is a GeoLite2 continent value.
func continentMap(c country) mmdbtype.Map {
	return mmdbtype.Map{
		"code":       mmdbtype.String(c.continent),
		"geoname_id": mmdbtype.Uint32(c.continentGeonameID),
		"names":      names(c.cname),
	}
}

// genCity builds city.mmdb: the GeoLite2-City record layout (city,
// continent, country, location, registered_country, subdivisions) for the
// shared country.mmdb ranges, plus 127.0.3.0/24 with registered_country
// only and traits.is_anycast, which must resolve to ZZ.
func genCity() ([]byte, error) {
	t, err := newTree("GeoLite2-City", "GeoLite2 City schema.", 28, []string{"en"})
	if err != nil {
		return nil, err
	}
	for i, e := range cityEntries {
		rec := mmdbtype.Map{
			"city":      mmdbtype.Map{"geoname_id": mmdbtype.Uint32(e.cityID), "names": names(e.city)},
			"continent": continentMap(e.c),
			"country":   countryMap(e.c),
			"location": mmdbtype.Map{
				"accuracy_radius": mmdbtype.Uint16(100 + 10*i),
				"latitude":        mmdbtype.Float64(e.lat),
				"longitude":       mmdbtype.Float64(e.long),
				"time_zone":       mmdbtype.String(e.tz),
			},
			"registered_country": countryMap(e.c),
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{
				"geoname_id": mmdbtype.Uint32(e.cityID + 1),
				"iso_code":   mmdbtype.String("X" + string(rune('A'+i))),
				"names":      names(e.city + " Region"),
			}},
		}
		if e.c == us {
			rec["postal"] = mmdbtype.Map{"code": mmdbtype.String("60601")}
		}
		if err := insert(t, e.network, rec); err != nil {
			return nil, err
		}
	}
	anycast := mmdbtype.Map{
		"registered_country": countryMap(gb),
		"traits":             mmdbtype.Map{"is_anycast": mmdbtype.Bool(true)},
	}
	if err := insert(t, "127.0.3.0/24", anycast); err != nil {
		return nil, err
	}
	return serialize(t)
}

// genDBIPASN builds dbip-asn-lite.mmdb: DB-IP's ASN Lite layout, which is
// GeoLite2-ASN compatible, under DB-IP's database_type.
func genDBIPASN() ([]byte, error) {
	t, err := newTree("DBIP-ASN-Lite (compat=GeoLite2-ASN)", "DB-IP ASN Lite schema.", 32, nil)
	if err != nil {
		return nil, err
	}
	for _, e := range asnEntries {
		rec := mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(e.asn),
			"autonomous_system_organization": mmdbtype.String(e.org),
		}
		if err := insert(t, e.network, rec); err != nil {
			return nil, err
		}
	}
	return serialize(t)
}

// genDamaged builds damaged.mmdb: a GeoLite2-Country file for the ranges
// 198.51.100.0/24 (DE) and 2001:db8:1::/48 (NL) whose search tree and
// metadata are intact but whose data section is overwritten with the bytes
// 0x00 0xFF (an extended type byte naming type 262, which does not exist).
// It opens, lookups find the records, and decoding them fails.
func genDamaged() ([]byte, error) {
	t, err := newTree("GeoLite2-Country", "Damaged data section.", 24, []string{"en"})
	if err != nil {
		return nil, err
	}
	for _, e := range []struct {
		network string
		c       country
	}{{"198.51.100.0/24", de}, {"2001:db8:1::/48", nl}} {
		rec := mmdbtype.Map{"continent": continentMap(e.c), "country": countryMap(e.c)}
		if err := insert(t, e.network, rec); err != nil {
			return nil, err
		}
	}
	b, err := serialize(t)
	if err != nil {
		return nil, err
	}
	// The search tree is node_count × record_size × 2 / 8 bytes; read
	// node_count from the metadata of the file that was just written.
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, err
	}
	md := bytes.LastIndex(b, metadataMarker)
	start := int(r.Metadata.NodeCount*r.Metadata.RecordSize*2/8) + dataSectionSeparatorLen
	if md < 0 || start >= md {
		return nil, errors.New("no data section")
	}
	for i := start; i < md; i++ {
		if (i-start)%2 == 0 {
			b[i] = 0x00
		} else {
			b[i] = 0xFF
		}
	}
	// Check the promise of the README: it opens, the record is found, and
	// decoding it fails.
	r, err = maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("damaged file does not open: %w", err)
	}
	res := r.Lookup(netip.MustParseAddr("198.51.100.1"))
	var v any
	if !res.Found() || res.Decode(&v) == nil {
		return nil, errors.New("damaged file still decodes")
	}
	return b, nil
}

// genAnonymous builds anonymous-ip.mmdb: an anonymous-IP style database
// with neither country nor ASN data, under a database_type no reader
// knows, so the exporter must inspect its records and reject it for both
// flags.
func genAnonymous() ([]byte, error) {
	t, err := newTree("Example-Anonymous-IP", "Anonymous IP schema.", 24, nil)
	if err != nil {
		return nil, err
	}
	for _, n := range []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/48"} {
		rec := mmdbtype.Map{
			"is_anonymous":    mmdbtype.Bool(true),
			"is_public_proxy": mmdbtype.Bool(true),
		}
		if err := insert(t, n, rec); err != nil {
			return nil, err
		}
	}
	return serialize(t)
}

// genMany builds many-lite.mmdb: IPinfo Lite layout, manyCount networks
// 10.H.L.0/24 (H = 1 + i/256, L = i%256) with ASN manyFirstASN+i and a
// country cycling through manyCountries, for the cardinality cap tests.
func genMany() ([]byte, error) {
	t, err := newTree("ipinfo bundle_location_lite.mmdb", "IPinfo Lite schema, many ASNs.", 28, nil)
	if err != nil {
		return nil, err
	}
	countries := []country{de, br, jp, nl, fr, ir, us, gb}
	for i := range manyCount {
		c := countries[i%len(countries)]
		asn := uint32(manyFirstASN + i)
		rec := mmdbtype.Map{
			"as_domain":      mmdbtype.String(fmt.Sprintf("as%d.example", asn)),
			"as_name":        mmdbtype.String(fmt.Sprintf("Example %d", asn)),
			"asn":            mmdbtype.String(fmt.Sprintf("AS%d", asn)),
			"continent":      mmdbtype.String(c.cname),
			"continent_code": mmdbtype.String(c.continent),
			"country":        mmdbtype.String(c.name),
			"country_code":   mmdbtype.String(c.iso),
		}
		network := fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256)
		if err := insert(t, network, rec); err != nil {
			return nil, err
		}
	}
	return serialize(t)
}

// genCountryIPv4 builds country-ipv4.mmdb: GeoLite2-Country records in an
// IPv4-only tree (ip_version 4), where readers refuse IPv6 lookups.
func genCountryIPv4() ([]byte, error) {
	t, err := mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:              buildEpoch,
		DatabaseType:            "GeoLite2-Country",
		Description:             map[string]string{"en": "GeoLite2 Country schema, IPv4 only." + descriptionSuffix},
		IncludeReservedNetworks: true,
		IPVersion:               4,
		Languages:               []string{"en"},
		RecordSize:              24,
	})
	if err != nil {
		return nil, err
	}
	for _, e := range []struct {
		network string
		c       country
	}{{"198.51.100.0/24", de}, {"10.99.0.0/16", us}} {
		rec := mmdbtype.Map{"continent": continentMap(e.c), "country": countryMap(e.c)}
		if err := insert(t, e.network, rec); err != nil {
			return nil, err
		}
	}
	return serialize(t)
}

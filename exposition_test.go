package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// update rewrites the golden files: go test -run Golden -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// testGeoLabels are GeoIP-style label values by geoID, as a geoResolver
// with both databases would return them.
var testGeoLabels = []struct{ country, asn string }{
	{"ZZ", "0"}, {"US", "15169"}, {"DE", "3320"}, {"NL", "1136"}, {"US", "7922"},
}

// testGeo returns a geoResolver without databases whose geoID g has the
// labels values[g], as if the given databases were configured: GeoIP-style
// labels for the exposition tests.
func testGeo(values []struct{ country, asn string }, country, asn bool) *geoResolver {
	g := &geoResolver{countryOn: country, asnOn: asn, log: slog.New(slog.DiscardHandler)}
	for _, v := range values {
		g.sets = append(g.sets, geoLabel{country: v.country, asn: v.asn})
	}
	return g
}

// testDomains are the tunnel domains of the exposition tests.
var testDomains = []string{"u.example.net", "t.example.com"}

// fillTestState puts a fixed state into tab and cs: sessions on both
// domains and several label sets, one resolver change, one expired
// session, responses, a capped query and ignored packets.
func fillTestState(tab *sessionTable, cs *captureStats) {
	q := func(d uint16, n uint64, g geoID, l int, at float64) {
		tab.query(testSessionPacket(dirQuery, d, n, l), g, atSec(at))
	}
	r := func(d uint16, n uint64, g geoID, l int, at float64) {
		tab.response(testSessionPacket(dirResponse, d, n, l), g, atSec(at))
	}
	q(1, 1, 1, 120, 0)
	r(1, 1, 1, 900, 0.1)
	q(1, 2, 2, 110, 1)
	r(1, 2, 2, 1200, 1.1)
	q(1, 3, 1, 100, 2)
	q(1, 3, 4, 100, 3) // resolver change: moves from (1, 1) to (1, 4)
	r(1, 3, 4, 700, 3.1)
	q(0, 4, 3, 90, 4)
	r(0, 4, 3, 500, 4.1)
	q(1, 5, 0, 80, 5) // expires below
	tab.sweep(atSec(20))
	q(1, 1, 1, 120, 20)
	q(1, 2, 2, 110, 21)
	q(1, 3, 4, 100, 22)
	q(0, 4, 3, 90, 23)
	tab.sweep(atSec(35.5)) // session 5 expires
	q(0, 6, 3, 95, 36)
	q(0, 7, 3, 95, 36) // over the cap of 5: counted, not tracked
	cs.received.Store(1000)
	cs.dropped.Store(2)
	cs.duplicate.Store(7)
	for r := range ignoreReasonCount {
		if r != ignoreNone {
			cs.ignored[r].Store(uint64(r) * 10)
		}
	}
}

// fillTestHealth puts a fixed state into the pending-query and resolver
// tables: answered, unanswered and unmatched queries on both domains, an
// RCODE without a name, and resolvers on several label sets.
func fillTestHealth(pt *pendingTable, rt *resolverTable) {
	pq := func(d uint16, port uint16, at float64) {
		p := testPendingPacket(dirQuery, port, 1, "abcdefghijklmnop.t.example.com")
		p.domain = d
		pt.query(p, atSec(at))
	}
	pr := func(d uint16, port uint16, rcode uint8, at float64) {
		p := testPendingPacket(dirResponse, port, 1, "abcdefghijklmnop.t.example.com")
		p.domain, p.rcode = d, rcode
		pt.response(p, atSec(at))
	}
	pq(1, 1, 30)
	pr(1, 1, 0, 30.0004)
	pq(1, 2, 30)
	pr(1, 2, 0, 31.2)
	pq(0, 3, 30)
	pr(0, 3, 2, 30.02)
	pq(0, 4, 30)      // unanswered
	pr(0, 5, 9, 30.1) // unmatched, RCODE 9
	pq(1, 6, 36)      // still pending
	pt.sweep(atSec(35.5))
	rq := func(d uint16, addr string, g geoID) {
		rt.query(testResolverPacket(d, addr), g, atSec(36))
	}
	rq(1, "198.51.100.1", 1)
	rq(1, "198.51.100.2", 1)
	rq(1, "198.51.100.3", 4)
	rq(0, "2001:db8::1", 3)
}

// testTunnelDomains are testDomains with their settings: a VayDNS domain
// (NULL, 4-byte ClientIDs) and a dnstt one.
var testTunnelDomains = []tunnelDomain{vaydnsDomain(testDomains[0], 4, 10), dnsttDomain(testDomains[1])}

// testMetrics returns the exposition of the fixed state, with GeoIP-style
// labels when geo is set.
func testMetrics(t testing.TB, geo, fileMode bool) *metrics {
	geoIDs := 1
	cfg := metricsConfig{domains: testTunnelDomains, capture: &captureStats{}, fileMode: fileMode}
	if geo {
		geoIDs = len(testGeoLabels)
		cfg.geo = testGeo(testGeoLabels, true, true)
		cfg.geo.stats.errors[geoCountry].Store(3)
		cfg.geo.stats.errors[geoASN].Store(4)
		cfg.geo.stats.reloadFailures[geoASN].Store(1)
		cfg.geo.stats.buildTime[geoCountry].Store(1764547200)
		cfg.geo.stats.buildTime[geoASN].Store(1764633600)
		cfg.geo.stats.folded.Store(9)
	}
	cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 5, domains: len(testDomains), geoIDs: geoIDs})
	fillTestState(cfg.sessions, cfg.capture)
	cfg.pending = newPendingTable(100, len(testDomains))
	cfg.resolvers = newResolverTable(100, cfg.sessions)
	fillTestHealth(cfg.pending, cfg.resolvers)
	return newMetrics(cfg)
}

func TestExpositionGolden(t *testing.T) {
	tests := []struct {
		name string
		geo  bool
	}{
		{name: "nogeo", geo: false},
		{name: "geo", geo: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testMetrics(t, tt.geo, true).appendText(nil)
			path := filepath.Join("testdata", "exposition-"+tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("exposition differs from %s (run with -update and review the diff):\n%s", path, got)
			}
		})
	}
}

func TestAppendEscaped(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{name: "plain", in: "t.example.com", want: "t.example.com"},
		{name: "empty", in: "", want: ""},
		{name: "quote", in: `a"b`, want: `a\"b`},
		{name: "backslash", in: `a\b`, want: `a\\b`},
		{name: "newline", in: "a\nb", want: `a\nb`},
		{name: "all", in: "\\\"\n", want: `\\\"\n`},
		{name: "utf8", in: "Zürich\t", want: "Zürich\t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendEscaped([]byte("x"), tt.in)); got != "x"+tt.want {
				t.Errorf("appendEscaped(%q) = %q, want %q", tt.in, got, "x"+tt.want)
			}
		})
	}
}

// TestExpositionLabels checks which label sets and labels are exported:
// geoID 0 of every domain always, others once they had traffic; country
// and asn only as configured.
func TestExpositionLabels(t *testing.T) {
	tests := []struct {
		name             string
		geo, country, as bool
		want, notWant    []string
	}{
		{
			name:    "no-geo",
			want:    []string{`dnstt_queries_total{domain="t.example.com"} 1`, `dnstt_queries_total{domain="u.example.net"} 1`},
			notWant: []string{"country=", "asn=", "dnstt_exporter_geoip_"},
		},
		{
			name: "country-only", geo: true, country: true,
			want: []string{
				`dnstt_active_clients{domain="t.example.com",country="ZZ"} 0`,
				`dnstt_active_clients{domain="t.example.com",country="US"} 1`,
				`dnstt_exporter_geoip_errors_total{database="country"} 0`,
			},
			notWant: []string{"asn=", `country="DE"`, `database="asn"`},
		},
		{
			name: "asn-only", geo: true, as: true,
			want: []string{
				`dnstt_active_clients{domain="t.example.com",asn="0"} 0`,
				`dnstt_active_clients{domain="t.example.com",asn="15169"} 1`,
				`dnstt_active_clients{domain="u.example.net",asn="0"} 1`,
				`dnstt_exporter_geoip_build_timestamp_seconds{database="asn"} 0`,
			},
			notWant: []string{"country=", `database="country"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := metricsConfig{domains: dnsttDomains(testDomains...), fileMode: true}
			geoIDs := 1
			if tt.geo {
				geoIDs = len(testGeoLabels)
				cfg.geo = testGeo(testGeoLabels, tt.country, tt.as)
			}
			cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 10, domains: 2, geoIDs: geoIDs})
			m := newMetrics(cfg)
			if got := string(m.appendText(nil)); !strings.Contains(got, `dnstt_active_clients{domain="t.example.com"`) {
				t.Errorf("geoID 0 set of an idle domain missing:\n%s", got)
			}
			cfg.sessions.query(testSessionPacket(dirQuery, 1, 1, 10), 1, 0)
			cfg.sessions.query(testSessionPacket(dirQuery, 0, 1, 10), 0, 0)
			got := string(m.appendText(nil))
			for _, w := range tt.want {
				if !strings.Contains(got, w+"\n") {
					t.Errorf("missing %q in:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in:\n%s", w, got)
				}
			}
		})
	}
}

// TestExpositionFamilies checks HELP/TYPE once per family, in table order,
// and that file mode leaves out build_info, process_* and go_*.
func TestExpositionFamilies(t *testing.T) {
	for _, fileMode := range []bool{true, false} {
		t.Run("fileMode="+strconv.FormatBool(fileMode), func(t *testing.T) {
			text := string(testMetrics(t, true, fileMode).appendText(nil))
			last := -1
			seen := map[string]bool{}
			for line := range strings.Lines(text) {
				if !strings.HasPrefix(line, "# TYPE ") {
					continue
				}
				name := strings.Fields(line)[2]
				if seen[name] {
					t.Errorf("family %s typed twice", name)
				}
				seen[name] = true
				idx := -1
				for f := range families {
					if families[f].name == name {
						idx = f
					}
				}
				if idx <= last {
					t.Errorf("family %s out of table order", name)
				}
				last = idx
			}
			for _, name := range []string{"dnstt_exporter_build_info", "process_cpu_seconds_total", "go_goroutines", "go_gc_duration_seconds", "go_info", "process_open_fds"} {
				if seen[name] == fileMode {
					t.Errorf("family %s present = %v in fileMode=%v", name, seen[name], fileMode)
				}
			}
			// One series per domain, sorted by name; configuration, so
			// live only, as build_info.
			domainInfo := "# HELP dnstt_exporter_domain_info " + families[famDomainInfo].help + "\n" +
				"# TYPE dnstt_exporter_domain_info gauge\n" +
				`dnstt_exporter_domain_info{domain="t.example.com",protocol="dnstt",record_type="txt",clientid_bytes="8"} 1` + "\n" +
				`dnstt_exporter_domain_info{domain="u.example.net",protocol="vaydns",record_type="null",clientid_bytes="4"} 1` + "\n"
			if strings.Contains(text, domainInfo) == fileMode || seen["dnstt_exporter_domain_info"] == fileMode {
				t.Errorf("domain_info (%q) present = %v in fileMode=%v", domainInfo, !fileMode, fileMode)
			}
			ver, rev, goVer := buildInfo()
			info := `dnstt_exporter_build_info{version="` + ver + `",revision="` + rev + `",goversion="` + goVer + `",goos="` + runtime.GOOS + `",goarch="` + runtime.GOARCH + `"} 1` + "\n"
			if strings.Contains(text, info) == fileMode {
				t.Errorf("build_info as -version prints it (%q) present = %v in fileMode=%v", info, !fileMode, fileMode)
			}
			for _, r := range ignoreReasonNames[1:] {
				if !strings.Contains(text, `dnstt_exporter_packets_ignored_total{reason="`+r+`"} `) {
					t.Errorf("reason %s missing", r)
				}
			}
		})
	}
}

// TestExpositionPromtool runs `promtool check metrics` over full scrapes:
// no errors and no lint output.
func TestExpositionPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipUnlessCI(t, "promtool not installed (Debian package prometheus)")
	}
	escaping := []struct{ country, asn string }{{"ZZ", "0"}, {"A\"B", `1\2`}, {"new\nline", "3"}}
	tests := []struct {
		name string
		m    func() *metrics
	}{
		{name: "no-geo", m: func() *metrics { return testMetrics(t, false, false) }},
		{name: "geo", m: func() *metrics { return testMetrics(t, true, false) }},
		{name: "escaping", m: func() *metrics {
			cfg := metricsConfig{domains: dnsttDomains(`t.example.com`), geo: testGeo(escaping, true, true)}
			cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 10, domains: 1, geoIDs: len(escaping)})
			for g := range geoID(len(escaping)) {
				cfg.sessions.query(testSessionPacket(dirQuery, 0, uint64(g), 10), g, 0)
			}
			return newMetrics(cfg)
		}},
		{name: "file-mode", m: func() *metrics { return testMetrics(t, true, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.m().appendText(nil)
			if tt.name == "escaping" && !bytes.Contains(text, []byte(`country="A\"B",asn="1\\2"`)) {
				t.Errorf("escaped labels missing:\n%s", text)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = bytes.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Errorf("promtool check metrics: %v\n%s\non:\n%s", err, out, text)
			}
		})
	}
}

// discardResponse is a ResponseWriter that keeps only the header and the
// body length, without allocating.
type discardResponse struct {
	h http.Header
	n int
}

func (d *discardResponse) Header() http.Header { return d.h }

func (d *discardResponse) Write(b []byte) (int, error) {
	d.n += len(b)
	return len(b), nil
}

func (d *discardResponse) WriteHeader(int) {}

func TestExpositionAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, fileMode := range []bool{true, false} {
		m := testMetrics(t, true, fileMode)
		m.cfg.now = func() int64 { return atSec(36) }
		buf := m.appendText(nil)
		if n := testing.AllocsPerRun(50, func() { buf = m.appendText(buf[:0]) }); n != 0 {
			t.Errorf("appendText (fileMode %v): allocs = %v, want 0", fileMode, n)
		}
		for _, enc := range []string{"", "gzip"} {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if enc != "" {
				req.Header.Set("Accept-Encoding", enc)
			}
			w := &discardResponse{h: http.Header{}}
			m.ServeHTTP(w, req)
			if n := testing.AllocsPerRun(50, func() { m.ServeHTTP(w, req) }); n != 0 {
				t.Errorf("ServeHTTP (fileMode %v, Accept-Encoding %q): allocs = %v, want 0", fileMode, enc, n)
			}
		}
	}
}

func TestServeHTTP(t *testing.T) {
	m := testMetrics(t, true, true)
	want := m.appendText(nil)
	srv := httptest.NewServer(m)
	defer srv.Close()
	tests := []struct {
		name, accept string
		gzipped      bool
	}{
		{name: "plain", accept: "identity", gzipped: false},
		{name: "gzip", accept: "gzip", gzipped: true},
		{name: "gzip-q0", accept: "gzip;q=0, identity", gzipped: false},
		{name: "list", accept: "br;q=1.0, gzip;q=0.8, *;q=0.1", gzipped: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL, nil)
			req.Header.Set("Accept-Encoding", tt.accept) // set: the transport then leaves the body alone
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != contentType {
				t.Errorf("Content-Type = %q, want %q", ct, contentType)
			}
			var body io.Reader = resp.Body
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tt.gzipped {
				t.Fatalf("gzipped = %v, want %v", got, tt.gzipped)
			}
			if tt.gzipped {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			got, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("body differs from appendText:\n%s", got)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want bool
	}{
		{name: "none", in: nil, want: false},
		{name: "gzip", in: []string{"gzip"}, want: true},
		{name: "upper", in: []string{"GZIP"}, want: true},
		{name: "list", in: []string{"deflate, gzip"}, want: true},
		{name: "q0", in: []string{"gzip;q=0"}, want: false},
		{name: "q0.000", in: []string{"gzip; q=0.000"}, want: false},
		{name: "q0.5", in: []string{"gzip;q=0.5"}, want: true},
		{name: "star", in: []string{"*"}, want: true},
		{name: "identity", in: []string{"identity"}, want: false},
		{name: "second-header", in: []string{"br", "gzip"}, want: true},
		{name: "gzipx", in: []string{"gzipx"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := acceptsGzip(tt.in); got != tt.want {
				t.Errorf("acceptsGzip(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestExpositionOrderCache: new label sets appear sorted; without new
// ones the cached order is reused.
func TestExpositionOrderCache(t *testing.T) {
	cfg := metricsConfig{domains: dnsttDomains(testDomains...), geo: testGeo(testGeoLabels, true, true), fileMode: true}
	cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 10, domains: 2, geoIDs: len(testGeoLabels)})
	m := newMetrics(cfg)
	m.appendText(nil)
	cfg.sessions.query(testSessionPacket(dirQuery, 0, 1, 10), 0, 0) // a set already listed
	m.appendText(nil)
	if o2 := m.order.Load(); len(o2.sets) != 2 {
		t.Errorf("%d sets listed, want 2", len(o2.sets))
	}
	o := m.order.Load()
	m.appendText(nil)
	if m.order.Load() != o {
		t.Errorf("order rebuilt without new label sets")
	}
	for g := range geoID(len(testGeoLabels)) {
		cfg.sessions.query(testSessionPacket(dirQuery, 1, 1, 10), g, 0)
	}
	text := string(m.appendText(nil))
	var got []string
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "dnstt_queries_total{"); ok {
			got = append(got, rest[:strings.IndexByte(rest, '}')])
		}
	}
	want := []string{
		`domain="t.example.com",country="DE",asn="3320"`,
		`domain="t.example.com",country="NL",asn="1136"`,
		`domain="t.example.com",country="US",asn="7922"`,
		`domain="t.example.com",country="US",asn="15169"`,
		`domain="t.example.com",country="ZZ",asn="0"`,
		`domain="u.example.net",country="ZZ",asn="0"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// benchMetrics returns a file-mode exposition with sets label sets that
// had traffic, each with GeoIP-style labels: 6 × sets dnstt series.
func benchMetrics(sets int) *metrics {
	values := make([]struct{ country, asn string }, sets)
	for i := range values {
		values[i].country = string([]byte{'A' + byte(i/26%26), 'A' + byte(i%26)})
		values[i].asn = strconv.Itoa(1000 + i*37)
	}
	values[0] = struct{ country, asn string }{"ZZ", "0"}
	cfg := metricsConfig{domains: dnsttDomains("t.example.com"), geo: testGeo(values, true, true), fileMode: true}
	cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 1 << 20, domains: 1, geoIDs: sets})
	for g := range sets {
		for n := range 3 {
			cfg.sessions.query(testSessionPacket(dirQuery, 0, uint64(g*3+n), 60+n), geoID(g), atSec(float64(n)))
			cfg.sessions.response(testSessionPacket(dirResponse, 0, uint64(g*3+n), 900+n), geoID(g), atSec(float64(n)))
		}
	}
	return newMetrics(cfg)
}

// sinkBytes keeps benchmark output alive.
var sinkBytes []byte

func benchmarkScrape(b *testing.B, sets int) {
	m := benchMetrics(sets)
	buf := m.appendText(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		buf = m.appendText(buf[:0])
	}
	sinkBytes = buf
}

// BenchmarkScrape300: formatting 300 dnstt series (50 label sets × 6
// families) plus the file-mode self-metrics into a warm buffer.
func BenchmarkScrape300(b *testing.B) { benchmarkScrape(b, 50) }

// BenchmarkScrape10k: 10,002 dnstt series (1,667 label sets).
func BenchmarkScrape10k(b *testing.B) { benchmarkScrape(b, 1667) }

// BenchmarkScrapeGzip: gzip (BestSpeed) of the BenchmarkScrape300 output
// and of the BenchmarkScrape10k output, without formatting.
func BenchmarkScrapeGzip(b *testing.B) {
	for _, sets := range []int{50, 1667} {
		b.Run(strconv.Itoa(sets*6), func(b *testing.B) {
			text := benchMetrics(sets).appendText(nil)
			var w appendWriter
			zw, _ := gzip.NewWriterLevel(&w, gzip.BestSpeed)
			b.ReportAllocs()
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for range b.N {
				w.b = w.b[:0]
				zw.Reset(&w)
				zw.Write(text)
				zw.Close()
			}
			b.ReportMetric(float64(len(w.b)), "gzip-bytes")
			sinkBytes = w.b
		})
	}
}

// BenchmarkServeHTTP: the whole handler for 300 dnstt series, live mode
// (process_* and go_* read from /proc and the runtime), plain and gzip,
// into a ResponseWriter that discards.
func BenchmarkServeHTTP(b *testing.B) {
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			m := benchMetrics(50)
			m.cfg.fileMode = false
			m.proc = newProcStats()
			m.buildInfo = appendBuildInfo(nil)
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", enc)
			w := &discardResponse{h: http.Header{}}
			m.ServeHTTP(w, req)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.n = 0
				m.ServeHTTP(w, req)
			}
			b.ReportMetric(float64(w.n), "body-bytes")
		})
	}
}

// TestExpositionRealGeo builds the exposition with a geoResolver over the
// test databases and the default labels function (geo.labels): resolvers
// in several countries and ASNs, one without a record, and checks the
// labels and promtool.
func TestExpositionRealGeo(t *testing.T) {
	tests := []struct {
		name         string
		cfg          geoConfig
		want         []string
		notWant      []string
		wantDatabase []string
	}{
		{
			name: "country-and-asn",
			cfg:  geoConfig{countryPath: "testdata/geo/country.mmdb", asnPath: "testdata/geo/asn.mmdb"},
			want: []string{
				`dnstt_queries_total{domain="t.example.com",country="DE",asn="64500"} 2`,
				`dnstt_queries_total{domain="t.example.com",country="JP",asn="64501"} 1`,
				`dnstt_queries_total{domain="t.example.com",country="NL",asn="64502"} 1`,
				`dnstt_queries_total{domain="t.example.com",country="ZZ",asn="0"} 1`,
				`dnstt_bytes_out_total{domain="t.example.com",country="NL",asn="64502"} 700`,
				`dnstt_exporter_geoip_build_timestamp_seconds{database="asn"} 1735689600`,
				`dnstt_exporter_geoip_label_sets 4`,
			},
			wantDatabase: []string{"country", "asn"},
		},
		{
			name: "country-only",
			cfg:  geoConfig{countryPath: "testdata/geo/country.mmdb"},
			want: []string{
				`dnstt_queries_total{domain="t.example.com",country="DE"} 2`,
				`dnstt_active_clients{domain="t.example.com",country="ZZ"} 1`,
			},
			notWant:      []string{"asn="},
			wantDatabase: []string{"country"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			geo, err := openGeo(tt.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg := metricsConfig{domains: dnsttDomains("t.example.com"), geo: geo, fileMode: true}
			cfg.sessions = newSessionTable(sessionConfig{window: testWindow, max: 100, domains: 1, geoIDs: geo.maxIDs()})
			for n, addr := range []string{"198.51.100.10", "198.51.100.20", "203.0.113.10", "2001:db8:1::10", "192.0.2.7"} {
				p := testSessionPacket(dirQuery, 0, uint64(n), 100)
				p.resolver = netip.MustParseAddr(addr)
				cfg.sessions.query(p, geo.lookup(p.resolver), 0)
				p.dir, p.dnsLen = dirResponse, 700
				cfg.sessions.response(p, geo.lookup(p.resolver), 0)
			}
			text := newMetrics(cfg).appendText(nil)
			for _, w := range tt.want {
				if !bytes.Contains(text, []byte(w+"\n")) {
					t.Errorf("missing %q in:\n%s", w, text)
				}
			}
			for _, w := range tt.notWant {
				if bytes.Contains(text, []byte(w)) {
					t.Errorf("unexpected %q in:\n%s", w, text)
				}
			}
			for _, db := range tt.wantDatabase {
				if !bytes.Contains(text, []byte(`dnstt_exporter_geoip_errors_total{database="`+db+`"} 0`)) {
					t.Errorf("GeoIP errors of database %s missing:\n%s", db, text)
				}
			}
			if promtool, err := exec.LookPath("promtool"); err == nil {
				cmd := exec.Command(promtool, "check", "metrics")
				cmd.Stdin = bytes.NewReader(text)
				if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
					t.Errorf("promtool check metrics: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestAppendHistogram checks the histogram writer on its own (no metric
// uses it yet): cumulative buckets, le spelled as Prometheus spells it,
// _sum and _count, with and without labels; promtool accepts the result,
// and a warm buffer takes no allocation.
func TestAppendHistogram(t *testing.T) {
	latency := newHistogramBounds(0.001, 0.005, 0.25, 1, 5)
	size := newHistogramBounds(1024, 4096, 1<<20, 1<<30)
	tests := []struct {
		name   string
		bounds *histogramBounds
		labels string
		counts []uint64
		sum    float64
		want   string
	}{
		{
			name: "test_latency_seconds", bounds: latency, labels: `{domain="t.example.com"`,
			counts: []uint64{1, 2, 0, 3, 0, 4}, sum: 30.5,
			want: `test_latency_seconds_bucket{domain="t.example.com",le="0.001"} 1
test_latency_seconds_bucket{domain="t.example.com",le="0.005"} 3
test_latency_seconds_bucket{domain="t.example.com",le="0.25"} 3
test_latency_seconds_bucket{domain="t.example.com",le="1"} 6
test_latency_seconds_bucket{domain="t.example.com",le="5"} 6
test_latency_seconds_bucket{domain="t.example.com",le="+Inf"} 10
test_latency_seconds_sum{domain="t.example.com"} 30.5
test_latency_seconds_count{domain="t.example.com"} 10
`,
		},
		{
			name: "test_session_bytes", bounds: size,
			counts: []uint64{0, 0, 0, 0, 0}, sum: 0,
			want: `test_session_bytes_bucket{le="1024"} 0
test_session_bytes_bucket{le="4096"} 0
test_session_bytes_bucket{le="1.048576e+06"} 0
test_session_bytes_bucket{le="1.073741824e+09"} 0
test_session_bytes_bucket{le="+Inf"} 0
test_session_bytes_sum 0
test_session_bytes_count 0
`,
		},
	}
	var all []byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendHistogram(nil, tt.name, tt.bounds, []byte(tt.labels), tt.counts, tt.sum)
			if string(got) != tt.want {
				t.Errorf("appendHistogram(%s, %v, %g) =\n%s\nwant\n%s", tt.labels, tt.counts, tt.sum, got, tt.want)
			}
			buf := make([]byte, 0, 2*len(got))
			labels := []byte(tt.labels)
			checkNoAllocs(t, func() { buf = appendHistogram(buf[:0], tt.name, tt.bounds, labels, tt.counts, tt.sum) }, "appendHistogram %s", tt.name)
			all = append(all, "# HELP "+tt.name+" A test histogram.\n# TYPE "+tt.name+" histogram\n"...)
			all = append(all, got...)
		})
	}

	t.Run("promtool", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			skipUnlessCI(t, "promtool not installed (Debian package prometheus)")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(all)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("promtool check metrics: %v\n%s\non:\n%s", err, out, all)
		}
	})

	for _, bad := range [][]float64{{1, 1}, {2, 1}, {math.Inf(1)}, {math.NaN()}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newHistogramBounds(%v) did not panic", bad)
				}
			}()
			newHistogramBounds(bad...)
		}()
	}
}

// TestLabelSetFamilies: the per-label-set table lists families in the
// family table's order, ahead of every other family, each once, and every
// labelCount has a family.
func TestLabelSetFamilies(t *testing.T) {
	counted := map[labelCount]bool{}
	for i, lf := range labelSetFamilies {
		if lf.fam != metricFamily(i) {
			t.Errorf("labelSetFamilies[%d] is %s, want %s: the per-label-set families come first, in order",
				i, families[lf.fam].name, families[i].name)
		}
		if lf.gauge == gaugeNone {
			if counted[lf.count] {
				t.Errorf("labelCount %d has two families", lf.count)
			}
			counted[lf.count] = true
		}
	}
	for c := range labelCountCount {
		if !counted[c] {
			t.Errorf("labelCount %d has no family", c)
		}
	}
}

// TestHistogramCachedLabels: the label text labelOrder caches for the
// per-label-set samples serves a histogram's lines as it is.
func TestHistogramCachedLabels(t *testing.T) {
	m := testMetrics(t, true, false)
	o := m.currentOrder()
	labels := o.labels[:o.ends[0]]
	got := string(appendHistogram(nil, "test_seconds", newHistogramBounds(1), labels, []uint64{2, 1}, 3))
	l := string(labels) // {domain="…",country="…",asn="…"
	want := "test_seconds_bucket" + l + `,le="1"} 2` + "\n" +
		"test_seconds_bucket" + l + `,le="+Inf"} 3` + "\n" +
		"test_seconds_sum" + l + "} 3\n" +
		"test_seconds_count" + l + "} 3\n"
	if !strings.HasPrefix(l, `{domain="`) || !strings.Contains(l, `",asn="`) || got != want {
		t.Errorf("with cached labels %s:\n%s\nwant\n%s", l, got, want)
	}
}

package main

import (
	"compress/gzip"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// metricsConfig is what the exposition reads.
type metricsConfig struct {
	domains  []string      // normalised tunnel domains, index = domain id
	sessions *sessionTable // dnstt counters and sessions
	capture  *captureStats // packet self-metrics
	geo      *geoResolver  // nil without GeoIP
	fileMode bool          // dnstt and packet/session/GeoIP self-metrics only (SPEC section 5)
	now      func() int64  // the sessions' clock, for a scrape-time sweep; nil = no sweep
	http     *httpStats    // the HTTP server's bounds; nil in file mode

	// labels returns the GeoIP label values of a geoID, as
	// geoResolver.labels does; nil means geo.labels (no labels when geo is
	// nil). Tests set it to exercise GeoIP-style labels without databases.
	labels func(geoID) (country string, hasCountry bool, asn string, hasASN bool)
}

// metricFamily is a metric family of the exposition.
type metricFamily uint8

// The families, in output order (SPEC section 5).
const (
	famActive metricFamily = iota
	famPeak
	famQueries
	famBytesIn
	famBytesOut
	famSessions
	famReceived
	famDropped
	famIgnored
	famDuplicate
	famTracked
	famUntracked
	famGeoErrors
	famGeoReloadFailures
	famGeoBuildTime
	famGeoFolded
	famGeoLabelSets
	famHTTPConnsRefused
	famHTTPRequestsRejected
	famBuildInfo
	famProcessCPU
	famProcessMaxFDs
	famProcessOpenFDs
	famProcessRSS
	famProcessStartTime
	famProcessVirtual
	famGoGCDuration
	famGoGoroutines
	famGoInfo
	famGoAllocBytes
	famGoAllocBytesTotal
	famGoFrees
	famGoHeapObjects
	famGoLastGC
	famGoMallocs
	famGoNextGC
	famGoSysBytes
	famGoThreads
	familyCount
)

// familyDesc is a family's metadata.
type familyDesc struct {
	name string
	typ  string // counter, gauge or summary
	help string
}

// resolverNote ends the HELP of every dnstt family: SPEC section 3 wants
// the meaning of the GeoIP labels stated.
const resolverNote = " Labels country and asn, when present, describe the recursive resolver" +
	" that forwarded the traffic (often a public or ISP resolver), not the dnstt user."

// families is the family table. exposition.go is the only file that spells
// a metric name.
var families = [familyCount]familyDesc{
	famActive: {"dnstt_active_clients", "gauge",
		"dnstt sessions (domain, ClientID) whose latest query is less than -dnstt.window old," +
			" by the label set of that query." + resolverNote},
	famPeak: {"dnstt_peak_clients", "gauge",
		"Highest value dnstt_active_clients has had for this label set since the exporter started." + resolverNote},
	famQueries: {"dnstt_queries_total", "counter",
		"dnstt queries (TXT queries for a name under a tunnel domain carrying a ClientID), each datagram once." + resolverNote},
	famBytesIn: {"dnstt_bytes_in_total", "counter",
		"DNS message bytes (UDP length minus 8) of dnstt queries." + resolverNote},
	famBytesOut: {"dnstt_bytes_out_total", "counter",
		"DNS message bytes (UDP length minus 8) of dnstt responses, by the resolver they were sent to." + resolverNote},
	famSessions: {"dnstt_sessions_total", "counter",
		"dnstt sessions that became active: the first query of a ClientID, or its first query" +
			" after more than -dnstt.window without one." + resolverNote},
	famReceived: {"dnstt_exporter_packets_received_total", "counter",
		"Packets read from the capture, every copy included."},
	famDropped: {"dnstt_exporter_packets_dropped_total", "counter",
		"Packets the kernel dropped before the exporter could read them (PACKET_STATISTICS, accumulated)."},
	famIgnored: {"dnstt_exporter_packets_ignored_total", "counter",
		"Packets not counted as dnstt queries or responses, by the first rule they fail."},
	famDuplicate: {"dnstt_exporter_packets_duplicate_total", "counter",
		"Copies of an already counted dnstt datagram seen on another interface within 2 seconds; not counted again."},
	famTracked: {"dnstt_exporter_sessions_tracked", "gauge",
		"dnstt sessions held in the session table."},
	famUntracked: {"dnstt_exporter_untracked_queries_total", "counter",
		"dnstt queries of sessions not tracked because -sessions.max was reached;" +
			" they count in queries and bytes but not in active, peak or sessions."},
	famGeoErrors: {"dnstt_exporter_geoip_errors_total", "counter",
		"GeoIP lookups that failed, by database. A failed address is cached like any other (as ZZ or asn 0) and counts once per cache entry."},
	famGeoReloadFailures: {"dnstt_exporter_geoip_reload_failures_total", "counter",
		"GeoIP database reloads that failed and kept the previously loaded file, by database."},
	famGeoBuildTime: {"dnstt_exporter_geoip_build_timestamp_seconds", "gauge",
		"Build time of the loaded GeoIP database, in seconds since the Unix epoch, by database."},
	famGeoFolded: {"dnstt_exporter_geoip_folded_lookups_total", "counter",
		"GeoIP lookups of a new (country, asn) combination counted under asn 0 of its country" +
			" because -geoip.max-label-sets was reached."},
	famGeoLabelSets: {"dnstt_exporter_geoip_label_sets", "gauge",
		"GeoIP (country, asn) label combinations handed out so far; once -geoip.max-label-sets is reached," +
			" new combinations count under asn 0 of their country."},
	famHTTPConnsRefused: {"dnstt_exporter_http_connections_refused_total", "counter",
		"HTTP connections closed as soon as they were accepted because -web.max-connections were open."},
	famHTTPRequestsRejected: {"dnstt_exporter_http_requests_rejected_total", "counter",
		"HTTP requests answered 503 because -web.max-requests were being served."},
	famBuildInfo: {"dnstt_exporter_build_info", "gauge",
		"Always 1, labelled by the exporter's version, VCS revision and Go version."},
	famProcessCPU: {"process_cpu_seconds_total", "counter",
		"User and system CPU time used by the process, in seconds."},
	famProcessMaxFDs: {"process_max_fds", "gauge",
		"Limit on open file descriptors (soft RLIMIT_NOFILE)."},
	famProcessOpenFDs: {"process_open_fds", "gauge",
		"Open file descriptors."},
	famProcessRSS: {"process_resident_memory_bytes", "gauge",
		"Resident memory, in bytes."},
	famProcessStartTime: {"process_start_time_seconds", "gauge",
		"When the process started, in seconds since the Unix epoch."},
	famProcessVirtual: {"process_virtual_memory_bytes", "gauge",
		"Virtual memory, in bytes."},
	famGoGCDuration: {"go_gc_duration_seconds", "summary",
		"Stop-the-world pause durations of recent garbage collection cycles, in seconds."},
	famGoGoroutines: {"go_goroutines", "gauge",
		"Goroutines that exist now."},
	famGoInfo: {"go_info", "gauge",
		"Always 1, labelled by the Go version the exporter was built with."},
	famGoAllocBytes: {"go_memstats_alloc_bytes", "gauge",
		"Bytes of allocated heap objects not yet freed."},
	famGoAllocBytesTotal: {"go_memstats_alloc_bytes_total", "counter",
		"Bytes allocated on the heap since start, freed or not."},
	famGoFrees: {"go_memstats_frees_total", "counter",
		"Heap objects freed since start."},
	famGoHeapObjects: {"go_memstats_heap_objects", "gauge",
		"Allocated heap objects not yet freed."},
	famGoLastGC: {"go_memstats_last_gc_time_seconds", "gauge",
		"When the latest garbage collection finished, in seconds since the Unix epoch; 0 before the first."},
	famGoMallocs: {"go_memstats_mallocs_total", "counter",
		"Heap objects allocated since start."},
	famGoNextGC: {"go_memstats_next_gc_bytes", "gauge",
		"Heap size at which the next garbage collection is due, in bytes."},
	famGoSysBytes: {"go_memstats_sys_bytes", "gauge",
		"Bytes of memory the Go runtime obtained from the operating system."},
	famGoThreads: {"go_threads", "gauge",
		"Live OS threads owned by the Go runtime."},
}

// contentType is the text exposition format 0.0.4 media type.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// metrics formats the exposition and serves it over HTTP. It is safe for
// concurrent use; concurrent scrapes share no buffer and take no lock but
// the session shards' (one at a time, for the scrape-time sweep).
type metrics struct {
	cfg        metricsConfig
	hasCountry bool          // the configuration exports a country label
	hasASN     bool          // … an asn label
	geoDBs     []geoDatabase // configured databases, for the GeoIP self-metrics
	order      atomic.Pointer[labelOrder]
	buildInfo  []byte     // the build_info family, formatted once
	proc       *procStats // nil in file mode
	scratch    sync.Pool  // *scrapeScratch

	// Response header values, shared read-only by every response, so that
	// setting a header does not allocate.
	hdrContentType, hdrGzip, hdrVary []string
}

// labelOrder is the sorted list of exported label sets. It is immutable
// once published; a new one replaces it when label sets gain traffic.
type labelOrder struct {
	seen uint32  // sessionTable.seenSets when built
	sets []int32 // indexes into sessionTable.sets, in output order
	// prefixes holds, for each dnstt family f and each k, the start of its
	// sample line up to the value, `name{domain="…",…} `, at
	// prefixes[ends[i-1]:ends[i]] with i = int(f)*len(sets)+k: formatting
	// a sample is then one copy and one number (BenchmarkScrape300).
	prefixes []byte
	ends     []int32
}

// labelSnapshot is one label set's numbers, copied before formatting.
type labelSnapshot struct {
	active, peak                              int64
	queries, bytesIn, bytesOut, sessionsTotal uint64
}

// scrapeScratch holds one scrape's buffers; pooled.
type scrapeScratch struct {
	text  []byte
	snaps []labelSnapshot
	proc  procSample
	zip   appendWriter
	gz    *gzip.Writer
}

// appendWriter is an io.Writer that appends to a byte slice.
type appendWriter struct{ b []byte }

// Write appends p.
func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// newMetrics returns the exposition of cfg. A domain list that does not
// match the session table is a bug in the caller.
func newMetrics(cfg metricsConfig) *metrics {
	if cfg.sessions == nil || len(cfg.domains) != cfg.sessions.domains {
		panic("BUG: metricsConfig domains do not match the session table")
	}
	if cfg.capture == nil {
		cfg.capture = &captureStats{}
	}
	if cfg.labels == nil {
		if cfg.geo != nil {
			cfg.labels = cfg.geo.labels
		} else {
			cfg.labels = func(geoID) (string, bool, string, bool) { return "", false, "", false }
		}
	}
	m := &metrics{
		cfg:            cfg,
		hdrContentType: []string{contentType},
		hdrGzip:        []string{"gzip"},
		hdrVary:        []string{"Accept-Encoding"},
	}
	_, m.hasCountry, _, m.hasASN = cfg.labels(0)
	if cfg.geo != nil {
		if m.hasCountry {
			m.geoDBs = append(m.geoDBs, geoCountry)
		}
		if m.hasASN {
			m.geoDBs = append(m.geoDBs, geoASN)
		}
	}
	m.scratch.New = func() any { return new(scrapeScratch) }
	if !cfg.fileMode {
		m.proc = newProcStats()
		m.buildInfo = appendBuildInfo(nil)
	}
	return m
}

// appendBuildInfo appends the build_info family, labelled as -version
// prints it (buildInfo in exporter.go: -ldflags version, else the module
// version; VCS revision; Go version).
func appendBuildInfo(dst []byte) []byte {
	ver, rev, goVer := buildInfo()
	dst = appendHeader(dst, famBuildInfo)
	dst = append(dst, families[famBuildInfo].name...)
	dst = append(dst, `{version="`...)
	dst = appendEscaped(dst, ver)
	dst = append(dst, `",revision="`...)
	dst = appendEscaped(dst, rev)
	dst = append(dst, `",goversion="`...)
	dst = appendEscaped(dst, goVer)
	dst = append(dst, "\"} 1\n"...)
	return dst
}

// appendEscaped appends s escaped as a label value: backslash, double
// quote and line feed (text format 0.0.4).
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '"':
			dst = append(dst, `\"`...)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// familyHeaders are the HELP and TYPE lines of every family, formatted
// once.
var familyHeaders = formatHeaders()

// formatHeaders formats familyHeaders.
func formatHeaders() (h [familyCount]string) {
	for f := range h {
		h[f] = string(formatHeader(nil, metricFamily(f)))
	}
	return h
}

// appendHeader appends the HELP and TYPE lines of f.
func appendHeader(dst []byte, f metricFamily) []byte {
	return append(dst, familyHeaders[f]...)
}

// formatHeader appends the HELP and TYPE lines of f. HELP escapes only
// backslash and line feed (text format 0.0.4).
func formatHeader(dst []byte, f metricFamily) []byte {
	d := &families[f]
	dst = append(dst, "# HELP "...)
	dst = append(dst, d.name...)
	dst = append(dst, ' ')
	for i := 0; i < len(d.help); i++ {
		switch c := d.help[i]; c {
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		default:
			dst = append(dst, c)
		}
	}
	dst = append(dst, "\n# TYPE "...)
	dst = append(dst, d.name...)
	dst = append(dst, ' ')
	dst = append(dst, d.typ...)
	return append(dst, '\n')
}

// appendUintSample appends `name{label="value"} v` (no labels when label
// is empty).
func appendUintSample(dst []byte, f metricFamily, label, value string, v uint64) []byte {
	dst = appendName(dst, f, label, value)
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, '\n')
}

// appendIntSample is appendUintSample for a signed value.
func appendIntSample(dst []byte, f metricFamily, label, value string, v int64) []byte {
	dst = appendName(dst, f, label, value)
	dst = strconv.AppendInt(dst, v, 10)
	return append(dst, '\n')
}

// appendFloatSample is appendUintSample for a float value.
func appendFloatSample(dst []byte, f metricFamily, label, value string, v float64) []byte {
	dst = appendName(dst, f, label, value)
	dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	return append(dst, '\n')
}

// appendName appends the metric name, the optional single label and the
// space before the value.
func appendName(dst []byte, f metricFamily, label, value string) []byte {
	dst = append(dst, families[f].name...)
	if label != "" {
		dst = append(dst, '{')
		dst = append(dst, label...)
		dst = append(dst, `="`...)
		dst = appendEscaped(dst, value)
		dst = append(dst, `"}`...)
	}
	return append(dst, ' ')
}

// labelKey is a label set's sort key.
type labelKey struct {
	set                  int32
	domain, country, asn string
}

// compareASN orders decimal ASNs numerically: shorter is smaller.
func compareASN(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// currentOrder returns the label sets to export, sorted by (domain,
// country, asn), rebuilding the cached order when label sets gained
// traffic since it was built (the only time a scrape allocates). The geoID
// 0 set of every domain is always listed, so that rate() works from start.
func (m *metrics) currentOrder() *labelOrder {
	t := m.cfg.sessions
	seen := t.seenSets.Load()
	if o := m.order.Load(); o != nil && o.seen == seen {
		return o
	}
	var keys []labelKey
	for i := range t.sets {
		g, d := geoID(i/t.domains), i%t.domains
		if g != 0 && !t.sets[i].seen.Load() {
			continue
		}
		country, _, asn, _ := m.cfg.labels(g)
		keys = append(keys, labelKey{set: int32(i), domain: m.cfg.domains[d], country: country, asn: asn})
	}
	slices.SortFunc(keys, func(a, b labelKey) int {
		if c := strings.Compare(a.domain, b.domain); c != 0 {
			return c
		}
		if m.hasCountry {
			if c := strings.Compare(a.country, b.country); c != 0 {
				return c
			}
		}
		if m.hasASN {
			if c := compareASN(a.asn, b.asn); c != 0 {
				return c
			}
		}
		return int(a.set - b.set)
	})
	o := &labelOrder{seen: seen, sets: make([]int32, len(keys))}
	for k, key := range keys {
		o.sets[k] = key.set
	}
	for f := famActive; f <= famSessions; f++ {
		for _, key := range keys {
			b := append(o.prefixes, families[f].name...)
			b = append(b, `{domain="`...)
			b = appendEscaped(b, key.domain)
			if m.hasCountry {
				b = append(b, `",country="`...)
				b = appendEscaped(b, key.country)
			}
			if m.hasASN {
				b = append(b, `",asn="`...)
				b = appendEscaped(b, key.asn)
			}
			o.prefixes = append(b, `"} `...)
			o.ends = append(o.ends, int32(len(o.prefixes)))
		}
	}
	m.order.Store(o)
	return o
}

// appendText appends the full exposition in text format 0.0.4 to dst.
func (m *metrics) appendText(dst []byte) []byte {
	sc := m.scratch.Get().(*scrapeScratch)
	dst = m.appendTo(dst, sc)
	m.scratch.Put(sc)
	return dst
}

// appendTo is appendText with the scrape's scratch buffers.
func (m *metrics) appendTo(dst []byte, sc *scrapeScratch) []byte {
	t := m.cfg.sessions
	if m.cfg.now != nil {
		t.sweep(m.cfg.now())
	}
	o := m.currentOrder()

	// Snapshot every number first, then format: peak is read after
	// active, and a peak not yet raised to a just-raised active shows as
	// that active, so that no output has active > peak.
	snaps := sc.snaps[:0]
	for _, i := range o.sets {
		c := &t.sets[i]
		s := labelSnapshot{active: c.active.Load()}
		s.peak = max(c.peak.Load(), s.active)
		s.queries = c.queries.Load()
		s.bytesIn = c.bytesIn.Load()
		s.bytesOut = c.bytesOut.Load()
		s.sessionsTotal = c.sessions.Load()
		snaps = append(snaps, s)
	}
	sc.snaps = snaps
	if m.proc != nil {
		m.proc.read(&sc.proc)
	}

	start := int32(0)
	i := 0
	for f := famActive; f <= famSessions; f++ {
		dst = appendHeader(dst, f)
		for k := range snaps {
			s := &snaps[k]
			end := o.ends[i]
			dst = append(dst, o.prefixes[start:end]...)
			start = end
			i++
			switch f {
			case famActive:
				dst = strconv.AppendInt(dst, s.active, 10)
			case famPeak:
				dst = strconv.AppendInt(dst, s.peak, 10)
			case famQueries:
				dst = strconv.AppendUint(dst, s.queries, 10)
			case famBytesIn:
				dst = strconv.AppendUint(dst, s.bytesIn, 10)
			case famBytesOut:
				dst = strconv.AppendUint(dst, s.bytesOut, 10)
			case famSessions:
				dst = strconv.AppendUint(dst, s.sessionsTotal, 10)
			}
			dst = append(dst, '\n')
		}
	}

	cs := m.cfg.capture
	dst = appendHeader(dst, famReceived)
	dst = appendUintSample(dst, famReceived, "", "", cs.received.Load())
	dst = appendHeader(dst, famDropped)
	dst = appendUintSample(dst, famDropped, "", "", cs.dropped.Load())
	dst = appendHeader(dst, famIgnored)
	for r := ignoreNone + 1; r < ignoreReasonCount; r++ {
		dst = appendUintSample(dst, famIgnored, "reason", ignoreReasonNames[r], cs.ignored[r].Load())
	}
	dst = appendHeader(dst, famDuplicate)
	dst = appendUintSample(dst, famDuplicate, "", "", cs.duplicate.Load())
	dst = appendHeader(dst, famTracked)
	dst = appendIntSample(dst, famTracked, "", "", t.tracked.Load())
	dst = appendHeader(dst, famUntracked)
	dst = appendUintSample(dst, famUntracked, "", "", t.untracked.Load())

	if g := m.cfg.geo; g != nil {
		gs := &g.stats
		if len(m.geoDBs) > 0 {
			dst = appendHeader(dst, famGeoErrors)
			for _, db := range m.geoDBs {
				dst = appendUintSample(dst, famGeoErrors, "database", geoDatabaseNames[db], gs.errors[db].Load())
			}
			dst = appendHeader(dst, famGeoReloadFailures)
			for _, db := range m.geoDBs {
				dst = appendUintSample(dst, famGeoReloadFailures, "database", geoDatabaseNames[db], gs.reloadFailures[db].Load())
			}
			dst = appendHeader(dst, famGeoBuildTime)
			for _, db := range m.geoDBs {
				dst = appendIntSample(dst, famGeoBuildTime, "database", geoDatabaseNames[db], gs.buildTime[db].Load())
			}
		}
		dst = appendHeader(dst, famGeoFolded)
		dst = appendUintSample(dst, famGeoFolded, "", "", gs.folded.Load())
		dst = appendHeader(dst, famGeoLabelSets)
		dst = appendIntSample(dst, famGeoLabelSets, "", "", int64(g.labelSets()))
	}

	if m.cfg.fileMode {
		return dst
	}
	if hs := m.cfg.http; hs != nil {
		dst = appendHeader(dst, famHTTPConnsRefused)
		dst = appendUintSample(dst, famHTTPConnsRefused, "", "", hs.refusedConns.Load())
		dst = appendHeader(dst, famHTTPRequestsRejected)
		dst = appendUintSample(dst, famHTTPRequestsRejected, "", "", hs.rejectedRequests.Load())
	}
	dst = append(dst, m.buildInfo...)
	return appendProcess(dst, &sc.proc)
}

// appendProcess appends the process_* and go_* families of s.
func appendProcess(dst []byte, s *procSample) []byte {
	if s.statOK {
		dst = appendHeader(dst, famProcessCPU)
		dst = appendFloatSample(dst, famProcessCPU, "", "", s.cpuSeconds)
	}
	if s.maxFDsOK {
		dst = appendHeader(dst, famProcessMaxFDs)
		dst = appendUintSample(dst, famProcessMaxFDs, "", "", s.maxFDs)
	}
	if s.fdsOK {
		dst = appendHeader(dst, famProcessOpenFDs)
		dst = appendUintSample(dst, famProcessOpenFDs, "", "", s.openFDs)
	}
	if s.statOK {
		dst = appendHeader(dst, famProcessRSS)
		dst = appendUintSample(dst, famProcessRSS, "", "", s.rss)
	}
	if s.startTime > 0 {
		dst = appendHeader(dst, famProcessStartTime)
		dst = appendFloatSample(dst, famProcessStartTime, "", "", s.startTime)
	}
	if s.statOK {
		dst = appendHeader(dst, famProcessVirtual)
		dst = appendUintSample(dst, famProcessVirtual, "", "", s.vsize)
	}

	dst = appendHeader(dst, famGoGCDuration)
	for i, q := range gcQuantiles {
		dst = append(dst, families[famGoGCDuration].name...)
		dst = append(dst, `{quantile="`...)
		dst = strconv.AppendFloat(dst, q, 'g', -1, 64)
		dst = append(dst, `"} `...)
		dst = strconv.AppendFloat(dst, s.gcQuantiles[i], 'g', -1, 64)
		dst = append(dst, '\n')
	}
	dst = append(dst, families[famGoGCDuration].name...)
	dst = append(dst, "_sum "...)
	dst = strconv.AppendFloat(dst, s.gcSum, 'g', -1, 64)
	dst = append(dst, '\n')
	dst = append(dst, families[famGoGCDuration].name...)
	dst = append(dst, "_count "...)
	dst = strconv.AppendUint(dst, s.gcCount, 10)
	dst = append(dst, '\n')

	dst = appendHeader(dst, famGoGoroutines)
	dst = appendUintSample(dst, famGoGoroutines, "", "", s.rt[rtGoroutines])
	dst = appendHeader(dst, famGoInfo)
	dst = appendUintSample(dst, famGoInfo, "version", runtime.Version(), 1)
	dst = appendHeader(dst, famGoAllocBytes)
	dst = appendUintSample(dst, famGoAllocBytes, "", "", s.rt[rtHeapObjectBytes])
	dst = appendHeader(dst, famGoAllocBytesTotal)
	dst = appendUintSample(dst, famGoAllocBytesTotal, "", "", s.rt[rtAllocBytesTotal])
	// Tiny allocations are counted in neither allocs:objects nor
	// frees:objects (runtime/metrics docs); add them to both, as MemStats does.
	dst = appendHeader(dst, famGoFrees)
	dst = appendUintSample(dst, famGoFrees, "", "", s.rt[rtFreeObjects]+s.rt[rtTinyAllocs])
	dst = appendHeader(dst, famGoHeapObjects)
	dst = appendUintSample(dst, famGoHeapObjects, "", "", s.rt[rtHeapObjects])
	dst = appendHeader(dst, famGoLastGC)
	dst = appendFloatSample(dst, famGoLastGC, "", "", s.lastGC)
	dst = appendHeader(dst, famGoMallocs)
	dst = appendUintSample(dst, famGoMallocs, "", "", s.rt[rtAllocObjects]+s.rt[rtTinyAllocs])
	dst = appendHeader(dst, famGoNextGC)
	dst = appendUintSample(dst, famGoNextGC, "", "", s.rt[rtGCGoal])
	dst = appendHeader(dst, famGoSysBytes)
	dst = appendUintSample(dst, famGoSysBytes, "", "", s.rt[rtSysBytes])
	dst = appendHeader(dst, famGoThreads)
	dst = appendUintSample(dst, famGoThreads, "", "", s.rt[rtThreads])
	return dst
}

// acceptsGzip reports whether an Accept-Encoding header list allows gzip
// (RFC 9110 section 12.5.3: a coding is acceptable unless its q is 0).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			coding, params, _ := strings.Cut(item, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && coding != "*" {
				continue
			}
			q := ""
			for params != "" {
				var p string
				p, params, _ = strings.Cut(params, ";")
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					q = strings.TrimSpace(val)
				}
			}
			if q == "" || strings.Trim(q, "0.") != "" {
				return true
			}
		}
	}
	return false
}

// ServeHTTP serves the exposition, gzipped when the client accepts it. The
// whole body is formatted (and compressed) into pooled buffers first: no
// lock is held while writing to the client.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sc := m.scratch.Get().(*scrapeScratch)
	defer m.scratch.Put(sc)
	sc.text = m.appendTo(sc.text[:0], sc)
	body := sc.text

	h := w.Header()
	h["Content-Type"] = m.hdrContentType
	h["Vary"] = m.hdrVary
	if acceptsGzip(r.Header["Accept-Encoding"]) {
		sc.zip.b = sc.zip.b[:0]
		if sc.gz == nil {
			// BestSpeed: a scrape of a small VPS should cost little CPU;
			// the text compresses well at any level.
			sc.gz, _ = gzip.NewWriterLevel(&sc.zip, gzip.BestSpeed)
		} else {
			sc.gz.Reset(&sc.zip)
		}
		sc.gz.Write(body)
		sc.gz.Close()
		body = sc.zip.b
		h["Content-Encoding"] = m.hdrGzip
	}
	w.Write(body)
}

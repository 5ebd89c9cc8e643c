package main

// The Prometheus text exposition: the only file that spells a metric name.
// It snapshots the counters, formats them without fmt into pooled buffers and
// serves them over HTTP (live) or returns them (file mode).

import (
	"compress/gzip"
	"math"
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
	// domains are the configured tunnel domains, index = domain id, when
	// they cannot change; tunnels, when set, replaces them.
	domains []tunnelDomain
	// tunnels returns the domains in force, when reloads change them
	// (pipeline.currentTunnels); nil: domains, fixed.
	tunnels func() *tunnelSet
	// reloadFailures counts failed reloads of -dnstm.config; nil without
	// one (no family).
	reloadFailures *atomic.Uint64
	sessions       *sessionTable  // dnstt counters and sessions
	pending        *pendingTable  // responses, latency, unanswered; nil = an empty table that is off
	resolvers      *resolverTable // active resolvers; nil = off
	capture        *captureStats  // packet self-metrics
	geo            *geoResolver   // nil without GeoIP
	fileMode       bool           // dnstt and packet/session/GeoIP self-metrics only (SPEC section 5)
	now            func() int64   // the sessions' clock, for a scrape-time sweep; nil = no sweep
	http           *httpStats     // the HTTP server's bounds; nil in file mode
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
	famSessionSeconds
	famActiveResolvers
	famSessionDuration
	famSessionBytes
	famResponses
	famLatency
	famUnanswered
	famReceived
	famDropped
	famIgnored
	famDuplicate
	famTracked
	famUntracked
	famPending
	famPendingOverflow
	famUnmatched
	famResolversTracked
	famResolversOverflow
	famGeoErrors
	famGeoReloadFailures
	famGeoBuildTime
	famGeoFolded
	famGeoLabelSets
	famConfigReloadFailures
	famHTTPConnsRefused
	famHTTPRequestsRejected
	famBuildInfo
	famDomainInfo
	famProcessCPU
	famProcessMaxFDs
	famProcessOpenFDs
	famProcessRSS
	famProcessStartTime
	famProcessVirtual
	famProcessVirtualMax
	famGoGCDuration
	famGoGOGC
	famGoMemLimit
	famGoGoroutines
	famGoInfo
	famGoAllocBytes
	famGoAllocBytesTotal
	famGoFrees
	famGoHeapInuse
	famGoHeapObjects
	famGoLastGC
	famGoMallocs
	famGoNextGC
	famGoStackInuse
	famGoSysBytes
	famGoMaxProcs
	famGoThreads
	familyCount
)

// familyDesc is a family's metadata.
type familyDesc struct {
	name string
	typ  string // counter, gauge, summary or histogram
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
	famSessionSeconds: {"dnstt_session_seconds_total", "counter",
		"Tunnel time: the integral of dnstt_active_clients over time, in seconds. Each session activation adds" +
			" the time from its first query until it expires (its latest query plus -dnstt.window), advanced at every sweep," +
			" so rate() is the mean number of concurrent sessions; reconnects with a new ClientID do not inflate it." + resolverNote},
	famActiveResolvers: {"dnstt_active_resolvers", "gauge",
		"Distinct resolver addresses with a dnstt query for this domain less than -dnstt.window ago" +
			" (a resolver carrying two domains counts in both); addresses are never exported." + resolverNote},
	famSessionDuration: {"dnstt_session_duration_seconds", "histogram",
		"Duration of each ended session activation: its latest minus its first query (0 for one query)," +
			" observed when it expires, under the label set it has then; sessions still active are not observed." +
			" By domain and country only: an asn label would multiply the bucket series by every ASN." + resolverNote},
	famSessionBytes: {"dnstt_session_bytes", "histogram",
		"DNS message bytes of each ended session activation: its queries plus the responses carrying its ClientID," +
			" observed when it expires. By domain and country only: an asn label would multiply the bucket series by every ASN." + resolverNote},
	famResponses: {"dnstt_responses_total", "counter",
		"dnstt responses by the 4-bit DNS header RCODE (NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED," +
			" other values in decimal; extended RCODEs of EDNS are not read). By domain only, to keep cardinality low."},
	famLatency: {"dnstt_response_latency_seconds", "histogram",
		"Time from a dnstt query to the response that answers it (same resolver address and port, DNS ID and question name)." +
			" It includes the time the server holds a poll when it has nothing to send (about 1 s for the reference server)," +
			" so it measures the tunnel's answer time, not the network. By domain only, to keep cardinality low."},
	famUnanswered: {"dnstt_unanswered_queries_total", "counter",
		"dnstt queries with no response 5 seconds after they were seen."},
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
	famPending: {"dnstt_exporter_pending_queries", "gauge",
		"dnstt queries waiting for their response in the pending-query table."},
	famPendingOverflow: {"dnstt_exporter_pending_queries_overflow_total", "counter",
		"dnstt queries not held for latency matching because -latency.max-pending was reached;" +
			" their responses count as unmatched."},
	famUnmatched: {"dnstt_exporter_unmatched_responses_total", "counter",
		"dnstt responses whose query was not pending: never seen, not held (overflow), or answered more than 5 seconds late."},
	famResolversTracked: {"dnstt_exporter_resolvers_tracked", "gauge",
		"(resolver address, domain) pairs held in the resolver table."},
	famResolversOverflow: {"dnstt_exporter_resolvers_overflow_total", "counter",
		"dnstt queries of resolvers not tracked because -resolvers.max was reached; they are missing from dnstt_active_resolvers."},
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
	famConfigReloadFailures: {"dnstt_exporter_config_reload_failures_total", "counter",
		"Reloads of the -dnstm.config file (SIGHUP) that failed and kept the tunnel domains in force."},
	famHTTPConnsRefused: {"dnstt_exporter_http_connections_refused_total", "counter",
		"HTTP connections closed as soon as they were accepted because -web.max-connections were open."},
	famHTTPRequestsRejected: {"dnstt_exporter_http_requests_rejected_total", "counter",
		"HTTP requests answered 503 because -web.max-requests were being served."},
	famBuildInfo: {"dnstt_exporter_build_info", "gauge",
		"Always 1, labelled by the exporter's version, VCS revision, Go version, and the OS and architecture it was built for."},
	famDomainInfo: {"dnstt_exporter_domain_info", "gauge",
		"Always 1, one series per configured tunnel domain: its protocol (dnstt or vaydns)," +
			" the record type its queries use and its ClientID length in bytes."},
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
	famProcessVirtualMax: {"process_virtual_memory_max_bytes", "gauge",
		"Limit on virtual memory (soft RLIMIT_AS), in bytes; 18446744073709551615 when unlimited."},
	famGoGCDuration: {"go_gc_duration_seconds", "summary",
		"Stop-the-world pause durations of recent garbage collection cycles, in seconds."},
	famGoGOGC: {"go_gc_gogc_percent", "gauge",
		"Heap growth that triggers a garbage collection, in percent (GOGC); 0 when collection is off."},
	famGoMemLimit: {"go_gc_gomemlimit_bytes", "gauge",
		"Soft memory limit of the Go runtime (GOMEMLIMIT), in bytes."},
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
	famGoHeapInuse: {"go_memstats_heap_inuse_bytes", "gauge",
		"Bytes in heap spans in use: allocated objects and the free space of their spans."},
	famGoHeapObjects: {"go_memstats_heap_objects", "gauge",
		"Allocated heap objects not yet freed."},
	famGoLastGC: {"go_memstats_last_gc_time_seconds", "gauge",
		"When the latest garbage collection finished, in seconds since the Unix epoch; 0 before the first."},
	famGoMallocs: {"go_memstats_mallocs_total", "counter",
		"Heap objects allocated since start."},
	famGoNextGC: {"go_memstats_next_gc_bytes", "gauge",
		"Heap size at which the next garbage collection is due, in bytes."},
	famGoStackInuse: {"go_memstats_stack_inuse_bytes", "gauge",
		"Bytes of memory used by goroutine stacks."},
	famGoSysBytes: {"go_memstats_sys_bytes", "gauge",
		"Bytes of memory the Go runtime obtained from the operating system."},
	famGoMaxProcs: {"go_sched_gomaxprocs_threads", "gauge",
		"Threads that may run Go code at once (GOMAXPROCS)."},
	famGoThreads: {"go_threads", "gauge",
		"Live OS threads owned by the Go runtime."},
}

// labelGauge names a per-label-set gauge.
type labelGauge uint8

const (
	gaugeNone      labelGauge = iota // the family is a labelCount counter
	gaugeActive                      // labelCounters.active
	gaugePeak                        // labelCounters.peak, never below active
	gaugeResolvers                   // labelCounters.resolvers; only with a resolver table
)

// labelSetFamily is a family with one series per label set (domain,
// country, asn): which number of the label set it shows.
type labelSetFamily struct {
	fam    metricFamily
	gauge  labelGauge // gaugeNone: count is the value
	count  labelCount
	millis bool // the count is in ms, printed in seconds
}

// labelSetFamilies are the per-label-set families, in output order, ahead
// of every other family (SPEC section 5). Adding a per-label-set counter
// is a labelCount, its families entry, a row here and the line in
// sessions.go that counts it: snapshot, labels and formatting follow the
// table.
var labelSetFamilies = [...]labelSetFamily{
	{fam: famActive, gauge: gaugeActive},
	{fam: famPeak, gauge: gaugePeak},
	{fam: famQueries, count: countQueries},
	{fam: famBytesIn, count: countBytesIn},
	{fam: famBytesOut, count: countBytesOut},
	{fam: famSessions, count: countSessions},
	{fam: famSessionSeconds, count: countSessionMillis, millis: true},
	{fam: famActiveResolvers, gauge: gaugeResolvers},
}

// Histogram bucket bounds as printed: the tables' bounds in seconds and
// bytes.
var (
	durationHistBounds = newHistogramBounds(scaleBounds(sessionDurationBounds, 1e3)...)
	bytesHistBounds    = newHistogramBounds(scaleBounds(sessionBytesBounds, 1)...)
	latencyHistBounds  = newHistogramBounds(scaleBounds(responseLatencyBounds, 1e6)...)
)

// scaleBounds returns bounds divided by div.
func scaleBounds(bounds []uint64, div float64) []float64 {
	f := make([]float64, len(bounds))
	for i, b := range bounds {
		f[i] = float64(b) / div
	}
	return f
}

// rcodeNames are the RCODE label values of RFC 1035 and RFC 2136 section
// 2.2 that SPEC section 7 names; other values are printed in decimal.
var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

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
	buildInfo  []byte // the build_info family, formatted once
	domainInfo atomic.Pointer[domainInfoText]
	proc       *procStats // nil in file mode
	scratch    sync.Pool  // *scrapeScratch

	// Response header values, shared read-only by every response, so that
	// setting a header does not allocate.
	hdrContentType, hdrGzip, hdrVary []string
}

// domainInfoText is the domain_info family of one tunnel set, formatted
// once per set.
type domainInfoText struct {
	tunnels *tunnelSet
	text    []byte
}

// labelOrder is the sorted list of exported label sets. It is immutable
// once published; a new one replaces it when label sets gain traffic or
// the tunnel domains change.
type labelOrder struct {
	seen    uint32     // sessionTable.seenSets when built
	tunnels *tunnelSet // the domains in force when built
	sets    []int32    // label set numbers (sessionTable.set), in output order
	// labels holds, for the k-th set, its label text up to the closing
	// brace, `{domain="…",country="…",asn="…"`, at
	// labels[ends[k-1]:ends[k]], escaped once. A sample line is the family
	// name, this text and `} value`; a histogram's bucket line puts
	// `,le="…"` before the brace (appendHistogram).
	labels []byte
	ends   []int32
	// groups gives, for the k-th set, its (domain, country) group of the
	// session histograms: a non-decreasing index, as sets sort by domain
	// and country first. groupLabels holds each group's label text
	// `{domain="…",country="…"` at groupLabels[groupEnds[g-1]:groupEnds[g]].
	groups      []int32
	groupLabels []byte
	groupEnds   []int32
	// domainOrder lists every domain id since start sorted by name, for
	// the per-domain families; domainLabels holds the k-th one's label
	// text `{domain="…"` at domainLabels[domainEnds[k-1]:domainEnds[k]].
	domainOrder  []int
	domainLabels []byte
	domainEnds   []int32
}

// groupHists is the session histograms of one (domain, country) group,
// summed over its label sets: per-bucket counts and sums.
type groupHists struct {
	duration, bytes       [histMaxBuckets]uint64
	durationSum, bytesSum uint64
}

// labelSnapshot is one label set's numbers, indexed like
// labelSetFamilies, copied before formatting. Gauges hold int64 bits.
type labelSnapshot [len(labelSetFamilies)]uint64

// scrapeScratch holds one scrape's buffers; pooled.
type scrapeScratch struct {
	text   []byte
	snaps  []labelSnapshot
	hists  []groupHists
	health []domainHealth
	proc   procSample
	zip    appendWriter
	gz     *gzip.Writer
}

// domainHealth is one domain's response counters, copied before
// formatting.
type domainHealth struct {
	rcodes     [rcodeCount]uint64
	latency    [histMaxBuckets]uint64
	latencySum uint64
	unanswered uint64
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
	if cfg.sessions == nil || cfg.tunnels == nil && len(cfg.domains) != cfg.sessions.domainCount() {
		panic("BUG: metricsConfig domains do not match the session table")
	}
	if cfg.tunnels == nil {
		ts := newTunnelSet(cfg.domains, nil)
		cfg.tunnels = func() *tunnelSet { return ts }
	}
	if cfg.capture == nil {
		cfg.capture = &captureStats{}
	}
	if cfg.pending == nil {
		cfg.pending = newPendingTable(0, maxDomainIDs)
	}
	if cfg.resolvers == nil {
		cfg.resolvers = newResolverTable(0, cfg.sessions)
	}
	m := &metrics{
		cfg:            cfg,
		hdrContentType: []string{contentType},
		hdrGzip:        []string{"gzip"},
		hdrVary:        []string{"Accept-Encoding"},
	}
	_, m.hasCountry, _, m.hasASN = cfg.geo.labels(0)
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

// currentDomainInfo returns the domain_info family of the tunnel domains
// in force, formatted again only after they changed.
func (m *metrics) currentDomainInfo() []byte {
	ts := m.cfg.tunnels()
	if di := m.domainInfo.Load(); di != nil && di.tunnels == ts {
		return di.text
	}
	di := &domainInfoText{tunnels: ts, text: appendDomainInfo(nil, ts.domains)}
	m.domainInfo.Store(di)
	return di.text
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
	dst = append(dst, `",goos="`...)
	dst = appendEscaped(dst, runtime.GOOS)
	dst = append(dst, `",goarch="`...)
	dst = appendEscaped(dst, runtime.GOARCH)
	dst = append(dst, "\"} 1\n"...)
	return dst
}

// appendDomainInfo appends the domain_info family: one series per domain,
// sorted by name like the dnstt families. It is configuration, not
// traffic: live only, as build_info (SPEC section 5 lists what file mode
// prints).
func appendDomainInfo(dst []byte, domains []tunnelDomain) []byte {
	ds := slices.Clone(domains)
	slices.SortFunc(ds, func(a, b tunnelDomain) int { return strings.Compare(a.name, b.name) })
	dst = appendHeader(dst, famDomainInfo)
	for i := range ds {
		d := &ds[i]
		dst = append(dst, families[famDomainInfo].name...)
		dst = append(dst, `{domain="`...)
		dst = appendEscaped(dst, d.name)
		dst = append(dst, `",protocol="`...)
		dst = append(dst, tunnelProtocolNames[d.protocol]...)
		dst = append(dst, `",record_type="`...)
		dst = append(dst, recordTypeName(d.qtype)...)
		dst = append(dst, `",clientid_bytes="`...)
		dst = strconv.AppendInt(dst, int64(d.idLen), 10)
		dst = append(dst, "\"} 1\n"...)
	}
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
	ts := m.cfg.tunnels()
	if o := m.order.Load(); o != nil && o.seen == seen && o.tunnels == ts {
		return o
	}
	var keys []labelKey
	// Every domain id since start, removed ones too: their counters must
	// not vanish (they would look like resets). The set's names come
	// after the session table grew, so every id here has label sets.
	for i := range len(ts.names) * t.geoIDs {
		d, g := i/t.geoIDs, geoID(i%t.geoIDs)
		if g != 0 && !t.set(i).seen.Load() {
			continue
		}
		country, _, asn, _ := m.cfg.geo.labels(g)
		keys = append(keys, labelKey{set: int32(i), domain: ts.names[d], country: country, asn: asn})
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
	o := &labelOrder{seen: seen, tunnels: ts, sets: make([]int32, len(keys))}
	for k, key := range keys {
		o.sets[k] = key.set
	}
	for k, key := range keys {
		if k == 0 || key.domain != keys[k-1].domain || (m.hasCountry && key.country != keys[k-1].country) {
			b := append(o.groupLabels, `{domain="`...)
			b = appendEscaped(b, key.domain)
			if m.hasCountry {
				b = append(b, `",country="`...)
				b = appendEscaped(b, key.country)
			}
			o.groupLabels = append(b, '"')
			o.groupEnds = append(o.groupEnds, int32(len(o.groupLabels)))
		}
		o.groups = append(o.groups, int32(len(o.groupEnds)-1))
		b := append(o.labels, `{domain="`...)
		b = appendEscaped(b, key.domain)
		if m.hasCountry {
			b = append(b, `",country="`...)
			b = appendEscaped(b, key.country)
		}
		if m.hasASN {
			b = append(b, `",asn="`...)
			b = appendEscaped(b, key.asn)
		}
		o.labels = append(b, '"')
		o.ends = append(o.ends, int32(len(o.labels)))
	}
	o.domainOrder = make([]int, len(ts.names))
	for i := range o.domainOrder {
		o.domainOrder[i] = i
	}
	slices.SortFunc(o.domainOrder, func(a, b int) int { return strings.Compare(ts.names[a], ts.names[b]) })
	for _, d := range o.domainOrder {
		b := append(o.domainLabels, `{domain="`...)
		b = appendEscaped(b, ts.names[d])
		o.domainLabels = append(b, '"')
		o.domainEnds = append(o.domainEnds, int32(len(o.domainLabels)))
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
	pt, rt := m.cfg.pending, m.cfg.resolvers
	if m.cfg.now != nil {
		now := m.cfg.now()
		t.sweep(now)
		pt.sweep(now)
		rt.sweep(now)
	}
	o := m.currentOrder()

	// Snapshot every number first, then format: peak is read after
	// active, and a peak not yet raised to a just-raised active shows as
	// that active, so that no output has active > peak.
	snaps := sc.snaps[:0]
	for _, i := range o.sets {
		c := t.set(int(i))
		active := c.active.Load()
		var s labelSnapshot
		for r := range labelSetFamilies {
			switch lf := &labelSetFamilies[r]; lf.gauge {
			case gaugeActive:
				s[r] = uint64(active)
			case gaugePeak:
				s[r] = uint64(max(c.peak.Load(), active))
			case gaugeResolvers:
				s[r] = uint64(c.resolvers.Load())
			default:
				s[r] = c.counts[lf.count].Load()
			}
		}
		snaps = append(snaps, s)
	}
	sc.snaps = snaps
	hists := sc.hists[:0]
	for k, i := range o.sets {
		if k == 0 || o.groups[k] != o.groups[k-1] {
			hists = append(hists, groupHists{})
		}
		g, h := &hists[len(hists)-1], t.hist(int(i))
		for b := range g.duration {
			g.duration[b] += h.duration.counts[b].Load()
			g.bytes[b] += h.bytes.counts[b].Load()
		}
		g.durationSum += h.duration.sum.Load()
		g.bytesSum += h.bytes.sum.Load()
	}
	sc.hists = hists
	health := sc.health[:0]
	for _, d := range o.domainOrder {
		st := pt.domainStats(uint16(d))
		var h domainHealth
		for r := range h.rcodes {
			h.rcodes[r] = st.rcodes[r].Load()
		}
		for b := range h.latency {
			h.latency[b] = st.latency.counts[b].Load()
		}
		h.latencySum = st.latency.sum.Load()
		h.unanswered = st.unanswered.Load()
		health = append(health, h)
	}
	sc.health = health
	var pendingNow, resolversNow int
	if pt.on() {
		pendingNow = pt.pending()
	}
	if rt.on() {
		resolversNow = rt.tracked()
	}
	if m.proc != nil {
		m.proc.read(&sc.proc)
	}

	for r := range labelSetFamilies {
		lf := &labelSetFamilies[r]
		if lf.gauge == gaugeResolvers && !rt.on() {
			continue
		}
		name := families[lf.fam].name
		dst = appendHeader(dst, lf.fam)
		start := int32(0)
		for k := range snaps {
			end := o.ends[k]
			dst = appendSeriesName(dst, name, "", o.labels[start:end])
			start = end
			switch {
			case lf.gauge != gaugeNone:
				dst = strconv.AppendInt(dst, int64(snaps[k][r]), 10)
			case lf.millis:
				dst = strconv.AppendFloat(dst, float64(snaps[k][r])/1e3, 'g', -1, 64)
			default:
				dst = strconv.AppendUint(dst, snaps[k][r], 10)
			}
			dst = append(dst, '\n')
		}
	}

	nb := len(durationHistBounds.leEnds)
	dst = appendHeader(dst, famSessionDuration)
	start := int32(0)
	for g := range hists {
		end := o.groupEnds[g]
		dst = appendHistogram(dst, families[famSessionDuration].name, durationHistBounds, o.groupLabels[start:end],
			hists[g].duration[:nb], float64(hists[g].durationSum)/1e3)
		start = end
	}
	nb = len(bytesHistBounds.leEnds)
	dst = appendHeader(dst, famSessionBytes)
	start = 0
	for g := range hists {
		end := o.groupEnds[g]
		dst = appendHistogram(dst, families[famSessionBytes].name, bytesHistBounds, o.groupLabels[start:end],
			hists[g].bytes[:nb], float64(hists[g].bytesSum))
		start = end
	}

	dst = appendHeader(dst, famResponses)
	start = 0
	for k := range health {
		end := o.domainEnds[k]
		labels := o.domainLabels[start:end]
		start = end
		for rc, v := range health[k].rcodes {
			if rc >= len(rcodeNames) && v == 0 {
				continue // the named RCODEs always, others once seen
			}
			dst = append(dst, families[famResponses].name...)
			dst = append(dst, labels...)
			dst = append(dst, `,rcode="`...)
			if rc < len(rcodeNames) {
				dst = append(dst, rcodeNames[rc]...)
			} else {
				dst = strconv.AppendInt(dst, int64(rc), 10)
			}
			dst = append(dst, `"} `...)
			dst = strconv.AppendUint(dst, v, 10)
			dst = append(dst, '\n')
		}
	}
	if pt.on() {
		nb = len(latencyHistBounds.leEnds)
		dst = appendHeader(dst, famLatency)
		start = 0
		for k := range health {
			end := o.domainEnds[k]
			dst = appendHistogram(dst, families[famLatency].name, latencyHistBounds, o.domainLabels[start:end],
				health[k].latency[:nb], float64(health[k].latencySum)/1e6)
			start = end
		}
		dst = appendHeader(dst, famUnanswered)
		start = 0
		for k := range health {
			end := o.domainEnds[k]
			dst = appendSeriesName(dst, families[famUnanswered].name, "", o.domainLabels[start:end])
			dst = strconv.AppendUint(dst, health[k].unanswered, 10)
			dst = append(dst, '\n')
			start = end
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
	if pt.on() {
		dst = appendHeader(dst, famPending)
		dst = appendIntSample(dst, famPending, "", "", int64(pendingNow))
		dst = appendHeader(dst, famPendingOverflow)
		dst = appendUintSample(dst, famPendingOverflow, "", "", pt.overflow.Load())
		dst = appendHeader(dst, famUnmatched)
		dst = appendUintSample(dst, famUnmatched, "", "", pt.unmatched.Load())
	}
	if rt.on() {
		dst = appendHeader(dst, famResolversTracked)
		dst = appendIntSample(dst, famResolversTracked, "", "", int64(resolversNow))
		dst = appendHeader(dst, famResolversOverflow)
		dst = appendUintSample(dst, famResolversOverflow, "", "", rt.overflow.Load())
	}

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
	if rf := m.cfg.reloadFailures; rf != nil {
		dst = appendHeader(dst, famConfigReloadFailures)
		dst = appendUintSample(dst, famConfigReloadFailures, "", "", rf.Load())
	}
	if hs := m.cfg.http; hs != nil {
		dst = appendHeader(dst, famHTTPConnsRefused)
		dst = appendUintSample(dst, famHTTPConnsRefused, "", "", hs.refusedConns.Load())
		dst = appendHeader(dst, famHTTPRequestsRejected)
		dst = appendUintSample(dst, famHTTPRequestsRejected, "", "", hs.rejectedRequests.Load())
	}
	dst = append(dst, m.buildInfo...)
	dst = append(dst, m.currentDomainInfo()...)
	return appendProcess(dst, &sc.proc)
}

// histogramBounds are a histogram's bucket upper bounds, fixed at start,
// with their le labels formatted once as Prometheus formats floats
// (strconv 'g', shortest: "0.005", "1024", "1.048576e+06"; "+Inf" last).
type histogramBounds struct {
	upper []float64 // strictly increasing, finite
	// le holds `le="…"} ` per bound and then for +Inf, at
	// le[leEnds[i-1]:leEnds[i]]: a bucket line is the name with _bucket,
	// the series' labels, a comma or brace, this text and the count.
	le     []byte
	leEnds []int32
}

// newHistogramBounds returns the bounds upper. Bounds that are not
// finite and strictly increasing are a bug.
func newHistogramBounds(upper ...float64) *histogramBounds {
	b := &histogramBounds{upper: upper}
	for i, u := range upper {
		if math.IsInf(u, 0) || math.IsNaN(u) || (i > 0 && u <= upper[i-1]) {
			panic("BUG: histogram bounds not finite and strictly increasing")
		}
		b.le = append(b.le, `le="`...)
		b.le = strconv.AppendFloat(b.le, u, 'g', -1, 64)
		b.le = append(b.le, `"} `...)
		b.leEnds = append(b.leEnds, int32(len(b.le)))
	}
	b.le = append(b.le, `le="+Inf"} `...)
	b.leEnds = append(b.leEnds, int32(len(b.le)))
	return b
}

// appendHistogram appends the samples of one histogram series named name:
// a cumulative name_bucket line per bound and for +Inf, then name_sum and
// name_count. labels is the series' label text up to the closing brace,
// `{domain="…"` as labelOrder caches it, or empty for no labels. counts
// are per bucket, not cumulative: counts[i] observations fell in
// (upper[i-1], upper[i]] and counts[len(upper)] above the last bound; a
// counts of another length is a bug. sum is the sum of the observations.
// It allocates nothing once dst has room.
func appendHistogram(dst []byte, name string, b *histogramBounds, labels []byte, counts []uint64, sum float64) []byte {
	if len(counts) != len(b.leEnds) {
		panic("BUG: histogram counts do not match its bounds")
	}
	var cum uint64
	start := int32(0)
	for i, end := range b.leEnds {
		cum += counts[i]
		dst = append(dst, name...)
		dst = append(dst, "_bucket"...)
		if len(labels) > 0 {
			dst = append(dst, labels...)
			dst = append(dst, ',')
		} else {
			dst = append(dst, '{')
		}
		dst = append(dst, b.le[start:end]...)
		start = end
		dst = strconv.AppendUint(dst, cum, 10)
		dst = append(dst, '\n')
	}
	dst = appendSeriesName(dst, name, "_sum", labels)
	dst = strconv.AppendFloat(dst, sum, 'g', -1, 64)
	dst = append(dst, '\n')
	dst = appendSeriesName(dst, name, "_count", labels)
	dst = strconv.AppendUint(dst, cum, 10)
	return append(dst, '\n')
}

// appendSeriesName appends name, suffix, the label text (up to its closing
// brace, or empty) and the space before the value.
func appendSeriesName(dst []byte, name, suffix string, labels []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, suffix...)
	if len(labels) > 0 {
		dst = append(dst, labels...)
		dst = append(dst, '}')
	}
	return append(dst, ' ')
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
	if s.vmaxOK {
		dst = appendHeader(dst, famProcessVirtualMax)
		dst = appendUintSample(dst, famProcessVirtualMax, "", "", s.vmax)
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

	dst = appendHeader(dst, famGoGOGC)
	dst = appendUintSample(dst, famGoGOGC, "", "", s.rt[rtGOGC])
	dst = appendHeader(dst, famGoMemLimit)
	dst = appendUintSample(dst, famGoMemLimit, "", "", s.rt[rtMemLimit])
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
	// MemStats.HeapInuse: object bytes plus the unused part of their spans.
	dst = appendHeader(dst, famGoHeapInuse)
	dst = appendUintSample(dst, famGoHeapInuse, "", "", s.rt[rtHeapObjectBytes]+s.rt[rtHeapUnused])
	dst = appendHeader(dst, famGoHeapObjects)
	dst = appendUintSample(dst, famGoHeapObjects, "", "", s.rt[rtHeapObjects])
	dst = appendHeader(dst, famGoLastGC)
	dst = appendFloatSample(dst, famGoLastGC, "", "", s.lastGC)
	dst = appendHeader(dst, famGoMallocs)
	dst = appendUintSample(dst, famGoMallocs, "", "", s.rt[rtAllocObjects]+s.rt[rtTinyAllocs])
	dst = appendHeader(dst, famGoNextGC)
	dst = appendUintSample(dst, famGoNextGC, "", "", s.rt[rtGCGoal])
	dst = appendHeader(dst, famGoStackInuse)
	dst = appendUintSample(dst, famGoStackInuse, "", "", s.rt[rtStacks])
	dst = appendHeader(dst, famGoSysBytes)
	dst = appendUintSample(dst, famGoSysBytes, "", "", s.rt[rtSysBytes])
	dst = appendHeader(dst, famGoMaxProcs)
	dst = appendUintSample(dst, famGoMaxProcs, "", "", s.rt[rtGOMAXPROCS])
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

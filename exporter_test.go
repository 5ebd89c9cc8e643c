package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testBinary is the dnstt_exporter binary built by TestMain, in testDir,
// which TestMain removes at the end.
var testBinary, testDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dnstt_exporter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testDir = dir
	testBinary = filepath.Join(dir, programName)
	cmd := exec.Command("go", "build", "-o", testBinary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runResult is the outcome of one run of the program.
type runResult struct {
	stdout, stderr string
	code           int
}

// runExecute runs the program in-process through execute, with stdin
// (nil: empty) and captured output, so that go test -cover sees it. Only
// tests that signal the process start the binary.
func runExecute(t *testing.T, stdin io.Reader, args ...string) runResult {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb bytes.Buffer
	code := execute(args, stdin, &out, &errb)
	return runResult{out.String(), errb.String(), code}
}

// checkSampleTotals checks the exposition of a file-mode run over the
// whole sample capture against its ground truth.
func checkSampleTotals(t *testing.T, e scrapeValues) {
	t.Helper()
	truth := loadSampleTruth(t)
	d := `domain="` + truth.Domain + `"`
	for _, c := range []struct {
		name  string
		label string
		want  float64
	}{
		{"dnstt_queries_total", d, float64(truth.Totals.Queries)},
		{"dnstt_bytes_in_total", d, float64(truth.Totals.BytesIn)},
		{"dnstt_bytes_out_total", d, float64(truth.Totals.BytesOut)},
		{"dnstt_sessions_total", d, float64(truth.Totals.SessionsTotal)},
		{"dnstt_exporter_packets_received_total", "", float64(truth.Packets.Total)},
		{"dnstt_exporter_packets_ignored_total", "", float64(truth.Packets.Ignored)},
		{"dnstt_exporter_packets_duplicate_total", "", 0},
	} {
		var labels []string
		if c.label != "" {
			labels = []string{c.label}
		}
		if got := e.sum(c.name, labels...); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := e.sum("dnstt_active_clients", d); got < float64(truth.ActiveAtEnd.Min) || got > float64(truth.ActiveAtEnd.Max) {
		t.Errorf("dnstt_active_clients = %v, want %d to %d", got, truth.ActiveAtEnd.Min, truth.ActiveAtEnd.Max)
	}
	if got := e.sum("dnstt_peak_clients", d); got < float64(truth.Peak.Min) || got > float64(truth.Peak.Max) {
		t.Errorf("dnstt_peak_clients = %v, want %d to %d", got, truth.Peak.Min, truth.Peak.Max)
	}
}

// scrapeValues is a parsed text exposition: series ("name{labels}") → value.
type scrapeValues map[string]float64

// parseExposition parses text format 0.0.4, failing t on a malformed line.
func parseExposition(t *testing.T, text string) scrapeValues {
	t.Helper()
	e := scrapeValues{}
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("exposition line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		e[line[:i]] = v
	}
	return e
}

// sum adds the values of the series of metric name whose labels contain
// every label (name="value") given.
func (e scrapeValues) sum(name string, labels ...string) float64 {
	var s float64
	for k, v := range e {
		n, l, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, want := range labels {
			if !strings.Contains(l, want) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// has reports whether metric name has any series.
func (e scrapeValues) has(name string) bool {
	for k := range e {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			return true
		}
	}
	return false
}

// writeTempFile writes b to a file in t's temp dir.
func writeTempFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFileModeGolden runs the real capture through the whole program in
// file mode, without and with the GeoIP fixtures, and compares the output
// byte for byte with testdata/visible-small*.golden. go test -run
// FileModeGolden -update rewrites them; review the diff.
func TestFileModeGolden(t *testing.T) {
	const pcap = sampleCapture
	tests := []struct {
		name string
		args []string
	}{
		{"visible-small", nil},
		{"visible-small-geo", []string{"-geoip.country-database", "testdata/geo/country.mmdb",
			"-geoip.asn-database", "testdata/geo/asn.mmdb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runExecute(t, nil, append([]string{"-dnstt.domain", "t.example.com", "-capture.file", pcap}, tt.args...)...)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(res.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if res.stdout != string(want) {
				t.Errorf("output differs from %s (run with -update and review the diff):\n%s", path, res.stdout)
			}
		})
	}
}

func TestFileModeVisibleSmall(t *testing.T) {
	const pcap = sampleCapture
	res := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-capture.file", pcap)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	e := parseExposition(t, res.stdout)
	checkSampleTotals(t, e)
	for _, n := range []string{"dnstt_exporter_build_info", "process_cpu_seconds_total", "go_goroutines"} {
		if e.has(n) {
			t.Errorf("file mode prints %s; SPEC section 5 leaves it out", n)
		}
	}

	orig, err := os.ReadFile(pcap)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("stdin", func(t *testing.T) {
		r := runExecute(t, bytes.NewReader(orig), "-dnstt.domain", "T.Example.COM.", "-capture.file", "-")
		if r.code != 0 || r.stdout != res.stdout {
			t.Errorf("exit %d, stderr %q; output differs from the file's:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("converted to pcapng", func(t *testing.T) {
		p := writeTempFile(t, "visible-small.pcapng", genPcapngFromPcap(t, orig))
		r := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-capture.file", p)
		if r.code != 0 || r.stdout != res.stdout {
			t.Errorf("exit %d, stderr %q; output differs from the pcap's:\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("editcap", func(t *testing.T) {
		editcap, err := exec.LookPath("editcap")
		if err != nil {
			skipUnlessCI(t, "editcap not installed (apt-get install tshark)")
		}
		p := filepath.Join(t.TempDir(), "editcap.pcapng")
		if out, err := exec.Command(editcap, "-F", "pcapng", pcap, p).CombinedOutput(); err != nil {
			t.Fatalf("editcap: %v\n%s", err, out)
		}
		r := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-capture.file", p)
		if r.code != 0 || r.stdout != res.stdout {
			t.Errorf("exit %d, stderr %q; output differs from the pcap's:\n%s", r.code, r.stderr, r.stdout)
		}
	})
}

// TestFileModeVayDNS counts the real VayDNS sample exactly in file mode
// (vaydns-small.truth.json), with the flags' defaults and spelled out,
// beside a dnstt domain, and shows what the dnstt rules would make of it.
func TestFileModeVayDNS(t *testing.T) {
	const pcap = vaydnsCapture
	res := runExecute(t, nil, "-vaydns.domain", "t.example.com", "-capture.file", pcap)
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	e := parseExposition(t, res.stdout)
	d := `domain="t.example.com"`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"dnstt_queries_total", []string{d}, 508},
		{"dnstt_bytes_in_total", []string{d}, 38980},
		{"dnstt_bytes_out_total", []string{d}, 197929},
		{"dnstt_sessions_total", []string{d}, 2},
		{"dnstt_active_clients", []string{d}, 2},
		{"dnstt_peak_clients", []string{d}, 2},
		{"dnstt_exporter_sessions_tracked", nil, 2},
		{"dnstt_exporter_packets_received_total", nil, 1090},
		{"dnstt_exporter_packets_duplicate_total", nil, 0},
		{"dnstt_exporter_packets_ignored_total", nil, 75},
		// vaydns-small.truth.json's breakdown by the first rule failed:
		// 5 queries to another port, 60 of a type other than TXT, 10
		// prefixes too short or not base32 (5 queries, 5 responses each).
		{"dnstt_exporter_packets_ignored_total", []string{`reason="wrong_port"`}, 5},
		{"dnstt_exporter_packets_ignored_total", []string{`reason="wrong_type"`}, 50},
		{"dnstt_exporter_packets_ignored_total", []string{`reason="not_tunnel"`}, 0},
		{"dnstt_exporter_packets_ignored_total", []string{`reason="bad_prefix"`}, 20},
	} {
		if got := e.sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Configuration, not traffic: live only, as build_info.
	if e.has("dnstt_exporter_domain_info") {
		t.Errorf("file mode prints dnstt_exporter_domain_info; SPEC section 5 leaves it out")
	}

	t.Run("settings spelled out", func(t *testing.T) {
		r := runExecute(t, nil, "-vaydns.domain", "T.Example.COM.", "-vaydns.clientid-size", "2", "-vaydns.record-type", "TXT", "-capture.file", pcap)
		if r.code != 0 || r.stdout != res.stdout {
			t.Errorf("exit %d, stderr %q; output differs from the defaults':\n%s", r.code, r.stderr, r.stdout)
		}
	})
	t.Run("beside a dnstt domain", func(t *testing.T) {
		r := runExecute(t, nil, "-dnstt.domain", "u.example.net", "-vaydns.domain", "t.example.com", "-capture.file", pcap)
		if r.code != 0 {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		m := parseExposition(t, r.stdout)
		for _, name := range []string{"dnstt_queries_total", "dnstt_bytes_in_total", "dnstt_bytes_out_total", "dnstt_sessions_total", "dnstt_active_clients"} {
			if got, want := m.sum(name, d), e.sum(name, d); got != want {
				t.Errorf("%s{%s} = %v, want %v", name, d, got, want)
			}
			if got := m.sum(name, `domain="u.example.net"`); got != 0 || !m.has(name) {
				t.Errorf("%s{domain=\"u.example.net\"} = %v, want 0", name, got)
			}
		}
	})
	t.Run("record type NULL counts none of its TXT queries", func(t *testing.T) {
		// Every record but the 5 queries to another port is a question
		// of another type than NULL.
		r := runExecute(t, nil, "-vaydns.domain", "t.example.com", "-vaydns.record-type", "null", "-capture.file", pcap)
		m := parseExposition(t, r.stdout)
		if r.code != 0 || m.sum("dnstt_queries_total") != 0 || m.sum("dnstt_exporter_packets_ignored_total", `reason="wrong_type"`) != 1090-5 {
			t.Errorf("exit %d, queries %v, wrong_type %v", r.code, m.sum("dnstt_queries_total"),
				m.sum("dnstt_exporter_packets_ignored_total", `reason="wrong_type"`))
		}
	})
	t.Run("dnstt rules", func(t *testing.T) {
		// vaydns-small.truth.json's dnstt_rules_spec: the miscount of
		// issue 12.
		r := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-capture.file", pcap)
		m := parseExposition(t, r.stdout)
		if r.code != 0 || m.sum("dnstt_queries_total") != 227 || m.sum("dnstt_sessions_total") != 16 {
			t.Errorf("exit %d, queries %v, sessions %v, want 227 and 16", r.code, m.sum("dnstt_queries_total"), m.sum("dnstt_sessions_total"))
		}
	})
}

// truthDomainFlag returns the flag that names the truth file's domain.
func truthDomainFlag(truth *sampleTruth) string {
	if truth.Mode.Name == "vaydns-default" {
		return "-vaydns.domain"
	}
	return "-dnstt.domain"
}

// lateRecord is an ARP frame: a record that counts nowhere but moves the
// packet clock (SPEC section 4).
func lateRecord(ts int64) testRecord {
	f := make([]byte, 14+28)
	copy(f, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\x01\x08\x06")
	return testRecord{ts: ts, data: f}
}

// bucketOf returns the index of the first bound at or above v.
func bucketOf(bounds []float64, v float64) int {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	return i
}

// checkHistogram checks the buckets, count and sum of one histogram
// series against observations, the sum to within tol.
func checkHistogram(t *testing.T, e scrapeValues, name, label string, b *histogramBounds, obs []float64, tol float64) {
	t.Helper()
	var sum float64
	for _, o := range obs {
		sum += o
	}
	if got := e.sum(name+"_count", label); got != float64(len(obs)) {
		t.Errorf("%s_count = %v, want %d", name, got, len(obs))
	}
	if got := e.sum(name+"_sum", label); math.Abs(got-sum) > tol {
		t.Errorf("%s_sum = %v, want %v ± %v", name, got, sum, tol)
	}
	for i, u := range b.upper {
		n := 0
		for _, o := range obs {
			if bucketOf(b.upper, o) <= i {
				n++
			}
		}
		le := `le="` + strconv.FormatFloat(u, 'g', -1, 64) + `"`
		if got := e.sum(name+"_bucket", label, le); got != float64(n) {
			t.Errorf("%s_bucket{%s} = %v, want %d", name, le, got, n)
		}
	}
	if got := e.sum(name+"_bucket", label, `le="+Inf"`); got != float64(len(obs)) {
		t.Errorf("%s_bucket{+Inf} = %v, want %d", name, got, len(obs))
	}
}

// TestFileModeTablesOff: with -latency.max-pending 0 and -resolvers.max 0
// the latency, unanswered and active-resolver families and their
// self-metrics are absent; responses by RCODE and the session metrics
// stay.
func TestFileModeTablesOff(t *testing.T) {
	e := runExposition(t, sampleCapture, "-latency.max-pending", "0", "-resolvers.max", "0")
	for _, name := range []string{"dnstt_response_latency_seconds_count", "dnstt_unanswered_queries_total", "dnstt_active_resolvers",
		"dnstt_exporter_pending_queries", "dnstt_exporter_unmatched_responses_total", "dnstt_exporter_resolvers_tracked"} {
		if e.has(name) {
			t.Errorf("%s present with its table off", name)
		}
	}
	truth := loadSampleTruth(t)
	if got := e.sum("dnstt_responses_total"); got != float64(truth.Totals.Responses) {
		t.Errorf("responses = %v, want %d", got, truth.Totals.Responses)
	}
	if !e.has("dnstt_session_seconds_total") || !e.has("dnstt_session_duration_seconds_count") {
		t.Errorf("session insight families missing")
	}
}

// TestFileModeInsightReal replays the real captures and checks the SPEC
// section 7 metrics against what their truth files imply: as recorded
// (every session still active at the end: tunnel time up to the last
// record, no histogram observation), and with a record 31 s after the
// last that lets every session expire (duration, bytes and tunnel time
// per ClientID). Times are kept in whole ms, so each session may be off
// by under 1 ms.
func TestFileModeInsightReal(t *testing.T) {
	for _, c := range realCaptures {
		t.Run(c.name, func(t *testing.T) {
			truth := loadTruth(t, c.truth)
			flag := truthDomainFlag(truth)
			run := func(capture string) scrapeValues {
				res := runExecute(t, nil, flag, truth.Domain, "-capture.file", capture)
				if res.code != 0 {
					t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
				}
				return parseExposition(t, res.stdout)
			}
			dom := `domain="` + truth.Domain + `"`
			msTol := float64(len(truth.Clients)) * 1e-3

			// Responses: all NOERROR, each answering a query within 5 s.
			e := run(c.pcap)
			if got := e.sum("dnstt_responses_total", dom); got != float64(truth.Totals.Responses) {
				t.Errorf("responses = %v, want %d", got, truth.Totals.Responses)
			}
			if got := e.sum("dnstt_responses_total", dom, `rcode="NOERROR"`); got != float64(truth.Totals.Responses) {
				t.Errorf("NOERROR responses = %v, want %d", got, truth.Totals.Responses)
			}
			if got := e.sum("dnstt_response_latency_seconds_count", dom); got != float64(truth.Totals.Responses) {
				t.Errorf("latency count = %v, want %d (every response)", got, truth.Totals.Responses)
			}
			if got := e.sum("dnstt_exporter_unmatched_responses_total"); got != 0 {
				t.Errorf("unmatched = %v, want 0", got)
			}
			// Queries without a response are the last ones, younger than
			// 5 s at the end: in neither latency nor unanswered.
			if got, want := e.sum("dnstt_exporter_pending_queries"), float64(truth.Totals.Queries-truth.Totals.Responses); got != want {
				t.Errorf("pending = %v, want %v", got, want)
			}
			if got := e.sum("dnstt_unanswered_queries_total", dom); got != 0 {
				t.Errorf("unanswered = %v, want 0", got)
			}
			// Resolvers active at the end: a query within the window.
			lastQuery := map[string]float64{}
			for _, cl := range truth.Clients {
				if len(cl.Resolvers) != 1 {
					t.Fatalf("a client behind %d resolvers: the truth does not say when each was last used", len(cl.Resolvers))
				}
				lastQuery[cl.Resolvers[0]] = max(lastQuery[cl.Resolvers[0]], cl.LastTS)
			}
			active := 0
			for r, last := range lastQuery {
				if want, ok := truth.Resolvers[r]; !ok || want.Queries == 0 {
					t.Fatalf("resolver %s of a client has no queries in the truth", r)
				}
				if truth.Packets.LastTS-last < truth.WindowS {
					active++
				}
			}
			if got := e.sum("dnstt_active_resolvers", dom); got != float64(active) || active != len(truth.Resolvers) {
				t.Errorf("active resolvers = %v, want %d of %d", got, active, len(truth.Resolvers))
			}
			// Every session is still active: tunnel time up to the last
			// record, nothing observed.
			var tunnel float64
			for _, cl := range truth.Clients {
				if cl.MaxQueryGap >= truth.WindowS || truth.Packets.LastTS-cl.LastTS >= truth.WindowS {
					t.Fatalf("client %+v: not one session active at the end", cl)
				}
				tunnel += truth.Packets.LastTS - cl.FirstTS
			}
			if got := e.sum("dnstt_session_seconds_total", dom); math.Abs(got-tunnel) > msTol {
				t.Errorf("tunnel time = %v, want %v ± %v", got, tunnel, msTol)
			}
			for _, h := range []string{"dnstt_session_duration_seconds_count", "dnstt_session_bytes_count"} {
				if got := e.sum(h, dom); got != 0 {
					t.Errorf("%s = %v, want 0 (sessions still active are not observed)", h, got)
				}
			}

			// A record 31 s after the last: every session expires.
			lt, recs := readTestPcap(t, c.pcap)
			end := recs[len(recs)-1].ts + 31e9
			var gen []genRecord
			for _, r := range append(recs, lateRecord(end)) {
				gen = append(gen, genRecord{ts: r.ts, data: r.data})
			}
			e = run(writeTempFile(t, "late.pcap", genPcap(nil, binary.LittleEndian, false, lt, gen)))
			var durations, sizes []float64
			tunnel = 0
			for _, cl := range truth.Clients {
				durations = append(durations, cl.LastTS-cl.FirstTS)
				sizes = append(sizes, float64(cl.BytesIn+cl.BytesOut))
				tunnel += cl.LastTS - cl.FirstTS + truth.WindowS
			}
			checkHistogram(t, e, "dnstt_session_duration_seconds", dom, durationHistBounds, durations, msTol)
			checkHistogram(t, e, "dnstt_session_bytes", dom, bytesHistBounds, sizes, 0)
			if got := e.sum("dnstt_session_seconds_total", dom); math.Abs(got-tunnel) > msTol {
				t.Errorf("tunnel time after expiry = %v, want %v ± %v", got, tunnel, msTol)
			}
			for _, g := range []string{"dnstt_active_resolvers", "dnstt_active_clients"} {
				if got := e.sum(g, dom); got != 0 {
					t.Errorf("%s after expiry = %v, want 0", g, got)
				}
			}
			// The queries left without a response are now unanswered.
			if got, want := e.sum("dnstt_unanswered_queries_total", dom), float64(truth.Totals.Queries-truth.Totals.Responses); got != want {
				t.Errorf("unanswered after 31 s = %v, want %v", got, want)
			}
		})
	}
}

// insightPacket is one dnstt datagram of the SPEC section 7 scenario.
type insightPacket struct {
	at       float64 // seconds after the start
	client   byte    // ClientID's first byte
	resolver string
	port     uint16
	dnsID    uint16
	response bool
	rcode    byte
}

// insightResolvers are the scenario's resolvers and their labels in
// testdata/geo/country.mmdb and asn.mmdb.
var insightResolvers = map[string]geoSeriesKey{
	"198.51.100.10":  {"DE", "64500"},
	"198.51.100.200": {"BR", "64500"},
	"203.0.113.10":   {"JP", "64501"},
	"2001:db8:1::10": {"NL", "64502"},
}

// insightScenario is a synthetic capture of SPEC section 7's cases:
//   - client 1 (via DE): queries at 0, 2, 4, expires, comes back at 40, 42
//     (the answer at 40.1 is SERVFAIL);
//   - client 2 changes resolver and country: DE at 1, 3, BR at 10, 12;
//   - client 3 (via JP): its query at 4.5 is never answered, at 6 answered,
//     at 7 answered after 6 s (at 13);
//   - client 4 (via NL): three queries at once at 60 (three pending: a
//     table of two overflows), answered at 60.5;
//
// every other query is answered 0.1 s later; a last record at 100 s lets
// everything expire (without it the capture ends at 60.5).
func insightScenario() []insightPacket {
	var pk []insightPacket
	qr := func(at float64, client byte, resolver string, port, id uint16, answer float64, rcode byte) {
		pk = append(pk, insightPacket{at, client, resolver, port, id, false, 0})
		if answer >= 0 {
			pk = append(pk, insightPacket{answer, client, resolver, port, id, true, rcode})
		}
	}
	const de, br, jp, nl = "198.51.100.10", "198.51.100.200", "203.0.113.10", "2001:db8:1::10"
	for i, at := range []float64{0, 2, 4, 40, 42} {
		rc := byte(0)
		if at == 40 {
			rc = 2
		}
		qr(at, 1, de, 1000, uint16(100+i), at+0.1, rc)
	}
	qr(1, 2, de, 2000, 200, 1.1, 0)
	qr(3, 2, de, 2000, 201, 3.1, 0)
	qr(10, 2, br, 2001, 202, 10.1, 0)
	qr(12, 2, br, 2001, 203, 12.1, 0)
	qr(4.5, 3, jp, 3000, 300, -1, 0)
	qr(6, 3, jp, 3000, 301, 6.1, 0)
	qr(7, 3, jp, 3000, 302, 13, 0)
	for i := range 3 {
		qr(60+float64(i)*0.001, 4, nl, uint16(4000+i), 400, 60.5, 0)
	}
	slices.SortStableFunc(pk, func(a, b insightPacket) int { return cmp.Compare(a.at, b.at) })
	return pk
}

// insightCapture writes the scenario as a pcap file, with the record at
// 100 s when late; it returns the path and each datagram's DNS length.
func insightCapture(t *testing.T, late bool) (string, []int) {
	t.Helper()
	const base = int64(1795600000) * 1e9
	server4, server6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	var recs []genRecord
	var lens []int
	for _, p := range insightScenario() {
		var id clientID
		id[0], id[7] = p.client, 0x5a
		name := genQName(id, make([]byte, 8+int(p.dnsID%3)*20), "t.example.com", p.response)
		m := genDNS(p.dnsID, name, 16, p.response, 200+int(p.dnsID%5)*100)
		m[3] |= p.rcode
		res := netip.MustParseAddr(p.resolver)
		var ip []byte
		switch {
		case res.Is4() && p.response:
			ip = genIPv4(server4, res, 53, p.port, m, p.dnsID, 0)[0]
		case res.Is4():
			ip = genIPv4(res, server4, p.port, 53, m, p.dnsID, 0)[0]
		case p.response:
			ip = genIPv6(server6, res, 53, p.port, m)
		default:
			ip = genIPv6(res, server6, p.port, 53, m)
		}
		recs = append(recs, genRecord{ts: base + int64(math.Round(p.at*1e6))*1e3, data: genEthernet(ip)})
		lens = append(lens, len(m))
	}
	if late {
		recs = append(recs, genRecord{ts: base + 100e9, data: lateRecord(0).data})
	}
	return writeTempFile(t, "insight.pcap", genPcap(nil, binary.LittleEndian, true, linkEthernet, recs)), lens
}

// TestFileModeInsightSynthetic replays insightScenario with GeoIP and
// checks every SPEC section 7 metric by label set, against values worked
// out by hand from the scenario (and the bytes from the datagrams).
func TestFileModeInsightSynthetic(t *testing.T) {
	geo := []string{"-geoip.country-database", "testdata/geo/country.mmdb", "-geoip.asn-database", "testdata/geo/asn.mmdb"}
	path, lens := insightCapture(t, true)
	// Bytes of each activation: client 1's two, and one each of the others.
	act := map[string]float64{}
	for i, p := range insightScenario() {
		k := string('0' + p.client)
		if p.client == 1 && p.at >= 40 {
			k = "1b"
		}
		act[k] += float64(lens[i])
	}
	type series = map[geoSeriesKey]float64
	de, br, jp, nl := insightResolvers["198.51.100.10"], insightResolvers["198.51.100.200"], insightResolvers["203.0.113.10"], insightResolvers["2001:db8:1::10"]

	e := runExposition(t, path, geo...)
	// Tunnel time: client 1: 4 + 30 and 2 + 30 s; client 2: 9 s on DE
	// until it moves, then 12 + 30 − 10 on BR; client 3: 2.5 + 30; client
	// 4: 0.002 + 30.
	checkSeries(t, e, "dnstt_session_seconds_total", series{de: 66 + 9, br: 32, jp: 32.5, nl: 30.002}, 1e-9)
	checkSeries(t, e, "dnstt_sessions_total", series{de: 3, br: 0, jp: 1, nl: 1}, 0)
	checkSeries(t, e, "dnstt_active_resolvers", series{de: 0, br: 0, jp: 0, nl: 0}, 0)
	// Histograms by (domain, country): client 2 ended on BR.
	for _, c := range []struct {
		country          string
		durations, bytes []float64
	}{
		{"DE", []float64{4, 2}, []float64{act["1"], act["1b"]}},
		{"BR", []float64{11}, []float64{act["2"]}},
		{"JP", []float64{2.5}, []float64{act["3"]}},
		{"NL", []float64{0.002}, []float64{act["4"]}},
	} {
		l := `country="` + c.country + `"`
		checkHistogram(t, e, "dnstt_session_duration_seconds", l, durationHistBounds, c.durations, 1e-9)
		checkHistogram(t, e, "dnstt_session_bytes", l, bytesHistBounds, c.bytes, 0)
	}
	// Health: 14 responses, one SERVFAIL; 13 matched (not the one 6 s
	// late); two unanswered (the one never answered, the late one).
	dom := `domain="t.example.com"`
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"dnstt_responses_total", `rcode="NOERROR"`, 13},
		{"dnstt_responses_total", `rcode="SERVFAIL"`, 1},
		{"dnstt_responses_total", `rcode="REFUSED"`, 0},
		{"dnstt_response_latency_seconds_count", dom, 13},
		{"dnstt_response_latency_seconds_bucket", `le="0.25"`, 10},
		{"dnstt_response_latency_seconds_bucket", `le="0.5"`, 13},
		{"dnstt_unanswered_queries_total", dom, 2},
		{"dnstt_exporter_unmatched_responses_total", "", 1},
		{"dnstt_exporter_pending_queries_overflow_total", "", 0},
		{"dnstt_exporter_resolvers_overflow_total", "", 0},
		{"dnstt_exporter_pending_queries", "", 0},
	} {
		if got := e.sum(c.name, c.label); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if got, want := e.sum("dnstt_response_latency_seconds_sum", dom), 10*0.1+0.5+0.499+0.498; math.Abs(got-want) > 1e-6 {
		t.Errorf("latency sum = %v, want %v", got, want)
	}

	t.Run("tables of two", func(t *testing.T) {
		// Client 4's third query finds the pending table full: its
		// response is unmatched (the query at 4.5 was swept at 10, before
		// client 2's, so nothing else overflows). The resolver table holds DE and JP when
		// client 2 moves to BR (both queries of BR overflow); by 40 s DE
		// and JP have expired, so client 1 and 4's resolvers fit again.
		e := runExposition(t, path, append(geo, "-latency.max-pending", "2", "-resolvers.max", "2")...)
		for _, c := range []struct {
			name string
			want float64
		}{
			{"dnstt_response_latency_seconds_count", 12},
			{"dnstt_exporter_pending_queries_overflow_total", 1},
			{"dnstt_exporter_unmatched_responses_total", 2},
			{"dnstt_exporter_resolvers_overflow_total", 2},
			{"dnstt_queries_total", 15},
			{"dnstt_sessions_total", 5},
		} {
			if got := e.sum(c.name); got != c.want {
				t.Errorf("%s = %v, want %v", c.name, got, c.want)
			}
		}
		checkSeries(t, e, "dnstt_session_seconds_total", series{de: 66 + 9, br: 32, jp: 32.5, nl: 30.002}, 1e-9)
	})

	t.Run("ends at 60.5 s", func(t *testing.T) {
		path, _ := insightCapture(t, false)
		e := runExposition(t, path, geo...)
		// Active: DE (client 1 at 42) and NL; BR (12) and JP (7) expired.
		checkSeries(t, e, "dnstt_active_resolvers", series{de: 1, br: 0, jp: 0, nl: 1}, 0)
		// Client 1's second activation and client 4 are still active:
		// tunnel time up to 60.5 s, not observed.
		checkSeries(t, e, "dnstt_session_seconds_total", series{de: 34 + 9 + 20.5, br: 32, jp: 32.5, nl: 0.5}, 1e-9)
		if got := e.sum("dnstt_session_duration_seconds_count", `country="DE"`); got != 1 {
			t.Errorf("DE durations = %v, want 1 (the first activation)", got)
		}
		if got := e.sum("dnstt_session_duration_seconds_count", `country="NL"`); got != 0 {
			t.Errorf("NL durations = %v, want 0", got)
		}
	})
}

// checkSeries checks a family's value per label set (domain
// t.example.com) to within tol.
func checkSeries(t *testing.T, e scrapeValues, name string, want map[geoSeriesKey]float64, tol float64) {
	t.Helper()
	got := e.geoSeries(t, name, "t.example.com")
	for k, w := range want {
		if math.Abs(got[k]-w) > tol {
			t.Errorf("%s{%v} = %v, want %v", name, k, got[k], w)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok && v != 0 && k != (geoSeriesKey{"ZZ", "0"}) {
			t.Errorf("%s{%v} = %v, not expected", name, k, v)
		}
	}
}

// Synthetic captures.

// synthDatagram is one UDP datagram of the synthetic scenario as IP
// packets (several when fragmented), with what it should count as.
type synthDatagram struct {
	ts     int64
	ip     [][]byte
	domain string // "" = not a dnstt packet
	query  bool
	id     clientID
	dnsLen int
	vlans  []uint16
}

// synthExpect is what the scenario should count, per domain.
type synthExpect struct {
	queries, bytesIn, bytesOut, sessions, active, peak map[string]float64
	counted                                            int // dnstt datagrams
	laterFragments                                     int // IP packets after a first fragment
	packets                                            int // IP packets
}

// synthDomains are the scenario's tunnel domains.
var synthDomains = []string{"t.example.com", "tunnel.example.net"}

// synthScenario builds the datagrams of three sessions (one re-activated
// after a gap longer than the window, one over IPv6, one under a second
// domain), a fragmented large response, 0x20 case and noise; and the
// expected counts, computed from the session definitions of SPEC section 4.
func synthScenario() ([]synthDatagram, synthExpect) {
	const base = int64(1795600000) * 1e9
	const sec = int64(1e9)
	server4, server6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	type session struct {
		domain   string
		id       clientID
		resolver netip.Addr
		port     uint16
		times    []int64 // query times, s
		vlans    []uint16
	}
	sessions := []session{
		{domain: "t.example.com", id: clientID{0xa1, 2, 3, 4, 5, 6, 7, 8}, resolver: netip.MustParseAddr("198.51.100.10"), port: 40001, vlans: []uint16{10}},
		{domain: "t.example.com", id: clientID{0xb2, 2, 3, 4, 5, 6, 7, 8}, resolver: netip.MustParseAddr("2001:db8:1::10"), port: 40002, vlans: []uint16{100, 20}},
		{domain: "tunnel.example.net", id: clientID{0xc3, 9, 9, 9, 9, 9, 9, 9}, resolver: netip.MustParseAddr("203.0.113.10"), port: 40003},
	}
	for s := int64(0); s <= 10; s++ {
		sessions[0].times = append(sessions[0].times, s)
	}
	for s := int64(5); s <= 20; s++ {
		sessions[1].times = append(sessions[1].times, s)
	}
	sessions[1].times = append(sessions[1].times, 60, 61) // 40 s gap: a new session
	sessions[2].times = []int64{58, 59, 62}

	ex := synthExpect{
		queries: map[string]float64{}, bytesIn: map[string]float64{}, bytesOut: map[string]float64{},
		sessions: map[string]float64{}, active: map[string]float64{}, peak: map[string]float64{},
	}
	var dgs []synthDatagram
	ipID := uint16(1)
	send := func(ts int64, src, dst netip.Addr, sport, dport uint16, msg []byte, mtu int) [][]byte {
		ipID++
		if src.Is4() {
			return genIPv4(src, dst, sport, dport, msg, ipID, mtu)
		}
		return [][]byte{genIPv6(src, dst, sport, dport, msg)}
	}
	for si, s := range sessions {
		server := server4
		if s.resolver.Is6() {
			server = server6
		}
		for qi, q := range s.times {
			ts := base + q*sec + int64(si)*1e6
			payload := make([]byte, 8+qi%5*20)
			name := genQName(s.id, payload, s.domain, qi%2 == 1) // every other query in 0x20 case
			dnsID := uint16(si<<12 | qi)
			qm := genDNS(dnsID, name, 16, false, 0)
			dgs = append(dgs, synthDatagram{ts: ts, ip: send(ts, s.resolver, server, s.port, 53, qm, 0), domain: s.domain, query: true, id: s.id, dnsLen: len(qm), vlans: s.vlans})
			txt := 400
			if si == 0 && q == 5 {
				txt = 3000 // fragmented at the IP layer
			}
			rm := genDNS(dnsID, name, 16, true, txt)
			dgs = append(dgs, synthDatagram{ts: ts + 10e6, ip: send(ts, server, s.resolver, 53, s.port, rm, 1500), domain: s.domain, dnsLen: len(rm), vlans: s.vlans})
		}
	}
	noise := []struct {
		at    int64
		name  string
		qtype uint16
		dport uint16
	}{
		{3, "example.org", 1, 53},
		{4, genQName(clientID{1}, nil, "t.example.com", false), 16, 5353},
		{6, "abc.t.example.com", 16, 53},
		{7, genQName(clientID{2}, nil, "t.example.com", false), 1, 53},
	}
	for i, n := range noise {
		m := genDNS(uint16(900+i), n.name, n.qtype, false, 0)
		r := netip.MustParseAddr("203.0.113.200")
		dgs = append(dgs, synthDatagram{ts: base + n.at*sec + 5e5, ip: send(0, r, server4, 33333, n.dport, m, 0)})
	}
	// The last record: noise at 62.5 s. Active sessions are judged there.
	dgs = append(dgs, synthDatagram{ts: base + 62*sec + 5e8, ip: send(0, netip.MustParseAddr("203.0.113.200"), server4, 33333, 53, genDNS(999, "example.org", 1, false, 0), 0)})
	slicesSortStable(dgs)
	// A record from the future in the middle of the file (a clock step on
	// the capturing host): the clock jumps to 41 s and stays there until the
	// packets catch up (SPEC section 4: it never goes backwards). Session B's
	// queries at 16..20 s then count at 41 s, so its query at 60 s continues
	// that session instead of starting a new one.
	jump := synthDatagram{ts: base + 41*sec, ip: send(0, netip.MustParseAddr("203.0.113.200"), server4, 33333, 53, genDNS(998, "example.org", 1, false, 0), 0)}
	for i, d := range dgs {
		if d.ts > base+15*sec+2e6+10e6 {
			dgs = append(dgs[:i], append([]synthDatagram{jump}, dgs[i:]...)...)
			break
		}
	}

	// Expected values, on the clock of SPEC section 4.
	window := 30 * sec
	clock := int64(0)
	type key struct {
		domain string
		id     clientID
	}
	lastQuery := map[key]int64{}
	for _, d := range dgs {
		ex.packets += len(d.ip)
		clock = max(clock, d.ts)
		if d.domain == "" {
			continue
		}
		ex.counted++
		ex.laterFragments += len(d.ip) - 1
		if !d.query {
			ex.bytesOut[d.domain] += float64(d.dnsLen)
			continue
		}
		ex.queries[d.domain]++
		ex.bytesIn[d.domain] += float64(d.dnsLen)
		k := key{d.domain, d.id}
		if prev, ok := lastQuery[k]; !ok || clock-prev > window {
			ex.sessions[d.domain]++
		}
		lastQuery[k] = clock
		active := 0.0
		for k2, t2 := range lastQuery {
			if k2.domain == d.domain && clock-t2 < window {
				active++
			}
		}
		ex.peak[d.domain] = max(ex.peak[d.domain], active)
	}
	for k, t2 := range lastQuery {
		if clock-t2 < window {
			ex.active[k.domain]++
		}
	}
	return dgs, ex
}

// slicesSortStable orders datagrams by time, keeping the order of equal times.
func slicesSortStable(d []synthDatagram) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j].ts < d[j-1].ts; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// synthCapture renders the datagrams in one encoding; copies is how many
// interfaces show each packet.
func synthCapture(t *testing.T, enc string, dgs []synthDatagram) (file []byte, copies int) {
	t.Helper()
	var recs []genRecord
	for _, d := range dgs {
		for i, ip := range d.ip {
			ts := d.ts + int64(i)*1000
			switch enc {
			case "ethernet", "ethernet-be":
				recs = append(recs, genRecord{ts: ts, data: genEthernet(ip, d.vlans...)})
			case "sll":
				recs = append(recs, genRecord{ts: ts, data: genSLL(ip, d.domain != "" && !d.query)})
			case "sll2":
				// A bridge and its member port: two ifindexes, 100 µs apart.
				recs = append(recs,
					genRecord{ts: ts, data: genSLL2(ip, 2, false)},
					genRecord{ts: ts + 100e3, data: genSLL2(ip, 5, false)})
			case "pcapng":
				// Interface 0 (Ethernet, µs) and interface 1 (raw IP, ns
				// with an offset) see every packet; every third packet on
				// interface 0 is a simple packet block, which takes the
				// previous packet's time.
				recs = append(recs,
					genRecord{ts: ts, iface: 1, data: ip},
					genRecord{ts: ts, iface: 0, data: genEthernet(ip, d.vlans...), spb: len(recs)%3 == 0})
			default:
				t.Fatalf("unknown encoding %q", enc)
			}
		}
	}
	switch enc {
	case "ethernet":
		return genPcap(nil, binary.LittleEndian, false, linkEthernet, recs), 1
	case "ethernet-be":
		return genPcap(nil, binary.BigEndian, true, linkEthernet, recs), 1
	case "sll":
		return genPcap(nil, binary.BigEndian, true, linkLinuxSLL, recs), 1
	case "sll2":
		return genPcap(nil, binary.LittleEndian, true, linkLinuxSLL2, recs), 2
	}
	// pcapng: two sections of different byte order, split mid-capture.
	ifaces := []genInterface{{lt: linkEthernet, snaplen: 65535}, {lt: linkRaw, tsresol: 9, tsoffset: 1795600000}}
	half := len(recs) / 2
	half -= half % 2 // keep both copies of a packet in one section
	return genPcapng(nil, []genSection{
		{order: binary.LittleEndian, ifaces: ifaces, records: recs[:half], extra: true},
		{order: binary.BigEndian, ifaces: ifaces, records: recs[half:]},
	}), 2
}

func TestFileModeSynthetic(t *testing.T) {
	dgs, ex := synthScenario()
	var first string
	for _, enc := range []string{"ethernet", "ethernet-be", "sll", "sll2", "pcapng"} {
		t.Run(enc, func(t *testing.T) {
			file, copies := synthCapture(t, enc, dgs)
			p := writeTempFile(t, enc+".cap", file)
			args := []string{"-capture.file", p}
			for _, d := range synthDomains {
				args = append(args, "-dnstt.domain", d)
			}
			res := runExecute(t, nil, args...)
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			e := parseExposition(t, res.stdout)
			for _, d := range synthDomains {
				l := `domain="` + d + `"`
				for _, c := range []struct {
					name string
					want float64
				}{
					{"dnstt_queries_total", ex.queries[d]},
					{"dnstt_bytes_in_total", ex.bytesIn[d]},
					{"dnstt_bytes_out_total", ex.bytesOut[d]},
					{"dnstt_sessions_total", ex.sessions[d]},
					{"dnstt_active_clients", ex.active[d]},
					{"dnstt_peak_clients", ex.peak[d]},
				} {
					if got := e.sum(c.name, l); got != c.want {
						t.Errorf("%s{%s} = %v, want %v", c.name, l, got, c.want)
					}
				}
			}
			if got, want := e.sum("dnstt_exporter_packets_received_total"), float64(ex.packets*copies); got != want {
				t.Errorf("received = %v, want %v", got, want)
			}
			if got, want := e.sum("dnstt_exporter_packets_duplicate_total"), float64(ex.counted*(copies-1)); got != want {
				t.Errorf("duplicate = %v, want %v", got, want)
			}
			if got, want := e.sum("dnstt_exporter_packets_ignored_total", `reason="fragment"`), float64(ex.laterFragments*copies); got != want {
				t.Errorf("ignored fragments = %v, want %v", got, want)
			}
			if copies == 1 {
				// The same capture as pcapng prints the same.
				ng := writeTempFile(t, enc+".pcapng", genPcapngFromPcap(t, file))
				args[1] = ng
				r := runExecute(t, nil, args...)
				if r.code != 0 || r.stdout != res.stdout {
					t.Errorf("as pcapng: exit %d, stderr %q, output differs:\n%s\nwant\n%s", r.code, r.stderr, r.stdout, res.stdout)
				}
				if first == "" {
					first = res.stdout
				} else if res.stdout != first {
					t.Errorf("output differs from the first encoding's:\n%s\nwant\n%s", res.stdout, first)
				}
			}
		})
	}
}

func TestFileModeErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badLT := bytes.Clone(good)
	binary.LittleEndian.PutUint32(badLT[pcapLinkTypeOff:], 147)
	corrupt := bytes.Clone(good)
	binary.LittleEndian.PutUint32(corrupt[pcapFileHeaderLen+8:], 1<<30)
	unreadable := write("unreadable.pcap", good)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.pcap"), "no such file or directory"},
		{"directory", dir, "is a directory"},
		{"not pcap", write("text.pcap", []byte("hello, world\n")), "offset 0: not a pcap or pcapng file"},
		{"empty", write("empty.pcap", nil), "offset 0: empty file"},
		{"truncated header", write("short.pcap", good[:20]), "offset 0: truncated file header"},
		{"truncated record", write("trunc.pcap", good[:len(good)-7]), "truncated record"},
		{"corrupt record", write("corrupt.pcap", corrupt), "offset 24: corrupt record"},
		{"unknown link type", write("lt.pcap", badLT), "offset 20: unsupported link type 147"},
	}
	if os.Geteuid() == 0 {
		// root reads a mode-0 file anyway
	} else {
		tests = append(tests, struct{ name, path, want string }{"unreadable", unreadable, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-capture.file", tt.path)
			if res.code != 1 {
				t.Errorf("exit %d, want 1", res.code)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
			if strings.Count(res.stderr, "\n") != 1 || !strings.Contains(res.stderr, strconv.Quote(tt.path)) || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q, want one line naming %q and saying %q", res.stderr, tt.path, tt.want)
			}
		})
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pcap := sampleCapture
	d := []string{"-dnstt.domain", "t.example.com", "-capture.file", pcap}
	with := func(extra ...string) []string { return append(append([]string{}, d...), extra...) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no domain", []string{"-capture.file", pcap}, "-dnstt.domain: missing: name at least one tunnel domain, or -vaydns.domain"},
		{"no domain, vaydns settings", []string{"-capture.file", pcap, "-vaydns.clientid-size", "4"}, "-dnstt.domain: missing"},
		{"bad domain", []string{"-dnstt.domain", "t..example.com"}, `-dnstt.domain: domain "t..example.com"`},
		{"bad domain character", []string{"-dnstt.domain", "t.exa mple.com"}, "-dnstt.domain"},
		{"duplicate domain", []string{"-dnstt.domain", "t.example.com", "-dnstt.domain", "T.EXAMPLE.COM."}, "given twice"},
		{"duplicate vaydns domain", []string{"-vaydns.domain", "v.example.com", "-vaydns.domain", "V.example.com."},
			`-vaydns.domain "V.example.com.": given twice`},
		{"domain as dnstt and vaydns", with("-vaydns.domain", "T.Example.com"), `-vaydns.domain "T.Example.com": also given as -dnstt.domain`},
		{"bad vaydns domain", with("-vaydns.domain", "v..example.com"), `-vaydns.domain: domain "v..example.com": empty label`},
		{"vaydns clientid size 0", with("-vaydns.domain", "v.example.com", "-vaydns.clientid-size", "0"), "-vaydns.clientid-size 0: want 1 to 8"},
		{"vaydns clientid size 9", with("-vaydns.clientid-size", "9"), "-vaydns.clientid-size 9: want 1 to 8"},
		{"vaydns clientid size not a number", with("-vaydns.clientid-size", "two"), "-vaydns.clientid-size"},
		{"vaydns record type", with("-vaydns.domain", "v.example.com", "-vaydns.record-type", "ptr"),
			`-vaydns.record-type "ptr": want one of txt, null, cname, a, aaaa, mx, ns, srv, caa`},
		{"vaydns record type empty", with("-vaydns.record-type", ""), `-vaydns.record-type "": want one of`},
		{"port 0", with("-dnstt.port", "0"), "-dnstt.port 0"},
		{"port too large", with("-dnstt.port", "65536"), "-dnstt.port 65536"},
		{"port not a number", with("-dnstt.port", "dns"), "-dnstt.port"},
		{"window 0", with("-dnstt.window", "0s"), "-dnstt.window 0s"},
		{"window too short", with("-dnstt.window", "500ms"), "-dnstt.window 500ms"},
		{"window not a duration", with("-dnstt.window", "30"), "-dnstt.window"},
		{"buffer size", with("-capture.buffer-size", "4 parsecs"), "-capture.buffer-size"},
		{"buffer size too small", with("-capture.buffer-size", "1KiB"), "-capture.buffer-size 1KiB"},
		{"file and interface", with("-capture.interface", "eth0"), "give one or the other"},
		{"max pending negative", with("-latency.max-pending", "-1"), "-latency.max-pending -1: want 0 to 67108864"},
		{"max pending too large", with("-latency.max-pending", "67108865"), "-latency.max-pending 67108865: want 0 to"},
		{"max resolvers negative", with("-resolvers.max", "-5"), "-resolvers.max -5: want 0 to 67108864"},
		{"duplicate interface", []string{"-dnstt.domain", "t.example.com", "-capture.interface", "lo", "-capture.interface", "lo"}, "given twice"},
		{"sessions.max 0", with("-sessions.max", "0"), "-sessions.max 0"},
		{"max label sets", with("-geoip.max-label-sets", "70000"), "-geoip.max-label-sets 70000"},
		// Above what the geoID range leaves once each country's asn 0 is
		// reserved: validate rejects it, in openGeo's words, before any
		// database is opened.
		{"max label sets beyond the reserve", with("-geoip.country-database", "testdata/geo/country.mmdb",
			"-geoip.asn-database", "testdata/geo/asn.mmdb", "-geoip.max-label-sets", "65000"),
			"-geoip.max-label-sets 65000: want 1 to 64860"},
		{"listen address", with("-web.listen-address", "9713"), `-web.listen-address "9713": want host:port`},
		{"listen port too large", with("-web.listen-address", "127.0.0.1:99999"), `-web.listen-address "127.0.0.1:99999": port "99999": want a number from 0 to 65535`},
		{"listen port a name", with("-web.listen-address", ":abc"), `-web.listen-address ":abc": port "abc"`},
		{"listen port empty", with("-web.listen-address", "127.0.0.1:"), `port "": want a number`},
		{"listen port negative", with("-web.listen-address", "127.0.0.1:-1"), `port "-1"`},
		{"listen address no port", with("-web.listen-address", "127.0.0.1"), `-web.listen-address "127.0.0.1": want host:port`},
		{"listen address IPv6 unbracketed", with("-web.listen-address", "::1:9713"), `-web.listen-address "::1:9713"`},
		{"listen host bad", with("-web.listen-address", "bad host:9713"), `host "bad host": not an IP address or host name`},
		{"listen host bad IPv6", with("-web.listen-address", "[::g]:9713"), `host "::g": not an IP address`},
		{"telemetry path", with("-web.telemetry-path", "metrics"), "-web.telemetry-path"},
		{"telemetry path root", with("-web.telemetry-path", "/"), "-web.telemetry-path"},
		{"max requests", with("-web.max-requests", "0"), "-web.max-requests 0"},
		{"max connections", with("-web.max-connections", "0"), "-web.max-connections 0: want 1 to 10000"},
		{"max connections too many", with("-web.max-connections", "10001"), "-web.max-connections 10001"},
		{"log level", with("-log.level", "loud"), "-log.level"},
		{"log format", with("-log.format", "xml"), "-log.format"},
		{"tls cert without key", with("-web.tls-cert-file", write("c.pem", "x")), "give both or neither"},
		{"tls bad files", with("-web.tls-cert-file", write("c2.pem", "x"), "-web.tls-key-file", write("k2.pem", "y")), "-web.tls-cert-file"},
		{"basic auth missing file", with("-web.basic-auth-file", filepath.Join(dir, "nope")), "-web.basic-auth-file"},
		{"basic auth bad line", with("-web.basic-auth-file", write("users", "# users\nalice\n")), "line 2: want user:password"},
		{"basic auth empty", with("-web.basic-auth-file", write("users2", "# nobody\n\n")), "no user:password line"},
		{"bearer empty", with("-web.bearer-token-file", write("token", "\n")), "-web.bearer-token-file"},
		{"unknown flag", with("-dnstt.domian", "x"), "flag provided but not defined: -dnstt.domian"},
		{"positional argument", with("extra"), `unexpected argument "extra"`},
		{"missing country database", with("-geoip.country-database", filepath.Join(dir, "missing.mmdb")), "-geoip.country-database"},
		{"corrupt asn database", with("-geoip.asn-database", "testdata/geo/corrupt.mmdb"), "-geoip.asn-database"},
		{"empty country database", with("-geoip.country-database", "testdata/geo/empty.mmdb"), "-geoip.country-database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runExecute(t, nil, tt.args...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", res.code, res.stderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
			if strings.Count(res.stderr, "\n") != 1 || !strings.HasPrefix(res.stderr, programName+": ") || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q, want one line containing %q", res.stderr, tt.want)
			}
		})
	}
}

func TestGoodFlags(t *testing.T) {
	// Double dashes, =values, sizes with suffixes, GeoIP databases: all
	// accepted; file mode prints the exposition.
	res := runExecute(t, nil, "--dnstt.domain=t.example.com", "-dnstt.port=53", "--dnstt.window", "31s",
		"-capture.buffer-size", "8MiB", "-capture.file", sampleCapture, "-sessions.max", "10",
		"-geoip.country-database", "testdata/geo/country.mmdb", "-geoip.asn-database", "testdata/geo/asn.mmdb",
		"-log.level", "debug", "-log.format", "json")
	if res.code != 0 {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	checkSampleTotals(t, parseExposition(t, res.stdout))
	for line := range strings.SplitSeq(strings.TrimSpace(res.stderr), "\n") {
		if line != "" && !strings.HasPrefix(line, "{") {
			t.Errorf("-log.format json: stderr line %q is not JSON", line)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	res := runExecute(t, nil, "-version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "dnstt_exporter version ") || !strings.Contains(res.stdout, " revision ") || !strings.Contains(res.stdout, " goversion go") {
		t.Errorf("-version: exit %d, stdout %q", res.code, res.stdout)
	}
	for _, h := range []string{"-h", "--help"} {
		res = runExecute(t, nil, h)
		if res.code != 0 {
			t.Errorf("%s: exit %d", h, res.code)
		}
		for _, f := range []string{"-dnstt.domain", "-vaydns.domain", "-vaydns.clientid-size", "-vaydns.record-type", "(default 2)", "(default \"txt\")", "-dnstt.port", "-dnstt.window", "-capture.interface", "-capture.buffer-size",
			"-capture.file", "-sessions.max", "-geoip.country-database", "-geoip.asn-database", "-geoip.max-label-sets",
			"-web.listen-address", "-web.telemetry-path", "-web.tls-cert-file", "-web.tls-key-file", "-web.basic-auth-file",
			"-web.bearer-token-file", "-web.max-requests", "-log.level", "-log.format", "-version", "127.0.0.1:9713", "(default 30s)"} {
			if !strings.Contains(res.stdout, f) {
				t.Errorf("%s: usage lacks %q", h, f)
			}
		}
	}
}

// HTTP tests run the server in-process, so that its limits can be short.

// startTestServer serves cfg (from args) on a loopback port with handler h
// (nil: the real exposition of an empty pipeline) and returns its URL.
func startTestServer(t *testing.T, cfg *config, h http.Handler) string {
	t.Helper()
	if h == nil {
		pl := newPipeline(cfg, nil, false)
		clock := newMonoClock()
		h = newMetrics(metricsConfig{domains: cfg.domains, sessions: pl.sessions, pending: pl.pending, resolvers: pl.resolvers, capture: pl.stats, now: clock.now})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(cfg, h, slog.New(slog.DiscardHandler))
	go func() {
		if cfg.tlsCert != nil {
			srv.ServeTLS(ln, "", "")
		} else {
			srv.Serve(ln)
		}
	}()
	t.Cleanup(func() { srv.Close() })
	scheme := "http"
	if cfg.tlsCert != nil {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

// parseTestConfig parses args after a domain flag.
func parseTestConfig(t *testing.T, args ...string) *config {
	t.Helper()
	cfg, _, _, err := parseConfig(append([]string{"-dnstt.domain", "t.example.com"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// get does a request and returns the response with its body read.
func httpGet(t *testing.T, c *http.Client, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHTTPRoutes(t *testing.T) {
	cfg := parseTestConfig(t)
	url := startTestServer(t, cfg, nil)
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	resp, body := httpGet(t, c, "GET", url+"/metrics")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("/metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "dnstt_queries_total") {
		t.Errorf("/metrics body lacks dnstt_queries_total:\n%s", body)
	}

	resp, gz := httpGet(t, c, "GET", url+"/metrics", "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Accept-Encoding gzip: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	} else {
		zr, err := gzip.NewReader(strings.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil || !strings.Contains(string(plain), "dnstt_queries_total") {
			t.Errorf("gunzipped body: %v\n%s", err, plain)
		}
	}

	resp, body = httpGet(t, c, "GET", url+"/")
	ver, _, _ := buildInfo()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `href="/metrics"`) || !strings.Contains(body, ver) {
		t.Errorf("/: %s, %q:\n%s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	for _, p := range []string{"/metricsx", "/favicon.ico", "/metrics/", "/debug/pprof/"} {
		if resp, _ := httpGet(t, c, "GET", url+p); resp.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", p, resp.Status)
		}
	}
	if resp, _ := httpGet(t, c, "POST", url+"/metrics"); resp.StatusCode != 405 {
		t.Errorf("POST /metrics: %s, want 405", resp.Status)
	}
	if resp, _ := httpGet(t, c, "HEAD", url+"/metrics"); resp.StatusCode != 200 {
		t.Errorf("HEAD /metrics: %s, want 200", resp.Status)
	}

	// Another telemetry path moves the metrics.
	cfg2 := parseTestConfig(t, "-web.telemetry-path", "/dnstt/metrics")
	url2 := startTestServer(t, cfg2, nil)
	if resp, _ := httpGet(t, c, "GET", url2+"/dnstt/metrics"); resp.StatusCode != 200 {
		t.Errorf("/dnstt/metrics: %s", resp.Status)
	}
	if resp, _ := httpGet(t, c, "GET", url2+"/metrics"); resp.StatusCode != 404 {
		t.Errorf("/metrics with another telemetry path: %s, want 404", resp.Status)
	}
}

// genCert writes a self-signed certificate for 127.0.0.1 and its key.
func genCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dnstt_exporter test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeTempFile(t, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile = writeTempFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestHTTPTLSAndAuth(t *testing.T) {
	certFile, keyFile, pool := genCert(t)
	users := writeTempFile(t, "users", []byte("# Prometheus\nprometheus:s3cret:with:colons\n\nalice:wonderland\r\n"))
	token := writeTempFile(t, "token", []byte("tok-123456\n"))
	cfg := parseTestConfig(t, "-web.tls-cert-file", certFile, "-web.tls-key-file", keyFile,
		"-web.basic-auth-file", users, "-web.bearer-token-file", token)
	url := startTestServer(t, cfg, nil)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	tests := []struct {
		name string
		hdr  []string
		user string
		pass string
		want int
	}{
		{name: "missing credentials", want: 401},
		{name: "basic good", user: "prometheus", pass: "s3cret:with:colons", want: 200},
		{name: "basic second user", user: "alice", pass: "wonderland", want: 200},
		{name: "basic wrong password", user: "prometheus", pass: "s3cret", want: 401},
		{name: "basic unknown user", user: "mallory", pass: "wonderland", want: 401},
		{name: "basic empty", user: "", pass: "", want: 401},
		{name: "bearer good", hdr: []string{"Authorization", "Bearer tok-123456"}, want: 200},
		{name: "bearer wrong", hdr: []string{"Authorization", "Bearer tok-12345"}, want: 401},
		{name: "bearer empty", hdr: []string{"Authorization", "Bearer "}, want: 401},
		{name: "other scheme", hdr: []string{"Authorization", "Digest x"}, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/metrics", "/", "/nothing"} {
				req, _ := http.NewRequest("GET", url+path, nil)
				if tt.user != "" || tt.pass != "" || tt.name == "basic empty" {
					req.SetBasicAuth(tt.user, tt.pass)
				}
				for i := 0; i+1 < len(tt.hdr); i += 2 {
					req.Header.Set(tt.hdr[i], tt.hdr[i+1])
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := tt.want
				if want == 200 && path == "/nothing" {
					want = 404
				}
				if resp.StatusCode != want {
					t.Errorf("%s: %s, want %d", path, resp.Status, want)
				}
				if resp.StatusCode == 401 {
					ch := resp.Header.Values("WWW-Authenticate")
					if len(ch) != 2 || !strings.HasPrefix(ch[0], "Basic ") || !strings.HasPrefix(ch[1], "Bearer ") {
						t.Errorf("%s: WWW-Authenticate %q", path, ch)
					}
					if strings.TrimSpace(string(body)) != "Unauthorized" {
						t.Errorf("%s: 401 body %q, want no detail", path, body)
					}
				}
			}
		})
	}
	t.Run("plain HTTP to the TLS port", func(t *testing.T) {
		resp, err := http.Get("http" + strings.TrimPrefix(url, "https") + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Error("plain HTTP served the metrics")
			}
		}
	})
	t.Run("untrusted client", func(t *testing.T) {
		if _, err := http.Get(url + "/metrics"); err == nil {
			t.Error("a client without the certificate connected")
		}
	})
}

func TestHTTPSlowHeaders(t *testing.T) {
	cfg := parseTestConfig(t)
	cfg.limits.readHeader = 300 * time.Millisecond
	url := startTestServer(t, cfg, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A slowloris client: one header byte every 50 ms, never done.
		conn.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\n"))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := conn.Write([]byte("X")); err != nil {
				return
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept a slow client for %v", time.Since(start))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut off after %v, want about %v", d, cfg.limits.readHeader)
	}
}

func TestHTTPHeaderTooLarge(t *testing.T) {
	// The README's Security section: headers over the limit get 431.
	cfg := parseTestConfig(t)
	cfg.limits.maxHeader = 4 << 10
	url := startTestServer(t, cfg, nil)
	resp, _ := httpGet(t, http.DefaultClient, http.MethodGet, url+"/metrics", "X-Filler", strings.Repeat("x", 16<<10))
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

func TestHTTPConcurrency(t *testing.T) {
	t.Run("concurrent scrapes", func(t *testing.T) {
		cfg := parseTestConfig(t)
		url := startTestServer(t, cfg, nil)
		var wg sync.WaitGroup
		var bad atomic.Int32
		for range 20 {
			wg.Go(func() {
				c := &http.Client{Timeout: 10 * time.Second}
				for range 10 {
					resp, err := c.Get(url + "/metrics")
					if err != nil {
						bad.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						bad.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := bad.Load(); n != 0 {
			t.Errorf("%d of 200 concurrent scrapes failed", n)
		}
	})
	t.Run("max requests", func(t *testing.T) {
		cfg := parseTestConfig(t, "-web.max-requests", "2")
		entered, release := make(chan struct{}, 2), make(chan struct{})
		url := startTestServer(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-release
			io.WriteString(w, "ok\n")
		}))
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				resp, err := http.Get(url + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("a held request: %s", resp.Status)
				}
			})
		}
		<-entered
		<-entered
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("third concurrent request: %s, want 503", resp.Status)
		}
		close(release)
		wg.Wait()
		resp, err = http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("after the others finished: %s, want 200", resp.Status)
		}
	})
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"4194304", 4 << 20, true},
		{"4MiB", 4 << 20, true},
		{"4M", 4 << 20, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"100B", 100, true},
		{" 8 MiB ", 8 << 20, true},
		{"", 0, false},
		{"-1", 0, false},
		{"4MB", 0, false},
		{"4 parsecs", 0, false},
		{"9999999GiB", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseByteSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseByteSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// Signals.

// TestFileModeSIGTERM: with an input that never ends (a pipe whose writer
// stays open), SIGTERM or SIGINT stops reading; what was read is printed
// and the exit code is 0. The program runs in-process, and the signal goes
// to this process once every record has been read (endlessReader.ready).
func TestFileModeSIGTERM(t *testing.T) {
	orig, err := os.ReadFile(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	if len(orig) > pcapReadChunk {
		t.Fatalf("%s is larger than one read", sampleCapture)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			in := newEndlessReader(orig)
			defer close(in.release)
			done := make(chan runResult, 1)
			go func() {
				var out, errb bytes.Buffer
				code := execute([]string{"-dnstt.domain", "t.example.com", "-capture.file", "-"}, in, &out, &errb)
				done <- runResult{out.String(), errb.String(), code}
			}()
			select {
			case <-in.ready:
			case res := <-done:
				t.Fatalf("exit %d before the signal, stderr %q", res.code, res.stderr)
			case <-time.After(10 * time.Second):
				t.Fatal("the capture was not read within 10 s")
			}
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			var res runResult
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10 s after the signal")
			}
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			checkSampleTotals(t, parseExposition(t, res.stdout))
		})
	}
}

// endlessReader is a capture on a pipe whose writer stays open: its reads
// return the whole capture, then pcapChunks-1 single bytes (the start of a
// record header that never completes), then block until release is
// closed. The pcap reader has pcapChunks buffers; the read after those
// needs the buffer of the whole capture back, which the parser releases
// only after it has handed out every record of it (pcapReader.fill). That
// read closes ready: every record has been read, and the signal handler
// was installed before the first read.
type endlessReader struct {
	reads   [][]byte
	ready   chan struct{}
	release chan struct{}
	once    sync.Once
}

// newEndlessReader returns an endlessReader of capture.
func newEndlessReader(capture []byte) *endlessReader {
	r := &endlessReader{reads: [][]byte{capture}, ready: make(chan struct{}), release: make(chan struct{})}
	for range pcapChunks - 1 {
		r.reads = append(r.reads, []byte{0})
	}
	return r
}

// Read implements io.Reader, one element of reads per call.
func (r *endlessReader) Read(p []byte) (int, error) {
	if len(r.reads) > 0 {
		n := copy(p, r.reads[0])
		if r.reads[0] = r.reads[0][n:]; len(r.reads[0]) == 0 {
			r.reads = r.reads[1:]
		}
		return n, nil
	}
	r.once.Do(func() { close(r.ready) })
	<-r.release
	return 0, io.EOF
}

// waitBlockedInFIFOOpen waits until a thread of process pid sleeps in
// the kernel's FIFO open (wchan wait_for_partner), or 5 s pass.
func waitBlockedInFIFOOpen(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
		for _, p := range tasks {
			if b, _ := os.ReadFile(p); string(b) == "wait_for_partner" {
				return
			}
		}
	}
	t.Logf("no thread of %d seen in wait_for_partner within 5 s (wchan unavailable?); signalling anyway", pid)
}

func TestFileModeSIGTERMBeforeOpen(t *testing.T) {
	// A FIFO nobody writes to: opening it blocks. SIGTERM (or SIGINT)
	// must still stop the program, which prints the exposition of
	// nothing read (zero counters) and exits 0 (SPEC section 6).
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "capture.pcap")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(testBinary, "-dnstt.domain", "t.example.com", "-capture.file", fifo)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			done := startCommand(t, cmd)
			waitBlockedInFIFOOpen(t, cmd.Process.Pid)
			cmd.Process.Signal(sig)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit: %v, want 0; stderr %q", err, errb.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10 s after the signal")
			}
			e := parseExposition(t, out.String())
			for _, name := range []string{"dnstt_exporter_packets_received_total", "dnstt_queries_total", "dnstt_bytes_in_total", "dnstt_active_clients"} {
				if v, ok := e[name+`{domain="t.example.com"}`]; name != "dnstt_exporter_packets_received_total" && (!ok || v != 0) {
					t.Errorf("%s = %v (present %v), want 0", name, v, ok)
				}
				if got := e.sum(name); got != 0 {
					t.Errorf("%s sums to %v, want 0", name, got)
				}
			}
			if _, ok := e["dnstt_exporter_packets_received_total"]; !ok {
				t.Errorf("no dnstt_exporter_packets_received_total in\n%s", out.String())
			}
		})
	}
	t.Run("writer comes later", func(t *testing.T) {
		// The same FIFO with a writer after a while: read as usual.
		fifo := filepath.Join(t.TempDir(), "capture.pcap")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		orig, err := os.ReadFile("testdata/pcap/visible-small.pcap")
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testBinary, "-dnstt.domain", "t.example.com", "-capture.file", fifo)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		done := startCommand(t, cmd)
		waitBlockedInFIFOOpen(t, cmd.Process.Pid)
		if err := os.WriteFile(fifo, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("exit: %v, want 0; stderr %q", err, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("still running 10 s after the writer closed")
		}
		if got := parseExposition(t, out.String()).sum("dnstt_queries_total"); got != 414 {
			t.Errorf("queries = %v, want 414", got)
		}
	})
}

// freeLoopbackAddr returns a loopback TCP port that was free a moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestLiveSIGTERMDuringScrape(t *testing.T) {
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(testBinary, "-dnstt.domain", "t.example.com", "-capture.interface", "lo", "-web.listen-address", addr)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	done := startCommand(t, cmd)
	// Wait until it serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-done:
			skipUnlessCI(t, "live capture did not start (needs CAP_NET_RAW and the capture ring): %v: %s", err, errb.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 10 s: %s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Scrapes in a loop while SIGTERM arrives: every scrape that got a
	// response got a whole one, and the process exits 0.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var scrapes, broken atomic.Int32
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/metrics")
				if err != nil {
					continue // refused after shutdown
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				scrapes.Add(1)
				if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte("dnstt_queries_total")) {
					broken.Add(1)
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	stopCommand(t, cmd.Process, done, &errb, 15*time.Second)
	close(stop)
	wg.Wait()
	if scrapes.Load() == 0 || broken.Load() != 0 {
		t.Errorf("%d scrapes, %d broken", scrapes.Load(), broken.Load())
	}
	if !strings.Contains(errb.String(), "shutting down") {
		t.Errorf("stderr lacks the shutdown line: %s", errb.String())
	}
}

// benchPackets is the number of records in the file-mode benchmark capture.
const benchPackets = 1000000

// benchFiles caches the benchmark captures by format, in testDir.
var benchFiles sync.Map

// benchFile writes a capture of benchPackets realistic records: dnstt
// queries and responses of 2000 sessions behind 500 IPv4 and IPv6
// resolvers, 10% other DNS, 20 µs apart. It returns the file's path.
func benchFile(b *testing.B, ng bool) string {
	b.Helper()
	if p, ok := benchFiles.Load(ng); ok {
		return p.(string)
	}
	const distinct = 8192
	frames := make([][]byte, 0, distinct)
	server4, server6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for i := range distinct {
		var id clientID
		binary.BigEndian.PutUint64(id[:], uint64(i%2000)*0x9E3779B97F4A7C15)
		r := i % 500
		var resolver, server netip.Addr
		switch {
		case r%4 == 0:
			resolver, server = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, byte(r >> 8), 14: byte(r >> 8), 15: byte(r)}), server6
		case r >= 256:
			resolver, server = netip.AddrFrom4([4]byte{203, 0, 113, byte(r)}), server4
		default:
			resolver, server = netip.AddrFrom4([4]byte{198, 51, 100, byte(r)}), server4
		}
		var msg []byte
		query := i%2 == 0
		switch {
		case i%10 == 9:
			msg = genDNS(uint16(i), "www.example.org", 1, false, 0)
		case query:
			msg = genDNS(uint16(i), genQName(id, make([]byte, 8+i%3*60), "t.example.com", i%7 == 0), 16, false, 0)
		default:
			msg = genDNS(uint16(i), genQName(id, make([]byte, 8), "t.example.com", false), 16, true, 200+i%900)
		}
		src, dst, sport, dport := resolver, server, uint16(30000+r), uint16(53)
		if !query && i%10 != 9 {
			src, dst, sport, dport = server, resolver, 53, uint16(30000+r)
		}
		var ip []byte
		if src.Is4() {
			ip = genIPv4(src, dst, sport, dport, msg, uint16(i), 0)[0]
		} else {
			ip = genIPv6(src, dst, sport, dport, msg)
		}
		frames = append(frames, genEthernet(ip))
	}
	name := "bench.pcap"
	if ng {
		name = "bench.pcapng"
	}
	p := filepath.Join(testDir, name)
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	const base = int64(1795600000) * 1e9
	var recs []genRecord
	flush := func(first bool) {
		var out []byte
		if ng {
			sec := genSection{order: binary.LittleEndian, ifaces: []genInterface{{lt: linkEthernet, tsresol: 9}}, records: recs}
			out = genPcapng(nil, []genSection{sec})
			if !first {
				shb := int(binary.LittleEndian.Uint32(out[4:]))
				idb := int(binary.LittleEndian.Uint32(out[shb+4:]))
				out = out[shb+idb:]
			}
		} else {
			out = genPcap(nil, binary.LittleEndian, true, linkEthernet, recs)
			if !first {
				out = out[pcapFileHeaderLen:]
			}
		}
		w.Write(out)
		recs = recs[:0]
	}
	for i := range benchPackets {
		recs = append(recs, genRecord{ts: base + int64(i)*20e3, data: frames[i%distinct]})
		if len(recs) == 65536 {
			flush(i < 65536)
		}
	}
	if len(recs) > 0 {
		flush(false)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	benchFiles.Store(ng, p)
	return p
}

// BenchmarkFileMode runs the whole binary on a large capture in the page
// cache and reports packets per second of the process, start to exit.
func BenchmarkFileMode(b *testing.B) {
	for _, ng := range []bool{false, true} {
		name := "pcap"
		if ng {
			name = "pcapng"
		}
		b.Run(name, func(b *testing.B) {
			p := benchFile(b, ng)
			fi, _ := os.Stat(p)
			b.SetBytes(fi.Size())
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				out, err := exec.Command(testBinary, "-dnstt.domain", "t.example.com", "-capture.file", p).Output()
				if err != nil || !bytes.Contains(out, []byte("dnstt_exporter_packets_received_total")) {
					b.Fatalf("%v: %s", err, out)
				}
			}
			d := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(benchPackets)/d.Seconds(), "packets/s")
			b.ReportMetric(float64(d.Nanoseconds())/benchPackets, "ns/packet")
		})
	}
}

// BenchmarkReplay is file mode in-process, reader and pipeline, per record.
func BenchmarkReplay(b *testing.B) {
	cfg := &config{domains: dnsttDomains("t.example.com"), port: 53, window: defaultWindow, sessionsMax: defaultSessionsMax}
	head, body := genBenchCapture(false, 4096)
	r, err := newPcapReader("loop", &pcapLoopReader{head: head, body: body}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()
	pl := newPipeline(cfg, nil, false)
	var rec pcapRecord
	b.ReportAllocs()
	for b.Loop() {
		if err := r.next(&rec); err != nil {
			b.Fatal(err)
		}
		pl.handleLink(rec.lt, rec.data, rec.iface, rec.ts)
	}
}

func TestProgramOutputPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipUnlessCI(t, "promtool not installed (apt-get install prometheus)")
	}
	check := func(t *testing.T, text string) {
		t.Helper()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("promtool check metrics: %v\n%s\ninput:\n%s", err, out, text)
		}
	}
	t.Run("file mode", func(t *testing.T) {
		res := runExecute(t, nil, "-dnstt.domain", "t.example.com", "-dnstt.domain", "x.example.net",
			"-capture.file", sampleCapture,
			"-geoip.country-database", "testdata/geo/country.mmdb", "-geoip.asn-database", "testdata/geo/asn.mmdb")
		if res.code != 0 {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
		check(t, res.stdout)
	})
	t.Run("HTTP", func(t *testing.T) {
		url := startTestServer(t, parseTestConfig(t, "-vaydns.domain", "v.example.net", "-vaydns.domain", "n.example.net",
			"-vaydns.record-type", "NULL", "-vaydns.clientid-size", "4"), nil)
		_, body := httpGet(t, http.DefaultClient, "GET", url+"/metrics")
		check(t, body)
		for _, want := range []string{
			`dnstt_exporter_domain_info{domain="n.example.net",protocol="vaydns",record_type="null",clientid_bytes="4"} 1`,
			`dnstt_exporter_domain_info{domain="t.example.com",protocol="dnstt",record_type="txt",clientid_bytes="8"} 1`,
			`dnstt_exporter_domain_info{domain="v.example.net",protocol="vaydns",record_type="null",clientid_bytes="4"} 1`,
		} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("scrape lacks %s", want)
			}
		}
	})
}

func TestReplayParallel(t *testing.T) {
	// Decoding on another goroutine must not change the output: the same
	// captures through replay and replayParallel print the same bytes.
	dgs, _ := synthScenario()
	captures := map[string][]byte{}
	for _, enc := range []string{"ethernet", "sll", "sll2", "pcapng"} {
		captures[enc], _ = synthCapture(t, enc, dgs)
	}
	real, err := os.ReadFile(sampleCapture)
	if err != nil {
		t.Fatal(err)
	}
	captures["visible-small"] = real
	captures["visible-small pcapng"] = genPcapngFromPcap(t, real)
	cfg := parseTestConfig(t, "-dnstt.domain", "tunnel.example.net", "-sessions.max", "2")
	for name, file := range captures {
		t.Run(name, func(t *testing.T) {
			var outs [2]string
			for i, fn := range []func(*pcapReader, *pipeline, *atomic.Bool) (int64, uint64, error){replay, replayParallel} {
				r, err := newPcapReader(name, bytes.NewReader(file), nil)
				if err != nil {
					t.Fatal(err)
				}
				pl := newPipeline(cfg, nil, r.multiInterface())
				var stopped atomic.Bool
				last, n, err := fn(r, pl, &stopped)
				r.close()
				if err != nil {
					t.Fatal(err)
				}
				m := newMetrics(metricsConfig{domains: cfg.domains, sessions: pl.sessions, pending: pl.pending, resolvers: pl.resolvers, capture: pl.stats, fileMode: true, now: func() int64 { return last }})
				outs[i] = fmt.Sprintf("records %d, last %d\n%s", n, last, m.appendText(nil))
			}
			if outs[0] != outs[1] {
				t.Errorf("replay:\n%s\nreplayParallel:\n%s", outs[0], outs[1])
			}
		})
	}
}

func TestLiveStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"listen address in use", []string{"-web.listen-address", busy.Addr().String(), "-capture.interface", "lo"},
			[]string{"-web.listen-address", "address already in use"}},
		// A documentation address parses but is on no interface here.
		{"listen address not local", []string{"-web.listen-address", "192.0.2.1:9713", "-capture.interface", "lo"},
			[]string{"-web.listen-address", "192.0.2.1:9713", "cannot assign requested address"}},
		{"no such interface", []string{"-web.listen-address", freeLoopbackAddr(t), "-capture.interface", "nosuchif0"},
			[]string{"nosuchif0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runExecute(t, nil, append([]string{"-dnstt.domain", "t.example.com"}, tt.args...)...)
			if res.code != 1 {
				t.Errorf("exit %d, want 1 (stderr %q)", res.code, res.stderr)
			}
			if res.stdout != "" || strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("stdout %q, stderr %q: want one line on stderr only", res.stdout, res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr %q lacks %q", res.stderr, w)
				}
			}
		})
	}
}

// GeoIP in file mode.

// geoFamilies are the dnstt metric families that carry GeoIP labels.
var geoFamilies = []string{"dnstt_queries_total", "dnstt_bytes_in_total", "dnstt_bytes_out_total",
	"dnstt_sessions_total", "dnstt_active_clients", "dnstt_peak_clients"}

// geoSeriesKey is the country and asn label values of a series, "-" for a
// label the series does not carry.
type geoSeriesKey struct {
	country, asn string
}

// geoSeries returns the series of family name under domain by their
// (country, asn) label values. It fails t on a series with an unexpected
// label set: labels other than domain, country and asn, or out of order.
func (e scrapeValues) geoSeries(t *testing.T, name, domain string) map[geoSeriesKey]float64 {
	t.Helper()
	out := map[geoSeriesKey]float64{}
	for k, v := range e {
		n, l, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		l = strings.TrimSuffix(l, "}")
		rest, ok := strings.CutPrefix(l, `domain="`+domain+`"`)
		if !ok {
			continue
		}
		key := geoSeriesKey{"-", "-"}
		if r, ok := strings.CutPrefix(rest, `,country="`); ok {
			key.country, rest, _ = strings.Cut(r, `"`)
		}
		if r, ok := strings.CutPrefix(rest, `,asn="`); ok {
			key.asn, rest, _ = strings.Cut(r, `"`)
		}
		if rest != "" {
			t.Fatalf("series %s: unexpected labels %q", k, rest)
		}
		if _, dup := out[key]; dup {
			t.Fatalf("series %s: label set %v twice", k, key)
		}
		out[key] = v
	}
	return out
}

// geoSeriesWant is the expected value of each GeoIP family by label set.
type geoSeriesWant map[string]map[geoSeriesKey]float64

// add adds v to family name of label set k.
func (w geoSeriesWant) add(name string, k geoSeriesKey, v float64) {
	if w[name] == nil {
		w[name] = map[geoSeriesKey]float64{}
	}
	w[name][k] += v
}

// checkGeoSeries compares every GeoIP family of e with want: each label set
// want names has its value, every other series is 0. It also checks that
// the sum of each family equals that of plain, the run without GeoIP.
func checkGeoSeries(t *testing.T, e, plain scrapeValues, want geoSeriesWant) {
	t.Helper()
	const domain = "t.example.com"
	for _, name := range geoFamilies {
		got := e.geoSeries(t, name, domain)
		for k, w := range want[name] {
			if g, ok := got[k]; !ok || g != w {
				t.Errorf("%s{country=%q,asn=%q} = %v (present %v), want %v", name, k.country, k.asn, g, ok, w)
			}
		}
		for k, g := range got {
			if _, ok := want[name][k]; !ok && g != 0 {
				t.Errorf("%s{country=%q,asn=%q} = %v, want no such series or 0", name, k.country, k.asn, g)
			}
		}
		if s, p := e.sum(name), plain.sum(name); s != p {
			t.Errorf("%s summed over label sets = %v, without GeoIP %v", name, s, p)
		}
	}
}

// runExposition runs the binary in file mode on capture with the tunnel
// domain t.example.com and extra flags, and parses what it prints.
func runExposition(t *testing.T, capture string, extra ...string) scrapeValues {
	t.Helper()
	res := runExecute(t, nil, append([]string{"-dnstt.domain", "t.example.com", "-capture.file", capture}, extra...)...)
	if res.code != 0 {
		t.Fatalf("%v: exit %d, stderr %q", extra, res.code, res.stderr)
	}
	return parseExposition(t, res.stdout)
}

// geoDBFlags are database combinations, as flags, with the labels they
// give: hasCountry and hasASN.
type geoDBFlags struct {
	name               string
	flags              []string
	hasCountry, hasASN bool
}

// geoFixtureCombos are the database combinations the captures are
// replayed with; every one maps each fixture range the same way.
var geoFixtureCombos = []geoDBFlags{
	{"country and asn", []string{"-geoip.country-database", "testdata/geo/country.mmdb", "-geoip.asn-database", "testdata/geo/asn.mmdb"}, true, true},
	{"ipinfo lite for both", []string{"-geoip.country-database", "testdata/geo/ipinfo-lite.mmdb", "-geoip.asn-database", "testdata/geo/ipinfo-lite.mmdb"}, true, true},
	{"dbip country only", []string{"-geoip.country-database", "testdata/geo/dbip-country-lite.mmdb"}, true, false},
	{"city and dbip asn", []string{"-geoip.country-database", "testdata/geo/city.mmdb", "-geoip.asn-database", "testdata/geo/dbip-asn-lite.mmdb"}, true, true},
	{"asn only", []string{"-geoip.asn-database", "testdata/geo/asn.mmdb"}, false, true},
}

// key returns the label set of a resolver with country and asn under the
// labels c exports.
func (c geoDBFlags) key(country, asn string) geoSeriesKey {
	k := geoSeriesKey{"-", "-"}
	if c.hasCountry {
		k.country = country
	}
	if c.hasASN {
		k.asn = asn
	}
	return k
}

func TestFileModeGeoIPVisible(t *testing.T) {
	const pcap = sampleCapture
	truth := loadSampleTruth(t)
	if truth.Domain != "t.example.com" || len(truth.Resolvers) != 2 || len(truth.Clients) != 2 {
		t.Fatalf("truth file: domain %q, %d resolvers, %d clients; want t.example.com, 2, 2", truth.Domain, len(truth.Resolvers), len(truth.Clients))
	}
	// The fixture tables of testdata/geo/README.md for the two resolvers.
	fixture := map[string][2]string{
		"198.51.100.10":  {"DE", "64500"},
		"2001:db8:1::10": {"NL", "64502"},
	}
	plain := runExposition(t, pcap)
	for _, c := range geoFixtureCombos {
		t.Run(c.name, func(t *testing.T) {
			want := geoSeriesWant{}
			label := func(r string) geoSeriesKey {
				f, ok := fixture[r]
				if !ok {
					t.Fatalf("resolver %s of the truth file is not in the fixture table", r)
				}
				return c.key(f[0], f[1])
			}
			for r, v := range truth.Resolvers {
				k := label(r)
				want.add("dnstt_queries_total", k, float64(v.Queries))
				want.add("dnstt_bytes_in_total", k, float64(v.BytesIn))
				want.add("dnstt_bytes_out_total", k, float64(v.BytesOut))
			}
			// Sessions: a client whose queries are never more than the
			// window apart is one session, active from its first query
			// until a window after its last. Peak is the most clients of
			// one label set active at once, judged at query times.
			for id, cl := range truth.Clients {
				if len(cl.Resolvers) != 1 || cl.MaxQueryGap >= truth.WindowS {
					t.Fatalf("client %s: resolvers %v, longest gap %v s: not one session behind one resolver", id, cl.Resolvers, cl.MaxQueryGap)
				}
				k := label(cl.Resolvers[0])
				want.add("dnstt_sessions_total", k, 1)
				active := 0.0
				if truth.Packets.LastTS-cl.LastTS < truth.WindowS {
					active = 1
				}
				want.add("dnstt_active_clients", k, active)
				peak := 0.0
				want.add("dnstt_peak_clients", k, 0)
				for _, other := range truth.Clients {
					if label(other.Resolvers[0]) == k && other.FirstTS <= cl.FirstTS && cl.FirstTS-other.LastTS < truth.WindowS {
						peak++
					}
				}
				want["dnstt_peak_clients"][k] = max(want["dnstt_peak_clients"][k], peak)
			}
			e := runExposition(t, pcap, c.flags...)
			checkGeoSeries(t, e, plain, want)
			for _, db := range []string{"country", "asn"} {
				if got := e.sum("dnstt_exporter_geoip_errors_total", `database="`+db+`"`); got != 0 {
					t.Errorf("geoip errors of %s = %v, want 0", db, got)
				}
			}
		})
	}
}

// geoClient is one dnstt client of a synthetic GeoIP capture: its queries
// all go through resolver.
type geoClient struct {
	resolver netip.Addr
	queries  int
}

// geoPacket is one dnstt datagram of a synthetic GeoIP capture.
type geoPacket struct {
	client int // index into the clients
	query  bool
	dnsLen int
}

// geoCapture writes a pcap file (Ethernet) in which every client sends its
// queries through its resolver to the server (192.0.2.1, or 2001:db8::1
// for an IPv6 resolver, also an IPv4-mapped one) and gets an answer to
// each, all within 20 s, so every session is still active at the end. It
// returns the file's path and the datagrams in capture order.
func geoCapture(t *testing.T, clients []geoClient) (string, []geoPacket) {
	t.Helper()
	const base = int64(1795600000) * 1e9
	server4, server6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	var recs []genRecord
	var pkts []geoPacket
	ts := base
	for q := 0; ; q++ {
		sent := false
		for ci, c := range clients {
			if q >= c.queries {
				continue
			}
			sent = true
			var id clientID
			binary.BigEndian.PutUint32(id[:], uint32(ci))
			id[7] = 0xd5
			dnsID := uint16(ci*16 + q)
			name := genQName(id, make([]byte, 8+(ci+q)%4*16), "t.example.com", q%2 == 1)
			qm, rm := genDNS(dnsID, name, 16, false, 0), genDNS(dnsID, name, 16, true, 100+ci%5*60)
			port := uint16(20000 + ci)
			var qip, rip []byte
			if c.resolver.Is4() {
				qip = genIPv4(c.resolver, server4, port, 53, qm, dnsID, 0)[0]
				rip = genIPv4(server4, c.resolver, 53, port, rm, dnsID, 0)[0]
			} else {
				qip = genIPv6(c.resolver, server6, port, 53, qm)
				rip = genIPv6(server6, c.resolver, 53, port, rm)
			}
			recs = append(recs, genRecord{ts: ts, data: genEthernet(qip)}, genRecord{ts: ts + 1e6, data: genEthernet(rip)})
			pkts = append(pkts, geoPacket{ci, true, len(qm)}, geoPacket{ci, false, len(rm)})
			ts += 2e6
		}
		if !sent {
			break
		}
	}
	if ts-base > 20e9 {
		t.Fatalf("synthetic capture spans %v, more than 20 s", time.Duration(ts-base))
	}
	return writeTempFile(t, "geo.pcap", genPcap(nil, binary.LittleEndian, true, linkEthernet, recs)), pkts
}

// geoExpect computes the GeoIP families a replay of pkts must print, when
// client i's series is label(i): every client is one session, active at
// the end, and all overlap, so peak is the number of clients per label set.
func geoExpect(clients []geoClient, pkts []geoPacket, label func(i int) geoSeriesKey) geoSeriesWant {
	want := geoSeriesWant{}
	for i := range clients {
		k := label(i)
		want.add("dnstt_sessions_total", k, 1)
		want.add("dnstt_active_clients", k, 1)
		want.add("dnstt_peak_clients", k, 1)
	}
	for _, p := range pkts {
		k := label(p.client)
		if p.query {
			want.add("dnstt_queries_total", k, 1)
			want.add("dnstt_bytes_in_total", k, float64(p.dnsLen))
		} else {
			want.add("dnstt_bytes_out_total", k, float64(p.dnsLen))
		}
	}
	return want
}

func TestFileModeGeoIPSynthetic(t *testing.T) {
	// One resolver in every range of testdata/geo/README.md, with what
	// every fixture set answers for it, and whether it is in a range of
	// damaged.mmdb (198.51.100.0/24, 2001:db8:1::/48, with IPv4 aliasing).
	resolvers := []struct {
		addr         string
		country, asn string
		damaged      bool
	}{
		{"198.51.100.10", "DE", "64500", true},
		{"198.51.100.200", "BR", "64500", true},
		{"203.0.113.10", "JP", "64501", false},
		{"203.0.113.200", "JP", "0", false}, // a country without ASN
		{"2001:db8:1::10", "NL", "64502", true},
		{"127.0.1.5", "FR", "64510", false},
		{"127.0.2.5", "IR", "64511", false},
		{"10.99.1.2", "US", "4200000001", false}, // the 32-bit ASN
		{"127.0.3.5", "ZZ", "0", false},          // registered_country GB only
		{"192.0.2.77", "ZZ", "0", false},
		{"2001:db8::77", "ZZ", "0", false},
		{"2001:db8:2::77", "ZZ", "0", false},
		{"127.0.0.9", "ZZ", "0", false},
		{"::ffff:198.51.100.20", "DE", "64500", true}, // IPv4-mapped, in an IPv6 packet
		{"::ffff:10.99.3.4", "US", "4200000001", false},
		{"2002:c633:640a::1", "DE", "64500", true},    // 6to4 of 198.51.100.10
		{"2001:0:cb00:7114::1", "JP", "64501", false}, // Teredo of 203.0.113.20
	}
	var clients []geoClient
	for i, r := range resolvers {
		clients = append(clients, geoClient{resolver: netip.MustParseAddr(r.addr), queries: 1 + i%3})
	}
	p, pkts := geoCapture(t, clients)
	plain := runExposition(t, p)
	if got, want := plain.sum("dnstt_queries_total"), float64(len(pkts)/2); got != want {
		t.Fatalf("without GeoIP: %v queries, want %v (the capture is not what the test meant)", got, want)
	}
	for _, c := range geoFixtureCombos {
		t.Run(c.name, func(t *testing.T) {
			want := geoExpect(clients, pkts, func(i int) geoSeriesKey { return c.key(resolvers[i].country, resolvers[i].asn) })
			e := runExposition(t, p, c.flags...)
			checkGeoSeries(t, e, plain, want)
			for _, db := range []string{"country", "asn"} {
				if got := e.sum("dnstt_exporter_geoip_errors_total", `database="`+db+`"`); got != 0 {
					t.Errorf("geoip errors of %s = %v, want 0", db, got)
				}
			}
		})
	}
	t.Run("damaged country database", func(t *testing.T) {
		// damaged.mmdb opens and finds the records of its ranges, whose
		// decoding fails: those resolvers fall back to ZZ (the ASN
		// database still answers). geo.go caches a failed lookup like a
		// good one, so each such resolver counts one error, and one more
		// only if another resolver took its address-cache slot (random
		// seed: two of 17 addresses share one of 65,536 slots rarely).
		c := geoDBFlags{flags: []string{"-geoip.country-database", "testdata/geo/damaged.mmdb", "-geoip.asn-database", "testdata/geo/asn.mmdb"}, hasCountry: true, hasASN: true}
		want := geoExpect(clients, pkts, func(i int) geoSeriesKey { return c.key("ZZ", resolvers[i].asn) })
		datagrams, damaged := 0, 0
		for _, pk := range pkts {
			if resolvers[pk.client].damaged {
				datagrams++
			}
		}
		for _, r := range resolvers {
			if r.damaged {
				damaged++
			}
		}
		e := runExposition(t, p, c.flags...)
		checkGeoSeries(t, e, plain, want)
		if got := e.sum("dnstt_exporter_geoip_errors_total", `database="country"`); got < float64(damaged) || got >= float64(datagrams) {
			t.Errorf("geoip errors of country = %v, want %d (one per resolver in a damaged range; %d datagrams)", got, damaged, datagrams)
		}
		if got := e.sum("dnstt_exporter_geoip_errors_total", `database="asn"`); got != 0 {
			t.Errorf("geoip errors of asn = %v, want 0", got)
		}
	})
}

func TestFileModeGeoIPCap(t *testing.T) {
	// many-lite.mmdb (testdata/geo/README.md): network i is 10.H.L.0/24,
	// H = 1 + i/256, L = i mod 256, in AS(4200000000+i), with a country
	// cycling through manyCountries.
	manyCountries := []string{"DE", "BR", "JP", "NL", "FR", "IR", "US", "GB"}
	type network struct{ country, asn string }
	var clients []geoClient
	var nets []network
	addClient := func(i, host int) {
		clients = append(clients, geoClient{resolver: netip.AddrFrom4([4]byte{10, byte(1 + i/256), byte(i % 256), byte(host)}), queries: 1 + len(clients)%3})
		nets = append(nets, network{manyCountries[i%len(manyCountries)], strconv.Itoa(4200000000 + i)})
	}
	for k := range 40 {
		addClient(k*37, 5) // 40 networks in 40 ASNs, up to 10.6.x.0
	}
	addClient(0, 99)    // another resolver of a network with its own label set
	addClient(5*37, 99) // and of a folded one
	p, pkts := geoCapture(t, clients)
	plain := runExposition(t, p)

	tests := []struct {
		name string
		c    geoDBFlags
		max  int
	}{
		{"country and asn, cap 3", geoDBFlags{flags: []string{"-geoip.country-database", "testdata/geo/many-lite.mmdb", "-geoip.asn-database", "testdata/geo/many-lite.mmdb"}, hasCountry: true, hasASN: true}, 3},
		{"country and asn, cap 10", geoDBFlags{flags: []string{"-geoip.country-database", "testdata/geo/many-lite.mmdb", "-geoip.asn-database", "testdata/geo/many-lite.mmdb"}, hasCountry: true, hasASN: true}, 10},
		{"asn only, cap 3", geoDBFlags{flags: []string{"-geoip.asn-database", "testdata/geo/many-lite.mmdb"}, hasASN: true}, 3},
		{"country and asn, cap 1", geoDBFlags{flags: []string{"-geoip.country-database", "testdata/geo/many-lite.mmdb", "-geoip.asn-database", "testdata/geo/many-lite.mmdb"}, hasCountry: true, hasASN: true}, 1},
		// Without an ASN database nothing folds: the countries bound the
		// label sets (geo.go maxIDs), past the cap too.
		{"country only, cap 3", geoDBFlags{flags: []string{"-geoip.country-database", "testdata/geo/many-lite.mmdb"}, hasCountry: true}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The intern table of geo.go, replayed: (ZZ, 0) is the first
			// set; a new combination gets a set while fewer than the cap
			// exist, else, when it has an ASN, it counts under (its
			// country, 0), and every lookup of it counts as folded; a
			// (country, 0) set is always created.
			type combo struct{ country, asn string }
			sets := map[combo]bool{{"ZZ", "0"}: true}
			labelOf := make([]geoSeriesKey, len(clients))
			folded := 0
			for _, pk := range pkts {
				n := nets[pk.client]
				k := combo{"ZZ", "0"}
				if tt.c.hasCountry {
					k.country = n.country
				}
				if tt.c.hasASN {
					k.asn = n.asn
				}
				if !sets[k] && len(sets) >= tt.max && k.asn != "0" {
					folded++
					k.asn = "0"
				}
				sets[k] = true
				labelOf[pk.client] = tt.c.key(k.country, k.asn)
			}
			want := geoExpect(clients, pkts, func(i int) geoSeriesKey { return labelOf[i] })
			res := runExecute(t, nil, append([]string{"-dnstt.domain", "t.example.com", "-capture.file", p,
				"-geoip.max-label-sets", strconv.Itoa(tt.max)}, tt.c.flags...)...)
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			e := parseExposition(t, res.stdout)
			checkGeoSeries(t, e, plain, want)
			warnings := 0
			if folded > 0 {
				warnings = 1
			}
			if got := strings.Count(res.stderr, "reached -geoip.max-label-sets"); got != warnings {
				t.Errorf("%d warnings that the cap was reached, want %d; stderr:\n%s", got, warnings, res.stderr)
			}
			withASN := 0
			for k, v := range e.geoSeries(t, "dnstt_queries_total", "t.example.com") {
				if k.asn != "0" && k.asn != "-" {
					withASN++
				}
				if v == 0 && k != tt.c.key("ZZ", "0") {
					t.Errorf("series %v printed with no query", k)
				}
			}
			if withASN > tt.max {
				t.Errorf("%d label sets with an ASN, more than -geoip.max-label-sets %d", withASN, tt.max)
			}
			if folded == 0 && tt.c.hasASN {
				t.Fatal("the capture did not reach the cap")
			}
			if got := e.sum("dnstt_exporter_geoip_folded_lookups_total"); got != float64(folded) {
				t.Errorf("folded lookups = %v, want %d", got, folded)
			}
			if got := e.sum("dnstt_exporter_geoip_label_sets"); got != float64(len(sets)) {
				t.Errorf("label sets = %v, want %d", got, len(sets))
			}
		})
	}
}

func TestLiveGeoIPReload(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "geo")
	startResponder(t, ns, "127.0.0.1:53")
	db := filepath.Join(t.TempDir(), "country.mmdb")
	// replace writes fixture over db in place, as cp does: the exporter
	// reads a database into memory, so a rewrite under it is safe.
	replace := func(fixture string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata/geo", fixture))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(db, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	replace("country.mmdb")
	const listen = "127.0.0.1:9713"
	// ip netns exec execs the exporter in the process it starts, so
	// signals to that process reach the exporter.
	cmd := exec.Command("ip", "netns", "exec", ns, testBinary, "-dnstt.domain", "t.example.com",
		"-capture.interface", "lo", "-web.listen-address", listen, "-geoip.country-database", db)
	stderr := &geoLogBuffer{}
	cmd.Stderr = stderr
	done := startCommand(t, cmd)

	live := &liveExporter{t: t, ns: ns, listen: listen, done: done, stderr: stderr}
	scrapeNow, waitFor := live.scrape, live.waitFor
	// counts waits until the queries per country are want, then checks
	// the GeoIP self-metrics.
	counts := func(step string, want map[string]float64, reloadFailures float64) {
		t.Helper()
		waitFor(step, func() bool {
			for country, w := range want {
				if live.s.sum("dnstt_queries_total", `country="`+country+`"`) != w {
					return false
				}
			}
			return true
		})
		time.Sleep(3 * ringRetireTimeoutMs * time.Millisecond) // would a copy count twice?
		if err := scrapeNow(); err != nil {
			t.Fatal(err)
		}
		var total float64
		for country, w := range want {
			total += w
			if got := live.s.sum("dnstt_queries_total", `country="`+country+`"`); got != w {
				t.Errorf("%s: queries of %s = %v, want %v", step, country, got, w)
			}
		}
		if got := live.s.sum("dnstt_queries_total"); got != total {
			t.Errorf("%s: queries = %v, want %v", step, got, total)
		}
		for _, c := range []struct {
			series string
			want   float64
		}{
			{`dnstt_exporter_geoip_reload_failures_total{database="country"}`, reloadFailures},
			{`dnstt_exporter_geoip_errors_total{database="country"}`, 0},
			{`dnstt_exporter_geoip_build_timestamp_seconds{database="country"}`, 1735689600},
			{`dnstt_exporter_packets_dropped_total`, 0},
		} {
			if got, ok := live.s[c.series]; !ok || got != c.want {
				t.Errorf("%s: %s = %v (present %v), want %v", step, c.series, got, ok, c.want)
			}
		}
	}
	send := func(src string, cid byte, n int, firstID uint16) {
		t.Helper()
		if err := sendQueriesTo(ns, src, "t.example.com", [8]byte{cid, 0x47, 0x45, 0x4f, 1, 2, 3, 4}, n, firstID); err != nil {
			t.Fatal(err)
		}
	}
	// background sends n queries from IR (127.0.2.0/24 is IR in
	// country.mmdb and in dbip-country-lite.mmdb) while a reload happens.
	background := func(n int, firstID uint16) chan error {
		errc := make(chan error, 1)
		go func() {
			errc <- sendQueriesTo(ns, "127.0.2.5", "t.example.com", [8]byte{0x1a, 0x47, 0x45, 0x4f}, n, firstID)
		}()
		return errc
	}
	sighup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	waitFor("the first scrape", func() bool { return true })
	send("127.0.1.5", 0xa1, 5, 100)
	counts("country.mmdb", map[string]float64{"FR": 5}, 0)

	// A corrupt replacement: the reload fails, the old database stays and
	// answers a resolver it has not seen yet.
	bg := background(40, 1000)
	replace("corrupt.mmdb")
	sighup()
	waitFor("the failed reload", func() bool {
		return live.s[`dnstt_exporter_geoip_reload_failures_total{database="country"}`] == 1
	})
	send("127.0.1.6", 0xb2, 5, 200)
	if err := <-bg; err != nil {
		t.Fatal(err)
	}
	counts("corrupt.mmdb", map[string]float64{"FR": 10, "IR": 40}, 1)
	if !strings.Contains(stderr.String(), "GeoIP reload failed") {
		t.Errorf("stderr lacks the reload failure:\n%s", stderr.String())
	}

	// A good replacement of another product. Its build time is the same
	// as country.mmdb's (every fixture has build_epoch 1735689600), so the
	// log tells that it was loaded.
	bg = background(40, 2000)
	replace("dbip-country-lite.mmdb")
	sighup()
	waitFor("the reload of dbip-country-lite.mmdb", func() bool {
		return strings.Contains(stderr.String(), "DBIP-Country-Lite")
	})
	send("127.0.1.7", 0xc3, 4, 300)
	send("127.0.1.5", 0xa1, 2, 400)
	send("127.0.3.5", 0xd4, 2, 500)
	if err := <-bg; err != nil {
		t.Fatal(err)
	}
	counts("dbip-country-lite.mmdb", map[string]float64{"FR": 16, "IR": 80, "ZZ": 2}, 1)

	// A replacement that maps none of these addresses: a resolver cached
	// before the reload is looked up again in the new database.
	replace("many-lite.mmdb")
	sighup()
	waitFor("the reload of many-lite.mmdb", func() bool {
		return strings.Count(stderr.String(), "GeoIP database reloaded") == 2
	})
	send("127.0.1.5", 0xa1, 3, 600)
	counts("many-lite.mmdb", map[string]float64{"FR": 16, "IR": 80, "ZZ": 5}, 1)

	stopCommand(t, cmd.Process, done, stderr, 10*time.Second)
}

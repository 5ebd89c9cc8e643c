package main

import (
	"strings"
	"testing"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
)

const exposition = `# HELP dnstt_queries_total dnstt queries.
# TYPE dnstt_queries_total counter
dnstt_queries_total{domain="a.example",country="DE",asn="3320"} 3
dnstt_queries_total{domain="a.example",country="ZZ",asn="0"} 4
dnstt_bytes_in_total{domain="a.example"} 700
dnstt_bytes_out_total{domain="a.example"} 9e+03
dnstt_sessions_total{domain="a.example"} 2
dnstt_active_clients{domain="a.example"} 1
dnstt_peak_clients{domain="a.example"} 2
dnstt_exporter_packets_received_total 20
dnstt_exporter_packets_ignored_total{reason="not_udp"} 1
dnstt_exporter_packets_ignored_total{reason="wrong_port"} 5
dnstt_exporter_packets_duplicate_total 0
`

func TestReport(t *testing.T) {
	want := tally.Totals{Packets: 20, Queries: 7, Ignored: 6, BytesIn: 700, BytesOut: 9000,
		SessionsTotal: 2, ActiveAtEnd: tally.Range{Min: 0, Max: 1}, Peak: tally.Range{Min: 2, Max: 2}}
	tests := []struct {
		name   string
		change func(*tally.Totals)
		wantOK bool
	}{
		{name: "equal", change: func(*tally.Totals) {}, wantOK: true},
		{name: "queries differ", change: func(w *tally.Totals) { w.Queries++ }},
		{name: "active out of range", change: func(w *tally.Totals) { w.ActiveAtEnd = tally.Range{Min: 2, Max: 3} }},
		{name: "ignored differ", change: func(w *tally.Totals) { w.Ignored = 5 }},
	}
	sums, err := parse(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := want
			tt.change(&w)
			var out strings.Builder
			if ok := report(&out, sums, w); ok != tt.wantOK {
				t.Fatalf("report = %v, want %v:\n%s", ok, tt.wantOK, out.String())
			}
		})
	}
}

func TestParseMissingMetric(t *testing.T) {
	sums, err := parse(strings.NewReader("dnstt_queries_total 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if report(&out, sums, tally.Totals{Queries: 1}) {
		t.Fatalf("report passed with most metrics missing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "dnstt_bytes_in_total") {
		t.Fatalf("report does not name the missing metric:\n%s", out.String())
	}
}

func TestParseBadLine(t *testing.T) {
	if _, err := parse(strings.NewReader("dnstt_queries_total{domain=\"x\"} many\n")); err == nil {
		t.Fatal("parse of a non-numeric value succeeded, want an error")
	}
}

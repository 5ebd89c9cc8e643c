// Command check compares a dnstt_exporter file-mode exposition with the
// expected totals of a capture (the generator's JSON sidecar): it sums each
// metric over its series and checks queries, bytes, sessions, packets and
// ignored packets exactly and active and peak sessions against their
// {min, max} ranges. It prints one line per check and exits 1 on a mismatch.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
)

func main() {
	expect := flag.String("expect", "", "JSON `file` with the expected totals")
	expo := flag.String("exposition", "-", "exposition `file` printed by dnstt_exporter -capture.file (- for stdin)")
	flag.Parse()
	want, err := tally.Read(*expect)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
	in := io.Reader(os.Stdin)
	if *expo != "-" {
		f, err := os.Open(*expo)
		if err != nil {
			fmt.Fprintln(os.Stderr, "check:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	sums, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
	if !report(os.Stdout, sums, want) {
		os.Exit(1)
	}
}

// parse sums the sample values of each metric name in a text exposition.
func parse(r io.Reader) (map[string]float64, error) {
	sums := make(map[string]float64)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		end := strings.IndexAny(s, "{ ")
		sp := strings.LastIndexByte(s, ' ')
		if end <= 0 || sp < end {
			return nil, fmt.Errorf("exposition line %d: %q: no name and value", line, s)
		}
		v, err := strconv.ParseFloat(s[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("exposition line %d: %q: %w", line, s, err)
		}
		sums[s[:end]] += v
	}
	return sums, sc.Err()
}

// report prints one line per check and reports whether all passed.
func report(w io.Writer, sums map[string]float64, want tally.Totals) bool {
	ok := true
	exact := func(name string, v uint64) {
		got, seen := sums[name]
		res := "ok"
		if !seen || got != float64(v) {
			res, ok = "MISMATCH", false
		}
		if !seen {
			fmt.Fprintf(w, "%-8s %-45s missing, want %d\n", res, name, v)
			return
		}
		fmt.Fprintf(w, "%-8s %-45s got %.0f, want %d\n", res, name, got, v)
	}
	within := func(name string, r tally.Range) {
		got, seen := sums[name]
		res := "ok"
		if !seen || got < float64(r.Min) || got > float64(r.Max) {
			res, ok = "MISMATCH", false
		}
		if !seen {
			fmt.Fprintf(w, "%-8s %-45s missing, want %d..%d\n", res, name, r.Min, r.Max)
			return
		}
		fmt.Fprintf(w, "%-8s %-45s got %.0f, want %d..%d\n", res, name, got, r.Min, r.Max)
	}
	exact("dnstt_queries_total", want.Queries)
	exact("dnstt_bytes_in_total", want.BytesIn)
	exact("dnstt_bytes_out_total", want.BytesOut)
	exact("dnstt_sessions_total", want.SessionsTotal)
	within("dnstt_active_clients", want.ActiveAtEnd)
	within("dnstt_peak_clients", want.Peak)
	exact("dnstt_exporter_packets_received_total", want.Packets)
	exact("dnstt_exporter_packets_ignored_total", want.Ignored)
	// A classic Ethernet capture records no interfaces, so nothing is a
	// duplicate (SPEC section 3), and the default session cap must hold
	// every ClientID of the capture for sessions_total to be exact.
	for _, name := range []string{"dnstt_exporter_packets_duplicate_total", "dnstt_exporter_untracked_queries_total"} {
		if _, seen := sums[name]; seen {
			exact(name, 0)
		}
	}
	return ok
}

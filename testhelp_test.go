package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// inCI reports whether the tests run under CI, where a test that cannot run
// for lack of root, a tool or namespace support must fail, not skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// skipUnlessCI skips t with the reason, or fails it under CI=true.
func skipUnlessCI(t testing.TB, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf("CI=true: cannot skip: "+format, args...)
	}
	t.Skipf(format, args...)
}

// startCommand starts cmd and returns a channel that delivers its exit
// status once. A cleanup kills it and waits for it if it is still running
// when the test ends, so no test leaves a process behind.
func startCommand(t testing.TB, cmd *exec.Cmd) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // os.ErrProcessDone once it has exited
		<-exited
	})
	return done
}

// stopCommand sends SIGTERM to p and fails t unless it exits 0 within
// wait; done is p's exit status from startCommand, stderr its standard
// error for the message.
func stopCommand(t testing.TB, p *os.Process, done <-chan error, stderr fmt.Stringer, wait time.Duration) {
	t.Helper()
	p.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want 0; stderr: %s", err, stderr)
		}
	case <-time.After(wait):
		t.Errorf("no exit within %v of SIGTERM", wait)
	}
}

// The sample capture: a real dnstt session pair recorded in a lab, and its
// independently computed ground truth (testdata/pcap/README.md).
const (
	sampleCapture   = "testdata/pcap/visible-small.pcap"
	sampleTruthFile = "testdata/pcap/visible-small.truth.json"
)

// The VayDNS sample: real VayDNS traffic with default flags (2-byte
// ClientIDs, TXT), the same domain and port, and its ground truth.
const (
	vaydnsCapture   = "testdata/pcap/vaydns-small.pcap"
	vaydnsTruthFile = "testdata/pcap/vaydns-small.truth.json"
)

// realCapture is a real capture and its truth file.
type realCapture struct{ name, pcap, truth string }

// realCaptures are the real captures every exactness test runs: the dnstt
// lab capture and the VayDNS sample.
var realCaptures = []realCapture{
	{"visible-small", sampleCapture, sampleTruthFile},
	{"vaydns-small", vaydnsCapture, vaydnsTruthFile},
}

// sampleTruth is the sample capture's ground truth: the one source of the
// numbers every test checks the capture against.
type sampleTruth struct {
	Domain  string  `json:"domain"`
	Port    uint16  `json:"port"`
	WindowS float64 `json:"window_s"`
	Mode    struct {
		Name          string   `json:"name"`           // vaydns-default; empty for dnstt
		ClientIDBytes int      `json:"clientid_bytes"` // VayDNS's ClientID size
		QTypes        []string `json:"qtypes"`         // VayDNS's record type
	} `json:"mode"`
	Packets struct {
		Total          uint64  `json:"total"`
		DnsttQueries   uint64  `json:"dnstt_queries"`
		DnsttResponses uint64  `json:"dnstt_responses"`
		Ignored        uint64  `json:"ignored"`
		LastTS         float64 `json:"last_ts"`
	} `json:"packets"`
	Totals struct {
		Queries           uint64 `json:"queries"`
		Responses         uint64 `json:"responses"`
		BytesIn           uint64 `json:"bytes_in"`
		BytesOut          uint64 `json:"bytes_out"`
		SessionsTotal     uint64 `json:"sessions_total"`
		DistinctClientIDs int    `json:"distinct_client_ids"`
	} `json:"totals"`
	ActiveAtEnd struct{ Min, Max int64 }  `json:"active_at_end"`
	Peak        struct{ Min, Max int64 }  `json:"peak"`
	Ignored     map[string]uint64         `json:"ignored_breakdown_records"`
	Clients     map[string]sampleClient   `json:"clients"`
	Resolvers   map[string]sampleResolver `json:"resolvers"`
}

// sampleClient is one ClientID's part of sampleTruth.
type sampleClient struct {
	Queries     uint64   `json:"queries"`
	Responses   uint64   `json:"responses"`
	BytesIn     uint64   `json:"bytes_in"`
	BytesOut    uint64   `json:"bytes_out"`
	Resolvers   []string `json:"resolvers"`
	FirstTS     float64  `json:"first_ts"`
	LastTS      float64  `json:"last_ts"`
	MaxQueryGap float64  `json:"max_query_gap_s"`
}

// sampleResolver is one resolver's part of sampleTruth.
type sampleResolver struct {
	Queries   uint64 `json:"queries"`
	BytesIn   uint64 `json:"bytes_in"`
	Responses uint64 `json:"responses"`
	BytesOut  uint64 `json:"bytes_out"`
}

// loadSampleTruth reads sampleTruthFile.
func loadSampleTruth(t testing.TB) *sampleTruth { return loadTruth(t, sampleTruthFile) }

// loadTruth reads a truth file.
func loadTruth(t testing.TB, path string) *sampleTruth {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var truth sampleTruth
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &truth
}

// tunnelDomain returns the domain the truth file's rules describe: dnstt,
// or VayDNS with its ClientID size and record type.
func (tr *sampleTruth) tunnelDomain(t testing.TB) tunnelDomain {
	t.Helper()
	switch tr.Mode.Name {
	case "":
		return dnsttDomain(tr.Domain)
	case "vaydns-default":
		if len(tr.Mode.QTypes) != 1 {
			t.Fatalf("truth mode: record types %q, want one", tr.Mode.QTypes)
		}
		d, err := newVayDNSDomain(tr.Domain, tr.Mode.ClientIDBytes, tr.Mode.QTypes[0])
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Fatalf("truth mode %q", tr.Mode.Name)
	return tunnelDomain{}
}

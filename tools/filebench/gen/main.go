// Command gen writes a large, deterministic, synthetic classic-pcap capture of
// dnstt traffic (see package synth) for the file-mode throughput benchmark of
// dnstt_exporter, and a JSON sidecar (-json, default the -o path + ".json")
// with the totals a correct file-mode run must report, also printed on stdout.
// With -vaydns.clientid-size it writes VayDNS traffic in VayDNS's default
// format instead, to be read with -vaydns.domain and the same settings.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/synth"
	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
)

// sidecar is the JSON written next to the capture.
type sidecar struct {
	File      string       `json:"file"`
	Version   int          `json:"generator_version"`
	Domain    string       `json:"domain"`
	Protocol  string       `json:"protocol"`       // dnstt or vaydns
	IDBytes   int          `json:"clientid_bytes"` // ClientID size
	Type      string       `json:"record_type"`    // the tunnel queries' type
	Port      int          `json:"port"`
	Window    int          `json:"window_s"`
	Seed      uint64       `json:"seed"`
	Clients   int          `json:"clients"`
	Resolvers int          `json:"resolvers"`
	Totals    tally.Totals `json:"totals"`
}

func main() {
	cfg := synth.DefaultConfig()
	out := flag.String("o", "dnstt-bench.pcap", "output pcap `path`")
	side := flag.String("json", "", "expected-totals JSON `path` (default: the -o path + \".json\")")
	flag.IntVar(&cfg.Packets, "n", cfg.Packets, "number of packets (records) to write")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed; the same seed and flags give the same file")
	flag.IntVar(&cfg.Clients, "clients", cfg.Clients, "number of dnstt sessions (ClientIDs)")
	flag.IntVar(&cfg.Resolvers, "resolvers", cfg.Resolvers, "number of resolver addresses")
	flag.Float64Var(&cfg.PPS, "pps", cfg.PPS, "mean packet rate in packet time (packets/s)")
	flag.Float64Var(&cfg.Noise, "noise", cfg.Noise, "fraction of transactions that are other DNS")
	flag.Float64Var(&cfg.Case20, "case20", cfg.Case20, "fraction of names with 0x20 random case")
	flag.BoolVar(&cfg.Nano, "nano", cfg.Nano, "nanosecond timestamps (default microsecond)")
	flag.IntVar(&cfg.Snaplen, "snaplen", cfg.Snaplen, "truncate records to this many bytes (0: full packets; the gopacket baseline needs full packets)")
	flag.BoolVar(&cfg.Checksum, "checksum", cfg.Checksum, "compute valid UDP checksums")
	flag.Int64Var(&cfg.Start, "start", cfg.Start, "Unix time of the first packet (s)")
	flag.IntVar(&cfg.VayDNSIDLen, "vaydns.clientid-size", 0, "write VayDNS traffic with a ClientID of this many `bytes` (1 to 8; 0: dnstt traffic)")
	recordType := flag.String("vaydns.record-type", "txt", "query `type` of the VayDNS traffic: txt, null, cname, a, aaaa, mx, ns, srv or caa")
	version := flag.Bool("version", false, "print the generator version (it changes when the output for the same flags does) and exit")
	flag.Parse()
	if *version {
		fmt.Println(synth.Version)
		return
	}
	if *side == "" {
		*side = *out + ".json"
	}
	qtype, ok := recordTypes[strings.ToLower(*recordType)]
	if !ok {
		fmt.Fprintf(os.Stderr, "gen: -vaydns.record-type %q: want txt, null, cname, a, aaaa, mx, ns, srv or caa\n", *recordType)
		os.Exit(2)
	}
	cfg.VayDNSType = qtype
	if err := run(cfg, *out, *side); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// recordTypes are VayDNS's -record-type values and their TYPE numbers.
var recordTypes = map[string]uint16{"txt": 16, "null": 10, "cname": 5, "a": 1, "aaaa": 28, "mx": 15, "ns": 2, "srv": 33, "caa": 257}

// run writes the capture to out and the sidecar to side.
func run(cfg synth.Config, out, side string) error {
	began := time.Now()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	totals, err := synth.Generate(cfg, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return fmt.Errorf("%s: %w", out, err)
	}
	elapsed := time.Since(began)
	s := sidecar{File: out, Version: synth.Version, Domain: synth.Domain, Protocol: "dnstt", IDBytes: 8, Type: "txt",
		Port: synth.Port, Window: tally.Window / 1e9, Seed: cfg.Seed, Clients: cfg.Clients, Resolvers: cfg.Resolvers, Totals: totals}
	if cfg.VayDNSIDLen > 0 {
		s.Protocol, s.IDBytes = "vaydns", cfg.VayDNSIDLen
		for name, t := range recordTypes {
			if t == cfg.VayDNSType {
				s.Type = name
			}
		}
	}
	j, err := os.Create(side)
	if err != nil {
		return err
	}
	err = tally.WriteJSON(j, s)
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", side, err)
	}
	tally.WriteJSON(os.Stdout, s)
	fmt.Fprintf(os.Stderr, "gen: %d packets in %.2fs (%.0f packets/s)\n",
		totals.Packets, elapsed.Seconds(), float64(totals.Packets)/elapsed.Seconds())
	return nil
}

// Command gen writes a large, deterministic, synthetic classic-pcap capture of
// dnstt traffic (see package synth) for the file-mode throughput benchmark of
// dnstt_exporter, and a JSON sidecar (-json, default the -o path + ".json")
// with the totals a correct file-mode run must report, also printed on stdout.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/synth"
	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
)

// sidecar is the JSON written next to the capture.
type sidecar struct {
	File      string       `json:"file"`
	Version   int          `json:"generator_version"`
	Domain    string       `json:"domain"`
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
	version := flag.Bool("version", false, "print the generator version (it changes when the output for the same flags does) and exit")
	flag.Parse()
	if *version {
		fmt.Println(synth.Version)
		return
	}
	if *side == "" {
		*side = *out + ".json"
	}
	if err := run(cfg, *out, *side); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

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
	s := sidecar{out, synth.Version, synth.Domain, synth.Port, tally.Window / 1e9, cfg.Seed, cfg.Clients, cfg.Resolvers, totals}
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

package main

import (
	"encoding/base32"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/synth"
	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
	"github.com/google/gopacket/layers"
)

// TestCountMatchesGenerator cross-checks the baseline and the generator: both
// decoders must find exactly the totals the generator says it wrote.
func TestCountMatchesGenerator(t *testing.T) {
	cfg := synth.DefaultConfig()
	cfg.Packets, cfg.Clients, cfg.Resolvers, cfg.Case20 = 30_000, 300, 50, 0.3
	path := filepath.Join(t.TempDir(), "small.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := synth.Generate(cfg, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		newPacket bool
	}{
		{name: "parser", newPacket: false},
		{name: "packet", newPacket: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := count(path, synth.Domain, synth.Port, tt.newPacket)
			if err != nil {
				t.Fatal(err)
			}
			if d := tally.Diff(got, want); len(d) > 0 {
				t.Fatalf("totals differ: %s", strings.Join(d, "; "))
			}
		})
	}
}

func TestClientID(t *testing.T) {
	std := base32.StdEncoding.WithPadding(base32.NoPadding)
	raw := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xe8, 1, 2, 3}
	enc := std.EncodeToString(raw)
	tests := []struct {
		name   string
		prefix string
		want   uint64
		ok     bool
	}{
		{name: "upper", prefix: enc, want: binary.BigEndian.Uint64(raw), ok: true},
		{name: "lower split", prefix: strings.ToLower(enc[:5]) + "." + strings.ToLower(enc[5:]), want: binary.BigEndian.Uint64(raw), ok: true},
		{name: "fifteen chars", prefix: enc[:15], want: binary.BigEndian.Uint64(raw), ok: true},
		{name: "fourteen chars", prefix: enc[:14]},
		{name: "not base32", prefix: "notbase32!aaaaaaaaaa"},
		{name: "digit one", prefix: "aaaaaaaaaaaaaa1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := clientID([]byte(tt.prefix))
			if ok != tt.ok || ok && got != tt.want {
				t.Fatalf("clientID(%q) = %#x, %v, want %#x, %v", tt.prefix, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCountBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not.pcap")
	if err := os.WriteFile(path, []byte("this is not a capture"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := count(path, synth.Domain, layers.UDPPort(synth.Port), false); err == nil {
		t.Fatal("count of a non-pcap file succeeded, want an error")
	}
}

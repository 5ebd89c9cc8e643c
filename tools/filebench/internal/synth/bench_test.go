package synth

import (
	"io"
	"testing"
)

func BenchmarkGenerate(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Packets = 1_000_000
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(cfg, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(cfg.Packets), "ns/packet")
}

package main

import (
	"net/netip"
	"testing"
	"time"
)

// pipelineWorkload is a list of captured records that all count (dnstt
// queries and responses), replayed in a loop by the pipeline benchmarks.
type pipelineWorkload struct {
	lt   linkType
	recs []testRecord
}

// workloadStep is the packet clock's step from one record to the next in
// the pipeline benchmarks: 100,000 packets/s, the rate at which the
// per-packet cost matters (and sweeps every 500 ms are spread over 50,000
// packets, as on a busy server; at the real capture's own 17 packets/s
// every sweep would weigh on a few dozen packets).
const workloadStep = 10e3

// realWorkload returns the counted records of the real dnstt capture.
func realWorkload(tb testing.TB) pipelineWorkload {
	tb.Helper()
	lt, recs := readTestPcap(tb, sampleCapture)
	dec := newDecoder(dnsttDomains("t.example.com"), 53)
	var w pipelineWorkload
	w.lt = lt
	var p dnsttPacket
	for _, r := range recs {
		if reason, _ := dec.decodeLink(lt, r.data, &p); reason == ignoreNone {
			w.recs = append(w.recs, r)
		}
	}
	return w
}

// manyWorkload returns queries, each followed by its response, of 4096
// sessions behind 512 IPv4 resolvers: 16,384 data queries of four labels.
func manyWorkload() pipelineWorkload {
	const sessions, resolvers = 4096, 512
	server := netip.MustParseAddr("192.0.2.1")
	w := pipelineWorkload{lt: linkEthernet}
	for i := range 4 * sessions {
		var id clientID
		s := i % sessions
		id[0], id[1], id[7] = byte(s), byte(s>>8), 0xe3
		res := netip.AddrFrom4([4]byte{198, 51, byte(100 + s%resolvers/256), byte(s % resolvers)})
		dnsID, port := uint16(i), uint16(10000+i%50000)
		name := genQName(id, make([]byte, 120), "t.example.com", false)
		q := genDNS(dnsID, name, 16, false, 0)
		r := genDNS(dnsID, name, 16, true, 400)
		w.recs = append(w.recs,
			testRecord{data: genEthernet(genIPv4(res, server, port, 53, q, dnsID, 0)[0])},
			testRecord{data: genEthernet(genIPv4(server, res, 53, port, r, dnsID, 0)[0])})
	}
	return w
}

// newWorkloadPipeline returns a pipeline for t.example.com without GeoIP,
// with the pending-query and resolver tables at their default sizes
// (features on) or off.
func newWorkloadPipeline(on bool) *pipeline {
	cfg := &config{domains: dnsttDomains("t.example.com"), port: 53, window: defaultWindow, sessionsMax: defaultSessionsMax}
	if on {
		cfg.pendingMax, cfg.resolversMax = defaultPendingMax, defaultResolversMax
	}
	return newPipeline(cfg, nil, false)
}

// runWorkload feeds record i of w (looping) through pl as packet i, at
// i × workloadStep on the file-mode packet clock, sweeps included.
func runWorkload(pl *pipeline, clock *packetClock, w *pipelineWorkload, i int) {
	r := &w.recs[i%len(w.recs)]
	pl.handleLink(w.lt, r.data, 0, clock.advance(int64(i)*workloadStep, pl))
}

// BenchmarkPipeline is the whole per-packet cost of a counted dnstt packet
// — decode, session update, and with features=on the pending-query table
// (latency) and the resolver table — with the sweeps of the packet clock,
// on the real capture's packets (two sessions) and on 4096 sessions behind
// 512 resolvers. off and on run in one invocation, so that they can be
// compared on a shared machine.
func BenchmarkPipeline(b *testing.B) {
	workloads := []struct {
		name string
		w    pipelineWorkload
	}{
		{"real", realWorkload(b)},
		{"many", manyWorkload()},
	}
	for _, wl := range workloads {
		for _, on := range []bool{false, true} {
			name := wl.name + "/features=off"
			if on {
				name = wl.name + "/features=on"
			}
			b.Run(name, func(b *testing.B) {
				pl := newWorkloadPipeline(on)
				clock := newPacketClock()
				w := wl.w
				for i := range 2 * len(w.recs) { // warm: sessions, resolvers and tables in place
					runWorkload(pl, &clock, &w, i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					runWorkload(pl, &clock, &w, 2*len(w.recs)+i)
				}
			})
		}
	}
}

// BenchmarkPipelineInterleaved is BenchmarkPipeline with off and on
// measured in alternating chunks of 4096 packets within each b.N, so that
// both see the same load from other processes on a shared machine; it
// reports ns/packet of each and the extra cost of on in percent.
func BenchmarkPipelineInterleaved(b *testing.B) {
	const chunk = 4096
	for _, wl := range []struct {
		name string
		w    pipelineWorkload
	}{{"real", realWorkload(b)}, {"many", manyWorkload()}} {
		b.Run(wl.name, func(b *testing.B) {
			var pls [2]*pipeline
			var clocks [2]packetClock
			var next [2]int
			var spent [2]time.Duration
			w := wl.w
			for k := range pls {
				pls[k] = newWorkloadPipeline(k == 1)
				clocks[k] = newPacketClock()
				for ; next[k] < 2*len(w.recs); next[k]++ {
					runWorkload(pls[k], &clocks[k], &w, next[k])
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n += chunk {
				for k := range pls {
					start := time.Now()
					for range chunk {
						runWorkload(pls[k], &clocks[k], &w, next[k])
						next[k]++
					}
					spent[k] += time.Since(start)
				}
			}
			packets := float64((b.N + chunk - 1) / chunk * chunk)
			off, on := float64(spent[0].Nanoseconds())/packets, float64(spent[1].Nanoseconds())/packets
			b.ReportMetric(off, "off-ns/pkt")
			b.ReportMetric(on, "on-ns/pkt")
			b.ReportMetric(100*(on-off)/off, "extra-%")
		})
	}
}

// TestPipelineAllocs: a counted query and response cost no allocation
// with every feature on, sweeps included, for known and new sessions.
func TestPipelineAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	pl := newWorkloadPipeline(true)
	clock := newPacketClock()
	w := manyWorkload()
	for i := range len(w.recs) {
		runWorkload(pl, &clock, &w, i)
	}
	i := len(w.recs)
	if n := testing.AllocsPerRun(1000, func() {
		runWorkload(pl, &clock, &w, i)
		i++
	}); n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
	if pl.stats.received.Load() != uint64(i) || pl.sessions.tracked.Load() == 0 {
		t.Fatalf("the workload did not count: received %d, tracked %d", pl.stats.received.Load(), pl.sessions.tracked.Load())
	}
}

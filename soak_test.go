package main

// The soak: the program on a veth pair in two namespaces the test creates,
// fed at a steady rate for minutes while sessions come and go, scraped
// every second. It checks that memory and goroutines stay flat and that
// every count is exact at the end (every packet received or, on a loaded
// machine, counted as dropped by the kernel). CI runs it for one minute; the README's
// figures come from
//
//	go test -count=1 -run '^TestSoak$' -soak=10m -v .

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// soakDuration is how long TestSoak sends; 0 means one minute under
// CI=true and a skip otherwise.
var soakDuration = flag.Duration("soak", 0, "run TestSoak for this long (at most 30m); 0: one minute under CI=true, else skip")

// Soak traffic. Every second a cohort of fresh ClientIDs starts, and each
// cohort sends for soakLifetime seconds; cohort sizes follow a triangle
// wave, so the number of live sessions swings between soakMinLive and
// soakMaxLive once per period. Queries are spread over the live clients
// at soakRate per second (each live client at least once a second), and
// every query gets a response from the server's port 53 at once.
const (
	soakRate     = 5000 // queries per second; as many responses
	soakTicks    = 100  // sending rounds per second
	soakLifetime = 10   // seconds a cohort sends
	soakMinLive  = 500
	soakMaxLive  = soakRate // each live client at least once a second
	soakWindow   = 5 * time.Second
	soakMaxTime  = 30 * time.Minute
)

// soakSample is one scrape of the soak.
type soakSample struct {
	at                     time.Duration
	rss, heap              float64 // process_resident_memory_bytes, go_memstats_alloc_bytes
	goroutines, tracked    float64
	queries, dropped, cpuS float64
}

// soakLive is the number of live sessions the wave asks for at second s.
func soakLive(s int, period int) int {
	p := s % period
	tri := 1 - math.Abs(2*float64(p)/float64(period)-1) // 0 → 1 → 0
	return soakMinLive + int(tri*float64(soakMaxLive-soakMinLive))
}

func TestSoak(t *testing.T) {
	d := *soakDuration
	switch {
	case d == 0 && !inCI():
		t.Skip("the soak runs under CI=true (one minute) or with -soak=DURATION")
	case d == 0:
		d = time.Minute
	case d > soakMaxTime:
		t.Fatalf("-soak=%v: at most %v", d, soakMaxTime)
	}
	if raceEnabled {
		t.Skip("the soak runs in the test run without -race (the program under test is not instrumented either way)")
	}
	requireRoot(t)
	srv, cli := newVethPair(t)
	proc, done, stderr := startExporterInNetns(t, srv, "-capture.interface", "vs",
		"-dnstt.window", soakWindow.String())

	// The client sends from 198.51.100.10:5300 and never reads; the server
	// socket on 192.0.2.1:53 never reads queries and sends the responses
	// to 5300. Unread datagrams are dropped by the full socket buffers,
	// with no ICMP error, after the capture saw them.
	var cconn, sconn *net.UDPConn
	if err := inNetns(cli, func() (err error) {
		cconn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.51.100.10:5300")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cconn.Close()
	if err := inNetns(srv, func() (err error) {
		sconn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:53")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sconn.Close()
	serverAddr := netip.MustParseAddrPort("192.0.2.1:53")
	clientAddr := netip.MustParseAddrPort("198.51.100.10:5300")

	period := int(min(max(d/10, 20*time.Second), 120*time.Second) / time.Second)
	seconds := int(d / time.Second)
	if seconds < 2*period {
		t.Fatalf("-soak=%v: at least %v (two periods of the session wave)", d, 2*time.Duration(period)*time.Second)
	}
	var (
		cohorts                    []int // size of the cohort started at each second
		queries, bytesIn, bytesOut int
		sessions                   int
		samples                    []soakSample
		id                         uint16
	)
	scrapeSample := func(at time.Duration) (soakSample, error) {
		body, err := httpGetInNetns(srv, "127.0.0.1:9713", "/metrics")
		if err != nil {
			return soakSample{}, fmt.Errorf("scrape at %v: %w", at, err)
		}
		s := parseSeries(body)
		get := func(name string) float64 { v, _ := sumFamily(s, name); return v }
		return soakSample{at: at,
			rss: get("process_resident_memory_bytes"), heap: get("go_memstats_alloc_bytes"),
			goroutines: get("go_goroutines"), tracked: get("dnstt_exporter_sessions_tracked"),
			queries: get("dnstt_queries_total"), dropped: get("dnstt_exporter_packets_dropped_total"),
			cpuS: get("process_cpu_seconds_total")}, nil
	}

	// The scraper runs on its own, once a second: a slow scrape must not
	// hold up the sender, whose catching up would be a burst.
	start := time.Now()
	var (
		mu          sync.Mutex // guards samples, failed and lastErr until scraped is closed
		failed      int        // scrapes that failed (the test's own dial timing out on a starved machine)
		lastFailure error
	)
	stopScrape, scraped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scraped)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopScrape:
				return
			case <-tick.C:
			}
			smp, err := scrapeSample(time.Since(start))
			mu.Lock()
			if err != nil {
				failed++
				lastFailure = err
			} else {
				samples = append(samples, smp)
			}
			mu.Unlock()
		}
	}()
	for s := range seconds {
		size := max(soakLive(s, period)/soakLifetime, 1)
		cohorts = append(cohorts, size)
		sessions += size
		// The live clients: cohorts started in the last soakLifetime seconds.
		var live [][8]byte
		for c := max(0, s-soakLifetime+1); c <= s; c++ {
			for m := range cohorts[c] {
				var cid [8]byte
				binary.BigEndian.PutUint32(cid[:4], uint32(c)+1)
				binary.BigEndian.PutUint32(cid[4:], uint32(m)*0x9e3779b9|1)
				live = append(live, cid)
			}
		}
		next := 0
		for tick := range soakTicks {
			due := start.Add(time.Duration(s)*time.Second + time.Duration(tick)*time.Second/soakTicks)
			time.Sleep(time.Until(due))
			for range soakRate / soakTicks {
				cid := live[next%len(live)]
				next++
				id++
				q := dnsttQuery(id, cid, int(id%4)*40, "t.example.com")
				r := dnsttResponse(q, responseLen(id))
				if _, err := cconn.WriteToUDPAddrPort(q, serverAddr); err != nil {
					t.Fatalf("send query: %v", err)
				}
				if _, err := sconn.WriteToUDPAddrPort(r, clientAddr); err != nil {
					t.Fatalf("send response: %v", err)
				}
				queries++
				bytesIn += len(q)
				bytesOut += len(r)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("exporter exited during the soak: %v; stderr: %s", err, stderr.String())
		default:
		}
	}
	elapsed := time.Since(start)
	close(stopScrape)
	<-scraped
	// A scrape can fail for the test's own sake (its one-second dial
	// timing out on a starved machine); a few such are reported, more fail.
	if failed > 0 {
		t.Logf("%d scrapes failed, the last: %v", failed, lastFailure)
	}
	if failed > seconds/100+2 {
		t.Fatalf("%d of %d scrapes failed, the last: %v; stderr: %s", failed, seconds, lastFailure, stderr.String())
	}
	if len(samples) < seconds/2 {
		t.Fatalf("%d scrapes in %v, want about one a second", len(samples), elapsed)
	}

	// Every datagram is accounted for exactly: received by the exporter or
	// dropped by the kernel for want of ring space (which happens when
	// the reader is descheduled on a loaded machine). Without drops the
	// counts are exact; with drops they can only fall short of them.
	end := waitSeries(t, srv, "dnstt_queries_total", queries)
	received, _ := sumFamily(end, "dnstt_exporter_packets_received_total")
	dropped, _ := sumFamily(end, "dnstt_exporter_packets_dropped_total")
	if received+dropped != float64(2*queries) {
		t.Errorf("packets received %v + dropped %v = %v, want the %d sent", received, dropped, received+dropped, 2*queries)
	}
	if dropped == 0 {
		checkSeriesTotals(t, end, queries, bytesIn, bytesOut)
		if got, _ := sumFamily(end, "dnstt_sessions_total"); got != float64(sessions) {
			t.Errorf("dnstt_sessions_total = %v, want %d", got, sessions)
		}
	} else {
		t.Logf("the kernel dropped %.0f of %d packets (the ring was full): counts checked as bounds", dropped, 2*queries)
		gotQ, _ := sumFamily(end, "dnstt_queries_total")
		gotIn, _ := sumFamily(end, "dnstt_bytes_in_total")
		gotOut, _ := sumFamily(end, "dnstt_bytes_out_total")
		if gotQ > float64(queries) || gotQ < float64(queries)-dropped {
			t.Errorf("dnstt_queries_total = %v, want %d less at most %.0f dropped", gotQ, queries, dropped)
		}
		if gotIn > float64(bytesIn) || gotOut > float64(bytesOut) {
			t.Errorf("bytes in %v, out %v: more than the %d and %d sent", gotIn, gotOut, bytesIn, bytesOut)
		}
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].queries < samples[i-1].queries {
			t.Errorf("dnstt_queries_total went down between scrapes at %v and %v", samples[i-1].at, samples[i].at)
		}
	}
	// The table empties once the window has passed.
	time.Sleep(soakWindow + 2*sweepInterval + time.Second)
	after, err := scrapeSample(time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if after.tracked != 0 {
		t.Errorf("sessions tracked %v after the window passed, want 0", after.tracked)
	}
	if got, _ := sumFamily(waitSeries(t, srv, "dnstt_queries_total", 0), "dnstt_active_clients"); got != 0 {
		t.Errorf("dnstt_active_clients = %v after the window passed, want 0", got)
	}

	// Flat: the peaks of the last quarter of the run are within a tenth
	// and 1 MiB (RSS, heap: a heap of 1 MiB varies by more than a tenth
	// with the garbage collector's timing) or a few goroutines of those
	// of the second quarter, when the session table has grown to the
	// wave's height. A leak grows with the traffic, quarter by quarter.
	peak := func(ss []soakSample, f func(soakSample) float64) float64 {
		return f(slices.MaxFunc(ss, func(a, b soakSample) int { return int(f(a) - f(b)) }))
	}
	rss := func(s soakSample) float64 { return s.rss }
	heap := func(s soakSample) float64 { return s.heap }
	gor := func(s soakSample) float64 { return s.goroutines }
	trk := func(s soakSample) float64 { return s.tracked }
	for p := 0; p+period <= len(samples); p += period {
		ps := samples[p : p+period]
		t.Logf("period %2d: tracked peak %5.0f, RSS peak %5.1f MiB, heap peak %4.1f MiB, goroutines peak %2.0f",
			p/period+1, peak(ps, trk), peak(ps, rss)/(1<<20), peak(ps, heap)/(1<<20), peak(ps, gor))
	}
	q := len(samples) / 4
	first, second, fourth := samples[:period], samples[q:2*q], samples[3*q:]
	if a, b := peak(second, rss), peak(fourth, rss); b > 1.1*a+(1<<20) {
		t.Errorf("RSS peak %.1f MiB in the last quarter, %.1f MiB in the second: growing", b/(1<<20), a/(1<<20))
	}
	if a, b := peak(second, heap), peak(fourth, heap); b > 1.1*a+(1<<20) {
		t.Errorf("heap peak %.1f MiB in the last quarter, %.1f MiB in the second: growing", b/(1<<20), a/(1<<20))
	}
	if a, b := peak(second, gor), peak(fourth, gor); b > a+4 {
		t.Errorf("goroutines peak %v in the last quarter, %v in the second: growing", b, a)
	}
	last := samples[len(samples)-1]
	summary := fmt.Sprintf("soak %v (sent in %.1f s), period %d s: %d queries and %d responses at %d/s each, %d sessions; "+
		"tracked peak %.0f; RSS peak first period %.1f MiB, second quarter %.1f MiB, last quarter %.1f MiB, end %.1f MiB (after the window %.1f MiB); "+
		"heap peak first period %.1f MiB, second quarter %.1f MiB, last quarter %.1f MiB; goroutines %v..%v; drops %.0f; CPU %.1f s (%.2f s per million packets)",
		d, elapsed.Seconds(), period, queries, queries, soakRate, sessions,
		peak(samples, trk), peak(first, rss)/(1<<20), peak(second, rss)/(1<<20), peak(fourth, rss)/(1<<20), last.rss/(1<<20), after.rss/(1<<20),
		peak(first, heap)/(1<<20), peak(second, heap)/(1<<20), peak(fourth, heap)/(1<<20),
		slices.MinFunc(samples, func(a, b soakSample) int { return int(a.goroutines - b.goroutines) }).goroutines, peak(samples, gor),
		last.dropped, last.cpuS, last.cpuS/(float64(2*queries)/1e6))
	t.Log(summary)
	stopCommand(t, proc, done, stderr, 10*time.Second)
}

package main

// Live-capture tests in network namespaces the tests create and remove
// themselves: veth pairs, loopback, a bridge, the binary under setpriv, and
// a tcpreplay of the lab capture. They need root (CAP_SYS_ADMIN for the
// namespaces, CAP_NET_RAW for the capture) and the ip tool: without them
// they skip, and under CI=true they fail. Only documentation addresses and
// loopback are used.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireRoot skips t (fails under CI) unless it can create namespaces
// and packet sockets.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipUnlessCI(t, "live capture tests need root (namespaces and CAP_NET_RAW)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipUnlessCI(t, "live capture tests need the ip tool (iproute2): %v", err)
	}
}

// runCmd runs a command and fails t with its output when it fails.
func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNetns creates a network namespace, unique to this test process, with
// lo up; t.Cleanup removes it, also when the test fails.
func newNetns(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("dnsttx-%d-%s", os.Getpid(), tag)
	runCmd(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	runCmd(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// inNetns runs fn on an OS thread switched into the named namespace.
// Sockets fn creates stay in that namespace when used from other threads.
// The thread is never switched back: it stays locked, so it exits with
// the goroutine instead of returning to the scheduler.
func inNetns(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", name))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- os.NewSyscallError("setns", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Fixed MAC addresses of the test veths (locally administered).
const (
	testServerMAC = "02:00:00:00:53:01"
	testClientMAC = "02:00:00:00:53:02"
)

// newVethPair creates a server and a client namespace joined by a veth
// pair, "vs" in the server and "vc" in the client, with the addresses of
// the lab capture: 192.0.2.1 and 2001:db8::1 on the server,
// 198.51.100.10 and 2001:db8:1::10 on the client, routed over the link.
func newVethPair(t *testing.T) (srv, cli string) {
	t.Helper()
	srv, cli = newNetns(t, "srv"), newNetns(t, "cli")
	runCmd(t, "ip", "link", "add", "vs", "address", testServerMAC, "netns", srv,
		"type", "veth", "peer", "name", "vc", "address", testClientMAC, "netns", cli)
	for _, c := range [][]string{
		{"-n", srv, "addr", "add", "192.0.2.1/24", "dev", "vs"},
		{"-n", srv, "-6", "addr", "add", "2001:db8::1/64", "dev", "vs", "nodad"},
		{"-n", srv, "link", "set", "vs", "up"},
		{"-n", srv, "route", "add", "198.51.100.0/24", "dev", "vs"},
		{"-n", srv, "-6", "route", "add", "2001:db8:1::/64", "dev", "vs"},
		{"-n", cli, "addr", "add", "198.51.100.10/24", "dev", "vc"},
		{"-n", cli, "-6", "addr", "add", "2001:db8:1::10/64", "dev", "vc", "nodad"},
		{"-n", cli, "link", "set", "vc", "up"},
		{"-n", cli, "route", "add", "192.0.2.0/24", "dev", "vc"},
		{"-n", cli, "-6", "route", "add", "2001:db8::/64", "dev", "vc"},
	} {
		runCmd(t, "ip", c...)
	}
	return srv, cli
}

// dnsttQuery returns a DNS query shaped like the reference dnstt client's:
// a base32 name carrying cid, the padding marker, 8 padding bytes and
// payloadLen data bytes under domain, QTYPE TXT, RD, an EDNS(0) OPT record.
func dnsttQuery(id uint16, cid [8]byte, payloadLen int, domain string) []byte {
	raw := append(cid[:], 0xe8, 1, 2, 3, 4, 5, 6, 7, 8)
	for i := range payloadLen {
		raw = append(raw, byte(i*7))
	}
	prefix := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	var labels []string
	for len(prefix) > 63 {
		labels, prefix = append(labels, prefix[:63]), prefix[63:]
	}
	labels = append(labels, prefix)
	return dnsQuery(id, strings.Join(labels, ".")+"."+domain, 16)
}

// dnsQuery returns a query for name and qtype, class IN, RD, with an
// EDNS(0) OPT record advertising 4096 bytes.
func dnsQuery(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1)
	for l := range strings.SplitSeq(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = append(b, 0, 1)                                // IN
	b = append(b, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0) // OPT, 4096, no options
	return b
}

// dnsttResponse returns the reply to q (which must come from dnsQuery):
// QR, AA, the question, and a TXT answer of about txtLen bytes.
func dnsttResponse(q []byte, txtLen int) []byte {
	qend := 12
	for q[qend] != 0 {
		qend += int(q[qend]) + 1
	}
	qend += 1 + 4
	r := append([]byte(nil), q[:qend]...)
	r[2], r[3] = 0x85, 0x00
	r[6], r[7], r[10], r[11] = 0, 1, 0, 0 // one answer, no OPT
	r = append(r, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60)
	var rdata []byte
	for left := txtLen; left > 0; {
		n := min(left, 255)
		rdata = append(rdata, byte(n))
		for i := range n {
			rdata = append(rdata, byte('a'+i%26))
		}
		left -= n
	}
	r = binary.BigEndian.AppendUint16(r, uint16(len(rdata)))
	return append(r, rdata...)
}

// responder answers every DNS query on its socket with dnsttResponse,
// with a TXT size taken from the query ID, until the socket is closed.
func startResponder(t *testing.T, ns, addr string) {
	t.Helper()
	var conn *net.UDPConn
	if err := inNetns(ns, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatalf("responder on %s: %v", addr, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			r := dnsttResponse(buf[:n], responseLen(binary.BigEndian.Uint16(buf)))
			conn.WriteToUDPAddrPort(r, from)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
}

// responseLen is the TXT size the responder answers query id with: some
// small, some cut by the snap length.
func responseLen(id uint16) int { return 50 + int(id%7)*150 }

// planQuery is one query of a traffic plan.
type planQuery struct {
	server  string // destination address and port
	from53  bool   // sent from source port 53 (a wrong-port query that passes the filter)
	msg     []byte // the DNS query
	answer  bool   // the responder answers it
	dnstt   bool   // a dnstt query; its answer a dnstt response
	ignored ignoreReason
	seen    bool // passes the capture filter
}

// trafficTotals are the exact counts a capture of a plan must show, one
// copy of each datagram.
type trafficTotals struct {
	seen      int // datagrams that pass the filter
	queries   int
	responses int
	bytesIn   int
	bytesOut  int
	sessions  int
	ignored   [ignoreReasonCount]int
}

// testPlan is the traffic of the namespace tests: dnstt sessions over IPv4
// and IPv6, non-dnstt names, and queries to the wrong port. srv4 and srv6
// are the server's addresses.
func testPlan(srv4, srv6 string) []planQuery {
	var plan []planQuery
	id := uint16(100)
	add := func(q planQuery) {
		plan = append(plan, q)
		id++
	}
	cidA := [8]byte{0x96, 0x46, 0x8e, 0xac, 0x04, 0x27, 0x5b, 0xff}
	cidB := [8]byte{0x58, 0xd2, 0x94, 0x79, 0xd7, 0x01, 0x4e, 0x39}
	// Payloads up to 120 bytes: names up to 239 bytes, like the
	// reference client's longest (labels of 63, 63, 63, 40).
	for i := range 5 {
		add(planQuery{server: srv4 + ":53", msg: dnsttQuery(id, cidA, i*30, "t.example.com"), answer: true, dnstt: true, seen: true})
	}
	for i := range 4 {
		add(planQuery{server: "[" + srv6 + "]:53", msg: dnsttQuery(id, cidB, i*40, "T.Example.COM"), answer: true, dnstt: true, seen: true})
	}
	add(planQuery{server: srv4 + ":53", msg: dnsQuery(id, "example.org", 16), answer: true, ignored: ignoreNotTunnel, seen: true})
	add(planQuery{server: "[" + srv6 + "]:53", msg: dnsQuery(id, "abc.t.example.com", 16), answer: true, ignored: ignoreBadPrefix, seen: true})
	add(planQuery{server: srv4 + ":53", msg: dnsQuery(id, "73olvgdwkqzbby3ypf5a.t.example.com", 1), answer: true, ignored: ignoreWrongType, seen: true})
	add(planQuery{server: srv4 + ":5353", from53: true, msg: dnsttQuery(id, cidA, 0, "t.example.com"), ignored: ignoreWrongPort, seen: true})
	add(planQuery{server: "[" + srv6 + "]:5353", msg: dnsttQuery(id, cidB, 0, "t.example.com")})
	return plan
}

// sendPlan sends every query of plan from sockets in namespace ns, waits
// for the answers, and returns the totals a capture must show.
func sendPlan(t *testing.T, ns string, plan []planQuery) trafficTotals {
	t.Helper()
	var tt trafficTotals
	cids := map[[8]byte]bool{}
	err := inNetns(ns, func() error {
		for _, q := range plan {
			to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(q.server))
			var laddr *net.UDPAddr
			if q.from53 {
				// On loopback the responder holds port 53 of 127.0.0.1.
				laddr = &net.UDPAddr{Port: 53}
				if to.IP.IsLoopback() {
					laddr.IP = net.IPv4(127, 0, 0, 2)
				}
			}
			c, err := net.ListenUDP("udp", laddr)
			if err != nil {
				return err
			}
			if _, err := c.WriteToUDP(q.msg, to); err != nil {
				c.Close()
				return err
			}
			var resp []byte
			if q.answer {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				n, err := c.Read(buf)
				if err != nil {
					c.Close()
					return fmt.Errorf("answer to query %d: %w", binary.BigEndian.Uint16(q.msg), err)
				}
				resp = buf[:n]
			}
			c.Close()
			if !q.seen {
				continue
			}
			tt.seen++
			if q.answer {
				tt.seen++
			}
			if !q.dnstt {
				tt.ignored[q.ignored]++
				if q.answer {
					tt.ignored[q.ignored]++
				}
				continue
			}
			tt.queries++
			tt.bytesIn += len(q.msg)
			tt.responses++
			tt.bytesOut += len(resp)
			cids[[8]byte(q.msg[12+1:])] = true // first label bytes differ per session
		}
		return nil
	})
	if err != nil {
		t.Fatalf("client traffic: %v", err)
	}
	tt.sessions = len(cids)
	return tt
}

// startCapture opens the capture inside namespace ns and runs it into a
// fresh test pipeline for the dnstt domain t.example.com until the
// returned stop function is called, which waits for run to return and
// closes the capture.
func startCapture(t *testing.T, ns string, cfg captureConfig) (*pipeline, func()) {
	t.Helper()
	return startCaptureOf(t, ns, cfg, nil)
}

// startCaptureOf is startCapture for the given domains (nil: the dnstt
// domain t.example.com).
func startCaptureOf(t *testing.T, ns string, cfg captureConfig, domains []tunnelDomain) (*pipeline, func()) {
	t.Helper()
	var c *capture
	if err := inNetns(ns, func() (err error) {
		c, err = openCapture(cfg)
		return err
	}); err != nil {
		t.Fatalf("openCapture(%+v) in %s: %v", cfg, ns, err)
	}

	pl := newTestPipeline(captureNeedsDedup(cfg))
	if domains != nil {
		pl.tunnels.Store(newTunnelSet(domains, &cfg.port))
		pl.sessions = newSessionTable(sessionConfig{window: 30 * time.Second, max: 10000, domains: len(domains), geoIDs: 1})
		pl.pending = newPendingTable(defaultPendingMax, len(domains))
		pl.resolvers = newResolverTable(defaultResolversMax, pl.sessions)
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- c.run(pl, stop) }()
	var once sync.Once
	stopFn := func() {
		once.Do(func() {
			close(stop)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("capture run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("capture run did not return within 5 s of stop")
			}
			c.close()
		})
	}
	t.Cleanup(stopFn)
	return pl, stopFn
}

// waitReceived waits until pl has received want packets (or a deadline),
// then a little longer, so that extra copies would be seen too.
func waitReceived(t *testing.T, pl *pipeline, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pl.stats.received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * ringRetireTimeoutMs * time.Millisecond)
}

// scrape returns the exposition of pl's counters as series → value.
func scrape(pl *pipeline) map[string]float64 {
	m := newMetrics(metricsConfig{
		tunnels:   pl.currentTunnels,
		sessions:  pl.sessions,
		pending:   pl.pending,
		resolvers: pl.resolvers,
		capture:   pl.stats,
		now:       monotonicNow, // the clock of a capture opened without one
	})
	return parseSeries(m.appendText(nil))
}

// parseSeries reads text-format series into name{labels} → value.
func parseSeries(text []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// sumFamily sums every series of the named family.
func sumFamily(series map[string]float64, name string) (sum float64, ok bool) {
	for k, v := range series {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
			ok = true
		}
	}
	return sum, ok
}

// checkTotals asserts that pl received exactly the datagrams of want, each
// `copies` times, decoded each `decoded` times and counted each once. dups
// is how many copies of dnstt datagrams the duplicate table must drop.
func checkTotals(t *testing.T, pl *pipeline, want trafficTotals, copies, decoded, dups int) {
	t.Helper()
	if got, w := pl.stats.received.Load(), uint64(want.seen*copies); got != w {
		t.Errorf("received = %d, want %d (%d datagrams × %d copies)", got, w, want.seen, copies)
	}
	if got := pl.stats.dropped.Load(); got != 0 {
		t.Errorf("kernel drops = %d, want 0", got)
	}
	for r := ignoreNotUDP; r < ignoreReasonCount; r++ {
		if got := pl.stats.ignored[r].Load(); got != uint64(want.ignored[r]*decoded) {
			t.Errorf("ignored %s = %d, want %d", ignoreReasonNames[r], got, want.ignored[r]*decoded)
		}
	}
	if got := pl.stats.duplicate.Load(); got != uint64(dups) {
		t.Errorf("duplicates = %d, want %d", got, dups)
	}
	s := scrape(pl)
	for _, c := range []struct {
		name string
		want int
	}{
		{"dnstt_queries_total", want.queries},
		{"dnstt_bytes_in_total", want.bytesIn},
		{"dnstt_bytes_out_total", want.bytesOut},
		{"dnstt_active_clients", want.sessions},
		{"dnstt_sessions_total", want.sessions},
		{"dnstt_peak_clients", want.sessions},
		{"dnstt_exporter_packets_duplicate_total", dups},
		{"dnstt_exporter_packets_received_total", want.seen * copies},
	} {
		if got, ok := sumFamily(s, c.name); !ok || got != float64(c.want) {
			t.Errorf("%s = %v (present %v), want %d", c.name, got, ok, c.want)
		}
	}
}

func TestCaptureNamespaces(t *testing.T) {
	requireRoot(t)
	srv, cli := newVethPair(t)
	startResponder(t, srv, "[::]:53")
	tests := []struct {
		name       string
		interfaces []string
	}{
		{"named interface", []string{"vs"}},
		{"all interfaces", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, stop := startCapture(t, srv, captureConfig{interfaces: tt.interfaces, bufferSize: defaultBufferSize, port: 53})
			want := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
			waitReceived(t, pl, uint64(want.seen))
			stop()
			if want.queries != 9 || want.sessions != 2 || want.seen != 25 {
				t.Fatalf("plan: %+v, want 9 dnstt queries, 2 sessions, 25 datagrams", want)
			}
			checkTotals(t, pl, want, 1, 1, 0)
		})
	}
}

func TestCaptureLoopback(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "lo")
	startResponder(t, ns, "127.0.0.1:53")
	startResponder(t, ns, "[::1]:53")
	tests := []struct {
		name       string
		interfaces []string
	}{
		{"lo", []string{"lo"}},
		{"all interfaces", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, stop := startCapture(t, ns, captureConfig{interfaces: tt.interfaces, bufferSize: defaultBufferSize, port: 53})
			want := sendPlan(t, ns, testPlan("127.0.0.1", "::1"))
			// Every datagram passes lo twice (PACKET_OUTGOING, then
			// PACKET_HOST): both are received, one is counted.
			waitReceived(t, pl, uint64(2*want.seen))
			stop()
			checkTotals(t, pl, want, 2, 1, 0)
		})
	}
}

func TestCaptureBridgeDuplicates(t *testing.T) {
	requireRoot(t)
	br, cli := newNetns(t, "br"), newNetns(t, "cli")
	runCmd(t, "ip", "link", "add", "vb", "netns", br, "type", "veth", "peer", "name", "vc", "netns", cli)
	for _, c := range [][]string{
		{"-n", br, "link", "add", "br0", "type", "bridge"},
		{"-n", br, "link", "set", "vb", "master", "br0"},
		{"-n", br, "addr", "add", "192.0.2.1/24", "dev", "br0"},
		{"-n", br, "-6", "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad"},
		{"-n", br, "link", "set", "vb", "up"},
		{"-n", br, "link", "set", "br0", "up"},
		{"-n", br, "route", "add", "198.51.100.0/24", "dev", "br0"},
		{"-n", br, "-6", "route", "add", "2001:db8:1::/64", "dev", "br0"},
		{"-n", cli, "addr", "add", "198.51.100.10/24", "dev", "vc"},
		{"-n", cli, "-6", "addr", "add", "2001:db8:1::10/64", "dev", "vc", "nodad"},
		{"-n", cli, "link", "set", "vc", "up"},
		{"-n", cli, "route", "add", "192.0.2.0/24", "dev", "vc"},
		{"-n", cli, "-6", "route", "add", "2001:db8::/64", "dev", "vc"},
	} {
		runCmd(t, "ip", c...)
	}
	startResponder(t, br, "[::]:53")
	tests := []struct {
		name       string
		interfaces []string
	}{
		{"all interfaces", nil},
		{"bridge and port", []string{"br0", "vb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl, stop := startCapture(t, br, captureConfig{interfaces: tt.interfaces, bufferSize: defaultBufferSize, port: 53})
			want := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
			// Every datagram passes the port and the bridge device.
			waitReceived(t, pl, uint64(2*want.seen))
			stop()
			checkTotals(t, pl, want, 2, 2, want.queries+want.responses)
		})
	}
}

// buildExporter builds the program into a temporary directory.
func buildExporter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dnstt_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// httpGetInNetns fetches url over a connection opened inside namespace ns.
func httpGetInNetns(ns, hostport, path string) ([]byte, error) {
	var conn net.Conn
	if err := inNetns(ns, func() (err error) {
		conn, err = net.DialTimeout("tcp", hostport, time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, hostport)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Flags of setpriv(1) that drop to nobody; the capability sets are added.
var setprivNobody = []string{"--reuid=65534", "--regid=65534", "--clear-groups"}

// exporterArgs are the flags of the unprivileged runs: lo of a namespace.
var exporterArgs = []string{"-dnstt.domain", "t.example.com", "-dnstt.port", "53",
	"-capture.interface", "lo", "-web.listen-address", "127.0.0.1:9713"}

func TestCaptureUnprivileged(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"setpriv", "setcap"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipUnlessCI(t, "unprivileged test needs %s (util-linux, libcap2-bin): %v", tool, err)
		}
	}
	bin := buildExporter(t) // in a directory nobody may enter (t.TempDir is 0755)
	ns := newNetns(t, "unpriv")
	// exporter.go's openLiveCapture wires the program to openCapture; a
	// build where that glue is still missing says so, and cannot capture.
	// A build that has it captures until killed at the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	out, _ := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, bin}, exporterArgs...)...).CombinedOutput()
	cancel()
	if strings.Contains(string(out), "live capture is not available in this build") {
		skipUnlessCI(t, "the program does not call openCapture yet (exporter.go openLiveCapture): %s", bytes.TrimSpace(out))
	}
	startResponder(t, ns, "127.0.0.1:53")
	startResponder(t, ns, "[::1]:53")

	t.Run("without CAP_NET_RAW", func(t *testing.T) {
		args := append(append([]string{"netns", "exec", ns, "setpriv"}, setprivNobody...),
			"--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", bin)
		cmd := exec.Command("ip", append(args, exporterArgs...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		done := startCommand(t, cmd)
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the exporter kept running without CAP_NET_RAW")
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("exit: %v, want exit status 1", err)
		}
		msg := strings.TrimSpace(stderr.String())
		if !strings.Contains(msg, "CAP_NET_RAW") || !strings.Contains(msg, "setcap cap_net_raw+ep") || strings.Count(msg, "\n") != 0 {
			t.Errorf("stderr = %q, want one line naming CAP_NET_RAW and the fix", msg)
		}
	})

	t.Run("ambient CAP_NET_RAW", func(t *testing.T) {
		args := append(append([]string{"netns", "exec", ns, "setpriv"}, setprivNobody...),
			"--no-new-privs", "--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", bin)
		runUnprivileged(t, ns, exec.Command("ip", append(args, exporterArgs...)...))
	})

	t.Run("file capability", func(t *testing.T) {
		// setcap cap_net_raw+ep on a copy; the process starts with no
		// capability and gains CAP_NET_RAW at exec (no no_new_privs:
		// it would ignore file capabilities).
		capBin := filepath.Join(t.TempDir(), "dnstt_exporter")
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(capBin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		runCmd(t, "setcap", "cap_net_raw+ep", capBin)
		args := append(append([]string{"netns", "exec", ns, "setpriv"}, setprivNobody...),
			"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+net_raw", capBin)
		runUnprivileged(t, ns, exec.Command("ip", append(args, exporterArgs...)...))
	})
}

// runUnprivileged starts cmd (the exporter on lo of namespace ns, through
// setpriv), checks that it runs as nobody with CAP_NET_RAW as its only
// capability, that it counts the test traffic exactly, and that SIGTERM
// ends it with status 0.
func runUnprivileged(t *testing.T, ns string, cmd *exec.Cmd) {
	t.Helper()
	const listen = "127.0.0.1:9713"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := startCommand(t, cmd)
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err = httpGetInNetns(ns, listen, "/metrics"); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("scrape: %v; stderr: %s", err, stderr.String())
	}
	// ip and setpriv exec the exporter in the same process.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000002000", "CapPrm:\t0000000000002000"} {
		if !strings.Contains(string(status), want) {
			t.Errorf("/proc/<exporter>/status lacks %q:\n%s", want, status)
		}
	}

	want := sendPlan(t, ns, testPlan("127.0.0.1", "::1"))
	var s map[string]float64
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if body, err = httpGetInNetns(ns, listen, "/metrics"); err != nil {
			t.Fatalf("scrape: %v", err)
		}
		s = parseSeries(body)
		if got, _ := sumFamily(s, "dnstt_exporter_packets_received_total"); got >= float64(2*want.seen) {
			break
		}
	}
	time.Sleep(3 * ringRetireTimeoutMs * time.Millisecond)
	if body, err = httpGetInNetns(ns, listen, "/metrics"); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	s = parseSeries(body)
	for _, c := range []struct {
		name string
		want int
	}{
		{"dnstt_exporter_packets_received_total", 2 * want.seen},
		{"dnstt_queries_total", want.queries},
		{"dnstt_bytes_in_total", want.bytesIn},
		{"dnstt_bytes_out_total", want.bytesOut},
		{"dnstt_exporter_packets_dropped_total", 0},
	} {
		if got, ok := sumFamily(s, c.name); !ok || got != float64(c.want) {
			t.Errorf("%s = %v (present %v), want %d", c.name, got, ok, c.want)
		}
	}
	if got, _ := sumFamily(s, "dnstt_active_clients"); got != float64(want.sessions) {
		t.Errorf("dnstt_active_clients = %v, want %d", got, want.sessions)
	}
	stopCommand(t, cmd.Process, done, &stderr, 10*time.Second)
}

// TestCaptureReplay replays the real captures through a veth into a live
// capture: the ring path must count exactly what file mode and the truth
// files count.
func TestCaptureReplay(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"tcpreplay", "tcprewrite"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipUnlessCI(t, "replay test needs %s (apt-get install tcpreplay): %v", tool, err)
		}
	}
	for _, c := range realCaptures {
		t.Run(c.name, func(t *testing.T) { testCaptureReplay(t, c) })
	}
}

// testCaptureReplay is TestCaptureReplay for one capture.
func testCaptureReplay(t *testing.T, c realCapture) {
	truth := loadTruth(t, c.truth)
	srv, cli := newVethPair(t)
	// Address every frame to the server veth, as on the lab's bridge.
	pcap := filepath.Join(t.TempDir(), "replay.pcap")
	runCmd(t, "tcprewrite", "--enet-dmac="+testServerMAC, "--infile="+c.pcap, "--outfile="+pcap)
	pl, stop := startCaptureOf(t, srv, captureConfig{interfaces: []string{"vs"}, bufferSize: defaultBufferSize, port: truth.Port},
		[]tunnelDomain{truth.tunnelDomain(t)})
	// A fixed rate: a burst above the veth's backlog (1000) would be
	// dropped before any tap sees it.
	runCmd(t, "ip", "netns", "exec", cli, "tcpreplay", "--quiet", "--pps=20000", "--intf1=vc", pcap)
	waitReceived(t, pl, truth.Packets.Total)
	stop()
	if got := pl.stats.received.Load(); got != truth.Packets.Total {
		t.Errorf("received = %d, want %d", got, truth.Packets.Total)
	}
	if got := pl.stats.dropped.Load(); got != 0 {
		t.Errorf("kernel drops = %d, want 0", got)
	}
	var ignored uint64
	for r := ignoreNotUDP; r < ignoreReasonCount; r++ {
		ignored += pl.stats.ignored[r].Load()
	}
	if ignored != truth.Packets.Ignored {
		t.Errorf("ignored = %d, want %d", ignored, truth.Packets.Ignored)
	}
	s := scrape(pl)
	for _, c := range []struct {
		name string
		want uint64
	}{
		{"dnstt_queries_total", truth.Totals.Queries},
		{"dnstt_bytes_in_total", truth.Totals.BytesIn},
		{"dnstt_bytes_out_total", truth.Totals.BytesOut},
		{"dnstt_sessions_total", truth.Totals.SessionsTotal},
		{"dnstt_active_clients", truth.Totals.SessionsTotal}, // all still active right after the replay
		{"dnstt_peak_clients", truth.Totals.SessionsTotal},
		// SPEC section 7: every response answers a query seen just before
		// it (the replay keeps the order); every resolver is active.
		{"dnstt_responses_total", truth.Totals.Responses},
		{"dnstt_response_latency_seconds_count", truth.Totals.Responses},
		{"dnstt_unanswered_queries_total", 0},
		{"dnstt_exporter_unmatched_responses_total", 0},
		{"dnstt_exporter_pending_queries", truth.Totals.Queries - truth.Totals.Responses},
		{"dnstt_active_resolvers", uint64(len(truth.Resolvers))},
	} {
		if got, ok := sumFamily(s, c.name); !ok || got != float64(c.want) {
			t.Errorf("%s = %v (present %v), want %d", c.name, got, ok, c.want)
		}
	}
}

func TestCaptureInterfaceDownAndRemoved(t *testing.T) {
	requireRoot(t)
	srv, cli := newVethPair(t)
	startResponder(t, srv, "[::]:53")
	var c *capture
	if err := inNetns(srv, func() (err error) {
		c, err = openCapture(captureConfig{interfaces: []string{"vs"}, bufferSize: defaultBufferSize, port: 53})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.close()
	pl := newTestPipeline(false)
	stop := make(chan struct{})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	done := make(chan error, 1)
	go func() { done <- c.run(pl, stop) }()

	// Down and up again: the kernel reports ENETDOWN, capture goes on.
	// Taking the link down flushes its IPv6 address and routes.
	runCmd(t, "ip", "-n", srv, "link", "set", "vs", "down")
	runCmd(t, "ip", "-n", srv, "link", "set", "vs", "up")
	for _, c := range [][]string{
		{"-n", srv, "-6", "addr", "replace", "2001:db8::1/64", "dev", "vs", "nodad"},
		{"-n", srv, "route", "replace", "198.51.100.0/24", "dev", "vs"},
		{"-n", srv, "-6", "route", "replace", "2001:db8:1::/64", "dev", "vs"},
		{"-n", cli, "route", "replace", "192.0.2.0/24", "dev", "vc"},
		{"-n", cli, "-6", "route", "replace", "2001:db8::/64", "dev", "vc"},
	} {
		runCmd(t, "ip", c...)
	}
	select {
	case err := <-done:
		t.Fatalf("run returned after down/up: %v", err)
	case <-time.After(2 * ringPollMs * time.Millisecond):
	}
	want := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
	waitReceived(t, pl, uint64(want.seen))
	if got := pl.stats.received.Load(); got != uint64(want.seen) {
		t.Errorf("received after down/up = %d, want %d", got, want.seen)
	}

	// Removed: run ends with an error naming the interface.
	runCmd(t, "ip", "-n", srv, "link", "del", "vs")
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, errInterfaceGone) || !strings.Contains(err.Error(), "vs") {
			t.Errorf("run after the interface was removed = %v, want %v naming vs", err, errInterfaceGone)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("run still running 5 s after its interface was removed")
	}
}

func TestCaptureStopLatency(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t, "stop")
	_, stop := startCapture(t, ns, captureConfig{bufferSize: defaultBufferSize, port: 53})
	start := time.Now()
	stop() // fails the test if run does not return within 5 s
	if d := time.Since(start); d > 2*ringPollMs*time.Millisecond {
		t.Errorf("run took %v to notice stop, want at most %v", d, 2*ringPollMs*time.Millisecond)
	}
}

// captureNeedsDedup reports whether copies of one datagram can appear on
// several captured interfaces (all interfaces, or more than one named):
// then the pipeline needs the SPEC section 3 duplicate table, as runLive
// decides.
func captureNeedsDedup(cfg captureConfig) bool {
	return len(cfg.interfaces) != 1
}

// startExporterInNetns runs the test binary in namespace ns with args and
// the listen address 127.0.0.1:9713 there, and waits until it serves; it
// returns the process (ip netns exec execs the exporter in place), the
// exit channel and the buffer that collects standard error.
func startExporterInNetns(t *testing.T, ns string, args ...string) (*os.Process, <-chan error, *syncBuffer) {
	t.Helper()
	args = append([]string{"netns", "exec", ns, testBinary, "-dnstt.domain", "t.example.com",
		"-web.listen-address", "127.0.0.1:9713"}, args...)
	cmd := exec.Command("ip", args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	done := startCommand(t, cmd)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := httpGetInNetns(ns, "127.0.0.1:9713", "/metrics"); err == nil {
			return cmd.Process, done, stderr
		} else if time.Now().After(deadline) {
			t.Fatalf("exporter in %s not serving after 10 s: %v; stderr: %s", ns, err, stderr.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writing process and a reading
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitSeries scrapes the exporter in ns until family name sums to at
// least want (or 10 s pass), waits for the ring's last block to be handed
// over, and returns the next scrape.
func waitSeries(t *testing.T, ns, name string, want int) map[string]float64 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		body, err := httpGetInNetns(ns, "127.0.0.1:9713", "/metrics")
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		if got, _ := sumFamily(parseSeries(body), name); got >= float64(want) {
			break
		}
	}
	time.Sleep(3 * ringRetireTimeoutMs * time.Millisecond)
	body, err := httpGetInNetns(ns, "127.0.0.1:9713", "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return parseSeries(body)
}

// checkSeriesTotals asserts the dnstt totals of a scrape.
func checkSeriesTotals(t *testing.T, s map[string]float64, queries, bytesIn, bytesOut int) {
	t.Helper()
	for _, c := range []struct {
		name string
		want int
	}{
		{"dnstt_queries_total", queries},
		{"dnstt_bytes_in_total", bytesIn},
		{"dnstt_bytes_out_total", bytesOut},
		{"dnstt_exporter_packets_dropped_total", 0},
	} {
		if got, ok := sumFamily(s, c.name); !ok || got != float64(c.want) {
			t.Errorf("%s = %v (present %v), want %d", c.name, got, ok, c.want)
		}
	}
}

// restoreVethRoutes puts back what taking vs down flushed: its IPv6
// address and the routes over the pair.
func restoreVethRoutes(t *testing.T, srv, cli string) {
	t.Helper()
	for _, c := range [][]string{
		{"-n", srv, "-6", "addr", "replace", "2001:db8::1/64", "dev", "vs", "nodad"},
		{"-n", srv, "route", "replace", "198.51.100.0/24", "dev", "vs"},
		{"-n", srv, "-6", "route", "replace", "2001:db8:1::/64", "dev", "vs"},
		{"-n", cli, "route", "replace", "192.0.2.0/24", "dev", "vc"},
		{"-n", cli, "-6", "route", "replace", "2001:db8::/64", "dev", "vc"},
	} {
		runCmd(t, "ip", c...)
	}
}

// TestExporterInterfaceFaults runs the program on a veth pair and changes
// the interfaces under it. The behaviour the README's "Interface faults"
// states:
//   - a captured interface set down and up again: the exporter keeps
//     running and counting; datagrams while it is down never reach it and
//     are not counted;
//   - a named interface deleted: exit 1 with one error line naming it;
//   - capturing all interfaces: one created after start is captured, and
//     one deleted changes nothing for the others.
func TestExporterInterfaceFaults(t *testing.T) {
	requireRoot(t)
	t.Run("named", func(t *testing.T) {
		srv, cli := newVethPair(t)
		startResponder(t, srv, "[::]:53")
		_, done, stderr := startExporterInNetns(t, srv, "-capture.interface", "vs")

		first := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
		s := waitSeries(t, srv, "dnstt_queries_total", first.queries)
		checkSeriesTotals(t, s, first.queries, first.bytesIn, first.bytesOut)

		runCmd(t, "ip", "-n", srv, "link", "set", "vs", "down")
		// A query during the gap: vc has no carrier, the veth drops it.
		gap := dnsttQuery(999, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, 10, "t.example.com")
		sendPlan(t, cli, []planQuery{{server: "192.0.2.1:53", msg: gap}})
		time.Sleep(2 * ringPollMs * time.Millisecond) // the reader sees ENETDOWN
		runCmd(t, "ip", "-n", srv, "link", "set", "vs", "up")
		restoreVethRoutes(t, srv, cli)
		select {
		case err := <-done:
			t.Fatalf("exporter exited after down/up: %v; stderr: %s", err, stderr.String())
		default:
		}
		second := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
		s = waitSeries(t, srv, "dnstt_queries_total", first.queries+second.queries)
		checkSeriesTotals(t, s, first.queries+second.queries, first.bytesIn+second.bytesIn, first.bytesOut+second.bytesOut)
		if got, _ := sumFamily(s, "dnstt_sessions_total"); got != float64(first.sessions) {
			t.Errorf("dnstt_sessions_total = %v, want %d (the gap query's session is not seen)", got, first.sessions)
		}

		runCmd(t, "ip", "-n", srv, "link", "del", "vs")
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit after the interface was deleted: %v, want status 1", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("exporter still running 5 s after its interface was deleted")
		}
		var errLines []string
		for line := range strings.Lines(stderr.String()) {
			if strings.Contains(line, "level=ERROR") {
				errLines = append(errLines, line)
			}
		}
		if len(errLines) != 1 || !strings.Contains(errLines[0], "capture on vs: interface was removed") {
			t.Errorf("error lines %q, want one naming vs and the removal; stderr:\n%s", errLines, stderr.String())
		}
	})

	t.Run("all interfaces", func(t *testing.T) {
		srv, cli := newVethPair(t)
		startResponder(t, srv, "[::]:53")
		proc, done, stderr := startExporterInNetns(t, srv) // all interfaces

		// A second pair, created after start, on its own addresses.
		runCmd(t, "ip", "link", "add", "vs2", "netns", srv, "type", "veth", "peer", "name", "vc2", "netns", cli)
		for _, c := range [][]string{
			{"-n", srv, "addr", "add", "203.0.113.1/24", "dev", "vs2"},
			{"-n", srv, "-6", "addr", "add", "2001:db8:3::1/64", "dev", "vs2", "nodad"},
			{"-n", srv, "link", "set", "vs2", "up"},
			{"-n", cli, "addr", "add", "203.0.113.10/24", "dev", "vc2"},
			{"-n", cli, "-6", "addr", "add", "2001:db8:3::10/64", "dev", "vc2", "nodad"},
			{"-n", cli, "link", "set", "vc2", "up"},
		} {
			runCmd(t, "ip", c...)
		}
		late := sendPlan(t, cli, testPlan("203.0.113.1", "2001:db8:3::1"))
		s := waitSeries(t, srv, "dnstt_queries_total", late.queries)
		checkSeriesTotals(t, s, late.queries, late.bytesIn, late.bytesOut)
		if got, _ := sumFamily(s, "dnstt_exporter_packets_duplicate_total"); got != 0 {
			t.Errorf("duplicates = %v, want 0 (each datagram passes one interface)", got)
		}

		// Deleted while capturing all: the others go on.
		runCmd(t, "ip", "-n", srv, "link", "del", "vs2")
		time.Sleep(ringStatsEveryNs * time.Nanosecond) // the reader's periodic checks run
		first := sendPlan(t, cli, testPlan("192.0.2.1", "2001:db8::1"))
		s = waitSeries(t, srv, "dnstt_queries_total", late.queries+first.queries)
		checkSeriesTotals(t, s, late.queries+first.queries, late.bytesIn+first.bytesIn, late.bytesOut+first.bytesOut)

		stopCommand(t, proc, done, stderr, 10*time.Second)
	})
}

// sendQueriesTo sends n dnstt queries of ClientID cid under domain from
// src to the responder on 127.0.0.1:53 in namespace ns, each waiting for
// its answer. Query ids start at firstID.
func sendQueriesTo(ns, src, domain string, cid [8]byte, n int, firstID uint16) error {
	return inNetns(ns, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)))
		if err != nil {
			return err
		}
		defer c.Close()
		to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:53"))
		buf := make([]byte, 4096)
		for i := range n {
			if _, err := c.WriteToUDP(dnsttQuery(firstID+uint16(i), cid, 20+i%4*20, domain), to); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				return fmt.Errorf("answer to a query for %s: %w", domain, err)
			}
		}
		return nil
	})
}

// liveExporter is an exporter process a test started in namespace ns
// with startCommand, serving metrics on listen, and its latest scrape.
type liveExporter struct {
	t          *testing.T
	ns, listen string
	done       <-chan error
	stderr     *geoLogBuffer
	s          scrapeValues // the latest scrape's series
	body       []byte       // the latest scrape
}

// scrape fetches the metrics once; on success it replaces s and body.
func (e *liveExporter) scrape() error {
	body, err := httpGetInNetns(e.ns, e.listen, "/metrics")
	if err == nil {
		e.body, e.s = body, parseSeries(body)
	}
	return err
}

// waitFor scrapes until cond holds, for at most 10 s, and fails the test
// if the exporter exits first.
func (e *liveExporter) waitFor(what string, cond func() bool) {
	e.t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-e.done:
			e.t.Fatalf("the exporter exited: %v; stderr: %s", err, e.stderr.String())
		default:
		}
		if err = e.scrape(); err == nil && cond() {
			return
		}
	}
	e.t.Fatalf("waiting for %s: last scrape error %v; stderr: %s", what, err, e.stderr.String())
}

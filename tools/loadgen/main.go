// Command loadgen sends dnstt-shaped DNS queries, or with -responses the
// server's answers to them, at a fixed packet rate for a bounded time and
// count, to measure dnstt_exporter's live capture (see run.sh). It only
// sends from and to loopback or documentation addresses
// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32): run it
// inside a network namespace joined to the server's by a veth.
package main

import (
	"encoding/base32"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bounds of one run, whatever the flags say.
const (
	maxDuration = 5 * time.Minute
	maxPackets  = 100_000_000
	maxRate     = 2_000_000
	tick        = time.Millisecond // pacing granularity
	maxBatch    = 256              // datagrams per sendmmsg
	variants    = 4096             // distinct prebuilt queries
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	target   netip.AddrPort
	rate     int
	duration time.Duration
	count    int
	clients  int
	domain   string
	batch    int
	source   netip.AddrPort // bound before connect; zero = any
	response bool           // send responses (QR=1, a TXT answer) instead of queries
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	target := fs.String("target", "192.0.2.1:53", "destination address:port (loopback or documentation addresses only)")
	rate := fs.Int("rate", 100_000, "packets per second")
	duration := fs.Duration("duration", 30*time.Second, "how long to send (at most 5m)")
	count := fs.Int("count", 0, "stop after this many packets (0 = rate × duration)")
	clients := fs.Int("clients", 1000, "distinct dnstt ClientIDs (sessions)")
	domain := fs.String("domain", "t.example.com", "tunnel domain")
	batch := fs.Int("batch", 64, "datagrams per sendmmsg call")
	source := fs.String("source", "", "bind to this address:port before sending (loopback or documentation addresses only; default any)")
	responses := fs.Bool("responses", false, "send dnstt responses (QR=1, a TXT answer of 50 to 1000 bytes) instead of queries; run it from the server's address and port 53")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	ap, err := netip.ParseAddrPort(*target)
	if err != nil {
		return config{}, fmt.Errorf("-target %q: %w", *target, err)
	}
	if !allowedTarget(ap.Addr()) {
		return config{}, fmt.Errorf("-target %q: only loopback and documentation addresses are allowed", *target)
	}
	c := config{target: ap, rate: *rate, duration: *duration, count: *count, clients: *clients, domain: *domain, batch: *batch, response: *responses}
	if *source != "" {
		if c.source, err = netip.ParseAddrPort(*source); err != nil {
			return config{}, fmt.Errorf("-source %q: %w", *source, err)
		}
		if !allowedTarget(c.source.Addr()) {
			return config{}, fmt.Errorf("-source %q: only loopback and documentation addresses are allowed", *source)
		}
	}
	switch {
	case c.rate <= 0 || c.rate > maxRate:
		return c, fmt.Errorf("-rate %d: want 1..%d", c.rate, maxRate)
	case c.duration <= 0 || c.duration > maxDuration:
		return c, fmt.Errorf("-duration %v: want up to %v", c.duration, maxDuration)
	case c.clients <= 0 || c.clients > 1<<20:
		return c, fmt.Errorf("-clients %d: want 1..%d", c.clients, 1<<20)
	case c.batch <= 0 || c.batch > maxBatch:
		return c, fmt.Errorf("-batch %d: want 1..%d", c.batch, maxBatch)
	}
	if c.count <= 0 {
		c.count = int(float64(c.rate) * c.duration.Seconds())
	}
	c.count = min(c.count, maxPackets)
	return c, nil
}

// allowedTarget reports whether a may receive test traffic: loopback or
// a documentation prefix (RFC 5737, RFC 3849).
func allowedTarget(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	for _, p := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"} {
		if netip.MustParsePrefix(p).Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// dnsttQuery returns a query shaped like the reference client's idle poll
// or data query: base32 of ClientID, padding marker and padding, then
// payloadLen data bytes, in labels of up to 63, under domain, TXT IN, RD,
// with an EDNS(0) OPT record.
func dnsttQuery(id uint16, cid uint64, payloadLen int, domain string) []byte {
	raw := binary.BigEndian.AppendUint64(nil, cid)
	raw = append(raw, 0xe8, 1, 2, 3, 4, 5, 6, 7, 8)
	for i := range payloadLen {
		raw = append(raw, byte(i*13+int(id)))
	}
	prefix := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1)
	for len(prefix) > 0 {
		n := min(len(prefix), 63)
		b = append(b, byte(n))
		b = append(b, prefix[:n]...)
		prefix = prefix[n:]
	}
	for l := range strings.SplitSeq(domain, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0, 0, 16, 0, 1)                         // root, TXT, IN
	return append(b, 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0) // OPT 4096
}

// responseLens are the TXT data sizes of the responses, cycled: dnstt's
// downstream answers run from short acknowledgements to the 1232-byte
// default maximum response size.
var responseLens = [...]int{50, 200, 500, 1000}

// dnsttResponse returns the server's answer to q (from dnsttQuery): QR,
// AA and RD, the question, and one TXT record of txtLen data bytes in
// character-strings of up to 255; no OPT record.
func dnsttResponse(q []byte, txtLen int) []byte {
	qend := 12
	for q[qend] != 0 {
		qend += 1 + int(q[qend])
	}
	qend += 1 + 4 // root label, type, class
	b := append([]byte(nil), q[:2]...)
	b = append(b, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0) // QR AA RD, NOERROR; QD 1, AN 1
	b = append(b, q[12:qend]...)
	rdlen := txtLen + (txtLen+254)/255
	b = append(b, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60) // name → question, TXT, IN, TTL 60
	b = binary.BigEndian.AppendUint16(b, uint16(rdlen))
	for left := txtLen; left > 0; {
		n := min(left, 255)
		b = append(b, byte(n))
		for i := range n {
			b = append(b, byte('a'+i%26))
		}
		left -= n
	}
	return b
}

// mmsghdr is struct mmsghdr (include/linux/socket.h) for sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

func run(args []string) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	family, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Port: int(c.target.Port()), Addr: c.target.Addr().As4()})
	if c.target.Addr().Is6() && !c.target.Addr().Is4In6() {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(c.target.Port()), Addr: c.target.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
		return os.NewSyscallError("setsockopt SO_SNDBUF", err)
	}
	if c.source.IsValid() {
		// Several generators may answer from the server's port 53.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
		}
		var la unix.Sockaddr = &unix.SockaddrInet4{Port: int(c.source.Port()), Addr: c.source.Addr().Unmap().As4()}
		if family == unix.AF_INET6 {
			la = &unix.SockaddrInet6{Port: int(c.source.Port()), Addr: c.source.Addr().As16()}
		}
		if err := unix.Bind(fd, la); err != nil {
			return os.NewSyscallError("bind", err)
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		return os.NewSyscallError("connect", err)
	}

	// Prebuilt queries: a mix of idle polls and data queries like the
	// reference client's (71–260 bytes of DNS here, 79–283 there).
	msgs := make([][]byte, variants)
	for i := range msgs {
		cid := uint64(i%c.clients)*0x9E3779B97F4A7C15 | 1
		msgs[i] = dnsttQuery(uint16(i), cid, []int{0, 40, 100, 130}[i%4], c.domain)
		if c.response {
			msgs[i] = dnsttResponse(msgs[i], responseLens[(i/4)%len(responseLens)])
		}
	}
	iovs := make([]unix.Iovec, c.batch)
	hdrs := make([]mmsghdr, c.batch)
	for i := range hdrs {
		hdrs[i].hdr.Iov = &iovs[i]
		hdrs[i].hdr.Iovlen = 1
	}

	start := time.Now()
	deadline := start.Add(c.duration)
	sent, next, full := 0, 0, 0
	for sent < c.count {
		now := time.Now()
		if now.After(deadline) {
			break
		}
		due := min(int(float64(c.rate)*now.Sub(start).Seconds()), c.count)
		if due <= sent {
			time.Sleep(tick - time.Duration(now.Sub(start).Nanoseconds()%int64(tick)))
			continue
		}
		for sent < due && time.Now().Before(deadline) {
			n := min(due-sent, c.batch)
			for i := range n {
				m := msgs[next]
				next = (next + 1) % variants
				iovs[i].Base = &m[0]
				iovs[i].SetLen(len(m))
			}
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), 0, 0, 0)
			if errno != 0 {
				if errno == unix.ENOBUFS || errno == unix.EAGAIN || errno == unix.ECONNREFUSED {
					// A full queue, or an ICMP port unreachable reported on
					// the connected socket: retry at the next round.
					full++
					break
				}
				return os.NewSyscallError("sendmmsg", errno)
			}
			sent += int(r)
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("loadgen: sent %d packets in %.3f s: %.0f packets/s (target %d/s, %d full-queue retries)\n",
		sent, elapsed.Seconds(), float64(sent)/elapsed.Seconds(), c.rate, full)
	if sent == 0 {
		return errors.New("sent nothing")
	}
	return nil
}

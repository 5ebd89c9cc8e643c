// Command gopacketcount is the baseline of the file-mode throughput benchmark:
// it reads a classic pcap with gopacket (pcapgo.Reader, pure Go, no libpcap)
// and decodes Ethernet/IPv4/IPv6/UDP with a DecodingLayerParser and the UDP
// payload with layers.DNS, doing the counting dnstt_exporter does in file mode
// (SPEC section 3 and 4): dnstt queries and responses for the tunnel domain,
// bytes from the UDP length, ClientID from the first 13 base32 characters of
// the prefix, sessions per ClientID with a 30 s window on packet time.
//
// -decoder parser (the default, gopacket's fast path: DecodingLayerParser into
// preallocated layers) or -decoder packet (gopacket.NewPacket with Lazy and
// NoCopy, the common way to use gopacket) choose how packets are decoded.
//
// It prints the totals as JSON on stdout (the generator's format) and the
// rate on stderr; with -expect it compares the totals and exits 1 on a
// difference.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dnstt-exporter/dnstt_exporter/tools/filebench/internal/tally"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Lengths used by the ClientID rule (SPEC section 3).
const (
	udpHeaderLen   = 8
	clientIDChars  = 13 // 13 × 5 = 65 bits hold the 64-bit ClientID
	minPrefixChars = 15 // 15 × 5 = 75 bits: the ClientID and one more byte
)

// base32Value maps a base32 character of either case to its value; 0xff is invalid.
var base32Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" {
		t[c] = byte(i)
		t[c|0x20] = byte(i)
	}
	return t
}()

func main() {
	file := flag.String("capture.file", "", "classic pcap `file` to read")
	domain := flag.String("dnstt.domain", "t.example.com", "tunnel `domain`")
	port := flag.Uint("dnstt.port", 53, "dnstt server UDP `port`")
	decoder := flag.String("decoder", "parser", "gopacket decoding: `parser` (DecodingLayerParser) or packet (gopacket.NewPacket)")
	expect := flag.String("expect", "", "JSON `file` with the expected totals (the generator's sidecar)")
	flag.Parse()
	if *file == "" || *port == 0 || *port > 65535 || *decoder != "parser" && *decoder != "packet" {
		fmt.Fprintln(os.Stderr, "gopacketcount: need -capture.file, a valid -dnstt.port and -decoder parser|packet")
		os.Exit(2)
	}
	began := time.Now()
	totals, err := count(*file, strings.ToLower(strings.TrimSuffix(*domain, ".")), layers.UDPPort(*port), *decoder == "packet")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopacketcount:", err)
		os.Exit(1)
	}
	el := time.Since(began).Seconds()
	tally.WriteJSON(os.Stdout, totals)
	fmt.Fprintf(os.Stderr, "gopacketcount (-decoder %s): %d packets in %.3fs: %.0f packets/s, %.1f ns/packet\n",
		*decoder, totals.Packets, el, float64(totals.Packets)/el, el*1e9/float64(totals.Packets))
	if *expect != "" {
		want, err := tally.Read(*expect)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gopacketcount:", err)
			os.Exit(1)
		}
		if d := tally.Diff(totals, want); len(d) > 0 {
			fmt.Fprintln(os.Stderr, "gopacketcount: totals differ from", *expect+":", strings.Join(d, "; "))
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "gopacketcount: totals equal", *expect)
	}
}

// count reads the capture and counts it, decoding with gopacket.NewPacket
// when newPacket is set and with a DecodingLayerParser otherwise.
func count(path, domain string, port layers.UDPPort, newPacket bool) (tally.Totals, error) {
	f, err := os.Open(path)
	if err != nil {
		return tally.Totals{}, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return tally.Totals{}, fmt.Errorf("%s: %w", path, err)
	}
	var (
		eth     layers.Ethernet
		ip4     layers.IPv4
		ip6     layers.IPv6
		udp     layers.UDP
		dns     layers.DNS
		decoded = make([]gopacket.LayerType, 0, 4)
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &ip6, &udp)
	parser.IgnoreUnsupported = true
	m := matcher{suffix: []byte("." + domain), port: port}
	c := tally.NewCounter()
	for {
		data, ci, err := r.ZeroCopyReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return tally.Totals{}, fmt.Errorf("%s: %w", path, err)
		}
		c.Record(ci.Timestamp.UnixNano())
		var u *layers.UDP
		var d *layers.DNS
		if newPacket {
			pkt := gopacket.NewPacket(data, layers.LinkTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
			u, _ = pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			d, _ = pkt.Layer(layers.LayerTypeDNS).(*layers.DNS)
		} else {
			parser.DecodeLayers(data, &decoded)
			for _, t := range decoded {
				if t == layers.LayerTypeUDP {
					u = &udp
				}
			}
		}
		if u != nil && d == nil && dns.DecodeFromBytes(u.Payload, gopacket.NilDecodeFeedback) == nil {
			d = &dns
		}
		m.classify(c, u, d)
	}
	return c.Finish(), nil
}

// matcher applies the rules of SPEC section 3 to decoded layers.
type matcher struct {
	suffix []byte // "." + tunnel domain, lower case
	port   layers.UDPPort
}

// classify counts one record from its UDP and DNS layers (nil when absent).
func (m *matcher) classify(c *tally.Counter, u *layers.UDP, d *layers.DNS) {
	if u == nil || d == nil ||
		d.QR && u.SrcPort != m.port || !d.QR && u.DstPort != m.port ||
		d.OpCode != layers.DNSOpCodeQuery || len(d.Questions) != 1 {
		c.Ignore()
		return
	}
	q := &d.Questions[0]
	n := len(q.Name) - len(m.suffix)
	if q.Type != layers.DNSTypeTXT || q.Class != layers.DNSClassIN ||
		n <= 0 || !bytes.EqualFold(q.Name[n:], m.suffix) {
		c.Ignore()
		return
	}
	id, ok := clientID(q.Name[:n])
	if !ok {
		c.Ignore()
		return
	}
	dnsLen := int(u.Length) - udpHeaderLen
	if d.QR {
		c.Response(dnsLen)
	} else {
		c.Query(id, dnsLen)
	}
}

// clientID checks that the dotted prefix is base32 of at least 15 characters
// and decodes the ClientID from its first 13.
func clientID(prefix []byte) (uint64, bool) {
	var id uint64
	chars := 0
	for _, b := range prefix {
		if b == '.' {
			continue
		}
		v := base32Value[b]
		if v == 0xff {
			return 0, false
		}
		if chars < clientIDChars {
			id = id<<5 | uint64(v)
		}
		chars++
	}
	if chars < minPrefixChars {
		return 0, false
	}
	return id >> (clientIDChars*5 - 64), true
}

// Package bench compares dnstt_exporter's packet decoder with the obvious
// way of doing the same job with common Go packet and DNS libraries:
// decode a captured IP packet and extract the dnstt ClientID.
//
// It is a separate module so the main module keeps its two dependencies.
// The main module's BenchmarkDecode* benchmarks decode the same packets
// (chosen by the same rule from the same capture); run.sh runs both.
package bench

import (
	"encoding/base32"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

const (
	capturePath = "../../testdata/pcap/visible-small.pcap"
	tunnel      = "t.example.com."
	dnsPort     = 53
	etherLen    = 14
	idChars     = 13 // base32 characters holding the 8-byte ClientID
)

// clientID is a dnstt session identifier.
type clientID [8]byte

var (
	errNotDNS    = errors.New("not a DNS message")
	errNotTunnel = errors.New("not a dnstt name")
	b32          = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// readIPPackets returns the IP packets (Ethernet header stripped) of the
// lab capture, a classic microsecond pcap file with Ethernet link type.
func readIPPackets(tb testing.TB) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(capturePath)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		tb.Fatalf("%s: not a little-endian Ethernet pcap file", capturePath)
	}
	var pkts [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) || n < etherLen {
			tb.Fatalf("%s: bad record at %d", capturePath, off)
		}
		pkts = append(pkts, b[off+etherLen:off+n])
		off += n
	}
	return pkts
}

// idFromName extracts the ClientID the obvious way: check and strip the
// tunnel domain, join the prefix labels, upper-case, base32-decode.
func idFromName(name string) (clientID, error) {
	lower := strings.ToLower(name)
	if !strings.HasSuffix(lower, "."+tunnel) {
		return clientID{}, errNotTunnel
	}
	prefix := strings.ReplaceAll(name[:len(name)-len(tunnel)-1], ".", "")
	if len(prefix) < 15 {
		return clientID{}, errNotTunnel
	}
	raw, err := b32.DecodeString(strings.ToUpper(prefix))
	if err != nil {
		return clientID{}, err
	}
	return clientID(raw[:8]), nil
}

// portOK applies the QR bit's port rule (SPEC section 3): a query goes
// to the DNS port, a response comes from it.
func portOK(response bool, src, dst layers.UDPPort) bool {
	if response {
		return src == dnsPort
	}
	return dst == dnsPort
}

// firstLayer is the IP layer type of a packet by its version nibble.
func firstLayer(b []byte) gopacket.LayerType {
	if b[0]>>4 == 6 {
		return layers.LayerTypeIPv6
	}
	return layers.LayerTypeIPv4
}

// viaNewPacket decodes with gopacket.NewPacket (lazy, no copy) and its
// DNS layer.
func viaNewPacket(b []byte) (clientID, error) {
	pkt := gopacket.NewPacket(b, firstLayer(b), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	l, _ := pkt.Layer(layers.LayerTypeDNS).(*layers.DNS)
	u, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if l == nil || u == nil || !portOK(l.QR, u.SrcPort, u.DstPort) ||
		len(l.Questions) != 1 || l.Questions[0].Type != layers.DNSTypeTXT {
		return clientID{}, errNotDNS
	}
	return idFromName(string(l.Questions[0].Name) + ".")
}

// layerParser holds preallocated gopacket layers for DecodingLayerParser.
type layerParser struct {
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	dns     layers.DNS
	payload gopacket.Payload
	full    *gopacket.DecodingLayerParser // IP, UDP, DNS
	ipUDP   *gopacket.DecodingLayerParser // IP, UDP, payload
	decoded []gopacket.LayerType
}

// newLayerParser returns a parser for IPv4 or IPv6 packets.
func newLayerParser(first gopacket.LayerType) *layerParser {
	p := &layerParser{decoded: make([]gopacket.LayerType, 0, 4)}
	p.full = gopacket.NewDecodingLayerParser(first, &p.ip4, &p.ip6, &p.udp, &p.dns)
	p.full.IgnoreUnsupported = true
	p.ipUDP = gopacket.NewDecodingLayerParser(first, &p.ip4, &p.ip6, &p.udp, &p.payload)
	// UDP names DNS as its next layer (port 53), which ipUDP does not
	// decode: it stops after UDP, whose Payload is the DNS message.
	p.ipUDP.IgnoreUnsupported = true
	return p
}

// viaLayerParser decodes with a DecodingLayerParser and layers.DNS.
func (p *layerParser) viaLayerParser(b []byte) (clientID, error) {
	if err := p.full.DecodeLayers(b, &p.decoded); err != nil {
		return clientID{}, err
	}
	if len(p.decoded) == 0 || p.decoded[len(p.decoded)-1] != layers.LayerTypeDNS ||
		!portOK(p.dns.QR, p.udp.SrcPort, p.udp.DstPort) ||
		len(p.dns.Questions) != 1 || p.dns.Questions[0].Type != layers.DNSTypeTXT {
		return clientID{}, errNotDNS
	}
	return idFromName(string(p.dns.Questions[0].Name) + ".")
}

// udpPayload decodes IP and UDP with the DecodingLayerParser and returns
// the UDP payload.
func (p *layerParser) udpPayload(b []byte) ([]byte, error) {
	if err := p.ipUDP.DecodeLayers(b, &p.decoded); err != nil {
		return nil, err
	}
	if len(p.decoded) < 2 || p.decoded[1] != layers.LayerTypeUDP ||
		(p.udp.DstPort != dnsPort && p.udp.SrcPort != dnsPort) {
		return nil, errNotDNS
	}
	return p.udp.Payload, nil
}

// viaMiekg decodes IP/UDP with gopacket's layers and the DNS message with
// miekg/dns Msg.Unpack.
func (p *layerParser) viaMiekg(b []byte) (clientID, error) {
	payload, err := p.udpPayload(b)
	if err != nil {
		return clientID{}, err
	}
	var m dns.Msg
	if err := m.Unpack(payload); err != nil {
		return clientID{}, err
	}
	if !portOK(m.Response, p.udp.SrcPort, p.udp.DstPort) ||
		len(m.Question) != 1 || m.Question[0].Qtype != dns.TypeTXT {
		return clientID{}, errNotDNS
	}
	return idFromName(m.Question[0].Name)
}

// viaDNSMessage decodes IP/UDP with gopacket's layers and the DNS header
// and question with golang.org/x/net/dns/dnsmessage.Parser.
func (p *layerParser) viaDNSMessage(b []byte) (clientID, error) {
	payload, err := p.udpPayload(b)
	if err != nil {
		return clientID{}, err
	}
	var dp dnsmessage.Parser
	h, err := dp.Start(payload)
	if err != nil {
		return clientID{}, err
	}
	if !portOK(h.Response, p.udp.SrcPort, p.udp.DstPort) {
		return clientID{}, errNotDNS
	}
	q, err := dp.Question()
	if err != nil {
		return clientID{}, err
	}
	if q.Type != dnsmessage.TypeTXT {
		return clientID{}, errNotDNS
	}
	return idFromName(q.Name.String())
}

// benchPackets are the packets the main module's benchmarks decode,
// chosen by the same rules: the longest-named dnstt query over IPv4 and
// over IPv6, and the longest dnstt response (first in the file on ties).
func benchPackets(tb testing.TB) (q4, q6, resp []byte) {
	tb.Helper()
	p4, p6 := newLayerParser(layers.LayerTypeIPv4), newLayerParser(layers.LayerTypeIPv6)
	var q4n, q6n int
	for _, b := range readIPPackets(tb) {
		p := p4
		if b[0]>>4 == 6 {
			p = p6
		}
		payload, err := p.udpPayload(b)
		if err != nil {
			continue
		}
		var m dns.Msg
		if m.Unpack(payload) != nil || len(m.Question) != 1 {
			continue
		}
		if _, err := idFromName(m.Question[0].Name); err != nil || m.Question[0].Qtype != dns.TypeTXT ||
			!portOK(m.Response, p.udp.SrcPort, p.udp.DstPort) {
			continue
		}
		n := len(m.Question[0].Name)
		switch {
		case m.Response:
			if len(b) > len(resp) {
				resp = b
			}
		case b[0]>>4 == 4 && n > q4n:
			q4, q4n = b, n
		case b[0]>>4 == 6 && n > q6n:
			q6, q6n = b, n
		}
	}
	if q4 == nil || q6 == nil || resp == nil {
		tb.Fatal("capture lacks a dnstt query or response")
	}
	return q4, q6, resp
}

// TestLibrariesAgree checks that every way finds the same ClientIDs in
// the capture: 828 dnstt packets of two sessions (testdata/pcap/README.md).
func TestLibrariesAgree(t *testing.T) {
	p4, p6 := newLayerParser(layers.LayerTypeIPv4), newLayerParser(layers.LayerTypeIPv6)
	ids := map[clientID]int{}
	for i, b := range readIPPackets(t) {
		p := p4
		if b[0]>>4 == 6 {
			p = p6
		}
		want, werr := viaNewPacket(b)
		for name, f := range map[string]func([]byte) (clientID, error){
			"DecodingLayerParser": p.viaLayerParser,
			"miekg":               p.viaMiekg,
			"dnsmessage":          p.viaDNSMessage,
		} {
			got, err := f(b)
			if (err == nil) != (werr == nil) || got != want {
				t.Errorf("packet %d: %s = %x, %v; NewPacket = %x, %v", i, name, got, err, want, werr)
			}
		}
		if werr == nil {
			ids[want]++
		}
	}
	n := 0
	for _, c := range ids {
		n += c
	}
	if len(ids) != 2 || n != 828 {
		t.Errorf("found %d ClientIDs in %d packets, want 2 in 828", len(ids), n)
	}
}

// sinkID keeps benchmark results alive.
var sinkID clientID

// BenchmarkCompare decodes each benchmark packet with each library.
func BenchmarkCompare(b *testing.B) {
	q4, q6, resp := benchPackets(b)
	for _, pk := range []struct {
		name string
		b    []byte
	}{{"QueryIPv4", q4}, {"QueryIPv6", q6}, {"Response", resp}} {
		p := newLayerParser(firstLayer(pk.b))
		for _, way := range []struct {
			name string
			f    func([]byte) (clientID, error)
		}{
			{"gopacket_NewPacket", viaNewPacket},
			{"gopacket_DecodingLayerParser", p.viaLayerParser},
			{"gopacket_miekg", p.viaMiekg},
			{"gopacket_dnsmessage", p.viaDNSMessage},
		} {
			b.Run(pk.name+"/"+way.name, func(b *testing.B) {
				if _, err := way.f(pk.b); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(pk.b)))
				for b.Loop() {
					sinkID, _ = way.f(pk.b)
				}
			})
		}
	}
}

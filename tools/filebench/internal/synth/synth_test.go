package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// smallConfig is a quick capture that still has noise, 0x20 and both families.
func smallConfig(seed uint64) Config {
	c := DefaultConfig()
	c.Packets, c.Seed, c.Clients, c.Resolvers = 20_000, seed, 500, 100
	return c
}

func TestGenerateDeterministic(t *testing.T) {
	tests := []struct {
		name     string
		a, b     uint64
		wantSame bool
	}{
		{name: "same seed", a: 7, b: 7, wantSame: true},
		{name: "other seed", a: 7, b: 8, wantSame: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x, y bytes.Buffer
			tx, err := Generate(smallConfig(tt.a), &x)
			if err != nil {
				t.Fatal(err)
			}
			ty, err := Generate(smallConfig(tt.b), &y)
			if err != nil {
				t.Fatal(err)
			}
			same := sha256.Sum256(x.Bytes()) == sha256.Sum256(y.Bytes()) && tx == ty
			if same != tt.wantSame {
				t.Fatalf("same output = %v, want %v", same, tt.wantSame)
			}
		})
	}
}

func TestGenerateRecords(t *testing.T) {
	cfg := smallConfig(1)
	var buf bytes.Buffer
	tot, err := Generate(cfg, &buf)
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if got := binary.LittleEndian.Uint32(b); got != 0xa1b2c3d4 {
		t.Fatalf("magic = %#x, want 0xa1b2c3d4", got)
	}
	if got := binary.LittleEndian.Uint32(b[20:]); got != 1 {
		t.Fatalf("link type = %d, want 1 (Ethernet)", got)
	}
	var records, lastTS uint64
	for off := pcapHeaderLen; off < len(b); {
		if off+recHeaderLen > len(b) {
			t.Fatalf("record header at %d truncated", off)
		}
		h := b[off : off+recHeaderLen]
		ts := uint64(binary.LittleEndian.Uint32(h))*1e6 + uint64(binary.LittleEndian.Uint32(h[4:]))
		if ts < lastTS {
			t.Fatalf("record %d at %d: time goes back", records, off)
		}
		lastTS = ts
		capLen := int(binary.LittleEndian.Uint32(h[8:]))
		frame := b[off+recHeaderLen : off+recHeaderLen+capLen]
		ipOff := ethHeaderLen
		var udpLen int
		switch binary.BigEndian.Uint16(frame[12:]) {
		case 0x0800:
			if got, want := int(binary.BigEndian.Uint16(frame[ipOff+2:])), capLen-ethHeaderLen; got != want {
				t.Fatalf("record %d: IPv4 total length %d, want %d", records, got, want)
			}
			udpLen = int(binary.BigEndian.Uint16(frame[ipOff+ipv4HeaderLen+4:]))
			ipOff += ipv4HeaderLen
		case 0x86dd:
			udpLen = int(binary.BigEndian.Uint16(frame[ipOff+4:]))
			ipOff += ipv6HeaderLen
		default:
			t.Fatalf("record %d: ethertype %#x", records, frame[12:14])
		}
		if udpLen != capLen-ipOff || udpLen-udpHeaderLen > maxDNSLen {
			t.Fatalf("record %d: UDP length %d, frame leaves %d", records, udpLen, capLen-ipOff)
		}
		records++
		off += recHeaderLen + capLen
	}
	if records != uint64(cfg.Packets) || tot.Packets != records {
		t.Fatalf("records = %d, totals.packets = %d, want %d", records, tot.Packets, cfg.Packets)
	}
	if tot.Queries+tot.Responses+tot.Ignored != tot.Packets {
		t.Fatalf("queries %d + responses %d + ignored %d != packets %d", tot.Queries, tot.Responses, tot.Ignored, tot.Packets)
	}
	if share := float64(tot.Ignored) / float64(tot.Packets); share < 0.05 || share > 0.15 {
		t.Fatalf("ignored share %.3f, want about 0.10", share)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{name: "no packets", change: func(c *Config) { c.Packets = 0 }},
		{name: "no clients", change: func(c *Config) { c.Clients = 0 }},
		{name: "one resolver", change: func(c *Config) { c.Resolvers = 1 }},
		{name: "zero rate", change: func(c *Config) { c.PPS = 0 }},
		{name: "all noise", change: func(c *Config) { c.Noise = 1 }},
		{name: "negative snaplen", change: func(c *Config) { c.Snaplen = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := smallConfig(1)
			tt.change(&c)
			if _, err := Generate(c, &bytes.Buffer{}); err == nil {
				t.Fatalf("Generate(%+v) succeeded, want an error", c)
			}
		})
	}
}

// TestGenerateVayDNS checks the VayDNS format: the tunnel's queries have
// the configured type and prefixes of VayDNS's lengths (polls of exactly
// ClientID + 4 bytes, data up to 85 characters in labels of 63 and 22),
// and the totals still add up.
func TestGenerateVayDNS(t *testing.T) {
	cfg := smallConfig(3)
	cfg.VayDNSIDLen, cfg.VayDNSType = 4, 10 // NULL
	var buf bytes.Buffer
	tot, err := Generate(cfg, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if tot.Queries+tot.Responses+tot.Ignored != tot.Packets || tot.Queries == 0 {
		t.Fatalf("totals %+v", tot)
	}
	const suffix = "\x01t\x07example\x03com\x00"
	polls, data := 0, 0
	b := buf.Bytes()
	for off := pcapHeaderLen; off < len(b); {
		capLen := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+recHeaderLen : off+recHeaderLen+capLen]
		off += recHeaderLen + capLen
		ipLen := ipv4HeaderLen
		if binary.BigEndian.Uint16(frame[12:]) == 0x86dd {
			ipLen = ipv6HeaderLen
		}
		msg := frame[ethHeaderLen+ipLen+udpHeaderLen:]
		if msg[2]&0x80 != 0 {
			continue // responses repeat the question
		}
		q := msg[dnsHeaderLen:]
		end := bytes.IndexByte(q, 0) // the prefix holds no zero byte
		chars, labels := 0, 0
		for i := 0; i < end; i += 1 + int(q[i]) {
			chars += int(q[i])
			labels++
		}
		name := q[:end+1]
		qtype := binary.BigEndian.Uint16(q[end+1:])
		if qtype != 10 || !bytes.HasSuffix(name, []byte(suffix)) {
			continue // noise
		}
		chars -= 1 + 7 + 3 // t, example, com
		switch {
		case chars < 10: // noise: abc, or ⌈8 × (4 + 1) / 5⌉ − 1 characters
		case chars == 13: // ⌈8 × (4 + 4) / 5⌉; data of 4 payload bytes too
			polls++
		case chars >= 10 && chars <= maxVayPrefixLen && (chars <= maxLabelLen) == (labels == 4):
			data++ // at least the ClientID, the length and a byte: ⌈8 × 6 / 5⌉
		default:
			t.Fatalf("query %q: %d prefix characters", name, chars)
		}
	}
	if polls == 0 || data == 0 {
		t.Fatalf("%d polls, %d data queries", polls, data)
	}
}

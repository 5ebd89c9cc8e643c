package main

import (
	"bytes"
	"encoding/base32"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestParseDomain checks normalisation and every rejection of parseDomain.
func TestParseDomain(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	name253 := long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61)
	tests := []struct {
		name, in, want, err string
	}{
		{name: "plain", in: "t.example.com", want: "t.example.com"},
		{name: "trailing dot", in: "t.example.com.", want: "t.example.com"},
		{name: "upper case", in: "T.Example.COM", want: "t.example.com"},
		{name: "single label", in: "tunnel", want: "tunnel"},
		{name: "hyphen and underscore", in: "-a_b-.x-y.com", want: "-a_b-.x-y.com"},
		{name: "digits", in: "1.2.3", want: "1.2.3"},
		{name: "63-character label", in: long63 + ".com", want: long63 + ".com"},
		{name: "253 characters", in: name253, want: name253},
		{name: "253 characters and a dot", in: name253 + ".", want: name253},
		{name: "empty", in: "", err: `domain "": empty name`},
		{name: "dot", in: ".", err: `domain ".": empty name`},
		{name: "two dots", in: "t.example.com..", err: `domain "t.example.com..": empty label`},
		{name: "empty label", in: "x..y", err: `domain "x..y": empty label`},
		{name: "leading dot", in: ".x.y", err: `domain ".x.y": empty label`},
		{name: "64-character label", in: long63 + "a.com", err: `domain "` + long63 + `a.com": label longer than 63 characters`},
		{name: "254 characters", in: name253 + "b", err: `domain "` + name253 + `b": longer than 253 characters`},
		{name: "space", in: "t example.com", err: `domain "t example.com": invalid character ' '`},
		{name: "backslash", in: `t\.example.com`, err: `domain "t\\.example.com": invalid character '\\'`},
		{name: "quote", in: `t".com`, err: `domain "t\".com": invalid character '"'`},
		{name: "non-ASCII", in: "tü.com", err: `domain "tü.com": invalid character 'ü' (U+00FC): give an internationalised domain in its punycode form, "xn--t-eha.com"`},
		{name: "non-ASCII upper case", in: "T.MÜNCHEN.de.", err: `domain "T.MÜNCHEN.de.": invalid character 'Ü' (U+00DC): give an internationalised domain in its punycode form, "t.xn--mnchen-3ya.de"`},
		{name: "non-ASCII symbol", in: "t☃.com", err: `domain "t☃.com": invalid character '☃' (U+2603): give an internationalised domain in its punycode (xn--) form`},
		{name: "non-ASCII astral", in: "t.😀.com", err: `domain "t.😀.com": invalid character '😀' (U+1F600): give an internationalised domain in its punycode (xn--) form`},
		{name: "not UTF-8", in: "t\xfc.com", err: `domain "t\xfc.com": invalid byte 0xfc (not UTF-8)`},
		{name: "star", in: "*.example.com", err: `domain "*.example.com": invalid character '*'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDomain(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("parseDomain(%q) = %q, %v, want error %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseDomain(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestRecordTypesInTable checks that domainTable.types has a bit for
// every record type a domain can have.
func TestRecordTypesInTable(t *testing.T) {
	for _, rt := range recordTypes {
		if rt.qtype >= maxTableType {
			t.Errorf("%s: type %d ≥ maxTableType %d", rt.name, rt.qtype, maxTableType)
		}
	}
}

// TestVayDNSDomain checks the settings of VayDNS domains and every
// rejection of newVayDNSDomain.
func TestVayDNSDomain(t *testing.T) {
	tests := []struct {
		name, in   string
		idLen      int
		recordType string
		want       tunnelDomain
		minChars   int
		err        string
		typeName   string
	}{
		{name: "defaults", in: "T.Example.COM.", idLen: 2, recordType: "txt",
			want: vaydnsDomain("t.example.com", 2, 16), minChars: 5, typeName: "txt"},
		{name: "null, 4 bytes", in: "v.example.com", idLen: 4, recordType: "NULL",
			want: vaydnsDomain("v.example.com", 4, 10), minChars: 8, typeName: "null"},
		{name: "1 byte, a", in: "v", idLen: 1, recordType: "A", want: vaydnsDomain("v", 1, 1), minChars: 4, typeName: "a"},
		{name: "8 bytes, caa", in: "v", idLen: 8, recordType: "Caa", want: vaydnsDomain("v", 8, 257), minChars: 15, typeName: "caa"},
		{name: "cname", in: "v", idLen: 3, recordType: "cname", want: vaydnsDomain("v", 3, 5), minChars: 7, typeName: "cname"},
		{name: "aaaa", in: "v", idLen: 5, recordType: "aaaa", want: vaydnsDomain("v", 5, 28), minChars: 10, typeName: "aaaa"},
		{name: "mx", in: "v", idLen: 6, recordType: "mx", want: vaydnsDomain("v", 6, 15), minChars: 12, typeName: "mx"},
		{name: "ns", in: "v", idLen: 7, recordType: "ns", want: vaydnsDomain("v", 7, 2), minChars: 13, typeName: "ns"},
		{name: "srv", in: "v", idLen: 2, recordType: "SRV", want: vaydnsDomain("v", 2, 33), minChars: 5, typeName: "srv"},
		{name: "size 0", in: "v", idLen: 0, recordType: "txt", err: "clientid size 0: want 1 to 8"},
		{name: "size 9", in: "v", idLen: 9, recordType: "txt", err: "clientid size 9: want 1 to 8"},
		{name: "unknown type", in: "v", idLen: 2, recordType: "ptr",
			err: `record type "ptr": want one of txt, null, cname, a, aaaa, mx, ns, srv, caa`},
		{name: "empty type", in: "v", idLen: 2, recordType: "",
			err: `record type "": want one of txt, null, cname, a, aaaa, mx, ns, srv, caa`},
		{name: "type with a prefix of a name", in: "v", idLen: 2, recordType: "tx",
			err: `record type "tx": want one of txt, null, cname, a, aaaa, mx, ns, srv, caa`},
		{name: "bad domain", in: "x..y", idLen: 2, recordType: "txt", err: `domain "x..y": empty label`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newVayDNSDomain(tt.in, tt.idLen, tt.recordType)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("newVayDNSDomain(%q, %d, %q) = %+v, %v, want error %q", tt.in, tt.idLen, tt.recordType, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("newVayDNSDomain(%q, %d, %q) = %+v, %v, want %+v", tt.in, tt.idLen, tt.recordType, got, err, tt.want)
			}
			if n := got.minChars(); n != tt.minChars {
				t.Errorf("minChars = %d, want %d", n, tt.minChars)
			}
			if n := recordTypeName(got.qtype); n != tt.typeName {
				t.Errorf("recordTypeName(%d) = %q, want %q", got.qtype, n, tt.typeName)
			}
		})
	}
	if d := dnsttDomain("t.example.com"); d.minChars() != minPrefixChars || d.idLen != clientIDLen || d.qtype != dnsTypeTXT {
		t.Errorf("dnsttDomain = %+v, minChars %d", d, d.minChars())
	}
}

// TestNewDomainTable checks the wire forms and the longest-first order.
func TestNewDomainTable(t *testing.T) {
	tab := newDomainTable(append(dnsttDomains("com", "t.example.com", "example.com"), vaydnsDomain("other.net", 4, 10)))
	var order []string
	for _, e := range tab.entries {
		d := tab.domains[e.index]
		order = append(order, d.name)
		if want := testName(d.name); !bytes.Equal(e.wire, want) {
			t.Errorf("%s: wire %q, want %q", d.name, e.wire, want)
		}
		if want := strings.Count(d.name, ".") + 1; e.labels != want {
			t.Errorf("%s: labels %d, want %d", d.name, e.labels, want)
		}
		if e.qtype != d.qtype || e.idLen != d.idLen || e.minChars != d.minChars() || 5*e.idChars < 8*e.idLen || 5*(e.idChars-1) >= 8*e.idLen {
			t.Errorf("%s: entry %+v for %+v", d.name, e, d)
		}
	}
	if tab.types != [maxTableType / 64]uint64{1<<10 | 1<<16} {
		t.Errorf("types = %x, want TXT and NULL", tab.types)
	}
	want := "t.example.com example.com other.net com"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

// TestBase32Bad compares the SWAR check with a byte-at-a-time oracle for
// every byte value in every lane. After a byte with bit 7 set only that
// byte's flag is specified.
func TestBase32Bad(t *testing.T) {
	valid := func(c byte) bool {
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '2' <= c && c <= '7'
	}
	for lane := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 'Z', '7', '2', 0xff, 0x00, '@'} {
				var w [8]byte
				for i := range w {
					w[i] = fill
				}
				w[lane] = byte(c)
				got := base32Bad(leUint64(w))
				if k := swarBase32.bad(leUint64(w)); k != got {
					t.Fatalf("swarBase32.bad(%x) = %#x, base32Bad = %#x", w, k, got)
				}
				for i := range w {
					if i > 0 && slices.ContainsFunc(w[:i], func(b byte) bool { return b >= 0x80 }) {
						break // unspecified after a byte with bit 7 set
					}
					wantBad := !valid(w[i])
					if gotBad := got>>(8*i+7)&1 == 1; gotBad != wantBad {
						t.Fatalf("base32Bad(%x): lane %d bad = %v, want %v", w, i, gotBad, wantBad)
					}
					if got>>(8*i)&0x7f != 0 {
						t.Fatalf("base32Bad(%x) = %#x: low lane bits set", w, got)
					}
				}
			}
		}
	}
}

// TestLower8 compares the SWAR lower-casing with bytes.ToLower for every
// byte value in every lane.
func TestLower8(t *testing.T) {
	for lane := range 8 {
		for c := range 256 {
			w := [8]byte{'A', 'z', '@', '[', 0xc1, '`', '{', 'Q'}
			w[lane] = byte(c)
			var want [8]byte
			for i, b := range w {
				if 'A' <= b && b <= 'Z' {
					b += 'a' - 'A'
				}
				want[i] = b
			}
			if got := lower8(leUint64(w)); got != leUint64(want) {
				t.Fatalf("lower8(%x) = %x, want %x", w, got, leUint64(want))
			}
		}
	}
}

// leUint64 is binary.LittleEndian.Uint64 on an array.
func leUint64(w [8]byte) uint64 {
	var x uint64
	for i := 7; i >= 0; i-- {
		x = x<<8 | uint64(w[i])
	}
	return x
}

// TestEqualFoldWire checks the suffix comparison.
func TestEqualFoldWire(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"equal", "\x01t\x07example\x03com\x00", "\x01t\x07example\x03com\x00", true},
		{"mixed case", "\x01T\x07ExAmPlE\x03cOM\x00", "\x01t\x07example\x03com\x00", true},
		{"short", "\x01A\x00", "\x01a\x00", true},
		{"short differs", "\x01b\x00", "\x01a\x00", false},
		{"short, fold is not |0x20", "\x01@\x00", "\x01`\x00", false},
		{"fold is not |0x20", "\x01t\x07ex@mple\x03com\x00", "\x01t\x07ex`mple\x03com\x00", false},
		{"last byte differs", "\x01t\x07example\x03com\x01", "\x01t\x07example\x03com\x00", false},
		{"length differs", "\x01t\x07example\x03com\x00", "\x01t\x07example\x03co\x00", false},
		{"8 bytes", "\x06abcdef\x00", "\x06abcdef\x00", true},
		{"8 bytes differ", "\x06abcdeg\x00", "\x06abcdef\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := equalFoldWire([]byte(tt.a), []byte(tt.b)); got != tt.want {
				t.Errorf("equalFoldWire(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestClientIDVectors decodes ClientIDs from RFC 4648 style vectors and
// the lab capture's two sessions, in several label splits and cases.
func TestClientIDVectors(t *testing.T) {
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	ids := []clientID{
		{0x96, 0x46, 0x8e, 0xac, 0x04, 0x27, 0x5b, 0xff},
		{0x58, 0xd2, 0x94, 0x79, 0xd7, 0x01, 0x4e, 0x39},
		{},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{'f', 'o', 'o', 'b', 'a', 'r', 0, 1},
	}
	for _, id := range ids {
		for _, split := range [][]int{{28}, {1, 27}, {12, 16}, {13, 15}, {5, 5, 5, 13}} {
			for _, upper := range []bool{false, true} {
				s := enc.EncodeToString(append(id[:], 0xe8, 1, 2, 3, 4, 5, 6, 7, 8))[:28]
				if !upper {
					s = strings.ToLower(s)
				}
				var labels []string
				for _, n := range split {
					labels = append(labels, s[:n])
					s = s[n:]
				}
				name := strings.Join(labels, ".")
				if got := decodeClientID(testName(name)); got != id {
					t.Errorf("decodeClientID(%q) = %x, want %x", name, got, id)
				}
			}
		}
	}
}

// TestNoFmt guards dnsname.go's imports: the packet path must not use
// fmt, reflect or log (STYLE section 3).
func TestNoFmt(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "dnsname.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		switch path {
		case "fmt", "reflect", "log", "log/slog":
			t.Errorf("dnsname.go imports %q", path)
		}
	}
}

// checkAccepted verifies an accepted packet against encoding/base32: the
// ClientID is what the standard decoder makes of the prefix's first 13
// characters, and re-encoding it gives back the first 12 characters and
// the high 4 bits of the 13th (case-insensitively).
func checkAccepted(t *testing.T, tab *domainTable, p *dnsttPacket, input []byte) {
	t.Helper()
	if int(p.domain) >= len(tab.domains) {
		t.Fatalf("domain index %d of %d", p.domain, len(tab.domains))
	}
	d := tab.domains[p.domain]
	if len(p.qname) == 0 || !bytes.Contains(input, p.qname) {
		t.Fatalf("qname %q is not part of the input", p.qname)
	}
	wire := testName(d.name)
	if !bytes.HasSuffix(bytes.ToLower(p.qname), wire) || len(p.qname) == len(wire) {
		t.Fatalf("qname %q does not end with %q after a prefix", p.qname, wire)
	}
	var prefix []byte
	for off := 0; off < len(p.qname)-len(wire); off += 1 + int(p.qname[off]) {
		prefix = append(prefix, p.qname[off+1:off+1+int(p.qname[off])]...)
	}
	if len(prefix) < d.minChars() {
		t.Fatalf("prefix %q shorter than %d", prefix, d.minChars())
	}
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	if d.idLen != clientIDLen {
		// The standard decoder wants whole 8-character groups, or a
		// valid partial one: decode 8 characters per 5 bytes, padded.
		padded := strings.ToUpper(string(prefix)) + strings.Repeat("A", 8)
		dec, err := enc.DecodeString(padded[:8*((d.idLen+4)/5)])
		if err != nil {
			t.Fatalf("prefix %q: encoding/base32: %v", prefix, err)
		}
		var want clientID
		copy(want[:d.idLen], dec)
		if want != p.id {
			t.Fatalf("prefix %q: %d-byte ClientID %x, encoding/base32 says %x", prefix, d.idLen, p.id, want)
		}
		return
	}
	dec, err := enc.DecodeString(strings.ToUpper(string(prefix[:clientIDChars])))
	if err != nil {
		t.Fatalf("prefix %q: encoding/base32: %v", prefix, err)
	}
	if clientID(dec[:clientIDLen]) != p.id {
		t.Fatalf("prefix %q: ClientID %x, encoding/base32 says %x", prefix, p.id, dec[:clientIDLen])
	}
	re := enc.EncodeToString(p.id[:])
	if !strings.EqualFold(re[:clientIDChars-1], string(prefix[:clientIDChars-1])) ||
		base32Value[re[clientIDChars-1]]>>1 != base32Value[prefix[clientIDChars-1]]>>1 {
		t.Fatalf("prefix %q: ClientID %x re-encodes as %q", prefix, p.id, re)
	}
}

// checkNoAllocs fails t if fn allocates, unless the race detector is on.
// A fuzz worker runs goroutines of its own, so a first non-zero count is
// confirmed over many more runs before it fails the input.
func checkNoAllocs(t *testing.T, fn func(), format string, args ...any) {
	t.Helper()
	if raceEnabled {
		return
	}
	if testing.AllocsPerRun(10, fn) == 0 {
		return
	}
	if n := testing.AllocsPerRun(1000, fn); n != 0 {
		t.Fatalf(format+": allocs = %v, want 0", append(args, n)...)
	}
}

// fuzzDomains are the domains of the fuzz targets: a shared suffix and a
// short one, dnstt and VayDNS (of the sample's settings, NULL with a
// 4-byte ClientID, and 1 byte under a dnstt domain).
var fuzzDomains = append(dnsttDomains(testDomain, "example.com", "x.y"),
	vaydnsDomain("v.example.com", 2, dnsTypeTXT), vaydnsDomain("n.example.com", 4, 10), vaydnsDomain("o.x.y", 1, 1))

// fuzzVayDomains are the second domain set of the fuzz targets, under
// which the VayDNS sample's seeds are VayDNS traffic: its domain with its
// settings, a NULL domain and a dnstt domain.
var fuzzVayDomains = []tunnelDomain{testVayDomain, vaydnsDomain("n.example.com", 4, 10), dnsttDomain("d.x.y")}

// fuzzSeedMessages are the DNS messages of both real captures.
func fuzzSeedMessages(f *testing.F) [][]byte {
	var msgs [][]byte
	for _, path := range []string{sampleCapture, vaydnsCapture} {
		for _, b := range testCaptureIPOf(f, path) {
			ihl := ipv6HeaderLen
			if b[0]>>4 == 4 {
				ihl = int(b[0]&0x0f) * 4
			}
			msgs = append(msgs, b[ihl+udpHeaderLen:])
		}
	}
	return msgs
}

// FuzzParseMessage fuzzes the DNS header and question walker with
// messages from the lab capture and hand-built names.
func FuzzParseMessage(f *testing.F) {
	for _, m := range fuzzSeedMessages(f) {
		f.Add(m)
	}
	for _, tt := range decodeCases() {
		if len(tt.pkt) > ipv4MinHeaderLen+udpHeaderLen && tt.pkt[0] == 0x45 {
			f.Add(tt.pkt[ipv4MinHeaderLen+udpHeaderLen:])
		}
	}
	f.Add(testQuery("aaaaaaaaaaaaaaa.x.y"))
	f.Add(testQuery("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.x.y"))
	f.Add(testQuery(testVayPoll + ".v.example.com"))
	f.Add(testMsg(0x0100, 1, testName(testVayPoll+".n.example.com"), 10, 1))
	f.Add(testMsg(0x0100, 1, testName("ta3m.o.x.y"), 1, 1))
	tabs := []domainTable{newDomainTable(fuzzDomains), newDomainTable(fuzzVayDomains)}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) < dnsHeaderLen {
			return
		}
		for i := range tabs {
			tab := &tabs[i]
			var p dnsttPacket
			r := tab.parseMessage(msg, &p)
			if r >= ignoreReasonCount || r == ignoreNotUDP || r == ignoreWrongPort || r == ignoreFragment {
				t.Fatalf("parseMessage(%x) = %d", msg, r)
			}
			checkNoAllocs(t, func() { tab.parseMessage(msg, &p) }, "parseMessage(%x)", msg)
			if r == ignoreNone {
				checkAccepted(t, tab, &p, msg)
			}
			checkAgainstRef(t, tab, msg)
		}
	})
}

// FuzzClientID fuzzes the prefix check and ClientID decoder with names
// of arbitrary label splits and characters under one domain: dnstt when
// idLen is 0 (mod 9), else VayDNS with a ClientID of idLen bytes.
func FuzzClientID(f *testing.F) {
	f.Add(testPrefix, uint8(0), uint8(0))
	f.Add("SzDi5LaEe5N772AaaaaaaaaaaaaA", uint8(3), uint8(0))
	f.Add("szdi5laee5n772aaa", uint8(13), uint8(0))
	f.Add("szdi5laee5n772a!", uint8(7), uint8(0))
	f.Add(strings.Repeat("abcdefgh234567", 16), uint8(63), uint8(0))
	f.Add(testVayPoll, uint8(0), uint8(2))
	f.Add(testVayPoll[:5], uint8(0), uint8(2))
	f.Add(testVayPoll[:4], uint8(0), uint8(2))
	f.Add(testVayPoll, uint8(2), uint8(2))
	f.Add(testVayPoll, uint8(3), uint8(4))
	f.Add(testVayPoll[:7], uint8(1), uint8(4))
	f.Add(testVayPoll+"aaaaa", uint8(5), uint8(8))
	f.Add(testVayPoll, uint8(0), uint8(1))
	f.Add(testVayPoll, uint8(0), uint8(7))
	var tabs [maxVayDNSIDLen + 1]domainTable
	tabs[0] = newDomainTable(dnsttDomains(testDomain))
	for n := minVayDNSIDLen; n <= maxVayDNSIDLen; n++ {
		tabs[n] = newDomainTable([]tunnelDomain{vaydnsDomain(testDomain, n, dnsTypeTXT)})
	}
	f.Fuzz(func(t *testing.T, prefix string, cut, idLen uint8) {
		tab := &tabs[idLen%uint8(len(tabs))]
		// Names over 255 bytes are all alike (malformed); a bound keeps
		// each run, and the minimisation of a find, short.
		if len(prefix) > 2*dnsMaxNameLen {
			prefix = prefix[:2*dnsMaxNameLen]
		}
		// Split prefix into labels of at most 63 bytes, the first of
		// at most cut bytes when cut > 0.
		var name []byte
		for first := true; len(prefix) > 0; first = false {
			n := min(len(prefix), dnsMaxLabelLen)
			if first && cut > 0 {
				n = min(n, int(cut))
			}
			name = append(name, byte(n))
			name = append(name, prefix[:n]...)
			prefix = prefix[n:]
		}
		name = append(name, testName(testDomain)...)
		msg := testMsg(0x0100, 1, name, 16, 1)
		var p dnsttPacket
		r := tab.parseMessage(msg, &p)
		checkNoAllocs(t, func() { tab.parseMessage(msg, &p) }, "parseMessage(%q)", name)
		switch r {
		case ignoreNone:
			checkAccepted(t, tab, &p, msg)
		case ignoreBadPrefix, ignoreMalformed, ignoreNotTunnel:
		default:
			t.Fatalf("parseMessage(%q) = %v", name, r)
		}
		// Cross-check the verdict with a byte-at-a-time oracle.
		if len(name) <= dnsMaxNameLen && len(name) > len(testName(testDomain)) {
			chars, ok := 0, true
			for off := 0; name[off] != 0 && off < len(name)-len(testName(testDomain)); off += 1 + int(name[off]) {
				for _, c := range name[off+1 : off+1+int(name[off])] {
					chars++
					ok = ok && ('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '2' <= c && c <= '7')
				}
			}
			if want := ok && chars >= tab.domains[0].minChars(); want != (r == ignoreNone) {
				t.Fatalf("parseMessage(%q) = %v, oracle says valid = %v", name, r, want)
			}
		}
		checkAgainstRef(t, tab, msg)
	})
}

// base32Bad returns x with bit 7 set in each byte lane that is not in the
// RFC 4648 base32 alphabet, either case (A-Z, a-z, 2-7), and clear in the
// others. A lane whose byte has bit 7 set is always flagged; the lanes
// after it (higher addresses) are then unspecified. It is the plain,
// subtracting form of the check that base32Lanes computes with additions
// only: below the low bound or above the high one.
func base32Bad(x uint64) uint64 {
	l := x | swarOnes*0x20              // letters fold onto 'a'..'z'; nothing else does
	belowA := swarOnes*(0x80+'a'-1) - l // bit 7 set where l < 'a'
	aboveZ := l + swarOnes*(0x7f-'z')   // bit 7 set where l > 'z'
	below2 := swarOnes*(0x80+'2'-1) - x // bit 7 set where x < '2'
	above7 := x + swarOnes*(0x7f-'7')   // bit 7 set where x > '7'
	return ((belowA|aboveZ)&(below2|above7) | x) & swarHigh
}

// bad is base32Bad computed with base32Lanes and k's constants.
func (k *swarConsts) bad(x uint64) uint64 {
	return (^base32Lanes(x, k.fold, k.geA, k.gtZ, k.ge2, k.gt7) | x) & swarHigh
}

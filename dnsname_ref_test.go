package main

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// refResult is what refParseMessage decides about a DNS message.
type refResult struct {
	reason ignoreReason
	domain uint16
	id     clientID
	dnsID  uint16
	qname  []byte
}

// refParseMessage is a byte-at-a-time reading of SPEC section 3 rules 2-4,
// for dnstt and VayDNS domains, kept as the oracle of parseMessage: it
// walks the name label by label, matches domains on lower-cased label
// lists and decodes the ClientID bit by bit. It is slow and allocates; it
// is written for plainness only. A question whose type no domain uses is
// wrong_type whatever its name; one whose type is not that of the domain
// it matches is wrong_type too (see parseMessage).
func refParseMessage(tab *domainTable, msg []byte) refResult {
	if len(msg) < dnsHeaderLen {
		return refResult{reason: ignoreMalformed}
	}
	if msg[2]&dnsOpcodeMask != 0 || msg[4] != 0 || msg[5] != 1 {
		return refResult{reason: ignoreNotQuery}
	}
	var labels [][]byte
	off := dnsHeaderLen
	for {
		if off >= len(msg) || off-dnsHeaderLen >= dnsMaxNameLen {
			return refResult{reason: ignoreMalformed} // truncated or too long
		}
		l := int(msg[off])
		if l == 0 {
			break
		}
		if l > dnsMaxLabelLen || off+1+l > len(msg) {
			return refResult{reason: ignoreMalformed}
		}
		labels = append(labels, msg[off+1:off+1+l])
		off += 1 + l
	}
	nameEnd := off + 1
	if nameEnd+4 > len(msg) {
		return refResult{reason: ignoreMalformed}
	}
	qtype := uint16(msg[nameEnd])<<8 | uint16(msg[nameEnd+1])
	anyType := false
	for _, d := range tab.domains {
		anyType = anyType || d.qtype == qtype
	}
	if !anyType || msg[nameEnd+2] != 0 || msg[nameEnd+3] != dnsClassIN {
		return refResult{reason: ignoreWrongType}
	}

	// The longest matching domain, counted in labels and bytes alike.
	best, bestLen := -1, 0
	for i, td := range tab.domains {
		d := td.name
		dl := bytes.Split([]byte(d), []byte("."))
		if len(dl) >= len(labels) || len(d) <= bestLen {
			continue
		}
		match := true
		for j, l := range dl {
			if !bytes.Equal(refLower(labels[len(labels)-len(dl)+j]), l) {
				match = false
			}
		}
		if match {
			best, bestLen = i, len(d)
		}
	}
	if best < 0 {
		return refResult{reason: ignoreNotTunnel}
	}
	dom := tab.domains[best]
	if dom.qtype != qtype {
		return refResult{reason: ignoreWrongType}
	}

	var prefix []byte
	for _, l := range labels[:len(labels)-bytes.Count([]byte(dom.name), []byte("."))-1] {
		prefix = append(prefix, l...)
	}
	// The ClientID and one more byte: ⌈8(N+1)/5⌉ characters, counted
	// here in bits.
	if 5*len(prefix) < 8*(dom.idLen+1) {
		return refResult{reason: ignoreBadPrefix}
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var bits []byte // one byte per bit, most significant first
	for _, c := range prefix {
		v := bytes.IndexByte([]byte(alphabet), refUpper(c))
		if v < 0 {
			return refResult{reason: ignoreBadPrefix}
		}
		for k := 4; k >= 0; k-- {
			bits = append(bits, byte(v>>k&1))
		}
	}
	var id clientID
	for i := range 8 * dom.idLen {
		id[i/8] |= bits[i] << (7 - i%8)
	}
	return refResult{
		domain: uint16(best),
		id:     id,
		dnsID:  uint16(msg[0])<<8 | uint16(msg[1]),
		qname:  msg[dnsHeaderLen:nameEnd],
	}
}

// refLower lower-cases the ASCII letters of b into a new slice.
func refLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// refUpper upper-cases one ASCII letter.
func refUpper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// checkAgainstRef fails t when parseMessage and refParseMessage disagree
// about msg. parseMessage's callers guarantee a whole header, so shorter
// messages are skipped.
// It returns the verdict.
func checkAgainstRef(t *testing.T, tab *domainTable, msg []byte) ignoreReason {
	t.Helper()
	if len(msg) < dnsHeaderLen {
		return ignoreMalformed
	}
	var p dnsttPacket
	got := tab.parseMessage(msg, &p)
	want := refParseMessage(tab, msg)
	if got != want.reason {
		t.Fatalf("parseMessage(%x) = %v, reference says %v", msg, got, want.reason)
	}
	if got != ignoreNone {
		return got
	}
	if p.domain != want.domain || p.id != want.id || p.dnsID != want.dnsID || !bytes.Equal(p.qname, want.qname) ||
		&p.qname[0] != &want.qname[0] {
		t.Fatalf("parseMessage(%x) = domain %d id %x dnsID %d qname %q, reference says %d %x %d %q",
			msg, p.domain, p.id, p.dnsID, p.qname, want.domain, want.id, want.dnsID, want.qname)
	}
	return got
}

// refDomains are the domains of the differential test: shared suffixes,
// one label, and labels holding characters outside base32 (digits 0, 1,
// 8, 9 and hyphens), which may follow a prefix but never be part of it;
// dnstt and VayDNS domains of several ClientID sizes and types, one
// VayDNS domain under a dnstt one and the other way round.
var refDomains = append(dnsttDomains(testDomain, "example.com", "x.y", "a-1.x.y", "q", "b2.abcdefghijklm.c0m"),
	vaydnsDomain("v.example.com", 2, dnsTypeTXT),
	vaydnsDomain("n.x.y", 4, 10),
	vaydnsDomain("v1.q", 1, 1),
	vaydnsDomain("v7.example.com", 7, 257),
	vaydnsDomain("v8.q", 8, 10),
	vaydnsDomain("v.org", 3, 5),
)

// refTypes are the query types of the random messages: TXT mostly, the
// types of refDomains, and a type none uses.
var refTypes = []int{16, 16, 16, 16, 10, 1, 257, 5, 28}

// TestParseMessageReference compares parseMessage with refParseMessage
// on the lab capture, the hand-built cases and random names built to hit
// every boundary: label lengths around the word size, characters just
// inside and outside the alphabet, bytes with bit 7 set in the header and
// the name, pointers, truncation and names around 255 bytes.
func TestParseMessageReference(t *testing.T) {
	tab := newDomainTable(refDomains)
	for _, b := range testCaptureIP(t) {
		ihl := ipv6HeaderLen
		if b[0]>>4 == 4 {
			ihl = int(b[0]&0x0f) * 4
		}
		_ = checkAgainstRef(t, &tab, b[ihl+udpHeaderLen:])
	}
	for _, tt := range decodeCases() {
		if len(tt.pkt) > ipv4MinHeaderLen+udpHeaderLen+dnsHeaderLen && tt.pkt[0] == 0x45 {
			_ = checkAgainstRef(t, &tab, tt.pkt[ipv4MinHeaderLen+udpHeaderLen:])
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	// chars leans on base32 but holds each alphabet edge and its
	// neighbours, bytes with bit 7 set, and label-length-like bytes.
	chars := []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ234567" +
		"0189@[`{-_.\x00\x12\x17\x31\x32\x37\x38\x3f\x40\x5a\x5b\x60\x7a\x7b\x7f\x80\xc1\xe1\xfa\xff")
	n := 200000
	if testing.Short() {
		n = 20000
	}
	var seen [ignoreReasonCount]int
	for range n {
		var name []byte
		nlabels := 1 + rng.IntN(8)
		// A quarter of the names split like the reference client's: all
		// labels but the last 63 bytes long, the regular layout that
		// validRegularPrefix checks without marks.
		regular := rng.IntN(4) == 0
		if regular {
			nlabels = 1 + rng.IntN(4)
		}
		for j := range nlabels {
			var l int
			switch rng.IntN(4) {
			case 0:
				l = 1 + rng.IntN(dnsMaxLabelLen)
			case 1:
				l = dnsMaxLabelLen - rng.IntN(3)
			default:
				l = 1 + rng.IntN(17)
			}
			if regular && j < nlabels-1 {
				l = dnsMaxLabelLen
			}
			name = append(name, byte(l))
			for range l {
				if rng.IntN(60) == 0 {
					name = append(name, chars[rng.IntN(len(chars))])
				} else {
					name = append(name, chars[rng.IntN(58)]) // base32 and other letters
				}
			}
		}
		if rng.IntN(4) != 0 {
			name = append(name, testName(refDomains[rng.IntN(len(refDomains))].name)...)
			if rng.IntN(8) == 0 { // the domain in upper or mixed case
				for i, c := range name {
					if 'a' <= c && c <= 'z' && rng.IntN(2) == 0 {
						name[i] = c - ('a' - 'A')
					}
				}
			}
		} else {
			name = append(name, 0)
		}
		qtype, qclass := refTypes[rng.IntN(len(refTypes))], 1
		if rng.IntN(20) == 0 {
			qtype = rng.IntN(300)
		}
		msg := testMsg(0x0100, 1, name, qtype, qclass)
		for i := range dnsHeaderLen / 2 { // bit 7 set in the header bytes next to the name
			if rng.IntN(3) == 0 {
				msg[6+i] = byte(rng.Uint32())
			}
		}
		msg[0], msg[1] = byte(rng.Uint32()), byte(rng.Uint32())
		switch rng.IntN(16) {
		case 0: // cut anywhere
			msg = msg[:rng.IntN(len(msg)+1)]
		case 1: // a pointer or reserved label type in place of a length
			msg[dnsHeaderLen+rng.IntN(len(name))] = byte(0x40 + rng.IntN(0xc0))
		case 2: // any byte anywhere
			msg[dnsHeaderLen+rng.IntN(len(name))] = byte(rng.Uint32())
		}
		seen[checkAgainstRef(t, &tab, msg)]++
	}
	// Each verdict of the name walk must be well represented.
	for _, r := range []ignoreReason{ignoreNone, ignoreMalformed, ignoreWrongType, ignoreNotTunnel, ignoreBadPrefix} {
		if seen[r] < n/100 {
			t.Errorf("%s: %d of %d random messages, want at least 1%%", ignoreReasonNames[r], seen[r], n)
		}
	}
	t.Logf("verdicts: %v", seen)
}

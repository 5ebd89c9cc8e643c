package main

// The DNS layer of the decoder, pure: the header check, the question walk,
// the tunnel-domain suffix match and the ClientID decode. No I/O, clock,
// locks or metrics.

import (
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DNS header and question layout (RFC 1035 section 4.1).
const (
	dnsHeaderLen   = 12   // ID, flags, four counts
	dnsFlagQR      = 0x80 // in header byte 2
	dnsOpcodeMask  = 0x78 // in header byte 2
	dnsMaxNameLen  = 255  // wire length, final zero label included (RFC 1035 section 3.1)
	dnsMaxLabelLen = 63   // larger length bytes are pointers or reserved label types
	dnsClassIN     = 1
	dnsQTypeOff    = 0 // after the question name
	dnsQClassOff   = 2
	dnsQTailLen    = 4 // QTYPE and QCLASS

	// maxDomainLen is the longest domain in presentation form without the
	// trailing dot: 253 characters make a 255-byte wire name.
	maxDomainLen = 253

	// minPrefixChars is the shortest prefix that carries a dnstt ClientID
	// and one more byte (SPEC section 3 rule 4): 15 × 5 = 75 bits.
	minPrefixChars = 15
	// clientIDChars base32 characters carry a dnstt ClientID: 13 × 5 = 65
	// bits, of which the last character contributes its high 4.
	clientIDChars = 13

	// minVayDNSIDLen and maxVayDNSIDLen bound VayDNS's -clientid-size
	// (SPEC section 2a); defaultVayDNSIDLen is its default.
	minVayDNSIDLen     = 1
	maxVayDNSIDLen     = clientIDLen
	defaultVayDNSIDLen = 2
	// base32Bits is what one base32 character carries (RFC 4648 section 6).
	base32Bits = 5
)

// tunnelProtocol is the wire format of a tunnel domain.
type tunnelProtocol uint8

const (
	protocolDNSTT  tunnelProtocol = iota // dnstt, and VayDNS with -dnstt-compat (SPEC section 2)
	protocolVayDNS                       // VayDNS's default format (SPEC section 2a)
)

// tunnelProtocolNames are the protocol label values of
// dnstt_exporter_domain_info, indexed by tunnelProtocol.
var tunnelProtocolNames = [...]string{protocolDNSTT: "dnstt", protocolVayDNS: "vaydns"}

// tunnelDomain is one configured tunnel domain with the wire format its
// server speaks. Every domain carries its own settings, so that one host
// can serve dnstt and VayDNS domains, and VayDNS domains with different
// ClientID sizes and record types (dnstm's config.json gives them per
// tunnel).
type tunnelDomain struct {
	name     string         // normalised by parseDomain
	protocol tunnelProtocol // wire format
	idLen    int            // ClientID bytes: clientIDLen for dnstt, 1 to 8 for VayDNS
	qtype    uint16         // the query type its clients use (RFC 1035 TYPE): TXT for dnstt
}

// dnsttDomain returns the settings of a dnstt domain, name normalised.
func dnsttDomain(name string) tunnelDomain {
	return tunnelDomain{name: name, protocol: protocolDNSTT, idLen: clientIDLen, qtype: dnsTypeTXT}
}

// newVayDNSDomain validates the settings of a VayDNS domain in its
// default format: s is the domain as given (see parseDomain), idLen the
// ClientID size in bytes (1 to 8), recordType its -record-type (see
// parseRecordType).
func newVayDNSDomain(s string, idLen int, recordType string) (tunnelDomain, error) {
	name, err := parseDomain(s)
	if err != nil {
		return tunnelDomain{}, err
	}
	if idLen < minVayDNSIDLen || idLen > maxVayDNSIDLen {
		return tunnelDomain{}, errors.New("clientid size " + strconv.Itoa(idLen) + ": want " +
			strconv.Itoa(minVayDNSIDLen) + " to " + strconv.Itoa(maxVayDNSIDLen))
	}
	qtype, err := parseRecordType(recordType)
	if err != nil {
		return tunnelDomain{}, err
	}
	return tunnelDomain{name: name, protocol: protocolVayDNS, idLen: idLen, qtype: qtype}, nil
}

// parseVayDNSDomain parses a -vaydns.domain value: a domain, optionally
// followed by a colon and comma-separated per-domain settings that
// override idLen and recordType, the -vaydns.clientid-size and
// -vaydns.record-type defaults: "t.example.com",
// "t.example.com:clientid-size=4", "t.example.com:record-type=cname",
// "t.example.com:clientid-size=4,record-type=cname". A domain name holds
// no colon, so the first one ends it. Errors do not repeat s: the caller
// quotes it.
func parseVayDNSDomain(s string, idLen int, recordType string) (tunnelDomain, error) {
	name, opts, found := strings.Cut(s, ":")
	if found {
		if opts == "" {
			return tunnelDomain{}, errors.New("no settings after the colon: want clientid-size=N, record-type=TYPE or both, comma-separated")
		}
		var sawSize, sawType bool
		for _, kv := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch {
			case k == "clientid-size" && !sawSize:
				n, err := strconv.Atoi(v)
				if err != nil {
					return tunnelDomain{}, errors.New("clientid-size " + strconv.Quote(v) +
						": want " + strconv.Itoa(minVayDNSIDLen) + " to " + strconv.Itoa(maxVayDNSIDLen))
				}
				idLen, sawSize = n, true
			case k == "record-type" && !sawType:
				recordType, sawType = v, true
			case k == "clientid-size" || k == "record-type":
				return tunnelDomain{}, errors.New(k + " given twice")
			default:
				return tunnelDomain{}, errors.New("setting " + strconv.Quote(kv) +
					": want clientid-size=N or record-type=TYPE")
			}
		}
	}
	return newVayDNSDomain(name, idLen, recordType)
}

// minChars is the shortest prefix of d's queries, in base32 characters:
// the ClientID and one more byte, ⌈8(N+1)/5⌉ (SPEC section 3 rule 4).
func (d *tunnelDomain) minChars() int {
	return (8*(d.idLen+1) + base32Bits - 1) / base32Bits
}

// recordTypes are the record types VayDNS's -record-type accepts (SPEC
// section 2a), by their lower-case names, with their RFC 1035 TYPE values.
var recordTypes = [...]struct {
	name  string
	qtype uint16
}{
	{"txt", dnsTypeTXT}, {"null", dnsTypeNULL}, {"cname", dnsTypeCNAME}, {"a", dnsTypeA}, {"aaaa", dnsTypeAAAA},
	{"mx", dnsTypeMX}, {"ns", dnsTypeNS}, {"srv", dnsTypeSRV}, {"caa", dnsTypeCAA},
}

// parseRecordType maps a record type name, either case, to its TYPE value.
func parseRecordType(s string) (uint16, error) {
	for _, t := range recordTypes {
		if len(s) == len(t.name) && equalFoldASCII(s, t.name) {
			return t.qtype, nil
		}
	}
	return 0, errors.New("record type " + strconv.Quote(s) + ": want one of " + recordTypeList())
}

// recordTypeList lists the names of recordTypes, comma-separated.
func recordTypeList() string {
	list := ""
	for i, t := range recordTypes {
		if i > 0 {
			list += ", "
		}
		list += t.name
	}
	return list
}

// recordTypeName is the lower-case name of a TYPE value of recordTypes.
func recordTypeName(qtype uint16) string {
	for _, t := range recordTypes {
		if t.qtype == qtype {
			return t.name
		}
	}
	return strconv.Itoa(int(qtype))
}

// equalFoldASCII reports whether s equals the lower-case t, ignoring the
// case of ASCII letters in s.
func equalFoldASCII(s, t string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// indexDomain returns the index in ds of the domain named name
// (normalised), or -1.
func indexDomain(ds []tunnelDomain, name string) int {
	for i := range ds {
		if ds[i].name == name {
			return i
		}
	}
	return -1
}

// domainNames returns the names of ds, in order.
func domainNames(ds []tunnelDomain) []string {
	names := make([]string, len(ds))
	for i := range ds {
		names[i] = ds[i].name
	}
	return names
}

// Query types (RFC 1035 section 3.2.2; AAAA RFC 3596, SRV RFC 2782, CAA
// RFC 8659): dnstt's TXT and the others VayDNS's -record-type offers.
const (
	dnsTypeA     = 1
	dnsTypeNS    = 2
	dnsTypeCNAME = 5
	dnsTypeNULL  = 10
	dnsTypeMX    = 15
	dnsTypeTXT   = 16
	dnsTypeAAAA  = 28
	dnsTypeSRV   = 33
	dnsTypeCAA   = 257
)

// swarOnes and friends are the byte lanes of a uint64 for SWAR checks.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080 // bit 7 of every lane
	swarLow7 = 0x7f7f7f7f7f7f7f7f
)

// domainTable holds the configured tunnel domains, lower case, and matches
// question names against them.
type domainTable struct {
	domains []tunnelDomain // as configured; index = dnsttPacket.domain
	entries []domainEntry  // longest wire form first, so the longest match wins
	// types has bit t set for every query type t < maxTableType that a
	// configured domain uses: a question of another type fails SPEC
	// section 3 rule 2 for every domain, before the domain match.
	types [maxTableType / 64]uint64
	// firstType is the first domain's type, which passes that check
	// without the bitmap: on most hosts every domain has it (TXT).
	firstType uint16
}

// maxTableType bounds the query types of domainTable.types: every type of
// recordTypes is below it (TestRecordTypesInTable).
const maxTableType = 320

// domainEntry is one tunnel domain prepared for the suffix match.
type domainEntry struct {
	wire   []byte // wire form, lower case, final zero label included
	labels int    // labels in wire, the zero label excluded
	index  uint16 // into domainTable.domains
	qtype  uint16 // the domain's query type
	// minChars is the shortest valid prefix in base32 characters;
	// idLen the ClientID's bytes, idChars the characters holding them.
	minChars, idLen, idChars int
	// head and tail are wire's first and last eight bytes (overlapping
	// when shorter than 16) when it is 8 to 16 bytes long, as most are:
	// then matchAt compares two words without a call.
	head, tail uint64
}

// matchAt reports whether the name bytes q[s:] start with e's wire form,
// ignoring ASCII case, as equalFoldWire does; 0 ≤ s ≤ len(q)-len(e.wire).
func (e *domainEntry) matchAt(q []byte, s int) bool {
	n := len(e.wire)
	if e.head == 0 {
		return equalFoldWire(q[s:s+n], e.wire)
	}
	return lower8(binary.LittleEndian.Uint64(q[s:s+8])) == e.head &&
		lower8(binary.LittleEndian.Uint64(q[s+n-8:s+n])) == e.tail
}

// newDomainTable builds a table from domains with normalised names (see
// parseDomain) and valid settings (dnsttDomain, newVayDNSDomain). An entry
// with an empty name holds the place of a domain id not in force (a domain
// a reload removed): it matches nothing.
func newDomainTable(domains []tunnelDomain) domainTable {
	t := domainTable{domains: domains, entries: make([]domainEntry, 0, len(domains))}
	for i := range domains {
		d := &domains[i]
		n := d.name
		if n == "" {
			continue
		}
		e := domainEntry{
			index:    uint16(i),
			qtype:    d.qtype,
			minChars: d.minChars(),
			idLen:    d.idLen,
			idChars:  (8*d.idLen + base32Bits - 1) / base32Bits,
		}
		if d.qtype < maxTableType {
			t.types[d.qtype/64] |= 1 << (d.qtype % 64)
		}
		if len(t.entries) == 0 {
			t.firstType = d.qtype
		}
		start := 0
		for j := 0; j <= len(n); j++ {
			if j == len(n) || n[j] == '.' {
				e.wire = append(e.wire, byte(j-start))
				e.wire = append(e.wire, n[start:j]...)
				e.labels++
				start = j + 1
			}
		}
		e.wire = append(e.wire, 0)
		if n := len(e.wire); n >= 8 && n <= 16 { // head is never 0: wire[0] is a length
			e.head, e.tail = binary.LittleEndian.Uint64(e.wire), binary.LittleEndian.Uint64(e.wire[n-8:])
		}
		t.entries = append(t.entries, e)
	}
	// A domain that is a suffix of another has a shorter wire form, so
	// trying longer ones first makes the longest match win. Among domains
	// that are not suffixes of each other at most one can match.
	slices.SortStableFunc(t.entries, func(a, b domainEntry) int { return len(b.wire) - len(a.wire) })
	return t
}

// parseDomain validates a -dnstt.domain value and returns it normalised:
// lower case, without a trailing dot. Labels are 1 to 63 letters, digits,
// hyphens or underscores; the whole name is at most 253 characters.
func parseDomain(s string) (string, error) {
	n := s
	if len(n) > 0 && n[len(n)-1] == '.' {
		n = n[:len(n)-1]
	}
	if n == "" {
		return "", domainError(s, "empty name")
	}
	if len(n) > maxDomainLen {
		return "", domainError(s, "longer than "+strconv.Itoa(maxDomainLen)+" characters")
	}
	b := []byte(n)
	label := 0
	for i, c := range b {
		switch {
		case c == '.':
			if label == 0 {
				return "", domainError(s, "empty label")
			}
			label = 0
			continue
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c >= utf8.RuneSelf:
			return "", domainError(s, nonASCII(s, n[i:]))
		default:
			return "", domainError(s, "invalid character "+strconv.QuoteRune(rune(c)))
		}
		label++
		if label > dnsMaxLabelLen {
			return "", domainError(s, "label longer than "+strconv.Itoa(dnsMaxLabelLen)+" characters")
		}
	}
	if label == 0 {
		return "", domainError(s, "empty label")
	}
	return string(b), nil
}

// domainError is the error of parseDomain for the value s.
func domainError(s, why string) error {
	return errors.New("domain " + strconv.Quote(s) + ": " + why)
}

// nonASCII says what is wrong with the domain s at rest, which starts
// with a byte ≥ 0x80: the character (or, if rest is not UTF-8, the byte)
// and, for an internationalised name, the punycode form to give instead.
func nonASCII(s, rest string) string {
	r, size := utf8.DecodeRuneInString(rest)
	if r == utf8.RuneError && size <= 1 {
		return "invalid byte 0x" + strconv.FormatUint(uint64(rest[0]), 16) + " (not UTF-8)"
	}
	why := "invalid character " + strconv.QuoteRune(r) + " (" + unicodeCodePoint(r) + "): "
	if ace, ok := aceName(s); ok {
		return why + "give an internationalised domain in its punycode form, " + strconv.Quote(ace)
	}
	return why + "give an internationalised domain in its punycode (xn--) form"
}

// unicodeCodePoint writes r as U+XXXX (at least four hex digits).
func unicodeCodePoint(r rune) string {
	h := strings.ToUpper(strconv.FormatInt(int64(r), 16))
	for len(h) < 4 {
		h = "0" + h
	}
	return "U+" + h
}

// parseMessage classifies msg, a DNS message of at least dnsHeaderLen bytes
// whose ports and QR bit have been checked, by SPEC section 3 rules 2-4.
// On ignoreNone it has set p.domain, p.id, p.dnsID and p.qname (aliasing
// msg); the other fields are the caller's.
func (t *domainTable) parseMessage(msg []byte, p *dnsttPacket) ignoreReason {
	if msg[2]&dnsOpcodeMask != 0 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return ignoreNotQuery
	}

	// Walk the question name: the suffix match needs its label
	// boundaries, the prefix check whether they are regular.
	var w nameWalk
	q := msg[dnsHeaderLen:]
	if !walkName(q, &w, t) {
		return ignoreMalformed
	}
	nameLen := w.nameLen
	name := q[:nameLen]
	if len(q) < nameLen+dnsQTailLen {
		return ignoreMalformed
	}
	// Rule 2 before rule 3 (SPEC section 3): a type that no configured
	// domain uses fails rule 2 whatever the name, so it is wrong_type
	// before the domain match, as for dnstt alone (TXT). A type some
	// domain uses is checked against the matched domain's own type below.
	qtype := binary.BigEndian.Uint16(q[nameLen+dnsQTypeOff:])
	if qtype != t.firstType && (qtype >= maxTableType || t.types[qtype/64]>>(qtype%64)&1 == 0) ||
		binary.BigEndian.Uint16(q[nameLen+dnsQClassOff:]) != dnsClassIN {
		return ignoreWrongType
	}

	// Suffix match: a domain can only be the name's last len(wire) bytes,
	// starting at a label boundary after at least one prefix label.
	var e *domainEntry
	for i := range t.entries {
		c := &t.entries[i]
		if i+1 == w.domain { // compared by walkName; the longer ones are not
			e = c
			break
		}
		if s := nameLen - len(c.wire); s > 0 && w.labelAt(s) && c.matchAt(name, s) {
			e = c
			break
		}
	}
	if e == nil {
		return ignoreNotTunnel
	}
	if qtype != e.qtype { // another domain's type
		return ignoreWrongType
	}

	// The prefix labels, concatenated, must be at least e.minChars base32
	// characters.
	prefixEnd := nameLen - len(e.wire)
	if prefixEnd-(w.labels-e.labels) < e.minChars {
		return ignoreBadPrefix
	}
	var valid bool
	if w.unaligned >= prefixEnd {
		valid = validRegularPrefix(q, prefixEnd)
	} else {
		valid = validIrregularPrefix(q, prefixEnd)
	}
	if !valid {
		return ignoreBadPrefix
	}

	p.domain = e.index
	if e.idLen == clientIDLen {
		p.id = decodeClientID(name[:prefixEnd])
	} else {
		p.id = decodeShortClientID(name[:prefixEnd], e.idLen, e.idChars)
	}
	p.dnsID = binary.BigEndian.Uint16(msg[0:2])
	p.qname = name
	return ignoreNone
}

// regularStride is the distance between label starts in a regular prefix:
// labels of dnsMaxLabelLen characters, as the reference client splits its
// base32 (SPEC section 2), start every 64 bytes, so every length byte is
// the first byte of an aligned 8-byte word.
const regularStride = 1 + dnsMaxLabelLen

// nameWalk is what walkName learns about a question name. Offsets are
// from the name's first byte.
type nameWalk struct {
	// starts has bit i set where a label's length byte is at offset i:
	// a bitmap, not a byte per offset, so that it is cheap to zero.
	starts    [(dnsMaxNameLen + 63) / 64]uint64
	nameLen   int // wire length, final zero label included
	labels    int // labels before the zero label
	unaligned int // offset of the first label not starting at a multiple of regularStride; dnsMaxNameLen if none
	domain    int // 1 + the index in domainTable.entries of the domain walkName found ending the name, or 0
	regular   int // leading labels of regularStride bytes, at offsets k × regularStride; not in starts
}

// labelAt reports whether a label starts at offset off (< dnsMaxNameLen).
func (w *nameWalk) labelAt(off int) bool {
	return off%regularStride == 0 && off/regularStride < w.regular || w.starts[uint8(off)>>6]>>(off&63)&1 != 0
}

// walkName walks the question name at the start of q and fills w; t's
// domains let it stop early (see below). It reports false when the name
// is truncated, longer than dnsMaxNameLen, or holds a compression pointer
// or a reserved label type.
//
// It stays out of line; BenchmarkDecodeQueryIPv4 says why.
//
//go:noinline
func walkName(q []byte, w *nameWalk, t *domainTable) bool {
	if len(q) > dnsMaxNameLen {
		q = q[:dnsMaxNameLen]
	}
	labels, unaligned := 0, dnsMaxNameLen
	// Regular labels first (see regularStride): their length bytes are at
	// offsets known in advance, so their loads need not wait for each
	// other as the general walk's do (the offset of each comes from the
	// one before): on the reference client's names this shortens the
	// chain of dependent loads from every label to the last few.
	off := 0
	for off < len(q) && q[off] == dnsMaxLabelLen {
		off += regularStride
	}
	labels = off / regularStride
	w.regular = labels // their starts are implied, not set in starts
	// The label after them is usually the prefix's last. If a tunnel
	// domain follows it, that domain is the rest of the name (its wire
	// form is a whole name, zero label included), so its labels need
	// not be walked one by one: one comparison of independent loads
	// replaces their chain. parseMessage then knows the match; label
	// starts after off are left out of starts, as no longer domain can
	// begin there. Only names with a regular label try it: short names
	// (polls, and the other traffic of a DNS server) have few labels to
	// walk, and the try cost them about 3 ns (BenchmarkDecodeOther).
	if off > 0 && off < len(q) {
		if l := int(q[off]); l != 0 && l <= dnsMaxLabelLen {
			s := off + 1 + l
			for j := range t.entries {
				e := &t.entries[j]
				// The first length byte rejects most other names
				// without a call.
				if s+len(e.wire) <= len(q) && q[s] == e.wire[0] && e.matchAt(q, s) {
					w.starts[uint8(off)>>6] |= 1 << (off & 63) // off is a multiple of regularStride
					w.nameLen, w.labels, w.unaligned, w.domain = s+len(e.wire), labels+1+e.labels, unaligned, j+1
					return true
				}
			}
		}
	}
	for off < len(q) {
		l := int(q[off])
		if l == 0 {
			w.nameLen, w.labels, w.unaligned = off+1, labels, unaligned
			return true
		}
		if l > dnsMaxLabelLen {
			return false // compression pointer or reserved label type
		}
		w.starts[uint8(off)>>6] |= 1 << (off & 63)
		if off%regularStride != 0 {
			unaligned = min(unaligned, off)
		}
		labels++
		off += 1 + l
	}
	return false // truncated, or longer than 255 bytes
}

// validRegularPrefix reports whether the prefix labels, q[:end] in wire
// form, hold only base32 characters, when every prefix label starts at a
// multiple of regularStride (nameWalk.unaligned ≥ end): the reference
// client's names, all but the last label 63 characters long.
//
// Then the length bytes are known without marks: lane 0 of every eighth
// word. They are patched to a base32 character with two immediate
// operations per 64 bytes, and the check runs eight bytes at a time
// across label boundaries with no per-word mark load, and without a
// branch or call per word (a prefix that fails is rare). The lanes of the
// last word from end on (the domain, at least 3 bytes, and the type and
// class follow) are patched too. The constants are copied into locals
// (BenchmarkDecodeQueryIPv4 says why).
func validRegularPrefix(q []byte, end int) bool {
	n := (end + 7) &^ 7
	if len(q) < n || n < 16 || end > dnsMaxNameLen {
		return validIrregularPrefix(q, end)
	}
	fold, geA, gtZ, ge2, gt7 := swarBase32.fold, swarBase32.geA, swarBase32.gtZ, swarBase32.ge2, swarBase32.gt7
	// good ANDs the words' base32 lanes, high ORs their bytes: a word
	// with a byte ≥ 0x80 is rejected by high, whatever good says.
	good, high := ^uint64(0), uint64(0)
	last := n - 8 // the last word, which may hold bytes from end on
	q = q[:n]
	i := 0
	// acc folds one word in; words go in one at a time.
	acc := func(x uint64) {
		good &= base32Lanes(x, fold, geA, gtZ, ge2, gt7)
		high |= x
	}
	for ; i+regularStride <= last; i += regularStride {
		b := q[i : i+regularStride : i+regularStride]
		acc(binary.LittleEndian.Uint64(b[0:8])&^0xff | labelPatch) // the length byte
		acc(binary.LittleEndian.Uint64(b[8:16]))
		acc(binary.LittleEndian.Uint64(b[16:24]))
		acc(binary.LittleEndian.Uint64(b[24:32]))
		acc(binary.LittleEndian.Uint64(b[32:40]))
		acc(binary.LittleEndian.Uint64(b[40:48]))
		acc(binary.LittleEndian.Uint64(b[48:56]))
		acc(binary.LittleEndian.Uint64(b[56:64]))
	}
	// The last label: i < end is a label start. Its first word has the
	// length byte, its last word (maybe the same) the bytes from end on;
	// the words between them are unrolled through a jump table, not a
	// loop: a loop's counter and bounds checks doubled the cost per word.
	after := ^uint64(0) << (8 * (end - last)) // 0 when end = n
	x := binary.LittleEndian.Uint64(q[i:i+8])&^0xff | labelPatch
	if i == last {
		x = x&^after | swarOnes*labelPatch&after
	} else {
		acc(binary.LittleEndian.Uint64(q[last:n])&^after | swarOnes*labelPatch&after)
	}
	acc(x)
	word := func(j int) { // the word j words before the last
		acc(binary.LittleEndian.Uint64(q[last-8*j : last-8*j+8]))
	}
	switch (last - i) / 8 { // words from the first to the last
	case 7:
		word(6)
		fallthrough
	case 6:
		word(5)
		fallthrough
	case 5:
		word(4)
		fallthrough
	case 4:
		word(3)
		fallthrough
	case 3:
		word(2)
		fallthrough
	case 2:
		word(1)
	}
	return (^good|high)&swarHigh == 0
}

// validIrregularPrefix is validRegularPrefix for any prefix: it marks the
// length bytes of q[:end] and checks with validPrefix.
func validIrregularPrefix(q []byte, end int) bool {
	var marks labelMarks
	for off := 0; off < end && off < dnsMaxNameLen; off += 1 + int(q[off]) {
		marks[off] = q[off] ^ labelPatch
	}
	return validPrefix(q, end, &marks)
}

// labelMarks has, at each offset of a question name (at most 255 bytes)
// where a label's length byte is, that byte XOR labelPatch, and 0
// elsewhere. It is laid out like the name so that validPrefix can XOR
// eight marks at once into a word of the name, turning its length bytes
// into base32 characters; it is longer by a word so that marks can follow
// the name. A mark is never 0: length bytes are at most 63.
type labelMarks [dnsMaxNameLen + 1 + 8]byte

// labelPatch is the base32 character that validPrefix sees in place of a
// length byte or a byte after the prefix.
const labelPatch = 'a'

// validPrefix reports whether the prefix labels, q[:end] in wire form,
// hold only base32 characters, whatever their lengths (the path of names
// not split like the reference client's). marks marks their length bytes;
// validPrefix overwrites the marks from end on.
//
// The prefix is checked eight bytes at a time, four words per step,
// across label boundaries, with the length bytes patched by XORing the
// marks in, and without a branch or call per word (a prefix that fails is
// rare; BenchmarkDecodeQueryIPv4 says why). The last word may run past end into the
// domain and the question's type and class; those lanes are patched too,
// by marks written there.
func validPrefix(q []byte, end int, marks *labelMarks) bool {
	n := (end + 7) &^ 7
	if len(q) < n || end > dnsMaxNameLen || n < 8 {
		return validPrefixPadded(q, end, marks)
	}
	// Patch the lanes of the last word from end on: byte ^ byte ^ 'a'.
	after := ^uint64(0) << (8 * (end - (n - 8))) // 0 when end = n
	last := binary.LittleEndian.Uint64(marks[n-8:])&^after |
		(binary.LittleEndian.Uint64(q[n-8:])^swarOnes*labelPatch)&after
	binary.LittleEndian.PutUint64(marks[n-8:], last)
	fold, geA, gtZ, ge2, gt7 := swarBase32.fold, swarBase32.geA, swarBase32.gtZ, swarBase32.ge2, swarBase32.gt7
	// good ANDs the words' base32 lanes, high ORs their bytes: a word
	// with a byte ≥ 0x80 is rejected by high, whatever good says.
	good, high := ^uint64(0), uint64(0)
	acc := func(x uint64) {
		good &= base32Lanes(x, fold, geA, gtZ, ge2, gt7)
		high |= x
	}
	q, m := q[:n], marks[:n]
	i := 32
	for ; i <= n; i += 32 {
		w, mw := q[i-32:i], m[i-32:i]
		acc(binary.LittleEndian.Uint64(w[0:8]) ^ binary.LittleEndian.Uint64(mw[0:8]))
		acc(binary.LittleEndian.Uint64(w[8:16]) ^ binary.LittleEndian.Uint64(mw[8:16]))
		acc(binary.LittleEndian.Uint64(w[16:24]) ^ binary.LittleEndian.Uint64(mw[16:24]))
		acc(binary.LittleEndian.Uint64(w[24:32]) ^ binary.LittleEndian.Uint64(mw[24:32]))
	}
	for i -= 24; i <= n; i += 8 {
		acc(binary.LittleEndian.Uint64(q[i-8:i]) ^ binary.LittleEndian.Uint64(m[i-8:i]))
	}
	return (^good|high)&swarHigh == 0
}

// validPrefixPadded is validPrefix for a q too short to read whole words
// past end. parseMessage never needs it (a domain's wire form is at least
// 3 bytes and QTYPE/QCLASS follow), but validPrefix stays safe without it.
func validPrefixPadded(q []byte, end int, marks *labelMarks) bool {
	var b [dnsMaxNameLen + 8]byte
	if end > dnsMaxNameLen || end > len(q) {
		return false
	}
	copy(b[:], q[:end])
	return validPrefix(b[:], end, marks)
}

// equalFoldWire reports whether the name suffix a equals b, a lower-case
// wire-form domain of the same length, ignoring ASCII case. Length bytes
// (at most 63) are unaffected by the fold, so equal bytes mean equal labels.
func equalFoldWire(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) < 8 {
		for i, c := range a {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != b[i] {
				return false
			}
		}
		return true
	}
	// Eight bytes at a time; the last word overlaps the one before it.
	for i := 0; ; i += 8 {
		if i > len(a)-8 {
			i = len(a) - 8
		}
		if lower8(binary.LittleEndian.Uint64(a[i:])) != binary.LittleEndian.Uint64(b[i:]) {
			return false
		}
		if i == len(a)-8 {
			return true
		}
	}
}

// lower8 lower-cases the ASCII letters among the eight bytes of x.
func lower8(x uint64) uint64 {
	x7 := x & swarLow7
	ge := x7 + swarOnes*(0x80-'A') // lane bit 7 set where byte ≥ 'A'
	gt := x7 + swarOnes*(0x7f-'Z') // lane bit 7 set where byte > 'Z'
	upper := ge &^ gt &^ x & swarHigh
	return x | upper>>2 // 0x80 >> 2 = 0x20, the case bit
}

// swarConsts are the constants of base32Lanes, computed once.
type swarConsts struct{ fold, geA, gtZ, ge2, gt7 uint64 }

// swarBase32 holds base32Lanes' constants; it is never written. The
// prefix checks copy them into locals before their loops.
var swarBase32 = swarConsts{
	fold: swarOnes * 0x20,
	geA:  swarOnes * (0x80 - 'a'),
	gtZ:  swarOnes * (0x7f - 'z'),
	ge2:  swarOnes * (0x80 - '2'),
	gt7:  swarOnes * (0x7f - '7'),
}

// base32Lanes returns x with bit 7 set in each byte lane that is in the
// RFC 4648 base32 alphabet, either case (A-Z, a-z, 2-7), given swarBase32's
// constants, provided the word has no byte with bit 7 set: the caller
// checks that apart, and the lanes after such a byte are unspecified. Only
// bit 7 of each lane means anything.
//
// The check is SWAR: for a lane below 0x80, adding a constant of at most
// 0x7f neither carries into the next lane, and the result's bit 7 tells on
// which side of a bound the lane is. "At or above the low bound but not
// above the high one" is an XOR, because above the high bound implies at
// or above the low one. Eight bytes cost 8 operations, where a
// byte-at-a-time loop costs about 1 ns per character, too slow for
// 230-character names. base32Bad in the tests is the plain form it is
// checked against.
func base32Lanes(x, fold, geA, gtZ, ge2, gt7 uint64) uint64 {
	l := x | fold // letters fold onto 'a'..'z'; nothing else does
	return ((l + geA) ^ (l + gtZ)) | ((x + ge2) ^ (x + gt7))
}

// base32Value maps a base32 character, either case, to its 5-bit value.
// Bytes outside the alphabet map to 0; callers check the prefix first.
var base32Value = func() (t [256]byte) {
	for i := range byte(26) {
		t['A'+i], t['a'+i] = i, i
	}
	for i := range byte(6) {
		t['2'+i] = 26 + i
	}
	return t
}()

// decodeClientID decodes the ClientID from the first clientIDChars base32
// characters of name's labels, which may span labels. name holds at least
// clientIDChars characters of validated base32 in wire form.
func decodeClientID(name []byte) clientID {
	var v uint64 // 60 bits of 12 characters, then the 13th's high 4
	if int(name[0]) >= clientIDChars && len(name) > clientIDChars {
		// The common case: the first label holds all 13 characters.
		// Independent shifts joined in a tree, not a 13-step chain. (Two
		// words decoded in 5-bit lanes measured no faster: their packing
		// is a chain of its own.)
		c := name[1 : clientIDChars+1]
		t := &base32Value
		v = (uint64(t[c[0]])<<59 | uint64(t[c[1]])<<54 | uint64(t[c[2]])<<49 | uint64(t[c[3]])<<44) |
			(uint64(t[c[4]])<<39 | uint64(t[c[5]])<<34 | uint64(t[c[6]])<<29 | uint64(t[c[7]])<<24) |
			(uint64(t[c[8]])<<19 | uint64(t[c[9]])<<14 | uint64(t[c[10]])<<9 | uint64(t[c[11]])<<4) |
			uint64(t[c[12]]>>1)
	} else {
		k := 0
		for off := 0; k < clientIDChars; {
			l := int(name[off])
			for _, ch := range name[off+1 : off+1+l] {
				if k == clientIDChars-1 {
					v = v<<4 | uint64(base32Value[ch]>>1)
					k++
					break
				}
				v = v<<5 | uint64(base32Value[ch])
				k++
			}
			off += 1 + l
		}
	}
	var id clientID
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// decodeShortClientID decodes a ClientID of idLen < clientIDLen bytes
// (VayDNS, SPEC section 2a) from the first idChars = ⌈8 idLen / 5⌉ base32
// characters of name's labels, which may span labels; the bytes of the
// result after idLen are zero. name holds at least idChars characters of
// validated base32 in wire form. idChars ≤ 12, so the characters fit in
// 60 bits.
func decodeShortClientID(name []byte, idLen, idChars int) clientID {
	var v uint64
	if int(name[0]) >= idChars {
		// The common case: the first label holds them all (a VayDNS
		// poll with a 2-byte ClientID is one 10-character label).
		for _, c := range name[1 : 1+idChars] {
			v = v<<base32Bits | uint64(base32Value[c])
		}
	} else {
		k := 0
		for off := 0; k < idChars; {
			l := int(name[off])
			for _, c := range name[off+1 : off+1+l] {
				v = v<<base32Bits | uint64(base32Value[c])
				if k++; k == idChars {
					break
				}
			}
			off += 1 + l
		}
	}
	// Drop the bits after the ClientID, then left-align it.
	v >>= uint(base32Bits*idChars - 8*idLen)
	var id clientID
	binary.BigEndian.PutUint64(id[:], v<<(64-8*uint(idLen)))
	return id
}

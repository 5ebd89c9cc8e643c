package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
)

// The capture-file reader of -capture.file: classic pcap
// (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html) and
// pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html).
// It reads the file in large chunks into one buffer and hands out records
// that alias it, so the per-record path neither copies nor allocates.

// Classic pcap framing.
const (
	pcapMagicMicro       = 0xa1b2c3d4 // timestamps in seconds and microseconds
	pcapMagicNano        = 0xa1b23c4d // timestamps in seconds and nanoseconds
	pcapFileHeaderLen    = 24         // magic, version (2×2), thiszone, sigfigs, snaplen, linktype
	pcapLinkTypeOff      = 20         // offset of the link type in the file header
	pcapRecordHeaderLen  = 16         // ts_sec, ts_frac, caplen, origlen
	pcapLinkTypeMask     = 0xffff     // the upper bits of the link type field hold FCS information
	pcapMaxCaptureLen    = 262144     // libpcap's MAXIMUM_SNAPLEN; a longer record is corrupt
	pcapMicroNanoseconds = 1000       // ns per timestamp fraction unit for pcapMagicMicro
)

// pcapng framing.
const (
	pcapngSHBType        = 0x0a0d0d0a // section header block
	pcapngIDBType        = 0x00000001 // interface description block
	pcapngPBType         = 0x00000002 // packet block (obsolete, still written by old tools)
	pcapngSPBType        = 0x00000003 // simple packet block
	pcapngEPBType        = 0x00000006 // enhanced packet block
	pcapngByteOrderMagic = 0x1a2b3c4d
	pcapngVersionMajor   = 1

	pcapU16Len            = 2
	pcapU32Len            = 4
	pcapngBlockHeaderLen  = 2 * pcapU32Len // block type, block total length
	pcapngBlockTrailerLen = pcapU32Len     // block total length, again
	pcapngBlockMinLen     = pcapngBlockHeaderLen + pcapngBlockTrailerLen
	pcapngSHBMinBodyLen   = pcapU32Len + 2*pcapU16Len + 8 // byte-order magic, version, section length
	pcapngIDBMinBodyLen   = 2*pcapU16Len + pcapU32Len     // link type, reserved, snaplen
	pcapngEPBMinBodyLen   = 5 * pcapU32Len                // interface, ts high, ts low, caplen, origlen
	pcapngPBMinBodyLen    = 2*pcapU16Len + 4*pcapU32Len   // interface, drops, ts high, ts low, caplen, origlen
	pcapngSPBMinBodyLen   = pcapU32Len                    // origlen
	pcapngOptionHeaderLen = 2 * pcapU16Len                // option code, option length
	pcapngMaxBlockLen     = 16 << 20                      // Wireshark's limit; a longer block is corrupt
	pcapngMaxInterfaces   = 1 << 16                       // interface ids per section, so section<<16|id is unique
	pcapngOptEndOfOpt     = 0
	pcapngOptTSResol      = 9  // if_tsresol: 1 byte
	pcapngOptTSOffset     = 14 // if_tsoffset: 8 bytes, seconds
	pcapngDefaultTSResol  = 6  // microseconds when if_tsresol is absent
)

// The reader's buffers. A helper goroutine reads the source into chunks
// ahead of the parser, so that the read system calls (and their copy out of
// the page cache, a quarter of file mode's time when done inline) run on
// another core. Each chunk has headroom in front: the unparsed end of the
// previous chunk (a record cut by the chunk boundary) is copied there, so a
// record is always contiguous without copying the chunk itself.
const (
	pcapReadChunk = 1 << 20                  // bytes asked of the source per read
	pcapHeadroom  = pcapMaxCaptureLen + 1024 // a whole classic record and most pcapng blocks
	pcapChunks    = 4                        // buffers: one parsed, the others read ahead
)

// errPcapStopped is returned by a source reader that was interrupted (a
// signal in file mode); the reader passes it through unwrapped.
var errPcapStopped = errors.New("stopped")

// pcapError is a capture-file error: the file, the byte offset of the
// header or block that is wrong, and what is wrong with it.
type pcapError struct {
	name string // the file as given to -capture.file
	off  int64  // byte offset in the file
	msg  string
	err  error // underlying read error, if any
}

// Error returns "-capture.file NAME: offset N: what is wrong".
func (e *pcapError) Error() string {
	s := "-capture.file " + strconv.Quote(e.name) + ": offset " + strconv.FormatInt(e.off, 10) + ": " + e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the underlying read error, if any.
func (e *pcapError) Unwrap() error { return e.err }

// pcapRecord is one captured packet. data aliases the reader's buffer and
// is valid until the next call of next.
type pcapRecord struct {
	lt    linkType
	iface uint64 // pcapng: section<<16 | interface id; classic pcap: 0
	ts    int64  // Unix ns
	off   int64  // byte offset of the record (or block) in the file
	data  []byte
}

// pcapngInterface is an interface of the current pcapng section: its link
// type, snap length and how to turn its timestamps into Unix ns.
type pcapngInterface struct {
	lt      linkType
	snaplen uint32
	mul     uint64 // ns = ts*mul, when shift and div are 0
	div     uint64 // ns = ts/div, when non-zero (resolution finer than 1 ns)
	shift   uint8  // ns = ts*1e9 >> shift, when non-zero (binary resolution)
	offset  int64  // if_tsoffset, ns
}

// pcapChunk is one read of the source: data in mem[pcapHeadroom:][:n].
type pcapChunk struct {
	mem []byte
	n   int
	err error // the read's error (io.EOF at the end); no further chunk follows
}

// pcapReader reads records from a classic pcap or a pcapng stream.
type pcapReader struct {
	name   string
	full   chan pcapChunk // chunks read ahead, in order
	free   chan []byte    // buffers the parser is done with
	stop   <-chan struct{}
	quit   chan struct{} // closed by close: the helper stops
	pooled bool          // buf is a chunk buffer, to be handed back to free

	buf  []byte // unparsed bytes are buf[pos:end]
	pos  int
	end  int
	off  int64 // file offset of buf[pos]
	eof  bool  // the source returned io.EOF
	rerr error // the source returned another error

	ng   bool // pcapng; otherwise classic pcap
	swap bool // the current section or file is not little-endian

	// classic pcap
	lt      linkType
	tsScale int64 // ns per fraction unit

	// pcapng
	section uint64            // sections started so far, minus one
	ifaces  []pcapngInterface // of the current section
	lastTS  int64             // timestamp of the previous packet, for simple packet blocks
}

// newPcapReader reads the file header of src (named name in errors) and
// returns a reader positioned at the first record. Once stop is closed (it
// may be nil), reading fails with errPcapStopped, even while the source
// blocks (a pipe). Call close when done.
func newPcapReader(name string, src io.Reader, stop <-chan struct{}) (*pcapReader, error) {
	r := &pcapReader{
		name: name,
		full: make(chan pcapChunk, pcapChunks),
		free: make(chan []byte, pcapChunks),
		stop: stop,
		quit: make(chan struct{}),
	}
	for range pcapChunks {
		r.free <- make([]byte, pcapHeadroom+pcapReadChunk)
	}
	go readChunks(src, r.free, r.full, r.quit)
	if err := r.fill(pcapU32Len); err != nil {
		r.close()
		if err == io.EOF {
			return nil, r.errorf(0, "empty file: not a pcap or pcapng file")
		}
		return nil, r.fillError(err, "file header")
	}
	m := binary.LittleEndian.Uint32(r.buf[r.pos:])
	switch {
	case m == pcapngSHBType:
		r.ng = true
		r.ifaces = make([]pcapngInterface, 0, 16)
		return r, nil // the section header is read as the first block
	case m == pcapMagicMicro || m == pcapMagicNano:
	case bits.ReverseBytes32(m) == pcapMagicMicro || bits.ReverseBytes32(m) == pcapMagicNano:
		r.swap = true
		m = bits.ReverseBytes32(m)
	default:
		r.close()
		return nil, r.errorf(0, "not a pcap or pcapng file (magic %08x)", m)
	}
	if err := r.fill(pcapFileHeaderLen); err != nil {
		r.close()
		return nil, r.fillError(err, "file header")
	}
	r.tsScale = 1
	if m == pcapMagicMicro {
		r.tsScale = pcapMicroNanoseconds
	}
	h := r.buf[r.pos:]
	r.lt = linkType(r.u32(h[pcapLinkTypeOff:]) & pcapLinkTypeMask)
	if !knownLinkType(r.lt) {
		r.close()
		return nil, r.errorf(pcapLinkTypeOff, "unsupported link type %d", r.lt)
	}
	r.advance(pcapFileHeaderLen)
	return r, nil
}

// multiInterface reports whether the capture can record more than one
// interface (pcapng, or Linux cooked v2 which records the ifindex), so that
// the duplicate check of SPEC section 3 applies.
func (r *pcapReader) multiInterface() bool {
	return r.ng || r.lt == linkLinuxSLL2
}

// next reads the next record into rec. It returns io.EOF at the end of a
// well-formed file, errPcapStopped when the source was interrupted, and a
// *pcapError otherwise.
func (r *pcapReader) next(rec *pcapRecord) error {
	if r.ng {
		return r.nextBlock(rec)
	}
	if r.end-r.pos < pcapRecordHeaderLen {
		if err := r.fill(pcapRecordHeaderLen); err != nil {
			return r.fillError(err, "record header")
		}
	}
	h := r.buf[r.pos : r.pos+pcapRecordHeaderLen]
	caplen := r.u32(h[8:])
	if caplen > pcapMaxCaptureLen {
		return r.errorf(r.off, "corrupt record: captured length %d is over %d", caplen, pcapMaxCaptureLen)
	}
	n := pcapRecordHeaderLen + int(caplen)
	if r.end-r.pos < n {
		if err := r.fill(n); err != nil {
			return r.fillError(err, "record")
		}
		h = r.buf[r.pos : r.pos+pcapRecordHeaderLen]
	}
	rec.lt = r.lt
	rec.iface = 0
	rec.ts = int64(r.u32(h))*1e9 + int64(r.u32(h[4:]))*r.tsScale
	rec.off = r.off
	rec.data = r.buf[r.pos+pcapRecordHeaderLen : r.pos+n]
	r.advance(n)
	return nil
}

// nextBlock reads pcapng blocks until a packet block, which it puts in rec.
func (r *pcapReader) nextBlock(rec *pcapRecord) error {
	for {
		if r.end-r.pos < pcapngBlockHeaderLen {
			if err := r.fill(pcapngBlockHeaderLen); err != nil {
				return r.fillError(err, "block header")
			}
		}
		h := r.buf[r.pos:r.end]
		btype := r.u32(h)
		if btype == pcapngSHBType {
			// The byte order of a section is given by the magic after
			// the block length, so it is decided before the length is read.
			if err := r.fill(pcapngBlockHeaderLen + pcapU32Len); err != nil {
				return r.fillError(err, "section header block")
			}
			h = r.buf[r.pos:r.end]
			switch binary.LittleEndian.Uint32(h[pcapngBlockHeaderLen:]) {
			case pcapngByteOrderMagic:
				r.swap = false
			case bits.ReverseBytes32(pcapngByteOrderMagic):
				r.swap = true
			default:
				return r.errorf(r.off+pcapngBlockHeaderLen, "corrupt section header block: bad byte-order magic")
			}
		}
		blen := r.u32(h[pcapU32Len:])
		if blen < pcapngBlockMinLen || blen%pcapU32Len != 0 || blen > pcapngMaxBlockLen {
			return r.errorf(r.off, "corrupt block: total length %d", blen)
		}
		n := int(blen)
		if r.end-r.pos < n {
			if err := r.fill(n); err != nil {
				return r.fillError(err, "block")
			}
		}
		b := r.buf[r.pos : r.pos+n]
		if r.u32(b[n-pcapngBlockTrailerLen:]) != blen {
			return r.errorf(r.off, "corrupt block: trailing length %d does not match %d", r.u32(b[n-pcapngBlockTrailerLen:]), blen)
		}
		body := b[pcapngBlockHeaderLen : n-pcapngBlockTrailerLen]
		var err error
		switch btype {
		case pcapngEPBType:
			err = r.packetBlock(rec, body, false)
		case pcapngPBType:
			err = r.packetBlock(rec, body, true)
		case pcapngSPBType:
			err = r.simplePacketBlock(rec, body)
		case pcapngIDBType:
			err = r.interfaceBlock(body)
		case pcapngSHBType:
			err = r.sectionBlock(body)
		}
		if err != nil {
			return err
		}
		isPacket := btype == pcapngEPBType || btype == pcapngPBType || btype == pcapngSPBType
		r.advance(n)
		if isPacket {
			return nil
		}
	}
}

// packetBlock decodes an enhanced packet block, or an obsolete packet block
// (16-bit interface id followed by a drop count).
func (r *pcapReader) packetBlock(rec *pcapRecord, body []byte, obsolete bool) error {
	var id uint32
	var p []byte
	if obsolete {
		if len(body) < pcapngPBMinBodyLen {
			return r.errorf(r.off, "corrupt packet block: %d-byte body", len(body))
		}
		id = uint32(r.u16(body))
		p = body[2*pcapU16Len:]
	} else {
		if len(body) < pcapngEPBMinBodyLen {
			return r.errorf(r.off, "corrupt enhanced packet block: %d-byte body", len(body))
		}
		id = r.u32(body)
		p = body[pcapU32Len:]
	}
	caplen := r.u32(p[2*pcapU32Len:])
	data := p[4*pcapU32Len:]
	if uint64(caplen) > uint64(len(data)) {
		return r.errorf(r.off, "corrupt packet block: captured length %d is over the block's %d", caplen, len(data))
	}
	if id >= uint32(len(r.ifaces)) {
		return r.errorf(r.off, "corrupt packet block: interface %d not described (section has %d)", id, len(r.ifaces))
	}
	ifc := &r.ifaces[id]
	ts := uint64(r.u32(p))<<32 | uint64(r.u32(p[pcapU32Len:]))
	rec.lt = ifc.lt
	rec.iface = r.section<<16 | uint64(id)
	rec.ts = ifc.nanoseconds(ts)
	rec.off = r.off
	rec.data = data[:caplen]
	r.lastTS = rec.ts
	return nil
}

// simplePacketBlock decodes a simple packet block: interface 0, no
// timestamp (it takes the previous packet's), the captured length is the
// original length cut to the snap length and the block.
func (r *pcapReader) simplePacketBlock(rec *pcapRecord, body []byte) error {
	if len(body) < pcapngSPBMinBodyLen {
		return r.errorf(r.off, "corrupt simple packet block: %d-byte body", len(body))
	}
	if len(r.ifaces) == 0 {
		return r.errorf(r.off, "corrupt simple packet block: no interface described")
	}
	ifc := &r.ifaces[0]
	data := body[pcapngSPBMinBodyLen:]
	caplen := uint64(r.u32(body))
	if ifc.snaplen != 0 && caplen > uint64(ifc.snaplen) {
		caplen = uint64(ifc.snaplen)
	}
	if caplen > uint64(len(data)) {
		caplen = uint64(len(data)) // the rest of the block is padding
	}
	rec.lt = ifc.lt
	rec.iface = r.section << 16
	rec.ts = r.lastTS
	rec.off = r.off
	rec.data = data[:caplen]
	return nil
}

// interfaceBlock decodes an interface description block.
func (r *pcapReader) interfaceBlock(body []byte) error {
	if len(body) < pcapngIDBMinBodyLen {
		return r.errorf(r.off, "corrupt interface description block: %d-byte body", len(body))
	}
	if len(r.ifaces) >= pcapngMaxInterfaces {
		return r.errorf(r.off, "corrupt interface description block: over %d interfaces in a section", pcapngMaxInterfaces)
	}
	ifc := pcapngInterface{lt: linkType(r.u16(body)), snaplen: r.u32(body[2*pcapU16Len:])}
	if !knownLinkType(ifc.lt) {
		return r.errorf(r.off, "interface %d: unsupported link type %d", len(r.ifaces), ifc.lt)
	}
	resol := byte(pcapngDefaultTSResol)
	opts := body[pcapngIDBMinBodyLen:]
	for len(opts) >= pcapngOptionHeaderLen {
		code, olen := r.u16(opts), int(r.u16(opts[pcapU16Len:]))
		if code == pcapngOptEndOfOpt {
			break
		}
		padded := (olen + pcapU32Len - 1) &^ (pcapU32Len - 1)
		if pcapngOptionHeaderLen+padded > len(opts) {
			return r.errorf(r.off, "corrupt interface description block: option %d overruns the block", code)
		}
		v := opts[pcapngOptionHeaderLen : pcapngOptionHeaderLen+olen]
		switch {
		case code == pcapngOptTSResol && olen == 1:
			resol = v[0]
		case code == pcapngOptTSOffset && olen == 8:
			sec := binary.LittleEndian.Uint64(v)
			if r.swap {
				sec = bits.ReverseBytes64(sec)
			}
			ifc.offset = int64(sec) * 1e9
		}
		opts = opts[pcapngOptionHeaderLen+padded:]
	}
	if !ifc.setResolution(resol) {
		return r.errorf(r.off, "interface %d: unsupported timestamp resolution if_tsresol=%#02x", len(r.ifaces), resol)
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

// sectionBlock starts a new section: interface ids begin again at 0.
func (r *pcapReader) sectionBlock(body []byte) error {
	if len(body) < pcapngSHBMinBodyLen {
		return r.errorf(r.off, "corrupt section header block: %d-byte body", len(body))
	}
	if v := r.u16(body[pcapU32Len:]); v != pcapngVersionMajor {
		return r.errorf(r.off, "unsupported pcapng version %d", v)
	}
	if r.off > 0 || len(r.ifaces) > 0 {
		r.section++
	}
	r.ifaces = r.ifaces[:0]
	return nil
}

// setResolution sets the timestamp conversion for if_tsresol v: with the
// top bit clear, units of 10^-v s; set, 2^-(v&0x7f) s.
func (ifc *pcapngInterface) setResolution(v byte) bool {
	ifc.mul, ifc.div, ifc.shift = 0, 0, 0
	if v&0x80 != 0 {
		n := v & 0x7f
		switch {
		case n == 0:
			ifc.mul = 1e9
		case n < 64:
			ifc.shift = n
		default:
			return false
		}
		return true
	}
	switch {
	case v <= 9:
		ifc.mul = 1
		for range 9 - v {
			ifc.mul *= 10
		}
	case v <= 9+19: // 10^19 is the largest power of ten in a uint64
		ifc.div = 1
		for range v - 9 {
			ifc.div *= 10
		}
	default:
		return false
	}
	return true
}

// nanoseconds converts a timestamp of the interface into Unix ns.
func (ifc *pcapngInterface) nanoseconds(ts uint64) int64 {
	switch {
	case ifc.shift != 0:
		hi, lo := bits.Mul64(ts, 1e9)
		return int64(hi<<(64-ifc.shift)|lo>>ifc.shift) + ifc.offset
	case ifc.div != 0:
		return int64(ts/ifc.div) + ifc.offset
	}
	return int64(ts*ifc.mul) + ifc.offset
}

// u16 and u32 read a field in the byte order of the file or section.
func (r *pcapReader) u16(b []byte) uint16 {
	v := binary.LittleEndian.Uint16(b)
	if r.swap {
		v = bits.ReverseBytes16(v)
	}
	return v
}

// u32 reads a 32-bit field; see u16.
func (r *pcapReader) u32(b []byte) uint32 {
	v := binary.LittleEndian.Uint32(b)
	if r.swap {
		v = bits.ReverseBytes32(v)
	}
	return v
}

// advance consumes n buffered bytes.
func (r *pcapReader) advance(n int) {
	r.pos += n
	r.off += int64(n)
}

// readChunks is the helper goroutine: it reads src into free buffers and
// sends them, in order, on full, until the source ends or fails (that chunk
// carries the error) or quit closes.
func readChunks(src io.Reader, free <-chan []byte, full chan<- pcapChunk, quit <-chan struct{}) {
	for {
		var mem []byte
		select {
		case mem = <-free:
		case <-quit:
			return
		}
		var n int
		var err error
		for n == 0 && err == nil {
			n, err = src.Read(mem[pcapHeadroom:])
		}
		select {
		case full <- pcapChunk{mem: mem, n: n, err: err}:
		case <-quit:
			return
		}
		if err != nil {
			return
		}
	}
}

// close stops the helper goroutine. A read it is blocked in (a pipe) ends
// with the process.
func (r *pcapReader) close() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
}

// fill makes at least n bytes available at buf[pos:]. It returns io.EOF
// when the source ends exactly at pos, io.ErrUnexpectedEOF when it ends
// within the n bytes, errPcapStopped when stop closed, or the source's error.
func (r *pcapReader) fill(n int) error {
	for r.end-r.pos < n {
		if r.rerr != nil {
			return r.rerr
		}
		if r.eof {
			if r.end == r.pos {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		var c pcapChunk
		select {
		case c = <-r.full:
		case <-r.stop:
			return errPcapStopped
		}
		switch c.err {
		case nil:
		case io.EOF:
			r.eof = true
		default:
			r.rerr = c.err
		}
		left := r.buf[r.pos:r.end]
		if len(left) <= pcapHeadroom {
			// The usual case: the unparsed tail moves into the headroom.
			start := pcapHeadroom - len(left)
			copy(c.mem[start:], left)
			r.release()
			r.buf, r.pooled = c.mem, true
			r.pos, r.end = start, pcapHeadroom+c.n
			continue
		}
		// A block larger than the headroom (pcapng only, up to
		// pcapngMaxBlockLen): join it in a buffer of its own.
		nb := make([]byte, len(left)+c.n)
		copy(nb[copy(nb, left):], c.mem[pcapHeadroom:pcapHeadroom+c.n])
		r.release()
		r.free <- c.mem
		r.buf, r.pooled = nb, false
		r.pos, r.end = 0, len(nb)
	}
	return nil
}

// release hands the current buffer back to the helper.
func (r *pcapReader) release() {
	if r.pooled {
		r.free <- r.buf
	}
	r.pooled = false
}

// fillError turns an error of fill for the named structure into the
// reader's error.
func (r *pcapReader) fillError(err error, what string) error {
	switch {
	case err == io.EOF && what != "file header" && r.off > 0:
		return io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return r.errorf(r.off, "truncated %s: file ends after %d of its bytes", what, r.end-r.pos)
	case errors.Is(err, errPcapStopped):
		return errPcapStopped
	}
	return &pcapError{name: r.name, off: r.off + int64(r.end-r.pos), msg: "read", err: err}
}

// errorf returns a *pcapError at off. It is on error paths only.
func (r *pcapReader) errorf(off int64, format string, args ...any) error {
	return &pcapError{name: r.name, off: off, msg: fmt.Sprintf(format, args...)}
}

package main

// The process and Go runtime self-metrics of live mode, read from
// /proc/self and runtime/metrics at scrape time.

import (
	"bytes"
	"encoding/binary"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// userHZ is the unit of the CPU times and start time in /proc/<pid>/stat:
// USER_HZ, which the Linux ABI fixes at 100 on every architecture
// (proc(5): "measured in clock ticks (divide by sysconf(_SC_CLK_TCK))").
const userHZ = 100

// Fields of /proc/self/stat after the parenthesised comm (proc(5) numbers
// them from 1: state is field 3), as indexes into the fields after ")".
const (
	statFieldState     = 3
	statFieldUtime     = 14 - statFieldState
	statFieldStime     = 15 - statFieldState
	statFieldStartTime = 22 - statFieldState
	statFieldVsize     = 23 - statFieldState
	statFieldRSS       = 24 - statFieldState
	statFieldsNeeded   = statFieldRSS + 1
)

// procBufLen is the scratch buffer for /proc/self/stat (a few hundred
// bytes) and for getdents(2) batches of /proc/self/fd.
const procBufLen = 4096

// gcQuantiles are the quantiles of go_gc_duration_seconds.
var gcQuantiles = [...]float64{0, 0.25, 0.5, 0.75, 1}

// Runtime metrics read per scrape, in the order of procSample's go fields.
const (
	rtGoroutines = iota
	rtThreads
	rtHeapObjectBytes
	rtAllocBytesTotal
	rtSysBytes
	rtHeapObjects
	rtAllocObjects
	rtFreeObjects
	rtTinyAllocs
	rtGCGoal
	rtHeapUnused
	rtStacks
	rtGOGC
	rtMemLimit
	rtGOMAXPROCS
	rtCount
)

// rtNames are the runtime/metrics names of the rt* indexes.
var rtNames = [rtCount]string{
	rtGoroutines:      "/sched/goroutines:goroutines",
	rtThreads:         "/sched/threads/total:threads",
	rtHeapObjectBytes: "/memory/classes/heap/objects:bytes",
	rtAllocBytesTotal: "/gc/heap/allocs:bytes",
	rtSysBytes:        "/memory/classes/total:bytes",
	rtHeapObjects:     "/gc/heap/objects:objects",
	rtAllocObjects:    "/gc/heap/allocs:objects",
	rtFreeObjects:     "/gc/heap/frees:objects",
	rtTinyAllocs:      "/gc/heap/tiny/allocs:objects",
	rtGCGoal:          "/gc/heap/goal:bytes",
	rtHeapUnused:      "/memory/classes/heap/unused:bytes",
	rtStacks:          "/memory/classes/heap/stacks:bytes",
	rtGOGC:            "/gc/gogc:percent",
	rtMemLimit:        "/gc/gomemlimit:bytes",
	rtGOMAXPROCS:      "/sched/gomaxprocs:threads",
}

// procStats reads the process_* and go_* statistics without allocating per
// scrape: the /proc files stay open for the process's life and are read
// with pread(2) and getdents(2) into pooled buffers.
type procStats struct {
	statFD    int        // /proc/self/stat; -1 when unavailable
	fdDirFD   int        // /proc/self/fd; -1 when unavailable
	fdMu      sync.Mutex // guards fdDirFD's directory offset
	startTime float64    // process start, Unix seconds; 0 when unknown
	pageSize  uint64
	scratch   sync.Pool // *procScratch
}

// procScratch is one scrape's buffers.
type procScratch struct {
	buf     []byte
	samples [rtCount]rtmetrics.Sample
	gc      debug.GCStats
}

// procSample is one reading of the process and runtime statistics.
type procSample struct {
	statOK     bool    // cpuSeconds, rss and vsize are valid
	cpuSeconds float64 // user + system CPU time
	rss        uint64  // resident set, bytes
	vsize      uint64  // virtual memory, bytes
	fdsOK      bool
	openFDs    uint64
	maxFDsOK   bool
	maxFDs     uint64 // RLIMIT_NOFILE soft limit
	vmaxOK     bool
	vmax       uint64  // RLIMIT_AS soft limit, bytes (RLIM_INFINITY: all ones)
	startTime  float64 // process start, Unix seconds; 0 when unknown

	rt          [rtCount]uint64 // by rt* index; 0 when the runtime lacks a metric
	gcQuantiles [len(gcQuantiles)]float64
	gcSum       float64 // total GC pause, s
	gcCount     uint64  // completed GC cycles
	lastGC      float64 // Unix seconds of the latest GC; 0 = none yet
}

// newProcStats opens the /proc files. Missing files (no procfs) leave the
// corresponding metrics out rather than failing the exporter.
func newProcStats() *procStats {
	p := &procStats{statFD: -1, fdDirFD: -1, pageSize: uint64(os.Getpagesize())}
	p.scratch.New = func() any {
		sc := &procScratch{buf: make([]byte, procBufLen)}
		for i := range sc.samples {
			sc.samples[i].Name = rtNames[i]
		}
		sc.gc.PauseQuantiles = make([]time.Duration, len(gcQuantiles))
		return sc
	}
	if fd, err := syscall.Open("/proc/self/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
		p.statFD = fd
	}
	if fd, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0); err == nil {
		p.fdDirFD = fd
	}
	p.startTime = readStartTime(p)
	runtime.AddCleanup(p, func(fds [2]int) {
		for _, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}, [2]int{p.statFD, p.fdDirFD})
	return p
}

// readStartTime returns the process start in Unix seconds: the boot time
// (btime in /proc/stat) plus the start time in /proc/self/stat.
func readStartTime(p *procStats) float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	btime, ok := uint64(0), false
	for line := range bytes.Lines(b) {
		if v, found := bytes.CutPrefix(line, []byte("btime ")); found {
			btime, err = strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			ok = err == nil
			break
		}
	}
	if !ok || p.statFD < 0 {
		return 0
	}
	buf := make([]byte, procBufLen)
	n, err := syscall.Pread(p.statFD, buf, 0)
	if err != nil {
		return 0
	}
	var f [statFieldsNeeded]uint64
	if !parseProcStat(buf[:n], &f) {
		return 0
	}
	return float64(btime) + float64(f[statFieldStartTime])/userHZ
}

// parseProcStat fills f with the numeric fields of a /proc/<pid>/stat line
// after the comm (which may itself hold spaces and parentheses, hence the
// last ")"); non-numeric fields (state) are left 0. It reports whether all
// statFieldsNeeded fields were present.
func parseProcStat(b []byte, f *[statFieldsNeeded]uint64) bool {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	b = b[i+1:]
	k := -1 // index of the field being read; b starts with the space before state
	inField := false
	for _, c := range b {
		if c == ' ' || c == '\n' {
			inField = false
			continue
		}
		if !inField {
			inField = true
			if k++; k == statFieldsNeeded {
				return true
			}
			f[k] = 0
		}
		if c >= '0' && c <= '9' {
			f[k] = f[k]*10 + uint64(c-'0')
		}
	}
	return k == statFieldsNeeded-1
}

// read fills s. It allocates nothing once the scratch pool is warm.
func (p *procStats) read(s *procSample) {
	sc := p.scratch.Get().(*procScratch)
	defer p.scratch.Put(sc)

	s.startTime = p.startTime
	s.statOK = false
	if p.statFD >= 0 {
		var f [statFieldsNeeded]uint64
		if n, err := syscall.Pread(p.statFD, sc.buf, 0); err == nil && parseProcStat(sc.buf[:n], &f) {
			s.statOK = true
			s.cpuSeconds = float64(f[statFieldUtime]+f[statFieldStime]) / userHZ
			s.vsize = f[statFieldVsize]
			s.rss = f[statFieldRSS] * p.pageSize
		}
	}
	s.openFDs, s.fdsOK = p.countFDs(sc.buf)
	var rl syscall.Rlimit
	s.maxFDsOK = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil
	s.maxFDs = rl.Cur
	s.vmaxOK = syscall.Getrlimit(syscall.RLIMIT_AS, &rl) == nil
	s.vmax = rl.Cur

	rtmetrics.Read(sc.samples[:])
	for i := range sc.samples {
		s.rt[i] = 0
		if sc.samples[i].Value.Kind() == rtmetrics.KindUint64 {
			s.rt[i] = sc.samples[i].Value.Uint64()
		}
	}
	debug.ReadGCStats(&sc.gc)
	for i := range s.gcQuantiles {
		s.gcQuantiles[i] = sc.gc.PauseQuantiles[i].Seconds()
	}
	s.gcSum = sc.gc.PauseTotal.Seconds()
	s.gcCount = uint64(sc.gc.NumGC)
	s.lastGC = 0
	if sc.gc.NumGC > 0 {
		s.lastGC = float64(sc.gc.LastGC.UnixNano()) / 1e9
	}
}

// Offsets in a struct linux_dirent64 (getdents64(2)).
const (
	direntRecLenOff = 16 // after d_ino and d_off, 8 bytes each
	direntNameOff   = 19 // after d_reclen (2) and d_type (1)
)

// countFDs counts the entries of /proc/self/fd, which include the
// descriptors this type keeps open.
func (p *procStats) countFDs(buf []byte) (uint64, bool) {
	if p.fdDirFD < 0 {
		return 0, false
	}
	p.fdMu.Lock()
	defer p.fdMu.Unlock()
	if _, err := syscall.Seek(p.fdDirFD, 0, 0); err != nil {
		return 0, false
	}
	n := uint64(0)
	for {
		m, err := syscall.Getdents(p.fdDirFD, buf)
		if err != nil {
			return 0, false
		}
		if m <= 0 {
			return n, true
		}
		for off := 0; off+direntNameOff < m; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+direntRecLenOff:]))
			if reclen <= 0 || off+reclen > m {
				return 0, false
			}
			if name := buf[off+direntNameOff : off+reclen]; name[0] != '.' {
				n++ // fd names are decimal; "." and ".." are the only others
			}
			off += reclen
		}
	}
}

package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	const tail = " S 1 2 3 0 -1 4194560 500 0 0 0 250 125 0 0 20 0 7 0 4242 1234567 890 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n"
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{name: "plain", in: "1234 (dnstt_exporter)" + tail, ok: true},
		{name: "comm-with-parens-and-spaces", in: "1234 (a) b (c d)" + tail, ok: true},
		{name: "no-paren", in: "1234 dnstt" + tail, ok: false},
		{name: "short", in: "1234 (x) S 1 2 3", ok: false},
		{name: "empty", in: "", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f [statFieldsNeeded]uint64
			ok := parseProcStat([]byte(tt.in), &f)
			if ok != tt.ok {
				t.Fatalf("parseProcStat(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if !ok {
				return
			}
			got := [...]uint64{f[statFieldUtime], f[statFieldStime], f[statFieldStartTime], f[statFieldVsize], f[statFieldRSS]}
			want := [...]uint64{250, 125, 4242, 1234567, 890}
			if got != want {
				t.Errorf("utime, stime, starttime, vsize, rss = %v, want %v", got, want)
			}
		})
	}
}

// TestProcStatsRead reads this test process's own statistics and checks
// they are plausible.
func TestProcStatsRead(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		skipUnlessCI(t, "no procfs: %v", err)
	}
	p := newProcStats()
	var s procSample
	p.read(&s)
	if !s.statOK || !s.fdsOK || !s.maxFDsOK {
		t.Fatalf("stat %v, fds %v, max fds %v: want all read", s.statOK, s.fdsOK, s.maxFDsOK)
	}
	if s.rss == 0 || s.vsize < s.rss {
		t.Errorf("rss %d, vsize %d", s.rss, s.vsize)
	}
	if s.openFDs < 3 || s.openFDs > s.maxFDs {
		t.Errorf("open fds %d, max %d", s.openFDs, s.maxFDs)
	}
	now := float64(time.Now().Unix())
	if s.startTime > now+1 || s.startTime < now-24*3600 {
		t.Errorf("start time %v, now %v", s.startTime, now)
	}
	if s.rt[rtGoroutines] == 0 || s.rt[rtThreads] == 0 || s.rt[rtSysBytes] == 0 || s.rt[rtGCGoal] == 0 {
		t.Errorf("runtime metrics missing: %v", s.rt)
	}
	// A raw open: os.Open could also set up the runtime poller's descriptors.
	fd, err := syscall.Open("/proc/self/stat", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var s2 procSample
	p.read(&s2)
	if s2.openFDs != s.openFDs+1 {
		t.Errorf("open fds with one more open = %d, want %d", s2.openFDs, s.openFDs+1)
	}
}

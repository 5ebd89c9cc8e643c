// Package tally holds the totals a dnstt_exporter file-mode run must report
// for a capture, and the session bookkeeping of SPEC section 4 that derives
// sessions_total, active_at_end and peak from the stream of dnstt queries.
//
// The generator fills it from what it writes, the gopacket baseline from what
// it decodes; both print the same JSON so a run can compare them and the
// exporter's exposition against either.
package tally

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Window is the session activity window of SPEC section 4 (-dnstt.window).
const Window = 30_000_000_000 // ns

// Slack is the lazy-expiry slack SPEC section 4 allows: a session may count up
// to Window+Slack after its last query.
const Slack = 1_000_000_000 // ns

// Range is an inclusive {min, max} interval for a gauge whose exact value
// depends on the implementation's expiry slack.
type Range struct {
	Min uint64 `json:"min"`
	Max uint64 `json:"max"`
}

// Totals is what a file-mode run over one capture must report, summed over
// all label sets. Field names follow the truth files in testdata/pcap.
type Totals struct {
	Packets           uint64 `json:"packets"`
	Queries           uint64 `json:"queries"`
	Responses         uint64 `json:"responses"`
	Ignored           uint64 `json:"ignored"`
	BytesIn           uint64 `json:"bytes_in"`
	BytesOut          uint64 `json:"bytes_out"`
	DistinctClientIDs uint64 `json:"distinct_client_ids"`
	SessionsTotal     uint64 `json:"sessions_total"`
	SessionsTotal31s  uint64 `json:"sessions_total_31s"`
	ActiveAtEnd       Range  `json:"active_at_end"`
	Peak              Range  `json:"peak"`
	FirstTS           int64  `json:"first_ts_ns"`
	LastTS            int64  `json:"last_ts_ns"`
}

// Read loads Totals from a JSON file written by WriteJSON (or the generator's
// sidecar, which embeds them under "totals").
func Read(path string) (Totals, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Totals{}, err
	}
	var wrap struct {
		Totals *Totals `json:"totals"`
	}
	if err := json.Unmarshal(b, &wrap); err != nil {
		return Totals{}, fmt.Errorf("%s: %w", path, err)
	}
	if wrap.Totals != nil {
		return *wrap.Totals, nil
	}
	var t Totals
	if err := json.Unmarshal(b, &t); err != nil {
		return Totals{}, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// WriteJSON writes v indented, with a trailing newline.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Diff lists the fields in which got differs from want; empty means equal.
func Diff(got, want Totals) []string {
	var d []string
	add := func(name string, g, w uint64) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %d, want %d", name, g, w))
		}
	}
	add("packets", got.Packets, want.Packets)
	add("queries", got.Queries, want.Queries)
	add("responses", got.Responses, want.Responses)
	add("ignored", got.Ignored, want.Ignored)
	add("bytes_in", got.BytesIn, want.BytesIn)
	add("bytes_out", got.BytesOut, want.BytesOut)
	add("distinct_client_ids", got.DistinctClientIDs, want.DistinctClientIDs)
	add("sessions_total", got.SessionsTotal, want.SessionsTotal)
	add("sessions_total_31s", got.SessionsTotal31s, want.SessionsTotal31s)
	add("active_at_end.min", got.ActiveAtEnd.Min, want.ActiveAtEnd.Min)
	add("active_at_end.max", got.ActiveAtEnd.Max, want.ActiveAtEnd.Max)
	add("peak.min", got.Peak.Min, want.Peak.Min)
	add("peak.max", got.Peak.Max, want.Peak.Max)
	return d
}

// Counter accumulates Totals from a time-ordered stream of records.
// Call Record for every record, Query/Response for dnstt ones, then Finish.
type Counter struct {
	t        Totals
	now      int64
	started  bool
	sessions sessions
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{sessions: newSessions()}
}

// Record moves the clock to ts (Unix ns) for one record of the capture. As in
// SPEC section 4 the clock never goes backwards. It returns the clock.
func (c *Counter) Record(ts int64) int64 {
	c.t.Packets++
	if !c.started {
		c.started = true
		c.t.FirstTS = ts
		c.now = ts
	}
	if ts > c.now {
		c.now = ts
	}
	return c.now
}

// Query counts a dnstt query of dnsLen bytes from ClientID id at the clock.
func (c *Counter) Query(id uint64, dnsLen int) {
	c.t.Queries++
	c.t.BytesIn += uint64(dnsLen)
	c.sessions.query(id, c.now)
}

// Response counts a dnstt response of dnsLen bytes.
func (c *Counter) Response(dnsLen int) {
	c.t.Responses++
	c.t.BytesOut += uint64(dnsLen)
}

// Ignore counts a record that is neither a dnstt query nor a response.
func (c *Counter) Ignore() { c.t.Ignored++ }

// Finish runs the final expiry at the last record's time and returns the totals.
func (c *Counter) Finish() Totals {
	t := c.t
	t.LastTS = c.now
	s := &c.sessions
	s.advance(c.now)
	t.DistinctClientIDs = uint64(len(s.index))
	t.SessionsTotal = s.win[0].sessions
	t.SessionsTotal31s = s.win[1].sessions
	t.ActiveAtEnd = Range{Min: s.win[0].active, Max: s.win[1].active}
	t.Peak = Range{Min: s.win[0].peak, Max: s.win[1].peak}
	return t
}

// event is one query in a window's FIFO: client index and query sequence number.
type event struct {
	ts     int64
	seq    uint64
	client int32
}

// window tracks active sessions for one window length: a session is active at
// t when its latest query is in (t−w, t].
type window struct {
	w        int64
	active   uint64
	peak     uint64
	sessions uint64
	fifo     []event
	head     int
}

// sessions is the per-ClientID state shared by the 30 s and 31 s windows.
type sessions struct {
	index   map[uint64]int32
	lastTS  []int64
	lastSeq []uint64
	seq     uint64
	win     [2]window
}

func newSessions() sessions {
	return sessions{
		index: make(map[uint64]int32),
		win:   [2]window{{w: Window}, {w: Window + Slack}},
	}
}

// advance expires, in every window, the sessions whose latest query is at
// least a window old at now.
func (s *sessions) advance(now int64) {
	for i := range s.win {
		w := &s.win[i]
		for w.head < len(w.fifo) && now-w.fifo[w.head].ts >= w.w {
			e := w.fifo[w.head]
			w.head++
			if s.lastSeq[e.client] == e.seq {
				w.active--
			}
		}
		if w.head > 1<<20 && w.head*2 > len(w.fifo) {
			n := copy(w.fifo, w.fifo[w.head:])
			w.fifo = w.fifo[:n]
			w.head = 0
		}
	}
}

// query records a query of ClientID id at now.
func (s *sessions) query(id uint64, now int64) {
	s.advance(now)
	c, seen := s.index[id]
	if !seen {
		c = int32(len(s.lastTS))
		s.index[id] = c
		s.lastTS = append(s.lastTS, 0)
		s.lastSeq = append(s.lastSeq, 0)
	}
	s.seq++
	for i := range s.win {
		w := &s.win[i]
		gap := now - s.lastTS[c]
		if !seen || gap > w.w {
			w.sessions++
		}
		if !seen || gap >= w.w {
			w.active++
			if w.active > w.peak {
				w.peak = w.active
			}
		}
		w.fifo = append(w.fifo, event{ts: now, seq: s.seq, client: c})
	}
	s.lastTS[c] = now
	s.lastSeq[c] = s.seq
}

package tally

import (
	"reflect"
	"testing"
)

const sec = int64(1e9)

func TestCounterSessions(t *testing.T) {
	type q struct {
		id uint64
		ts int64 // s, relative
	}
	tests := []struct {
		name    string
		queries []q
		end     int64 // last record, s
		want    Totals
	}{
		{
			name:    "one session stays active",
			queries: []q{{1, 0}, {1, 10}, {1, 39}},
			end:     60,
			want: Totals{Queries: 3, DistinctClientIDs: 1, SessionsTotal: 1, SessionsTotal31s: 1,
				ActiveAtEnd: Range{1, 1}, Peak: Range{1, 1}},
		},
		{
			name:    "expired at exactly one window",
			queries: []q{{1, 0}},
			end:     30,
			want: Totals{Queries: 1, DistinctClientIDs: 1, SessionsTotal: 1, SessionsTotal31s: 1,
				ActiveAtEnd: Range{0, 1}, Peak: Range{1, 1}},
		},
		{
			name:    "gap of more than a window starts a new session",
			queries: []q{{1, 0}, {1, 35}},
			end:     35,
			want: Totals{Queries: 2, DistinctClientIDs: 1, SessionsTotal: 2, SessionsTotal31s: 2,
				ActiveAtEnd: Range{1, 1}, Peak: Range{1, 1}},
		},
		{
			name:    "a gap of exactly one window is no new session",
			queries: []q{{1, 0}, {1, 30}},
			end:     30,
			want: Totals{Queries: 2, DistinctClientIDs: 1, SessionsTotal: 1, SessionsTotal31s: 1,
				ActiveAtEnd: Range{1, 1}, Peak: Range{1, 1}},
		},
		{
			name:    "a 31 s gap is new only for the 30 s window",
			queries: []q{{1, 0}, {2, 0}, {1, 31}},
			end:     31,
			want: Totals{Queries: 3, DistinctClientIDs: 2, SessionsTotal: 3, SessionsTotal31s: 2,
				ActiveAtEnd: Range{1, 1}, Peak: Range{2, 2}},
		},
		{
			name:    "peak is kept after sessions expire",
			queries: []q{{1, 0}, {2, 1}, {3, 2}, {4, 40}},
			end:     40,
			want: Totals{Queries: 4, DistinctClientIDs: 4, SessionsTotal: 4, SessionsTotal31s: 4,
				ActiveAtEnd: Range{1, 1}, Peak: Range{3, 3}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCounter()
			const base = 1_700_000_000 * sec
			for _, q := range tt.queries {
				c.Record(base + q.ts*sec)
				c.Query(q.id, 100)
			}
			c.Record(base + tt.end*sec)
			c.Ignore()
			got := c.Finish()
			want := tt.want
			want.Packets = uint64(len(tt.queries)) + 1
			want.Ignored = 1
			want.BytesIn = 100 * want.Queries
			want.FirstTS = base + tt.queries[0].ts*sec
			want.LastTS = base + tt.end*sec
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if d := Diff(got, want); len(d) != 0 {
				t.Errorf("Diff of equal totals = %v", d)
			}
		})
	}
}

func TestCounterClockNeverGoesBack(t *testing.T) {
	c := NewCounter()
	c.Record(100 * sec)
	c.Query(1, 10)
	if now := c.Record(50 * sec); now != 100*sec {
		t.Fatalf("clock after an earlier record = %d, want %d", now, 100*sec)
	}
	c.Query(1, 10)
	if got := c.Finish(); got.SessionsTotal != 1 || got.LastTS != 100*sec {
		t.Fatalf("got %+v, want one session ending at 100 s", got)
	}
}

func TestDiff(t *testing.T) {
	a := Totals{Queries: 1, BytesOut: 2}
	b := Totals{Queries: 1, BytesOut: 3}
	if d := Diff(a, b); len(d) != 1 || d[0] != "bytes_out: got 2, want 3" {
		t.Fatalf("Diff = %q, want one bytes_out line", d)
	}
}

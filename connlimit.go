package main

import (
	"net"
	"net/http"
	"sync/atomic"
)

// httpStats are the HTTP self-metrics: what the connection and request
// bounds turned away.
type httpStats struct {
	refusedConns     atomic.Uint64 // connections closed at accept: -web.max-connections were open
	rejectedRequests atomic.Uint64 // requests answered 503: -web.max-requests were running
}

// connLimitListener caps the connections open at once. A connection
// accepted while max are open is closed at once, inside Accept, with a
// reset (linger 0), so the kernel frees it immediately: it never reaches
// the HTTP server, which would spend a goroutine and buffers on it. The
// open ones make room when they close: the server's timeouts close idle
// and slow ones (readHeader, idle).
type connLimitListener struct {
	net.Listener
	slots chan struct{} // one token per open connection; cap = the limit
	stats *httpStats
}

// newConnLimitListener wraps ln so that at most max accepted connections
// are open at once.
func newConnLimitListener(ln net.Listener, max int, stats *httpStats) *connLimitListener {
	return &connLimitListener{Listener: ln, slots: make(chan struct{}, max), stats: stats}
}

// Accept returns the next connection while there is room, closing those
// that arrive while there is none.
func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, slots: l.slots}, nil
		default:
		}
		l.stats.refusedConns.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST: no TIME_WAIT or FIN_WAIT state per refused connection
		}
		c.Close()
	}
}

// limitedConn gives its slot back when closed, once however often Close
// is called.
type limitedConn struct {
	net.Conn
	slots  chan struct{}
	closed atomic.Bool
}

// Close closes the connection and frees its slot.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		<-c.slots
	}
	return err
}

// countRejected wraps the HTTP handler h to count its 503 answers (the
// -web.max-requests bound) in stats.
func countRejected(h http.Handler, stats *httpStats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&statusRecorder{ResponseWriter: w, stats: stats}, r)
	})
}

// statusRecorder counts a 503 written through it.
type statusRecorder struct {
	http.ResponseWriter
	stats *httpStats
}

// WriteHeader counts a 503 and passes the status on.
func (s *statusRecorder) WriteHeader(code int) {
	if code == http.StatusServiceUnavailable {
		s.stats.rejectedRequests.Add(1)
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

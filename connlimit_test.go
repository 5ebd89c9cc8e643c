package main

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// refusedAtOnce reports whether the server closed c without a word: a
// read ends (EOF or reset) well before the timeout.
func refusedAtOnce(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestConnLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var st httpStats
	ln := newConnLimitListener(inner, 2, &st)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// refused dials a connection and reports whether it was closed at
	// once: reset before connect returned, or on the first read.
	refused := func() bool {
		t.Helper()
		c, err := net.Dial("tcp", inner.Addr().String())
		if errors.Is(err, syscall.ECONNRESET) {
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return refusedAtOnce(t, c)
	}
	dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	if !refused() {
		t.Fatal("a third connection over a limit of 2 was kept open")
	}
	if got := st.refusedConns.Load(); got != 1 {
		t.Errorf("refused = %d, want 1", got)
	}
	// Closing an accepted one (twice: the slot is freed once) makes room
	// for exactly one.
	s1.Close()
	s1.Close()
	dial()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("no room after a connection closed")
	}
	if !refused() {
		t.Fatal("a connection over the limit was kept open after the slot was taken again")
	}
	if got := st.refusedConns.Load(); got != 2 {
		t.Errorf("refused = %d, want 2", got)
	}
	s2.Close()
}

// startCappedServer serves the real exposition of an empty pipeline for
// cfg behind the connection cap, as runLive wires it, and returns the
// address and the HTTP statistics.
func startCappedServer(t *testing.T, cfg *config) (string, *httpStats) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := &httpStats{}
	ln := newConnLimitListener(inner, cfg.maxConns, web)
	pl := newPipeline(cfg, nil, false)
	clock := newMonoClock()
	m := newMetrics(metricsConfig{domains: cfg.domains, sessions: pl.sessions, capture: pl.stats, now: clock.now, http: web})
	srv := newHTTPServer(cfg, m, slog.New(slog.DiscardHandler))
	srv.Handler = countRejected(srv.Handler, web)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return inner.Addr().String(), web
}

func TestHTTPConnectionCap(t *testing.T) {
	for _, tt := range []struct {
		name string
		// fill opens a connection that holds a slot: idle before its
		// first request (cut by the header timeout) or after one
		// (cut by the keep-alive idle timeout).
		keepAlive bool
	}{{"idle before a request", false}, {"idle after a request", true}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parseTestConfig(t, "-web.max-connections", "4")
			cfg.limits.readHeader = 700 * time.Millisecond
			cfg.limits.idle = 700 * time.Millisecond
			addr, web := startCappedServer(t, cfg)
			start := time.Now()
			for range cfg.maxConns {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if tt.keepAlive {
					io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
					c.SetReadDeadline(time.Now().Add(2 * time.Second))
					if _, err := c.Read(make([]byte, 512)); err != nil {
						t.Fatalf("first request on a keep-alive connection: %v", err)
					}
				}
			}

			// The cap is full: more connections are closed at once and
			// cost no goroutine.
			time.Sleep(50 * time.Millisecond) // the server's goroutines for the four have started
			before := runtime.NumGoroutine()
			const flood = 200
			var extra []net.Conn
			for range flood {
				c, err := net.Dial("tcp", addr)
				if errors.Is(err, syscall.ECONNRESET) {
					continue // accepted and reset before connect returned: refused too
				}
				if err != nil {
					t.Fatal(err)
				}
				extra = append(extra, c)
			}
			if during := runtime.NumGoroutine(); during > before+5 {
				t.Errorf("goroutines %d → %d with %d connections over the cap", before, during, flood)
			}
			for _, c := range extra {
				if !refusedAtOnce(t, c) {
					t.Fatal("a connection over the cap was kept open")
				}
				c.Close()
			}
			if d := time.Since(start); d >= cfg.limits.readHeader {
				t.Fatalf("the flood took %v, longer than the timeout the test relies on: the machine is too slow", d)
			}
			if got := web.refusedConns.Load(); got != flood {
				t.Errorf("refused = %d, want %d", got, flood)
			}

			// A real scraper, retrying as a client would, gets through once
			// the timeout has cut the idle connections, and not before.
			c := &http.Client{Timeout: 2 * time.Second}
			var ok time.Duration
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				resp, err := c.Get("http://" + addr + "/metrics")
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "dnstt_exporter_http_connections_refused_total ") {
					ok = time.Since(start)
					break
				}
			}
			if ok == 0 {
				t.Fatalf("no scrape got through within 5 s of the timeout (%v)", cfg.limits.readHeader)
			}
			if ok < cfg.limits.readHeader/2 {
				t.Errorf("a scrape got through after %v, before the idle connections were cut (%v)", ok, cfg.limits.readHeader)
			}
		})
	}
}

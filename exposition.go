package main

import "net/http"

// metricsConfig is what the exposition reads.
type metricsConfig struct {
	domains  []string      // normalised tunnel domains, index = domain id
	sessions *sessionTable // dnstt counters and sessions
	capture  *captureStats // packet self-metrics
	geo      *geoResolver  // nil without GeoIP
	fileMode bool          // dnstt and packet/session/GeoIP self-metrics only (SPEC section 5)
	now      func() int64  // the sessions' clock, for a scrape-time sweep
}

// metrics formats the exposition and serves it over HTTP.
type metrics struct {
	cfg metricsConfig
}

func newMetrics(cfg metricsConfig) *metrics { return &metrics{cfg: cfg} }

// appendText appends the full exposition in text format 0.0.4 to dst.
func (m *metrics) appendText(dst []byte) []byte { return dst }

// ServeHTTP serves the exposition, gzipped when the client accepts it.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {}

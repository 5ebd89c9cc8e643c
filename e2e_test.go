package main

// End to end with a real Prometheus: the exporter captures lo of a network
// namespace the test creates, Debian's prometheus binary scrapes it with
// examples/prometheus.yml and evaluates examples/rules.yml and
// rules-insight.yml inside the same namespace, and the HTTP API must show
// the traffic the test sent, every rule healthy, and data for every
// recording rule and every panel of examples/grafana-dashboard.json (but
// for e2eNoData, which need a week of history). Needs root, ip and prometheus: without
// them it skips, and under CI=true it fails.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// e2eTimeout bounds the whole end-to-end test.
const e2eTimeout = 2 * time.Minute

// promAPI talks to a Prometheus listening inside a network namespace.
type promAPI struct {
	ns, base string
	c        *http.Client
}

func newPromAPI(ns, hostport string) *promAPI {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNetns(ns, func() (err error) {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}}
	return &promAPI{ns: ns, base: "http://" + hostport, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// promResponse is the envelope of every /api/v1 answer.
type promResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// get fetches path and decodes the API envelope; an API error is an error.
func (p *promAPI) get(path string) (json.RawMessage, error) {
	resp, err := p.c.Get(p.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("GET %s: %s: %s", path, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query evaluates expr now and returns the instant vector (a scalar
// result becomes one sample without labels).
func (p *promAPI) query(expr string) ([]promSample, error) {
	data, err := p.get("/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	var r struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	switch r.ResultType {
	case "vector":
		var v []promSample
		err := json.Unmarshal(r.Result, &v)
		return v, err
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(r.Result, &s); err != nil {
			return nil, err
		}
		return []promSample{{Value: s}}, nil
	}
	return nil, fmt.Errorf("query %q: result type %q", expr, r.ResultType)
}

// value is a sample's value as a number.
func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return -1
	}
	return f
}

// waitFor polls check every 250 ms until it returns nil or the deadline
// passes, and then fails t with its last error.
func waitFor(t *testing.T, deadline time.Time, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			AllValue   string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's panels
}

// readDashboard parses examples/grafana-dashboard.json.
func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile("examples/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("examples/grafana-dashboard.json: %v", err)
	}
	return &d
}

// dashboardExpr is one panel query of the dashboard.
type dashboardExpr struct {
	panel, expr string
}

// exprs returns every panel query, rows' nested panels included.
func (d *dashboard) exprs() []dashboardExpr {
	var out []dashboardExpr
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, dashboardExpr{p.Title + " " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars are the values the e2e test gives the dashboard's template
// variables: the test's job and every instance and domain ("All").
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"${job}", "dnstt", "$job", "dnstt",
	"${instance}", ".*", "$instance", ".*",
	"${domain}", ".*", "$domain", ".*",
)

// labelValuesRE matches a Grafana label_values(selector, label) query.
var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)

// recordingRuleNames returns the record: names of file, a rule file of
// examples/.
func recordingRuleNames(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile("examples/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`).FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Fatalf("examples/%s: no recording rules found", file)
	}
	return names
}

// e2eNoData are the recording rules and panel queries (by panel title and
// refId) that structurally return no data in a test minutes long: they
// compare the last hour with the same hour on past days (offset 1d … 7d,
// offset 1w), so they have data only after a day of history. The test
// still checks that they evaluate without error, and that each entry
// names a rule or panel query that exists. Everything else must return
// data.
var e2eNoData = map[string]bool{
	"domain_country:dnstt_session_seconds:increase1h_same_hour_7d_avg": true,
	"domain_country:dnstt_session_seconds:ratio_to_same_hour_7d":       true,
	"Tunnel time against the same hour last week A":                    true,
}

func TestPrometheusEndToEnd(t *testing.T) {
	requireRoot(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		skipUnlessCI(t, "end-to-end test needs prometheus (apt-get install prometheus): %v", err)
	}
	deadline := time.Now().Add(e2eTimeout)
	const (
		exporterAddr = "127.0.0.1:9713" // the address examples/prometheus.yml scrapes
		promAddr     = "127.0.0.1:9090"
	)
	ns := newNetns(t, "e2e")
	startResponder(t, ns, "127.0.0.1:53")

	// The exporter, with GeoIP so that every dashboard panel has data, and
	// a 2 s window so that the sessions end during the test and the
	// session histograms have observations.
	exp := exec.Command("ip", "netns", "exec", ns, testBinary,
		"-dnstt.domain", "t.example.com", "-capture.interface", "lo",
		"-dnstt.window", "2s",
		"-web.listen-address", exporterAddr,
		"-geoip.country-database", "testdata/geo/country.mmdb",
		"-geoip.asn-database", "testdata/geo/asn.mmdb")
	var expErr strings.Builder
	exp.Stderr = &expErr
	expDone := startCommand(t, exp)
	waitFor(t, deadline, "exporter start", func() error {
		select {
		case err := <-expDone:
			t.Fatalf("exporter exited: %v\n%s", err, expErr.String())
		default:
		}
		_, err := httpGetInNetns(ns, exporterAddr, "/metrics")
		return err
	})

	// Prometheus, with the example configuration and rules, evaluated every
	// second instead of every 15 s so the test ends quickly.
	dir := t.TempDir()
	cfg, err := os.ReadFile("examples/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []string{"scrape_interval: 15s", "evaluation_interval: 15s", "'" + exporterAddr + "'"}
	for _, f := range exampleRuleFiles {
		checks = append(checks, "  - "+f)
	}
	for _, s := range checks {
		if !strings.Contains(string(cfg), s) {
			t.Fatalf("examples/prometheus.yml lacks %q, which this test relies on", s)
		}
	}
	cfg = []byte(strings.NewReplacer("scrape_interval: 15s", "scrape_interval: 1s",
		"evaluation_interval: 15s", "evaluation_interval: 1s").Replace(string(cfg)))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var recordNames []string
	nRules := 0
	for _, f := range exampleRuleFiles {
		rules, err := os.ReadFile(filepath.Join("examples", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), rules, 0o644); err != nil {
			t.Fatal(err)
		}
		names := recordingRuleNames(t, f)
		recordNames = append(recordNames, names...)
		nRules += len(names) + strings.Count(string(rules), "- alert:")
	}
	prom := exec.Command("ip", "netns", "exec", ns, promBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	var promOut strings.Builder
	prom.Stdout, prom.Stderr = &promOut, &promOut
	promDone := startCommand(t, prom)
	api := newPromAPI(ns, promAddr)
	defer func() {
		if t.Failed() {
			t.Logf("prometheus output:\n%s\nexporter output:\n%s", promOut.String(), expErr.String())
		}
	}()
	waitFor(t, deadline, "prometheus start", func() error {
		select {
		case err := <-promDone:
			t.Fatalf("prometheus exited: %v\n%s", err, promOut.String())
		default:
		}
		_, err := api.get("/api/v1/status/buildinfo")
		return err
	})

	// The target is up.
	waitFor(t, deadline, "target up", func() error {
		v, err := api.query(`up{job="dnstt"}`)
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].value() != 1 {
			return fmt.Errorf("up = %v, want one series at 1", v)
		}
		return nil
	})

	// Known traffic: three sessions of ten dnstt queries, each answered.
	var plan []planQuery
	for s := range 3 {
		cid := [8]byte{byte(0x10 * (s + 1)), 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
		for i := range 10 {
			plan = append(plan, planQuery{server: "127.0.0.1:53", msg: dnsttQuery(uint16(1000+10*s+i), cid, i*10, "t.example.com"),
				answer: true, dnstt: true, seen: true})
		}
	}
	want := sendPlan(t, ns, plan)
	if want.queries != 30 || want.sessions != 3 {
		t.Fatalf("plan: %d queries in %d sessions, want 30 in 3", want.queries, want.sessions)
	}
	for _, c := range []struct {
		expr string
		want int
	}{
		{`sum(dnstt_queries_total{job="dnstt"})`, want.queries},
		{`sum(dnstt_bytes_in_total{job="dnstt"})`, want.bytesIn},
		{`sum(dnstt_bytes_out_total{job="dnstt"})`, want.bytesOut},
		{`sum(dnstt_sessions_total{job="dnstt"})`, want.sessions},
		// SPEC section 7: every response answers a pending query, and
		// every session ends within the test (-dnstt.window 2s).
		{`sum(dnstt_responses_total{job="dnstt"})`, want.responses},
		{`sum(dnstt_response_latency_seconds_count{job="dnstt"})`, want.responses},
		{`sum(dnstt_unanswered_queries_total{job="dnstt"})`, 0},
		{`sum(dnstt_session_duration_seconds_count{job="dnstt"})`, want.sessions},
		{`sum(dnstt_session_bytes_sum{job="dnstt"})`, want.bytesIn + want.bytesOut},
	} {
		waitFor(t, deadline, c.expr, func() error {
			v, err := api.query(c.expr)
			if err != nil {
				return err
			}
			if len(v) != 1 || v[0].value() != float64(c.want) {
				return fmt.Errorf("%s = %v, want %d", c.expr, v, c.want)
			}
			return nil
		})
	}

	// Every rule of the rule files loaded and evaluates without error.
	type rule struct {
		Name      string `json:"name"`
		Type      string `json:"type"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
	}
	waitFor(t, deadline, "rules", func() error {
		data, err := api.get("/api/v1/rules")
		if err != nil {
			return err
		}
		var r struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		n := 0
		for _, g := range r.Groups {
			for _, ru := range g.Rules {
				n++
				if ru.LastError != "" {
					t.Fatalf("rule %s (%s): %s", ru.Name, g.Name, ru.LastError)
				}
				if ru.Health != "ok" {
					return fmt.Errorf("rule %s: health %q", ru.Name, ru.Health)
				}
			}
		}
		if n != nRules {
			return fmt.Errorf("%d rules loaded, the rule files have %d", n, nRules)
		}
		return nil
	})

	// Every recording rule and every dashboard panel returns data. Rates
	// need two scrapes after the traffic, hence the polling.
	nonEmpty := func(expr string) func() error {
		return func() error {
			v, err := api.query(expr)
			if err != nil {
				return err
			}
			if len(v) == 0 {
				return fmt.Errorf("%s: no data", expr)
			}
			return nil
		}
	}
	// e2eNoData entries need only evaluate.
	evaluates := func(expr string) func() error {
		return func() error {
			_, err := api.query(expr)
			return err
		}
	}
	used := map[string]bool{}
	check := func(key, what, expr string) {
		if e2eNoData[key] {
			used[key] = true
			waitFor(t, deadline, what, evaluates(expr))
			return
		}
		waitFor(t, deadline, what, nonEmpty(expr))
	}
	for _, name := range recordNames {
		check(name, "recording rule "+name, name)
	}
	d := readDashboard(t)
	for _, e := range d.exprs() {
		expr := grafanaVars.Replace(e.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %s: unsubstituted variable in %q", e.panel, expr)
			continue
		}
		check(e.panel, "panel "+e.panel, expr)
	}
	for key := range e2eNoData {
		if !used[key] {
			t.Errorf("e2eNoData: %q is no recording rule or panel query", key)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRE.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		sel, label := grafanaVars.Replace(m[1]), m[2]
		waitFor(t, deadline, "variable "+v.Name, func() error {
			s, err := api.query(sel)
			if err != nil {
				return err
			}
			for _, x := range s {
				if x.Metric[label] != "" {
					return nil
				}
			}
			return fmt.Errorf("variable %s: %s has no %s label", v.Name, sel, label)
		})
	}
}

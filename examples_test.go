package main

// Checks of examples/: the Prometheus configurations and rules pass
// promtool, the rules' unit tests pass, every metric the rules and the
// dashboard name is one the exporter exports, the dashboard has the
// variables a fleet needs, and the systemd unit is the README's and
// passes systemd-analyze. e2e_test.go runs them against a real Prometheus.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestExamplesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipUnlessCI(t, "promtool not installed (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml", "prometheus-fleet.yml"},
		{"check", "rules", "rules.yml", "rules-insight.yml"},
		{"test", "rules", "rules_test.yml"},
		// The blocking alert fires when a country's traffic stops and
		// stays quiet otherwise.
		{"test", "rules", "rules-insight_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "examples"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// exampleRuleFiles are the rule files of examples/, which
// examples/prometheus.yml and prometheus-fleet.yml both load.
var exampleRuleFiles = []string{"rules.yml", "rules-insight.yml"}

// prometheusOwnMetrics are series Prometheus adds to every target.
var prometheusOwnMetrics = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
}

// metricNameRE matches a metric name of the exporter's namespaces.
var metricNameRE = regexp.MustCompile(`\b(dnstt|process|go)_[a-z0-9_]+\b`)

// exportedNames are the exporter's family names with the series suffixes
// of summaries and histograms.
func exportedNames() map[string]bool {
	names := map[string]bool{}
	for _, f := range families {
		names[f.name] = true
		if f.typ == "summary" || f.typ == "histogram" {
			names[f.name+"_sum"], names[f.name+"_count"] = true, true
		}
		if f.typ == "histogram" {
			names[f.name+"_bucket"] = true
		}
	}
	return names
}

// metricNamesIn returns the exporter metric names in a PromQL text; a name
// inside a recording rule's name (level:metric:operations) is not one.
func metricNamesIn(expr string) []string {
	var out []string
	for _, m := range metricNameRE.FindAllStringIndex(expr, -1) {
		if (m[0] > 0 && expr[m[0]-1] == ':') || (m[1] < len(expr) && expr[m[1]] == ':') {
			continue
		}
		out = append(out, expr[m[0]:m[1]])
	}
	return out
}

func TestExamplesMetricNames(t *testing.T) {
	known := exportedNames()
	// Only the expressions: annotations may mention other words.
	exprRE := regexp.MustCompile(`(?m)^\s+expr:\s*(\|\n((?:\s{10,}.*\n)+)|.*)`)
	var exprs []string
	for _, f := range exampleRuleFiles {
		rules, err := os.ReadFile("examples/" + f)
		if err != nil {
			t.Fatal(err)
		}
		n := len(exprs)
		for _, m := range exprRE.FindAllStringSubmatch(string(rules), -1) {
			exprs = append(exprs, m[1])
		}
		if len(exprs)-n < 5 {
			t.Fatalf("examples/%s: found %d expressions", f, len(exprs)-n)
		}
	}
	d := readDashboard(t)
	for _, e := range d.exprs() {
		exprs = append(exprs, e.expr)
	}
	for _, v := range d.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	for _, e := range exprs {
		for _, n := range metricNamesIn(e) {
			if !known[n] {
				t.Errorf("%q: the exporter exports no %s", strings.TrimSpace(e), n)
			}
		}
	}
	for _, e := range d.exprs() {
		for _, w := range regexp.MustCompile(`\b[a-z_]+\b`).FindAllString(e.expr, -1) {
			if prometheusOwnMetrics[w] && !strings.Contains(e.expr, `instance=~"$instance"`) {
				t.Errorf("panel %s: %s without the instance variable", e.panel, w)
			}
		}
	}
}

func TestDashboardVariables(t *testing.T) {
	d := readDashboard(t)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	for name, typ := range map[string]string{"datasource": "datasource", "job": "query", "instance": "query", "domain": "query"} {
		if vars[name] != typ {
			t.Errorf("variable %s: type %q, want %q", name, vars[name], typ)
		}
	}
	ids := map[int]bool{}
	var walk func([]dashboardPanel)
	walk = func(ps []dashboardPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q: no queries", p.Title)
				}
				for _, tg := range p.Targets {
					if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
						t.Errorf("panel %q %s: %q does not select $instance", p.Title, tg.RefID, tg.Expr)
					}
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// TestSystemdUnitExample checks that examples/dnstt_exporter.service is the
// README's unit, and that systemd-analyze accepts it where it is installed
// (with ExecStart pointed at the test binary, which it checks exists).
func TestSystemdUnitExample(t *testing.T) {
	unit, err := os.ReadFile("examples/dnstt_exporter.service")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The file is the README's block plus comment lines after its first.
	var body []string
	for i, l := range strings.SplitAfter(string(unit), "\n") {
		if i > 0 && strings.HasPrefix(l, "#") && len(body) == 1 {
			continue
		}
		body = append(body, l)
	}
	block := "```ini\n" + strings.Join(body, "") + "```"
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md has no ini block equal to examples/dnstt_exporter.service (less its header comment)")
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skipf("systemd-analyze not installed: %v", err)
	}
	f := filepath.Join(t.TempDir(), "dnstt_exporter.service")
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/dnstt_exporter", "ExecStart="+testBinary, 1)
	if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", f).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestExampleInsightRules checks examples/rules-insight.yml with promtool
// and runs its unit tests (examples/rules-insight_test.yml): the blocking
// alert fires when a country's traffic stops and stays quiet otherwise.
func TestExampleInsightRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		skipUnlessCI(t, "promtool not installed (Debian package prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "rules-insight.yml"},
		{"test", "rules", "rules-insight_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "examples"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestExampleInsightPanels: the dashboard panels of
// examples/grafana-insight-panels.json use the datasource variable, select
// the instance variable, and name only metrics the exporter exports or
// the insight rules record.
func TestExampleInsightPanels(t *testing.T) {
	b, err := os.ReadFile("examples/grafana-insight-panels.json")
	if err != nil {
		t.Fatal(err)
	}
	var panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b, &panels); err != nil {
		t.Fatalf("grafana-insight-panels.json: %v", err)
	}
	rules, err := os.ReadFile("examples/rules-insight.yml")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range families {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			known[f.name+suffix] = true
		}
	}
	for _, m := range regexp.MustCompile(`record: (\S+)`).FindAllSubmatch(rules, -1) {
		known[string(m[1])] = true
	}
	name := regexp.MustCompile(`\b(dnstt_[a-z_]+|[a-z_]+:dnstt_[a-z_:0-9]+)\b`)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	for _, p := range panels {
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d targets", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, tg := range p.Targets {
			names := name.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: expr %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !known[n] {
					t.Errorf("panel %q: %q is neither exported nor recorded", p.Title, n)
				}
				if !strings.Contains(n, ":") && !strings.Contains(tg.Expr, `instance=~"$instance"`) {
					t.Errorf("panel %q: expr %q does not select $instance", p.Title, tg.Expr)
				}
			}
		}
	}
}

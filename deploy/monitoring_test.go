package deploy_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// prometheusSeries are series the alerts may use that Prometheus itself
// makes, not stepup.
var prometheusSeries = map[string]bool{"up": true}

// ignoredLabels are the labels Prometheus adds to every scraped series.
var ignoredLabels = map[string]bool{"job": true, "instance": true, model.MetricNameLabel: true}

var promParser = parser.NewParser(parser.Options{})

// checkExprMetrics reports with errorf every series name or label name
// that expr uses and a running stepup does not export. It returns the
// names it checked.
func checkExprMetrics(errorf func(string, ...any), where, expr string, exported map[string]map[string]bool) []string {
	e, err := promParser.ParseExpr(expr)
	if err != nil {
		errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			errorf("%s: a selector without a metric name in %q", where, expr)
			return nil
		}
		names = append(names, vs.Name)
		if prometheusSeries[vs.Name] {
			return nil
		}
		labels, ok := exported[vs.Name]
		if !ok {
			errorf("%s: %s is not a metric stepup exports", where, vs.Name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if !ignoredLabels[m.Name] && !labels[m.Name] {
				errorf("%s: %s has no label %q", where, vs.Name, m.Name)
			}
		}
		return nil
	})
	return names
}

// TestPrometheusAlerts parses the alert rules with Prometheus' own rule-file
// parser (unknown fields refused, expressions and templates checked) and
// checks that every metric they use is one a running stepup exports.
func TestPrometheusAlerts(t *testing.T) {
	const file = "deploy/prometheus/stepup-alerts.yaml"
	groups, errs := rulefmt.Parse(readFile(t, file), false, model.UTF8Validation, promParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", file, err)
	}
	if groups == nil {
		t.FailNow()
	}
	exported := exportedSeries(t)
	var alerts int
	used := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, k)
				}
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s has no severity label", r.Alert)
			}
			for _, n := range checkExprMetrics(t.Errorf, "alert "+r.Alert, r.Expr, exported) {
				used[n] = true
			}
		}
	}
	if alerts < 5 {
		t.Errorf("%s has %d alerts, want the set documented in docs/deployment.md", file, alerts)
	}
	// The signals an operator must hear about.
	for _, m := range []string{"up", "stepup_session_store_up", "stepup_check_errors_total", "stepup_rules_last_reload_success", "stepup_check_duration_seconds_bucket"} {
		if !used[m] {
			t.Errorf("no alert uses %s", m)
		}
	}
}

// TestPrometheusAlertsCheckNames proves that the metric check fails on a
// name stepup does not export and on a label it does not carry.
func TestPrometheusAlertsCheckNames(t *testing.T) {
	exported := exportedSeries(t)
	for _, expr := range []string{`stepup_checks_total > 0`, `stepup_session_store_up{store="redis"} == 0`, `sum(rate(stepup_check_requests_total[5m]`} {
		var problems []string
		checkExprMetrics(func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }, "probe", expr, exported)
		if len(problems) == 0 {
			t.Errorf("checkExprMetrics accepted %q", expr)
		}
	}
	var problems []string
	checkExprMetrics(func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) }, "probe", `sum(rate(stepup_check_requests_total{decision="allow"}[5m]))`, exported)
	if len(problems) > 0 {
		t.Errorf("checkExprMetrics refused a real metric and label: %q", problems)
	}
}

// grafanaDashboard is the part of Grafana's dashboard model the test reads.
type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// grafanaVariables replaces the dashboard's variables with values PromQL
// accepts.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$instance", ".*")

// TestGrafanaDashboard checks the dashboard's layout and that every query
// parses and uses only metrics a running stepup exports.
func TestGrafanaDashboard(t *testing.T) {
	var d grafanaDashboard
	if err := json.Unmarshal(readFile(t, "deploy/grafana/stepup-dashboard.json"), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q: want both", d.Title, d.UID)
	}
	exported := exportedSeries(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d appears twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			queries++
			for _, n := range checkExprMetrics(t.Errorf, "panel "+p.Title, grafanaVariables.Replace(tg.Expr), exported) {
				used[n] = true
			}
		}
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	// Every stepup metric family is on the dashboard.
	for name := range startedStepup(t).families {
		if !strings.HasPrefix(name, "stepup_") {
			continue
		}
		if !used[name] && !used[name+"_bucket"] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
	if !slices.ContainsFunc(d.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query any    `json:"query"`
	}) bool {
		return v.Name == "instance"
	}) {
		t.Error("the dashboard has no instance variable")
	}
}

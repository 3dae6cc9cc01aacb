package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stepup-dev/stepup/config"
)

// operationsDoc is the operators' guide, which lists every metric.
const operationsDoc = "../../docs/operations.md"

// docMetric is one row of the metrics table of docs/operations.md.
type docMetric struct {
	typ    string
	labels []string
}

// metricRow is a row of the metrics table: | `name` | type | labels | meaning |.
var metricRow = regexp.MustCompile("^\\| `(stepup_[a-z_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")

// documentedMetrics reads the metrics table of docs/operations.md.
func documentedMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	raw, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	for line := range strings.SplitSeq(string(raw), "\n") {
		m := metricRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for l := range strings.SplitSeq(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "none" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s: %s is listed twice", operationsDoc, m[1])
		}
		out[m[1]] = docMetric{typ: m[2], labels: labels}
	}
	if len(out) < 10 {
		t.Fatalf("%s: found %d metric rows; is the table still there?", operationsDoc, len(out))
	}
	return out
}

// exportedMetrics builds everything `stepup serve` builds (without
// listening), lets it decide a few checks and reload its rules so that
// every metric has a series, and returns the stepup_ families.
func exportedMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	dir := t.TempDir()
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\n" +
		"server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n" +
		"networks:\n  corporate: [\"10.0.0.0/8\"]\n" +
		"log:\n  audit: {file: " + filepath.Join(dir, "audit.log") + "}\n" +
		"rules:\n  list:\n    - name: extranet-mfa\n      builtin: extranet-mfa\n" +
		"sessions:\n  store:\n    type: memory\n"
	path := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := buildServer(ctx, cfg, path, "", slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	// A check that runs the rules, and one whose deadline has passed (a
	// check that fails closed).
	req := &authv3.CheckRequest{}
	if err := protojson.Unmarshal([]byte(`{"attributes": {
		"source": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 51234}}},
		"request": {"http": {"method": "GET", "host": "app.example", "path": "/", "headers": {"x-envoy-external-address": "203.0.113.7"}}},
		"metadata_context": {"filter_metadata": {"envoy.filters.http.jwt_authn": {"jwt_payload": {"sub": "auth0|alice"}}}}}}`), req); err != nil {
		t.Fatal(err)
	}
	if _, err := s.a.authz.Check(ctx, req); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithCancel(ctx)
	stop()
	_, _ = s.a.authz.Check(done, req)
	if err := s.a.rules.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	fams, err := s.a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "stepup_") {
			out[f.GetName()] = f
		}
	}
	return out
}

// TestOperationsDocListsEveryMetric keeps the metrics table of
// docs/operations.md in sync with what stepup exports: every metric, its
// type and its labels, and nothing that is not exported.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	documented := documentedMetrics(t)
	exported := exportedMetrics(t)
	for name, f := range exported {
		d, ok := documented[name]
		if !ok {
			t.Errorf("%s is exported but not in %s", name, operationsDoc)
			continue
		}
		typ := strings.ToLower(f.GetType().String())
		if d.typ != typ {
			t.Errorf("%s: the doc says %s, it is a %s", name, d.typ, typ)
		}
		labelSet := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labelSet[l.GetName()] = true
			}
		}
		var labels []string
		for l := range labelSet {
			labels = append(labels, l)
		}
		slices.Sort(labels)
		if !slices.Equal(d.labels, labels) {
			t.Errorf("%s: the doc lists labels %v, it has %v", name, d.labels, labels)
		}
	}
	for name := range documented {
		if _, ok := exported[name]; !ok {
			t.Errorf("%s is in %s but stepup does not export it", name, operationsDoc)
		}
	}
	if t.Failed() {
		var rows []string
		for name, f := range exported {
			rows = append(rows, fmt.Sprintf("%s %s: %s", name, strings.ToLower(f.GetType().String()), f.GetHelp()))
		}
		slices.Sort(rows)
		t.Logf("exported:\n%s", strings.Join(rows, "\n"))
	}
}

package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// servedPaths are the HTTP paths the deployment files rely on (probes,
// scraping); TestServedPaths checks that a running stepup serves them.
var servedPaths = []string{"/healthz", "/readyz", "/metrics"}

// runningStepup is a stepup started from the built binary, with the
// gRPC Checks, the failed check and the rules reload that make every
// metric family it registers appear on /metrics.
type runningStepup struct {
	httpAddr string
	families map[string]*dto.MetricFamily
	err      error
}

var (
	stepupOnce sync.Once
	stepupRun  runningStepup
	// stopStepup stops the shared stepup; TestMain calls it after the
	// tests.
	stopStepup = func() {}
)

// startedStepup returns the shared running stepup, starting it on first
// use.
func startedStepup(t *testing.T) *runningStepup {
	t.Helper()
	stepupOnce.Do(func() { stepupRun = startStepup() })
	if stepupRun.err != nil {
		t.Fatal(stepupRun.err)
	}
	return &stepupRun
}

func startStepup() (r runningStepup) {
	dir, err := os.MkdirTemp("", "stepup-deploy-run-")
	if err != nil {
		return runningStepup{err: err}
	}
	cfg := fmt.Sprintf(`data_dir: %q
server:
  grpc: {listen: 127.0.0.1:0}
  http: {listen: 127.0.0.1:0}
networks:
  corporate: [10.0.0.0/8]
policy:
  mfa_exempt_networks: [corporate]
rules:
  list:
    - name: extranet-mfa
      builtin: extranet-mfa
sessions:
  store: {type: memory}
`, filepath.Join(dir, "data"))
	file := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return runningStepup{err: err}
	}
	cmd := exec.Command(stepupBin, "serve", "--config", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return runningStepup{err: err}
	}
	if err := cmd.Start(); err != nil {
		return runningStepup{err: err}
	}
	lines := make(chan map[string]any, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
		close(lines)
	}()
	stopStepup = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(dir)
	}
	waitLog := func(msg string) (map[string]any, error) {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return nil, fmt.Errorf("stepup exited before logging %q", msg)
				}
				if l["msg"] == msg {
					return l, nil
				}
			case <-timeout:
				return nil, fmt.Errorf("stepup did not log %q", msg)
			}
		}
	}
	started, err := waitLog("stepup started")
	if err != nil {
		return runningStepup{err: err}
	}
	grpcAddr, _ := started["grpc"].(string)
	r.httpAddr, _ = started["http"].(string)

	// One allowed and one refused Check, as Envoy sends them.
	conn, err := grpc.NewClient("passthrough:///"+grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return runningStepup{err: err}
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for _, js := range []string{
		`{"attributes": {"source": {"address": {"socketAddress": {"address": "203.0.113.7", "portValue": 51234}}},
		  "request": {"http": {"method": "GET", "host": "app.example.org", "path": "/", "scheme": "https",
		    "headers": {"x-envoy-external-address": "203.0.113.7", "x-request-id": "r-1"}}},
		  "metadataContext": {"filterMetadata": {"envoy.filters.http.jwt_authn": {"jwt_payload": {"sub": "auth0|alice"}}}}}}`,
		`{"attributes": {"source": {"address": {"socketAddress": {"address": "203.0.113.7", "portValue": 51234}}},
		  "request": {"http": {"method": "GET", "host": "app.example.org", "path": "/` + strings.Repeat("x", 64<<10) + `", "scheme": "https",
		    "headers": {"x-envoy-external-address": "203.0.113.7", "x-request-id": "r-2"}}}}}`,
	} {
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal([]byte(js), req); err != nil {
			return runningStepup{err: fmt.Errorf("check request: %w", err)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.Check(ctx, req)
		cancel()
		if err != nil {
			return runningStepup{err: fmt.Errorf("Check: %w", err)}
		}
	}
	// A rules reload.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return runningStepup{err: err}
	}
	if _, err := waitLog("rules reloaded"); err != nil {
		return runningStepup{err: err}
	}
	resp, err := http.Get("http://" + r.httpAddr + "/metrics")
	if err != nil {
		return runningStepup{err: err}
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	r.families, err = p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return runningStepup{err: fmt.Errorf("parse /metrics: %w", err)}
	}
	return r
}

// TestServedPaths checks that stepup serves the paths the deployment files
// rely on.
func TestServedPaths(t *testing.T) {
	s := startedStepup(t)
	for _, p := range servedPaths {
		resp, err := http.Get("http://" + s.httpAddr + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %q, want 200", p, resp.StatusCode, body)
		}
	}
	resp, err := http.Get("http://" + s.httpAddr + "/no-such-path")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("GET /no-such-path = 200: the check above cannot tell served paths from others")
	}
}

// exportedSeries maps every series name a running stepup exports (with the
// _bucket, _sum and _count series of histograms and summaries) to the
// label names it carries.
func exportedSeries(t *testing.T) map[string]map[string]bool {
	t.Helper()
	s := startedStepup(t)
	out := map[string]map[string]bool{}
	for name, mf := range s.families {
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[name] = labels
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			bucket := map[string]bool{"le": true}
			for k := range labels {
				bucket[k] = true
			}
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = bucket, labels, labels
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = labels, labels
		}
	}
	return out
}

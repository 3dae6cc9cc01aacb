package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Generous waits for a loaded 2-core machine; they bound how long a broken
// run hangs, they are not expectations about speed.
const (
	// StartTimeout bounds start-up (until the "stepup started" log line).
	StartTimeout = 60 * time.Second
	// ReadyTimeout bounds the wait for gRPC health SERVING.
	ReadyTimeout = 30 * time.Second
	// StopSlack is added to the configured drain delay and shutdown
	// timeout when waiting for the process to exit.
	StopSlack = 30 * time.Second
)

// StepupOptions configure [StartStepup].
type StepupOptions struct {
	// Args follow "serve" on the command line (e.g. --config FILE).
	Args []string
	// Dir is the working directory ("" = the test's).
	Dir string
	// StopTimeout is how long the exit may take after SIGTERM: the
	// configuration's drain_delay plus shutdown_timeout. [StopSlack] is
	// added. Default 10s (the default shutdown_timeout).
	StopTimeout time.Duration
}

// Stepup is a running `stepup serve`.
type Stepup struct {
	*Proc
	// GRPCAddr and HTTPAddr are the addresses stepup reported it listens
	// on (host:port).
	GRPCAddr, HTTPAddr string
	// DataDir is the data directory stepup reported.
	DataDir     string
	stopTimeout time.Duration
	stopped     bool
	exitCode    int
}

// StartStepup runs `bin serve ARGS...`, waits until it reports its
// addresses and answers gRPC health SERVING, and registers a cleanup that
// stops it with SIGTERM and fails the test unless it exits 0 in time. The
// process's output is logged when the test fails.
func StartStepup(tb testing.TB, bin string, o StepupOptions) *Stepup {
	tb.Helper()
	s, err := TryStartStepup(tb, bin, o)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TryStartStepup is [StartStepup] returning start-up errors instead of
// failing the test (the process, if it ran, is cleaned up either way).
func TryStartStepup(tb testing.TB, bin string, o StepupOptions) (*Stepup, error) {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, o.Args...)...)
	cmd.Dir = o.Dir
	p, err := Start(tb, "stepup", cmd)
	if err != nil {
		return nil, err
	}
	s := &Stepup{Proc: p, stopTimeout: o.StopTimeout}
	if s.stopTimeout <= 0 {
		s.stopTimeout = 10 * time.Second
	}
	// Registered first, so it runs last: the output then includes the
	// shutdown.
	tb.Cleanup(func() {
		if tb.Failed() {
			p.LogOutput(tb)
		}
	})
	tb.Cleanup(func() { s.stopAndCheck(tb) })
	if err := s.waitReady(); err != nil {
		// The caller has the error; the cleanup only has to make sure the
		// process is gone, not judge how it ended.
		s.stopped = true
		_, _ = s.Terminate(s.stopTimeout + StopSlack)
		return nil, err
	}
	return s, nil
}

// waitReady waits for the start-up log line and then for gRPC health
// SERVING.
func (s *Stepup) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := s.waitStarted(ctx); err != nil {
		return err
	}
	conn, err := grpc.NewClient("passthrough:///"+s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer rcancel()
	if err := WaitServing(rctx, conn, ""); err != nil {
		return fmt.Errorf("stepup never became healthy: %w (process: %s)", err, s.ExitString())
	}
	return nil
}

// waitStarted polls stderr for the JSON line {"msg":"stepup started",
// "grpc":..., "http":..., "data_dir":...}.
func (s *Stepup) waitStarted(ctx context.Context) error {
	for {
		for _, l := range parseLogLines(s.Stderr()) {
			if l["msg"] != "stepup started" {
				continue
			}
			s.GRPCAddr, _ = l["grpc"].(string)
			s.HTTPAddr, _ = l["http"].(string)
			s.DataDir, _ = l["data_dir"].(string)
			if s.GRPCAddr == "" || s.HTTPAddr == "" {
				return fmt.Errorf("the \"stepup started\" log line has no grpc/http address: %v", l)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stepup did not log \"stepup started\": %w", ctx.Err())
		case <-s.Exited():
			return fmt.Errorf("stepup exited during start-up (%s):\n%s", s.ExitString(), s.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Dial opens a plaintext gRPC connection to stepup, closed at cleanup.
func (s *Stepup) Dial(tb testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient("passthrough:///"+s.GRPCAddr, opts...)
	if err != nil {
		tb.Fatalf("dial stepup: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// HTTPURL returns the URL of path on stepup's HTTP listener.
func (s *Stepup) HTTPURL(path string) string { return "http://" + s.HTTPAddr + path }

// Stop sends SIGTERM and waits for the exit; it returns the exit code. A
// process that does not exit within the stop timeout is killed and the test
// fails. Stop is idempotent.
func (s *Stepup) Stop(tb testing.TB) int {
	tb.Helper()
	if s.stopped {
		return s.exitCode
	}
	s.stopped = true
	code, err := s.Terminate(s.stopTimeout + StopSlack)
	if err != nil {
		tb.Errorf("stepup did not exit within %v after SIGTERM (killed): %v", s.stopTimeout+StopSlack, err)
	}
	s.exitCode = code
	return code
}

func (s *Stepup) stopAndCheck(tb testing.TB) {
	tb.Helper()
	if s.stopped {
		return
	}
	select {
	case <-s.Exited():
		s.stopped = true
		tb.Errorf("stepup exited on its own during the test (%s)", s.ExitString())
		return
	default:
	}
	if code := s.Stop(tb); code != 0 {
		tb.Errorf("stepup exited with status %d after SIGTERM (%s), want 0", code, s.ExitString())
	}
}

// LogLines returns stderr parsed as JSON log lines; lines that are not
// JSON objects are returned as {"unparsed": line}.
func (s *Stepup) LogLines() []map[string]any { return parseLogLines(s.Stderr()) }

func parseLogLines(out string) []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil || m == nil {
			m = map[string]any{"unparsed": line}
		}
		lines = append(lines, m)
	}
	return lines
}

// WaitServing polls grpc.health.v1 Check for service until it answers
// SERVING or ctx ends.
func WaitServing(ctx context.Context, conn *grpc.ClientConn, service string) error {
	hc := healthpb.NewHealthClient(conn)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("status %v", resp.GetStatus())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

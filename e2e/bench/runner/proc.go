package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// Generous bounds for a loaded 2-core machine: they stop a broken run from
// hanging, they are not expectations about speed (start-up is measured,
// not bounded, by these).
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 20 * time.Second
)

// build compiles stepup and the baseline into dir with one go build and
// returns their paths.
func build(ctx context.Context, dir string) (stepup, baseline string, err error) {
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/stepup", "./e2e/bench/baseline")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go build: %w\n%s", err, out.String())
	}
	return filepath.Join(dir, "stepup"), filepath.Join(dir, "baseline"), nil
}

// buildOne compiles one package of the module into dir.
func buildOne(ctx context.Context, dir, pkg, name string) (string, error) {
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out.String())
	}
	return bin, nil
}

// server is a running server process under test.
type server struct {
	name   string
	cmd    *exec.Cmd
	stdout harness.Buffer
	stderr harness.Buffer
	done   chan struct{}
	// addr is the gRPC address the process reported.
	addr string
	// startup is the time from exec to gRPC health SERVING.
	startup time.Duration
}

// Patterns of the line each server prints once it listens.
var (
	stepupAddrRE   = regexp.MustCompile(`(?m)^\s*gRPC ext_authz\s+(\S+)`)
	baselineAddrRE = regexp.MustCompile(`(?m)^baseline listening on (\S+)`)
)

// startServer runs bin with args (and env added to the harness's
// environment), waits for the address line on stdout and
// then for gRPC health SERVING, and returns the running server with its
// start-up time.
func startServer(ctx context.Context, name, bin string, args, env []string, dir string, addrRE *regexp.Regexp) (*server, error) {
	s := &server{name: name, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	if len(env) > 0 {
		s.cmd.Env = append(os.Environ(), env...)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	setProcAttr(s.cmd)
	begin := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, addrRE); err != nil {
		s.kill()
		return nil, err
	}
	s.startup = time.Since(begin)
	return s, nil
}

func (s *server) waitReady(ctx context.Context, addrRE *regexp.Regexp) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for s.addr == "" {
		if m := addrRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.addr = m[1]
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not report its address: %w\n%s", s.name, ctx.Err(), s.output())
		case <-s.done:
			return fmt.Errorf("%s exited during start-up (%s):\n%s", s.name, s.cmd.ProcessState, s.output())
		case <-time.After(2 * time.Millisecond):
		}
	}
	conn, err := grpc.NewClient("passthrough:///"+s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	errc := make(chan error, 1)
	go func() { errc <- harness.WaitServing(ctx, conn, "") }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("%s never answered health SERVING: %w\n%s", s.name, err, s.output())
		}
		return nil
	case <-s.done:
		return fmt.Errorf("%s exited during start-up (%s):\n%s", s.name, s.cmd.ProcessState, s.output())
	}
}

// pid returns the process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// alive reports whether the process still runs.
func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// output returns the process's stdout and stderr, for error messages.
func (s *server) output() string {
	const max = 4 << 10
	out := s.stdout.String() + s.stderr.String()
	if len(out) > max {
		out = "…" + out[len(out)-max:]
	}
	return out
}

// stop sends SIGTERM and waits for the exit, killing the process if it
// takes longer than stopTimeout. It is safe to call more than once.
func (s *server) stop() error {
	if !s.alive() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
		s.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM (killed)", s.name, stopTimeout)
	}
}

func (s *server) kill() {
	if s.alive() {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// ErrNoProc means /proc is not available (not Linux): CPU time and RSS are
// not measured.
var ErrNoProc = errors.New("/proc is not available")

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat: AT_CLKTCK from the auxiliary vector, 100 when that
// cannot be read (the value on every Linux architecture Go supports).
var clockTicks = func() float64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil || strconv.IntSize != 64 {
		return 100
	}
	for i := 0; i+16 <= len(b); i += 16 {
		k := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		if k == atClkTck {
			v := uint64(b[i+8]) | uint64(b[i+9])<<8 | uint64(b[i+10])<<16 | uint64(b[i+11])<<24
			if v > 0 {
				return float64(v)
			}
		}
	}
	return 100
}()

// cpuSeconds returns the user+system CPU time a process has used, from
// /proc/PID/stat (every thread counted).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, e := os.Stat("/proc/self/stat"); e != nil {
				return 0, ErrNoProc
			}
		}
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU extracts utime+stime (fields 14 and 15) from a
// /proc/PID/stat line. The command name (field 2) may contain spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStatCPU(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc stat: %d fields", len(f)+2)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc stat: %w", err)
	}
	return float64(u+st) / clockTicks, nil
}

// peakRSS returns a process's peak resident set size in bytes (VmHWM).
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmHWM(f)
}

func parseVmHWM(r interface{ Read([]byte) (int, error) }) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmHWM:") {
			continue
		}
		f := strings.Fields(line[len("VmHWM:"):])
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmHWM line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed VmHWM line %q", line)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// loadAvg returns the 1, 5 and 15 minute load averages ("" when unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

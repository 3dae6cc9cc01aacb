// Package harness runs the programs of stepup's end-to-end tests as child
// processes of the test: the stepup binary built from this module, and real
// proxies such as Caddy. It captures their output, waits for them to be
// ready without assuming how long that takes, stops them with SIGTERM and
// reports how they ended.
//
// Every process is started with its own t.Cleanup, so a failing test never
// leaves one behind; on Linux a child is also killed if the test binary
// dies.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrTimeout is returned by [Proc.Wait] when the process did not exit in
// time.
var ErrTimeout = errors.New("timed out waiting for the process to exit")

// InCI reports whether the tests run in CI (CI=true), where a missing
// external program is a failure rather than a reason to skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireProgram returns the path of an external program the test needs.
// When it is missing the test fails in CI and is skipped elsewhere, with
// the reason.
func RequireProgram(tb testing.TB, name, hint string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH (%s)", name, hint)
	if InCI() {
		tb.Fatal(msg + "; CI=true, so this is a failure")
	}
	tb.Skip(msg)
	return ""
}

// ModuleRoot returns the directory of the main module's go.mod, as the go
// command sees it from the current working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// Build compiles ./cmd/stepup of the module into dir and returns the
// binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "stepup")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/stepup")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stepup: %w\n%s", err, out.String())
	}
	return bin, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// programs that cannot listen on port 0 and report the port they got.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PortsFree reports whether every address can be listened on right now.
func PortsFree(addrs ...string) error {
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return err
		}
		l.Close()
	}
	return nil
}

// WaitTCP waits until addr accepts connections, p exits, or ctx ends.
func WaitTCP(ctx context.Context, p *Proc, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never accepted connections on %s: %w", p.Name, addr, ctx.Err())
		case <-p.Exited():
			return fmt.Errorf("%s exited before listening on %s: %s", p.Name, addr, p.ExitString())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Buffer is an io.Writer that can be read while a process writes to it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a running child process with captured output.
type Proc struct {
	// Name labels the process in messages.
	Name   string
	cmd    *exec.Cmd
	stdout Buffer
	stderr Buffer
	done   chan struct{}
	// Set before done is closed.
	waitErr error
}

// Start starts cmd (whose Stdout and Stderr must be unset) and returns it
// running. It registers a cleanup that kills the process if the test did
// not stop it.
func Start(tb testing.TB, name string, cmd *exec.Cmd) (*Proc, error) {
	tb.Helper()
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p, nil
}

// Stdout returns what the process wrote to stdout so far.
func (p *Proc) Stdout() string { return p.stdout.String() }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stderr returns what the process wrote to stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

// Exited is closed when the process has exited and its output is complete.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the exit and returns the exit code (-1 when
// a signal ended it). It returns ErrTimeout when the process still runs.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return 0, ErrTimeout
	}
}

// ExitString describes how the process ended ("running" if it has not).
func (p *Proc) ExitString() string {
	select {
	case <-p.done:
		return p.cmd.ProcessState.String()
	default:
		return "running"
	}
}

// Terminate sends SIGTERM and waits up to timeout; if the process is still
// running then, it is killed and ErrTimeout returned.
func (p *Proc) Terminate(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("signal %s: %w", p.Name, err)
	}
	code, err := p.Wait(timeout)
	if errors.Is(err, ErrTimeout) {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return code, err
}

// LogOutput logs the process's output with tb.Logf (for failed tests).
func (p *Proc) LogOutput(tb testing.TB) {
	tb.Helper()
	if out := p.Stdout(); out != "" {
		tb.Logf("%s stdout:\n%s", p.Name, out)
	}
	if out := p.Stderr(); out != "" {
		tb.Logf("%s stderr:\n%s", p.Name, out)
	}
}

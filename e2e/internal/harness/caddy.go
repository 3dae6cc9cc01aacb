package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Caddy is a running `caddy run` with the test's Caddyfile.
type Caddy struct {
	*Proc
	// Addr is the address of the site (127.0.0.1:port).
	Addr string
}

// StartCaddy runs `caddy run --config FILE --adapter caddyfile` on the
// Caddyfile that caddyfile returns for a free port on 127.0.0.1, with HOME
// and XDG directories in a temporary directory (Caddy writes state there
// even with admin off), and waits until the port accepts connections. If
// another process takes the port first, it tries again with a new one. The
// process is stopped at cleanup, and its output logged if the test failed.
// A missing caddy binary fails the test in CI and skips it elsewhere.
func StartCaddy(tb testing.TB, caddyfile func(port int) string) *Caddy {
	tb.Helper()
	bin := RequireProgram(tb, "caddy", "Debian package caddy: apt-get install -y caddy")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(tb)
		c, err := startCaddy(tb, bin, caddyfile(port), fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			return c
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	tb.Fatal(lastErr)
	return nil
}

func startCaddy(tb testing.TB, bin, caddyfile, addr string) (*Caddy, error) {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	return runCaddy(tb, bin, dir, addr, "run", "--config", path, "--adapter", "caddyfile")
}

// RunCaddyFile runs `caddy run --config PATH` in the working directory
// dir, exactly as a user would type it (Caddy recognises a file named
// Caddyfile by its name), and waits until addr, the site's address,
// accepts connections. Otherwise as [StartCaddy].
func RunCaddyFile(tb testing.TB, dir, path, addr string) *Caddy {
	tb.Helper()
	bin := RequireProgram(tb, "caddy", "Debian package caddy: apt-get install -y caddy")
	c, err := runCaddy(tb, bin, dir, addr, "run", "--config", path)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func runCaddy(tb testing.TB, bin, dir, addr string, args ...string) (*Caddy, error) {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
	)
	p, err := Start(tb, "caddy", cmd)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			p.LogOutput(tb)
		}
	})
	tb.Cleanup(func() { _, _ = p.Terminate(StopSlack) })
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := WaitTCP(ctx, p, addr); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.Stderr())
	}
	return &Caddy{Proc: p, Addr: addr}, nil
}

package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrNoRedis means redis-server is not installed.
var ErrNoRedis = errors.New("redis-server is not installed (Debian package redis-server)")

// redisServer is a redis-server child process on a free loopback port
// that keeps nothing on disk.
type redisServer struct {
	*server
}

// startRedis starts redis-server in dir.
func startRedis(ctx context.Context, dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, e := os.Stat("/usr/bin/redis-server"); e != nil {
			return nil, ErrNoRedis
		}
		bin = "/usr/bin/redis-server"
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &server{name: "redis-server", done: make(chan struct{}), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
		s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
		setProcAttr(s.cmd)
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start redis-server: %w", err)
		}
		go func() {
			_ = s.cmd.Wait()
			close(s.done)
		}()
		if lastErr = waitPing(ctx, s); lastErr == nil {
			return &redisServer{s}, nil
		}
		s.kill()
	}
	return nil, lastErr
}

func waitPing(ctx context.Context, s *server) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		if ping(s.addr) == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s never answered PING: %w\n%s", s.addr, ctx.Err(), s.output())
		case <-s.done:
			return fmt.Errorf("redis-server on %s exited:\n%s", s.addr, s.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

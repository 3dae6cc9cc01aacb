// Package redistest runs real Redis processes as children of a test, for
// the redisstore tests and the end-to-end tests of stepup: one node
// ([Start], [New], [NewWithArgs]), a replica ([NewReplica]), Sentinels
// ([StartSentinels]) or a Cluster ([StartCluster], [NewCluster]).
//
// Every process listens on a free loopback port and is stopped by
// t.Cleanup. Data servers keep nothing on disk (--save "" --appendonly no)
// unless the extra arguments say otherwise. When a binary is not installed
// (Debian packages redis-server and redis-sentinel) the test is skipped,
// or fails when the environment variable CI is "true".
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

// Server is a redis-server child process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // extra redis-server arguments
	// argv, when set, returns the whole argument list for a port
	// (Sentinels, which take a configuration file).
	argv func(port int) []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

// Start starts a redis-server for the test and returns its address
// ("127.0.0.1:port"). The server stops when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	return New(t).Addr()
}

// New starts a redis-server for the test and returns it, for tests that
// stop and restart it. The server stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	return newServer(t, nil)
}

// NewWithArgs is New with extra redis-server arguments, which come after
// (and so override) the defaults: NewWithArgs(t, "--appendonly", "yes"),
// say.
func NewWithArgs(t testing.TB, args ...string) *Server {
	t.Helper()
	return newServer(t, args)
}

// NewReplica starts a replica of master and waits until its link to the
// master is up.
func NewReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	s := newServer(t, []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)})
	waitFor(t, s.Addr(), "INFO replication", "master_link_status:up")
	return s
}

// StartSentinels starts n Sentinels monitoring master under name with the
// given quorum, quick to act: a master is down after downAfter without an
// answer, and a failover is retried after failoverTimeout. It waits until
// every Sentinel knows the master and returns the Sentinels.
func StartSentinels(t testing.TB, name string, master *Server, n, quorum int, downAfter, failoverTimeout time.Duration) []*Server {
	t.Helper()
	bin := tool(t, "redis-sentinel")
	out := make([]*Server, 0, n)
	for range n {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		s := &Server{t: t, bin: bin, dir: dir, argv: func(port int) []string {
			cfg := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d %d\n"+
				"sentinel down-after-milliseconds %s %d\n"+
				"sentinel failover-timeout %s %d\n"+
				"sentinel parallel-syncs %s 1\n",
				port, dir, name, master.port, quorum,
				name, downAfter.Milliseconds(), name, failoverTimeout.Milliseconds(), name)
			// Sentinel rewrites its file; each (re)start begins afresh.
			if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
				t.Errorf("redistest: write %s: %v", conf, err)
			}
			return []string{conf}
		}}
		s.startFree()
		out = append(out, s)
	}
	for _, s := range out {
		waitFor(t, s.Addr(), "SENTINEL MASTER "+name, "")
	}
	return out
}

func newServer(t testing.TB, args []string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), args: args}
	s.startFree()
	return s
}

// startFree starts s on a free port, retrying when the port was taken
// meanwhile.
func (s *Server) startFree() {
	t := s.t
	t.Helper()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return
		}
	}
	t.Fatalf("redistest: %v", err)
}

// StartCluster starts a Redis Cluster of n masters (n >= 3), without
// replicas, assigns all slots with redis-cli, waits until every node
// reports cluster_state:ok, and returns the nodes' addresses. The nodes
// stop when the test ends.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	nodes := NewCluster(t, n, 0, 5*time.Second)
	addrs := make([]string, len(nodes))
	for i, s := range nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// NewCluster starts a Redis Cluster of masters (at least 3) with replicas
// replicas each, joined by redis-cli --cluster create, with the given
// cluster-node-timeout (how long a silent master takes to be failed
// over). It waits until every node reports cluster_state:ok and every
// replica's link is up, and returns the nodes (which node redis-cli made
// a master is for the test to ask, CLUSTER NODES). The nodes stop when
// the test ends.
func NewCluster(t testing.TB, masters, replicas int, nodeTimeout time.Duration) []*Server {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, got %d", masters)
	}
	cli := tool(t, "redis-cli")
	nodes := make([]*Server, masters*(1+replicas))
	addrs := make([]string, len(nodes))
	for i := range nodes {
		nodes[i] = newServer(t, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		})
		addrs[i] = nodes[i].Addr()
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		waitFor(t, a, "CLUSTER INFO", "cluster_state:ok")
		if replicas > 0 {
			waitFor(t, a, "INFO replication", "")
			if info, _ := command(a, "INFO replication"); strings.Contains(info, "role:slave") {
				waitFor(t, a, "INFO replication", "master_link_status:up")
			}
		}
	}
	return nodes
}

// waitFor sends cmd to addr until the reply contains want (any reply
// that is not an error when want is ""), failing the test after
// startTimeout.
func waitFor(t testing.TB, addr, cmd, want string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := command(addr, cmd)
		if err == nil && !strings.HasPrefix(reply, "-") && strings.Contains(reply, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s on %s: no %q within %v: %v\n%s", cmd, addr, want, startTimeout, err, reply)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Binary returns the path of redis-server, skipping the test (failing it
// when CI=true) when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	return tool(t, "redis-server")
}

func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/bin/" + name; fileExists(p) {
		return p
	}
	pkg := "redis-server"
	if name == "redis-sentinel" {
		pkg = "redis-sentinel"
	}
	msg := name + " is not installed (apt-get install " + pkg + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Addr returns the server's address, "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// PID returns the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Pause stops the process with SIGSTOP: it keeps its connections and
// answers nothing, like a hung server, until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		if err := s.cmd.Process.Signal(sig); err != nil {
			s.t.Errorf("redistest: %v to port %d: %v", sig, s.port, err)
		}
	}
}

// Kill kills the server with SIGKILL (no shutdown, no final save) and
// waits for it to exit. Restart starts it again.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Output returns what the process wrote to stdout and stderr so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Stop stops the server and waits for it to exit. Stopping a stopped
// server does nothing; a paused one is resumed first.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts a stopped server again on the same port, with the same
// arguments: empty data unless they ask for persistence.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &syncBuffer{}
	var cmd *exec.Cmd
	if s.argv != nil {
		cmd = exec.Command(s.bin, s.argv(s.port)...)
	} else {
		cmd = exec.Command(s.bin,
			"--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--daemonize", "no",
			"--logfile", "",
		)
		cmd.Args = append(cmd.Args, s.args...)
	}
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group, so a terminal's ^C does not reach it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr()) == nil {
			s.cmd, s.done, s.out = cmd, done, out
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited early:\n%s", s.port, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v:\n%s", s.port, startTimeout, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	reply, err := command(addr, "PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// command sends one inline command and returns the reply: a simple reply
// line as is, or a bulk string's contents.
func command(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 || n > 1<<20 {
		return "", fmt.Errorf("bad bulk reply %q", line)
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

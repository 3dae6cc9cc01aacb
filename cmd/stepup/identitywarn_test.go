package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/config"
)

func TestIdentityHeaderWarnings(t *testing.T) {
	networks := "networks:\n  corporate: [10.0.0.0/8, \"fd00::/8\"]\n  lab: [192.168.10.0/24]\n  local: [127.0.0.0/8]\n"
	for _, tt := range []struct {
		name  string
		yaml  string
		warns []string // one entry per warning, each a substring it must contain
	}{
		{name: "no header identity", yaml: "identity:\n  header:\n    trusted_peers: [0.0.0.0/0]\n"},
		{name: "loopback proxy", yaml: "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [127.0.0.1/32, \"::1/128\", 127.0.0.0/8, \"::ffff:127.0.0.1/128\"]\n"},
		{name: "proxies inside the corporate network", yaml: "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [10.1.2.3/32, 10.1.3.0/24, \"fd00::10/128\"]\n"},
		{
			name:  "everyone",
			yaml:  "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [127.0.0.1/32, 0.0.0.0/0]\n",
			warns: []string{`trusted_peers[1]: 0.0.0.0/0 is a wide range; it covers the network "corporate" (10.0.0.0/8), where users are; it covers the network "lab"`},
		},
		{
			name:  "everyone over IPv6",
			yaml:  "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [\"::/0\"]\n",
			warns: []string{`trusted_peers[0]: ::/0 is a wide range; it covers the network "corporate" (fd00::/8)`},
		},
		{
			name:  "the corporate network itself",
			yaml:  "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [10.0.0.0/8]\n",
			warns: []string{`trusted_peers[0]: 10.0.0.0/8 is a wide range; it covers the network "corporate" (10.0.0.0/8), where users are: anyone there who can reach stepup can send a X-Forwarded-User header`},
		},
		{
			name:  "a small client network",
			yaml:  "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [192.168.10.0/24]\n",
			warns: []string{`trusted_peers[0]: it covers the network "lab" (192.168.10.0/24), where users are`},
		},
		{
			name:  "a wide range outside every network",
			yaml:  "identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [172.16.0.0/12, \"2001:db8::/32\"]\n",
			warns: []string{"trusted_peers[0]: 172.16.0.0/12 is a wide range:", "trusted_peers[1]: 2001:db8::/32 is a wide range:"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte("data_dir: " + t.TempDir() + "\n" + networks + tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			nets, err := loadNetworks(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.IdentityHeaderWarnings(nets)
			if len(got) != len(tt.warns) {
				t.Fatalf("got %d warnings, want %d:\n%s", len(got), len(tt.warns), strings.Join(got, "\n"))
			}
			for i, w := range tt.warns {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d:\n%s\nwant it to contain\n%s", i, got[i], w)
				}
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for a server writing and a test
// reading at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeWarnsAboutUnsafeHeaderIdentity: `stepup serve` logs the warning
// at start-up, as a WARN line of its JSON log, and still starts.
func TestServeWarnsAboutUnsafeHeaderIdentity(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stepup.yaml")
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\n" +
		"server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n" +
		"networks:\n  corporate: [\"10.0.0.0/8\"]\n" +
		"identity:\n  header:\n    name: X-Forwarded-User\n    trusted_peers: [0.0.0.0/0]\n" +
		"sessions:\n  store:\n    type: memory\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", cfg}, &stdout, &stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `"stepup started"`) {
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before starting:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d after the context ended", code)
	}
	var warned bool
	for _, line := range strings.Split(stderr.String(), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		if msg, _ := l["msg"].(string); l["level"] == "WARN" && strings.HasPrefix(msg, "identity.header.trusted_peers[0]: 0.0.0.0/0 is a wide range") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no WARN line about identity.header.trusted_peers:\n%s", stderr.String())
	}
}

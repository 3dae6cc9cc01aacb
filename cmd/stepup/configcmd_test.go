package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// configBase is a configuration on free loopback ports with its data in
// dir; cases append to it.
func configBase(dir string) string {
	return "data_dir: " + filepath.Join(dir, "data") + "\n" + serverSection
}

const serverSection = "server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n"

// runCmd runs stepup with args and returns its exit code and output.
func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestConfigValidateRefusesWhatServeRefuses: `config validate` builds
// what serve builds, so every configuration serve refuses, validate
// refuses with the same message, and what validate accepts, serve serves.
func TestConfigValidateRefusesWhatServeRefuses(t *testing.T) {
	const okRule = "function (user, context, callback) {\n  callback(null, user, context);\n}\n"
	for _, tc := range []struct {
		name  string
		files map[string]string // written next to the configuration
		yaml  string            // appended to configBase
		want  string            // in both messages; "" = both accept
	}{
		{name: "the embedded default's choices", yaml: ""},
		{name: "a rule file", files: map[string]string{"ok.js": okRule},
			yaml: "rules:\n  list:\n    - file: ok.js\n"},
		{name: "configured keys", files: map[string]string{"k1.key": strings.Repeat("a", 64) + "\n"},
			yaml: "sessions:\n  keys:\n    - id: k1\n      secret: {file: k1.key}\n"},
		{name: "a rule with a syntax error", files: map[string]string{"broken.js": "function (user, context, callback) {\n  callback(null, user, context;\n}\n"},
			yaml: "rules:\n  list:\n    - file: broken.js\n", want: "broken.js"},
		{name: "an unknown built-in rule",
			yaml: "rules:\n  list:\n    - builtin: nope\n", want: `no built-in rule "nope"`},
		{name: "a rule requiring a module stepup does not provide", files: map[string]string{"request.js": "function (user, context, callback) {\n  var request = require('request');\n  callback(null, user, context);\n}\n"},
			yaml: "rules:\n  list:\n    - file: request.js\n", want: "request"},
		{name: "a missing key file",
			yaml: "sessions:\n  keys:\n    - id: k1\n      secret: {file: missing.key}\n", want: "missing.key"},
		{name: "a 6-byte key secret",
			yaml: "sessions:\n  keys:\n    - id: k1\n      secret: abcdef\n", want: "sessions.keys"},
		{name: "a missing CIDR file",
			yaml: "networks:\n  corporate:\n    files: [nets.txt]\n", want: "nets.txt"},
		{name: "a TLS certificate that is no certificate", files: map[string]string{"cert.pem": "not a certificate\n", "key.pem": "not a key\n"},
			yaml: "server:\n  grpc:\n    listen: 127.0.0.1:0\n    tls: {cert_file: DIR/cert.pem, key_file: DIR/key.pem}\n  http:\n    listen: 127.0.0.1:0\n", want: "server.grpc.tls: tls: failed to find any PEM data"},
		{name: "an invalid messages file", files: map[string]string{"messages.yaml": "de: {no_such_message: x}\n"},
			yaml: "mfa:\n  messages_file: DIR/messages.yaml\n", want: "no_such_message"},
		{name: "a misspelt key", yaml: "sessions:\n  mfa_sesion_ttl: 1h\n",
			want: `unknown key "mfa_sesion_ttl" (did you mean "mfa_session_ttl"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// TLS files and the messages file are read relative to the
			// working directory: the cases name them absolutely.
			y := strings.ReplaceAll(tc.yaml, "DIR", dir)
			path := filepath.Join(dir, "stepup.yaml")
			// A section written twice would be a problem of its own.
			if err := os.WriteFile(path, []byte(mergeTop(configBase(dir), y)), 0o600); err != nil {
				t.Fatal(err)
			}

			vCode, vOut, vErr := runCmd(context.Background(), "config", "validate", "--config", path)
			// serve on a context that has ended: it builds everything,
			// listens, and stops at once.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			sCode, _, sErr := runCmd(ctx, "serve", "--config", path)

			if tc.want == "" {
				if vCode != 0 || !strings.Contains(vOut, path+": ok") {
					t.Errorf("config validate: exit %d\n%s%s", vCode, vOut, vErr)
				}
				if sCode != 0 {
					t.Errorf("serve: exit %d\n%s", sCode, sErr)
				}
				return
			}
			if sCode == 0 {
				t.Fatalf("serve accepted the configuration; the case is wrong")
			}
			if vCode == 0 {
				t.Fatalf("config validate accepted what serve refuses:\nserve: %s\nvalidate: %s", sErr, vOut)
			}
			sMsg := lastError(sErr, "stepup serve: ")
			vMsg := lastError(vErr, "stepup config: ")
			if sMsg == "" || sMsg != vMsg {
				t.Errorf("messages differ:\nserve:    %q\nvalidate: %q", sMsg, vMsg)
			}
			if !strings.Contains(vMsg, tc.want) {
				t.Errorf("message %q does not name %q", vMsg, tc.want)
			}
		})
	}
}

// TestConfigValidateWritesNothing: validate creates no data directory,
// keys, admin token or store, and notes what serve will create.
func TestConfigValidateWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(path, []byte(configBase(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd(context.Background(), "config", "validate", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("validate created the data directory: %v", err)
	}
	for _, want := range []string{"note: no session keys in", "note: the session store", "does not exist yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// With the store in use by a running server, validate notes it and
	// still checks the rest.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan int, 1)
	var serveOut syncBuffer
	go func() { served <- run(ctx, []string{"serve", "--config", path}, &serveOut, &bytes.Buffer{}) }()
	waitFor(t, func() bool { return strings.Contains(serveOut.String(), "gRPC ext_authz") })
	code, out, errOut = runCmd(context.Background(), "config", "validate", "--config", path)
	if code != 0 || !strings.Contains(out, "is in use by a running stepup: not opened") {
		t.Errorf("validate beside a running server: exit %d\n%s%s", code, out, errOut)
	}
	cancel()
	if c := <-served; c != 0 {
		t.Errorf("serve: exit %d", c)
	}
}

// mergeTop appends extra to base; an extra that writes its own server
// section replaces base's.
func mergeTop(base, extra string) string {
	if strings.HasPrefix(extra, "server:\n") {
		base = strings.Replace(base, serverSection, "", 1)
	}
	return base + extra
}

// lastError returns the message after prefix in a command's stderr (the
// rest of stderr, which may span lines).
func lastError(stderr, prefix string) string {
	i := strings.LastIndex(stderr, prefix)
	if i < 0 {
		return ""
	}
	return strings.TrimSpace(stderr[i+len(prefix):])
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
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

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
)

// runResult is how a command ended.
type runResult struct {
	code           int
	stdout, stderr string
}

// runStepup runs the binary with args in dir, with stdin ("" = none) as
// standard input, and waits for it (generously).
func runStepup(t *testing.T, dir, stdin string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, stepupBin, args...)
	cmd.Dir = dir
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("stepup %s did not finish: %v\nstderr:\n%s", strings.Join(args, " "), ctx.Err(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("stepup %s: %v", strings.Join(args, " "), err)
	}
	return runResult{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// parseCheckOutput splits `stepup check` output into the CheckResponse
// (protojson) and the one-line summary that follows it.
func parseCheckOutput(t *testing.T, out string) (*authv3.CheckResponse, string) {
	t.Helper()
	out = strings.TrimRight(out, "\n")
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		t.Fatalf("want the CheckResponse and a summary line, got:\n%s", out)
	}
	body, summary := out[:i], out[i+1:]
	resp := &authv3.CheckResponse{}
	if err := protojson.Unmarshal([]byte(body), resp); err != nil {
		t.Fatalf("stdout before the summary is not a CheckResponse in protojson: %v\n%s", err, body)
	}
	if msg := wellFormed(resp); msg != "" {
		t.Fatalf("%s\n%s", msg, body)
	}
	return resp, summary
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckCommand runs `stepup check --request FILE` (the dry run).
func TestCheckCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	example, err := filepath.Abs(filepath.Join("testdata", "envoy-example.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	// requestFile writes r as protojson with proto field names (as in
	// docs/envoy.md#example-checkrequest) or JSON (lowerCamelCase) names.
	requestFile := func(r *envoyreq.Request, protoNames bool) string {
		b, err := protojson.MarshalOptions{UseProtoNames: protoNames}.Marshal(r.MustProto())
		if err != nil {
			t.Fatal(err)
		}
		n++
		return writeFile(t, dir, fmt.Sprintf("request-%d.json", n), b)
	}
	stdinFile := requestFile(envoyreq.Browser("198.51.100.9"), true)
	// A configuration under which the example's client (192.0.2.5) is
	// corporate: --config must be honoured.
	cfg := writeConfig(t, serverConfig{Corporate: []string{"192.0.2.0/24"}})

	tests := []struct {
		name string
		args []string
		// status is what the client gets (200 = allowed).
		status int
		// summary lists substrings of the summary line.
		summary []string
	}{
		{
			// e2e/testdata/envoy-example.json verbatim: an extranet client (192.0.2.5) with
			// identity and no Accept header, i.e. not a browser navigation.
			"the documented example on the embedded defaults", []string{"--request", example}, 401,
			[]string{"status=401"},
		},
		{"the documented example with a config that makes it corporate", []string{"--request", example, "--config", cfg}, 200,
			[]string{"status=200", "x-stepup-user=auth0|alice"}},
		{"corporate browser", []string{"--request", requestFile(envoyreq.Browser(corpIP), true)}, 200,
			[]string{"status=200", "x-stepup-user=auth0|alice", "x-stepup-network=corporate"}},
		{"extranet browser", []string{"--request", requestFile(envoyreq.Browser(extranetIP), true)}, 302,
			[]string{"status=302", "location=https://app.corp.example/.stepup/mfa"}},
		{"JSON field names (lowerCamelCase) are accepted too", []string{"--request", requestFile(envoyreq.API(extranetIP), false)}, 401,
			[]string{"status=401"}},
		{"request from stdin", []string{"--request", "-"}, 302, []string{"status=302"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdin := ""
			if tc.args[1] == "-" {
				stdin = stdinFile
			}
			res := runStepup(t, dir, stdin, append([]string{"check"}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("exit status %d, want 0\nstderr:\n%s", res.code, res.stderr)
			}
			resp, summary := parseCheckOutput(t, res.stdout)
			if got := httpStatus(resp); got != tc.status {
				t.Errorf("response status %d, want %d\n%s", got, tc.status, res.stdout)
			}
			for _, s := range tc.summary {
				if !strings.Contains(summary, s) {
					t.Errorf("summary %q does not contain %q", summary, s)
				}
			}
			if tc.status == 401 {
				if got := strings.Join(deniedHeader(resp, "www-authenticate"), ""); !strings.Contains(got, `error="insufficient_user_authentication"`) {
					t.Errorf("401 WWW-Authenticate %q", got)
				}
			}
		})
	}

	t.Run("an empty CheckRequest is denied, not allowed", func(t *testing.T) {
		res := runStepup(t, dir, "", "check", "--request", writeFile(t, dir, "empty-object.json", []byte("{}")))
		if res.code != 0 {
			// Refusing the input outright is fine as well.
			if res.stderr == "" {
				t.Errorf("exit status %d without a message", res.code)
			}
			return
		}
		resp, summary := parseCheckOutput(t, res.stdout)
		if allowed(resp) || !strings.Contains(summary, "status=400") {
			t.Errorf("an empty CheckRequest gave %q", summary)
		}
	})

	malformed := []struct {
		name string
		args []string
		// stderr lists substrings of the error message.
		stderr []string
	}{
		{"not JSON", []string{"--request", writeFile(t, dir, "garbage.json", []byte("{not json"))}, []string{"garbage.json", "CheckRequest"}},
		{"empty file", []string{"--request", writeFile(t, dir, "empty.json", nil)}, []string{"empty.json"}},
		{"unknown field", []string{"--request", writeFile(t, dir, "unknown.json", []byte(`{"attributes":{"sauce":1}}`))}, []string{"unknown.json", "sauce"}},
		{"wrong type", []string{"--request", writeFile(t, dir, "type.json", []byte(`{"attributes":{"request":{"http":{"headers":"x"}}}}`))}, []string{"type.json"}},
		{"a CheckResponse instead of a request", []string{"--request", writeFile(t, dir, "response.json", []byte(`{"status":{"code":0},"ok_response":{}}`))}, []string{"response.json"}},
		{"missing file", []string{"--request", filepath.Join(dir, "nope.json")}, []string{"nope.json"}},
		{"no --request", nil, []string{"--request"}},
		{"an invalid --config", []string{"--request", example, "--config", writeFile(t, dir, "bad.yaml", []byte("networks:\n  corporate: [not-a-cidr]\n"))}, []string{"bad.yaml", "not-a-cidr"}},
		{"a --config with an unknown key", []string{"--request", example, "--config", writeFile(t, dir, "unknown.yaml", []byte("networks:\n  corporate: [10.0.0.0/8]\nbogus_key: 1\n"))}, []string{"unknown.yaml", "bogus_key"}},
	}
	for _, tc := range malformed {
		t.Run("malformed: "+tc.name, func(t *testing.T) {
			res := runStepup(t, dir, "", append([]string{"check"}, tc.args...)...)
			if res.code == 0 {
				t.Fatalf("exit status 0, want non-zero\nstdout:\n%s", res.stdout)
			}
			if strings.Contains(res.stdout, "decision=") {
				t.Errorf("a decision was printed for malformed input:\n%s", res.stdout)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr does not mention %q:\n%s", s, res.stderr)
				}
			}
		})
	}
}

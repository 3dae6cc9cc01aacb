package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// imageTag is the image TestContainerImage builds and removes again.
const imageTag = "localhost/stepup:test"

// imageUID is the numeric user the image runs stepup as.
const imageUID = 65532

// versionLine is the shape of `stepup version`'s output.
var versionLine = regexp.MustCompile(`^stepup (\S+) \(commit ([0-9a-f]{7,12}(, modified)?|unknown)\) go\S+$`)

// TestContainerImage builds the image from the Containerfile at the
// repository's root with buildah, as a user would (offline: FROM scratch
// and the build context of deploy/container/build-dist), then runs it:
// `stepup version`, `stepup config validate` of the image's configuration,
// and the image's default command, whose /healthz and /readyz must answer
// on 127.0.0.1:9192 (buildah's chroot isolation shares the host's network).
// It removes the container and the image it made.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a container image; skipped with -short")
	}
	harness.RequireProgram(t, "buildah", "apt-get install buildah")
	if os.Geteuid() != 0 {
		msg := "buildah with the vfs driver and chroot isolation needs root here"
		if harness.InCI() {
			t.Fatal(msg + "; CI=true, so this is a failure")
		}
		t.Skip(msg)
	}
	// The image's configuration listens on the fixed ports 9191 and 9192 of
	// every interface.
	if err := harness.PortsFree("0.0.0.0:9191", "0.0.0.0:9192"); err != nil {
		msg := fmt.Sprintf("ports 9191/9192 are in use (%v): the image listens on them", err)
		if harness.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The build context: the Containerfile and deploy/container/ as they
	// are in the repository, and dist/ as build-dist makes it.
	bctx := t.TempDir()
	for _, f := range []string{"Containerfile", "deploy/container/stepup.yaml", "deploy/container/passwd", "deploy/container/group"} {
		copyFile(t, filepath.Join(root, f), filepath.Join(bctx, f))
	}
	build := exec.CommandContext(ctx, "sh", "deploy/container/build-dist", filepath.Join(bctx, "dist"))
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("deploy/container/build-dist: %v\n%s", err, out)
	}
	t.Logf("build context ready in %s", time.Since(start).Round(time.Millisecond))

	bstart := time.Now()
	buildah(ctx, t, "bud", "--isolation", "chroot", "-t", imageTag, "-f", filepath.Join(bctx, "Containerfile"), bctx)
	t.Cleanup(func() {
		if _, err := buildahErr(context.Background(), "rmi", "-f", imageTag); err != nil {
			t.Errorf("removing %s: %v", imageTag, err)
		}
	})
	t.Logf("image built in %s", time.Since(bstart).Round(time.Millisecond))

	var inspect struct {
		OCIv1 struct {
			Config struct {
				User       string   `json:"User"`
				Entrypoint []string `json:"Entrypoint"`
				Cmd        []string `json:"Cmd"`
			} `json:"config"`
		} `json:"OCIv1"`
	}
	if err := json.Unmarshal([]byte(buildah(ctx, t, "inspect", "--type", "image", imageTag)), &inspect); err != nil {
		t.Fatalf("image config: %v", err)
	}
	cfg := inspect.OCIv1.Config
	if want := fmt.Sprintf("%d:%d", imageUID, imageUID); cfg.User != want {
		t.Errorf("image user = %q, want %q", cfg.User, want)
	}
	if want := []string{"/usr/local/bin/stepup"}; !equalStrings(cfg.Entrypoint, want) {
		t.Errorf("image entrypoint = %q, want %q", cfg.Entrypoint, want)
	}

	ctr := strings.TrimSpace(buildah(ctx, t, "from", imageTag))
	t.Cleanup(func() {
		if _, err := buildahErr(context.Background(), "rm", ctr); err != nil {
			t.Errorf("removing container %s: %v", ctr, err)
		}
	})

	// stepup version: the build's version and commit.
	got := strings.TrimSpace(buildah(ctx, t, "run", "--isolation", "chroot", ctr, "--", "/usr/local/bin/stepup", "version"))
	m := versionLine.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("stepup version in the image printed %q, want %s", got, versionLine)
	}
	if want := gitShortHead(ctx, root); want != "" && !strings.HasPrefix(m[2], want) {
		t.Errorf("stepup version in the image printed %q, want commit %s (the checkout's HEAD)", got, want)
	}
	t.Logf("stepup version in the image: %s", got)
	if out := buildah(ctx, t, "run", "--isolation", "chroot", ctr, "--", "/usr/local/bin/stepup", "config", "validate", "--config", "/etc/stepup/stepup.yaml"); !strings.Contains(out, ": ok") {
		t.Errorf("config validate in the image printed %q, want ok", out)
	}

	// The image's default command, in the background.
	args := append([]string{"--storage-driver", "vfs", "run", "--isolation", "chroot", ctr, "--"}, cfg.Entrypoint...)
	serve, err := harness.Start(t, "stepup in the image", exec.Command("buildah", append(args, cfg.Cmd...)...))
	if err != nil {
		t.Fatal(err)
	}
	sstart := time.Now()
	for _, path := range []string{"/healthz", "/readyz"} {
		if body, err := waitHTTP(ctx, serve, "http://127.0.0.1:9192"+path, 60*time.Second); err != nil {
			serve.LogOutput(t)
			t.Fatal(err)
		} else if path == "/healthz" && body != "ok\n" {
			t.Errorf("GET %s = %q, want %q", path, body, "ok\n")
		}
	}
	t.Logf("served /healthz and /readyz %s after start", time.Since(sstart).Round(time.Millisecond))
	started := startedLine(serve.Stderr())
	if started == nil {
		serve.LogOutput(t)
		t.Fatal(`no "stepup started" log line`)
	}
	for key, want := range map[string]string{"grpc": "[::]:9191", "http": "[::]:9192", "data_dir": "/var/lib/stepup", "config": "/etc/stepup/stepup.yaml"} {
		if got, _ := started[key].(string); got != want {
			t.Errorf("stepup started: %s = %q, want %q (all interfaces, the image's data directory and configuration)", key, got, want)
		}
	}
	// buildah ends the container's process when it is asked to stop.
	if err := serve.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := serve.Wait(30 * time.Second); err != nil {
		t.Fatalf("buildah run did not stop: %v", err)
	}
	if err := waitPortsFree(10*time.Second, "0.0.0.0:9191", "0.0.0.0:9192"); err != nil {
		t.Errorf("stepup in the image kept listening after buildah run ended: %v", err)
	}

	// stepup wrote its data as the image's user, in the image's data
	// directory.
	mnt := strings.TrimSpace(buildah(ctx, t, "mount", ctr))
	defer buildahErr(context.Background(), "umount", ctr)
	for _, f := range []string{"session-keys", "sessions.db"} {
		fi, err := os.Stat(filepath.Join(mnt, "var/lib/stepup", f))
		if err != nil {
			t.Errorf("the data directory has no %s: %v", f, err)
			continue
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != imageUID {
			t.Errorf("/var/lib/stepup/%s belongs to uid %d, want %d", f, uid, imageUID)
		}
	}
	if fi, err := os.Stat(filepath.Join(mnt, "var/lib")); err != nil {
		t.Error(err)
	} else if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 {
		t.Errorf("/var/lib belongs to uid %d, want root", uid)
	}
	t.Logf("TestContainerImage took %s", time.Since(start).Round(time.Millisecond))
}

// buildah runs buildah with the vfs storage driver and returns its stdout,
// failing the test on error.
func buildah(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, err := buildahErr(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func buildahErr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "buildah", append([]string{"--storage-driver", "vfs"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("buildah %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// gitShortHead returns the first 12 digits of the checkout's HEAD when root
// is a git checkout the go command stamps into binaries (a .git directory),
// else "".
func gitShortHead(ctx context.Context, root string) string {
	if fi, err := os.Stat(filepath.Join(root, ".git")); err != nil || !fi.IsDir() {
		return ""
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil || len(bytes.TrimSpace(out)) < 12 {
		return ""
	}
	return string(bytes.TrimSpace(out)[:12])
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes, and
// returns the body.
func waitHTTP(ctx context.Context, p *harness.Proc, url string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body), nil
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, body)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("GET %s never answered 200 (last: %s)", url, last)
		case <-p.Exited():
			return "", fmt.Errorf("%s exited before GET %s answered (%s)", p.Name, url, p.ExitString())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitPortsFree(timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		err := harness.PortsFree(addrs...)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startedLine returns the JSON log line "stepup started" from stderr.
func startedLine(stderr string) map[string]any {
	for _, line := range strings.Split(stderr, "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "stepup started" {
			return l
		}
	}
	return nil
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

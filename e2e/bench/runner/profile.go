package runner

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// ProfileEnv is the environment variable through which the harness asks
// stepup for a net/http/pprof endpoint on a loopback address (see
// [Options.CPUProfileDir] and docs/performance.md, which proposes it for
// cmd/stepup).
const ProfileEnv = "STEPUP_PPROF"

// profile fetches a CPU profile from the pprof endpoint at addr covering
// the measured window (after warmup, for duration rounded up to whole
// seconds) and writes it to path. The returned channel yields the outcome
// once.
func profile(ctx context.Context, addr string, warmup, duration time.Duration, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			select {
			case <-time.After(warmup):
			case <-ctx.Done():
				return ctx.Err()
			}
			secs := int(math.Ceil(duration.Seconds()))
			if secs < 1 {
				secs = 1
			}
			cctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
			defer cancel()
			url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
			req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("stepup serves no pprof endpoint (%s=%s is not supported by this build): %w", ProfileEnv, addr, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", url, resp.Status)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}()
	}()
	return done
}

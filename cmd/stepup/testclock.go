package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// testClockFlag names serve's hidden test hook: a file holding a Go
// duration (for example "696h") that is added to the real time wherever
// stepup decides by the clock: the session manager (MFA sessions,
// remembered browsers, transaction states, assertions), the expiry of
// identity tokens, and the MFA step (TOTP time steps, CSRF tokens,
// lockouts). It lets end-to-end tests move a running stepup to "day 29"
// and "day 31" of a remembered browser without waiting.
//
// It is not shown in usage, and serve refuses it unless the configuration
// says development: true, so a production configuration can never run on
// a shifted clock. The stores' own TTLs, rule budgets, latency metrics and
// the rules' Date keep the real time.
const testClockFlag = "test-clock-file"

// maxTestClockOffset bounds the offset either way.
const maxTestClockOffset = 10 * 366 * 24 * time.Hour

// errTestClock marks an unusable test clock file.
var errTestClock = errors.New("test clock")

// testClock is the clock of the --test-clock-file hook: the real time
// plus the offset in the file, re-read on every call so that a test can
// move the clock of a running server. A file that becomes unreadable or
// invalid keeps the last good offset, and says so in the log once.
type testClock struct {
	path string
	log  *slog.Logger
	real func() time.Time

	mu      sync.Mutex
	offset  time.Duration
	failing bool
}

// newTestClock reads the file once; it must hold a valid offset.
func newTestClock(path string, log *slog.Logger) (*testClock, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &testClock{path: path, log: log, real: time.Now}
	off, err := readClockOffset(path)
	if err != nil {
		return nil, err
	}
	c.offset = off
	return c, nil
}

// Now returns the real time plus the file's current offset.
func (c *testClock) Now() time.Time {
	off, err := readClockOffset(c.path)
	c.mu.Lock()
	if err != nil {
		if !c.failing {
			c.log.Warn("test clock file unusable: keeping the last offset", "file", c.path, "error", err.Error(), "offset", c.offset.String())
		}
		c.failing = true
		off = c.offset
	} else {
		c.failing = false
		c.offset = off
	}
	c.mu.Unlock()
	return c.real().Add(off)
}

// readClockOffset reads and parses the offset file: one Go duration,
// surrounding white space ignored.
func readClockOffset(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errTestClock, err)
	}
	if len(b) > 64 {
		return 0, fmt.Errorf("%w: %s: more than 64 bytes", errTestClock, path)
	}
	s := strings.TrimSpace(string(b))
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: want a Go duration such as 696h: %w", errTestClock, path, err)
	}
	if d > maxTestClockOffset || d < -maxTestClockOffset {
		return 0, fmt.Errorf("%w: %s: offset %v beyond ±%v", errTestClock, path, d, maxTestClockOffset)
	}
	return d, nil
}

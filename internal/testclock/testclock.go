// Package testclock is the clock of serve's hidden test hook: the real
// time plus a Go duration (for example "696h") read from a file on every
// call, so that end-to-end tests can move a running stepup to "day 29" and
// "day 31" of a remembered browser without waiting.
//
// The clock decides wherever stepup decides by the clock: the session
// manager (MFA sessions, remembered browsers, transaction states,
// assertions), the expiry of identity tokens, and the MFA step (TOTP time
// steps, CSRF tokens, lockouts). The stores' own TTLs, rule budgets,
// latency metrics and the rules' Date keep the real time. serve refuses
// the hook unless the configuration says development: true.
package testclock

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// MaxOffset bounds the offset either way.
const MaxOffset = 10 * 366 * 24 * time.Hour

// ErrUnusable marks an unusable test clock file.
var ErrUnusable = errors.New("test clock")

// Clock is the real time plus the offset in a file, re-read on every call
// so that a test can move the clock of a running server. A file that
// becomes unreadable or invalid keeps the last good offset, and says so in
// the log once.
type Clock struct {
	path string
	log  *slog.Logger
	real func() time.Time

	mu      sync.Mutex
	offset  time.Duration
	failing bool
}

// New reads the file once; it must hold a valid offset.
func New(path string, log *slog.Logger) (*Clock, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Clock{path: path, log: log, real: time.Now}
	off, err := readClockOffset(path)
	if err != nil {
		return nil, err
	}
	c.offset = off
	return c, nil
}

// Now returns the real time plus the file's current offset.
func (c *Clock) Now() time.Time {
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
		return 0, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	if len(b) > 64 {
		return 0, fmt.Errorf("%w: %s: more than 64 bytes", ErrUnusable, path)
	}
	s := strings.TrimSpace(string(b))
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: want a Go duration such as 696h: %w", ErrUnusable, path, err)
	}
	if d > MaxOffset || d < -MaxOffset {
		return 0, fmt.Errorf("%w: %s: offset %v beyond ±%v", ErrUnusable, path, d, MaxOffset)
	}
	return d, nil
}

// Offset returns the offset last read from the file.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

package rules

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// jsSource is an enabled in-memory rule.
func jsSource(name, code string) Source {
	return Source{Name: name, Code: []byte(code), Enabled: true}
}

// seedSource loads a rule from testdata/auth0-examples.
func seedSource(t testing.TB, file string) Source {
	t.Helper()
	src, err := LoadFile(filepath.Join("testdata", "auth0-examples", file))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// newEngine builds an engine. Tests that are not about budgets get
// generous ones, so that a loaded machine cannot make them flaky.
func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.RuleTimeout == 0 {
		opts.RuleTimeout = 5 * time.Second
	}
	if opts.PipelineTimeout == 0 {
		opts.PipelineTimeout = 10 * time.Second
	}
	e, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(e.Close)
	// Nor can a descheduled slice of JavaScript: the slice bound is tested
	// on its own (budget_test.go).
	e.maxSlice = max(maxSlice, opts.RuleTimeout)
	return e
}

// runOne builds an engine with the given rules and runs it once.
func runOne(t testing.TB, opts Options, in Input) Result {
	t.Helper()
	return newEngine(t, opts).RunDebug(context.Background(), in)
}

// fixedNow is the clock of tests that need one.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// jsEval runs body (statements ending in `return <expr>;`) inside a rule
// and returns the JSON form of the value, or the error that stopped the
// rule.
func jsEval(t testing.TB, opts Options, body string) (any, *Error) {
	t.Helper()
	code := "function (user, context, callback) {\n" +
		"  context.idToken.result = (function () {\n" + body + "\n  })();\n" +
		"  callback(null, user, context);\n}"
	opts.Rules = []Source{jsSource("eval", code)}
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	in := Input{User: map[string]any{"user_id": "u1"}}
	e := newEngine(t, opts)
	res := e.RunDebug(context.Background(), in)
	if !e.nativeInput {
		// The same with native user and context objects (lazy.go).
		native := newEngine(t, opts)
		native.nativeInput = true
		if diff := cmp.Diff(native.RunDebug(context.Background(), in), res); diff != "" {
			t.Errorf("lazy objects differ from native ones (-native +lazy):\n%s", diff)
		}
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.IDTokenClaims["result"], nil
}

// logRecorder is a slog.Handler keeping records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []logRecord
	attrs   []slog.Attr
	onLog   func(logRecord)
}

type logRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]string
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Message: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	cb := h.onLog
	h.mu.Unlock()
	if cb != nil {
		cb(rec)
	}
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) find(substr string) (logRecord, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if strings.Contains(r.Message, substr) {
			return r, true
		}
	}
	return logRecord{}, false
}

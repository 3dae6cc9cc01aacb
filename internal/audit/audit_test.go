package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// readLines decodes every line of path, failing on a line that is not one
// whole JSON object.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %d is not a JSON object: %v\n%s", path, len(out)+1, err, sc.Bytes())
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecordWritesLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	if err := w.Record(Event{Time: at, Event: Decision, DecisionID: "d-1", RequestID: "r-1", Host: "payroll.example.org",
		Method: "GET", Path: "/report", User: "auth0|alice", ClientIP: "203.0.113.7", Network: "", ClientID: "payroll",
		Decision: "mfa_required", Reason: "mfa_required", Status: 302, LatencyMS: Float(0.25)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(Event{Event: FactorsReset, By: ByCLI, User: "auth0|alice", Counts: &Counts{Authenticators: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(Event{Event: "made_up", User: "auth0|alice"}); err == nil {
		t.Error("an unknown event name was accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Record(Event{Event: Verified}); err != ErrClosed {
		t.Errorf("Record after Close: %v, want ErrClosed", err)
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %v", len(lines), lines)
	}
	d := lines[0]
	for k, v := range map[string]any{"time": "2026-12-06T09:00:00Z", "event": "decision", "decision_id": "d-1", "request_id": "r-1",
		"host": "payroll.example.org", "method": "GET", "path": "/report", "user": "auth0|alice", "client_ip": "203.0.113.7",
		"client_id": "payroll", "decision": "mfa_required", "reason": "mfa_required", "status": 302.0, "latency_ms": 0.25} {
		if d[k] != v {
			t.Errorf("decision line %s = %v, want %v", k, d[k], v)
		}
	}
	if _, ok := d["network"]; ok {
		t.Error("an empty field was written")
	}
	r := lines[1]
	if r["event"] != "factors_reset" || r["by"] != "cli" || r["time"] == "" {
		t.Errorf("reset line %v", r)
	}
	counts, _ := r["counts"].(map[string]any)
	if counts["authenticators"] != 1.0 || counts["sessions"] != 0.0 {
		t.Errorf("reset counts %v: want every count, zeros too", counts)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != FileMode {
		t.Errorf("file mode %v (%v), want %v", fi.Mode().Perm(), err, os.FileMode(FileMode))
	}
}

// TestReopenAfterRename rotates the file as logrotate does (rename, then
// reopen) while writers keep writing: every line is in the old file or the
// new one, once, whole.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := w.Record(Event{Event: Verified, User: fmt.Sprintf("u%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	rotated := filepath.Join(dir, "audit.log.1")
	time.Sleep(time.Millisecond)
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := w.Record(Event{Event: Verified, User: "after"}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, f := range []string{rotated, path} {
		for _, l := range readLines(t, f) {
			seen[l["user"].(string)]++
		}
	}
	if len(seen) != writers*each+1 {
		t.Errorf("%d distinct lines, want %d", len(seen), writers*each+1)
	}
	for u, n := range seen {
		if n != 1 {
			t.Errorf("line of %s written %d times", u, n)
		}
	}
	last := readLines(t, path)
	if len(last) == 0 || last[len(last)-1]["user"] != "after" {
		t.Error("the line written after Reopen is not in the new file")
	}
}

// TestReopenFailureKeepsWriting: when the path cannot be opened again, the
// writer keeps the file it has.
func TestReopenFailureKeepsWriting(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "audit.log")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	moved := filepath.Join(dir, "moved")
	if err := os.Rename(sub, moved); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen into a missing directory succeeded")
	}
	if err := w.Record(Event{Event: Locked, User: "u", Scope: "user"}); err != nil {
		t.Fatal(err)
	}
	if l := readLines(t, filepath.Join(moved, "audit.log")); len(l) != 1 || l[0]["scope"] != "user" {
		t.Errorf("after a failed Reopen: %v", l)
	}
}

// TestConcurrentWriters: two writers on one file (the server and the
// command line) and many goroutines each: no line is torn or lost.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	long := strings.Repeat("p", 3000) // longer lines than a pipe's atomic write
	var wg sync.WaitGroup
	for g := range 8 {
		w := a
		if g%2 == 1 {
			w = b
		}
		wg.Go(func() {
			for i := range 200 {
				if err := w.Record(Event{Event: Decision, Path: "/" + long, User: fmt.Sprintf("%d-%d", g, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	lines := readLines(t, path)
	if len(lines) != 8*200 {
		t.Errorf("%d lines, want %d", len(lines), 8*200)
	}
}

// TestEventHasNoSecretField pins the field set: a new field must be
// judged here, and none may be able to carry a cookie, token, code,
// secret, query or header value.
func TestEventHasNoSecretField(t *testing.T) {
	b, err := json.Marshal(Event{Event: Decision, LatencyMS: Float(1), PauseSeconds: Float(1), Counts: &Counts{}, DryRun: true,
		By: "x", DecisionID: "x", RequestID: "x", Mode: "x", Host: "x", Method: "x", Path: "x", User: "x", ClientIP: "x", Network: "x",
		ClientID: "x", Decision: "x", Reason: "x", Status: 1, Rule: "x", Factor: "x", Would: "x", Result: "x", Scope: "x", Failures: 1, Device: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := "by client_id client_ip counts decision decision_id device dry_run event factor failures host latency_ms method mode network path pause_seconds reason request_id result rule scope status time user would"
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	if strings.Join(got, " ") != want {
		t.Errorf("fields:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	for _, k := range got {
		for _, bad := range []string{"cookie", "token", "code", "secret", "query", "header", "state", "password"} {
			if strings.Contains(k, bad) {
				t.Errorf("field %s could carry a %s", k, bad)
			}
		}
	}
}

package profiling

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
)

func TestStart(t *testing.T) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == Env && v != "" {
				return v, true
			}
			return "", false
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, bad := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.org:6060", "nonsense"} {
		if _, err := Start(ctx, log, env(bad)); err == nil {
			t.Errorf("%s=%q accepted, want refused", Env, bad)
		}
	}
	if addr, err := Start(ctx, log, env("")); err != nil || addr != nil {
		t.Fatalf("unset: addr=%v err=%v, want no endpoint", addr, err)
	}
	addr, err := Start(ctx, log, env("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("pprof cmdline: %d %q", resp.StatusCode, body)
	}
}

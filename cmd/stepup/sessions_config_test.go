package main

import (
	"io"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
)

// TestSessionsConfigMatchesManager: every sessions setting that `stepup
// config validate` accepts builds a session manager, and every one it
// refuses is refused with its path, so that a configuration that
// validates never fails at `stepup serve`.
func TestSessionsConfigMatchesManager(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string // under "sessions:"
		wantErr string // config validation error path; "" = valid
	}{
		{"defaults", "", ""},
		{"state ttl at Auth0's three days", "state_ttl: 72h", ""},
		{"state ttl over three days", "state_ttl: 73h", "sessions.state_ttl"},
		{"remember ttl of 400 days", "remember_ttl: 9600h", ""},
		{"remember ttl over 400 days", "remember_ttl: 9601h", "sessions.remember_ttl"},
		{"mfa session ttl over 400 days", "mfa_session_ttl: 9601h", "sessions.mfa_session_ttl"},
		{"remember idle of 3m", "remember_idle: 3m", ""},
		{"remember idle of 1m", "remember_idle: 1m", "sessions.remember_idle"},
		{"mfa session idle of 2m", "mfa_session_idle: 2m", "sessions.mfa_session_idle"},
		{"one remembered browser", "max_devices_per_user: 1", ""},
		{"1000 remembered browsers", "max_devices_per_user: 1000", ""},
		{"too many remembered browsers", "max_devices_per_user: 1001", "sessions.max_devices_per_user"},
		{"negative remembered browsers", "max_devices_per_user: -1", "sessions.max_devices_per_user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := strings.Replace(string(config.DefaultYAML()), "data_dir: stepup-data", "data_dir: "+t.TempDir(), 1)
			if tt.yaml != "" {
				yaml += "\nsessions:\n  " + tt.yaml + "\n"
			}
			cfg, err := config.Parse([]byte(yaml))
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("config: %v, want an error at %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			store := memstore.New(memstore.Options{})
			defer store.Close()
			key, err := session.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sessions.NewManagerWithKeys(cfg, store, []session.Key{key}, newLogger(io.Discard, "error"), nil); err != nil {
				t.Errorf("the configuration validates, but the session manager refuses it: %v", err)
			}
		})
	}
}

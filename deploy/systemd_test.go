package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/config"
)

// unitKeys returns the [Service] section's assignments of a unit file.
func unitKeys(unit string) map[string][]string {
	keys := map[string][]string{}
	section := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "[") {
			section = l
			continue
		}
		if k, v, ok := strings.Cut(l, "="); ok && section == "[Service]" && !strings.HasPrefix(l, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	return keys
}

// TestSystemdUnit runs `systemd-analyze verify` on the unit, with ExecStart
// pointing at the stepup built from this module, and fails on any warning
// (verify exits 0 on unknown keys and bad values, which systemd ignores).
func TestSystemdUnit(t *testing.T) {
	analyze := requireProgram(t, "systemd-analyze", "systemd")
	unit := string(readFile(t, "deploy/systemd/stepup.service"))
	keys := unitKeys(unit)
	want := map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "stepup",
		"ConfigurationDirectory":  "stepup",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if !containsString(keys[k], v) {
			t.Errorf("%s = %q, want %q", k, keys[k], v)
		}
	}
	if !containsString(keys["SystemCallFilter"], "@system-service") {
		t.Errorf("SystemCallFilter = %q, want @system-service", keys["SystemCallFilter"])
	}
	const bin = "/usr/local/bin/stepup"
	exec0 := keys["ExecStart"]
	if len(exec0) != 1 || !strings.HasPrefix(exec0[0], bin+" serve --config /etc/stepup/") {
		t.Fatalf("ExecStart = %q, want %s serve --config /etc/stepup/...", exec0, bin)
	}
	// stepup stops within TimeoutStopSec with the image's drain settings.
	if ts := keys["TimeoutStopSec"]; len(ts) != 1 {
		t.Errorf("TimeoutStopSec = %q, want one value", ts)
	} else if d, err := time.ParseDuration(ts[0]); err != nil {
		t.Errorf("TimeoutStopSec %q: %v", ts[0], err)
	} else {
		cfg, err := config.Load(filepath.Join(root, "deploy/container/stepup.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if need := cfg.Server.DrainDelay.D() + cfg.Server.ShutdownTimeout.D(); d < need {
			t.Errorf("TimeoutStopSec = %s, want at least drain_delay + shutdown_timeout = %s", d, need)
		}
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "stepup.service")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(unit, bin, stepupBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyUnit(analyze, file); err != nil || out != "" {
		t.Errorf("systemd-analyze verify stepup.service: %v\n%s", err, out)
	}
	// verify does notice a unit it cannot use, and so does this test.
	bad := strings.Replace(strings.ReplaceAll(unit, bin, stepupBin), "ProtectSystem=strict", "ProtectSystem=strictly", 1)
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyUnit(analyze, file); err == nil && out == "" {
		t.Error("systemd-analyze verify accepted ProtectSystem=strictly silently: the check above proves nothing")
	}
}

func verifyUnit(analyze, file string) (string, error) {
	cmd := exec.Command(analyze, "verify", "--man=no", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

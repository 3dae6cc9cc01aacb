package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stepup-dev/stepup/session"
)

// testKey returns a deterministic key for tests.
func testKey(id string, fill byte) session.Key {
	return session.Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)}
}

func TestGenerateKey(t *testing.T) {
	a, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("generated key is invalid: %v", err)
	}
	if len(a.Secret) != 32 || len(a.ID) != 8 {
		t.Errorf("generated key has id %q and a %d-byte secret, want 8 hex characters and 32 bytes", a.ID, len(a.Secret))
	}
	if a.ID == b.ID || bytes.Equal(a.Secret, b.Secret) {
		t.Error("two generated keys are equal")
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := session.Key{ID: "k1", Secret: []byte("super-secret-super-secret-super-secret")}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("key", "key", k)
	outputs := map[string]string{
		"%v":   fmt.Sprintf("%v", k),
		"%+v":  fmt.Sprintf("%+v", k),
		"%#v":  fmt.Sprintf("%#v", k),
		"%s":   fmt.Sprintf("%s", k),
		"%x":   fmt.Sprintf("%x", k),
		"slog": logged.String(),
	}
	enc := base64.RawURLEncoding.EncodeToString(k.Secret)
	for verb, out := range outputs {
		if strings.Contains(out, "super-secret") || strings.Contains(out, enc) || strings.Contains(out, fmt.Sprintf("%x", k.Secret)) {
			t.Errorf("%s prints the secret: %s", verb, out)
		}
		if !strings.Contains(out, "k1") && verb != "%x" {
			t.Errorf("%s does not name the key: %s", verb, out)
		}
	}
}

func TestParseKeys(t *testing.T) {
	s32 := bytes.Repeat([]byte{7}, 32)
	s40 := bytes.Repeat([]byte{0xfb}, 40)
	std := base64.StdEncoding.EncodeToString(s40)
	url := base64.RawURLEncoding.EncodeToString(s40)
	tests := []struct {
		name    string
		in      string
		want    []session.Key
		wantErr string // substring; "" means success
	}{
		{"one", "k1:" + url, []session.Key{{ID: "k1", Secret: s40}}, ""},
		{"std padded", "k1:" + std, []session.Key{{ID: "k1", Secret: s40}}, ""},
		{"order kept", "new:" + url + ",old:" + base64.StdEncoding.EncodeToString(s32), []session.Key{{ID: "new", Secret: s40}, {ID: "old", Secret: s32}}, ""},
		{"lines and comments", "# keys\nnew:" + url + "  # the signer\n\n old:" + base64.RawStdEncoding.EncodeToString(s32) + "\r\n", []session.Key{{ID: "new", Secret: s40}, {ID: "old", Secret: s32}}, ""},
		{"spaces and trailing comma", " a:" + url + " , b:" + url + ",", []session.Key{{ID: "a", Secret: s40}, {ID: "b", Secret: s40}}, ""},
		{"empty", "", nil, "no keys"},
		{"only comments", "# nothing\n", nil, "no keys"},
		{"no colon", "k1" + url, nil, "want id:base64secret"},
		{"bad base64", "k1:***", nil, "not valid base64"},
		{"short secret", "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 31)), nil, "want at least 32"},
		{"duplicate id", "k1:" + url + ",k1:" + url, nil, "more than once"},
		{"bad id", "k.1:" + url, nil, "key id"},
		{"empty id", ":" + url, nil, "key id"},
		{"long id", strings.Repeat("a", 33) + ":" + url, nil, "key id"},
		{"every problem", "x,k1:***", nil, "key 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := session.ParseKeys(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKeys error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), url) {
					t.Errorf("error message contains a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseKeys (-want +got):\n%s", diff)
			}
			again, err := session.ParseKeys(session.FormatKeys(got))
			if err != nil || !cmp.Equal(again, got) {
				t.Errorf("ParseKeys(FormatKeys(keys)) = %v, %v; want the keys back", again, err)
			}
		})
	}
}

func FuzzParseKeys(f *testing.F) {
	url := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, s := range []string{"", "k1:" + url, "a:" + url + ",b:" + url, "# c\nk:" + url + "\n", "k1", ":", "k1:***", "a:b:c", "\x00:\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := session.ParseKeys(s)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatal("ParseKeys returned no keys and no error")
		}
		for _, k := range keys {
			if err := k.Validate(); err != nil {
				t.Fatalf("ParseKeys returned an invalid key: %v", err)
			}
		}
		again, err := session.ParseKeys(session.FormatKeys(keys))
		if err != nil || !cmp.Equal(again, keys) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "keys")
	keys, created, err := session.LoadOrCreateKeyFile(path)
	if err != nil || !created || len(keys) != 1 {
		t.Fatalf("first LoadOrCreateKeyFile = %v, created %v, %v; want one new key", keys, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	again, created, err := session.LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateKeyFile: created %v, %v; want the existing file", created, err)
	}
	if diff := cmp.Diff(keys, again); diff != "" {
		t.Errorf("keys changed across loads (-first +second):\n%s", diff)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (temporary files left behind?)", len(entries))
	}

	// An operator adds a key in front: it signs from now on.
	k2, _ := session.GenerateKey()
	content, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(session.FormatKeys([]session.Key{k2})+"\n"+string(content)), 0o600); err != nil {
		t.Fatal(err)
	}
	rotated, _, err := session.LoadOrCreateKeyFile(path)
	if err != nil || len(rotated) != 2 || rotated[0].ID != k2.ID || rotated[1].ID != keys[0].ID {
		t.Errorf("after adding a key: %v, %v; want [%s %s]", rotated, err, k2.ID, keys[0].ID)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := session.LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key file: error = %v, want a refusal", err)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := session.LoadOrCreateKeyFile(bad); err == nil {
		t.Error("corrupt key file: no error")
	}
}

func TestLoadOrCreateKeyFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	const n = 8
	results := make([][]session.Key, n)
	errs := make([]error, n)
	creators := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], creators[i], errs[i] = session.LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	created := 0
	for i := range n {
		if creators[i] {
			created++
		}
		if !cmp.Equal(results[i], results[0]) {
			t.Errorf("opener %d got other keys than opener 0", i)
		}
	}
	if created != 1 {
		t.Errorf("%d openers created the file, want exactly 1", created)
	}
}

package session

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Key sizes.
const (
	// MinSecretLen is the minimum length of a [Key] secret in bytes.
	MinSecretLen = 32
	// MaxSecretLen is the maximum length of a [Key] secret in bytes.
	MaxSecretLen = 512
	// MaxKeyIDLen is the maximum length of a [Key] id.
	MaxKeyIDLen = 32
)

// Key is one secret of a key list. The id travels in tokens and sealed
// values so that the right key verifies them; the secret never leaves the
// process. Key's String, GoString and LogValue never reveal the secret.
type Key struct {
	// ID names the key: 1 to [MaxKeyIDLen] characters of [A-Za-z0-9_-].
	ID string
	// Secret is at least [MinSecretLen] random bytes.
	Secret []byte
}

// String returns the key id only.
func (k Key) String() string { return "session.Key(" + k.ID + ")" }

// GoString returns the key id only, so %#v does not print the secret.
func (k Key) GoString() string { return k.String() }

// LogValue makes slog log the key id only.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Validate checks the key's id and secret length.
func (k Key) Validate() error {
	if !validKeyID(k.ID) {
		return fmt.Errorf("key id %q: must be 1-%d characters of [A-Za-z0-9_-]", k.ID, MaxKeyIDLen)
	}
	if len(k.Secret) < MinSecretLen {
		return fmt.Errorf("key %q: secret is %d bytes, want at least %d", k.ID, len(k.Secret), MinSecretLen)
	}
	if len(k.Secret) > MaxSecretLen {
		return fmt.Errorf("key %q: secret is %d bytes, want at most %d", k.ID, len(k.Secret), MaxSecretLen)
	}
	return nil
}

// validateKeys checks every key and that ids are unique, reporting every
// problem at once.
func validateKeys(keys []Key) error {
	if len(keys) == 0 {
		return errors.New("no keys")
	}
	var errs []error
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[k.ID] {
			errs = append(errs, fmt.Errorf("key id %q appears more than once", k.ID))
		}
		seen[k.ID] = true
	}
	return errors.Join(errs...)
}

func validKeyID(s string) bool {
	if s == "" || len(s) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// GenerateKey returns a new key with a 32-byte secret and an 8-character hex
// id, both from crypto/rand.
func GenerateKey() (Key, error) {
	var id [4]byte
	secret := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, fmt.Errorf("generate key id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("generate key secret: %w", err)
	}
	return Key{ID: hex.EncodeToString(id[:]), Secret: secret}, nil
}

// ParseKeys parses a key list such as "id1:base64secret,id2:base64secret",
// the format of the configuration and the environment. Entries are
// separated by commas or white space (so one entry per line works too), and
// "#" starts a comment that runs to the end of the line. Secrets may use the
// standard or URL-safe base64 alphabet, with or without padding. The order
// is kept: the first key signs. Every problem is reported at once; error
// messages name entries by position and id, never by secret.
func ParseKeys(s string) ([]Key, error) {
	var (
		keys []Key
		errs []error
		n    int
	)
	for line := range strings.Lines(s) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, entry := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r' || r == '\n'
		}) {
			n++
			id, enc, ok := strings.Cut(entry, ":")
			if !ok {
				errs = append(errs, fmt.Errorf("key %d: want id:base64secret", n))
				continue
			}
			secret, err := decodeSecret(enc)
			if err != nil {
				errs = append(errs, fmt.Errorf("key %d (%q): secret is not valid base64", n, id))
				continue
			}
			keys = append(keys, Key{ID: id, Secret: secret})
		}
	}
	if len(errs) == 0 {
		if err := validateKeys(keys); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("parse keys: %w", err)
	}
	return keys, nil
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	return base64.RawStdEncoding.DecodeString(s)
}

// FormatKeys returns keys in the format ParseKeys reads, comma-separated,
// with URL-safe unpadded base64 secrets. The result contains the secrets.
func FormatKeys(keys []Key) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k.ID)
		b.WriteByte(':')
		b.WriteString(base64.RawURLEncoding.EncodeToString(k.Secret))
	}
	return b.String()
}

const keyFileHeader = `# stepup session keys, one id:base64secret per line.
# The first key signs; every key verifies. Generated on first start:
# production deployments should configure their own keys.
`

// LoadOrCreateKeyFile reads the key list in the file at path (the format of
// [ParseKeys], one key per line), or, when the file does not exist, creates
// it with mode 0600 holding one new key from [GenerateKey] and reports
// created = true. Creation is atomic: of two processes starting at once,
// both end up with the same keys. The parent directory is created with mode
// 0700 if needed. A file that group or others may read is refused.
func LoadOrCreateKeyFile(path string) (keys []Key, created bool, err error) {
	keys, err = loadKeyFile(path)
	if err == nil {
		return keys, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create key directory: %w", err)
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, ".keys-*")
	if err != nil {
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	content := keyFileHeader + FormatKeys([]Key{k}) + "\n"
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write key file: %w", err)
	}
	// A hard link publishes the complete file, and fails if another
	// process got there first; then its keys win.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			keys, err = loadKeyFile(path)
			return keys, false, err
		}
		return nil, false, fmt.Errorf("create key file: %w", err)
	}
	return []Key{k}, true, nil
}

func loadKeyFile(path string) ([]Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must not be accessible to group or others (chmod 600)", path, fi.Mode().Perm())
	}
	const maxFile = 1 << 20
	buf, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(buf) > maxFile {
		return nil, fmt.Errorf("key file %s is larger than %d bytes", path, maxFile)
	}
	keys, err := ParseKeys(string(buf))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return keys, nil
}

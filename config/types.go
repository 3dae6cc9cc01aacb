package config

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string ("500ms",
// "12h") in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be a string like \"500ms\" or \"12h\"", v.Line)
	}
	parsed, err := time.ParseDuration(v.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (use Go durations like \"500ms\", \"12h\")", v.Line, v.Value)
	}
	if parsed < 0 {
		return fmt.Errorf("line %d: duration %q is negative", v.Line, v.Value)
	}
	*d = Duration(parsed)
	return nil
}

// MarshalYAML writes the duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Secret is a value that should not be written into the file itself. In
// YAML it is a plain string (for non-secret values and tests), {env: NAME}
// (read from an environment variable) or {file: PATH} (read from a file,
// trailing newline removed).
type Secret struct {
	Value string `yaml:"value"`
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
}

// UnmarshalYAML accepts a plain string or {env|file|value}.
func (s *Secret) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.ScalarNode {
		s.Value = v.Value
		return nil
	}
	type plain Secret
	var p plain
	if err := decodeStrictNode(v, &p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// IsZero reports whether nothing is set.
func (s Secret) IsZero() bool { return s.Value == "" && s.Env == "" && s.File == "" }

// Resolve returns the secret's value. base resolves relative file paths.
func (s Secret) Resolve(c *Config) (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(c.Resolve(s.File))
		if err != nil {
			return "", fmt.Errorf("read secret file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	default:
		return s.Value, nil
	}
}

func (s Secret) check(v *validator, path string) {
	n := 0
	for _, x := range []string{s.Value, s.Env, s.File} {
		if x != "" {
			n++
		}
	}
	if n > 1 {
		v.add(path, "set one of a value, env or file")
	}
	if s.Env != "" {
		if _, ok := os.LookupEnv(s.Env); !ok {
			v.add(path, "environment variable %s is not set", s.Env)
		}
	}
}

// validator collects problems with their paths, and their lines when the
// file wrote them.
type validator struct {
	file     *written
	problems []problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, problem{line: v.file.line(path), path: path, msg: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error { return joinProblems(v.problems) }

func (v *validator) hostPort(path, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(path, "must be host:port: %v", err)
		return
	}
	_ = host
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.add(path, "invalid port %q", port)
	}
}

func (v *validator) tls(path string, t TLS) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add(path, "cert_file and key_file go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		v.add(path+".client_ca_file", "needs cert_file and key_file")
	}
}

// Memory limit modes of [ByteSizeOrAuto].
const (
	MemoryLimitAuto  = "auto"
	MemoryLimitOff   = "off"
	MemoryLimitFixed = "fixed"
)

// ByteSizeOrAuto is "auto", "off" or a size in bytes written as an integer
// with an optional unit: B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB
// (powers of 1000).
type ByteSizeOrAuto struct {
	// Mode is MemoryLimitAuto, MemoryLimitOff or MemoryLimitFixed.
	Mode string
	// Bytes is the size when Mode is MemoryLimitFixed.
	Bytes int64
}

// String formats the value as it is written in YAML.
func (b ByteSizeOrAuto) String() string {
	if b.Mode == MemoryLimitFixed {
		return FormatByteSize(b.Bytes)
	}
	return b.Mode
}

// UnmarshalYAML parses "auto", "off" or a size.
func (b *ByteSizeOrAuto) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected \"auto\", \"off\" or a size like \"512MiB\"", v.Line)
	}
	switch strings.ToLower(strings.TrimSpace(v.Value)) {
	case MemoryLimitAuto:
		*b = ByteSizeOrAuto{Mode: MemoryLimitAuto}
		return nil
	case MemoryLimitOff:
		*b = ByteSizeOrAuto{Mode: MemoryLimitOff}
		return nil
	}
	n, err := ParseByteSize(v.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", v.Line, err)
	}
	*b = ByteSizeOrAuto{Mode: MemoryLimitFixed, Bytes: n}
	return nil
}

// MarshalYAML writes the value as UnmarshalYAML reads it.
func (b ByteSizeOrAuto) MarshalYAML() (any, error) { return b.String(), nil }

// ByteSize is a size in bytes written as an integer with an optional
// unit, as in [ByteSizeOrAuto] ("64MiB").
type ByteSize int64

// UnmarshalYAML parses the size.
func (b *ByteSize) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a size like \"64MiB\"", v.Line)
	}
	n, err := ParseByteSize(v.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", v.Line, err)
	}
	*b = ByteSize(n)
	return nil
}

// MarshalYAML writes the size as UnmarshalYAML reads it.
func (b ByteSize) MarshalYAML() (any, error) { return FormatByteSize(int64(b)), nil }

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// ParseByteSize parses a non-negative integer with an optional unit (see
// [ByteSizeOrAuto]). Units are case-sensitive, as in GOMEMLIMIT.
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("invalid size %q (use an integer with an optional unit: B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// FormatByteSize writes n with the largest binary unit that divides it.
func FormatByteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// ErrGallery is wrapped by every error ParseGallery returns for a malformed
// gallery file.
var ErrGallery = errors.New("invalid gallery file")

// maxSourceBytes bounds the size of one rule file. Auth0 limited rules to
// 100 KB of code; a gallery file adds some Markdown around it.
const maxSourceBytes = 1 << 20

// Source is one rule as configured: its code and how to refer to it.
type Source struct {
	// Name is the display name used in logs, metrics and errors. When empty
	// it defaults to the base name of Path without its extension.
	Name string
	// Path is where the rule was read from; it only appears in messages and
	// may be empty.
	Path string
	// Code is the rule text: either JavaScript holding one function
	// expression, or an Auth0 gallery file (Markdown with YAML front matter
	// and one ```js block). Gallery files are recognised by a .md or
	// .markdown Path or by text starting with "---".
	Code []byte
	// Enabled rules run; disabled ones are skipped by New (Lint still
	// checks them).
	Enabled bool
	// Kind is ScriptRule, ScriptAction, or "" to detect it: a .js file
	// that is not a single function expression and assigns
	// exports.onExecutePostLogin or exports.onContinuePostLogin is an
	// Action, anything else a rule.
	Kind string
}

// Script kinds of a Source.
const (
	// ScriptRule is an Auth0 rule: function (user, context, callback).
	ScriptRule = "rule"
	// ScriptAction is an Auth0 post-login Action: a CommonJS module
	// assigning exports.onExecutePostLogin = async (event, api) => {...}
	// and optionally exports.onContinuePostLogin.
	ScriptAction = "action"
)

// LoadFile reads a .js file or an Auth0 gallery file into an enabled Source
// named after the file.
func LoadFile(path string) (Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return Source{}, fmt.Errorf("load rule: %w", err)
	}
	defer f.Close()
	code, err := io.ReadAll(io.LimitReader(f, maxSourceBytes+1))
	if err != nil {
		return Source{}, fmt.Errorf("load rule %s: %w", path, err)
	}
	if len(code) > maxSourceBytes {
		return Source{}, fmt.Errorf("load rule %s: file larger than %d bytes", path, maxSourceBytes)
	}
	return Source{Name: defaultName(path), Path: path, Code: code, Enabled: true}, nil
}

func defaultName(path string) string {
	base := filepath.Base(path)
	if ext := filepath.Ext(base); ext != "" && ext != base {
		base = strings.TrimSuffix(base, ext)
	}
	return base
}

// isGallery reports whether a source is an Auth0 gallery (Markdown) file.
func isGallery(src Source) bool {
	switch strings.ToLower(filepath.Ext(src.Path)) {
	case ".md", ".markdown":
		return true
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(src.Code, []byte("\xef\xbb\xbf")), " \t\r\n")
	return bytes.HasPrefix(t, []byte("---"))
}

// Gallery is a parsed Auth0 gallery file.
type Gallery struct {
	// FrontMatter is the YAML header; zero when the file has none.
	FrontMatter FrontMatter
	// Code is the text of the single ```js block.
	Code string
	// CodeLine is the 1-based line of the file on which Code starts, so
	// that error positions can be reported against the Markdown file.
	CodeLine int
}

// FrontMatter is the YAML header of a gallery file.
type FrontMatter struct {
	Gallery    bool     `json:"gallery"`
	Title      string   `json:"title,omitempty"`
	Categories []string `json:"categories,omitempty"`
	// Fields declares the configuration keys the rule reads.
	Fields []Field `json:"fields,omitempty"`
	// Raw holds every key of the header as decoded from YAML.
	Raw map[string]any `json:"-"`
}

// Field is one configuration key declared by a gallery file.
type Field struct {
	// Value is the configuration key, e.g. "DUO_MFA:DUO_IKEY".
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
	Type        string `json:"type,omitempty"`
	// Mandatory fields must be present (and non-empty) in the configuration
	// for the rule to load.
	Mandatory bool `json:"mandatory,omitempty"`
}

// ParseGallery parses an Auth0 gallery file: optional YAML front matter
// between "---" lines, then Markdown holding exactly one fenced code block
// whose info string is js or javascript (any case).
func ParseGallery(text []byte) (Gallery, error) {
	var g Gallery
	s := strings.TrimPrefix(string(text), "\ufeff")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	lines := strings.Split(s, "\n")

	body := 0 // index of the first line after the front matter
	first := 0
	for first < len(lines) && strings.TrimSpace(lines[first]) == "" {
		first++
	}
	if first < len(lines) && strings.TrimRight(lines[first], " \t") == "---" {
		end := -1
		for i := first + 1; i < len(lines); i++ {
			if t := strings.TrimRight(lines[i], " \t"); t == "---" || t == "..." {
				end = i
				break
			}
		}
		if end < 0 {
			return Gallery{}, fmt.Errorf("%w: front matter has no closing ---", ErrGallery)
		}
		fm, err := parseFrontMatter(strings.Join(lines[first+1:end], "\n"))
		if err != nil {
			return Gallery{}, err
		}
		g.FrontMatter = fm
		body = end + 1
	}

	var blocks []Gallery
	for i := body; i < len(lines); i++ {
		fence, info, ok := openingFence(lines[i])
		if !ok {
			continue
		}
		j := i + 1
		for j < len(lines) && !closingFence(lines[j], fence) {
			j++
		}
		lang := strings.ToLower(info)
		if lang == "js" || lang == "javascript" {
			blocks = append(blocks, Gallery{Code: strings.Join(lines[i+1:min(j, len(lines))], "\n"), CodeLine: i + 2})
		}
		i = j
	}
	switch len(blocks) {
	case 0:
		return Gallery{}, fmt.Errorf("%w: no ```js code block", ErrGallery)
	case 1:
	default:
		return Gallery{}, fmt.Errorf("%w: %d ```js code blocks, want exactly one", ErrGallery, len(blocks))
	}
	g.Code, g.CodeLine = blocks[0].Code, blocks[0].CodeLine
	return g, nil
}

func parseFrontMatter(y string) (FrontMatter, error) {
	var fm FrontMatter
	if strings.TrimSpace(y) == "" {
		return fm, nil
	}
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		return fm, fmt.Errorf("%w: front matter: %w", ErrGallery, err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return fm, nil
	}
	if err := json.Unmarshal(j, &fm.Raw); err != nil {
		return FrontMatter{}, fmt.Errorf("%w: front matter is not a mapping", ErrGallery)
	}
	if err := json.Unmarshal(j, &fm); err != nil {
		return FrontMatter{}, fmt.Errorf("%w: front matter: %w", ErrGallery, err)
	}
	for i, f := range fm.Fields {
		if strings.TrimSpace(f.Value) == "" {
			return FrontMatter{}, fmt.Errorf("%w: front matter field %d has no value", ErrGallery, i+1)
		}
	}
	return fm, nil
}

// openingFence recognises a CommonMark backtick or tilde fence opening
// (indented at most three spaces) and returns the fence and info string.
func openingFence(line string) (fence, info string, ok bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return "", "", false
	}
	for _, c := range []byte{'`', '~'} {
		n := 0
		for n < len(t) && t[n] == c {
			n++
		}
		if n >= 3 {
			info = strings.TrimSpace(t[n:])
			if c == '`' && strings.ContainsRune(info, '`') {
				return "", "", false
			}
			if k := strings.IndexAny(info, " \t{"); k >= 0 {
				info = info[:k]
			}
			return t[:n], info, true
		}
	}
	return "", "", false
}

func closingFence(line, fence string) bool {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 || !strings.HasPrefix(t, fence) {
		return false
	}
	rest := strings.TrimLeft(t, fence[:1])
	return strings.TrimSpace(rest) == ""
}

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// A file is read in four steps:
//
//  1. YAML into a node tree. A syntax error stops here: nothing after it
//     can be read reliably.
//  2. The tree, with aliases and merge keys (<<) expanded, is walked
//     against the Config structs (their yaml tags): every unknown key,
//     duplicate key and value of the wrong type is collected with its
//     line, and all of them are reported together.
//  3. The tree is laid over the embedded default's tree (see mergeNodes).
//  4. The result is decoded into a Config.
//
// Every key the file writes is remembered with its line, so that
// validation messages name the line too.

// maxNodes bounds the values a file may expand to through aliases: a few
// lines of anchors can otherwise stand for billions of values.
const maxNodes = 100_000

// problem is one thing wrong in the file, in the user's words.
type problem struct {
	line int    // 0: not known
	path string // "server.http.listen"; "" for the file as a whole
	msg  string
}

func (p problem) Error() string {
	var b strings.Builder
	if p.line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.line)
	}
	if p.path != "" {
		b.WriteString(p.path)
		b.WriteString(": ")
	}
	b.WriteString(p.msg)
	return b.String()
}

// joinProblems orders problems by line (unknown lines last, in the order
// found) and joins them into one error, nil when there are none.
func joinProblems(ps []problem) error {
	if len(ps) == 0 {
		return nil
	}
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].line, ps[j].line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// written records what a file wrote: the line of every key and list item
// by its path, and which of those paths are sections (structs, whose keys
// the file did not write come from the default).
type written struct {
	lines    map[string]int
	sections map[string]bool
}

// has reports whether the file wrote path itself.
func (w *written) has(path string) bool {
	if w == nil {
		return true
	}
	_, ok := w.lines[path]
	return ok
}

// line returns the line that a message about path should name: the line
// of path, or of the nearest enclosing value the file wrote whole (a list
// or a map of names; not a section, whose other keys may be defaults).
// 0 when the value is not the file's.
func (w *written) line(path string) int {
	if w == nil {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := w.lines[p]; ok {
			if p != path && w.sections[p] {
				return 0
			}
			return l
		}
	}
	return 0
}

// parentPath strips the last element of a path: "a.b[2]" → "a.b" → "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// parseTree reads YAML into its root value with aliases and merge keys
// expanded: nil for an empty file.
func parseTree(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, problem{line: extra.Line, msg: "a second YAML document (---): a configuration is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	x := expander{inProgress: map[*yaml.Node]bool{}}
	root, err := x.expand(doc.Content[0])
	if err != nil {
		return nil, err
	}
	return root, nil
}

// yamlError rewrites the YAML library's syntax error ("yaml: line 3:
// did not find expected key") as "line 3: ...".
func yamlError(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// expander copies a node tree with aliases replaced by what they name and
// merge keys (<<) by the keys they bring.
type expander struct {
	nodes      int
	inProgress map[*yaml.Node]bool
}

func (x *expander) expand(n *yaml.Node) (*yaml.Node, error) {
	x.nodes++
	if x.nodes > maxNodes {
		return nil, problem{line: n.Line, msg: fmt.Sprintf("the file stands for more than %d values (through aliases): refused", maxNodes)}
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, problem{line: n.Line, msg: "alias names no anchor"}
		}
		if x.inProgress[n.Alias] {
			return nil, problem{line: n.Line, msg: fmt.Sprintf("alias *%s is inside the value it names", n.Value)}
		}
		x.inProgress[n.Alias] = true
		defer delete(x.inProgress, n.Alias)
		return x.expand(n.Alias)
	case yaml.SequenceNode:
		out := *n
		out.Content = make([]*yaml.Node, 0, len(n.Content))
		for _, c := range n.Content {
			e, err := x.expand(c)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, e)
		}
		return &out, nil
	case yaml.MappingNode:
		return x.mapping(n)
	default:
		out := *n
		out.Content = nil
		return &out, nil
	}
}

// mapping expands a mapping: its own keys, then the keys of its merge
// keys' mappings that it does not set itself (the first merged mapping
// wins), as YAML's merge key is defined.
func (x *expander) mapping(n *yaml.Node) (*yaml.Node, error) {
	out := *n
	out.Content = nil
	var merged []*yaml.Node
	own := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			e, err := x.expand(v)
			if err != nil {
				return nil, err
			}
			switch e.Kind {
			case yaml.MappingNode:
				merged = append(merged, e)
			case yaml.SequenceNode:
				for _, m := range e.Content {
					if m.Kind != yaml.MappingNode {
						return nil, problem{line: m.Line, msg: "a merge key (<<) takes a mapping or a list of mappings"}
					}
					merged = append(merged, m)
				}
			default:
				return nil, problem{line: e.Line, msg: "a merge key (<<) takes a mapping or a list of mappings"}
			}
			continue
		}
		ke, err := x.expand(k)
		if err != nil {
			return nil, err
		}
		ve, err := x.expand(v)
		if err != nil {
			return nil, err
		}
		if ke.Kind == yaml.ScalarNode {
			own[ke.Value] = true
		}
		out.Content = append(out.Content, ke, ve)
	}
	for _, m := range merged {
		for i := 0; i+1 < len(m.Content); i += 2 {
			k := m.Content[i]
			if k.Kind == yaml.ScalarNode {
				if own[k.Value] {
					continue
				}
				own[k.Value] = true
			}
			out.Content = append(out.Content, k, m.Content[i+1])
		}
	}
	return &out, nil
}

var (
	configType         = reflect.TypeFor[Config]()
	durationType       = reflect.TypeFor[Duration]()
	byteSizeType       = reflect.TypeFor[ByteSize]()
	byteSizeOrAutoType = reflect.TypeFor[ByteSizeOrAuto]()
	secretType         = reflect.TypeFor[Secret]()
	networkType        = reflect.TypeFor[Network]()
)

// isSection reports whether t is a section: a struct decoded key by key
// from a mapping, and merged with the default's key by key. Secret,
// Network and ByteSizeOrAuto are structs written as single values.
func isSection(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != secretType && t != networkType && t != byteSizeOrAutoType
}

// yamlFields returns a struct's fields by yaml key, in declaration order.
func yamlFields(t reflect.Type) (keys []string, fields map[string]reflect.StructField) {
	fieldCache.Lock()
	defer fieldCache.Unlock()
	if f, ok := fieldCache.m[t]; ok {
		return f.keys, f.fields
	}
	fields = map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		keys = append(keys, name)
		fields[name] = f
	}
	fieldCache.m[t] = cachedFields{keys, fields}
	return keys, fields
}

type cachedFields struct {
	keys   []string
	fields map[string]reflect.StructField
}

var fieldCache = struct {
	sync.Mutex
	m map[reflect.Type]cachedFields
}{m: map[reflect.Type]cachedFields{}}

// walker checks a node tree against the Config structs.
type walker struct {
	problems []problem
	w        written
}

func newWalker() *walker {
	return &walker{w: written{lines: map[string]int{}, sections: map[string]bool{}}}
}

func (w *walker) add(n *yaml.Node, path, format string, args ...any) {
	w.problems = append(w.problems, problem{line: n.Line, path: path, msg: fmt.Sprintf(format, args...)})
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindWord names what a node is, for "expected X, found Y".
func kindWord(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value lines)"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks n as a value of type t at path.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isSection(t) {
		w.w.sections[path] = true
	}
	if isNull(n) {
		// Nothing written: the zero value (for a section: no keys).
		return
	}
	switch t {
	case durationType:
		w.duration(n, path)
		return
	case byteSizeType:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "expected a size such as 64MiB, found %s", kindWord(n))
		} else if _, err := ParseByteSize(n.Value); err != nil {
			w.add(n, path, "%v", err)
		}
		return
	case byteSizeOrAutoType:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "expected auto, off or a size such as 512MiB, found %s", kindWord(n))
			return
		}
		switch strings.ToLower(strings.TrimSpace(n.Value)) {
		case MemoryLimitAuto, MemoryLimitOff:
		default:
			if _, err := ParseByteSize(n.Value); err != nil {
				w.add(n, path, "%v; or auto, or off", err)
			}
		}
		return
	case secretType:
		switch n.Kind {
		case yaml.ScalarNode:
		case yaml.MappingNode:
			w.section(n, t, path)
		default:
			w.add(n, path, "expected a value, {env: NAME} or {file: PATH}, found %s", kindWord(n))
		}
		return
	case networkType:
		switch n.Kind {
		case yaml.SequenceNode:
			w.list(n, reflect.TypeFor[[]string](), path)
		case yaml.MappingNode:
			w.section(n, t, path)
		default:
			w.add(n, path, "expected a list of CIDRs or {cidrs: [...], files: [...]}, found %s", kindWord(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, "expected a mapping (key: value lines), found %s", kindWord(n))
			return
		}
		w.section(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n, path, "expected a mapping of names to values, found %s", kindWord(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				w.add(k, path, "a name must be a plain string, found %s", kindWord(k))
				continue
			}
			p := join(path, k.Value)
			if l, dup := seen[k.Value]; dup {
				w.add(k, path, "%q is written twice (first on line %d)", k.Value, l)
				continue
			}
			seen[k.Value] = k.Line
			w.w.lines[p] = k.Line
			w.walk(v, t.Elem(), p)
		}
	case reflect.Slice:
		w.list(n, t, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.add(n, path, "expected a string, found %s", kindWord(n))
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			w.add(n, path, "%s is not true or false", valueWord(n))
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
			w.add(n, path, "%s is not a whole number", valueWord(n))
		} else if t.Kind() == reflect.Int32 && int64(int32(i)) != i {
			w.add(n, path, "%s is too large", valueWord(n))
		}
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || n.Decode(&f) != nil {
			w.add(n, path, "%s is not a number", valueWord(n))
		}
	default:
		// A type this walker does not know: let the decoder judge it.
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			w.add(n, path, "%v", err)
		}
	}
}

// valueWord quotes a scalar, or names a list or mapping.
func valueWord(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return kindWord(n)
}

func (w *walker) list(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.ScalarNode {
		w.add(n, path, "expected a list, found %s (a list of one is written [%s])", kindWord(n), n.Value)
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.add(n, path, "expected a list, found %s", kindWord(n))
		return
	}
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		w.w.lines[p] = item.Line
		w.walk(item, t.Elem(), p)
	}
}

// section checks a mapping against a struct's yaml keys.
func (w *walker) section(n *yaml.Node, t reflect.Type, path string) {
	keys, fields := yamlFields(t)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.add(k, path, "a key must be a plain string, found %s", kindWord(k))
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			if s := suggest(k.Value, keys); s != "" {
				w.add(k, path, "unknown key %q (did you mean %q?)", k.Value, s)
			} else {
				w.add(k, path, "unknown key %q (known keys: %s)", k.Value, strings.Join(keys, ", "))
			}
			continue
		}
		if l, dup := seen[k.Value]; dup {
			w.add(k, path, "key %q is written twice (first on line %d)", k.Value, l)
			continue
		}
		seen[k.Value] = k.Line
		p := join(path, k.Value)
		w.w.lines[p] = k.Line
		w.walk(v, f.Type, p)
	}
}

// duration checks a Go duration.
func (w *walker) duration(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		w.add(n, path, "expected a duration such as 500ms or 12h, found %s", kindWord(n))
		return
	}
	d, err := time.ParseDuration(n.Value)
	switch {
	case err != nil && isNumber(n.Value):
		w.add(n, path, "%q is not a duration (give a unit: %[1]ss, %[1]sm or %[1]sh)", n.Value)
	case err != nil:
		w.add(n, path, "%q is not a duration (use Go durations such as 500ms, 90s, 15m, 12h)", n.Value)
	case d < 0:
		w.add(n, path, "%q is negative", n.Value)
	}
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// suggest returns the known key closest to an unknown one, "" when none
// is close: at most two edits apart (or one for short keys), or the
// unknown key is a prefix of exactly one known key.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	if len(key) <= 3 {
		bestD = 2
	}
	for _, k := range known {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	var prefixed []string
	for _, k := range known {
		if len(key) >= 3 && (strings.HasPrefix(k, key) || strings.HasPrefix(key, k)) {
			prefixed = append(prefixed, k)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the Levenshtein distance with adjacent transpositions
// (optimal string alignment), over bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// mergeNodes lays file over def, both values of type t: a section
// (struct) takes the file's keys, merged the same way, and the default's
// keys the file does not write; any other value the file writes — a
// scalar, a list, a map of names such as networks — replaces the
// default's whole. A section written empty (null) keeps the default's.
func mergeNodes(def, file *yaml.Node, t reflect.Type) *yaml.Node {
	switch {
	case file == nil:
		return def
	case def == nil:
		return file
	case !isSection(t):
		return file
	case isNull(file):
		return def
	case def.Kind != yaml.MappingNode || file.Kind != yaml.MappingNode:
		return file
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	_, fields := yamlFields(t)
	fileVals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(file.Content); i += 2 {
		fileVals[file.Content[i].Value] = file.Content[i+1]
	}
	out := *file
	out.Content = nil
	done := map[string]bool{}
	for i := 0; i+1 < len(def.Content); i += 2 {
		k, v := def.Content[i], def.Content[i+1]
		if fv, ok := fileVals[k.Value]; ok {
			var ft reflect.Type = reflect.TypeFor[string]()
			if f, ok := fields[k.Value]; ok {
				ft = f.Type
			}
			v = mergeNodes(v, fv, ft)
			done[k.Value] = true
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(file.Content); i += 2 {
		if !done[file.Content[i].Value] {
			out.Content = append(out.Content, file.Content[i], file.Content[i+1])
		}
	}
	return &out
}

// defaultTree is the embedded default's expanded tree.
var defaultTree = sync.OnceValue(func() *yaml.Node {
	n, err := parseTree(defaultYAML)
	if err != nil {
		panic("embedded default config: " + err.Error()) // a build defect, caught by tests
	}
	return n
})

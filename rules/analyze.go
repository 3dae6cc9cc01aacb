package rules

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/dop251/goja"
	"github.com/dop251/goja/ast"
	"github.com/dop251/goja/parser"
)

// ErrInvalidRules is wrapped by the error New returns when a rule cannot be
// loaded (syntax, shape, unavailable module, missing mandatory configuration).
var ErrInvalidRules = errors.New("invalid rules")

// Severity levels of a Finding.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// Finding is one problem reported by Lint (and, for errors, by New).
type Finding struct {
	// Rule is the rule's display name.
	Rule string `json:"rule"`
	// Path is the rule's Source.Path (may be empty).
	Path string `json:"path,omitempty"`
	// Severity is SeverityError or SeverityWarning.
	Severity string `json:"severity"`
	// Message describes the problem, without the rule name.
	Message string `json:"message"`
}

// String formats the finding as `rule "name": severity: message`.
func (f Finding) String() string {
	return fmt.Sprintf("rule %q: %s: %s", f.Rule, f.Severity, f.Message)
}

// LoadError lists every problem that kept New from building an Engine.
type LoadError struct {
	// Findings holds the error-severity findings, in rule order.
	Findings []Finding
}

// Error joins the findings as `rule "name": message` separated by "; ".
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("invalid rules: ")
	for i, f := range e.Findings {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "rule %q: %s", f.Rule, f.Message)
	}
	return b.String()
}

// Unwrap returns ErrInvalidRules.
func (e *LoadError) Unwrap() error { return ErrInvalidRules }

// compiledRule is a validated, compiled rule shared by every runtime.
type compiledRule struct {
	name    string
	path    string
	program *goja.Program
	// fields are the configuration keys declared by a gallery file.
	fields []Field
	// modules are the normalised require('literal') names.
	modules []string
	// configReads are the configuration keys read with a literal key.
	configReads []string
	gallery     bool
	// action marks a post-login Action (program yields its module
	// wrapper, see action.go); hasContinue says it assigns
	// exports.onContinuePostLogin.
	action, hasContinue bool
	// metadata says the code mentions a call that updates the user's
	// metadata (api.user.set*Metadata, auth0.users.update*Metadata).
	metadata bool
}

// ruleVar is the binding the analyser wraps the rule text in; it never
// reaches a runtime (only the function literal is compiled).
const ruleVar = "var __stepup_rule = "

// displayName picks the name used for a source at position idx.
func displayName(src Source, idx int) string {
	switch {
	case strings.TrimSpace(src.Name) != "":
		return strings.TrimSpace(src.Name)
	case src.Path != "":
		return defaultName(src.Path)
	default:
		return fmt.Sprintf("rule%d", idx+1)
	}
}

// analyze parses, validates and compiles one rule; require() of a literal
// name must resolve in modules. configuration may be nil, in which case
// configuration presence is not checked. The returned rule is nil when any
// error-severity finding was produced.
func analyze(src Source, idx int, configuration map[string]string, modules *moduleRegistry) (*compiledRule, []Finding) {
	return analyzeScript(src, idx, configuration, modules, false)
}

// analyzeScript is analyze; lenient (for Try) turns an Action's
// require() of an unavailable module into a warning, so that the Action
// fails when it runs, naming the module, instead of failing to load.
func analyzeScript(src Source, idx int, configuration map[string]string, modules *moduleRegistry, lenient bool) (*compiledRule, []Finding) {
	setRegexpTimeout()
	r := &compiledRule{name: displayName(src, idx), path: src.Path}
	var findings []Finding
	add := func(sev, format string, args ...any) {
		findings = append(findings, Finding{Rule: r.name, Path: src.Path, Severity: sev, Message: fmt.Sprintf(format, args...)})
	}

	code := string(src.Code)
	lineOffset := 0
	if isGallery(src) {
		g, err := ParseGallery(src.Code)
		if err != nil {
			add(SeverityError, "%v", err)
			return nil, findings
		}
		r.gallery = true
		r.fields = g.FrontMatter.Fields
		code = g.Code
		lineOffset = g.CodeLine - 1
	}
	if strings.TrimSpace(code) == "" {
		add(SeverityError, "rule has no code")
		return nil, findings
	}
	if len(code) > maxSourceBytes {
		add(SeverityError, "rule code larger than %d bytes", maxSourceBytes)
		return nil, findings
	}

	filename := src.Path
	if filename == "" {
		filename = r.name
	}
	r.metadata = mentionsMetadata(code)
	kind := strings.ToLower(strings.TrimSpace(src.Kind))
	switch kind {
	case "", ScriptRule, ScriptAction:
	default:
		add(SeverityError, "unknown kind %q (want %q or %q)", src.Kind, ScriptRule, ScriptAction)
		return nil, findings
	}
	if kind == ScriptAction {
		return analyzeAction(r, code, filename, lineOffset, configuration, modules, lenient, findings)
	}
	wrapped := strings.Repeat("\n", lineOffset) + ruleVar + code + "\n;"
	prog, err := parser.ParseFile(nil, filename, wrapped, 0, parser.WithDisableSourceMaps)
	if err == nil {
		if _, _, ok := ruleFunction(prog); !ok && kind == "" && looksLikeAction(code) {
			return analyzeAction(r, code, filename, lineOffset, configuration, modules, lenient, findings)
		}
	} else if kind == "" && looksLikeAction(code) {
		return analyzeAction(r, code, filename, lineOffset, configuration, modules, lenient, findings)
	}
	if err != nil {
		// Valid JavaScript that is not a function expression gets the
		// clearer message.
		if _, err2 := parser.ParseFile(nil, filename, code, 0, parser.WithDisableSourceMaps); err2 == nil {
			add(SeverityError, "rule must be a single function expression, such as function (user, context, callback) { ... }")
		} else {
			add(SeverityError, "syntax error: %s", syntaxMessage(err, lineOffset+1))
		}
		return nil, findings
	}
	fn, arity, ok := ruleFunction(prog)
	if !ok {
		add(SeverityError, "rule must be a single function expression, such as function (user, context, callback) { ... }")
		return nil, findings
	}
	if arity > 3 {
		add(SeverityError, "rule function declares %d parameters, at most 3 (user, context, callback)", arity)
	}

	if reason := nativeObjectsReason([]byte(code)); reason != "" {
		add(SeverityWarning, "the rule mentions %s: every rule then gets user and context as plain objects built before it runs, instead of on first access, which costs about twice the rules' CPU per check (docs/performance.md)", reason)
	}

	scan := scanAST(fn)
	for _, id := range scan.requires {
		m, ok := modules.resolve(id)
		if !ok {
			add(SeverityError, "module %q is not available", id)
			continue
		}
		if !slices.Contains(r.modules, m.name) {
			r.modules = append(r.modules, m.name)
		}
	}
	if scan.dynamicRequire {
		add(SeverityWarning, "require() with a non-literal argument can only be checked when the rule runs")
	}
	r.configReads = scan.configReads
	for _, use := range scan.auth0Uses {
		add(SeverityError, "%s", auth0Message(use))
	}

	checkConfiguration(r, configuration, add)

	for _, f := range findings {
		if f.Severity == SeverityError {
			return nil, findings
		}
	}

	// Compile the function literal alone: running the program yields the
	// rule function and declares nothing in the global scope.
	p, err := goja.CompileAST(&ast.Program{
		Body: []ast.Statement{&ast.ExpressionStatement{Expression: fn}},
		File: prog.File,
	}, false)
	if err != nil {
		add(SeverityError, "compile: %s", strings.TrimPrefix(err.Error(), "SyntaxError: "))
		return nil, findings
	}
	r.program = p
	return r, findings
}

// checkConfiguration reports, through add, mandatory configuration keys
// of a gallery rule that configuration lacks (an error) and keys the code
// reads that the front matter does not declare or configuration does not
// set (warnings). A nil configuration is not checked.
func checkConfiguration(r *compiledRule, configuration map[string]string, add func(sev, format string, args ...any)) {
	if configuration != nil {
		for _, f := range r.fields {
			if f.Mandatory && configuration[f.Value] == "" {
				add(SeverityError, "mandatory configuration key %q is not set", f.Value)
			}
		}
	}
	if len(r.fields) > 0 {
		declared := make([]string, 0, len(r.fields))
		for _, f := range r.fields {
			declared = append(declared, f.Value)
		}
		for _, k := range r.configReads {
			if slices.Contains(declared, k) {
				continue
			}
			if c := closest(k, declared); c != "" {
				add(SeverityWarning, "the code reads configuration key %q, which the front matter does not declare (closest declared key: %q)", k, c)
			} else {
				add(SeverityWarning, "the code reads configuration key %q, which the front matter does not declare", k)
			}
		}
	}
	if configuration != nil {
		for _, k := range r.configReads {
			if _, ok := configuration[k]; !ok {
				add(SeverityWarning, "the code reads configuration key %q, which is not set", k)
			}
		}
	}
}

// syntaxMessage formats the first parse error, undoing the column shift
// the wrapper introduces on the rule's first line.
func syntaxMessage(err error, firstLine int) string {
	var list parser.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		return err.Error()
	}
	e := *list[0]
	if e.Position.Line == firstLine && e.Position.Column > len(ruleVar) {
		e.Position.Column -= len(ruleVar)
	}
	return e.Error()
}

// ruleFunction checks that prog is exactly `var __stepup_rule = <function>`
// followed by empty statements, and returns the function and its arity.
func ruleFunction(prog *ast.Program) (ast.Expression, int, bool) {
	if len(prog.Body) == 0 {
		return nil, 0, false
	}
	vs, ok := prog.Body[0].(*ast.VariableStatement)
	if !ok || len(vs.List) != 1 {
		return nil, 0, false
	}
	for _, s := range prog.Body[1:] {
		if _, ok := s.(*ast.EmptyStatement); !ok {
			return nil, 0, false
		}
	}
	var params *ast.ParameterList
	switch fn := vs.List[0].Initializer.(type) {
	case *ast.FunctionLiteral:
		params = fn.ParameterList
	case *ast.ArrowFunctionLiteral:
		params = fn.ParameterList
	default:
		return nil, 0, false
	}
	arity := 0
	if params != nil {
		arity = len(params.List)
		if params.Rest != nil {
			arity++
		}
	}
	return vs.List[0].Initializer, arity, true
}

type scanResult struct {
	requires       []string
	dynamicRequire bool
	configReads    []string
	// exports are the names assigned as exports.NAME or
	// module.exports.NAME.
	exports []string
	// auth0Uses are the uses of the auth0 global other than the two
	// metadata updates stepup provides, as dotted paths ("auth0" alone
	// for a use that is not a member chain); empty when the code
	// declares its own auth0.
	auth0Uses []string
}

// scanAST walks the syntax tree (by reflection, as goja has no visitor)
// and collects require('literal') calls, configuration['literal'] /
// configuration.literal reads (event.secrets.literal in an Action),
// exports assignments and uses of the auth0 global.
func scanAST(root ast.Node) scanResult {
	var res scanResult
	seen := map[uintptr]bool{}
	// covered are auth0 identifiers already reported as part of a chain.
	covered := map[*ast.Identifier]bool{}
	declaresAuth0 := false
	addUnique := func(list *[]string, s string) {
		if !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			if n, ok := v.Interface().(ast.Node); ok {
				switch n := n.(type) {
				case *ast.CallExpression:
					if id, ok := n.Callee.(*ast.Identifier); ok && id.Name == "require" {
						if s, ok := literalString(n.ArgumentList); ok {
							addUnique(&res.requires, s)
						} else {
							res.dynamicRequire = true
						}
					}
				case *ast.BracketExpression:
					if id, ok := n.Left.(*ast.Identifier); ok && id.Name == "configuration" {
						if s, ok := n.Member.(*ast.StringLiteral); ok {
							addUnique(&res.configReads, s.Value.String())
						}
					}
					if isEventSecrets(n.Left) {
						if s, ok := n.Member.(*ast.StringLiteral); ok {
							addUnique(&res.configReads, s.Value.String())
						}
					}
				case *ast.DotExpression:
					if id, ok := n.Left.(*ast.Identifier); ok && id.Name == "configuration" {
						addUnique(&res.configReads, n.Identifier.Name.String())
					}
					if isEventSecrets(n.Left) {
						addUnique(&res.configReads, n.Identifier.Name.String())
					}
					if path, id := dotPath(n); id != nil && id.Name == "auth0" && !covered[id] {
						covered[id] = true
						if !auth0Allowed(path) {
							addUnique(&res.auth0Uses, path)
						}
					}
				case *ast.AssignExpression:
					if d, ok := n.Left.(*ast.DotExpression); ok && isExports(d.Left) {
						addUnique(&res.exports, d.Identifier.Name.String())
					}
				case *ast.Identifier:
					if n.Name == "auth0" && !covered[n] {
						covered[n] = true
						addUnique(&res.auth0Uses, "auth0")
					}
				case *ast.Binding:
					if id, ok := n.Target.(*ast.Identifier); ok && id.Name == "auth0" {
						declaresAuth0 = true
						covered[id] = true
					}
				case *ast.FunctionLiteral:
					if n.Name != nil && n.Name.Name == "auth0" {
						declaresAuth0 = true
						covered[n.Name] = true
					}
				case *ast.FunctionDeclaration:
					if n.Function != nil && n.Function.Name != nil && n.Function.Name.Name == "auth0" {
						declaresAuth0 = true
						covered[n.Function.Name] = true
					}
				}
			}
			walk(v.Elem())
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(root))
	if declaresAuth0 {
		res.auth0Uses = nil
	}
	return res
}

// dotPath returns "a.b.c" for a chain of dot expressions ending in an
// identifier, and that identifier; nil when the chain ends elsewhere.
func dotPath(n *ast.DotExpression) (string, *ast.Identifier) {
	parts := []string{n.Identifier.Name.String()}
	var left ast.Expression = n.Left
	for {
		switch l := left.(type) {
		case *ast.DotExpression:
			parts = append(parts, l.Identifier.Name.String())
			left = l.Left
			continue
		case *ast.Identifier:
			parts = append(parts, l.Name.String())
			slices.Reverse(parts)
			return strings.Join(parts, "."), l
		}
		return "", nil
	}
}

// isEventSecrets reports whether e is event.secrets.
func isEventSecrets(e ast.Expression) bool {
	d, ok := e.(*ast.DotExpression)
	if !ok || d.Identifier.Name != "secrets" {
		return false
	}
	id, ok := d.Left.(*ast.Identifier)
	return ok && id.Name == "event"
}

// isExports reports whether e is exports or module.exports.
func isExports(e ast.Expression) bool {
	switch x := e.(type) {
	case *ast.Identifier:
		return x.Name == "exports"
	case *ast.DotExpression:
		id, ok := x.Left.(*ast.Identifier)
		return ok && id.Name == "module" && x.Identifier.Name == "exports"
	}
	return false
}

func literalString(args []ast.Expression) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	switch a := args[0].(type) {
	case *ast.StringLiteral:
		return a.Value.String(), true
	case *ast.TemplateLiteral:
		if a.Tag == nil && len(a.Expressions) == 0 && len(a.Elements) == 1 {
			return a.Elements[0].Parsed.String(), true
		}
	}
	return "", false
}

// closest returns the candidate nearest to s by edit distance, or "" when
// none is reasonably close.
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(len(s), len(best))/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Lint checks every source (enabled or not) and reports load errors,
// unavailable modules, missing mandatory configuration, duplicate names and
// configuration keys the code reads but the gallery front matter does not
// declare. When opts.Configuration is nil, configuration presence is not
// checked; otherwise missing mandatory keys are errors and keys the code
// reads but the configuration lacks are warnings.
func Lint(opts Options) []Finding {
	var findings []Finding
	names := map[string]bool{}
	for i, src := range opts.Rules {
		name := displayName(src, i)
		if names[name] {
			findings = append(findings, Finding{Rule: name, Path: src.Path, Severity: SeverityError, Message: "duplicate rule name"})
		}
		names[name] = true
		_, f := analyze(src, i, opts.Configuration, builtinModules)
		findings = append(findings, f...)
	}
	return findings
}

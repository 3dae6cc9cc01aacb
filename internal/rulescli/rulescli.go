// Package rulescli is `stepup rules`: try rules once on a user and a
// context written as Auth0 wrote them, or lint rule files. It is a tool
// for rule authors and needs no configuration, store or server.
package rulescli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/stepup-dev/stepup/rules"
)

const usage = `Usage:
  stepup rules try --rule FILE [--rule FILE ...] [--user USER.json] [--context CONTEXT.json] [--configuration CFG.json] [--event EVENT.json]
      Run the rules once, like Auth0's "Try this rule", and print the outcome as JSON.
      A FILE is a rule (function (user, context, callback) {...}) or a
      post-login Action (exports.onExecutePostLogin = async (event, api) => {...}),
      mixed in any order; an Action's event is built from USER.json and
      CONTEXT.json by Auth0's migration mapping, with EVENT.json deep-merged
      over it last.
      USER.json holds the user profile (user_id, email, app_metadata, ...);
      CONTEXT.json uses Auth0's field names (clientID, protocol,
      request: {ip, hostname, userAgent, query, body, geoip, networks},
      authentication: {methods: [{name, timestamp}]}, stats, sso, ...);
      CFG.json is the rules configuration (an Action's event.secrets): an
      object of strings, or of {"env": NAME} / {"file": PATH} to read a
      secret from the environment or a file.
      console.* output goes to stderr. Exit 0 when the rules ran (whatever
      the outcome), 2 for bad input.

  stepup rules lint [--config stepup.yaml] [--configuration CFG.json] [FILE...]
      Report load errors, unavailable modules, missing mandatory configuration
      and configuration keys the code reads but does not declare, one per line
      as "file: severity: message". With --config, the rules of rules.list
      and their rules.configuration are read from stepup's configuration
      file, as serve reads them (FILE arguments are linted after them).
      Exit 1 if any error, 2 for bad input.
`

// ServeRules reads the rules and their configuration from stepup's
// configuration file at path, as serve does (for `lint --config`).
type ServeRules func(path string) ([]rules.Source, map[string]string, error)

// Run runs `stepup rules ARGS` and returns the exit status: 0 when
// the rules ran or the lint found no error, 1 for lint errors, 2 for bad
// input. serveRules may be nil: `lint --config` then reports bad input.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, serveRules ServeRules) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "try":
		return rulesTry(ctx, args[1:], stdout, stderr)
	case "lint":
		return rulesLint(args[1:], stdout, stderr, serveRules)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "stepup rules: unknown subcommand %q\n\n%s", args[0], usage)
		return 2
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func rulesTry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stepup rules try", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ruleFiles stringList
	fs.Var(&ruleFiles, "rule", "rule file (.js or Auth0 gallery .md); repeat for a pipeline, in order")
	userFile := fs.String("user", "", "JSON file with the user profile")
	contextFile := fs.String("context", "", "JSON file with the Auth0 context")
	cfgFile := fs.String("configuration", "", "JSON file with the rules configuration (an object of strings)")
	eventFile := fs.String("event", "", "JSON file deep-merged over every Action's event")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "stepup rules try: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q (rule files go after --rule)", fs.Arg(0))
	}
	if len(ruleFiles) == 0 {
		return fail("at least one --rule FILE is required")
	}
	srcs, err := loadRuleFiles(ruleFiles)
	if err != nil {
		return fail("%v", err)
	}
	cfg, err := readConfiguration(*cfgFile)
	if err != nil {
		return fail("%v", err)
	}
	var in rules.Input
	if *userFile != "" {
		if in.User, err = readJSONObject(*userFile); err != nil {
			return fail("%v", err)
		}
	}
	if *contextFile != "" {
		raw, err := readJSONObject(*contextFile)
		if err != nil {
			return fail("%v", err)
		}
		if in.Context, err = auth0Context(raw); err != nil {
			return fail("%s: %v", *contextFile, err)
		}
	}
	if *eventFile != "" {
		if in.Event, err = readJSONObject(*eventFile); err != nil {
			return fail("%v", err)
		}
	}
	out, err := rules.Try(ctx, rules.Options{
		Rules:         srcs,
		Configuration: cfg,
		Logger:        slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, in)
	if err != nil {
		var le *rules.LoadError
		if errors.As(err, &le) {
			for _, f := range le.Findings {
				fmt.Fprintf(stderr, "%s: %s: %s\n", findingFile(f), f.Severity, f.Message)
			}
			return 2
		}
		return fail("%v", err)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fail("encode result: %v", err)
	}
	data = append(data, '\n')
	if _, err := stdout.Write(data); err != nil {
		return fail("%v", err)
	}
	return 0
}

func rulesLint(args []string, stdout, stderr io.Writer, serveRules ServeRules) int {
	fs := flag.NewFlagSet("stepup rules lint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("configuration", "", "JSON file with the rules configuration; enables the configuration checks")
	serveCfg := fs.String("config", "", "stepup's configuration file: lint its rules.list with its rules.configuration")
	// Accept flags before, between and after the file names.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 && *serveCfg == "" {
		fmt.Fprintf(stderr, "stepup rules lint: no rule files given\n\n%s", usage)
		return 2
	}
	cfg, err := readConfiguration(*cfgFile)
	if err != nil {
		fmt.Fprintf(stderr, "stepup rules lint: %v\n", err)
		return 2
	}
	var srcs []rules.Source
	if *serveCfg != "" {
		if serveRules == nil {
			fmt.Fprintln(stderr, "stepup rules lint: --config is not available here")
			return 2
		}
		list, conf, err := serveRules(*serveCfg)
		if err != nil {
			fmt.Fprintf(stderr, "stepup rules lint: %v\n", err)
			return 2
		}
		srcs = list
		if cfg == nil {
			cfg = conf
		} else {
			for k, v := range conf {
				if _, ok := cfg[k]; !ok {
					cfg[k] = v
				}
			}
		}
	}
	more, err := loadRuleFiles(files)
	if err != nil {
		fmt.Fprintf(stderr, "stepup rules lint: %v\n", err)
		return 2
	}
	srcs = append(srcs, more...)
	code := 0
	for _, f := range rules.Lint(rules.Options{Rules: srcs, Configuration: cfg}) {
		fmt.Fprintf(stdout, "%s: %s: %s\n", findingFile(f), f.Severity, f.Message)
		if f.Severity == rules.SeverityError {
			code = 1
		}
	}
	return code
}

func findingFile(f rules.Finding) string {
	if f.Path != "" {
		return f.Path
	}
	return f.Rule
}

func loadRuleFiles(paths []string) ([]rules.Source, error) {
	srcs := make([]rules.Source, 0, len(paths))
	for _, p := range paths {
		src, err := rules.LoadFile(p)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// readJSONObject reads a file holding one JSON object (numbers kept exact).
func readJSONObject(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: invalid JSON: data after the object", path)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a JSON object", path)
	}
	return m, nil
}

// readConfiguration reads the rules configuration; "" means none (nil).
func readConfiguration(path string) (map[string]string, error) {
	if path == "" {
		return nil, nil
	}
	raw, err := readJSONObject(path)
	if err != nil {
		return nil, err
	}
	cfg := make(map[string]string, len(raw))
	for k, v := range raw {
		s, err := configValue(v, filepath.Dir(path))
		if err != nil {
			if errors.Is(err, errConfigType) {
				return nil, fmt.Errorf("%s: configuration value %q %w", path, k, err)
			}
			return nil, fmt.Errorf("%s: configuration value %q: %w", path, k, err)
		}
		cfg[k] = s
	}
	return cfg, nil
}

// configValue is a configuration value: a string, {"env": NAME} (the
// environment variable, which must be set) or {"file": PATH} (the file's
// content without its trailing newline; a relative PATH is relative to
// dir, the configuration file's), as in the server's configuration.
func configValue(v any, dir string) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if len(x) == 1 {
			if name, ok := x["env"].(string); ok && name != "" {
				s, ok := os.LookupEnv(name)
				if !ok {
					return "", fmt.Errorf("environment variable %s is not set", name)
				}
				return s, nil
			}
			if p, ok := x["file"].(string); ok && p != "" {
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, p)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return "", err
				}
				return strings.TrimRight(string(b), "\r\n"), nil
			}
		}
	}
	return "", errConfigType
}

var errConfigType = errors.New(`must be a string, {"env": NAME} or {"file": PATH}`)

// auth0Context maps a context object with Auth0's field names into
// rules.Context. Unknown fields are passed to the rules unchanged.
func auth0Context(raw map[string]any) (rules.Context, error) {
	var c rules.Context
	var errs []error
	str := func(key string, dst *string) {
		v, ok := raw[key]
		delete(raw, key)
		if !ok || v == nil {
			return
		}
		s, ok := v.(string)
		if !ok {
			errs = append(errs, fmt.Errorf("%s must be a string", key))
			return
		}
		*dst = s
	}
	obj := func(key string, v any) map[string]any {
		if v == nil {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			errs = append(errs, fmt.Errorf("%s must be an object", key))
		}
		return m
	}
	str("clientID", &c.ClientID)
	str("clientName", &c.ClientName)
	str("connection", &c.Connection)
	str("connectionStrategy", &c.ConnectionStrategy)
	str("protocol", &c.Protocol)
	str("sessionID", &c.SessionID)
	str("tenant", &c.Tenant)
	if v, ok := raw["clientMetadata"]; ok {
		delete(raw, "clientMetadata")
		m := obj("clientMetadata", v)
		c.ClientMetadata = make(map[string]string, len(m))
		for k, val := range m {
			s, ok := val.(string)
			if !ok {
				errs = append(errs, fmt.Errorf("clientMetadata.%s must be a string", k))
				continue
			}
			c.ClientMetadata[k] = s
		}
	}
	if v, ok := raw["stats"]; ok {
		delete(raw, "stats")
		c.Stats = obj("stats", v)
	}
	if v, ok := raw["sso"]; ok {
		delete(raw, "sso")
		c.SSO = obj("sso", v)
	}
	if v, ok := raw["request"]; ok {
		delete(raw, "request")
		req := obj("request", v)
		rs := func(key string, dst *string) {
			if v, ok := req[key]; ok && v != nil {
				s, ok := v.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("request.%s must be a string", key))
					return
				}
				*dst = s
			}
		}
		rs("ip", &c.Request.IP)
		rs("hostname", &c.Request.Hostname)
		rs("userAgent", &c.Request.UserAgent)
		c.Request.Query = obj("request.query", req["query"])
		c.Request.Body = obj("request.body", req["body"])
		c.Request.Geoip = obj("request.geoip", req["geoip"])
		if nets, ok := req["networks"]; ok && nets != nil {
			list, ok := nets.([]any)
			if !ok {
				errs = append(errs, errors.New("request.networks must be an array of strings"))
			}
			for _, n := range list {
				s, ok := n.(string)
				if !ok {
					errs = append(errs, errors.New("request.networks must be an array of strings"))
					break
				}
				c.Request.Networks = append(c.Request.Networks, s)
			}
		}
	}
	if v, ok := raw["authentication"]; ok {
		delete(raw, "authentication")
		methods, merrs := auth0Methods(obj("authentication", v))
		c.AuthenticationMethods, errs = methods, append(errs, merrs...)
	}
	if len(raw) > 0 {
		c.Extra = raw
	}
	return c, errors.Join(errs...)
}

// auth0Methods reads context.authentication.methods: each a name and,
// optionally, a timestamp in milliseconds since the epoch.
func auth0Methods(auth map[string]any) (methods []rules.Method, errs []error) {
	if ms, ok := auth["methods"]; ok && ms != nil {
		list, ok := ms.([]any)
		if !ok {
			errs = append(errs, errors.New("authentication.methods must be an array"))
		}
		for i, m := range list {
			mo, ok := m.(map[string]any)
			name, nameOK := mo["name"].(string)
			if !ok || !nameOK {
				errs = append(errs, fmt.Errorf("authentication.methods[%d] needs a string name", i))
				continue
			}
			meth := rules.Method{Name: name}
			if ts, ok := mo["timestamp"]; ok && ts != nil {
				n, ok := ts.(json.Number)
				f, err := n.Float64()
				if !ok || err != nil {
					errs = append(errs, fmt.Errorf("authentication.methods[%d].timestamp must be a number (ms since the epoch)", i))
					continue
				}
				meth.Timestamp = int64(f)
			}
			methods = append(methods, meth)
		}
	}
	return methods, errs
}

// Command stepup is an Envoy external-authorization server that adds
// contextual multi-factor authentication in front of any web application.
// `stepup help` lists its commands. With no --config, stepup runs on its
// embedded default configuration (config/default.yaml).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/internal/buildinfo"
	"github.com/stepup-dev/stepup/internal/rulescli"
	"github.com/stepup-dev/stepup/internal/rulesload"
	"github.com/stepup-dev/stepup/rules"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// errUsage marks bad command-line input (exit status 2).
var errUsage = errors.New("usage")

const usage = `stepup: step-up MFA for Envoy (ext_authz)

Usage:
  stepup serve [--config FILE]                  run the gRPC and HTTP servers
  stepup check --request FILE [--config FILE]   decide one CheckRequest (dry run)
  stepup rules try --rule FILE ... --user U.json --context C.json [--configuration CFG.json]
  stepup rules lint [--configuration CFG.json] FILE...
  stepup keys generate [--count N]              print new session keys
  stepup sessions list --user U [--config FILE] [--json]
  stepup sessions revoke --user U [--device ID] [--config FILE]
                                                forget a user's MFA sessions and remembered browsers
  stepup factors reset --user U [--config FILE] [--json]
                                                remove a user's authenticator and recovery codes, forget their browsers
  stepup config default                         print the embedded default configuration
  stepup config validate --config FILE          load a configuration file as serve would, without serving
  stepup version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], stdout, stderr)
	case "check":
		err = runCheck(ctx, args[1:], stdout, stderr)
	case "rules":
		return rulescli.Run(ctx, args[1:], stdout, stderr, serveRules)
	case "config":
		err = runConfig(ctx, args[1:], stdout, stderr)
	case "keys":
		err = runKeys(args[1:], stdout, stderr)
	case "sessions":
		err = runSessions(ctx, args[1:], stdout, stderr)
	case "factors":
		err = runFactors(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, buildinfo.Read())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "stepup: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "stepup %s: %v\n", args[0], err)
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// serveRules reads the rules and their configuration from a configuration
// file as serve does, for `stepup rules lint --config`.
func serveRules(path string) ([]rules.Source, map[string]string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	srcs, err := rulesload.Sources(cfg)
	if err != nil {
		return nil, nil, err
	}
	conf, err := rulesload.Configuration(cfg)
	if err != nil {
		return nil, nil, err
	}
	return srcs, conf, nil
}

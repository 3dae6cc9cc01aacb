package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/stepup-dev/stepup/config"
)

func runConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: config default | config validate --config FILE", errUsage)
	}
	switch args[0] {
	case "default":
		_, err := stdout.Write(config.DefaultYAML())
		return err
	case "validate":
		fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *path == "" {
			return fmt.Errorf("%w: --config FILE is required", errUsage)
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
		}
		notes, err := validateConfig(ctx, *path, stderr)
		if err != nil {
			return err
		}
		for _, n := range notes {
			fmt.Fprintf(stdout, "note: %s\n", n)
		}
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return nil
	default:
		return fmt.Errorf("%w: unknown config command %q", errUsage, args[0])
	}
}

// validateConfig loads the file and builds everything serve would build
// from it, through the same code (buildServer), then closes it without
// listening: an error is the one serve would stop on, with the same
// message. It returns notes on what it did not check (a store in use by a
// running server, keys not generated yet). Warnings serve would log go to
// stderr as text.
func validateConfig(ctx context.Context, path string, stderr io.Writer) ([]string, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := buildServer(ctx, cfg, path, "", log, true)
	if err != nil {
		return nil, err
	}
	s.close()
	return s.a.notes, nil
}

package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/stepup-dev/stepup/config"
)

func runConfig(args []string, stdout, stderr io.Writer) error {
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
		if _, err := config.Load(*path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok\n", *path)
		return nil
	default:
		return fmt.Errorf("%w: unknown config command %q", errUsage, args[0])
	}
}

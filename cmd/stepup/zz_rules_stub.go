package main

import (
	"context"
	"fmt"
	"io"
)

// TEMPORARY until rules_cmd.go lands.
func runRulesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "rules: not built")
	return 2
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/stepup-dev/stepup/mfa"
)

// runFactors implements `stepup factors reset --user U [--config FILE]`.
func runFactors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reset" {
		return fmt.Errorf("%w: factors reset --user U [--config FILE]", errUsage)
	}
	fs := flag.NewFlagSet("factors reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, user := userFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *user == "" {
		return fmt.Errorf("%w: --user is required", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	u, err := openUserCommand(*cfgPath, stderr)
	if err != nil {
		return err
	}
	defer u.close()
	res, err := u.ops.ResetFactors(ctx, *user)
	if err != nil {
		return err
	}
	u.record(mfa.AuditEvent{Name: mfa.AuditFactorsReset, User: *user, Removed: &res})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "reset %s: removed %d authenticator(s) and %d recovery code(s), revoked %d session(s) and remembered browser(s)\n",
		*user, res.Authenticators, res.RecoveryCodes, res.Sessions)
	if res.Authenticators == 0 && res.RecoveryCodes == 0 {
		fmt.Fprintf(stdout, "%s had no factors enrolled\n", *user)
	}
	return nil
}

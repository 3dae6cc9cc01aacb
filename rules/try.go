package rules

import (
	"context"
	"fmt"
)

// TryResult is the JSON printed by `stepup rules try`, Auth0's "Try this
// rule".
type TryResult struct {
	// Outcome is "continue" when every rule called back without error,
	// else "error".
	Outcome string `json:"outcome"`
	// Rule is the rule that stopped the pipeline, or null.
	Rule *string `json:"rule"`
	// Error is {name, message, kind} or null.
	Error *TryError `json:"error"`
	// Multifactor is the validated context.multifactor, or null.
	Multifactor *Multifactor `json:"multifactor"`
	// Redirect is context.redirect, or null.
	Redirect *Redirect `json:"redirect"`
	// User and Context are the final objects (secrets redacted).
	User    map[string]any `json:"user"`
	Context map[string]any `json:"context"`
}

// TryError is the error part of a TryResult.
type TryError struct {
	Name    string    `json:"name"`
	Message string    `json:"message"`
	Kind    ErrorKind `json:"kind"`
}

// Try builds an engine from opts, runs the pipeline once on in, and
// describes the outcome. The error is non-nil only when the rules cannot be
// loaded; rule failures are part of the TryResult.
func Try(ctx context.Context, opts Options, in Input) (TryResult, error) {
	if opts.PoolSize == 0 {
		opts.PoolSize = 1
	}
	e, err := build(opts, true)
	if err != nil {
		return TryResult{}, err
	}
	defer e.Close()
	res := e.RunDebug(ctx, in)
	out := TryResult{
		Outcome:     "continue",
		Multifactor: res.Multifactor,
		Redirect:    res.Redirect,
		User:        res.User,
		Context:     res.Context,
	}
	if res.Err != nil {
		out.Outcome = "error"
		out.Error = &TryError{Name: res.Err.Name, Message: res.Err.Message, Kind: res.Err.Kind}
		if res.Rule != "" {
			r := res.Rule
			out.Rule = &r
		}
	}
	return out, nil
}

// String summarises a TryResult for logs.
func (t TryResult) String() string {
	if t.Error != nil {
		return fmt.Sprintf("error: %s: %s", t.Error.Name, t.Error.Message)
	}
	return t.Outcome
}

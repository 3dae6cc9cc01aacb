package rules

import (
	"context"
	"strings"
	"testing"
	"time"
)

// redosRule runs a backtracking regular expression (lookahead: goja runs
// it on regexp2, not Go's regexp) on the user agent, and lets the request
// through when it does not match.
const redosRule = `function (user, context, callback) {
  if (/^(\w+\s?)+(?=;)/.test(context.request.userAgent)) {
    return callback(new UnauthorizedError('bot'));
  }
  context.idToken.passed = true;
  callback(null, user, context);
}`

func redosInput(n int) Input {
	return Input{User: map[string]any{"user_id": "u"}, Context: Context{Request: Request{UserAgent: strings.Repeat("a", n) + "!"}}}
}

// TestRegexpBoundedByBudget: a backtracking match that would run for
// seconds (minutes, with a longer input) ends the rule with a timeout
// well before that, whatever the rule budget, and never lets the request
// through on a match cut short.
func TestRegexpBoundedByBudget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget time.Duration
		n      int
	}{
		{"default budget", DefaultRuleTimeout, 24},
		{"long budget, longer input", 5 * time.Second, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Options{Rules: []Source{jsSource("ua", redosRule)}, RuleTimeout: tc.budget, PipelineTimeout: 2 * tc.budget})
			e.maxSlice = maxSlice
			start := time.Now()
			res := e.Run(context.Background(), redosInput(tc.n))
			took := time.Since(start)
			t.Logf("answered in %v: %v", took, res.Err)
			if res.Err == nil || res.Err.Kind != KindTimeout {
				t.Errorf("got err=%v claims=%v, want a timeout", res.Err, res.IDTokenClaims)
			}
			// Today's engine took 7.6 s for 24 characters; a generous
			// bound that a loaded machine still meets.
			if took > 2*time.Second {
				t.Errorf("the run took %v, want well under 2s", took)
			}
		})
	}
	// A match that completes in time still works.
	e := newEngine(t, Options{Rules: []Source{jsSource("ua", redosRule)}})
	if res := e.Run(context.Background(), redosInput(3)); res.Err != nil || res.IDTokenClaims["passed"] != true {
		t.Errorf("short input: err=%v claims=%v", res.Err, res.IDTokenClaims)
	}
}

// TestSyncSliceBounded: a rule budget longer than maxSlice buys waiting
// time, not uninterrupted JavaScript: an infinite loop ends after about
// maxSlice.
func TestSyncSliceBounded(t *testing.T) {
	e := newEngine(t, Options{Rules: []Source{jsSource("loop", "function (user, context, callback) { while (true) {} }")},
		RuleTimeout: 10 * time.Second, PipelineTimeout: 10 * time.Second})
	e.maxSlice = maxSlice
	start := time.Now()
	res := e.Run(context.Background(), Input{})
	if res.Err == nil || res.Err.Kind != KindTimeout {
		t.Fatalf("got %v, want a timeout", res.Err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the loop ran %v with a 10s budget, want about %v", took, maxSlice)
	}
}

// TestMemoryBounded: a rule that allocates without bound is stopped and
// its runtime discarded, well before it holds hundreds of MiB.
func TestMemoryBounded(t *testing.T) {
	for _, tc := range []struct {
		name, code string
		// discard: stopped by the guard, not by a RangeError the
		// built-in throws before allocating.
		discard bool
	}{
		{"string", `var s = 'x'; for (var i = 0; i < 40; i++) { s = s + s + i; } context.idToken.n = s.length;`, true},
		{"array", `var a = []; for (var i = 0; i < 1e7; i++) { a.push({i: i}); } context.idToken.n = a.length;`, true},
		{"repeat", `context.idToken.n = 'abcd'.repeat(64 * 1024 * 1024).length;`, false},
		{"padStart", `context.idToken.n = 'abcd'.padStart(256 * 1024 * 1024, 'x').length;`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := "function (user, context, callback) {\n" + tc.code + "\ncallback(null, user, context);\n}"
			e := newEngine(t, Options{Rules: []Source{jsSource("hog", code)}, PoolSize: 1, MaxRuntimeMemory: 32 << 20,
				RuleTimeout: 20 * time.Second, PipelineTimeout: 20 * time.Second})
			e.maxSlice = 20 * time.Second
			res := e.Run(context.Background(), Input{})
			if res.Err == nil || res.Err.Kind != KindException || res.Err.Name != "RangeError" {
				t.Fatalf("got err=%v claims=%v, want a RangeError", res.Err, res.IDTokenClaims)
			}
			if s := e.Stats(); (s.RuntimesDiscarded == 1) != tc.discard {
				t.Errorf("runtimes discarded = %d, want discarded %v", s.RuntimesDiscarded, tc.discard)
			}
		})
	}
}

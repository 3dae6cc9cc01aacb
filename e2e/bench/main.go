// Command bench is stepup's side-by-side benchmark (docs/performance.md): stepup
// against an allow-all ext_authz baseline, scenario by scenario, with the
// same closed-loop gRPC load, alternating over rounds. Run it from the
// module root:
//
//	go run ./e2e/bench -duration 10s -rounds 5 -out bench-results
//
// It prints a table and writes results.json, results.md and results.svg
// into -out (bench-results/ is not committed); the past-saturation run
// follows the scenarios. -curves measures the cost curves instead
// (curves.json, curves.md, curves.svg). -smoke runs every scenario
// for a fraction of a second: decisions are checked, speed is not judged.
// The method and the latest figures are in docs/performance.md.
//
// The exit status is 1 when a scenario failed (a wrong decision, a server
// that did not start, more than 1% failed calls) and 2 for bad flags;
// missed targets are reported in the table, not in the status.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/stepup-dev/stepup/e2e/bench/runner"
)

func main() {
	os.Exit(run())
}

func run() int {
	var o runner.Options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&o.Duration, "duration", 0, "measured time per side per round (default 10s; smoke 400ms)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "warm-up before each measured window (default 2s; smoke 200ms)")
	fs.IntVar(&o.Rounds, "rounds", 0, "rounds per scenario, alternating which side goes first (default 5; smoke 1)")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "closed-loop workers (default 16)")
	fs.IntVar(&o.Conns, "conns", 0, "HTTP/2 connections the workers share (default 2)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "per-Check deadline sent as grpc-timeout (default 200ms, Envoy's)")
	fs.IntVar(&o.Startups, "startups", 0, "stepup start-ups timed per scenario (default 3; smoke 1)")
	scenarios := fs.String("scenarios", "", "comma-separated scenario ids to run, and \"saturation\" for the past-saturation run (default all)")
	curves := fs.Bool("curves", false, "measure the cost curves (rules, prefixes, users, used-markers) instead of the scenarios; about 7 minutes on 2 cores, defaults -duration 3s -warmup 1s -rounds 2; writes curves.{json,md,svg}")
	fs.BoolVar(&o.Smoke, "smoke", false, "a few seconds per scenario: check decisions, judge no speed target")
	fs.StringVar(&o.StepupBin, "stepup", "", "prebuilt stepup binary (default: go build ./cmd/stepup)")
	fs.StringVar(&o.BaselineBin, "baseline", "", "prebuilt baseline binary (default: go build ./e2e/bench/baseline)")
	fs.StringVar(&o.OutDir, "out", "bench-results", "results directory (\"\" writes nothing)")
	fs.Func("stepup-env", "KEY=VALUE added to stepup's environment, e.g. GOGC=400 (repeatable; the baseline does not get it)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.StepupEnv = append(o.StepupEnv, v)
		return nil
	})
	fs.StringVar(&o.CPUProfileDir, "cpuprofile", "", "write a CPU profile of stepup per scenario into this directory (needs a stepup serving pprof on $"+runner.ProfileEnv+", see docs/performance.md)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.Saturation = *scenarios == ""
	if *scenarios != "" {
		o.Scenarios = []int{}
		for _, f := range strings.Split(*scenarios, ",") {
			if strings.TrimSpace(f) == "saturation" {
				o.Saturation = true
				continue
			}
			id, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || id < 1 || id > len(runner.Scenarios()) {
				fmt.Fprintf(os.Stderr, "bench: -scenarios: %q is not a scenario id (1-%d)\n", f, len(runner.Scenarios()))
				return 2
			}
			o.Scenarios = append(o.Scenarios, id)
		}
	}
	o.RequireRedis = os.Getenv("CI") == "true"
	o.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *curves {
		return runCurves(ctx, o)
	}
	rep, err := runner.Run(ctx, o)
	if rep != nil {
		fmt.Println()
		if werr := rep.WriteTable(os.Stdout); werr != nil && err == nil {
			err = werr
		}
		if o.OutDir != "" {
			fmt.Printf("results: %s/{%s,%s,%s}\n", o.OutDir, runner.JSONFile, runner.MarkdownFile, runner.SVGFile)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func runCurves(ctx context.Context, o runner.Options) int {
	rep, err := runner.RunCurves(ctx, o)
	if rep != nil {
		fmt.Println()
		if werr := rep.WriteTable(os.Stdout); werr != nil && err == nil {
			err = werr
		}
		if o.OutDir != "" {
			fmt.Printf("results: %s/{%s,%s,%s}\n", o.OutDir, runner.CurvesJSONFile, runner.CurvesMarkdownFile, runner.CurvesSVGFile)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

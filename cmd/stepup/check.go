package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stepup-dev/stepup/config"
)

// runCheck is a dry run: it decides one CheckRequest read from a file and
// prints the CheckResponse.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reqPath := fs.String("request", "", "CheckRequest in protojson (or JSON with the same field names); - for stdin")
	cfgPath := fs.String("config", "", "configuration file (default: the embedded default)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *reqPath == "" {
		return fmt.Errorf("%w: --request FILE is required", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	var data []byte
	var err error
	if *reqPath == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 8<<20))
	} else {
		data, err = os.ReadFile(*reqPath)
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	req := &authv3.CheckRequest{}
	if err := protojson.Unmarshal(data, req); err != nil {
		return fmt.Errorf("%w: %s is not a CheckRequest in protojson: %v", errUsage, *reqPath, err)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	// The dry run logs only warnings, to stderr, so stdout stays parseable.
	log := newLogger(stderr, "warn")
	a, err := buildApp(ctx, dryRunConfig(cfg), log, buildOptions{dryRun: true})
	if err != nil {
		return err
	}
	defer a.Close()
	resp, err := a.authz.Check(ctx, req)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(resp)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s\n", out, summarize(resp))
	return nil
}

// dryRunConfig adapts a configuration for a one-shot check: decisions are
// not logged.
func dryRunConfig(cfg *config.Config) *config.Config {
	c := *cfg
	c.Log.Decisions = "none"
	return &c
}

// summarize is the one-line summary printed after the response.
func summarize(resp *authv3.CheckResponse) string {
	md := resp.GetDynamicMetadata().GetFields()
	decision := md["decision"].GetStringValue()
	reason := md["reason"].GetStringValue()
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		var hs []string
		for _, h := range resp.GetOkResponse().GetHeaders() {
			hs = append(hs, h.GetHeader().GetKey()+"="+h.GetHeader().GetValue())
		}
		return fmt.Sprintf("decision=%s reason=%s status=200 headers=[%s]", decision, reason, strings.Join(hs, " "))
	}
	dr := resp.GetDeniedResponse()
	loc := ""
	for _, h := range dr.GetHeaders() {
		if h.GetHeader().GetKey() == "location" {
			loc = " location=" + h.GetHeader().GetValue()
		}
	}
	return fmt.Sprintf("decision=%s reason=%s status=%d%s", decision, reason, int(dr.GetStatus().GetCode()), loc)
}

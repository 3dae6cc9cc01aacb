package envoy

// This file checks the Caddy and nginx examples (docs/envoy.md#forward-auth-caddy-and-nginx). Each file is
// parsed into a tree of directives and checked for what stepup's forward-auth endpoints
// need and for what they must never allow:
//
//   - the authorization request goes to the right endpoint (/forward-auth for Caddy,
//     /forward-auth/nginx for nginx), and every header stepup takes the original request
//     from (X-Forwarded-Method/Uri/Host/Proto/For, X-Original-Method/URI) is written by
//     the proxy, never passed on from the client: stepup believes them from a trusted
//     proxy;
//   - all four identity headers reach the application from stepup's answer, and the
//     stepup headers that stepup cannot remove in this mode are stripped;
//   - only /.stepup/ is proxied to stepup's HTTP port, unrewritten, so the decision
//     endpoints, /metrics and the health endpoints stay private;
//   - /.stepup/ goes through stepup's check as well, and the MFA step receives the signed
//     identity assertion from stepup's answer, never a client-sent copy.
//
// Then `caddy adapt --validate` and `nginx -t` check the files for real, and the JSON that
// Caddy adapts the Caddyfile to is checked again for the routing rules.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// stepupHeaderNames are the request headers stepup reads or sets whose client-sent copies
// must never reach stepup's MFA step through a proxy.
var stepupHeaderNames = append(slices.Clone(stepupIdentityHeaders), "X-Stepup-Assertion", "X-Stepup-Client-Id")

// dialsStepup reports whether a proxy upstream (host:port, optionally with a scheme and
// a path) is stepup's HTTP port.
func dialsStepup(upstream string) bool {
	if _, rest, ok := strings.Cut(upstream, "://"); ok {
		upstream = rest
	}
	upstream, _, _ = strings.Cut(upstream, "/")
	_, port, err := net.SplitHostPort(upstream)
	_, wantPort, _ := net.SplitHostPort(stepupHTTPAddr)
	return err == nil && port == wantPort
}

// caddyNode is one directive of a Caddyfile: its tokens and, when the line ends with an
// opening brace, the directives of its block.
type caddyNode struct {
	Line  int
	Args  []string
	Block bool
	Body  []*caddyNode
}

// caddyToken is one token of a Caddyfile line; a quoted "{" does not open a block.
type caddyToken struct {
	text   string
	quoted bool
}

// caddyTokens splits one Caddyfile line: whitespace separates tokens, "..." (with \"
// escapes) and `...` quote them, and # starts a comment at the start of a token.
func caddyTokens(line string) ([]caddyToken, error) {
	var toks []caddyToken
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			return toks, nil
		case c == '"' || c == '`':
			var b strings.Builder
			j := i + 1
			for ; j < len(line) && line[j] != c; j++ {
				if c == '"' && line[j] == '\\' && j+1 < len(line) && line[j+1] == '"' {
					j++
				}
				b.WriteByte(line[j])
			}
			if j == len(line) {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			toks = append(toks, caddyToken{text: b.String(), quoted: true})
			i = j + 1
		default:
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' {
				j++
			}
			toks = append(toks, caddyToken{text: line[i:j]})
			i = j
		}
	}
	return toks, nil
}

// parseCaddyfile parses the subset of the Caddyfile syntax the example uses: one
// directive per line, a block opened by a "{" at the end of a line and closed by a "}"
// alone on a line.
func parseCaddyfile(src string) ([]*caddyNode, error) {
	root := &caddyNode{Block: true}
	stack := []*caddyNode{root}
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		toks, err := caddyTokens(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(toks) == 0 {
			continue
		}
		if len(toks) == 1 && toks[0].text == "}" && !toks[0].quoted {
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: unexpected }", n)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		node := &caddyNode{Line: n}
		if last := toks[len(toks)-1]; last.text == "{" && !last.quoted {
			node.Block = true
			toks = toks[:len(toks)-1]
		}
		for _, t := range toks {
			node.Args = append(node.Args, t.text)
		}
		top := stack[len(stack)-1]
		top.Body = append(top.Body, node)
		if node.Block {
			stack = append(stack, node)
		}
	}
	if len(stack) > 1 {
		return nil, fmt.Errorf("line %d: block not closed", stack[len(stack)-1].Line)
	}
	return root.Body, nil
}

// name is the directive's name, or "" for a bare block.
func (n *caddyNode) name() string {
	if len(n.Args) == 0 {
		return ""
	}
	return n.Args[0]
}

// headerUps returns the header_up operations of a proxy directive, inline and in
// header_up blocks, one token list each ("-X-Stepup-*", or "X-Name value").
func (n *caddyNode) headerUps() [][]string {
	var ops [][]string
	for _, sub := range n.Body {
		if sub.name() != "header_up" {
			continue
		}
		if len(sub.Args) > 1 {
			ops = append(ops, sub.Args[1:])
		}
		for _, line := range sub.Body {
			ops = append(ops, line.Args)
		}
	}
	return ops
}

// caddyFieldMatches matches a header field name against a Caddy header_up field, which
// may start and/or end with a * wildcard; names are case-insensitive.
func caddyFieldMatches(pattern, name string) bool {
	p, n := strings.ToLower(pattern), strings.ToLower(name)
	switch {
	case len(p) > 1 && strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
		return strings.Contains(n, p[1:len(p)-1])
	case strings.HasSuffix(p, "*"):
		return strings.HasPrefix(n, p[:len(p)-1])
	case strings.HasPrefix(p, "*"):
		return strings.HasSuffix(n, p[1:])
	}
	return p == n
}

// deletes reports whether a list of header_up operations deletes the named header.
func deletes(ops [][]string, name string) bool {
	return slices.ContainsFunc(ops, func(op []string) bool {
		return len(op) == 1 && strings.HasPrefix(op[0], "-") && caddyFieldMatches(op[0][1:], name)
	})
}

// forwardAuth is one forward_auth block of a Caddyfile.
type forwardAuth struct {
	Line        int
	Upstream    string
	URI         string
	CopyHeaders []string
	HeaderUp    [][]string
	// Reserved: the block sits in a `handle /.stepup/...` (or route, handle_path)
	// block, so it guards the MFA step rather than the application.
	Reserved bool
}

// underReserved reports whether a handle, route or handle_path directive limits its
// block to paths under the reserved prefix.
func underReserved(n *caddyNode) bool {
	switch n.name() {
	case "handle", "route", "handle_path":
		return len(n.Args) > 1 && strings.HasPrefix(n.Args[1], reservedPrefix)
	}
	return false
}

// forwardAuths extracts the forward_auth blocks below nodes, at any depth.
func forwardAuths(nodes []*caddyNode) ([]forwardAuth, error) {
	var out []forwardAuth
	var errs []error
	var walk func([]*caddyNode, bool)
	walk = func(nodes []*caddyNode, reserved bool) {
		for _, n := range nodes {
			if n.name() != "forward_auth" {
				walk(n.Body, reserved || underReserved(n))
				continue
			}
			if len(n.Args) != 2 || !n.Block {
				errs = append(errs, fmt.Errorf("line %d: want `forward_auth <upstream> {`", n.Line))
				continue
			}
			fa := forwardAuth{Line: n.Line, Upstream: n.Args[1], HeaderUp: n.headerUps(), Reserved: reserved}
			for _, sub := range n.Body {
				switch sub.name() {
				case "uri":
					if len(sub.Args) != 2 {
						errs = append(errs, fmt.Errorf("line %d: want `uri <path>`", sub.Line))
						continue
					}
					fa.URI = sub.Args[1]
				case "copy_headers":
					fa.CopyHeaders = append(fa.CopyHeaders, sub.Args[1:]...)
					for _, line := range sub.Body {
						fa.CopyHeaders = append(fa.CopyHeaders, line.Args...)
					}
				}
			}
			out = append(out, fa)
		}
	}
	walk(nodes, false)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parseForwardAuth extracts the forward_auth blocks of a Caddyfile: `copy_headers`
// either inline or as a block of one name per line, `Name>Renamed` pairs kept as they
// are, and header_up operations.
func parseForwardAuth(src string) ([]forwardAuth, error) {
	nodes, err := parseCaddyfile(src)
	if err != nil {
		return nil, err
	}
	return forwardAuths(nodes)
}

// checkCaddyfile applies stepup's rules to a Caddyfile (docs/envoy.md#caddy) and joins every problem.
func checkCaddyfile(src string) error {
	nodes, err := parseCaddyfile(src)
	if err != nil {
		return err
	}
	fas, err := forwardAuths(nodes)
	if err != nil {
		return err
	}
	var errs []error
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.ContainsFunc(fas, func(fa forwardAuth) bool { return !fa.Reserved }) {
		errorf("no forward_auth block: the application is not protected by stepup")
	}
	for _, fa := range fas {
		if fa.Upstream != stepupHTTPAddr {
			errorf("line %d: forward_auth upstream %q, want stepup's HTTP port %s", fa.Line, fa.Upstream, stepupHTTPAddr)
		}
		if fa.URI != forwardAuthPath {
			errorf("line %d: forward_auth uri %q: stepup serves Caddy's forward_auth at %s (outside the reserved prefix)", fa.Line, fa.URI, forwardAuthPath)
		}
		if fa.Reserved {
			// The MFA step's guard: it hands the step stepup's identity assertion.
			if !slices.ContainsFunc(fa.CopyHeaders, func(h string) bool { return strings.EqualFold(h, assertionHeader) }) {
				errorf("line %d: forward_auth in front of the MFA step does not copy X-Stepup-Assertion (unrenamed): the step could not tell who the user is", fa.Line)
			}
			for _, h := range fa.CopyHeaders {
				if !strings.EqualFold(h, assertionHeader) {
					errorf("line %d: forward_auth in front of the MFA step copies %s: it must copy exactly X-Stepup-Assertion", fa.Line, h)
				}
			}
			continue
		}
		var copied []string
		for _, h := range fa.CopyHeaders {
			from, _, _ := strings.Cut(h, ">")
			copied = append(copied, strings.ToLower(from))
			if strings.EqualFold(from, assertionHeader) {
				errorf("line %d: forward_auth copies X-Stepup-Assertion to the application: the signed identity assertion is for the MFA step only", fa.Line)
				continue
			}
			if !slices.ContainsFunc(stepupIdentityHeaders, func(s string) bool { return strings.EqualFold(s, from) }) {
				errorf("line %d: forward_auth copies %s, which stepup does not set on every allow: Caddy 2.6 would forward its placeholder text (stepup sets %s)", fa.Line, from, strings.Join(stepupIdentityHeaders, ", "))
			}
		}
		for _, h := range stepupIdentityHeaders {
			if !slices.Contains(copied, strings.ToLower(h)) {
				errorf("line %d: forward_auth does not copy %s: the application would get the client's own copy instead of stepup's", fa.Line, h)
			}
		}
	}
	errs = append(errs, checkCaddyRouting(nodes)...)
	return errors.Join(errs...)
}

// checkCaddyRouting requires every reverse_proxy to stepup's HTTP port to sit in a
// `handle /.stepup/*` block, with no path rewrite on the way, behind a forward_auth of
// its own (which hands the MFA step the identity assertion), and to drop client-sent
// X-Stepup-* headers but that assertion; and the application's reverse_proxy next to a
// forward_auth to drop the stepup headers that forward_auth cannot overwrite.
func checkCaddyRouting(nodes []*caddyNode) []error {
	var errs []error
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	reserved := 0
	var walk func(nodes []*caddyNode, confined bool, rewrite *caddyNode)
	walk = func(nodes []*caddyNode, confined bool, rewrite *caddyNode) {
		// Caddy runs forward_auth before reverse_proxy whatever their order in the block.
		protected := slices.ContainsFunc(nodes, func(n *caddyNode) bool { return n.name() == "forward_auth" })
		for _, n := range nodes {
			switch n.name() {
			case "rewrite", "uri", "handle_path":
				if rewrite == nil {
					rewrite = n
				}
			}
		}
		for _, n := range nodes {
			switch n.name() {
			case "handle", "route":
				walk(n.Body, confined || len(n.Args) > 1 && strings.HasPrefix(n.Args[1], reservedPrefix), rewrite)
			case "handle_path":
				// Confined, but the matched prefix is stripped before the proxy.
				walk(n.Body, confined || len(n.Args) > 1 && strings.HasPrefix(n.Args[1], reservedPrefix), n)
			case "reverse_proxy":
				var upstreams []string
				for _, a := range n.Args[1:] {
					if !strings.HasPrefix(a, "/") && !strings.HasPrefix(a, "@") && a != "*" {
						upstreams = append(upstreams, a)
					}
				}
				for _, sub := range n.Body {
					if sub.name() == "to" {
						upstreams = append(upstreams, sub.Args[1:]...)
					}
				}
				ops := n.headerUps()
				if !slices.ContainsFunc(upstreams, dialsStepup) {
					if protected {
						// {a header to probe with, the name to report}
						for _, h := range [][2]string{{"X-Stepup-Assertion", "X-Stepup-Assertion"}, {"X-Stepup-Claim-Role", "X-Stepup-Claim-*"}} {
							if !deletes(ops, h[0]) {
								errorf("line %d: the application's reverse_proxy passes client-sent %s on: stepup cannot remove it in forward-auth mode (header_up -%s)", n.Line, h[1], h[1])
							}
						}
					}
					continue
				}
				own := len(n.Args) > 1 && strings.HasPrefix(n.Args[1], reservedPrefix)
				if !confined && !own {
					errorf("line %d: reverse_proxy to stepup's HTTP port outside `handle %s*`: only the reserved prefix may reach stepup, or its decision endpoints (%s/, %s), /metrics and health endpoints become public",
						n.Line, reservedPrefix, envoyHTTPPrefix, forwardAuthPath)
					continue
				}
				reserved++
				by := rewrite
				if i := slices.IndexFunc(n.Body, func(s *caddyNode) bool { return s.name() == "rewrite" }); i >= 0 {
					by = n.Body[i]
				}
				if by != nil {
					errorf("line %d: the path is rewritten (%s at line %d) on its way to stepup: a %s path could then reach stepup's decision endpoints", n.Line, by.name(), by.Line, reservedPrefix)
				}
				if !protected {
					errorf("line %d: reverse_proxy to the MFA step without a forward_auth to stepup in its block: the step gets no identity assertion (forward_auth with copy_headers X-Stepup-Assertion)", n.Line)
				} else if deletes(ops, assertionHeader) {
					errorf("line %d: reverse_proxy to the MFA step deletes X-Stepup-Assertion, which forward_auth copied from stepup: the step could not tell who the user is (delete the other X-Stepup-* headers one by one)", n.Line)
				}
				for _, h := range stepupHeaderNames {
					if !strings.EqualFold(h, assertionHeader) && !deletes(ops, h) {
						errorf("line %d: reverse_proxy to the MFA step passes client-sent %s on: stepup must never see a forged copy (header_up -%s)", n.Line, h, h)
					}
				}
			default:
				walk(n.Body, confined, rewrite)
			}
		}
	}
	walk(nodes, false, nil)
	if reserved == 0 {
		errs = append(errs, fmt.Errorf("no reverse_proxy to stepup in a `handle %s*` block: the MFA step is unreachable through Caddy", reservedPrefix))
	}
	return errs
}

// TestCaddyfile checks the Caddy example (docs/envoy.md#caddy) with checkCaddyfile.
func TestCaddyfile(t *testing.T) {
	data, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCaddyfile(string(data)); err != nil {
		t.Fatalf("Caddyfile:\n%v", err)
	}
}

// textCase is one mutation of an example file: old must occur exactly once and is
// replaced by new; want is a fragment of the expected error ("" means accepted).
type textCase struct {
	name, old, new, want string
}

func runTextCases(t *testing.T, file string, check func(string) error, tests []textCase) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := strings.Count(string(data), tt.old); n != 1 {
				t.Fatalf("%q occurs %d times in %s, want once", tt.old, n, file)
			}
			err := check(strings.Replace(string(data), tt.old, tt.new, 1))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("mutated %s was rejected:\n%v", file, err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("mutated %s was accepted; want an error containing %q", file, tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error does not contain %q:\n%v", tt.want, err)
			}
		})
	}
}

// caddyRejects are the mistakes checkCaddyfile must catch, as edits of the example.
var caddyRejects = []textCase{
	{
		name: "old endpoint under the reserved prefix",
		old:  "uri /forward-auth\n\t\t\t# The identity", new: "uri /.stepup/forward-auth\n\t\t\t# The identity",
		want: `forward_auth uri "/.stepup/forward-auth": stepup serves Caddy's forward_auth at /forward-auth`,
	},
	{
		name: "nginx endpoint",
		old:  "uri /forward-auth\n\t\t\t# The identity", new: "uri /forward-auth/nginx\n\t\t\t# The identity",
		want: `forward_auth uri "/forward-auth/nginx"`,
	},
	{
		name: "MFA step guarded by the wrong endpoint",
		old:  "uri /forward-auth\n\t\t\t# Exactly this header", new: "uri /forward-auth/nginx\n\t\t\t# Exactly this header",
		want: `forward_auth uri "/forward-auth/nginx"`,
	},
	{
		name: "MFA step without forward_auth",
		old:  "\t\tforward_auth 127.0.0.1:9192 {\n\t\t\turi /forward-auth\n\t\t\t# Exactly this header, never renamed: the step reads X-Stepup-Assertion.\n\t\t\tcopy_headers X-Stepup-Assertion\n\t\t}\n",
		new:  "",
		want: "reverse_proxy to the MFA step without a forward_auth to stepup in its block: the step gets no identity assertion",
	},
	{
		name: "MFA step's forward_auth copies no assertion",
		old:  "copy_headers X-Stepup-Assertion\n", new: "copy_headers X-Stepup-User\n",
		want: "forward_auth in front of the MFA step does not copy X-Stepup-Assertion",
	},
	{
		name: "MFA step's assertion renamed",
		old:  "copy_headers X-Stepup-Assertion\n", new: "copy_headers X-Stepup-Assertion>X-Identity\n",
		want: "forward_auth in front of the MFA step does not copy X-Stepup-Assertion (unrenamed)",
	},
	{
		name: "MFA step's forward_auth copies more",
		old:  "copy_headers X-Stepup-Assertion\n", new: "copy_headers X-Stepup-Assertion X-Stepup-Claim-Role\n",
		want: "forward_auth in front of the MFA step copies X-Stepup-Claim-Role: it must copy exactly X-Stepup-Assertion",
	},
	{
		name: "assertion deleted on its way to the MFA step",
		old:  "\t\t\theader_up -X-Stepup-User\n", new: "\t\t\theader_up -X-Stepup-*\n",
		want: "reverse_proxy to the MFA step deletes X-Stepup-Assertion, which forward_auth copied",
	},
	{
		name: "assertion copied to the application",
		old:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network",
		new:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network X-Stepup-Assertion",
		want: "forward_auth copies X-Stepup-Assertion to the application",
	},
	{
		name: "network header not copied",
		old:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network",
		new:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa",
		want: "forward_auth does not copy X-Stepup-Network",
	},
	{
		name: "copies a header stepup does not always set",
		old:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network",
		new:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network X-Stepup-Claim-Role",
		want: "forward_auth copies X-Stepup-Claim-Role, which stepup does not set on every allow",
	},
	{
		name: "renamed copy is accepted",
		old:  "copy_headers X-Stepup-User X-Stepup-Email",
		new:  "copy_headers X-Stepup-User>Remote-User X-Stepup-Email",
	},
	{
		name: "client id dropped on the way to stepup is accepted",
		old:  "\t\t\turi /forward-auth\n\t\t\t# The identity", new: "\t\t\turi /forward-auth\n\t\t\theader_up -X-Stepup-Client-Id\n\t\t\t# The identity",
	},
	{
		name: "decision endpoint published",
		old:  "\t# Everything else is the application, behind stepup.\n",
		new:  "\thandle /authz/* {\n\t\treverse_proxy 127.0.0.1:9192 {\n\t\t\theader_up -X-Stepup-User\n\t\t}\n\t}\n\t# Everything else is the application, behind stepup.\n",
		want: "reverse_proxy to stepup's HTTP port outside `handle /.stepup/*`",
	},
	{
		name: "metrics published through a matcher",
		old:  "\t# Everything else is the application, behind stepup.\n",
		new:  "\treverse_proxy /metrics 127.0.0.1:9192\n\t# Everything else is the application, behind stepup.\n",
		want: "reverse_proxy to stepup's HTTP port outside `handle /.stepup/*`",
	},
	{
		name: "reserved prefix stripped by handle_path",
		old:  "handle /.stepup/* {", new: "handle_path /.stepup/* {",
		want: "the path is rewritten (handle_path at line",
	},
	{
		name: "reserved prefix rewritten",
		old:  "\thandle /.stepup/* {\n", new: "\thandle /.stepup/* {\n\t\turi strip_prefix /.stepup\n",
		want: "the path is rewritten (uri at line",
	},
	{
		name: "proxy rewrites to a decision endpoint",
		old:  "\t\t\theader_up -X-Stepup-Client-Id\n", new: "\t\t\theader_up -X-Stepup-Client-Id\n\t\t\trewrite /authz{uri}\n",
		want: "the path is rewritten (rewrite at line",
	},
	{
		name: "forged identity passed to the MFA step",
		old:  "\t\t\theader_up -X-Stepup-Network\n", new: "",
		want: "reverse_proxy to the MFA step passes client-sent X-Stepup-Network on",
	},
	{
		name: "forged client id passed to the MFA step",
		old:  "\t\t\theader_up -X-Stepup-Client-Id\n", new: "",
		want: "reverse_proxy to the MFA step passes client-sent X-Stepup-Client-Id on",
	},
	{
		name: "forged claims passed to the application",
		old:  "\t\t\theader_up -X-Stepup-Assertion\n\t\t\theader_up -X-Stepup-Claim-*\n", new: "\t\t\theader_up -X-Stepup-Assertion\n",
		want: "the application's reverse_proxy passes client-sent X-Stepup-Claim-* on",
	},
	{
		name: "MFA step unreachable",
		old:  "reverse_proxy 127.0.0.1:9192 {", new: "reverse_proxy 127.0.0.1:8000 {",
		want: "the MFA step is unreachable through Caddy",
	},
	{
		name: "application unprotected",
		old:  "\t\tforward_auth 127.0.0.1:9192 {\n\t\t\turi /forward-auth\n\t\t\t# The identity", new: "\t\tforward_auth_off 127.0.0.1:9192 {\n\t\t\turi /forward-auth\n\t\t\t# The identity",
		want: "no forward_auth block: the application is not protected by stepup",
	},
	{
		name: "unbalanced braces",
		old:  "\t\treverse_proxy 127.0.0.1:8000 {\n", new: "\t\treverse_proxy 127.0.0.1:8000\n",
		want: "unexpected }",
	},
}

// TestCaddyfileRejects proves that checkCaddyfile catches each mistake of caddyRejects.
func TestCaddyfileRejects(t *testing.T) {
	runTextCases(t, "Caddyfile", checkCaddyfile, caddyRejects)
}

func TestParseForwardAuth(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    []forwardAuth
		wantErr bool
	}{
		{
			name: "inline",
			src:  "a {\n\tforward_auth 127.0.0.1:9192 {\n\t\turi /x # c\n\t\tcopy_headers A B>C\n\t}\n}\n",
			want: []forwardAuth{{Line: 2, Upstream: "127.0.0.1:9192", URI: "/x", CopyHeaders: []string{"A", "B>C"}}},
		},
		{
			name: "block",
			src:  "forward_auth u {\n copy_headers {\n  A\n  B\n }\n uri /y\n header_up {\n  X y\n }\n header_up -Z\n}\n",
			want: []forwardAuth{{Line: 1, Upstream: "u", URI: "/y", CopyHeaders: []string{"A", "B"}, HeaderUp: [][]string{{"X", "y"}, {"-Z"}}}},
		},
		{
			name: "quoted values and brace",
			src:  "forward_auth u {\n header_up X-A \"a b # c\" # d\n header_up X-B `{`\n uri \"/q\"\n}\n",
			want: []forwardAuth{{Line: 1, Upstream: "u", URI: "/q", HeaderUp: [][]string{{"X-A", "a b # c"}, {"X-B", "{"}}}},
		},
		{
			name: "under the reserved prefix",
			src:  "a {\n\thandle /.stepup/* {\n\t\tforward_auth u {\n\t\t\tcopy_headers X\n\t\t}\n\t}\n\tforward_auth v {\n\t}\n}\n",
			want: []forwardAuth{
				{Line: 3, Upstream: "u", CopyHeaders: []string{"X"}, Reserved: true},
				{Line: 7, Upstream: "v"},
			},
		},
		{name: "none", src: "reverse_proxy x\n"},
		{name: "unterminated", src: "forward_auth u {\n uri /y\n", wantErr: true},
		{name: "no brace", src: "forward_auth u\n", wantErr: true},
		{name: "bad uri", src: "forward_auth u {\n uri\n}\n", wantErr: true},
		{name: "stray brace", src: "a {\n}\n}\n", wantErr: true},
		{name: "unterminated quote", src: "forward_auth u {\n uri \"/y\n}\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseForwardAuth(tt.src)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseForwardAuth(f *testing.F) {
	f.Add("forward_auth u {\n copy_headers {\n  A\n }\n uri /y\n}\n")
	f.Add("forward_auth u {\n}\n}\n}\n")
	f.Add("a \"b\n`c` {\n\t# d\n}\n")
	if data, err := os.ReadFile("Caddyfile"); err == nil {
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, _ = parseForwardAuth(src)
		_ = checkCaddyfile(src)
	})
}

// requireTool returns the path of an external program, skipping the test when it is
// missing, except on CI where a missing tool is a failure.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (apt-get install %s)", name, name)
	}
	t.Skipf("%s is not installed (apt-get install %s); skipping", name, name)
	return ""
}

// caddyAdapt runs `caddy adapt --validate` on a Caddyfile and returns the JSON and
// Caddy's log lines.
func caddyAdapt(t *testing.T, caddy, src string) (stdout, stderr string, err error) {
	t.Helper()
	// Keep Caddy's data and config directories out of the real home.
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "adapt", "--config", file, "--adapter", "caddyfile", "--validate")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var out, log strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &log
	err = cmd.Run()
	return out.String(), log.String(), err
}

// TestCaddyfileAdapts has Caddy itself parse and provision the example, and checks the
// routing rules again on the JSON Caddy produces, which is what Caddy runs.
func TestCaddyfileAdapts(t *testing.T) {
	caddy := requireTool(t, "caddy")
	data, err := os.ReadFile("Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := caddyAdapt(t, caddy, string(data))
	if err != nil {
		t.Fatalf("caddy adapt --validate: %v\n%s", err, stderr)
	}
	// Caddy logs questionable but legal lines (an unformatted file, a header_up that
	// repeats a default) as warnings on stderr: keep the example free of them.
	if strings.Contains(stderr, `"level":"warn"`) {
		t.Errorf("caddy adapt warns about the Caddyfile:\n%s", stderr)
	}
	if err := checkCaddyJSON([]byte(stdout)); err != nil {
		t.Errorf("adapted Caddyfile:\n%v", err)
	}

	// The same mistakes, seen through Caddy's own reading of the file.
	for _, tt := range []textCase{
		{
			name: "decision endpoint published",
			old:  "\t# Everything else is the application, behind stepup.\n",
			new:  "\thandle /authz/* {\n\t\treverse_proxy 127.0.0.1:9192\n\t}\n\t# Everything else is the application, behind stepup.\n",
			want: "reverse_proxy to stepup's HTTP port outside /.stepup/",
		},
		{
			name: "reserved prefix stripped by handle_path",
			old:  "handle /.stepup/* {", new: "handle_path /.stepup/* {",
			want: "after a path rewrite",
		},
		{
			name: "old endpoint",
			old:  "uri /forward-auth\n\t\t\t# The identity", new: "uri /.stepup/forward-auth\n\t\t\t# The identity",
			want: `forward_auth rewrites to "/.stepup/forward-auth"`,
		},
		{
			name: "MFA step without forward_auth",
			old:  "\t\tforward_auth 127.0.0.1:9192 {\n\t\t\turi /forward-auth\n\t\t\t# Exactly this header, never renamed: the step reads X-Stepup-Assertion.\n\t\t\tcopy_headers X-Stepup-Assertion\n\t\t}\n",
			new:  "",
			want: "reverse_proxy to the MFA step with no forward_auth before it that copies X-Stepup-Assertion",
		},
		{
			name: "MFA step's forward_auth copies the identity headers",
			old:  "copy_headers X-Stepup-Assertion\n", new: "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network\n",
			want: "forward_auth copies [X-Stepup-Email X-Stepup-Mfa X-Stepup-Network X-Stepup-User] on 2xx, want exactly [X-Stepup-Assertion]",
		},
		{
			name: "assertion deleted on its way to the MFA step",
			old:  "\t\t\theader_up -X-Stepup-User\n", new: "\t\t\theader_up -X-Stepup-*\n",
			want: "reverse_proxy to the MFA step deletes X-Stepup-Assertion",
		},
		{
			name: "assertion copied to the application",
			old:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network",
			new:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network X-Stepup-Assertion",
			want: "want exactly [X-Stepup-Email X-Stepup-Mfa X-Stepup-Network X-Stepup-User]",
		},
		{
			name: "network header not copied",
			old:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network",
			new:  "copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa",
			want: "forward_auth copies [X-Stepup-Email X-Stepup-Mfa X-Stepup-User]",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n := strings.Count(string(data), tt.old); n != 1 {
				t.Fatalf("%q occurs %d times, want once", tt.old, n)
			}
			stdout, stderr, err := caddyAdapt(t, caddy, strings.Replace(string(data), tt.old, tt.new, 1))
			if err != nil {
				t.Fatalf("caddy adapt --validate: %v\n%s", err, stderr)
			}
			err = checkCaddyJSON([]byte(stdout))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// checkCaddyJSON checks the routing rules on adapted Caddy JSON: every reverse_proxy
// that dials stepup's HTTP port is either a forward_auth (a GET rewritten to
// /forward-auth that copies exactly the identity headers on 2xx, or exactly the
// identity assertion under /.stepup/) or sits under routes whose path matchers all lie
// under /.stepup/, with no rewrite and a forward_auth copying the assertion before it,
// and without deleting that assertion.
func checkCaddyJSON(data []byte) error {
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []any `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("decode adapted JSON: %w", err)
	}
	var errs []error
	for _, name := range sortedKeys(doc.Apps.HTTP.Servers) {
		walkCaddyRoutes(name, doc.Apps.HTTP.Servers[name].Routes, false, false, false, &errs)
	}
	return errors.Join(errs...)
}

// walkCaddyRoutes checks one list of Caddy routes. confined says an enclosing route
// already limits the requests to the reserved prefix; rewritten that a rewrite handler
// ran before; authed that a forward_auth copying the assertion ran before. rewritten
// carries on to later routes of the list, conservatively; authed only within one
// route's handlers and the subroutes after it.
func walkCaddyRoutes(path string, routes []any, confined, rewritten, authed bool, errs *[]error) {
	for i, r := range routes {
		rp := fmt.Sprintf("%s.routes[%d]", path, i)
		rm, _ := r.(map[string]any)
		conf := confined || pathsUnderReserved(rm["match"])
		handlers, _ := rm["handle"].([]any)
		authedHere := authed
		for j, h := range handlers {
			hp := fmt.Sprintf("%s.handle[%d]", rp, j)
			hm, _ := h.(map[string]any)
			switch hm["handler"] {
			case "rewrite":
				rewritten = true
			case "subroute":
				sub, _ := hm["routes"].([]any)
				walkCaddyRoutes(hp, sub, conf, rewritten, authedHere, errs)
			case "reverse_proxy":
				if !slices.ContainsFunc(caddyDials(hm), dialsStepup) {
					continue
				}
				if rw, ok := hm["rewrite"].(map[string]any); ok {
					if checkCaddyForwardAuth(hp, hm, rw, conf, errs) && conf {
						authedHere = true
					}
					continue
				}
				switch {
				case !conf:
					*errs = append(*errs, fmt.Errorf("%s: reverse_proxy to stepup's HTTP port outside %s: its decision endpoints, /metrics and health endpoints become public", hp, reservedPrefix))
				case rewritten:
					*errs = append(*errs, fmt.Errorf("%s: reverse_proxy to stepup's HTTP port after a path rewrite: a %s path could reach its decision endpoints", hp, reservedPrefix))
				case !authedHere:
					*errs = append(*errs, fmt.Errorf("%s: reverse_proxy to the MFA step with no forward_auth before it that copies X-Stepup-Assertion: the step gets no identity", hp))
				}
				if conf {
					hdrs, _ := hm["headers"].(map[string]any)
					req, _ := hdrs["request"].(map[string]any)
					dels, _ := req["delete"].([]any)
					for _, d := range dels {
						if ds, _ := d.(string); ds == "*" || caddyFieldMatches(ds, assertionHeader) {
							*errs = append(*errs, fmt.Errorf("%s: reverse_proxy to the MFA step deletes X-Stepup-Assertion (%q), which forward_auth copied from stepup", hp, ds))
						}
					}
				}
			}
		}
	}
}

// pathsUnderReserved reports whether a Caddy route's matcher sets all carry a path
// matcher whose every path lies under the reserved prefix.
func pathsUnderReserved(match any) bool {
	sets, _ := match.([]any)
	if len(sets) == 0 {
		return false
	}
	for _, s := range sets {
		sm, _ := s.(map[string]any)
		paths, _ := sm["path"].([]any)
		if len(paths) == 0 {
			return false
		}
		for _, p := range paths {
			if ps, _ := p.(string); !strings.HasPrefix(ps, reservedPrefix) {
				return false
			}
		}
	}
	return true
}

// caddyDials lists the dial addresses of a reverse_proxy handler.
func caddyDials(h map[string]any) []string {
	var out []string
	ups, _ := h["upstreams"].([]any)
	for _, u := range ups {
		um, _ := u.(map[string]any)
		if d, ok := um["dial"].(string); ok {
			out = append(out, d)
		}
	}
	return out
}

// checkCaddyForwardAuth checks the reverse_proxy that forward_auth expands into: the
// application's copies exactly the identity headers, the MFA step's (reserved) exactly
// the identity assertion. It reports whether the forward_auth was right.
func checkCaddyForwardAuth(path string, h, rw map[string]any, reserved bool, errs *[]error) bool {
	before := len(*errs)
	uri, _ := rw["uri"].(string)
	if p, _, _ := strings.Cut(uri, "?"); p != forwardAuthPath || rw["method"] != "GET" {
		*errs = append(*errs, fmt.Errorf("%s: forward_auth rewrites to %q (method %v), want GET %s", path, uri, rw["method"], forwardAuthPath))
	}
	var copied []string
	hrs, _ := h["handle_response"].([]any)
	for _, hr := range hrs {
		hrm, _ := hr.(map[string]any)
		routes, _ := hrm["routes"].([]any)
		for _, r := range routes {
			rm, _ := r.(map[string]any)
			handlers, _ := rm["handle"].([]any)
			for _, x := range handlers {
				xm, _ := x.(map[string]any)
				req, _ := xm["request"].(map[string]any)
				set, _ := req["set"].(map[string]any)
				if xm["handler"] == "headers" {
					copied = append(copied, sortedKeys(set)...)
				}
			}
		}
	}
	slices.Sort(copied)
	want := slices.Sorted(slices.Values(stepupIdentityHeaders))
	if reserved {
		want = []string{"X-Stepup-Assertion"}
	}
	if !slices.Equal(copied, want) {
		*errs = append(*errs, fmt.Errorf("%s: forward_auth copies %v on 2xx, want exactly %v", path, copied, want))
	}
	return len(*errs) == before
}

// nginxNode is one directive of an nginx configuration: its name and arguments, and the
// directives of its block when it has one.
type nginxNode struct {
	Line  int
	Args  []string
	Block bool
	Body  []*nginxNode
}

// name is the directive's name.
func (n *nginxNode) name() string {
	if len(n.Args) == 0 {
		return ""
	}
	return n.Args[0]
}

// nginxToken is one token of an nginx configuration: a word or quoted string, or one
// of the separators ; { }.
type nginxToken struct {
	text string
	line int
	sep  bool
}

// nginxTokens splits an nginx configuration: # comments, '...' and "..." strings with
// backslash escapes, ${var} kept inside a word.
func nginxTokens(src string) ([]nginxToken, error) {
	var toks []nginxToken
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, nginxToken{text: string(c), line: line, sep: true})
			i++
		case c == '"' || c == '\'':
			start := line
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				if src[j] == '\n' {
					line++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated %c string", start, c)
			}
			toks = append(toks, nginxToken{text: b.String(), line: start})
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}\"'", rune(src[j])) {
				if src[j] == '$' && j+1 < len(src) && src[j+1] == '{' {
					if k := strings.IndexByte(src[j:], '}'); k > 0 {
						j += k
					}
				}
				j++
			}
			toks = append(toks, nginxToken{text: src[i:j], line: line})
			i = j
		}
	}
	return toks, nil
}

// parseNginx parses an nginx configuration into directives.
func parseNginx(src string) ([]*nginxNode, error) {
	toks, err := nginxTokens(src)
	if err != nil {
		return nil, err
	}
	root := &nginxNode{Block: true}
	stack := []*nginxNode{root}
	var args []string
	line := 0
	for _, t := range toks {
		if !t.sep {
			if len(args) == 0 {
				line = t.line
			}
			args = append(args, t.text)
			continue
		}
		top := stack[len(stack)-1]
		switch t.text {
		case ";", "{":
			if len(args) == 0 {
				return nil, fmt.Errorf("line %d: unexpected %q", t.line, t.text)
			}
			n := &nginxNode{Line: line, Args: args, Block: t.text == "{"}
			top.Body = append(top.Body, n)
			if n.Block {
				stack = append(stack, n)
			}
			args = nil
		case "}":
			if len(args) > 0 || len(stack) == 1 {
				return nil, fmt.Errorf("line %d: unexpected \"}\"", t.line)
			}
			stack = stack[:len(stack)-1]
		}
	}
	switch {
	case len(args) > 0:
		return nil, fmt.Errorf("line %d: unexpected end of file, expecting \";\"", line)
	case len(stack) > 1:
		return nil, fmt.Errorf("line %d: unexpected end of file, expecting \"}\"", stack[len(stack)-1].Line)
	}
	return root.Body, nil
}

// nginxLocation is a location block: modifier ("", "=", "^~", "~", "~*"), path or name.
type nginxLocation struct {
	node     *nginxNode
	mod, uri string
}

// locations returns the location blocks below nodes, at any depth.
func locations(nodes []*nginxNode) []nginxLocation {
	var out []nginxLocation
	for _, n := range nodes {
		if n.name() == "location" && n.Block {
			l := nginxLocation{node: n}
			switch len(n.Args) {
			case 2:
				l.uri = n.Args[1]
			case 3:
				l.mod, l.uri = n.Args[1], n.Args[2]
			}
			out = append(out, l)
		}
		out = append(out, locations(n.Body)...)
	}
	return out
}

// directives returns the directives named name in a location, including those inside
// its if blocks but not those of nested locations.
func (l nginxLocation) directives(name string) []*nginxNode {
	var out []*nginxNode
	var walk func([]*nginxNode)
	walk = func(nodes []*nginxNode) {
		for _, n := range nodes {
			switch {
			case n.name() == name:
				out = append(out, n)
			case n.name() == "location":
				continue
			}
			walk(n.Body)
		}
	}
	walk(l.node.Body)
	return out
}

// headers maps the lowercased header names a location sets with proxy_set_header to
// their values.
func (l nginxLocation) headers() map[string]string {
	out := map[string]string{}
	for _, d := range l.directives("proxy_set_header") {
		if len(d.Args) == 3 {
			out[strings.ToLower(d.Args[1])] = d.Args[2]
		}
	}
	return out
}

// upstreamVar is the nginx variable holding an upstream response header.
func upstreamVar(header string) string {
	return "$upstream_http_" + strings.ReplaceAll(strings.ToLower(header), "-", "_")
}

// checkNginxConf applies stepup's rules to an nginx server block (docs/envoy.md#nginx) and joins
// every problem.
func checkNginxConf(src string) error {
	nodes, err := parseNginx(src)
	if err != nil {
		return err
	}
	var errs []error
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	locs := locations(nodes)
	find := func(mod, uri string) (nginxLocation, bool) {
		i := slices.IndexFunc(locs, func(l nginxLocation) bool { return l.mod == mod && l.uri == uri })
		if i < 0 {
			return nginxLocation{}, false
		}
		return locs[i], true
	}

	subrequests := map[*nginxNode]bool{}
	protected := 0
	for _, l := range locs {
		ars := l.directives("auth_request")
		if len(ars) == 0 || len(ars[0].Args) != 2 || ars[0].Args[1] == "off" {
			continue
		}
		protected++
		where := fmt.Sprintf("line %d: location %s", l.node.Line, l.uri)
		captured := map[string]string{} // upstream variable -> the variable it is captured in
		for _, d := range l.directives("auth_request_set") {
			if len(d.Args) == 3 {
				captured[d.Args[2]] = d.Args[1]
			}
		}
		set := l.headers()
		if strings.HasPrefix(l.uri, reservedPrefix) {
			// The MFA step's guard: stepup's assertion, and nothing else, from the answer;
			// the forged copies are checked with the step's proxy_pass below.
			v, ok := captured[upstreamVar(assertionHeader)]
			switch {
			case !ok:
				errorf("%s: no auth_request_set captures X-Stepup-Assertion (%s): the MFA step could not tell who the user is", where, upstreamVar(assertionHeader))
			case set[assertionHeader] != v:
				errorf("%s: does not proxy_set_header X-Stepup-Assertion %s: the MFA step would get the client's own copy instead of stepup's", where, v)
			}
		} else {
			for _, h := range stepupIdentityHeaders {
				v, ok := captured[upstreamVar(h)]
				switch {
				case !ok:
					errorf("%s: no auth_request_set captures %s (%s): the application would not get stepup's %s", where, h, upstreamVar(h), h)
				case set[strings.ToLower(h)] != v:
					errorf("%s: does not proxy_set_header %s %s: the application would get the client's own copy instead of stepup's", where, h, v)
				}
			}
			if v, ok := set["x-stepup-assertion"]; !ok || v != "" {
				errorf("%s: passes client-sent X-Stepup-Assertion on to the application (proxy_set_header X-Stepup-Assertion \"\")", where)
			}
		}
		// The 401 detour to the MFA step.
		redirect, captures := captured[upstreamVar("X-Stepup-Redirect")]
		if !captures {
			errorf("%s: no auth_request_set captures X-Stepup-Redirect: browsers would get a bare 401 instead of the MFA step", where)
		}
		named := ""
		for _, d := range l.directives("error_page") {
			if len(d.Args) >= 3 && slices.Contains(d.Args[1:len(d.Args)-1], "401") {
				named = d.Args[len(d.Args)-1]
			}
		}
		detour, ok := find("", named)
		if named == "" || !strings.HasPrefix(named, "@") || !ok {
			errorf("%s: no `error_page 401 = @name` with a named location: the MFA redirect is never sent", where)
		} else if captures && !slices.ContainsFunc(detour.directives("return"), func(d *nginxNode) bool {
			return slices.Equal(d.Args, []string{"return", "302", redirect})
		}) {
			errorf("line %d: location %s: no `return 302 %s`: the MFA redirect is never sent", detour.node.Line, named, redirect)
		}

		// The subrequest.
		sub, ok := find("=", ars[0].Args[1])
		if !ok {
			errorf("%s: auth_request %s has no `location = %s`", where, ars[0].Args[1], ars[0].Args[1])
			continue
		}
		subrequests[sub.node] = true
		sw := fmt.Sprintf("line %d: location = %s", sub.node.Line, sub.uri)
		if len(sub.directives("internal")) == 0 {
			errorf("%s: not internal: browsers could call stepup's decision endpoint through it", sw)
		}
		want := "http://" + stepupHTTPAddr + forwardAuthNginxPath
		if pp := sub.directives("proxy_pass"); len(pp) != 1 || len(pp[0].Args) != 2 || pp[0].Args[1] != want {
			errorf("%s: want `proxy_pass %s`: only stepup's nginx endpoint answers a redirect with 401 and X-Stepup-Redirect", sw, want)
		}
		if !slices.ContainsFunc(sub.directives("proxy_pass_request_body"), func(d *nginxNode) bool { return slices.Equal(d.Args[1:], []string{"off"}) }) {
			errorf("%s: no `proxy_pass_request_body off`: the request body would be sent to stepup", sw)
		}
		sh := sub.headers()
		for _, hv := range [][2]string{
			{"X-Original-Method", "$request_method"}, {"X-Original-URI", "$request_uri"},
			{"X-Forwarded-Method", "$request_method"}, {"X-Forwarded-Uri", "$request_uri"},
			{"X-Forwarded-Host", ""}, {"X-Forwarded-Proto", ""}, {"X-Forwarded-For", ""},
		} {
			v, ok := sh[strings.ToLower(hv[0])]
			switch {
			case !ok || v == "":
				errorf("%s: does not set %s: the client's own copy rides along on the subrequest, and stepup believes it from nginx", sw, hv[0])
			case hv[1] != "" && v != hv[1]:
				errorf("%s: sets %s to %s, want %s", sw, hv[0], v, hv[1])
			}
		}
	}
	if protected == 0 {
		errorf("no location uses auth_request: the application is not protected by stepup")
	}

	// Only /.stepup/ reaches stepup, unrewritten.
	reserved := 0
	for _, l := range locs {
		if subrequests[l.node] {
			continue
		}
		for _, pp := range l.directives("proxy_pass") {
			if len(pp.Args) != 2 || !dialsStepup(pp.Args[1]) {
				continue
			}
			where := fmt.Sprintf("line %d: location %s", l.node.Line, strings.Join(l.node.Args[1:], " "))
			if !strings.HasPrefix(l.uri, reservedPrefix) || l.mod != "^~" && l.mod != "" && l.mod != "=" {
				errorf("%s: proxies to stepup's HTTP port outside %s: its decision endpoints (%s/, %s), /metrics and health endpoints become public", where, reservedPrefix, envoyHTTPPrefix, forwardAuthPath)
				continue
			}
			reserved++
			if l.mod != "^~" {
				errorf("%s: without ^~, a regex location can take %s paths away from stepup", where, reservedPrefix)
			}
			if _, rest, _ := strings.Cut(pp.Args[1], "://"); strings.Contains(rest, "/") {
				errorf("%s: proxy_pass %s has a URI part: nginx would replace the matched prefix, and a %s path could reach stepup's decision endpoints", where, pp.Args[1], reservedPrefix)
			}
			if len(l.directives("rewrite")) > 0 {
				errorf("%s: rewrites the path on its way to stepup: a %s path could reach stepup's decision endpoints", where, reservedPrefix)
			}
			if ars := l.directives("auth_request"); len(ars) == 0 || len(ars[0].Args) != 2 || ars[0].Args[1] == "off" {
				errorf("%s: no auth_request: the MFA step gets no identity assertion from stepup", where)
			}
			set := l.headers()
			for _, h := range stepupHeaderNames {
				if strings.EqualFold(h, assertionHeader) {
					continue // set from the subrequest's answer, checked above
				}
				if v, ok := set[strings.ToLower(h)]; !ok || v != "" {
					errorf("%s: passes client-sent %s on to the MFA step (proxy_set_header %s \"\")", where, h, h)
				}
			}
		}
	}
	if reserved == 0 {
		errorf("no `location ^~ %s` proxies to stepup: the MFA step is unreachable through nginx", reservedPrefix)
	}

	// stepup selects nginx behaviour by path; a style header would be dead weight that
	// suggests otherwise.
	var walk func([]*nginxNode)
	walk = func(nodes []*nginxNode) {
		for _, n := range nodes {
			if slices.ContainsFunc(n.Args, func(a string) bool { return strings.EqualFold(a, "X-Stepup-Auth-Style") }) {
				errorf("line %d: stepup has no X-Stepup-Auth-Style header: the path %s selects nginx behaviour", n.Line, forwardAuthNginxPath)
			}
			walk(n.Body)
		}
	}
	walk(nodes)
	return errors.Join(errs...)
}

// TestNginxConf checks the nginx example (docs/envoy.md#nginx) with checkNginxConf.
func TestNginxConf(t *testing.T) {
	data, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkNginxConf(string(data)); err != nil {
		t.Fatalf("nginx.conf:\n%v", err)
	}
}

// TestNginxConfRejects proves that checkNginxConf catches each mistake, as an edit of
// the example.
func TestNginxConfRejects(t *testing.T) {
	runTextCases(t, "nginx.conf", checkNginxConf, []textCase{
		{
			name: "old endpoint under the reserved prefix",
			old:  "proxy_pass http://127.0.0.1:9192/forward-auth/nginx;", new: "proxy_pass http://127.0.0.1:9192/.stepup/forward-auth;",
			want: "want `proxy_pass http://127.0.0.1:9192/forward-auth/nginx`",
		},
		{
			name: "Caddy's endpoint, which answers 302",
			old:  "proxy_pass http://127.0.0.1:9192/forward-auth/nginx;", new: "proxy_pass http://127.0.0.1:9192/forward-auth;",
			want: "only stepup's nginx endpoint answers a redirect with 401",
		},
		{
			name: "style header that stepup does not read",
			old:  "        proxy_set_header X-Forwarded-For $remote_addr;\n        # Cookie, Authorization",
			new:  "        proxy_set_header X-Forwarded-For $remote_addr;\n        proxy_set_header X-Stepup-Auth-Style nginx;\n        # Cookie, Authorization",
			want: "stepup has no X-Stepup-Auth-Style header",
		},
		{
			name: "client chooses the checked path",
			old:  "        proxy_set_header X-Forwarded-Uri $request_uri;\n", new: "",
			want: "does not set X-Forwarded-Uri: the client's own copy rides along",
		},
		{
			name: "client chooses the checked method",
			old:  "proxy_set_header X-Original-Method $request_method;", new: "proxy_set_header X-Original-Method GET;",
			want: "sets X-Original-Method to GET, want $request_method",
		},
		{
			name: "client chooses the checked host",
			old:  "        proxy_set_header X-Forwarded-Host $host;\n        proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-For $remote_addr;\n        # Cookie",
			new:  "        proxy_set_header X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-For $remote_addr;\n        # Cookie",
			want: "does not set X-Forwarded-Host",
		},
		{
			name: "subrequest not internal",
			old:  "        internal;\n", new: "",
			want: "not internal",
		},
		{
			name: "network header not captured",
			old:  "        auth_request_set $stepup_network $upstream_http_x_stepup_network;\n", new: "",
			want: "no auth_request_set captures X-Stepup-Network",
		},
		{
			name: "network header not set",
			old:  "        proxy_set_header X-Stepup-Network $stepup_network;\n", new: "",
			want: "does not proxy_set_header X-Stepup-Network $stepup_network",
		},
		{
			name: "assertion passed to the application",
			old:  "        # The signed identity assertion is for the MFA step only.\n        proxy_set_header X-Stepup-Assertion \"\";\n", new: "",
			want: "passes client-sent X-Stepup-Assertion on to the application",
		},
		{
			name: "redirect not captured",
			old:  "        auth_request_set $stepup_redirect $upstream_http_x_stepup_redirect;\n        auth_request_set $stepup_cookie $upstream_http_set_cookie;\n\n", new: "        auth_request_set $stepup_cookie $upstream_http_set_cookie;\n\n",
			want: "no auth_request_set captures X-Stepup-Redirect",
		},
		{
			name: "no detour",
			old:  "        error_page 401 = @stepup_mfa;\n        proxy_pass http://127.0.0.1:8000;", new: "        proxy_pass http://127.0.0.1:8000;",
			want: "no `error_page 401 = @name`",
		},
		{
			name: "MFA step without auth_request",
			old:  "    location ^~ /.stepup/ {\n        auth_request /_stepup_auth;\n", new: "    location ^~ /.stepup/ {\n",
			want: "location ^~ /.stepup/: no auth_request: the MFA step gets no identity assertion",
		},
		{
			name: "MFA step's assertion not captured",
			old:  "        auth_request_set $stepup_assertion $upstream_http_x_stepup_assertion;\n", new: "",
			want: "no auth_request_set captures X-Stepup-Assertion",
		},
		{
			name: "client's assertion passed to the MFA step",
			old:  "proxy_set_header X-Stepup-Assertion $stepup_assertion;", new: "proxy_set_header X-Stepup-Assertion $http_x_stepup_assertion;",
			want: "does not proxy_set_header X-Stepup-Assertion $stepup_assertion: the MFA step would get the client's own copy",
		},
		{
			name: "assertion dropped on its way to the MFA step",
			old:  "proxy_set_header X-Stepup-Assertion $stepup_assertion;", new: "proxy_set_header X-Stepup-Assertion \"\";",
			want: "does not proxy_set_header X-Stepup-Assertion $stepup_assertion",
		},
		{
			name: "MFA step's login redirect never sent",
			old:  "        error_page 401 = @stepup_mfa;\n\n        proxy_pass http://127.0.0.1:9192;", new: "\n        proxy_pass http://127.0.0.1:9192;",
			want: "location /.stepup/: no `error_page 401 = @name`",
		},
		{
			name: "detour to the wrong variable",
			old:  "return 302 $stepup_redirect;", new: "return 302 $stepup_cookie;",
			want: "no `return 302 $stepup_redirect`",
		},
		{
			name: "decision endpoint published",
			old:  "    # Everything else is the application, behind stepup.\n",
			new:  "    location /forward-auth {\n        proxy_pass http://127.0.0.1:9192;\n    }\n    # Everything else is the application, behind stepup.\n",
			want: "proxies to stepup's HTTP port outside /.stepup/",
		},
		{
			name: "reserved prefix replaced by a URI part",
			old:  "proxy_pass http://127.0.0.1:9192;", new: "proxy_pass http://127.0.0.1:9192/;",
			want: "has a URI part: nginx would replace the matched prefix",
		},
		{
			name: "reserved prefix rewritten",
			old:  "location ^~ /.stepup/ {\n", new: "location ^~ /.stepup/ {\n        rewrite ^/\\.stepup(/.*)$ $1 break;\n",
			want: "rewrites the path on its way to stepup",
		},
		{
			name: "reserved prefix without ^~",
			old:  "location ^~ /.stepup/ {", new: "location /.stepup/ {",
			want: "without ^~, a regex location can take /.stepup/ paths",
		},
		{
			name: "forged identity passed to the MFA step",
			old:  "        proxy_set_header X-Stepup-Network \"\";\n", new: "",
			want: "passes client-sent X-Stepup-Network on to the MFA step",
		},
		{
			name: "MFA step unreachable",
			old:  "proxy_pass http://127.0.0.1:9192;", new: "proxy_pass http://127.0.0.1:8000;",
			want: "the MFA step is unreachable through nginx",
		},
		{
			name: "unbalanced braces",
			old:  "            return 401;\n        }\n", new: "            return 401;\n",
			want: "expecting \"}\"",
		},
	})
}

func TestParseNginx(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		want    []*nginxNode
		wantErr bool
	}{
		{
			name: "blocks, strings and comments",
			src:  "server { # c\n  location = /a {\n    proxy_set_header X \"\";\n    add_header Y 'a;b{}' always;\n  }\n  set $x ${host}z;\n}\n",
			want: []*nginxNode{{Line: 1, Args: []string{"server"}, Block: true, Body: []*nginxNode{
				{Line: 2, Args: []string{"location", "=", "/a"}, Block: true, Body: []*nginxNode{
					{Line: 3, Args: []string{"proxy_set_header", "X", ""}},
					{Line: 4, Args: []string{"add_header", "Y", "a;b{}", "always"}},
				}},
				{Line: 6, Args: []string{"set", "$x", "${host}z"}},
			}}},
		},
		{name: "empty", src: "# nothing\n"},
		{name: "missing semicolon", src: "a b", wantErr: true},
		{name: "unclosed block", src: "a {\n b;\n", wantErr: true},
		{name: "stray brace", src: "a;\n}\n", wantErr: true},
		{name: "brace after arguments", src: "a { b }", wantErr: true},
		{name: "lone semicolon", src: ";", wantErr: true},
		{name: "unterminated string", src: "a \"b;\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNginx(tt.src)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseNginx(f *testing.F) {
	f.Add("server { location = /a { proxy_pass http://x; } }")
	f.Add("a \"b\\\"c\" 'd' ${e}f;\n}")
	if data, err := os.ReadFile("nginx.conf"); err == nil {
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, src string) {
		_, _ = parseNginx(src)
		_ = checkNginxConf(src)
	})
}

// TestNginxConfParses has nginx itself check the server block, included in a minimal
// http context that writes only under a temporary prefix.
func TestNginxConfParses(t *testing.T) {
	nginx := requireTool(t, "nginx")
	abs, err := filepath.Abs("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	main := fmt.Sprintf(`pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, abs)
	conf := filepath.Join(dir, "main.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

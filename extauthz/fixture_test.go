package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stepup-dev/stepup/session"
)

var update = flag.Bool("update", false, "rewrite the golden CheckResponses of testdata/check")

// checkFixture is one file of testdata/check: a CheckRequest as Envoy
// sends it (protojson), what the policy asks, what the browser's cookies
// prove, and the server's settings.
type checkFixture struct {
	// Policy: the requirement ("" for none), a rule redirect, or a denial.
	Policy struct {
		Provider      string `json:"provider"`
		AllowRemember bool   `json:"allow_remember"`
		MaxAge        string `json:"max_age"`
		Redirect      string `json:"redirect"`
		Deny          string `json:"deny"`
	} `json:"policy"`
	// Session and Remember are the proofs of the MFA session and the
	// remembered browser the request carries as cookies (none when empty).
	Session  *fixtureProof `json:"session"`
	Remember *fixtureProof `json:"remember"`
	Server   struct {
		DryRun           bool              `json:"dry_run"`
		ClientMaxAge     map[string]string `json:"client_max_age"`
		RedirectServices []RedirectService `json:"redirect_services"`
	} `json:"server"`
	Request json.RawMessage `json:"request"`
}

type fixtureProof struct {
	Realm string `json:"realm"`
	// Factors are factor names; "completed:<url>" stands for the
	// completion of a redirect to url.
	Factors []string `json:"factors"`
	Age     string   `json:"age"`
}

func (p *fixtureProof) factors() []string {
	out := make([]string, len(p.Factors))
	for i, f := range p.Factors {
		if u, ok := strings.CutPrefix(f, "completed:"); ok {
			f = session.CompletedRedirect(u)
		}
		out[i] = f
	}
	return out
}

// TestCheckFixtures runs every CheckRequest of testdata/check through a
// whole Check and compares the CheckResponse with its golden file (state
// tokens and decision ids, which are random, are masked). Run with
// -update to rewrite the golden files after a deliberate change.
func TestCheckFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "check", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, file := range files {
		if strings.HasSuffix(file, ".golden.json") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var fx checkFixture
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&fx); err != nil {
				t.Fatalf("fixture: %v", err)
			}
			got := runFixture(t, &fx)
			golden := strings.TrimSuffix(file, ".json") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("CheckResponse differs from %s (-update rewrites it):\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d fixtures in testdata/check", n)
	}
}

func runFixture(t *testing.T, fx *checkFixture) []byte {
	t.Helper()
	f := newSessionFixture(t, nil)
	var req authv3.CheckRequest
	if err := protojson.Unmarshal(fx.Request, &req); err != nil {
		t.Fatalf("request: %v", err)
	}
	q := Requirement{Provider: fx.Policy.Provider, AllowRemember: fx.Policy.AllowRemember}
	if fx.Policy.MaxAge != "" {
		q.MaxAge = mustDuration(t, fx.Policy.MaxAge)
	}
	res := PolicyResult{MFA: q, RedirectURL: fx.Policy.Redirect}
	if fx.Policy.Deny != "" {
		res = PolicyResult{Err: &PolicyError{Status: 403, Reason: ReasonRuleDenied, Message: fx.Policy.Deny, Rule: "fixture"}}
	}
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{res}
		o.DryRun = fx.Server.DryRun
		o.RedirectServices = fx.Server.RedirectServices
		if len(fx.Server.ClientMaxAge) > 0 {
			o.ClientMaxAge = map[string]time.Duration{}
			for c, d := range fx.Server.ClientMaxAge {
				o.ClientMaxAge[c] = mustDuration(t, d)
			}
		}
	})
	var cookies []string
	if p := fx.Session; p != nil {
		cookies = append(cookies, f.proofCookie(t, p.Realm, mustDuration(t, p.Age), p.factors()...))
	}
	if p := fx.Remember; p != nil {
		cookies = append(cookies, f.rememberProof(t, p.Realm, p.factors()...))
	}
	if len(cookies) > 0 {
		if h := req.GetAttributes().GetRequest().GetHttp(); h != nil {
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			h.Headers["cookie"] = strings.Join(cookies, "; ")
		}
	}
	resp, err := s.Check(context.Background(), &req)
	if err != nil {
		t.Fatalf("gRPC error: %v", err)
	}
	return normalizeResponse(t, resp)
}

var (
	maskState      = regexp.MustCompile(`state=[A-Za-z0-9._%-]+`)
	maskDecisionID = regexp.MustCompile(`"decision_id": "[0-9a-f]+-[0-9]+"`)
	maskCookie     = regexp.MustCompile(`(stepup_(?:mfa|remember)=)[A-Za-z0-9._-]+`)
	maskAssertion  = regexp.MustCompile(`"v1\.assertion\.[A-Za-z0-9._-]+"`)
)

// normalizeResponse writes resp as indented JSON with sorted keys and the
// random parts masked.
func normalizeResponse(t *testing.T, resp *authv3.CheckResponse) []byte {
	t.Helper()
	raw, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// Removals and upstream headers come partly from walking the
	// request's header map: their order is not part of the contract.
	if ok, _ := v["okResponse"].(map[string]any); ok != nil {
		if rm, _ := ok["headersToRemove"].([]any); rm != nil {
			sort.Slice(rm, func(i, j int) bool { return rm[i].(string) < rm[j].(string) })
		}
		if hs, _ := ok["headers"].([]any); hs != nil {
			key := func(i int) string { return hs[i].(map[string]any)["header"].(map[string]any)["key"].(string) }
			sort.SliceStable(hs, func(i, j int) bool { return key(i) < key(j) })
		}
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = maskState.ReplaceAll(out, []byte("state=<state>"))
	out = maskDecisionID.ReplaceAll(out, []byte(`"decision_id": "<decision id>"`))
	out = maskCookie.ReplaceAll(out, []byte("${1}<cookie>"))
	out = maskAssertion.ReplaceAll(out, []byte(`"<signed identity assertion>"`))
	return append(out, '\n')
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// The quickstart as docs/quickstart.md writes it: its commands, the page
// it tells the reader to open, and the ports of the example's files.
var (
	quickstartCommands = []string{
		"sudo apt-get install -y caddy",
		"go run ./cmd/stepup serve --config examples/quickstart/stepup.yaml &",
		"caddy run --config examples/quickstart/Caddyfile",
	}
	quickstartOpen = "http://localhost:8080"
	// quickstartPorts: the site (Caddy), stepup's gRPC and HTTP listeners.
	quickstartPorts = []string{"8080", "9191", "9192"}
)

// TestQuickstart follows docs/quickstart.md exactly: the document's three
// commands are the ones above, and their equivalents run here on a copy of
// examples/quickstart/ (so that the demo's data lands in a temporary
// directory): the stepup binary under test with `serve --config
// stepup.yaml` (for `go run ./cmd/stepup`), and `caddy run --config
// Caddyfile` (the Debian package). Then headless Chromium opens a page of
// http://localhost:8080, is sent to the MFA step, enrols with TOTP (the
// code computed from the key on the page), ticks "remember", saves the
// recovery codes, and lands on the page it asked for, where the demo
// application shows the demo user and "otp". Along the way it checks what
// makes the demo work on plain http://localhost without development mode:
// the browser posts the form with its real Origin and stepup accepts it,
// stepup's cookies are Secure and __Host- prefixed and the browser keeps
// them, and a fresh session of the remembered browser goes straight
// through ("remembered").
//
// The example's ports (8080, 9191, 9192 on 127.0.0.1) are used as written
// when they are free. When one is taken (another stepup or Caddy on this
// machine), the copies get free ports instead, in every place the files
// name them, and the test says so in its log: the files are otherwise the
// ones the quickstart runs.
//
// Screenshots of every page go to $STEPUP_E2E_ARTIFACTS/TestQuickstart/.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	root, err := harness.ModuleRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkQuickstartDoc(t, filepath.Join(root, "docs", "quickstart.md"))

	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "examples", "quickstart")
	ports := quickstartPortMap(t)
	for _, name := range []string{"stepup.yaml", "Caddyfile", "always-mfa.js"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for from, to := range ports {
			text = strings.ReplaceAll(text, ":"+from, ":"+to)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	site := "localhost:" + ports["8080"]
	front := "http://" + site

	// Both processes stop at cleanup; Chromium's tab (opened later) closes
	// first.
	s := harness.StartStepup(t, stepupBin, harness.StepupOptions{Dir: dir, Args: []string{"--config", "stepup.yaml"}})
	if s.HTTPAddr != "127.0.0.1:"+ports["9192"] {
		t.Fatalf("stepup listens on %s, want 127.0.0.1:%s", s.HTTPAddr, ports["9192"])
	}
	harness.RunCaddyFile(t, dir, "Caddyfile", "127.0.0.1:"+ports["8080"])

	b := browser.Shared(t)
	ctx := b.NewContext(t)
	posts := recordFormPosts(t, ctx)

	const page = "/welcome?from=quickstart&team=r%26d"
	t.Logf("the reader opens %s (a page of it, with a query, to see it come back)", front)
	browser.Navigate(ctx, t, front+page)
	u, err := url.Parse(browser.URL(ctx, t))
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != site || u.Path != "/.stepup/mfa" || u.Query().Get("state") == "" {
		t.Fatalf("the browser is on %s, want %s/.stepup/mfa?state=...\npage: %s", u, front, browser.Text(ctx, t, "body"))
	}
	browser.Screenshot(ctx, t, "enrol")
	if !browser.Exists(ctx, t, "#totp-secret") || !browser.Exists(ctx, t, "input#code") {
		t.Fatalf("the MFA step does not offer enrolment\npage: %s", browser.Text(ctx, t, "body"))
	}
	if !browser.Exists(ctx, t, "#remember") {
		t.Error("the enrolment page offers no remember box")
	}

	secret := strings.ReplaceAll(browser.Text(ctx, t, "#totp-secret"), " ", "")
	browser.Fill(ctx, t, "input#code", mfaTOTPCode(t, secret, time.Now()))
	browser.SetChecked(ctx, t, "#remember", true)
	browser.Screenshot(ctx, t, "enrol-filled")
	browser.ClickAndWait(ctx, t, "button[type=submit]")
	codes := mfaTexts(ctx, t, "#recovery-codes li code")
	browser.Screenshot(ctx, t, "recovery-codes")
	if len(codes) != 10 {
		t.Fatalf("after enrolment the browser is on %s, showing %d recovery codes, want 10\npage: %s", browser.URL(ctx, t), len(codes), browser.Text(ctx, t, "body"))
	}
	browser.ClickAndWait(ctx, t, "#continue")
	browser.Screenshot(ctx, t, "the-application")
	if got := browser.URL(ctx, t); got != front+page {
		t.Fatalf("after the MFA step the browser is on %s, want the page it asked for, %s\npage: %s", got, front+page, browser.Text(ctx, t, "body"))
	}
	requireDemoApp(ctx, t, page, "otp")

	// The step's pages say Referrer-Policy: no-referrer, under which
	// Chromium posts forms with "Origin: null" (and Sec-Fetch-Site:
	// same-origin). The real Origin is checked below.
	if got := posts.origins(); len(got) != 1 || got[0] != "null" && got[0] != front {
		t.Errorf("Origin headers of the form posts: %q; want one, null or %q", got, front)
	}

	t.Log("stepup's cookies are Secure and __Host- prefixed, and the browser kept them")
	for _, name := range []string{"__Host-stepup_mfa", "__Host-stepup_remember"} {
		c, ok := browser.Cookie(ctx, t, name)
		if !ok {
			t.Errorf("no %s cookie after the MFA step", name)
			continue
		}
		if !c.Secure || !c.HTTPOnly || c.Path != "/" || c.Domain != "localhost" {
			t.Errorf("%s: secure %v, httpOnly %v, path %q, domain %q; want Secure, HttpOnly, / and host-only on localhost", name, c.Secure, c.HTTPOnly, c.Path, c.Domain)
		}
	}

	t.Log("a fresh session of the remembered browser goes straight through")
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	_, err = chromedp.Call(cctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "__Host-stepup_mfa", URL: front + "/"})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	browser.Navigate(ctx, t, front+"/")
	browser.Screenshot(ctx, t, "remembered")
	if got := browser.URL(ctx, t); got != front+"/" {
		t.Fatalf("the remembered browser is on %s, want %s/\npage: %s", got, front, browser.Text(ctx, t, "body"))
	}
	requireDemoApp(ctx, t, "/", "remembered")

	t.Log("another browser session: a code is asked for (not enrolment), and a form post with the real Origin is accepted")
	other := b.NewContext(t)
	otherPosts := recordFormPosts(t, other)
	browser.SetExtraHeaders(other, t, map[string]string{"Origin": front})
	browser.Navigate(other, t, front+"/again")
	if u := browser.URL(other, t); !strings.HasPrefix(u, front+"/.stepup/mfa?state=") || browser.Exists(other, t, "#totp-secret") || !browser.Exists(other, t, "input#code") {
		t.Fatalf("a new session is on %s, want the code form of the MFA step\npage: %s", u, browser.Text(other, t, "body"))
	}
	browser.Screenshot(other, t, "new-session-verify")
	// A recovery code: the authenticator's current code was used up by the
	// enrolment, and the next one may be 30 seconds away.
	browser.ClickAndWait(other, t, "#alt-link")
	browser.Fill(other, t, "input#code", codes[0])
	browser.Screenshot(other, t, "recovery-code-filled")
	browser.ClickAndWait(other, t, "button[type=submit]")
	browser.Screenshot(other, t, "recovery-code-accepted")
	if got := browser.URL(other, t); got != front+"/again" {
		t.Fatalf("after the recovery code the browser is on %s, want %s/again\npage: %s", got, front, browser.Text(other, t, "body"))
	}
	requireDemoApp(other, t, "/again", "recovery-code")
	if got := otherPosts.origins(); len(got) != 1 || got[0] != front {
		t.Errorf("Origin headers of the recovery code post: %q; want one, %q", got, front)
	}

	s.Stop(t)
	for _, l := range s.LogLines() {
		if l["level"] == "WARN" && strings.Contains(fmt.Sprint(l["msg"]), "identity.header") {
			t.Errorf("the quickstart's configuration draws a warning about its identity header: %v", l["msg"])
		}
	}
}

// checkQuickstartDoc requires docs/quickstart.md to give exactly the
// commands this test runs the equivalents of, in the first sh block of its
// "Three commands" section, and to tell the reader to open the page the
// test opens.
func checkQuickstartDoc(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	_, section, ok := strings.Cut(doc, "\n## Three commands\n")
	if !ok {
		t.Fatalf("%s has no section \"## Three commands\"", path)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	m := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("the \"Three commands\" section of %s has no sh block", path)
	}
	got := strings.Split(strings.TrimSpace(m[1]), "\n")
	if !slices.Equal(got, quickstartCommands) {
		t.Errorf("%s gives the commands\n  %s\nthis test runs\n  %s", path, strings.Join(got, "\n  "), strings.Join(quickstartCommands, "\n  "))
	}
	if !strings.Contains(section, "open <"+quickstartOpen+">") {
		t.Errorf("the \"Three commands\" section of %s does not say to open <%s>", path, quickstartOpen)
	}
}

// quickstartPortMap maps each of the example's ports to the port the test
// uses: itself when it is free on 127.0.0.1, else a free one.
func quickstartPortMap(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range quickstartPorts {
		if err := harness.PortsFree("127.0.0.1:" + p); err != nil {
			sub := fmt.Sprint(harness.FreePort(t))
			t.Logf("port %s is taken (%v): the test's copies of the example use %s instead", p, err, sub)
			out[p] = sub
			continue
		}
		out[p] = p
	}
	return out
}

// requireDemoApp requires the quickstart's application page, answered by
// Caddy for path, showing the demo user and the MFA method.
func requireDemoApp(ctx context.Context, t *testing.T, path, method string) {
	t.Helper()
	body := browser.Text(ctx, t, "body")
	for _, want := range []string{
		"Hello demo, this is the demo application.",
		"X-Stepup-User: demo\n",
		"X-Stepup-Mfa:  " + method + "\n",
		"You asked for: " + path + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the application page does not show %q\npage: %s", want, body)
		}
	}
}

// formPosts records the Origin header of every POST the browser sends, as
// it sent it (from the network's extra request information). A redirect
// keeps the request id: the hops of one id are paired in order.
type formPosts struct {
	mu      sync.Mutex
	methods map[network.RequestID][]string
	headers map[network.RequestID][]network.Headers
}

func recordFormPosts(t *testing.T, ctx context.Context) *formPosts {
	t.Helper()
	p := &formPosts{methods: map[network.RequestID][]string{}, headers: map[network.RequestID][]network.Headers{}}
	err := chromedp.Listen(ctx, func(ev any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			p.methods[e.RequestID] = append(p.methods[e.RequestID], e.Request.Method)
		case *network.EventRequestWillBeSentExtraInfo:
			p.headers[e.RequestID] = append(p.headers[e.RequestID], e.Headers)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// origins returns the Origin of each POST, in no particular order ("" for
// a POST without one).
func (p *formPosts) origins() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for id, methods := range p.methods {
		for i, m := range methods {
			if m != "POST" {
				continue
			}
			o := ""
			if hs := p.headers[id]; i < len(hs) {
				for k, v := range hs[i] {
					if strings.EqualFold(k, "Origin") {
						o = fmt.Sprint(v)
					}
				}
			}
			out = append(out, o)
		}
	}
	return out
}

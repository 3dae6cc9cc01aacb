// Package browser drives headless Chromium (Debian's chromium package)
// from stepup's end-to-end tests with github.com/chromedp/chromedp v0.23.
//
// One browser serves a whole test binary: starting Chromium costs about a
// second and a half, a browser context costs almost nothing. Tests call
// [Shared] to get it and [Browser.NewContext] to get an isolated,
// incognito-like browser context with its own cookies for each scenario;
// TestMain calls [Close] after m.Run. [Start] gives a test a browser of its
// own instead.
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		browser.Close()
//		os.Exit(code)
//	}
//
//	func TestFlow(t *testing.T) {
//		ctx := browser.Shared(t).NewContext(t)
//		browser.Navigate(ctx, t, url)
//		browser.Fill(ctx, t, "#code", "123456")
//		browser.ClickAndWait(ctx, t, "button[type=submit]")
//		browser.Screenshot(ctx, t, "after-submit")
//	}
//
// The helpers take the scenario's context and the test: each step is
// bounded by [StepTimeout], and a failing step saves a screenshot of the
// page and ends the test with the page's URL, so that a flow test reads as
// a list of steps without error handling.
//
// When Chromium is missing the test is skipped, or fails when CI=true.
package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// StepTimeout bounds each helper's step. It is generous, for a loaded
// 2-core machine: it limits how long a broken test hangs and says nothing
// about expected speed.
const StepTimeout = 30 * time.Second

// closeTimeout bounds a graceful browser shutdown before the process is
// killed.
const closeTimeout = 20 * time.Second

// ArtifactsEnv names the environment variable of the directory that keeps
// screenshots after the run; without it they go to the test's temporary
// directory and are removed with it.
const ArtifactsEnv = "STEPUP_E2E_ARTIFACTS"

// ErrNoChromium is returned when no Chromium executable can be found.
var ErrNoChromium = errors.New("chromium not found (apt-get install -y chromium)")

// Browser is a running headless Chromium.
type Browser struct {
	ctx         context.Context // the browser's chromedp context
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	// dir is the profile directory; removed by Close when owned.
	dir      string
	ownsDir  bool
	output   *syncBuffer
	contexts atomic.Int64
	once     sync.Once
	closeErr error
}

// The browser of [Shared]. The brief of this package asks for one browser
// per test binary; with artifactsCleaned, the only package-level state.
var shared struct {
	once sync.Once
	b    *Browser
	err  error
}

// Shared returns the test binary's browser, starting it on first use. It
// lives until [Close]; tests must not close it. Without Chromium the test
// is skipped (failed when CI=true).
func Shared(tb testing.TB) *Browser {
	tb.Helper()
	shared.once.Do(func() {
		path, err := findChromium()
		if err != nil {
			shared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "stepup-chromium-")
		if err != nil {
			shared.err = fmt.Errorf("profile directory: %w", err)
			return
		}
		shared.b, shared.err = launch(path, dir, true)
		if shared.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		missing(tb, shared.err)
	}
	return shared.b
}

// Close stops the browser of [Shared], if it was started. Call it from
// TestMain after m.Run.
func Close() error {
	if shared.b == nil {
		return nil
	}
	return shared.b.Close()
}

// Start launches a browser for one test and stops it at the test's end.
// Prefer [Shared]. Without Chromium the test is skipped (failed when
// CI=true).
func Start(tb testing.TB) *Browser {
	tb.Helper()
	path, err := findChromium()
	if err != nil {
		missing(tb, err)
	}
	b, err := launch(path, tb.TempDir(), false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("closing chromium: %v", err)
		}
	})
	return b
}

// missing ends the test for a browser that cannot be found or started.
func missing(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNoChromium) && !harness.InCI() {
		tb.Skip(err)
	}
	if errors.Is(err, ErrNoChromium) {
		tb.Fatalf("%v; CI=true, so this is a failure", err)
	}
	tb.Fatal(err)
}

func findChromium() (string, error) {
	if fi, err := os.Stat(ChromiumPath); err == nil && !fi.IsDir() {
		return ChromiumPath, nil
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", ErrNoChromium
}

// launch starts Chromium headless, without the sandbox or /dev/shm (neither
// is available in a container), without background traffic, and with a
// fresh profile in dir. The first chromedp call has no deadline: a deadline there would
// end the browser when it expires.
func launch(path, dir string, ownsDir bool) (*Browser, error) {
	out := &syncBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &Browser{ctx: ctx, cancel: cancel, allocCancel: allocCancel, dir: dir, ownsDir: ownsDir, output: out}
	start := make(chan error, 1)
	go func() { start <- chromedp.Do(ctx) }()
	select {
	case err := <-start:
		if err != nil {
			cancel()
			allocCancel()
			return nil, fmt.Errorf("start chromium: %w\nchromium output:\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cancel()
		allocCancel()
		return nil, fmt.Errorf("chromium did not start within 2 minutes\nchromium output:\n%s", out.String())
	}
	return b, nil
}

// Close stops the browser: gracefully when it answers, else by killing
// it; then it removes a profile directory it created. Close is
// idempotent.
func (b *Browser) Close() error {
	b.once.Do(func() {
		done := make(chan error, 1)
		go func() { done <- chromedp.Cancel(b.ctx) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				b.closeErr = err
			}
		case <-time.After(closeTimeout):
			b.closeErr = errors.New("chromium did not close in time; killed")
		}
		b.cancel()
		b.allocCancel() // kills the process if it still runs, and waits
		if b.ownsDir {
			if err := os.RemoveAll(b.dir); err != nil && b.closeErr == nil {
				b.closeErr = err
			}
		}
	})
	return b.closeErr
}

// scenario is what a context from NewContext carries for the helpers.
type scenario struct {
	label string // "c<N>", unique within the browser
	dir   string // artefact directory
	shots atomic.Int64
	once  sync.Once // logs the artefact directory once
}

type scenarioKey struct{}

// NewContext opens a new incognito-like browser context (its own cookies,
// storage and cache) with one tab, and returns the chromedp context of that
// tab. It is closed when the test ends. Start the test's servers before
// calling it (with t.Cleanup), so that they are closed after the tab:
// httptest.Server.Close waits for the connections an open tab keeps.
func (b *Browser) NewContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	tb.Cleanup(cancel)
	// Open the tab now, without a deadline (see launch); later steps get
	// their own deadlines.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("new browser context: %v", err)
	}
	sc := &scenario{label: fmt.Sprintf("c%d", b.contexts.Add(1)), dir: artifactDir(tb)}
	return context.WithValue(ctx, scenarioKey{}, sc)
}

// artifactDir is $STEPUP_E2E_ARTIFACTS/<test name>, or a directory under
// the test's temporary directory. A test's directory under
// $STEPUP_E2E_ARTIFACTS is emptied the first time this process uses it,
// so that it holds the screenshots of the latest run only.
func artifactDir(tb testing.TB) string {
	if base := os.Getenv(ArtifactsEnv); base != "" {
		dir := filepath.Join(base, safeName(tb.Name()))
		once, _ := artifactsCleaned.LoadOrStore(dir, new(sync.Once))
		once.(*sync.Once).Do(func() {
			if err := os.RemoveAll(dir); err != nil {
				tb.Logf("cannot empty %s: %v", dir, err)
			}
		})
		return dir
	}
	return filepath.Join(tb.TempDir(), "artifacts")
}

// artifactsCleaned maps an artifact directory to the sync.Once that
// emptied it in this process.
var artifactsCleaned sync.Map

// ArtifactDir returns the directory screenshots of ctx are written to.
func ArtifactDir(ctx context.Context, tb testing.TB) string {
	if sc, ok := ctx.Value(scenarioKey{}).(*scenario); ok {
		return sc.dir
	}
	return artifactDir(tb)
}

// safeName turns s into a file name: letters, digits, '.', '_' and '-'.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), ".")
}

// step runs f with a deadline of StepTimeout. A query that raced a
// navigation and met a node of the previous document ("No node with given
// id found") is retried within the deadline.
func step[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	sctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	for {
		v, err := f(sctx)
		if err == nil || !staleNode(err) || sctx.Err() != nil {
			return v, err
		}
		select {
		case <-sctx.Done():
			return v, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// staleNode reports whether err is the browser's answer to a node id of a
// document that was replaced meanwhile.
func staleNode(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No node with given id found") || strings.Contains(msg, "Could not find node with given id")
}

// fail saves a screenshot of the page and ends the test.
func fail(ctx context.Context, tb testing.TB, what string, err error) {
	tb.Helper()
	loc, _ := step(ctx, func(c context.Context) (string, error) { return chromedp.Run(c, chromedp.Location()) })
	if path, serr := screenshot(ctx, tb, "failed-"+what); serr == nil {
		tb.Logf("screenshot of the failure: %s", path)
	} else {
		tb.Logf("no screenshot of the failure: %v", serr)
	}
	tb.Fatalf("browser: %s: %v (page %s)", what, err, loc)
}

// Screenshot writes a full-page PNG of the current page to the artefact
// directory as "<context>-<nn>-<name>.png" and returns its path; the
// directory is logged with the first screenshot of each context.
func Screenshot(ctx context.Context, tb testing.TB, name string) string {
	tb.Helper()
	path, err := screenshot(ctx, tb, name)
	if err != nil {
		tb.Fatalf("browser: screenshot %s: %v", name, err)
	}
	return path
}

func screenshot(ctx context.Context, tb testing.TB, name string) (string, error) {
	tb.Helper()
	sc, ok := ctx.Value(scenarioKey{}).(*scenario)
	if !ok {
		sc = &scenario{label: "c0", dir: artifactDir(tb)}
	}
	png, err := step(ctx, func(c context.Context) ([]byte, error) { return chromedp.Run(c, chromedp.FullScreenshot(100)) })
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(sc.dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(sc.dir, fmt.Sprintf("%s-%02d-%s.png", sc.label, sc.shots.Add(1), safeName(name)))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", err
	}
	first := false
	sc.once.Do(func() { first = true })
	if first {
		tb.Logf("browser screenshots (%s) in %s", sc.label, sc.dir)
	}
	return path, nil
}

// Navigate loads url, waits for the page to load, and returns the HTTP
// status of the document (after redirects; 0 when there is no HTTP
// response).
func Navigate(ctx context.Context, tb testing.TB, url string) int {
	tb.Helper()
	resp, err := step(ctx, func(c context.Context) (*network.Response, error) {
		return chromedp.Run(c, chromedp.NavigateResponse(url))
	})
	if err != nil {
		fail(ctx, tb, "navigate to "+url, err)
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// WaitVisible waits until the element matching the CSS selector is
// visible.
func WaitVisible(ctx context.Context, tb testing.TB, sel string) {
	tb.Helper()
	if _, err := step(ctx, func(c context.Context) (chromedp.Void, error) {
		return chromedp.Run(c, chromedp.WaitVisible(chromedp.CSS(sel)))
	}); err != nil {
		fail(ctx, tb, "wait for "+sel, err)
	}
}

// Fill replaces the value of the input matching sel by typing value.
func Fill(ctx context.Context, tb testing.TB, sel, value string) {
	tb.Helper()
	if _, err := step(ctx, func(c context.Context) (chromedp.Void, error) {
		return chromedp.Void{}, chromedp.Do(c,
			chromedp.WaitVisible(chromedp.CSS(sel)),
			chromedp.Clear(chromedp.CSS(sel)),
			chromedp.SendKeys(chromedp.CSS(sel), value),
		)
	}); err != nil {
		fail(ctx, tb, "fill "+sel, err)
	}
}

// SetChecked ticks (or unticks) the checkbox matching sel by clicking it
// when its state differs.
func SetChecked(ctx context.Context, tb testing.TB, sel string, checked bool) {
	tb.Helper()
	cur, err := step(ctx, func(c context.Context) (bool, error) {
		return chromedp.Run(c, chromedp.JavascriptAttribute[bool](chromedp.CSS(sel), "checked"))
	})
	if err != nil {
		fail(ctx, tb, "read checkbox "+sel, err)
	}
	if cur != checked {
		Click(ctx, tb, sel)
	}
}

// Click clicks the element matching sel and does not wait for anything
// that follows.
func Click(ctx context.Context, tb testing.TB, sel string) {
	tb.Helper()
	if _, err := step(ctx, func(c context.Context) (chromedp.Void, error) {
		return chromedp.Run(c, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	}); err != nil {
		fail(ctx, tb, "click "+sel, err)
	}
}

// ClickAndWait clicks the element matching sel (a submit button, a link),
// waits for the page it leads to, and returns that document's HTTP status
// (after redirects).
func ClickAndWait(ctx context.Context, tb testing.TB, sel string) int {
	tb.Helper()
	resp, err := step(ctx, func(c context.Context) (*network.Response, error) {
		return chromedp.RunResponse(c, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	})
	if err != nil {
		fail(ctx, tb, "click "+sel+" and wait", err)
	}
	if resp == nil {
		return 0
	}
	return int(resp.Status)
}

// Text returns the visible text of the element matching sel.
func Text(ctx context.Context, tb testing.TB, sel string) string {
	tb.Helper()
	s, err := step(ctx, func(c context.Context) (string, error) { return chromedp.Run(c, chromedp.Text(chromedp.CSS(sel))) })
	if err != nil {
		fail(ctx, tb, "text of "+sel, err)
	}
	return s
}

// Attribute returns an attribute of the element matching sel, and whether
// the element has it.
func Attribute(ctx context.Context, tb testing.TB, sel, name string) (string, bool) {
	tb.Helper()
	r, err := step(ctx, func(c context.Context) (chromedp.AttributeResult, error) {
		return chromedp.Run(c, chromedp.AttributeValue(chromedp.CSS(sel), name))
	})
	if err != nil {
		fail(ctx, tb, "attribute "+name+" of "+sel, err)
	}
	return r.Value, r.Exists
}

// Value returns the current value of the form field matching sel.
func Value(ctx context.Context, tb testing.TB, sel string) string {
	tb.Helper()
	v, err := step(ctx, func(c context.Context) (string, error) { return chromedp.Run(c, chromedp.Value(chromedp.CSS(sel))) })
	if err != nil {
		fail(ctx, tb, "value of "+sel, err)
	}
	return v
}

// Exists reports, without waiting, whether an element matches sel.
func Exists(ctx context.Context, tb testing.TB, sel string) bool {
	tb.Helper()
	q, _ := json.Marshal(sel)
	ok, err := step(ctx, func(c context.Context) (bool, error) {
		return chromedp.Run(c, chromedp.Evaluate[bool]("document.querySelector("+string(q)+") !== null"))
	})
	if err != nil {
		fail(ctx, tb, "look for "+sel, err)
	}
	return ok
}

// URL returns the address of the current page.
func URL(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	u, err := step(ctx, func(c context.Context) (string, error) { return chromedp.Run(c, chromedp.Location()) })
	if err != nil {
		fail(ctx, tb, "current URL", err)
	}
	return u
}

// Title returns the title of the current page.
func Title(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	s, err := step(ctx, func(c context.Context) (string, error) { return chromedp.Run(c, chromedp.Title()) })
	if err != nil {
		fail(ctx, tb, "title", err)
	}
	return s
}

// HTML returns the current document's markup.
func HTML(ctx context.Context, tb testing.TB) string {
	tb.Helper()
	s, err := step(ctx, func(c context.Context) (string, error) {
		return chromedp.Run(c, chromedp.OuterHTML(chromedp.CSS("html")))
	})
	if err != nil {
		fail(ctx, tb, "page HTML", err)
	}
	return s
}

// Cookies returns every cookie of ctx's browser context, for all sites
// and paths (Storage.getCookies).
func Cookies(ctx context.Context) ([]*network.Cookie, error) {
	c := chromedp.FromContext(ctx)
	if c == nil {
		return nil, chromedp.ErrInvalidContext
	}
	res, err := step(ctx, func(sc context.Context) (storage.GetCookiesResult, error) {
		return chromedp.CallBrowser(sc, storage.GetCookies, storage.GetCookiesParams{BrowserContextID: c.BrowserContextID})
	})
	if err != nil {
		return nil, err
	}
	return res.Cookies, nil
}

// Cookie returns the cookie called name of ctx's browser context (the
// first one when several paths or domains have it).
func Cookie(ctx context.Context, tb testing.TB, name string) (*network.Cookie, bool) {
	tb.Helper()
	cs, err := Cookies(ctx)
	if err != nil {
		fail(ctx, tb, "cookies", err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// SetCookie stores c in ctx's browser context as if url had set it
// (Domain, Path, Secure, HttpOnly, SameSite and Expires of c are honoured
// when set), for example an identity token from the test's IdP.
func SetCookie(ctx context.Context, tb testing.TB, url string, c *http.Cookie) {
	tb.Helper()
	p := network.SetCookieParams{Name: c.Name, Value: c.Value, URL: url, Domain: c.Domain, Path: c.Path}
	if c.Secure {
		p.Secure = new(true)
	}
	if c.HttpOnly {
		p.HTTPOnly = new(true)
	}
	switch c.SameSite {
	case http.SameSiteLaxMode:
		p.SameSite = network.CookieSameSiteLax
	case http.SameSiteStrictMode:
		p.SameSite = network.CookieSameSiteStrict
	case http.SameSiteNoneMode:
		p.SameSite = network.CookieSameSiteNone
	}
	if !c.Expires.IsZero() {
		p.Expires = cdp.TimeSinceEpoch(float64(c.Expires.UnixNano()) / 1e9)
	}
	if _, err := step(ctx, func(sc context.Context) (cdp.Empty, error) { return chromedp.Call(sc, network.SetCookie, p) }); err != nil {
		fail(ctx, tb, "set cookie "+c.Name, err)
	}
}

// SetExtraHeaders makes the tab send h with every request from now on
// (Network.setExtraHTTPHeaders), e.g. an X-Forwarded-For that a proxy
// trusting one hop takes as the client's address.
func SetExtraHeaders(ctx context.Context, tb testing.TB, h map[string]string) {
	tb.Helper()
	hs := network.Headers{}
	for k, v := range h {
		hs[k] = v
	}
	if _, err := step(ctx, func(sc context.Context) (cdp.Empty, error) {
		return chromedp.Call(sc, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hs})
	}); err != nil {
		fail(ctx, tb, "set extra headers", err)
	}
}

// syncBuffer collects Chromium's output for error messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 1<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

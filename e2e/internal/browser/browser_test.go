package browser_test

import (
	"bytes"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := browser.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the shared browser:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// formSite is a small site with a form: GET / shows it, POST /submit sets
// cookies and redirects (303) to /done, which greets the name from the
// cookie and echoes the X-Test header.
func formSite(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Form</title></head><body>
<form method="post" action="/submit">
<label for="name">Name</label> <input id="name" name="name" autocomplete="off">
<label><input type="checkbox" id="remember" name="remember" value="yes"> Remember me</label>
<button id="go" type="submit">Send</button>
</form>
<div style="height:1400px;border-left:4px solid #36c">tall page</div>
<p id="bottom">bottom</p>
</body></html>`)
	})
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		name := r.PostFormValue("name")
		http.SetCookie(w, &http.Cookie{Name: "greeting", Value: url.QueryEscape(name), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		remember := r.PostFormValue("remember")
		if remember == "" {
			remember = "no"
		}
		http.Redirect(w, r, "/done?remember="+remember, http.StatusSeeOther)
	})
	mux.HandleFunc("GET /done", func(w http.ResponseWriter, r *http.Request) {
		name := "stranger"
		if c, err := r.Cookie("greeting"); err == nil {
			if n, err := url.QueryUnescape(c.Value); err == nil {
				name = n
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>Done</title></head><body>
<h1 id="result">Hello, %s</h1>
<p id="remember-state" data-remember="%s">remember: %[2]s</p>
<p id="xtest">%s</p>
</body></html>`, html.EscapeString(name), html.EscapeString(r.URL.Query().Get("remember")), html.EscapeString(r.Header.Get("X-Test")))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestFormFlow fills and submits a form, reads the resulting page and its
// cookie, and writes screenshots.
func TestFormFlow(t *testing.T) {
	t.Parallel()
	srv := formSite(t)
	ctx := browser.Shared(t).NewContext(t)

	if got := browser.Navigate(ctx, t, srv.URL+"/"); got != 200 {
		t.Fatalf("status %d", got)
	}
	if got := browser.Title(ctx, t); got != "Form" {
		t.Errorf("title %q", got)
	}
	browser.WaitVisible(ctx, t, "#name")
	browser.Fill(ctx, t, "#name", "Ada Lovelace")
	browser.SetChecked(ctx, t, "#remember", true)
	browser.SetChecked(ctx, t, "#remember", true) // already ticked: stays ticked
	if got := browser.Value(ctx, t, "#name"); got != "Ada Lovelace" {
		t.Errorf("value %q", got)
	}
	form := browser.Screenshot(ctx, t, "form filled")
	if got := browser.ClickAndWait(ctx, t, "#go"); got != 200 {
		t.Errorf("status after submit (303 then 200) %d, want 200", got)
	}
	if u := browser.URL(ctx, t); !strings.HasSuffix(u, "/done?remember=yes") {
		t.Errorf("url %q", u)
	}
	if got := browser.Text(ctx, t, "#result"); got != "Hello, Ada Lovelace" {
		t.Errorf("result %q", got)
	}
	if v, ok := browser.Attribute(ctx, t, "#remember-state", "data-remember"); !ok || v != "yes" {
		t.Errorf("data-remember %q %v", v, ok)
	}
	if _, ok := browser.Attribute(ctx, t, "#remember-state", "data-absent"); ok {
		t.Error("an absent attribute exists")
	}
	if !browser.Exists(ctx, t, "#result") || browser.Exists(ctx, t, "#name") {
		t.Error("Exists is wrong")
	}
	if !strings.Contains(browser.HTML(ctx, t), `id="result"`) {
		t.Error("HTML misses the result")
	}
	c, ok := browser.Cookie(ctx, t, "greeting")
	if !ok || c.Value != "Ada+Lovelace" || !c.HTTPOnly || c.Path != "/" {
		t.Errorf("cookie %+v (found %v), want greeting=Ada+Lovelace HttpOnly Path=/", c, ok)
	}
	done := browser.Screenshot(ctx, t, "done")
	for _, p := range []string{form, done} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("%s is not a PNG", p)
		}
		if filepath.Dir(p) != browser.ArtifactDir(ctx, t) {
			t.Errorf("%s is not in the artefact directory %s", p, browser.ArtifactDir(ctx, t))
		}
	}
	if !strings.HasSuffix(form, "-01-form-filled.png") || !strings.HasSuffix(done, "-02-done.png") {
		t.Errorf("screenshot names %q %q", form, done)
	}
}

// TestContextsAreIsolated: a fresh browser context has none of another
// context's cookies; cookies and headers can be set per context.
func TestContextsAreIsolated(t *testing.T) {
	t.Parallel()
	srv := formSite(t)
	b := browser.Shared(t)
	first := b.NewContext(t)
	browser.Navigate(first, t, srv.URL+"/")
	browser.Fill(first, t, "#name", "Ada")
	browser.ClickAndWait(first, t, "#go")
	if got := browser.Text(first, t, "#result"); got != "Hello, Ada" {
		t.Fatalf("result %q", got)
	}

	second := b.NewContext(t)
	browser.Navigate(second, t, srv.URL+"/done")
	if got := browser.Text(second, t, "#result"); got != "Hello, stranger" {
		t.Errorf("a fresh context sees %q", got)
	}
	cs, err := browser.Cookies(second)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 {
		t.Errorf("a fresh context has cookies: %v", cs)
	}

	browser.SetCookie(second, t, srv.URL, &http.Cookie{Name: "greeting", Value: "Grace", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	browser.SetExtraHeaders(second, t, map[string]string{"X-Test": "from the test"})
	browser.Navigate(second, t, srv.URL+"/done")
	if got := browser.Text(second, t, "#result"); got != "Hello, Grace" {
		t.Errorf("with a set cookie: %q", got)
	}
	if got := browser.Text(second, t, "#xtest"); got != "from the test" {
		t.Errorf("extra header: %q", got)
	}
	// The first context still has its own cookie.
	if c, ok := browser.Cookie(first, t, "greeting"); !ok || c.Value != "Ada" {
		t.Errorf("first context's cookie %+v", c)
	}
}

// fatalRecorder is a testing.TB whose Fatal records the message and ends
// the calling goroutine, so that a helper's failure can be observed.
type fatalRecorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
	logs  []string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *fatalRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// TestFailingStep: a helper that fails saves a screenshot and ends the
// test with the page's URL.
func TestFailingStep(t *testing.T) {
	t.Parallel()
	srv := formSite(t)
	ctx := browser.Shared(t).NewContext(t)
	browser.Navigate(ctx, t, srv.URL+"/done")
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A heading has no "checked" property: the step fails at once.
		browser.SetChecked(ctx, rec, "#result", true)
	}()
	<-done
	if !strings.Contains(rec.fatal, "read checkbox #result") || !strings.Contains(rec.fatal, srv.URL+"/done") {
		t.Errorf("fatal message %q, want the step and the page", rec.fatal)
	}
	shots, _ := filepath.Glob(filepath.Join(browser.ArtifactDir(ctx, t), "*-failed-read-checkbox--result.png"))
	if len(shots) != 1 {
		t.Errorf("failure screenshots %v, want one; logs %q", shots, rec.logs)
	}
}

// TestStart: a browser of the test's own, closed at its end.
func TestStart(t *testing.T) {
	t.Parallel()
	b := browser.Start(t)
	srv := formSite(t)
	ctx := b.NewContext(t)
	if got := browser.Navigate(ctx, t, srv.URL+"/done"); got != 200 {
		t.Errorf("status %d", got)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

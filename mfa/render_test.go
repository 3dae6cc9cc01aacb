package mfa

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// TestRenderPages renders every page the step shows, checks what every
// page must have, and writes them as HTML files: to $MFA_PAGES_DIR when
// set (to look at them, or screenshot them in a browser), else to a
// temporary directory.
func TestRenderPages(t *testing.T) {
	dir := os.Getenv("MFA_PAGES_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.EnrollNetworks = []string{"corporate"} })
	office := who{user: "auth0|alice", networks: []string{"corporate"}}
	pages := map[string]string{}
	keep := func(name, body string) { pages[name] = body }

	st := e.state(office.user, anyRemember, returnURL)
	enrolPage := e.get(mfaURL(st), office)
	keep("enrol", enrolPage.Body.String())
	secret := strings.ReplaceAll(scrape(t, reSecret, enrolPage.Body.String()), " ", "")
	form := url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, enrolPage.Body.String())}, "method": {"enrol"}, "code": {"000000"}}
	wrong := e.post("/.stepup/mfa", office, form)
	keep("enrol-wrong-code", wrong.Body.String())
	form.Set("code", e.code(secret, 0))
	codes := e.post("/.stepup/mfa", office, form)
	keep("recovery-codes", codes.Body.String())

	e.clk.Advance(30 * time.Second)
	st = e.state(office.user, anyRemember, returnURL)
	verify := e.get(mfaURL(st), office)
	keep("verify", verify.Body.String())
	recovery := e.get(mfaURL(st)+"&method=recovery", office)
	keep("recovery", recovery.Body.String())
	form = url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, verify.Body.String())}, "method": {"totp"}, "code": {"000000"}}
	keep("verify-wrong-code", e.post("/.stepup/mfa", office, form).Body.String())
	for range 4 {
		e.post("/.stepup/mfa", office, form)
	}
	keep("verify-locked", e.post("/.stepup/mfa", office, form).Body.String())
	e.clk.Advance(time.Hour)

	keep("invalid-link", e.get(mfaURL(e.state(office.user, anyRemember, returnURL)+"x"), office).Body.String())
	used := e.state(office.user, anyRemember, returnURL)
	_, _ = e.m.ConsumeState(t.Context(), used, office.user)
	keep("used", e.get(mfaURL(used), office).Body.String())
	keep("wrong-user", e.get(mfaURL(e.state("auth0|bob", anyRemember, returnURL)), office).Body.String())
	keep("sign-in-again", e.get(mfaURL(st), who{}).Body.String())
	keep("enrol-network", e.get(mfaURL(e.state("auth0|carol", anyRemember, returnURL)), who{user: "auth0|carol"}).Body.String())
	keep("duo", e.get(mfaURL(e.state(office.user, session.Requirement{Provider: "duo"}, returnURL)), office).Body.String())
	keep("csrf", e.post("/.stepup/mfa", office, url.Values{"state": {st}}).Body.String())
	keep("not-found", e.get("/.stepup/x", office).Body.String())

	// The factors page, after a fresh verification.
	e.clk.Advance(30 * time.Second)
	st = e.state(office.user, anyRemember, returnURL)
	form = url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, e.get(mfaURL(st), office).Body.String())}, "method": {"totp"}, "code": {e.code(secret, 0)}}
	ok := e.post("/.stepup/mfa", office, form)
	mfaName, _, _ := e.m.CookieNames()
	factors := e.get("/.stepup/factors", office, cookie(ok, mfaName))
	if factors.Code != http.StatusOK {
		t.Fatalf("factors page: %d", factors.Code)
	}
	keep("factors", factors.Body.String())
	regen := e.post("/.stepup/factors", office, url.Values{"action": {"recovery_codes"}, "csrf": {scrape(t, reCodesCSRF, factors.Body.String())}}, cookie(ok, mfaName))
	if regen.Code != http.StatusOK {
		t.Fatalf("new recovery codes: %d", regen.Code)
	}
	keep("factors-new-codes", regen.Body.String())
	reset := e.post("/.stepup/factors", office, url.Values{"csrf": {scrape(t, reCSRF, factors.Body.String())}}, cookie(ok, mfaName))
	keep("factors-reset", reset.Body.String())

	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(css)
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if !strings.Contains(e.h.pages.csp, hash) {
		t.Fatalf("CSP %q lacks the style hash %s", e.h.pages.csp, hash)
	}
	styleRe := regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	for name, body := range pages {
		m := styleRe.FindStringSubmatch(body)
		if m == nil || m[1] != string(css) {
			t.Errorf("%s: inline style differs from style.css, so the CSP hash blocks it", name)
		}
		for _, want := range []string{"<!doctype html>", `<html lang="en">`, `name="viewport"`, "<h1>", "</html>"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: lacks %q", name, want)
			}
		}
		// The step's own script only (checkSecurityHeaders checks which).
		for _, bad := range []string{"<script>", " on", "[", "ZgotmplZ", "http://", "src=\"http"} {
			if bad == " on" {
				if regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
					t.Errorf("%s: has an event handler attribute", name)
				}
				continue
			}
			if bad == "[" {
				if regexp.MustCompile(`\[[a-z_]+\]`).MatchString(body) {
					t.Errorf("%s: shows an unknown message id", name)
				}
				continue
			}
			if strings.Contains(body, bad) {
				t.Errorf("%s: contains %q", name, bad)
			}
		}
		// Every input has a label.
		for _, m := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if !strings.Contains(body, `<label for="`+m[1]+`">`) {
				t.Errorf("%s: input %s has no label", name, m[1])
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name+".html"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(pages) < 17 {
		t.Errorf("rendered %d pages", len(pages))
	}
}

// TestMessages checks that templates use only known message ids and that
// every message is used somewhere, so messages.go stays the one place.
func TestMessages(t *testing.T) {
	used := map[string]bool{"lang": true, "product": true}
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	idRe := regexp.MustCompile(`\{\{[^}]*\bt "([a-z_]+)"`)
	for _, ent := range entries {
		b, _ := templateFS.ReadFile("templates/" + ent.Name())
		for _, m := range idRe.FindAllStringSubmatch(string(b), -1) {
			if _, ok := defaultMessages[m[1]]; !ok {
				t.Errorf("%s uses unknown message %q", ent.Name(), m[1])
			}
			used[m[1]] = true
		}
	}
	goFiles, _ := filepath.Glob("*.go")
	var src strings.Builder
	for _, f := range goFiles {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		if f == "messages.go" {
			// Only the code, not the table.
			b = b[strings.Index(string(b), "// DefaultMessages returns"):]
		}
		src.Write(b)
	}
	for id := range defaultMessages {
		if used[id] {
			continue
		}
		base := strings.TrimSuffix(strings.TrimSuffix(id, "_one"), "_other")
		if !strings.Contains(src.String(), `"`+id+`"`) && !strings.Contains(src.String(), `"`+base+`"`) {
			t.Errorf("message %q is never used", id)
		}
	}
}

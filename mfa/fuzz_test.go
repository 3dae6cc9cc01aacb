package mfa

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzStepPost throws arbitrary forms at POST {prefix}mfa as an
// identified user. Whatever comes in, the handler must not panic, must
// send its security headers, and may only succeed (303) towards the
// return URL or "/".
func FuzzStepPost(f *testing.F) {
	e := newEnv(f, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	assertion := e.assertion(alice)
	f.Add(st, form.Get("csrf"), "totp", e.code(secret, 0), "1", "https://app.example")
	f.Add(st, form.Get("csrf"), "recovery", "abcd-efgh-jkmn-pqrs", "", "")
	f.Add(st, form.Get("csrf"), "enrol", "000000", "", "null")
	f.Add("", "", "", "", "", "")
	f.Add("v1.state.k1.e30.AAAA", "v1.csrf.k1.e30.AAAA", "totp", "123456", "1", "https://evil.example")
	f.Fuzz(func(t *testing.T, state, csrf, method, code, remember, origin string) {
		body := url.Values{"state": {state}, "csrf": {csrf}, "method": {method}, "code": {code}, "remember": {remember}}.Encode()
		r := httptest.NewRequest(http.MethodPost, "https://"+host+"/.stepup/mfa", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set(AssertionHeader, assertion)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, r)
		checkSecurityHeaders(t, rec)
		switch rec.Code {
		case http.StatusSeeOther:
			if loc := rec.Header().Get("Location"); loc != returnURL && loc != "/" {
				t.Fatalf("303 to %q", loc)
			}
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusGone, http.StatusTooManyRequests,
			http.StatusConflict, http.StatusNotImplemented, http.StatusServiceUnavailable:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}

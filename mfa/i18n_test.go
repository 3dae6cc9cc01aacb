package mfa

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestGermanComplete: the shipped German text has every message id, with
// English's format verbs, and nothing else.
func TestGermanComplete(t *testing.T) {
	for id := range defaultMessages {
		if _, ok := germanMessages[id]; !ok {
			t.Errorf("German lacks %q", id)
		}
	}
	for id := range germanMessages {
		if _, ok := defaultMessages[id]; !ok {
			t.Errorf("German has unknown id %q", id)
		}
	}
	if err := checkFormats(catalog(defaultMessages), catalog(germanMessages)); err != nil {
		t.Error(err)
	}
}

// TestLanguageFromAcceptLanguage: the page's language follows
// Accept-Language, English when it names none the step has.
func TestLanguageFromAcceptLanguage(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Translations = map[string]map[string]string{"fr": {"signin_title": "Veuillez vous reconnecter"}, "de": {"product": "Anmeldung bei Beispiel"}}
	})
	for _, tc := range []struct{ accept, lang, want string }{
		{"", "en", "Please sign in again"},
		{"de-CH, en;q=0.5", "de", "Bitte melden Sie sich erneut an"},
		{"fr-FR,fr;q=0.9", "fr", "Veuillez vous reconnecter"},
		{"ja, en-GB;q=0.8", "en", "Please sign in again"},
		{"xx-invalid-;;;", "en", "Please sign in again"},
	} {
		r := e.do(http.MethodGet, "/.stepup/factors", who{}, nil, nil, map[string]string{"Accept-Language": tc.accept})
		body := r.Body.String()
		if !strings.Contains(body, `<html lang="`+tc.lang+`">`) || !strings.Contains(body, tc.want) {
			t.Errorf("Accept-Language %q: want lang %s and %q\n%s", tc.accept, tc.lang, tc.want, body)
		}
		if tc.lang == "de" && !strings.Contains(body, "Anmeldung bei Beispiel") {
			t.Errorf("the German override is not shown")
		}
	}
}

// TestTranslationsValidated: an unknown id, a bad tag or a lost format
// verb is refused at start-up.
func TestTranslationsValidated(t *testing.T) {
	for name, tr := range map[string]map[string]map[string]string{
		"unknown id":  {"de": {"no_such_id": "x"}},
		"bad tag":     {"not a tag!": {"product": "x"}},
		"lost verb":   {"fr": {"recovery_left_other": "Il vous reste des codes."}},
		"english bad": {"en": {"no_such_id": "x"}},
	} {
		o := newEnv(t, nil).opts
		o.Translations = tr
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestBranding: the organisation, logo and accent colour show on every
// page, and the CSP still allows exactly the inline style; an accent too
// light for white text is refused.
func TestBranding(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	e := newEnv(t, func(o *Options) {
		o.Brand = Branding{Organisation: "Example Corp", Logo: png, Accent: "#7a1f5c"}
	})
	body := e.get("/.stepup/factors", who{}).Body.String()
	for _, want := range []string{"Example Corp</p>", `<img class="logo" src="data:image/png;base64,`, "--accent:#7a1f5c"} {
		if !strings.Contains(body, want) {
			t.Errorf("branded page lacks %q", want)
		}
	}
	for name, b := range map[string]Branding{
		"light accent": {Accent: "#ffee00"},
		"bad accent":   {Accent: "red"},
		"not an image": {Logo: []byte("hello")},
	} {
		o := newEnv(t, nil).opts
		o.Brand = b
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !slices.Contains([]string{"image/svg+xml"}, func() string { s, _ := logoType([]byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)); return s }()) {
		t.Error("an SVG logo is not recognised")
	}
}

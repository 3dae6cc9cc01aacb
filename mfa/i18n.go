package mfa

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/text/language"
)

// DefaultLanguage is the language of a request whose Accept-Language
// names none the step has.
const DefaultLanguage = "en"

// builtinTranslations are the languages shipped besides English, each
// complete (a test checks every message id).
var builtinTranslations = map[string]map[string]string{
	"de": germanMessages,
}

// lang is one language of a handler: its text and the pages made with it.
type lang struct {
	tag   string
	msgs  catalog
	pages *pages
}

// languages are a handler's languages and the matcher that chooses one
// from Accept-Language.
type languages struct {
	byIndex []*lang // [0] is English
	matcher language.Matcher
}

// newLanguages builds English (with the overrides of Options.Messages),
// the built-in translations and Options.Translations (which override a
// built-in language's texts, or add a language; ids it leaves out are
// English). An unknown id or a bad language tag is an error.
func newLanguages(english map[string]string, translations map[string]map[string]string, style []byte, brand brandSetup) (*languages, error) {
	var errs []string
	texts := map[string]map[string]string{}
	for tag, msgs := range builtinTranslations {
		texts[tag] = maps.Clone(msgs)
	}
	for raw, msgs := range translations {
		t, err := language.Parse(raw)
		if err != nil {
			errs = append(errs, fmt.Sprintf("messages: language %q: %v", raw, err))
			continue
		}
		tag := t.String()
		if tag == DefaultLanguage {
			// Overrides of English, like Options.Messages.
			english = mergeInto(english, msgs)
			continue
		}
		if texts[tag] == nil {
			texts[tag] = map[string]string{"lang": tag}
		}
		maps.Copy(texts[tag], msgs)
	}
	en, err := newCatalog(english)
	if err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	tags := slices.Sorted(maps.Keys(texts))
	ls := &languages{}
	all := []language.Tag{language.English}
	add := func(tag string, c catalog) error {
		p, err := parsePages(c, style, brand)
		if err != nil {
			return err
		}
		ls.byIndex = append(ls.byIndex, &lang{tag: tag, msgs: c, pages: p})
		return nil
	}
	if err := add(DefaultLanguage, en); err != nil {
		return nil, err
	}
	for _, tag := range tags {
		c := catalog(maps.Clone(en))
		var unknown []string
		for id, v := range texts[tag] {
			if _, ok := c[id]; !ok {
				unknown = append(unknown, id)
				continue
			}
			c[id] = v
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			return nil, fmt.Errorf("messages: language %q: unknown message ids %q", tag, unknown)
		}
		if err := checkFormats(en, c); err != nil {
			return nil, fmt.Errorf("messages: language %q: %w", tag, err)
		}
		if err := add(tag, c); err != nil {
			return nil, err
		}
		all = append(all, language.MustParse(tag))
	}
	ls.matcher = language.NewMatcher(all)
	return ls, nil
}

func mergeInto(base, add map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, add)
	return out
}

var verbRe = regexp.MustCompile(`%[-+# 0]*[0-9]*[a-z]`)

// checkFormats refuses a translation whose format verbs differ from
// English's (a "%d" lost or a "%s" added would show garbage).
func checkFormats(en, c catalog) error {
	var bad []string
	for id, v := range c {
		if !slices.Equal(verbRe.FindAllString(en[id], -1), verbRe.FindAllString(v, -1)) {
			bad = append(bad, id)
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("message ids %q: the format verbs (%%s, %%d) differ from English's", bad)
	}
	return nil
}

// lang returns the language of r, chosen from its Accept-Language.
func (h *Handler) lang(r *http.Request) *lang {
	if r == nil || len(h.langs.byIndex) == 1 {
		return h.langs.byIndex[0]
	}
	al := r.Header.Get("Accept-Language")
	if al == "" || len(al) > 512 {
		return h.langs.byIndex[0]
	}
	tags, _, err := language.ParseAcceptLanguage(al)
	if err != nil || len(tags) == 0 {
		return h.langs.byIndex[0]
	}
	_, i, conf := h.langs.matcher.Match(tags...)
	if conf == language.No || i < 0 || i >= len(h.langs.byIndex) {
		return h.langs.byIndex[0]
	}
	return h.langs.byIndex[i]
}

// tr returns the text of the request's language.
func (h *Handler) tr(r *http.Request) catalog { return h.lang(r).msgs }

// Branding is the organisation's look of the pages.
type Branding struct {
	// Organisation is shown above every page's title instead of the
	// "product" text.
	Organisation string
	// Logo is an image shown next to it: PNG, JPEG, GIF, WebP or SVG, at
	// most 64 KiB (it is inlined as a data: URI; the pages load nothing
	// from elsewhere).
	Logo []byte
	// Accent is the colour of buttons and links, "#rrggbb". White text on
	// it must have a contrast ratio of at least 4.5:1 (WCAG AA).
	Accent string
}

// MaxLogoBytes bounds [Branding.Logo].
const MaxLogoBytes = 64 << 10

type brandSetup struct {
	org    string
	logo   string // data: URI
	accent string
}

func newBrandSetup(b Branding) (brandSetup, error) {
	s := brandSetup{org: strings.TrimSpace(b.Organisation)}
	var errs []string
	if s.org != "" && (len(s.org) > 100 || !printableText(s.org)) {
		errs = append(errs, "organisation: must be 1-100 printable characters")
	}
	if len(b.Logo) > 0 {
		typ, ok := logoType(b.Logo)
		switch {
		case len(b.Logo) > MaxLogoBytes:
			errs = append(errs, fmt.Sprintf("logo: %d bytes, more than %d", len(b.Logo), MaxLogoBytes))
		case !ok:
			errs = append(errs, "logo: not a PNG, JPEG, GIF, WebP or SVG image")
		default:
			s.logo = "data:" + typ + ";base64," + base64.StdEncoding.EncodeToString(b.Logo)
		}
	}
	if b.Accent != "" {
		if ratio, ok := contrastWithWhite(b.Accent); !ok {
			errs = append(errs, fmt.Sprintf("accent colour %q: must be #rrggbb", b.Accent))
		} else if ratio < 4.5 {
			errs = append(errs, fmt.Sprintf("accent colour %q: white text on it has a contrast of %.2f:1, at least 4.5:1 is needed", b.Accent, ratio))
		} else {
			s.accent = strings.ToLower(b.Accent)
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("branding: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

func logoType(b []byte) (string, bool) {
	head := bytes.TrimSpace(b[:min(len(b), 512)])
	if bytes.HasPrefix(head, []byte("<svg")) || bytes.HasPrefix(head, []byte("<?xml")) && bytes.Contains(b, []byte("<svg")) {
		return "image/svg+xml", true
	}
	switch t := http.DetectContentType(b); t {
	case "image/png", "image/jpeg", "image/gif", "image/webp":
		return t, true
	}
	return "", false
}

// contrastWithWhite returns the WCAG contrast ratio of white on the
// colour "#rrggbb".
func contrastWithWhite(hex string) (float64, bool) {
	if len(hex) != 7 || hex[0] != '#' {
		return 0, false
	}
	v, err := strconv.ParseUint(hex[1:], 16, 32)
	if err != nil {
		return 0, false
	}
	lin := func(c uint64) float64 {
		x := float64(c) / 255
		if x <= 0.03928 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(v>>16&0xff) + 0.7152*lin(v>>8&0xff) + 0.0722*lin(v&0xff)
	return 1.05 / (l + 0.05), true
}

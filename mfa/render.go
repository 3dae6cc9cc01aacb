package mfa

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

//go:embed templates/*.html templates/style.css
var templateFS embed.FS

// stepScript is the step's only script (static/stepup.js), served at
// {prefix}stepup.js and loaded only by the pages that need it.
//
//go:embed static/stepup.js
var stepScript []byte

// scriptSRI is the script's Subresource Integrity value.
var scriptSRI = func() string {
	sum := sha512.Sum384(stepScript)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}()

// pageNames are the page templates; each is rendered inside layout.html.
var pageNames = []string{"enrol", "verify", "recovery", "codes", "message", "factors", "duo", "confirm"}

// pages are the parsed templates of one handler (their text comes from
// its catalog) and the Content-Security-Policy that fits them.
type pages struct {
	byName map[string]*template.Template
	style  template.CSS
	csp    string
	// cspScript is csp with the step's own script allowed, for the pages
	// that load it.
	cspScript string
}

// styleCSS is the pages' style sheet.
func styleCSS(brand brandSetup) ([]byte, error) {
	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	if brand.accent != "" {
		css = append(css, ":root{--accent:"+brand.accent+";--accent-fg:#fff}\n"...)
	}
	return css, nil
}

func parsePages(c catalog, css []byte, brand brandSetup) (*pages, error) {
	sum := sha256.Sum256(css)
	p := &pages{
		byName: make(map[string]*template.Template, len(pageNames)),
		style:  template.CSS(css),
		// No script at all; the one inline style block by its hash; the QR
		// code as a data: URI; forms only to this origin; never framed.
		csp: "default-src 'none'; img-src data:; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	p.cspScript = p.csp + "; script-src 'self'"
	org := brand.org
	if org == "" {
		org = c.get("product")
	}
	logo := template.URL(brand.logo)
	funcs := template.FuncMap{
		"t":     c.get,
		"tn":    c.plural,
		"brand": func() string { return org },
		"logo":  func() template.URL { return logo },
	}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	for _, name := range pageNames {
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is everything a page may show. Text fields are already translated.
type view struct {
	Title  string
	Error  string
	Notice string
	Style  template.CSS

	// Forms.
	Action       string
	State        string
	CSRF         string
	Method       string
	Remember     bool // offer the remember-browser box
	RememberDays int

	// Enrolment.
	QR      template.URL // data:image/png;base64,…
	QRSize  int          // CSS pixels
	OTPAuth template.URL // otpauth://totp/…
	Secret  string       // grouped for reading
	Account string

	// PK is the passkey form (a registration or an assertion); ShowCode
	// offers the authenticator app's code form next to it.
	PK       *passkeyView
	ShowCode bool
	// Script is the URL of the step's script, on the pages that run a
	// WebAuthn ceremony or offer copy and print buttons; set by render.
	Script    string
	ScriptSRI string
	// Back is where "back to the application" goes; default "/".
	Back string

	// Verification: a link to the other factor's form.
	AltLink     string
	AltLinkText string

	// Recovery codes, shown once, and where to continue. Regenerated: a
	// new set from the factors page, not the one of an enrolment.
	Codes       []string
	CodesFile   template.URL // data:text/plain, the codes for download
	Continue    string
	Regenerated bool

	// Messages.
	Body     string
	Link     string
	LinkText string

	// Factors page.
	Lines     []string
	CanReset  bool
	ResetNote string
	// CanRegenerate offers new recovery codes, with CSRFCodes as the
	// form's token.
	CanRegenerate bool
	CSRFCodes     string
	// TOTP is the authenticator app, when set up; Passkeys and Devices
	// the user's credentials and remembered browsers.
	TOTP     *factorItem
	Passkeys []factorItem
	Devices  []factorItem

	// Confirmation of a removal: Method is the action, Item its id.
	Item   string
	Submit string
}

// render writes page with v and status. The page is built in memory
// first, so that a template error becomes a clean 500.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	pg := h.lang(r).pages
	v.Style = pg.style
	if len(v.Codes) > 0 {
		v.CodesFile = template.URL("data:text/plain;charset=utf-8," + url.PathEscape(strings.Join(v.Codes, "\n")+"\n"))
	}
	if v.PK != nil || len(v.Codes) > 0 {
		v.Script, v.ScriptSRI = h.prefix+"stepup.js", scriptSRI
		w.Header().Set("Content-Security-Policy", pg.cspScript)
	}
	var buf bytes.Buffer
	if err := pg.byName[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: render page",
			slog.String("page", page), slog.String("error", err.Error()), requestID(r))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(h.tr(r).get("internal_title") + "\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message renders a page with a title, a paragraph and an optional link.
func (h *Handler) message(w http.ResponseWriter, r *http.Request, status int, titleID, bodyID, link, linkTextID string) {
	v := &view{Title: h.tr(r).get(titleID), Body: h.tr(r).get(bodyID)}
	if link != "" {
		v.Link, v.LinkText = link, h.tr(r).get(linkTextID)
	}
	h.render(w, r, status, "message", v)
}

// serveScript answers GET {prefix}stepup.js.
func (h *Handler) serveScript(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.methodNotAllowed(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(stepScript)
	}
}

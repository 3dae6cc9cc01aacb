package mfa

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
)

//go:embed templates/*.html templates/style.css
var templateFS embed.FS

// pageNames are the page templates; each is rendered inside layout.html.
var pageNames = []string{"enrol", "verify", "recovery", "codes", "message", "factors", "duo"}

// pages are the parsed templates of one handler (their text comes from
// its catalog) and the Content-Security-Policy that fits them.
type pages struct {
	byName map[string]*template.Template
	style  template.CSS
	csp    string
}

func parsePages(c catalog) (*pages, error) {
	css, err := templateFS.ReadFile("templates/style.css")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	sum := sha256.Sum256(css)
	p := &pages{
		byName: make(map[string]*template.Template, len(pageNames)),
		style:  template.CSS(css),
		// No script at all; the one inline style block by its hash; the QR
		// code as a data: URI; forms only to this origin; never framed.
		csp: "default-src 'none'; img-src data:; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	funcs := template.FuncMap{
		"t":  c.get,
		"tn": c.plural,
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

	// Verification: a link to the other factor's form.
	AltLink     string
	AltLinkText string

	// Recovery codes, shown once, and where to continue. Regenerated: a
	// new set from the factors page, not the one of an enrolment.
	Codes       []string
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
}

// render writes page with v and status. The page is built in memory
// first, so that a template error becomes a clean 500.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	v.Style = h.pages.style
	var buf bytes.Buffer
	if err := h.pages.byName[page].ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: render page",
			slog.String("page", page), slog.String("error", err.Error()), requestID(r))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(h.msgs.get("internal_title") + "\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message renders a page with a title, a paragraph and an optional link.
func (h *Handler) message(w http.ResponseWriter, r *http.Request, status int, titleID, bodyID, link, linkTextID string) {
	v := &view{Title: h.msgs.get(titleID), Body: h.msgs.get(bodyID)}
	if link != "" {
		v.Link, v.LinkText = link, h.msgs.get(linkTextID)
	}
	h.render(w, r, status, "message", v)
}

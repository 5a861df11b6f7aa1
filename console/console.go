// Package console owns the operator console: the HTML pages the daemon
// serves under /ui/ on its admin listener — overview, endpoints,
// deliveries, event, dead letters — with their sign-in (the admin token on
// a login page, or a one-time login link; sessions in memory), the CSRF
// token every form carries, the security headers of every answer (a strict
// Content-Security-Policy among them), and the in-memory samples behind the
// overview's charts.
//
// Pages are rendered on the server with html/template; templates and the
// stylesheet are embedded in the binary, so there is nothing to build but
// Go. Every page works without JavaScript (the charts are SVG drawn on the
// server), and no page shows a secret: the daemon hands over names, never
// header values or signing keys, and every page is scrubbed of the
// configuration's secrets (Options.Secrets) before it leaves.
//
// The console knows the daemon only through Backend, which it declares and
// the daemon implements.
package console

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Options configure a Console.
type Options struct {
	// Token is the admin token that signs in (required).
	Token string
	// Secrets lists the secrets no page may show (the configuration's and
	// the token): every page is scrubbed of them (scrub.go). It is called
	// for each page, so it may change (a reload).
	Secrets func() []string
	// Refused is told of each request the console refuses (a wrong token,
	// a missing session on a POST, a bad CSRF token), for the daemon's
	// rate-limited log line; nil: not told.
	Refused func(r *http.Request, code int, why string)
	Logger  *slog.Logger
	// SampleEvery is how often Run samples the counters behind the charts
	// (default 5s); the charts show the last ChartSpan.
	SampleEvery time.Duration
}

// Console serves the pages. Its methods are safe for concurrent use.
type Console struct {
	b     Backend
	opts  Options
	scrub scrubber
	log   *slog.Logger
	auth  *auth
	pages map[string]*template.Template
	samp  *sampler
	mux   *http.ServeMux
}

// New builds the console on b.
func New(b Backend, opts Options) (*Console, error) {
	if opts.Token == "" {
		return nil, errors.New("console: no admin token")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 5 * time.Second
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{b: b, opts: opts, log: opts.Logger, auth: newAuth(opts.Token), pages: pages,
		samp: newSampler(opts.SampleEvery), scrub: scrubber{secrets: opts.Secrets}}
	c.mux = c.routes()
	return c, nil
}

// Run samples the counters behind the charts until ctx ends.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.SampleEvery)
	defer t.Stop()
	for {
		c.samp.add(time.Now(), c.b.Counters())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// LoginPath returns the path of a new one-time login link: it signs in
// the first browser that opens it within LoginCodeLifetime.
func (c *Console) LoginPath() string {
	return "/ui/login/" + c.auth.newCode(time.Now())
}

// Handler serves everything under /ui/.
func (c *Console) Handler() http.Handler { return c.mux }

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(assetFS, "assets")
	static := http.StripPrefix("/ui/assets/", http.FileServerFS(assets))
	mux.Handle("GET /ui/assets/", secured(static, false))
	mux.Handle("GET /ui/{$}", c.page(c.overview))
	mux.Handle("GET /ui/login", secured(http.HandlerFunc(c.loginForm), true))
	mux.Handle("POST /ui/login", secured(http.HandlerFunc(c.login), true))
	mux.Handle("GET /ui/login/{code}", secured(http.HandlerFunc(c.loginLink), true))
	mux.Handle("POST /ui/logout", c.action(c.logout))
	mux.Handle("GET /ui/endpoints", c.page(c.endpoints))
	mux.Handle("POST /ui/endpoints/{op}", c.action(c.endpointAction))
	mux.Handle("GET /ui/dead", c.page(c.deadLetters))
	mux.Handle("GET /ui/dead/confirm", c.page(c.deadConfirm))
	mux.Handle("POST /ui/dead/{op}", c.action(c.deadAction))
	mux.Handle("GET /ui/deliveries", c.page(c.deliveries))
	mux.Handle("GET /ui/events/{id}", c.page(c.event))
	mux.Handle("POST /ui/events/{id}/resend", c.action(c.resend))
	mux.Handle("/ui/", secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	}), true))
	return mux
}

// csp is the Content-Security-Policy of every answer: nothing but the
// console's own stylesheet and images; no script runs, no form posts
// elsewhere, no page frames the console.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// secured sets the security headers; private answers (pages) are not
// cached. The referrer policy is same-origin, not no-referrer: under
// no-referrer a browser sends "Origin: null" with the console's own
// forms, which the Origin check must refuse.
func secured(h http.Handler, private bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if private {
			hd.Set("Cache-Control", "no-store")
		}
		h.ServeHTTP(w, r)
	})
}

// view is what a page handler returns: the template and its data, or an
// error.
type view struct {
	name  string
	title string
	data  any
	code  int // 0: 200
}

// pageData is what every template gets.
type pageData struct {
	Title string
	Nav   string // the template's name, to mark the current page
	CSRF  string
	Flash string
	Data  any
}

// page serves a GET page to a signed-in browser; others are sent to the
// login page.
func (c *Console) page(fn func(r *http.Request) (view, error)) http.Handler {
	return secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.auth.session(r, time.Now())
		if s == nil {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(safeNext(r.URL.RequestURI())), http.StatusSeeOther)
			return
		}
		v, err := fn(r)
		if err != nil {
			c.fail(w, r, s, err)
			return
		}
		c.render(w, s, v)
	}), true)
}

// action serves a POST from a signed-in browser's own form: a session,
// the session's CSRF token and no cross-site origin, else 403.
func (c *Console) action(fn func(w http.ResponseWriter, r *http.Request, s *session) error) http.Handler {
	return secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSite(r) {
			c.refuse(w, r, http.StatusForbidden, "a form posted from another site (Sec-Fetch-Site: "+r.Header.Get("Sec-Fetch-Site")+")")
			return
		}
		s := c.auth.session(r, time.Now())
		if s == nil {
			c.refuse(w, r, http.StatusForbidden, "not signed in")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil || !sameToken(r.PostForm.Get("csrf"), s.csrf) {
			c.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF token")
			return
		}
		if err := fn(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	}), true)
}

// refuse answers a refused request in plain text and tells the daemon.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	if c.opts.Refused != nil {
		c.opts.Refused(r, code, "console: "+why)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), why)
}

// badInput is a request the user can fix (a bad filter value).
type badInput struct{ msg string }

func (e *badInput) Error() string { return e.msg }

func badInputf(format string, args ...any) error { return &badInput{fmt.Sprintf(format, args...)} }

// badNotFound is a 404 with a message.
func badNotFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), outbox.ErrNotFound)
}

// fail shows an error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := http.StatusInternalServerError
	var bi *badInput
	switch {
	case errors.As(err, &bi):
		code = http.StatusBadRequest
	case errors.Is(err, outbox.ErrNotFound):
		code = http.StatusNotFound
	default:
		c.log.Warn("console: page failed", "path", r.URL.Path, "err", c.scrub.scrub(err.Error()))
	}
	c.render(w, s, view{name: "error", title: http.StatusText(code), code: code, data: err.Error()})
}

// render executes a page into a buffer (an error never leaves half a
// page), scrubs it of secrets and writes it.
func (c *Console) render(w http.ResponseWriter, s *session, v view) {
	t := c.pages[v.name]
	d := pageData{Title: v.title, Nav: v.name, Data: v.data}
	if s != nil {
		d.CSRF = s.csrf
		c.auth.mu.Lock()
		d.Flash, s.flash = s.flash, ""
		c.auth.mu.Unlock()
	}
	var buf bytes.Buffer
	if t == nil {
		http.Error(w, "console: no template "+v.name, http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		c.log.Error("console: rendering a page", "page", v.name, "err", c.scrub.scrub(err.Error()))
		http.Error(w, "console: the page could not be rendered (see the daemon's log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if v.code != 0 {
		w.WriteHeader(v.code)
	}
	_, _ = w.Write([]byte(c.scrub.scrub(buf.String())))
}

// flash leaves a message for the session's next page.
func (c *Console) flash(s *session, format string, args ...any) {
	c.auth.mu.Lock()
	s.flash = fmt.Sprintf(format, args...)
	c.auth.mu.Unlock()
}

// safeNext keeps a redirect target inside the console.
func safeNext(p string) string {
	if !strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "/ui//") || strings.ContainsAny(p, "\\\r\n") {
		return "/ui/"
	}
	return p
}

package console

import (
	"net/http"
	"time"
)

// loginView is the login page's data.
type loginView struct {
	CSRF  string // the login form's own CSRF token (no session yet)
	Next  string
	Error string
}

// loginForm shows the login page (or goes on, when already signed in).
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if c.auth.session(r, time.Now()) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, next, "", 0)
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, next, msg string, code int) {
	pre := ""
	if ck, err := r.Cookie(loginCookie); err == nil && len(ck.Value) >= 40 {
		pre = ck.Value
	} else {
		pre = randomString()
		setCookie(w, r, loginCookie, pre, int(time.Hour/time.Second))
	}
	c.render(w, nil, view{name: "login", title: "Sign in", code: code,
		data: loginView{CSRF: c.auth.loginCSRF(pre), Next: next, Error: msg}})
}

// login checks the token from the login form and opens a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		c.refuse(w, r, http.StatusForbidden, "a login form posted from another site")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.refuse(w, r, http.StatusBadRequest, "unreadable form")
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	ck, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostForm.Get("csrf"), c.auth.loginCSRF(ck.Value)) {
		// A form from another page, or one whose cookie expired: a new
		// form, not an error page.
		c.showLogin(w, r, next, "The form expired; sign in again.", http.StatusForbidden)
		return
	}
	if !c.auth.tokenOK(r.PostForm.Get("token")) {
		if c.opts.Refused != nil {
			c.opts.Refused(r, http.StatusUnauthorized, "console: wrong admin token on the login page")
		}
		c.showLogin(w, r, next, "Wrong token. Use admin.token, or the token file the daemon wrote beside its store "+
			"(<store.path>.admin-token); or open a login link from `deskhook ui`.", http.StatusUnauthorized)
		return
	}
	c.signIn(w, r)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	setCookie(w, r, sessionCookie, c.auth.open(time.Now()), 0)
	setCookie(w, r, loginCookie, "", -1)
}

// loginLink signs in with a one-time code. It answers with a page that
// moves on to the overview by itself (a meta refresh, no script): the
// browser then asks from the console's own page, so the SameSite=Strict
// cookie goes along even when the link was opened from another site.
func (c *Console) loginLink(w http.ResponseWriter, r *http.Request) {
	if !c.auth.useCode(r.PathValue("code"), time.Now()) {
		if c.opts.Refused != nil {
			c.opts.Refused(r, http.StatusUnauthorized, "console: login link used up, expired or unknown")
		}
		c.showLogin(w, r, "/ui/", "This login link was used already or has expired (links last "+
			LoginCodeLifetime.String()+" and sign in once): run `deskhook ui` for a new one, or sign in with the token.",
			http.StatusUnauthorized)
		return
	}
	c.signIn(w, r)
	c.render(w, nil, view{name: "signedin", title: "Signed in"})
}

// logout closes the session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) error {
	c.auth.close(r)
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	return nil
}

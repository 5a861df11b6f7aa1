package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Signing in. The console is protected like the operator API, by the admin
// token, given either on the login page or through a one-time login link
// (`deskhook ui`, the demo). Signing in opens a session: a random value in
// an HttpOnly, SameSite=Strict cookie (Secure over TLS) that the console
// keeps only hashed; the token itself is never put in a cookie. Each
// session has its own CSRF token, which every form carries and every POST
// must send back; POSTs must also come from the console's own origin
// (Sec-Fetch-Site), and the daemon refuses a foreign Host or Origin before
// the console sees the request.

const (
	sessionCookie = "deskhook_console"
	// loginCookie binds the login form's CSRF token to the browser that
	// loaded the form.
	loginCookie = "deskhook_login"
	// SessionLifetime is how long a session lasts after signing in.
	SessionLifetime = 12 * time.Hour
	// LoginCodeLifetime is how long a one-time login link stays valid.
	LoginCodeLifetime = 10 * time.Minute
	maxSessions       = 1000
	maxLoginCodes     = 100
)

type session struct {
	csrf    string
	expires time.Time
	flash   string // a message for the next page (guarded by auth.mu)
}

// auth holds the sessions and the login codes, in memory: a restart signs
// everyone out.
type auth struct {
	tokenHash [32]byte
	formKey   []byte // HMAC key for the login form's CSRF token, random per process

	mu       sync.Mutex
	sessions map[[32]byte]*session // by the cookie value's hash
	codes    map[[32]byte]time.Time
}

func newAuth(token string) *auth {
	return &auth{tokenHash: sha256.Sum256([]byte(token)), formKey: randomBytes(32),
		sessions: map[[32]byte]*session{}, codes: map[[32]byte]time.Time{}}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return b
}

func randomString() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

// tokenOK compares a token with the admin token in constant time.
func (a *auth) tokenOK(tok string) bool {
	got := sha256.Sum256([]byte(tok))
	return tok != "" && subtle.ConstantTimeCompare(got[:], a.tokenHash[:]) == 1
}

// open starts a session and returns the cookie's value.
func (a *auth) open(now time.Time) string {
	v := randomString()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	if len(a.sessions) >= maxSessions {
		// Full of live sessions (someone signing in in a loop): the one
		// closest to its end goes.
		var oldest [32]byte
		var at time.Time
		for k, s := range a.sessions {
			if at.IsZero() || s.expires.Before(at) {
				oldest, at = k, s.expires
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[sha256.Sum256([]byte(v))] = &session{csrf: randomString(), expires: now.Add(SessionLifetime)}
	return v
}

func (a *auth) expire(now time.Time) {
	for k, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
	for k, exp := range a.codes {
		if !now.Before(exp) {
			delete(a.codes, k)
		}
	}
}

// session returns the request's live session, or nil.
func (a *auth) session(r *http.Request, now time.Time) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := sha256.Sum256([]byte(c.Value))
	s := a.sessions[k]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(a.sessions, k)
		return nil
	}
	return s
}

func (a *auth) close(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, sha256.Sum256([]byte(c.Value)))
		a.mu.Unlock()
	}
}

// newCode makes a one-time login code.
func (a *auth) newCode(now time.Time) string {
	code := randomString()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	if len(a.codes) >= maxLoginCodes {
		for k := range a.codes { // any one: they are all short-lived
			delete(a.codes, k)
			break
		}
	}
	a.codes[sha256.Sum256([]byte(code))] = now.Add(LoginCodeLifetime)
	return code
}

// useCode consumes a login code: true the first time, within its lifetime.
func (a *auth) useCode(code string, now time.Time) bool {
	k := sha256.Sum256([]byte(code))
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.codes[k]
	delete(a.codes, k)
	return ok && now.Before(exp)
}

// loginCSRF is the login form's CSRF token for the browser whose login
// cookie holds pre.
func (a *auth) loginCSRF(pre string) string {
	m := hmac.New(sha256.New, a.formKey)
	m.Write([]byte("login\x00" + pre))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// setCookie sets one of the console's cookies: HttpOnly, SameSite=Strict,
// for /ui/ only, Secure when the request came over TLS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// crossSite reports whether a browser says the request comes from another
// origin (Sec-Fetch-Site; a client that sends none, like curl, is judged
// by the daemon's Origin check and the CSRF token alone).
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return true
}

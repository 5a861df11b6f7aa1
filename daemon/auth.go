package daemon

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The operator API (/api/...) reads dead letters (ticket payloads: personal
// data) and changes delivery state, so every request under /api/ must:
//   - name this listener in its Host header (the listen address, localhost,
//     a loopback address or one of admin.hosts): a web page that rebinds its
//     own DNS name to 127.0.0.1 still sends its own name, and gets 403;
//   - carry no Origin, or the listener's own (a browser sends the page's
//     origin with every cross-site request: 403);
//   - carry `Authorization: Bearer <token>`, compared in constant time
//     (401 otherwise).
// /healthz, /readyz and /metrics stay open: they are read-only and may be
// exposed (admin.probe_listen serves only them).

// minTokenLen is the shortest admin.token accepted: a token is a password
// that nobody types, so there is no reason for a short one.
const minTokenLen = 16

// TokenPath is where the daemon keeps the admin token it generated (used
// when admin.token is empty): beside the store, readable by its owner only.
func TokenPath(storePath string) string { return storePath + ".admin-token" }

// loadOrCreateToken returns the token in the file at p, creating the file
// with a new random token when there is none.
func loadOrCreateToken(p string, log *slog.Logger) (string, error) {
	tok, err := readTokenFile(p)
	if err == nil {
		if fi, serr := os.Stat(p); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the admin token file is readable by other users: chmod 600 it", "file", p, "mode", fi.Mode().Perm().String())
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok = base64.RawURLEncoding.EncodeToString(b)
	// Written whole to a temporary file first, then linked into place: a
	// crash leaves no half-written token, and of two daemons started at once
	// (the second then fails on the store's lock) one token wins.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".admin-token-*") // mode 0600
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(tok + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), p)
	}
	if errors.Is(err, fs.ErrExist) {
		return readTokenFile(p)
	}
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	log.Info("generated the admin API token (admin.token is empty)", "file", p)
	return tok, nil
}

func readTokenFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen {
		return "", fmt.Errorf("admin token file %s holds no usable token (%d characters); delete it to have a new one generated", p, len(tok))
	}
	return tok, nil
}

// ClientToken is the token the CLI sends to the running daemon:
// admin.token, else the file the daemon generated beside the store.
func ClientToken(cfg *Config) (string, error) {
	if v, unset := cfg.Unresolved["admin.token"]; unset {
		return "", fmt.Errorf("admin.token refers to %s, which is not set in this environment: the CLI needs the token to ask the running daemon", v)
	}
	if cfg.Admin.Token != "" {
		return cfg.Admin.Token, nil
	}
	p := TokenPath(cfg.Store.Path)
	tok, err := readTokenFile(p)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "", fmt.Errorf("cannot read the admin token %s (permission denied): run this as the daemon's user (e.g. sudo -u deskhook), or set admin.token", p)
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("the admin token file %s does not exist: the daemon writes it at its start when admin.token is empty; is store.path the daemon's?", p)
	}
	return tok, err
}

// apiGuard checks every request under /api/ (see above) before next
// serves it, whichever route next has for it: routes added later are
// covered without a change here.
func (d *Daemon) apiGuard(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(d.token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isAPIPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if why := d.foreignRequest(r); why != "" {
			d.refused(r, http.StatusForbidden, why)
			writeJSON(w, nil, &httpError{code: http.StatusForbidden, err: errors.New(why)})
			return
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			d.refused(r, http.StatusUnauthorized, "missing or wrong token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="deskhook"`)
			writeJSON(w, nil, &httpError{code: http.StatusUnauthorized, err: errors.New(
				"missing or wrong admin token: send Authorization: Bearer <admin.token, or the token file beside the store>")})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isAPIPath reports whether p is /api or below it, as the mux would route
// it once cleaned.
func isAPIPath(p string) bool {
	p = path.Clean("/" + p)
	return p == "/api" || strings.HasPrefix(p, "/api/")
}

// apiHosts are the names the operator API answers to, besides loopback
// addresses.
func apiHosts(cfg AdminConfig, bound net.Addr) map[string]bool {
	hosts := map[string]bool{"localhost": true}
	for _, hp := range []string{cfg.Listen, bound.String()} {
		if h, _, err := net.SplitHostPort(hp); err == nil && h != "" {
			hosts[normHost(h)] = true
		}
	}
	for _, h := range cfg.Hosts {
		hosts[normHost(h)] = true
	}
	return hosts
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// allowedHost reports whether hostport (a Host header, or an Origin's
// host) names this listener.
func (d *Daemon) allowedHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = normHost(h)
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return true
	}
	return d.hosts[h]
}

// foreignRequest says why r does not come from the listener's own origin
// ("" when it does).
func (d *Daemon) foreignRequest(r *http.Request) string {
	if !d.allowedHost(r.Host) {
		return fmt.Sprintf("Host %q is not this admin listener's (add the name to admin.hosts to allow it)", r.Host)
	}
	origin, sent := r.Header["Origin"]
	if !sent {
		return ""
	}
	bad := fmt.Sprintf("Origin %q is not this admin listener's own", strings.Join(origin, ", "))
	if len(origin) != 1 {
		return bad
	}
	u, err := url.Parse(origin[0])
	if err != nil || u.Scheme != "http" || u.Path != "" && u.Path != "/" || !d.allowedHost(u.Host) {
		return bad
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	if _, own, err := net.SplitHostPort(d.adminLn.Addr().String()); err != nil || port != own {
		return bad
	}
	return ""
}

// refusals rate-limits the log line about refused API requests: an
// operator hears of them (a misconfigured client, or someone probing) but
// a flood does not flood the log.
type refusals struct {
	mu    sync.Mutex
	last  time.Time
	count int
}

const refusalLogEvery = time.Minute

func (d *Daemon) refused(r *http.Request, code int, why string) {
	d.refusals.mu.Lock()
	d.refusals.count++
	now := time.Now()
	if now.Sub(d.refusals.last) < refusalLogEvery {
		d.refusals.mu.Unlock()
		return
	}
	n := d.refusals.count
	d.refusals.last, d.refusals.count = now, 0
	d.refusals.mu.Unlock()
	d.log.Warn("admin API request refused", "status", strconv.Itoa(code), "reason", why,
		"method", r.Method, "path", loggedPath(r.URL.Path), "remote", r.RemoteAddr, "refused_since_last_line", n)
}

// loggedPath is a refused request's path as the log may show it: a
// one-time login link's code, still unused (and so still valid) when its
// request is refused, stays out of the log.
func loggedPath(p string) string {
	if code, ok := strings.CutPrefix(p, "/ui/login/"); ok && code != "" {
		return "/ui/login/[code]"
	}
	return p
}

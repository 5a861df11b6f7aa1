package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestTokenFile(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	p := TokenPath(filepath.Join(t.TempDir(), "deskhook.db"))
	// Several daemons racing for the first start: one token wins for all.
	toks := make([]string, 8)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if toks[i], err = loadOrCreateToken(p, log); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] || len(tok) < 40 {
			t.Fatalf("tokens %q: want one token of 32 random bytes for all", toks)
		}
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v; want mode 0600", fi, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".admin-token-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	again, err := loadOrCreateToken(p, log)
	if err != nil || again != toks[0] {
		t.Errorf("second start: %q %v; want the same token", again, err)
	}
	// A damaged file is an error naming it, never silently replaced (the
	// CLI would go on sending the old one).
	if err := os.WriteFile(p, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateToken(p, log); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("damaged token file: %v; want an error naming it", err)
	}
}

func TestClientToken(t *testing.T) {
	dir := t.TempDir()
	cfg := &Config{Store: StoreConfig{Path: filepath.Join(dir, "deskhook.db")}}
	if _, err := ClientToken(cfg); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("no token file: %v", err)
	}
	if err := os.WriteFile(TokenPath(cfg.Store.Path), []byte("generated-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := ClientToken(cfg); tok != "generated-token-0123456789" || err != nil {
		t.Errorf("from the file: %q %v", tok, err)
	}
	cfg.Admin.Token = "configured-token-0123456789"
	if tok, _ := ClientToken(cfg); tok != cfg.Admin.Token {
		t.Errorf("admin.token set: got %q", tok)
	}
	cfg.Unresolved = map[string]string{"admin.token": "${OPS_TOKEN}"}
	if _, err := ClientToken(cfg); err == nil || !strings.Contains(err.Error(), "${OPS_TOKEN}") {
		t.Errorf("admin.token unresolved: %v; want an error naming the variable", err)
	}
}

// TestLoadOpsConfig: unset variables outside store and admin are no error
// for the operator commands, and are listed; in store or admin they are.
func TestLoadOpsConfig(t *testing.T) {
	os.Unsetenv("DH_OPS_UNSET_PW")
	os.Unsetenv("DH_OPS_UNSET_SECRET")
	os.Unsetenv("DH_OPS_UNSET_TOKEN")
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write(`
source: {dsn: "postgres://deskhook:${DH_OPS_UNSET_PW}@db/helpdesk"}
endpoints:
  - url: https://crm.example.com/hooks
    secret: ${DH_OPS_UNSET_SECRET}
    max_in_flight: ${DH_OPS_UNSET_SECRET}
admin: {token: "${DH_OPS_UNSET_TOKEN}"}
`)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), "DH_OPS_UNSET_PW") {
		t.Errorf("LoadConfig: %v; want the unset variables reported", err)
	}
	c, err := LoadOpsConfig(p)
	if err != nil {
		t.Fatalf("LoadOpsConfig: %v", err)
	}
	want := map[string]string{"source.dsn": "${DH_OPS_UNSET_PW}", "endpoints[0].secret": "${DH_OPS_UNSET_SECRET}",
		"endpoints[0].max_in_flight": "${DH_OPS_UNSET_SECRET}", "admin.token": "${DH_OPS_UNSET_TOKEN}"}
	for k, v := range want {
		if c.Unresolved[k] != v {
			t.Errorf("Unresolved[%s] = %q, want %q (all: %v)", k, c.Unresolved[k], v, c.Unresolved)
		}
	}
	for _, s := range c.Secrets() {
		if strings.Contains(s, "${") {
			t.Errorf("Secrets() lists the unexpanded %q: messages naming the variable would be scrubbed", s)
		}
	}
	if p, v, ok := c.unresolvedUnder("source"); !ok || p != "source.dsn" || v != "${DH_OPS_UNSET_PW}" {
		t.Errorf("unresolvedUnder(source) = %q %q %v", p, v, ok)
	}
	// Other errors are still errors; store and admin must resolve.
	p = write(`
source: {dsn: "postgres://deskhook:${DH_OPS_UNSET_PW}@db/helpdesk"}
store: {path: "/var/lib/${DH_OPS_UNSET_PW}.db"}
endpoints: [{url: ftp://x}]
admin: {listen: "127.0.0.1:${DH_OPS_UNSET_PW}"}
`)
	_, err = LoadOpsConfig(p)
	for _, w := range []string{"store.path: environment variable DH_OPS_UNSET_PW is not set", "admin.listen: environment variable",
		`endpoints[0].url: must be http or https`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("LoadOpsConfig: %v; want %q", err, w)
		}
	}
	if err != nil && strings.Contains(err.Error(), "source.dsn") {
		t.Errorf("LoadOpsConfig reports source.dsn: %v", err)
	}
}

func TestIsAPIPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/api": true, "/api/": true, "/api/status": true, "/api/dlq/x/y": true, "//api/status": true,
		"/healthz/../api/status": true, "/./api/x": true, "api/status": true,
		"/healthz": false, "/metrics": false, "/apis": false, "/readyz": false, "/": false,
	} {
		if got := isAPIPath(p); got != want {
			t.Errorf("isAPIPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestAPIGuard: the guard in front of the admin mux, in process, with a
// route registered after the guard was built (as a later feature would).
func TestAPIGuard(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Hosts = []string{"Ops.Example.", "::2"}
	d, err := New(context.Background(), cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	mux := http.NewServeMux()
	h := d.apiGuard(mux)
	mux.HandleFunc("POST /api/later", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	port := d.AdminAddr()[strings.LastIndex(d.AdminAddr(), ":")+1:]
	tok := d.AdminToken()
	cases := []struct {
		name, method, path, host, origin, auth string
		want                                   int
	}{
		{"ok", "POST", "/api/later", d.AdminAddr(), "", "Bearer " + tok, http.StatusTeapot},
		{"scheme case", "POST", "/api/later", d.AdminAddr(), "", "bearer " + tok, http.StatusTeapot},
		{"localhost", "POST", "/api/later", "localhost:" + port, "", "Bearer " + tok, http.StatusTeapot},
		{"ipv6 loopback", "POST", "/api/later", "[::1]:" + port, "", "Bearer " + tok, http.StatusTeapot},
		{"configured name", "POST", "/api/later", "ops.example:" + port, "", "Bearer " + tok, http.StatusTeapot},
		{"configured ip", "POST", "/api/later", "[::2]:" + port, "", "Bearer " + tok, http.StatusTeapot},
		{"own origin", "POST", "/api/later", d.AdminAddr(), "http://" + d.AdminAddr(), "Bearer " + tok, http.StatusTeapot},
		{"no token", "POST", "/api/later", d.AdminAddr(), "", "", http.StatusUnauthorized},
		{"prefix of token", "POST", "/api/later", d.AdminAddr(), "", "Bearer " + tok[:20], http.StatusUnauthorized},
		{"unknown route", "GET", "/api/nope", d.AdminAddr(), "", "", http.StatusUnauthorized},
		{"foreign host", "POST", "/api/later", "evil.example:" + port, "", "Bearer " + tok, http.StatusForbidden},
		{"foreign host, no port", "POST", "/api/later", "evil.example", "", "Bearer " + tok, http.StatusForbidden},
		{"rebound name", "POST", "/api/later", "127.0.0.1.evil.example:" + port, "", "Bearer " + tok, http.StatusForbidden},
		{"foreign origin", "POST", "/api/later", d.AdminAddr(), "http://evil.example", "Bearer " + tok, http.StatusForbidden},
		{"origin other port", "POST", "/api/later", d.AdminAddr(), "http://127.0.0.1:1", "Bearer " + tok, http.StatusForbidden},
		{"origin https", "POST", "/api/later", d.AdminAddr(), "https://" + d.AdminAddr(), "Bearer " + tok, http.StatusForbidden},
		{"origin null", "POST", "/api/later", d.AdminAddr(), "null", "Bearer " + tok, http.StatusForbidden},
		{"probe, foreign", "GET", "/healthz", "evil.example", "http://evil.example", "", http.StatusOK},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://"+d.AdminAddr()+c.path, nil)
		req.Host = c.host
		if c.origin != "" {
			req.Header.Set("Origin", c.origin)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d %s; want %d", c.name, rec.Code, rec.Body, c.want)
		}
		if strings.Contains(rec.Body.String(), tok) {
			t.Errorf("%s: the answer quotes the token", c.name)
		}
	}
}

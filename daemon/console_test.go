package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// TestConsoleMount: the console is on the admin listener behind the same
// Host and Origin checks as the operator API, never on the probe
// listener; the operator API makes its one-time login links.
func TestConsoleMount(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.ProbeListen = "127.0.0.1:0"
	d, err := New(context.Background(), cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	admin, probe := d.adminHandler(), d.probeHandler()
	port := d.AdminAddr()[strings.LastIndex(d.AdminAddr(), ":")+1:]
	serve := func(h http.Handler, method, path, host, origin, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://"+d.AdminAddr()+path, nil)
		req.Host = host
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	cases := []struct {
		name, method, path, host, origin string
		want                             int
	}{
		{"login page", "GET", "/ui/login", d.AdminAddr(), "", http.StatusOK},
		{"localhost", "GET", "/ui/login", "localhost:" + port, "", http.StatusOK},
		{"/ui", "GET", "/ui", d.AdminAddr(), "", http.StatusMovedPermanently},
		{"no session", "GET", "/ui/endpoints", d.AdminAddr(), "", http.StatusSeeOther},
		{"foreign host", "GET", "/ui/login", "rebound.example:" + port, "", http.StatusForbidden},
		{"foreign origin", "POST", "/ui/login", d.AdminAddr(), "http://127.0.0.1:1", http.StatusForbidden},
		{"origin null", "POST", "/ui/endpoints/disable", d.AdminAddr(), "null", http.StatusForbidden},
		{"no session, own origin", "POST", "/ui/endpoints/disable", d.AdminAddr(), "http://" + d.AdminAddr(), http.StatusForbidden},
	}
	for _, c := range cases {
		if rec := serve(admin, c.method, c.path, c.host, c.origin, ""); rec.Code != c.want {
			t.Errorf("%s: %d %s; want %d", c.name, rec.Code, rec.Body, c.want)
		}
	}
	if rec := serve(probe, "GET", "/ui/login", d.ProbeAddr(), "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("the probe listener answers /ui/login with %d", rec.Code)
	}

	// Login links: only with the token.
	if rec := serve(admin, "POST", loginLinkPath, d.AdminAddr(), "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("a login link without the token: %d", rec.Code)
	}
	rec := serve(admin, "POST", loginLinkPath, d.AdminAddr(), "", "Bearer "+d.AdminToken())
	var l loginLink
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || !strings.HasPrefix(l.Path, "/ui/login/") {
		t.Fatalf("login link: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(admin, "GET", l.Path, d.AdminAddr(), "", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Set-Cookie"), "deskhook_console=") {
		t.Errorf("using the link: %d %v", rec.Code, rec.Header())
	}
	if rec := serve(admin, "GET", l.Path, d.AdminAddr(), "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("using the link twice: %d", rec.Code)
	}
	if u := d.ConsoleLoginURL(); !strings.HasPrefix(u, "http://"+d.AdminAddr()+"/ui/login/") {
		t.Errorf("ConsoleLoginURL: %q", u)
	}
}

// TestConsoleSecrets: the console is told every secret of the
// configuration and the token, and keeps those of a configuration it
// ran with before a reload.
func TestConsoleSecrets(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Sender.Endpoints[0].Headers = map[string]string{"Authorization": "Bearer old-header-value"}
	d, err := New(context.Background(), cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	b := &consoleBackend{d: d}
	has := func(want string) {
		t.Helper()
		for _, s := range b.Secrets() {
			if s == want {
				return
			}
		}
		t.Errorf("the console is not told of %q", want)
	}
	has(d.AdminToken())
	has("Bearer old-header-value")
	d.cfgMu.Lock()
	eps := append(d.cfg.Sender.Endpoints[:0:0], d.cfg.Sender.Endpoints...)
	eps[0].Headers = map[string]string{"Authorization": "Bearer new-header-value"}
	d.cfg.Sender.Endpoints = eps
	d.cfgMu.Unlock()
	has("Bearer new-header-value")
	has("Bearer old-header-value")
}

// TestDeadFilterQueryRoundTrip: what the CLI sends the daemon selects the
// same dead letters as the CLI's own reading of its flags, fractions of a
// second included.
func TestDeadFilterQueryRoundTrip(t *testing.T) {
	f := outbox.DeadFilter{Endpoint: "crm", ID: "evt_1", TicketID: 4711, Limit: 3,
		From: time.Date(2025, 6, 1, 10, 0, 0, 900_000_000, time.UTC), To: time.Date(2025, 6, 1, 10, 0, 1, 250_000, time.UTC)}
	got, err := filterFromQuery(filterQuery(f))
	if err != nil || got != f {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, f)
	}
}

// TestRefusedLoginCodeNotLogged: a login link refused for its Host (a name
// missing from admin.hosts) is still valid: its code must not reach the log.
func TestRefusedLoginCodeNotLogged(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	var logs strings.Builder
	d, err := New(context.Background(), cfg, Options{NoSync: true, Logger: NewLogger(&logs, LogConfig{Level: "info"}, NewRedactor(nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	u := d.ConsoleLoginURL()
	code := u[strings.LastIndex(u, "/")+1:]
	req := httptest.NewRequest("GET", u, nil)
	req.Host = "helpdesk.internal.example"
	rec := httptest.NewRecorder()
	d.adminHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("a foreign Host: %d", rec.Code)
	}
	if !strings.Contains(logs.String(), "refused") || strings.Contains(logs.String(), code) {
		t.Errorf("the refusal's log line (want it, without the code %s):\n%s", code, logs.String())
	}
}

// TestRemoteAnswerTooLarge: an answer from the daemon larger than the CLI
// reads is an error saying so, not a JSON error about its cut end.
func TestRemoteAnswerTooLarge(t *testing.T) {
	big := strings.Repeat("x", maxAnswer+10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`["` + big + `"]`))
	}))
	defer srv.Close()
	rc := &remoteOps{base: srv.URL, token: "t", hc: srv.Client()}
	var out []string
	err := rc.do(context.Background(), "GET", "/api/dlq", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "larger than 64 MiB; narrow the selection") {
		t.Errorf("a 64 MiB answer: %v", err)
	}
}

package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// TestAdminAPILocked: every /api/ route — known or not — wants the token
// the daemon generated beside the store (mode 0600), and refuses foreign
// Host and Origin headers; probes and metrics stay open, also on a probe
// listener of their own that serves nothing else; a drop or replay without
// a selection is refused server-side.
func TestAdminAPILocked(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	probe := freePort(t)
	e.section("admin")["probe_listen"] = probe
	e.endpoint(0)["retry"] = map[string]any{"schedule": []string{"0s"}}
	e.writeConfig()
	e.rcv.Default(testenv.Reply{Status: 500})
	e.setup()
	d := e.start()
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 2, Seed: 7})
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.DeadLetters == int64(load.TotalEvents()) })

	fi, err := os.Stat(daemon.TokenPath(e.storePath()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file beside the store: %v %v; want mode 0600", fi, err)
	}
	token := e.adminToken()
	base := "http://" + e.admin
	_, port, _ := net.SplitHostPort(e.admin)

	// Without the token, with a wrong one, a wrong scheme: 401 — also for
	// routes that do not exist, so one added later is covered too.
	for _, c := range []struct{ method, path, token string }{
		{"GET", "/api/status", ""},
		{"GET", "/api/status", "wrong-token-0123456789"},
		{"GET", "/api/status", token + "x"},
		{"GET", "/api/dlq", ""},
		{"POST", "/api/dlq/drop?all=true", ""},
		{"POST", "/api/endpoints/rcv/disable", "nope"},
		{"GET", "/api/nosuch", ""},
		{"POST", "/api/store/backup", ""},
		{"GET", "/api", ""},
		{"GET", "/healthz/../api/status", ""},
	} {
		code, body := apiCall(t, c.method, base+c.path, c.token, nil)
		if code != http.StatusUnauthorized {
			t.Errorf("%s %s with token %q: %d %s; want 401", c.method, c.path, c.token, code, body)
		}
	}
	code, body := apiCall(t, "GET", base+"/api/status", "", map[string]string{"Authorization": "Basic " + token})
	if code != http.StatusUnauthorized {
		t.Errorf("token as Basic: %d %s; want 401", code, body)
	}

	// The right token from the right origin: served.
	for _, hdr := range []map[string]string{
		nil,
		{"Host": "localhost:" + port},
		{"Origin": "http://" + e.admin},
		{"Origin": "http://localhost:" + port, "Host": "localhost:" + port},
	} {
		if code, body := apiCall(t, "GET", base+"/api/status", token, hdr); code != http.StatusOK || !strings.Contains(body, `"daemon_running":true`) {
			t.Errorf("GET /api/status with the token and %v: %d %s", hdr, code, body)
		}
	}
	// Foreign Host (DNS rebinding) or Origin (a web page): 403, token or not.
	for _, hdr := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Origin": "http://evil.example:" + port},
		{"Origin": "null"},
		{"Origin": "https://" + e.admin},
		{"Origin": "http://127.0.0.1:1"},
		{"Host": "evil.example:" + port},
		{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port},
	} {
		for _, tok := range []string{token, ""} {
			code, body := apiCall(t, "POST", base+"/api/endpoints/rcv/disable", tok, hdr)
			if code != http.StatusForbidden {
				t.Errorf("POST disable with %v (token %v): %d %s; want 403", hdr, tok != "", code, body)
			}
		}
	}
	if st := statusJSON(t, e.must("status", "--json")); !st.Endpoints[0].Enabled {
		t.Errorf("a refused request disabled the endpoint: %+v", st.Endpoints[0])
	}

	// Destructive calls want a selection, or all=true.
	for _, op := range []string{"drop", "replay"} {
		code, body := apiCall(t, "POST", base+"/api/dlq/"+op, token, nil)
		if code != http.StatusBadRequest || !strings.Contains(body, "all=true") {
			t.Errorf("POST /api/dlq/%s without a selection: %d %s; want 400 naming all=true", op, code, body)
		}
		if code, body := apiCall(t, "POST", base+"/api/dlq/"+op+"?limit=5", token, nil); code != http.StatusBadRequest {
			t.Errorf("POST /api/dlq/%s?limit=5: %d %s; a limit is no selection", op, code, body)
		}
		// A limit with a selection is refused too: replay and drop act on
		// the whole selection, so it would pass for a smaller one.
		if code, body := apiCall(t, "POST", base+"/api/dlq/"+op+"?endpoint=rcv&limit=5", token, nil); code != http.StatusBadRequest || !strings.Contains(body, "limit") {
			t.Errorf("POST /api/dlq/%s?endpoint=rcv&limit=5: %d %s; want 400 naming the limit", op, code, body)
		}
		if res := e.run("dlq", op, "--endpoint", "rcv", "--limit", "5"); res.code != 2 || !strings.Contains(res.stderr, "--limit applies to list only") {
			t.Errorf("dlq %s --endpoint rcv --limit 5: %s; want a usage error", op, res)
		}
	}
	if st := statusJSON(t, e.must("status", "--json")); st.Outbox.DeadLetters != int64(load.TotalEvents()) {
		t.Errorf("dead letters after refused drops: %d, want %d", st.Outbox.DeadLetters, load.TotalEvents())
	}
	code, body = apiCall(t, "POST", base+"/api/dlq/drop?all=true", token, nil)
	if code != http.StatusOK || !strings.Contains(body, `"count":`+strconv.Itoa(load.TotalEvents())) {
		t.Errorf("POST /api/dlq/drop?all=true: %d %s", code, body)
	}

	// Probes and metrics: open, whatever the Host or Origin, on both
	// listeners; the probe listener serves nothing else.
	foreign := map[string]string{"Host": "evil.example", "Origin": "http://evil.example"}
	for _, addr := range []string{e.admin, probe} {
		for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
			if code, body := apiCall(t, "GET", "http://"+addr+p, "", foreign); code != http.StatusOK {
				t.Errorf("GET %s on %s: %d %s", p, addr, code, body)
			}
		}
	}
	if code, body := apiCall(t, "GET", "http://"+probe+"/metrics", "", nil); !strings.Contains(body, "deskhook_ready") {
		t.Errorf("/metrics on the probe listener: %d, no deskhook_ready", code)
	}
	if code, _ := apiCall(t, "GET", "http://"+probe+"/api/status", token, nil); code != http.StatusNotFound {
		t.Errorf("GET /api/status on the probe listener: %d; want 404 (no operator API there)", code)
	}

	// The refusals are logged (rate-limited), the token never.
	d.stop()
	logs := d.stderr.String()
	if !strings.Contains(logs, "admin API request refused") {
		t.Errorf("no log line about refused API requests:\n%s", tail(logs, 4<<10))
	}
	if strings.Contains(logs, token) {
		t.Errorf("the daemon logged its admin token")
	}
	// A restart keeps the token.
	d = e.start()
	if got := e.adminToken(); got != token {
		t.Errorf("the token changed across a restart")
	}
	if code, _ := apiCall(t, "GET", base+"/api/status", token, nil); code != http.StatusOK {
		t.Errorf("the old token after a restart: %d", code)
	}
	d.stop()
}

// TestOpsWithoutDatabaseSecrets: with the database password, the endpoint
// secret and the admin token all in ${VAR}s (as systemd's root-only
// environment file holds them), status, dlq and endpoints work from an
// operator's shell that has only the admin token — before the command
// (`deskhook -c FILE status`) or after it; without the token they say
// which variable is missing; with no daemon they work from the store and
// show the slot as unavailable. check and run still need everything.
func TestOpsWithoutDatabaseSecrets(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	const (
		pwVar     = "E2E_OPS_DB_PASSWORD"
		secretVar = "E2E_OPS_CRM_SECRET"
		tokenVar  = "E2E_OPS_ADMIN_TOKEN"
		token     = "e2e-ops-admin-token-4f8a1c93b2"
		secret    = "whsec_ZTJlLW9wcy1lbmRwb2ludC1zZWNyZXQtMzI="
	)
	u, err := url.Parse(e.db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "PASSWORD")
	// trust auth: the password is ignored, but must be expanded
	e.section("source")["dsn"] = strings.Replace(u.String(), "PASSWORD", "${"+pwVar+"}", 1)
	e.section("admin")["token"] = "${" + tokenVar + "}"
	e.endpoint(0)["secret"] = "${" + secretVar + "}"
	e.writeConfig()
	all := []string{pwVar + "=s3cret-db-pw", secretVar + "=" + secret, tokenVar + "=" + token}
	operator := []string{tokenVar + "=" + token}

	if res := deskhook(t, all, "setup", "-c", e.cfgPath); res.code != 0 {
		t.Fatalf("setup: %s", res)
	}
	d := startDaemon(t, e.cfgPath, e.admin, all...)
	d.waitReadyz(http.StatusOK, 60*time.Second)
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 2, Seed: 11})
	e.waitDelivered(load.TotalEvents(), 30*time.Second)
	if _, err := os.Stat(daemon.TokenPath(e.storePath())); err == nil {
		t.Errorf("a token file was written although admin.token is set")
	}

	for _, args := range [][]string{
		{"status", "-c", e.cfgPath},
		{"-c", e.cfgPath, "status"},
		{"--config", e.cfgPath, "status", "--json"},
		{"--config=" + e.cfgPath, "endpoints", "list"},
		{"-c", e.cfgPath, "dlq", "list"},
		{"endpoints", "disable", "rcv", "-c", e.cfgPath},
		{"-c", e.cfgPath, "endpoints", "enable", "rcv"},
	} {
		res := deskhook(t, operator, args...)
		if res.code != 0 {
			t.Errorf("deskhook %s without the database password: %s", strings.Join(args, " "), res)
		}
		if strings.Contains(res.stdout+res.stderr, token) {
			t.Errorf("deskhook %s printed the admin token", strings.Join(args, " "))
		}
	}
	res := deskhook(t, operator, "-c", e.cfgPath, "status")
	for _, want := range []string{"running, ready", "slot " + e.slot, "active (pid", "rcv"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status (daemon running, operator's environment) lacks %q:\n%s", want, res.stdout)
		}
	}
	if res := deskhook(t, nil, "-c", e.cfgPath, "status"); res.code != 1 || !strings.Contains(res.stderr, tokenVar) {
		t.Errorf("status without the admin token's variable: want exit 1 naming %s; %s", tokenVar, res)
	}
	wrong := []string{tokenVar + "=not-the-token-0123456789"}
	if res := deskhook(t, wrong, "-c", e.cfgPath, "status"); res.code != 1 || !strings.Contains(res.stderr, "wrong admin token") {
		t.Errorf("status with a wrong token: want exit 1 saying so; %s", res)
	}
	// What needs the database still needs its password.
	// (check reports config problems on its FAIL lines, on stdout.)
	if res := deskhook(t, operator, "-c", e.cfgPath, "check"); res.code != 2 || !strings.Contains(res.stdout, "FAIL  config") ||
		!strings.Contains(res.stdout, pwVar) {
		t.Errorf("check without the database password: want exit 2 naming %s; %s", pwVar, res)
	}
	d.stop()
	if strings.Contains(d.stderr.String(), token) {
		t.Errorf("the daemon logged its admin token")
	}

	// No daemon: from the store, the slot unavailable rather than an error.
	res = deskhook(t, operator, "-c", e.cfgPath, "status")
	if res.code != 0 || !strings.Contains(res.stdout, "not running") ||
		!strings.Contains(res.stdout, "unavailable: source.dsn refers to ${"+pwVar+"}") {
		t.Errorf("status offline without the database password: %s", res)
	}
	if res := deskhook(t, nil, "-c", e.cfgPath, "endpoints", "list"); res.code != 0 || !strings.Contains(res.stdout, "yes") {
		t.Errorf("endpoints list offline with no secret at all: %s", res)
	}
	// With the password, the slot shows.
	if res := deskhook(t, all, "-c", e.cfgPath, "status"); res.code != 0 || !strings.Contains(res.stdout, "inactive") {
		t.Errorf("status offline with the password: %s", res)
	}
}

// TestRunBindsPortsFirst: a taken admin or probe port fails `run` at once,
// naming the key, before the store (or the token file) is created.
func TestRunBindsPortsFirst(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct{ key, listen, probe string }{
		{"admin.listen", taken, ""},
		{"admin.probe_listen", freePort(t), taken},
	} {
		dir := t.TempDir()
		store := filepath.Join(dir, "deskhook.db")
		cfg := filepath.Join(dir, "deskhook.yaml")
		text := "source: {dsn: \"postgres://u@" + freePort(t) + "/db?connect_timeout=2\"}\n" +
			"store: {path: " + store + "}\n" +
			"admin: {listen: \"" + c.listen + "\", probe_listen: \"" + c.probe + "\"}\n" +
			"endpoints: [{url: \"https://crm.example.com/hooks\"}]\n"
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		res := deskhook(t, nil, "run", "-c", cfg)
		if res.code != 1 || !strings.Contains(res.stderr, c.key) || !strings.Contains(res.stderr, "address already in use") {
			t.Errorf("run with %s taken: want exit 1 naming it; %s", c.key, res)
		}
		for _, f := range []string{store, daemon.TokenPath(store)} {
			if _, err := os.Stat(f); err == nil {
				t.Errorf("run with %s taken created %s", c.key, f)
			}
		}
	}
}

// TestConfigBounds: durations past their bounds — even past what a
// duration can hold — and credentials in a plain-http URL are config
// errors that say so (on loopback, where nothing crosses a network, such
// a URL is fine).
func TestConfigBounds(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "deskhook.yaml")
	if err := os.WriteFile(cfg, []byte(`
source: {dsn: "postgres://u@127.0.0.1:1/db"}
endpoints:
  - url: http://crm:hunter2-pw@crm.example.com/hooks
    timeout: 2000000h
    retry: {schedule: [0s, 9999999h]}
  - url: http://local:pw@127.0.0.1:8080/hooks
    retry: {schedule: [0s, 2000000h]}
retry_after_cap: 9999999h
shutdown_timeout: 2000000h
`), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`endpoints[0].url: holds credentials over plain http`,
		`(got "http://crm.example.com/hooks")`,
		`endpoints[0].timeout: must be at most 10m0s (got 2000000h0m0s)`,
		`endpoints[0].retry.schedule[1]: must be at most 168h0m0s (got "9999999h", line 6)`,
		`endpoints[1].retry.schedule[1]: must be at most 168h0m0s (got 2000000h0m0s)`,
		`retry_after_cap: must be at most 168h0m0s (got "9999999h", line 9)`,
		`shutdown_timeout: must be at most 1h0m0s (got 2000000h0m0s)`,
	}
	for _, cmd := range []string{"run", "check"} {
		res := deskhook(t, nil, cmd, "-c", cfg)
		if res.code != 2 {
			t.Errorf("%s: want exit 2; %s", cmd, res)
		}
		out := res.stderr
		if cmd == "check" {
			out = res.stdout // check's FAIL lines
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", cmd, w, res)
			}
		}
		for _, bad := range []string{"hunter2-pw", "endpoints[1].url", "must be a duration"} {
			if strings.Contains(res.stdout+res.stderr, bad) {
				t.Errorf("%s: output holds %q:\n%s", cmd, bad, res)
			}
		}
	}
}

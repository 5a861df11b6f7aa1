package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// readmeBlock returns the first fenced code block of README.md after the
// line containing marker.
func readmeBlock(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	s = s[i:]
	start := strings.Index(s, "```")
	if start < 0 {
		t.Fatalf("README.md has no code block after %q", marker)
	}
	s = s[start:]
	s = s[strings.Index(s, "\n")+1:]
	end := strings.Index(s, "```")
	var lines []string
	for _, l := range strings.Split(s[:end], "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// psqlBinary finds psql: on PATH or beside the server binaries.
func psqlBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql"); len(m) > 0 {
		return m[len(m)-1]
	}
	t.Fatal("psql not found on PATH nor in /usr/lib/postgresql/*/bin: install postgresql-client")
	return ""
}

// passwordCluster gives e a cluster of its own whose pg_hba.conf holds
// README's line for deskhook's role (password, its database only, no
// `replication` line) and lines for the superuser and the helpdesk's own
// role helpdesk_app, which owns the tables. It returns the line used.
func passwordCluster(t *testing.T, e *e2e) {
	t.Helper()
	e.db.Exec(t, `CREATE ROLE helpdesk_app LOGIN PASSWORD 'app';
		DO $$ DECLARE r record; BEGIN
		  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
		    EXECUTE format('ALTER TABLE public.%I OWNER TO helpdesk_app', r.tablename);
		  END LOOP;
		END $$`)
	line := readmeBlock(t, "In `pg_hba.conf`, one line lets deskhook's role in")
	f := strings.Fields(line)
	if len(f) != 5 || f[0] != "host" || f[1] != "helpdesk" || f[2] != "deskhook" {
		t.Fatalf("README's pg_hba.conf line changed: %q", line)
	}
	hba := fmt.Sprintf("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"+
		"host %s %s 127.0.0.1/32 %s\nhost %s helpdesk_app 127.0.0.1/32 scram-sha-256\n",
		e.db.Name, f[2], f[4], e.db.Name)
	// Written in place: the file keeps the server user's ownership.
	if err := os.WriteFile(filepath.Join(e.db.Server.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	e.db.Exec(t, "SELECT pg_reload_conf()")
}

// roleDSN is a DSN of e's database for role, with no sslmode (libpq's
// prefer: pgconn tries TLS first, which the test server refuses).
func (e *e2e) roleDSN(role, password string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s", e.db.Server.Port, e.db.Name, role, password)
}

// TestTwoRoleSetupFromREADME follows README's operator steps on a fresh
// cluster: the helpdesk's role owns the tables and cannot do setup alone
// (setup says what it lacks and changes nothing); `setup --print-sql` run
// by a DBA with psql (README's commands, verbatim but for the database's
// name) makes deskhook's role, grants and objects; `check` is all ok as
// deskhook's role; `run` delivers; `status` works without the database
// password in the environment. As deskhook's role,
// setup has nothing to do and teardown refuses up front, changing nothing.
func TestTwoRoleSetupFromREADME(t *testing.T) {
	t.Parallel()
	psql := psqlBinary(t)
	// README step 2's server settings.
	e := newE2E(t, testenv.WithSettings(map[string]string{"wal_level": "logical", "max_slot_wal_keep_size": "10GB"}),
		testenv.NoFsync())
	passwordCluster(t, e)
	const password = "s3cret pw"
	env := []string{"DESKHOOK_DB_PASSWORD=" + password}
	e.section("source")["dsn"] = e.roleDSN("deskhook", "'${DESKHOOK_DB_PASSWORD}'")
	e.writeConfig()
	objects := func() string {
		var s string
		if err := e.db.Pool(t).QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM pg_publication WHERE pubname = 'deskhook') || ' ' ||
			(SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1) || ' ' ||
			(SELECT relreplident::text FROM pg_class WHERE oid = 'tickets'::regclass)`, e.slot).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	// The helpdesk's own role owns the tables, and that is not enough.
	owner := *e
	owner.cfgPath = filepath.Join(e.dir, "setup.yaml")
	owner.cfg = map[string]any{}
	for k, v := range e.cfg {
		owner.cfg[k] = v
	}
	owner.cfg["source"] = map[string]any{"dsn": e.roleDSN("helpdesk_app", "app"), "slot": e.slot}
	owner.writeConfig()
	res := owner.run("setup")
	for _, w := range []string{"nothing was changed", "REPLICATION (to create replication slot", "CREATE on database", "--print-sql"} {
		if res.code != 1 || !strings.Contains(res.stderr, w) {
			t.Errorf("setup as the tables' owner: want exit 1 saying %q; %s", w, res)
		}
	}
	if strings.Contains(res.stderr, "ownership") {
		t.Errorf("setup tells the tables' owner it lacks ownership: %s", res)
	}
	if o := objects(); o != "0 0 d" {
		t.Fatalf("a refused setup left publication, slot, identity = %s", o)
	}

	// README step 4, as a DBA.
	script := readmeBlock(t, "**Setup, once.**")
	script = strings.ReplaceAll(script, "-d helpdesk", "-d "+e.db.Name)
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), append(env, "PATH="+filepath.Dir(deskhookBinary(t))+":"+filepath.Dir(psql)+":"+os.Getenv("PATH"),
		"PGHOST=127.0.0.1", fmt.Sprintf("PGPORT=%d", e.db.Server.Port))...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README's setup commands:\n%s\n%v\n%s", script, err, out)
	}
	if o := objects(); o != "1 1 f" {
		t.Fatalf("after the DBA's script: publication, slot, identity = %s", o)
	}

	res = deskhook(t, env, "check", "-c", e.cfgPath)
	if res.code != 0 {
		t.Fatalf("check as deskhook's role: %s", res)
	}
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		if !strings.HasPrefix(l, "ok    ") {
			t.Errorf("check: %q is not ok", l)
		}
	}
	if !strings.Contains(res.stdout, `role "deskhook" has REPLICATION`) && !strings.Contains(res.stdout, "role deskhook has REPLICATION") {
		t.Errorf("check does not run as deskhook's role:\n%s", res.stdout)
	}
	if res := deskhook(t, env, "setup", "-c", e.cfgPath); res.code != 0 || !strings.Contains(res.stdout, "nothing to do") {
		t.Errorf("setup as deskhook's role after the DBA's: %s", res)
	}

	d := startDaemon(t, e.cfgPath, e.admin, env...)
	d.waitReadyz(http.StatusOK, 60*time.Second)
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 3, Replies: 2, Updates: 2, Seed: 1})
	e.waitDelivered(load.TotalEvents(), 60*time.Second)
	// The operator's shell lacks the database password (systemd keeps it
	// in a root-only file): status needs only the admin API.
	if res := deskhook(t, nil, "status", "-c", e.cfgPath); res.code != 0 || !strings.Contains(res.stdout, "running, ready") {
		t.Errorf("status without the database password in the environment: %s", res)
	}
	d.stop()

	res = deskhook(t, env, "teardown", "-c", e.cfgPath)
	for _, w := range []string{"nothing was changed", `ownership of publication "deskhook" (to drop it)`} {
		if res.code != 1 || !strings.Contains(res.stderr, w) {
			t.Errorf("teardown as deskhook's role: want exit 1 saying %q; %s", w, res)
		}
	}
	if o := objects(); o != "1 1 f" {
		t.Errorf("a refused teardown left publication, slot, identity = %s", o)
	}
}

// TestStreamFailureSaidOnce: a wrong password is one log line whose error
// starts with the server's reason (not with the TLS attempt pgconn made
// first), however often the stream is retried; /readyz gives the reason.
func TestStreamFailureSaidOnce(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testenv.Dedicated(), testenv.NoFsync())
	passwordCluster(t, e)
	e.setup() // as the superuser
	e.db.Exec(t, `CREATE ROLE deskhook LOGIN REPLICATION PASSWORD 'right'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO deskhook`)
	e.section("source")["dsn"] = e.roleDSN("deskhook", "wrong")
	e.section("log")["level"] = "info" // the default: what an operator sees
	e.writeConfig()
	d := startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, `password authentication failed for user "deskhook"`)
	waitRestarts(t, d, 3)
	var lines []string
	for _, l := range strings.Split(d.stderr.String(), "\n") {
		if strings.Contains(l, "password authentication failed") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !regexp.MustCompile(`level=ERROR .*err="password authentication failed for user \\"deskhook\\" \(SQLSTATE 28P01; connecting to 127\.0\.0\.1:\d+ as deskhook`).MatchString(lines[0]) {
		t.Errorf("want one ERROR line whose error starts with the server's reason, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if strings.Contains(d.stderr.String(), "tls error") {
		t.Errorf("the log shows pgconn's TLS attempt:\n%s", d.stderr.String())
	}
	d.stop()
}

// TestInvalidDSNSaysWhy: a DSN that does not parse is reported with
// pgconn's reason, and without its password.
func TestInvalidDSNSaysWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deskhook.yaml")
	if err := os.WriteFile(cfg, []byte("source:\n  dsn: \"postgres://u:hunter22@db:notaport/helpdesk\"\n"+
		"endpoints:\n  - url: http://127.0.0.1:1/hooks\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := deskhook(t, nil, "check", "-c", cfg)
	if res.code != 2 || !strings.Contains(res.stdout+res.stderr, "not a valid PostgreSQL connection string: invalid port") ||
		strings.Contains(res.stdout+res.stderr, "hunter22") {
		t.Errorf("check with an invalid DSN: %s", res)
	}
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestMySQLStreams: a daemon on a MariaDB helpdesk, started on a store that
// has never streamed, reads from the server's position at its start and
// delivers what the helpdesk does next; status shows the stored GTID, check
// passes, setup and teardown have nothing to do on the server.
func TestMySQLStreams(t *testing.T) {
	t.Parallel()
	// A server of its own: the stored GTID is compared with the server's,
	// which other tests' databases on a shared server move on.
	e := newMySQLE2E(t, testenv.Dedicated(), testenv.NoFsync())
	before := e.loadMySQL(context.Background(), testenv.LoadConfig{Tickets: 1, Seed: 1}) // before the daemon: not read
	res := e.must("setup")
	if !strings.Contains(res.stdout, "nothing to create on the MySQL/MariaDB server") ||
		!strings.Contains(res.stdout, "the store has not streamed yet") {
		t.Errorf("setup on a fresh store: %s", res)
	}
	d := e.start()
	deliver := e.mysqlDeliverer()
	deliver(2)
	for _, a := range arrivals(e.rcv.Requests()) {
		if a.ticket == "1" && before.Tickets[0].TicketID == 1 {
			t.Errorf("%s of ticket 1, written before the first start, was delivered", a.event)
		}
	}
	st := statusJSON(t, e.must("status", "--json"))
	if st.Binlog == nil || st.Binlog.Stored != e.gtid() || st.Binlog.Error != "" || st.Outbox.Resume != st.Binlog.Stored ||
		st.Stream == nil || !st.Stream.Connected || st.Stream.ConnectionID == 0 {
		t.Errorf("status: binlog %+v, outbox %+v, stream %+v; server at %s", st.Binlog, st.Outbox, st.Stream, e.gtid())
	}
	res = e.must("status")
	if !regexp.MustCompile(`binlog\s+stored GTID `+e.gtid()+`, in the active binlog file`).MatchString(res.stdout) ||
		strings.Contains(res.stdout, "slot ") {
		t.Errorf("status:\n%s", res.stdout)
	}
	res = e.must("check")
	for _, want := range []string{"ok    binlog_row_metadata: FULL", "ok    server_id: ",
		"ok    stored binlog position: GTID " + e.gtid() + " is on the server, in the active binlog file",
		"ok    columns " + e.my.Name + ".tickets"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("check lacks %q:\n%s", want, res.stdout)
		}
	}
	res = e.must("setup")
	if !strings.Contains(res.stdout, "the stored position (GTID "+e.gtid()+") is on the server") {
		t.Errorf("setup on a streaming store: %s", res)
	}
	if res := e.must("teardown"); !strings.Contains(res.stdout, "nothing to remove") {
		t.Errorf("teardown: %s", res)
	}
	if res := e.must("setup", "--print-sql"); !strings.Contains(res.stdout, "GRANT REPLICATION SLAVE") ||
		!strings.Contains(res.stdout, "binlog_row_metadata = FULL") {
		t.Errorf("setup --print-sql: %s", res)
	}
	d.waitReadyz(http.StatusOK, 10*time.Second)
	d.stop()
}

// TestMySQLDriftColumnRenamed is TestDriftColumnRenamed on MariaDB:
// renaming tickets.status is noticed as soon as the binlog shows the DDL
// (the default verify_interval, 30s, would be later): one ERROR, /readyz
// 503, the metric, `check` FAIL; the update lacking the column fires
// nothing; renamed back, status changes fire again.
func TestMySQLDriftColumnRenamed(t *testing.T) {
	t.Parallel()
	e := newMySQLE2E(t)
	d := e.start()
	ctx := context.Background()
	hd := testenv.NewMySQLHelpdesk(e.pool())
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitEvent("ticket_created", w.TicketID, 30*time.Second)

	e.exec("ALTER TABLE tickets RENAME COLUMN status TO status_id")
	e.exec(fmt.Sprintf("UPDATE tickets SET status_id = %d WHERE id = %d", testenv.StatusClosed, w.TicketID))
	table := e.my.Name + ".tickets"
	body := d.waitReadyz(http.StatusServiceUnavailable, 20*time.Second, table, "lacks column status")
	if !strings.Contains(body, "ticket_status_updated") {
		t.Errorf("/readyz does not say what the column is for:\n%s", body)
	}
	waitMetric(t, d, 1, 10*time.Second, "deskhook_source_problems", `table="`+table+`"`, `problem="missing_column:status"`)
	waitMetric(t, d, 1, 10*time.Second, "deskhook_mapping_bad_rows_total", `table="tickets"`)
	if n := countLines(d.stderr.String(), "level=ERROR", "source schema problem", "table="+table,
		"problem=missing_column:status", "RENAME COLUMN"); n != 1 {
		t.Errorf("%d ERROR lines for the renamed column, want 1:\n%s", n, d.stderr.String())
	}
	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  column `+regexp.QuoteMeta(table)+`.status: lacks column status`).MatchString(res.stdout) {
		t.Errorf("check with the column renamed: %s", res)
	}

	e.exec("ALTER TABLE tickets RENAME COLUMN status_id TO status")
	if _, err := hd.ChangeStatus(ctx, w.TicketID, testenv.StatusOpen); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("ticket_status_updated", w.TicketID, 30*time.Second)
	d.waitReadyz(http.StatusOK, 20*time.Second)
	if got := e.eventsOf(w.TicketID); strings.Join(got, ",") != "ticket_created,ticket_status_updated" {
		t.Errorf("events of the ticket: %v (the update without its status column must fire nothing)", got)
	}
	d.stop()
}

// TestMySQLPasswordNeverLogged: the DSN's password, given through ${VAR},
// appears in no log line at the debug level, nor in what check, status and
// setup print, also when the server refuses the connection.
func TestMySQLPasswordNeverLogged(t *testing.T) {
	t.Parallel()
	e := newMySQLE2E(t)
	mc := e.my.Password
	env := []string{"E2E_MYSQL_DSN_PW=" + mc}
	e.section("source")["dsn"] = strings.Replace(e.my.DeskhookDSN, ":"+mc+"@", ":${E2E_MYSQL_DSN_PW}@", 1)
	e.section("log")["level"] = "debug"
	e.writeConfig()
	d := startDaemon(t, e.cfgPath, e.admin, env...)
	d.waitReadyz(http.StatusOK, 60*time.Second)
	e.mysqlDeliverer()(1)
	e.killDump() // a reconnect, logged
	e.mysqlDeliverer()(2)
	var outs []string
	for _, cmd := range []string{"check", "status", "setup"} {
		res := deskhook(t, env, cmd, "-c", e.cfgPath)
		if res.code != 0 {
			t.Errorf("%s: %s", cmd, res)
		}
		outs = append(outs, res.stdout+res.stderr)
	}
	d.stop()
	if !strings.Contains(d.stderr.String(), "level=DEBUG") || !strings.Contains(d.stderr.String(), "binlog connection failed") {
		t.Fatalf("no debug logs and no reconnect to look in:\n%s", d.stderr.String())
	}
	// A wrong password: the errors quote the DSN, redacted.
	e.section("source")["dsn"] = strings.Replace(e.my.DeskhookDSN, ":"+mc+"@", ":wrong-"+mc+"@", 1)
	e.writeConfig()
	bad := e.run("check")
	outs = append(outs, d.stderr.String(), bad.stdout, bad.stderr)
	for i, out := range outs {
		if strings.Contains(out, mc) {
			t.Errorf("output %d shows the password:\n%s", i, out)
		}
	}
	if bad.code != 1 || !strings.Contains(bad.stdout, "FAIL  connection") {
		t.Errorf("check with a wrong password: %s", bad)
	}
}

// readmeMySQL returns the README's my.cnf lines for MariaDB (before "#
// MySQL only:") and its SQL for deskhook's account, from the section "Next
// to a Faveo helpdesk on MySQL/MariaDB".
func readmeMySQL(t *testing.T) (cnf map[string]string, sql string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "## Next to a Faveo helpdesk on MySQL/MariaDB")
	if !ok {
		t.Fatal("README has no section on MySQL/MariaDB")
	}
	block := func(lang string) string {
		_, rest, ok := strings.Cut(section, "```"+lang+"\n")
		if !ok {
			t.Fatalf("README's MySQL section has no %s block", lang)
		}
		b, _, _ := strings.Cut(rest, "```")
		return b
	}
	cnf = map[string]string{}
	for _, line := range strings.Split(block("ini"), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "# MySQL only") {
			break
		}
		line, _, _ = strings.Cut(line, "#")
		if k, v, ok := strings.Cut(line, "="); ok {
			cnf[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return cnf, block("sql")
}

// TestMySQLREADMESettings follows the README's MySQL section on a MariaDB
// with testenv's binlog settings removed: its my.cnf lines and its SQL for
// the account (verbatim, but for the password and the database's name)
// make a server on which `deskhook check` passes with no FAIL and no WARN,
// and the daemon delivers.
func TestMySQLREADMESettings(t *testing.T) {
	t.Parallel()
	cnf, sqlText := readmeMySQL(t)
	for _, k := range []string{"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
		"binlog_expire_logs_seconds", "server_id"} {
		if cnf[k] == "" {
			t.Fatalf("README's my.cnf lacks %s: %v", k, cnf)
		}
	}
	settings := map[string]string{"log_bin": "", "binlog_format": "", "binlog_row_image": "", "binlog_row_metadata": ""}
	for k, v := range cnf {
		settings[k] = v
	}
	e := newMySQLE2E(t, testenv.WithSettings(settings), testenv.NoFsync())
	const password = "readme-pw-41"
	stmts := strings.NewReplacer("'...'", "'"+password+"'", "`helpdesk`", "`"+e.my.Name+"`",
		"'deskhook'@", "'readme_"+e.my.Name[len(e.my.Name)-8:]+"'@").Replace(sqlText)
	var code strings.Builder
	for _, line := range strings.Split(stmts, "\n") {
		line, _, _ = strings.Cut(line, "--")
		code.WriteString(line + "\n")
	}
	for _, stmt := range strings.Split(code.String(), ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			e.exec(stmt)
		}
	}
	user := "readme_" + e.my.Name[len(e.my.Name)-8:]
	t.Cleanup(func() { e.pool().Exec("DROP USER IF EXISTS ?@'%'", user) })
	dsn := strings.Replace(e.my.DeskhookDSN, e.my.User+":"+e.my.Password+"@", user+":"+password+"@", 1)
	if dsn == e.my.DeskhookDSN {
		t.Fatalf("cannot put the README's account into %s", e.my.DeskhookDSN)
	}
	e.section("source")["dsn"] = dsn
	e.writeConfig()
	res := e.must("check")
	if strings.Contains(res.stdout, "WARN") || !strings.Contains(res.stdout, "ok    binlog retention: binlogs kept 72h0m0s") {
		t.Errorf("check on README's settings: %s", res)
	}
	d := e.start()
	e.mysqlDeliverer()(1)
	d.stop()
}

package binlog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/testenv"
)

func results(t *testing.T, rs []CheckResult) map[string]CheckResult {
	t.Helper()
	out := map[string]CheckResult{}
	for _, r := range rs {
		t.Logf("%-32s ok=%-5v warn=%-5v %s | %s", r.Name, r.OK, r.Warn, r.Detail, r.Fix)
		out[r.Name] = r
	}
	return out
}

// On a server set up as deskhook needs, every check passes (retention
// warns: testenv's server never purges by age).
func TestCheckPasses(t *testing.T) {
	db := testenv.MariaDB(t)
	rs := results(t, Check(context.Background(), testConfig(db)))
	for name, r := range rs {
		if !r.OK && !(name == "binlog retention" && r.Warn) {
			t.Errorf("%s: %s", name, r.Detail)
		}
	}
	for _, name := range []string{"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
		"privilege REPLICATION SLAVE", "privilege BINLOG MONITOR", "table " + db.Name + ".tickets", "time zone", "server_id"} {
		if _, ok := rs[name]; !ok {
			t.Errorf("no result %q", name)
		}
	}
}

// On a server started with MariaDB's defaults (binary log off, MIXED,
// NO_LOG) and purging binlogs after an hour, each check FAILs with the
// exact my.cnf line, and the reader refuses to start with the same line.
func TestCheckFailsOnMariaDBDefaults(t *testing.T) {
	db := testenv.MariaDB(t, testenv.WithSettings(map[string]string{"log_bin": "", "binlog_format": "",
		"binlog_row_image": "", "binlog_row_metadata": "", "binlog_expire_logs_seconds": "3600"}))
	cfg := testConfig(db)
	rs := results(t, Check(context.Background(), cfg))
	for name, line := range map[string]string{"log_bin": "`log_bin = binlog`", "binlog_format": "`binlog_format = ROW`",
		"binlog_row_metadata": "`binlog_row_metadata = FULL`",
		"binlog retention":    "`binlog_expire_logs_seconds = 259200`"} {
		r := rs[name]
		if r.OK || r.Warn || !strings.Contains(r.Fix, line) || !strings.Contains(r.Fix, "my.cnf") {
			t.Errorf("%s: %+v; want a FAIL naming %s in my.cnf", name, r, line)
		}
	}
	if r := rs["binlog_row_image"]; !r.OK {
		t.Errorf("binlog_row_image: MariaDB's default FULL reported as %+v", r)
	}
	// The daemon's verification says the same, for the server as a whole.
	ps, err := Verify(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, p := range ps {
		kinds = append(kinds, p.Kind)
		if p.Table != "" || !strings.Contains(p.Fix, "my.cnf") {
			t.Errorf("Verify: %+v; want a problem of the server with its my.cnf line", p)
		}
	}
	if want := []string{"log_bin", "binlog_format", "binlog_row_metadata"}; !slices.Equal(kinds, want) {
		t.Errorf("Verify on MariaDB's defaults: %v, want %v", kinds, want)
	}
	run := startReader(t, cfg, "", nil)
	err = run.runErr(t, time.Minute)
	if !errors.Is(err, ErrServerConfig) || !strings.Contains(err.Error(), "`log_bin = binlog`") {
		t.Errorf("Run on a server without binlog: %v; want ErrServerConfig naming the my.cnf line", err)
	}
}

// An account with SELECT only: each missing privilege FAILs with the
// GRANT that fixes it; a table it cannot read, too.
func TestCheckPrivileges(t *testing.T) {
	db := testenv.MariaDB(t)
	admin := db.Pool(t)
	ctx := context.Background()
	user := "ro_" + db.User[3:]
	for _, q := range []string{"CREATE USER ?@'%' IDENTIFIED BY 'pw'", "GRANT SELECT ON " + quoteIdent(db.Name) + ".tickets TO ?@'%'"} {
		if _, err := admin.ExecContext(ctx, q, user); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin.ExecContext(context.Background(), "DROP USER ?@'%'", user) })
	mc, _ := mysql.ParseDSN(db.DeskhookDSN)
	mc.User, mc.Passwd = user, "pw"
	cfg := testConfig(db)
	cfg.DSN = mc.FormatDSN()
	rs := results(t, Check(ctx, cfg))
	account := "'" + user + "'@'%'"
	for name, fix := range map[string]string{
		"privilege REPLICATION SLAVE":         "GRANT REPLICATION SLAVE ON *.* TO " + account,
		"privilege BINLOG MONITOR":            "GRANT BINLOG MONITOR ON *.* TO " + account,
		"table " + db.Name + ".ticket_thread": "GRANT SELECT ON `" + db.Name + "`.* TO " + account,
	} {
		if r := rs[name]; r.OK || !strings.Contains(r.Fix, fix) {
			t.Errorf("%s: %+v; want a FAIL with %q", name, r, fix)
		}
	}
	if r := rs["table "+db.Name+".tickets"]; !r.OK {
		t.Errorf("tickets, granted: %+v", r)
	}
	if strings.Contains(PrintSQL(cfg), "pw") {
		t.Error("PrintSQL shows the DSN's password")
	}
	if sql := PrintSQL(cfg); !strings.Contains(sql, "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO "+account) ||
		!strings.Contains(sql, "GRANT SELECT ON `"+db.Name+"`.* TO "+account) || !strings.Contains(sql, "binlog_row_metadata = FULL") {
		t.Errorf("PrintSQL:\n%s", sql)
	}
}

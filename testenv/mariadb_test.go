package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestMariaDBGivesSeededDatabase(t *testing.T) {
	start := time.Now()
	db := MariaDB(t)
	t.Logf("first database after %v", time.Since(start))
	ctx := context.Background()
	pool := db.Pool(t)

	var n int
	if err := pool.QueryRowContext(ctx, "SELECT count(*) FROM ticket_status").Scan(&n); err != nil {
		t.Fatal(err)
	}
	checkSeededStatuses(t, n, func(id int64, name *string, purpose *int64) error {
		return pool.QueryRowContext(ctx, "SELECT name, purpose_of_status FROM ticket_status WHERE id = ?", id).Scan(name, purpose)
	})
	for table, want := range map[string]int{"users": len(Staff) + len(Clients), "department": len(Departments),
		"teams": len(Teams), "help_topic": len(HelpTopics), "ticket_priority": len(Priorities), "tickets": 0} {
		if err := pool.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != want {
			t.Errorf("%s has %d rows (%v), want %d", table, n, err, want)
		}
	}

	start = time.Now()
	db2 := MariaDB(t)
	t.Logf("second database after %v", time.Since(start))
	if db2.Name == db.Name || db2.User == db.User {
		t.Fatalf("two calls gave the same database %s or account %s", db.Name, db.User)
	}
	if db2.Server != db.Server {
		t.Errorf("second database on another server; want the shared one")
	}
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('only in the first')")
	if err := db2.Pool(t).QueryRowContext(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second database sees %d audit_log rows of the first", n)
	}
}

// variables reads server variables over the database's admin DSN.
func variables(t *testing.T, dsn string, names ...string) map[string]string {
	t.Helper()
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('" + strings.Join(names, "','") + "')")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		got[k] = v
	}
	return got
}

// The binlog is what deskhook's MySQL source needs, with GTIDs, on a
// server listening on loopback only; NoFsync and WithSettings change it.
func TestMariaDBSettings(t *testing.T) {
	binlog := map[string]string{"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
		"binlog_row_metadata": "FULL", "server_id": "1", "gtid_domain_id": "0"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range binlog {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		opts []Option
		want map[string]string
	}{
		{"shared", nil, with(map[string]string{"sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1",
			"bind_address": "127.0.0.1", "skip_name_resolve": "ON", "system_time_zone": "UTC", "time_zone": "SYSTEM"})},
		{"no fsync", []Option{NoFsync()}, with(map[string]string{"sync_binlog": "0", "innodb_flush_log_at_trx_commit": "2"})},
		{"MariaDB's defaults", []Option{WithSettings(map[string]string{"binlog-format": "MIXED", "binlog_row_metadata": "NO_LOG",
			"log_bin": ""})}, map[string]string{"log_bin": "OFF", "binlog_format": "MIXED", "binlog_row_metadata": "NO_LOG"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := MariaDB(t, tt.opts...)
			names := []string{"socket", "port"}
			for k := range tt.want {
				names = append(names, k)
			}
			got := variables(t, db.DSN, names...)
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if os.Getenv(MySQLDSNEnv) == "" {
				if got["socket"] != db.Server.Socket || !strings.HasPrefix(got["socket"], db.Server.dir) {
					t.Errorf("socket = %q, want the server's own %s in %s", got["socket"], db.Server.Socket, db.Server.dir)
				}
				if got["port"] != strconv.Itoa(db.Server.Port) {
					t.Errorf("port = %q, want %d", got["port"], db.Server.Port)
				}
			}
		})
	}
}

// gtidRE is a MariaDB GTID: domain-server-sequence.
var gtidRE = regexp.MustCompile(`^0-1-(\d+)$`)

// Every transaction gets a GTID of domain 0 and server 1.
func TestMariaDBWritesGTIDs(t *testing.T) {
	db := MariaDB(t, Dedicated(), NoFsync())
	pool := db.Pool(t)
	ctx := context.Background()
	pos := func() int {
		t.Helper()
		var p string
		if err := pool.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&p); err != nil {
			t.Fatal(err)
		}
		m := gtidRE.FindStringSubmatch(p)
		if m == nil {
			t.Fatalf("gtid_binlog_pos = %q, want 0-1-N", p)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before := pos()
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('one')")
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('two')")
	if after := pos(); after != before+2 {
		t.Errorf("two transactions moved gtid_binlog_pos from 0-1-%d to 0-1-%d", before, after)
	}
}

// The server never runs as root: under root it runs as nobody.
func TestMariaDBRunsUnprivileged(t *testing.T) {
	db := MariaDB(t)
	if uid, want := processUID(t, mariadbdPID(t, db.Server)), expectedServerUID(); uid != want || uid == 0 {
		t.Errorf("mariadbd runs as uid %d, want %d (never 0)", uid, want)
	}
}

func mariadbdPID(t *testing.T, s *MySQLServer) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "mariadbd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// deskhookConn opens a connection as the database's deskhook account.
func deskhookConn(t *testing.T, db *MySQLDB) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", db.DeskhookDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The deskhook account may stream and inspect the binlog and read its own
// database, and nothing more.
func TestMariaDBDeskhookAccount(t *testing.T) {
	db, other := MariaDB(t), MariaDB(t)
	conn := deskhookConn(t, db)
	ctx := context.Background()

	rows, err := conn.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		t.Fatal(err)
	}
	var grants []string
	for rows.Next() {
		var g string
		rows.Scan(&g)
		grants = append(grants, g)
	}
	rows.Close()
	all := strings.Join(grants, "\n")
	for _, want := range []string{"REPLICATION SLAVE", "BINLOG MONITOR", "GRANT SELECT ON `" + db.Name + "`.*"} {
		if !strings.Contains(all, want) {
			t.Errorf("grants lack %q:\n%s", want, all)
		}
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil || n == 0 {
		t.Errorf("SELECT in its database: %d rows, %v", n, err)
	}
	var file string
	var pos int64
	var doDB, ignoreDB string
	if err := conn.QueryRowContext(ctx, "SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil || file == "" {
		t.Errorf("SHOW MASTER STATUS: %q, %v", file, err)
	}
	if _, err := conn.ExecContext(ctx, "SHOW BINARY LOGS"); err != nil {
		t.Errorf("SHOW BINARY LOGS: %v", err)
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO audit_log (message) VALUES ('x')"); !isMySQLError(err, 1142) {
		t.Errorf("INSERT as deskhook: %v, want refused (1142)", err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM `"+other.Name+"`.users").Scan(&n); !isMySQLError(err, 1142) {
		t.Errorf("SELECT in another test's database: %v, want refused (1142)", err)
	}
}

func TestMariaDBDedicatedStopStartRestart(t *testing.T) {
	t.Parallel()
	db := MariaDB(t, Dedicated(), NoFsync())
	s := db.Server
	ctx := context.Background()
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('kept')")
	pool := db.Pool(t)

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.PingContext(ctx); err == nil {
		t.Fatal("pinged a stopped server")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var msg string
	if err := pool.QueryRowContext(ctx, "SELECT message FROM audit_log").Scan(&msg); err != nil || msg != "kept" {
		t.Fatalf("data after restart, same pool: %q, %v", msg, err)
	}
	if err := deskhookConn(t, db).PingContext(ctx); err != nil {
		t.Errorf("deskhook account after restart: %v", err)
	}
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start: %v", err)
	}
	if tail := s.LogTail(); !strings.Contains(tail, "ready for connections") || !strings.HasPrefix(s.LogPath(), s.DataDir) {
		t.Errorf("log %s ends:\n%s", s.LogPath(), tail)
	}
	var binlogs int
	rows, err := pool.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		binlogs++
	}
	rows.Close()
	if binlogs < 3 { // one per start
		t.Errorf("%d binlog files after three starts", binlogs)
	}
}

func TestMariaDBCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	s, err := StartMariaDB(context.Background(), NoFsync())
	if err != nil {
		t.Fatal(err)
	}
	checkCloseRemovesEverything(t, s, s.dir, mariadbdPID(t, s))
}

func TestMariaDBSharedServerRefusesStop(t *testing.T) {
	checkSharedServerRefuses(t, MariaDB(t).Server)
}

// A test's database and account go at its cleanup, even with sessions
// still open in it, one of them inside a transaction.
func TestMariaDBDatabaseDroppedAtCleanup(t *testing.T) {
	var name, user string
	var server *MySQLServer
	t.Run("user", func(t *testing.T) {
		db := MariaDB(t)
		name, user, server = db.Name, db.User, db.Server
		ctx := context.Background()
		conn, err := deskhookConn(t, db).Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "SELECT * FROM tickets"); err != nil { // holds a metadata lock
			t.Fatal(err)
		}
		db.Pool(t).PingContext(ctx)
		// conn deliberately left open.
	})
	admin, err := sql.Open("mysql", server.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	admin.QueryRow("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if n != 0 {
		t.Errorf("database %s still exists after its test", name)
	}
	admin.QueryRow("SELECT count(*) FROM mysql.user WHERE User = ?", user).Scan(&n)
	if n != 0 {
		t.Errorf("account %s still exists after its test", user)
	}
}

// With DESKHOOK_TEST_MYSQL_DSN set, each test gets a fresh database and
// account on that server.
func TestMySQLDSNEnvMode(t *testing.T) {
	// Not parallel: DESKHOOK_TEST_MYSQL_DSN is process-wide.
	s, err := StartMariaDB(context.Background(), NoFsync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	t.Setenv(MySQLDSNEnv, s.DSN(""))
	var names []string
	for i := 0; i < 2; i++ {
		t.Run("", func(t *testing.T) {
			db := MariaDB(t)
			if db.Server.external == nil || db.Server.Port != s.Port {
				t.Fatalf("database on %s:%d, want the DSN's server on port %d", db.Server.Host, db.Server.Port, s.Port)
			}
			if err := db.Server.Stop(context.Background()); err == nil {
				t.Error("Stop on the DSN's server succeeded")
			}
			var n int
			pool := db.Pool(t)
			if err := pool.QueryRow("SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 0 {
				t.Fatalf("fresh database has %d audit_log rows (%v)", n, err)
			}
			var current string
			if err := deskhookConn(t, db).QueryRow("SELECT DATABASE()").Scan(&current); err != nil || current != db.Name {
				t.Errorf("deskhook DSN leads to %q (%v), want %q", current, err, db.Name)
			}
			names = append(names, db.Name)
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("databases %v, want two distinct", names)
	}
	admin, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var left int
	admin.QueryRow("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, ?)", names[0], names[1]).Scan(&left)
	if left != 0 {
		t.Errorf("%d test databases left on the DSN server", left)
	}
}

func TestMissingMariaDBSaysWhatToInstall(t *testing.T) {
	fake := func(version string) string {
		dir := t.TempDir()
		for _, prog := range []string{"mariadbd", "mariadb-install-db"} {
			script := "#!/bin/sh\necho '" + prog + "  Ver " + version + "'\n"
			if err := os.WriteFile(filepath.Join(dir, prog), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	old, mysqlD, noInstall := fake("10.4.32-MariaDB for Linux"), fake("8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"), t.TempDir()
	if err := os.Symlink(filepath.Join(fake("10.11.6-MariaDB"), "mariadbd"), filepath.Join(noInstall, "mariadbd")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		dirs []string
		want []string
	}{
		{"none", []string{t.TempDir()}, []string{"no mariadbd (MariaDB 10.5 or newer) and no mariadb-install-db", "apt-get install mariadb-server", "make test"}},
		{"too old", []string{old}, []string{"not usable: " + old + "/mariadbd (10.4.32-MariaDB", "apt-get install mariadb-server"}},
		{"MySQL", []string{mysqlD}, []string{"not MariaDB", "apt-get install mariadb-server"}},
		{"no install script", []string{noInstall}, []string{"no mariadb-install-db found", "apt-get install mariadb-server"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartMariaDB(context.Background(), withSearchPath(tt.dirs...))
			if err == nil {
				t.Fatal("StartMariaDB without binaries succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// MariaDB fails the test with the same message, never skips.
			checkFailsNotSkips(t, func(tb testing.TB) { MariaDB(tb, withSearchPath(tt.dirs...)) }, tt.want[0])
		})
	}
	if _, err := findMariaDB(defaultMariaDBSearchPath()); err != nil {
		t.Fatalf("default search: %v", err)
	}
}

// A server that will not start says why, quoting its log.
func TestMariaDBStartFailureShowsServerLog(t *testing.T) {
	t.Parallel()
	_, err := StartMariaDB(context.Background(), WithSettings(map[string]string{"binlog_format": "BOGUS"}))
	if err == nil {
		t.Fatal("server with binlog_format=BOGUS started")
	}
	for _, w := range []string{"Error while setting value 'BOGUS' to 'binlog_format'", "server.log", "did not start"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// Parallel tests each get a database of their own from the shared server.
func TestMariaDBParallelTestsGetOwnDatabases(t *testing.T) {
	var mu sync.Mutex
	names := map[string]bool{}
	for i := 0; i < 4; i++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			db := MariaDB(t, NoFsync())
			db.Exec(t, "INSERT INTO audit_log (message) VALUES (?)", db.Name)
			var n int
			if err := db.Pool(t).QueryRow("SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
				t.Errorf("audit_log rows %d (%v), want 1", n, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if names[db.Name] {
				t.Errorf("database %s given twice", db.Name)
			}
			names[db.Name] = true
		})
	}
}

// SocketDSN reaches the database through the server's Unix-domain socket.
func TestMariaDBSocketDSN(t *testing.T) {
	var opts []Option
	if os.Getenv(MySQLDSNEnv) != "" {
		opts = append(opts, Dedicated()) // the external server has no socket of ours
	}
	db := MariaDB(t, opts...)
	dsn, err := db.SocketDSN()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var name, host string
	err = conn.QueryRow("SELECT DATABASE(), HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()").Scan(&name, &host)
	if err != nil {
		t.Fatal(err)
	}
	if name != db.Name || host != "localhost" {
		t.Errorf("through %s: database %q (want %q), client host %q (want localhost: the socket)", dsn, name, db.Name, host)
	}
	if _, err := (&MySQLServer{external: mysql.NewConfig()}).SocketDSN("y"); err == nil {
		t.Error("an external server gave a socket DSN")
	}
}

// The session OpenFaveoMySQL opens is Faveo's Laravel session.
func TestOpenFaveoMySQLSession(t *testing.T) {
	db := MariaDB(t)
	pool := db.Pool(t)
	var mode, charset, tz string
	err := pool.QueryRow("SELECT @@SESSION.sql_mode, @@SESSION.character_set_connection, @@SESSION.time_zone").Scan(&mode, &charset, &tz)
	if err != nil {
		t.Fatal(err)
	}
	if mode != "NO_ENGINE_SUBSTITUTION" || charset != "utf8mb4" || tz != "SYSTEM" {
		t.Errorf("session sql_mode %q, character set %q, time zone %q; want NO_ENGINE_SUBSTITUTION, utf8mb4, SYSTEM", mode, charset, tz)
	}
	if _, err := OpenFaveoMySQL("not a dsn"); err == nil {
		t.Error("OpenFaveoMySQL took a bad DSN")
	}
}

// mariadbHelper is TestHelperProcess acting as a test process that uses
// MariaDB.
func mariadbHelper(t *testing.T, mode string) {
	db := MariaDB(t)
	db.Exec(t, "INSERT INTO audit_log (message) VALUES (?)", mode)
	var n int
	if err := db.Pool(t).QueryRow("SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
		t.Fatalf("audit_log has %d rows (%v), want only this process's one", n, err)
	}
	fmt.Printf("HELPER db=%s port=%d dir=%s\n", db.Name, db.Server.Port, db.Server.dir)
	if strings.HasSuffix(mode, "panic") {
		panic("helper panics on purpose")
	}
}

// Two test processes started together each get their own MariaDB; they
// build the per-machine cache once between them; their servers stop and
// vanish when they exit, also when a test panics.
func TestMariaDBParallelProcesses(t *testing.T) {
	t.Parallel()
	tmp, err := os.MkdirTemp("", "deskhook-parallel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o711); err != nil { // the server user must get through
		t.Fatal(err)
	}
	results := make([]helperResult, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runHelper(t, tmp, fmt.Sprintf("mariadb-%d", i))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.db == "" || !strings.HasPrefix(r.dir, tmp) {
			t.Fatalf("helper %d (server in %s, want under %s): %v\n%s", i, r.dir, tmp, r.err, r.out)
		}
	}
	if a, b := results[0], results[1]; a.port == b.port || a.dir == b.dir {
		t.Errorf("helpers share a server: %+v / %+v", a, b)
	}
	entries, _ := filepath.Glob(filepath.Join(tmp, "deskhook-testenv-*", "mariadb*"))
	if len(entries) != 1 {
		t.Errorf("cache entries %v, want exactly one built between the two processes", entries)
	}
	panicked := runHelper(t, tmp, "mariadb-panic")
	if panicked.err == nil || !strings.Contains(panicked.out, "helper panics on purpose") || panicked.dir == "" {
		t.Fatalf("panicking helper: %v\n%s", panicked.err, panicked.out)
	}
	for _, r := range append(results, panicked) {
		waitGone(t, r.dir)
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+r.port, time.Second); err == nil {
			conn.Close()
			t.Errorf("port %s still accepts connections after its process exited", r.port)
		}
	}
}

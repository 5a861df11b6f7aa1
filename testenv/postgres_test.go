package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

func TestPostgresGivesSeededDatabase(t *testing.T) {
	start := time.Now()
	db := Postgres(t)
	t.Logf("first database after %v", time.Since(start))
	pool := db.Pool(t)
	ctx := context.Background()

	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM ticket_status").Scan(&n); err != nil {
		t.Fatal(err)
	}
	checkSeededStatuses(t, n, func(id int64, name *string, purpose *int64) error {
		return pool.QueryRow(ctx, "SELECT name, purpose_of_status FROM ticket_status WHERE id = $1", id).Scan(name, purpose)
	})

	start = time.Now()
	db2 := Postgres(t)
	t.Logf("second database after %v", time.Since(start))
	if db2.Name == db.Name {
		t.Fatalf("two calls gave the same database %s", db.Name)
	}
	if db2.Server != db.Server {
		t.Errorf("second database on another server; want the shared one")
	}
	// Separate databases: a write to one is not in the other.
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('only in the first')")
	if err := db2.Pool(t).QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("second database sees %d audit_log rows of the first", n)
	}
}

// checkSeededStatuses: the n statuses are those of StatusIDs, each with
// its StatusPurpose; read fetches one.
func checkSeededStatuses(t *testing.T, n int, read func(id int64, name *string, purpose *int64) error) {
	t.Helper()
	if n != len(StatusIDs) {
		t.Errorf("ticket_status rows = %d, want %d", n, len(StatusIDs))
	}
	for name, id := range StatusIDs {
		var got string
		var purpose int64
		if err := read(id, &got, &purpose); err != nil {
			t.Fatalf("status %d: %v", id, err)
		}
		if got != name || purpose != StatusPurpose[id] {
			t.Errorf("status %d = %q purpose %d, want %q purpose %d", id, got, purpose, name, StatusPurpose[id])
		}
	}
}

func show(t *testing.T, db *DB, setting string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(context.Background(), "SELECT current_setting($1)", setting).Scan(&v); err != nil {
		t.Fatalf("%s: %v", setting, err)
	}
	return v
}

func TestServerSettings(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		want map[string]string
	}{
		{"shared", nil, map[string]string{
			"wal_level": "logical", "max_replication_slots": "64", "max_wal_senders": "64",
			"fsync": "on", "listen_addresses": "127.0.0.1", "TimeZone": "UTC",
		}},
		{"no fsync", []Option{NoFsync()}, map[string]string{"wal_level": "logical", "fsync": "off"}},
		{"settings", []Option{WithSettings(map[string]string{"wal_sender_timeout": "10s"})},
			map[string]string{"wal_level": "logical", "wal_sender_timeout": "10s", "fsync": "on"}},
		{"wal_level replica", []Option{WithSettings(map[string]string{"wal_level": "replica"})},
			map[string]string{"wal_level": "replica"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := Postgres(t, tt.opts...)
			for k, want := range tt.want {
				if got := show(t, db, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if os.Getenv(DSNEnv) == "" {
				if got := show(t, db, "unix_socket_directories"); got == "" || got != socketDir(db.Server.dir) {
					t.Errorf("unix_socket_directories = %q, want the cluster's own directory %q", got, db.Server.dir)
				}
			}
		})
	}
}

// The server never runs as root: PostgreSQL refuses to, so under root it
// runs as nobody.
func TestServerRunsUnprivileged(t *testing.T) {
	db := Postgres(t)
	pid := postmasterPID(t, db.Server)
	if uid, want := processUID(t, pid), expectedServerUID(); uid != want || uid == 0 {
		t.Errorf("postmaster %d runs as uid %d, want %d (never 0)", pid, uid, want)
	}
}

// processUID is the real uid process pid runs as.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	return -1
}

// expectedServerUID is the uid servers run as: this process's, or nobody's
// when this process is root.
func expectedServerUID() int {
	if os.Geteuid() == 0 {
		return serverUser().uid
	}
	return os.Geteuid()
}

func postmasterPID(t *testing.T, s *Server) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// A pgoutput slot can be created over ReplicationDSN and streams an insert.
func TestLogicalReplicationSlot(t *testing.T) {
	db := Postgres(t)
	db.Exec(t, "CREATE PUBLICATION deskhook_test FOR TABLE tickets")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	conn, err := pgconn.Connect(ctx, db.ReplicationDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if sys.DBName != db.Name {
		t.Errorf("replication connection is to database %q, want %q", sys.DBName, db.Name)
	}
	slot, err := pglogrepl.CreateReplicationSlot(ctx, conn, "deskhook_test_slot", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication})
	if err != nil {
		t.Fatalf("creating pgoutput slot: %v", err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, conn, slot.SlotName, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'deskhook_test'"},
	})
	if err != nil {
		t.Fatalf("START_REPLICATION: %v", err)
	}
	db.Exec(t, "INSERT INTO tickets (ticket_number, user_id) VALUES ('AAAA-0000-0001', $1)", ClientDave)

	relations := map[uint32]string{}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("waiting for the insert: %v", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok || len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			t.Fatal(err)
		}
		m, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pglogrepl.RelationMessage:
			relations[m.RelationID] = m.RelationName
		case *pglogrepl.InsertMessage:
			if relations[m.RelationID] != "tickets" {
				t.Fatalf("insert into relation %d (%q), want tickets", m.RelationID, relations[m.RelationID])
			}
			if got := string(m.Tuple.Columns[1].Data); got != "AAAA-0000-0001" {
				t.Errorf("inserted ticket_number = %q", got)
			}
			return
		}
	}
}

func TestDedicatedStopStartRestart(t *testing.T) {
	t.Parallel()
	db := Postgres(t, Dedicated(), NoFsync())
	s := db.Server
	ctx := context.Background()
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ('kept')")

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, db.DSN); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, db.DSN)
	if err != nil {
		t.Fatalf("after restart, same DSN: %v", err)
	}
	var msg string
	err = conn.QueryRow(ctx, "SELECT message FROM audit_log").Scan(&msg)
	conn.Close(ctx)
	if err != nil || msg != "kept" {
		t.Fatalf("data after restart: %q, %v", msg, err)
	}
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start: %v", err)
	}
	if tail := s.LogTail(); !strings.Contains(tail, "database system is ready to accept connections") ||
		!strings.HasPrefix(s.LogPath(), s.DataDir) {
		t.Errorf("log %s ends:\n%s", s.LogPath(), tail)
	}
}

func TestCloseRemovesEverything(t *testing.T) {
	t.Parallel()
	s, err := StartServer(context.Background(), NoFsync())
	if err != nil {
		t.Fatal(err)
	}
	checkCloseRemovesEverything(t, s, s.dir, postmasterPID(t, s))
}

// localServer is what Server and MySQLServer both offer.
type localServer interface {
	Start(context.Context) error
	Stop(context.Context) error
	Restart(context.Context) error
	Close() error
}

// checkCloseRemovesEverything closes s, which runs as pid in dir: the
// process and the directory are gone, and a second Close does nothing.
func checkCloseRemovesEverything(t *testing.T, s localServer, dir string, pid int) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server dir %s still there after Close: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Errorf("server process %d still running after Close", pid)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSharedServerRefusesStop(t *testing.T) {
	checkSharedServerRefuses(t, Postgres(t).Server)
}

func checkSharedServerRefuses(t *testing.T, s localServer) {
	t.Helper()
	ctx := context.Background()
	for name, err := range map[string]error{
		"Stop": s.Stop(ctx), "Start": s.Start(ctx), "Restart": s.Restart(ctx), "Close": s.Close(),
	} {
		if err == nil || !strings.Contains(err.Error(), "shared") {
			t.Errorf("%s on the shared server: %v, want a refusal", name, err)
		}
	}
}

func TestDatabaseDroppedAtCleanup(t *testing.T) {
	var name string
	var server *Server
	t.Run("user", func(t *testing.T) {
		db := Postgres(t)
		name, server = db.Name, db.Server
		// An open session and an active logical slot must not block the drop.
		pool := db.Pool(t)
		pool.Exec(context.Background(), "SELECT 1")
		ctx := context.Background()
		conn, err := pgconn.Connect(ctx, db.ReplicationDSN())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, "left_behind", "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication}); err != nil {
			t.Fatal(err)
		}
		db.Exec(t, "CREATE PUBLICATION p FOR ALL TABLES")
		err = pglogrepl.StartReplication(ctx, conn, "left_behind", 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names 'p'"}})
		if err != nil {
			t.Fatal(err)
		}
		// conn deliberately left open.
	})
	conn, err := pgx.Connect(context.Background(), server.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n)
	if n != 0 {
		t.Errorf("database %s still exists after its test", name)
	}
	conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots WHERE database = $1", name).Scan(&n)
	if n != 0 {
		t.Errorf("%d slots of %s left", n, name)
	}
}

// With DESKHOOK_TEST_DSN set, each test gets a fresh database on that server.
func TestDSNEnvMode(t *testing.T) {
	// Not parallel: DESKHOOK_TEST_DSN is process-wide.
	s, err := StartServer(context.Background(), NoFsync())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, dsn := range []string{
		s.DSN("postgres"),
		"host=127.0.0.1 port=" + strconv.Itoa(s.Port) + " user=postgres dbname=postgres sslmode=disable",
	} {
		t.Run("", func(t *testing.T) {
			t.Setenv(DSNEnv, dsn)
			var names []string
			for i := 0; i < 2; i++ {
				t.Run("", func(t *testing.T) {
					db := Postgres(t)
					if db.Server.external == "" || db.Server.Port != s.Port {
						t.Fatalf("database on %s:%d, want the DSN's server on port %d", db.Server.Host, db.Server.Port, s.Port)
					}
					var n int
					pool := db.Pool(t)
					if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 0 {
						t.Fatalf("fresh database has %d audit_log rows (%v)", n, err)
					}
					db.Exec(t, "INSERT INTO audit_log (message) VALUES ('x')")
					var current string
					pool.QueryRow(context.Background(), "SELECT current_database()").Scan(&current)
					if current != db.Name {
						t.Errorf("DSN leads to %q, want %q", current, db.Name)
					}
					repl, err := pgconn.Connect(context.Background(), db.ReplicationDSN())
					if err != nil {
						t.Fatalf("replication DSN %q: %v", db.ReplicationDSN(), err)
					}
					repl.Close(context.Background())
					names = append(names, db.Name)
				})
			}
			if len(names) != 2 || names[0] == names[1] {
				t.Fatalf("databases %v, want two distinct", names)
			}
			conn, err := pgx.Connect(context.Background(), s.DSN("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var left int
			conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left)
			if left != 0 {
				t.Errorf("%d test databases left on the DSN server", left)
			}
		})
	}
}

func TestDSNRewriting(t *testing.T) {
	tests := []struct{ in, db, wantDB, wantRepl string }{
		{"postgres://u:p@h:5/old?sslmode=disable", "new",
			"postgres://u:p@h:5/new?sslmode=disable", "postgres://u:p@h:5/old?replication=database&sslmode=disable"},
		{"postgresql://h/", "x y", "postgresql://h/x%20y", "postgresql://h/?replication=database"},
		{"host=h dbname=old user=u", "new", "host=h dbname='new' user=u", "host=h dbname=old user=u replication=database"},
		{"host=h dbname='o ld' user=u", "n'ew", `host=h dbname='n\'ew' user=u`, "host=h dbname='o ld' user=u replication=database"},
		{"host=h", "new", "host=h dbname='new'", "host=h replication=database"},
	}
	for _, tt := range tests {
		if got := withDatabase(tt.in, tt.db); got != tt.wantDB {
			t.Errorf("withDatabase(%q, %q) = %q, want %q", tt.in, tt.db, got, tt.wantDB)
		}
		if got := withParam(tt.in, "replication", "database"); got != tt.wantRepl {
			t.Errorf("withParam(%q) = %q, want %q", tt.in, got, tt.wantRepl)
		}
	}
}

func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	empty := t.TempDir()
	old := t.TempDir()
	for _, prog := range []string{"postgres", "initdb"} {
		script := "#!/bin/sh\necho '" + prog + " (PostgreSQL) 13.9'\n"
		if err := os.WriteFile(filepath.Join(old, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		dirs []string
		want []string
	}{
		{"none", []string{empty}, []string{"no PostgreSQL server binaries", "apt-get install postgresql", "make test"}},
		{"too old", []string{old}, []string{"version 14 or newer", "too old: " + old + " (13.9)", "apt-get install postgresql"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := StartServer(context.Background(), withSearchPath(tt.dirs...))
			if err == nil {
				t.Fatal("StartServer without binaries succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// Postgres fails the test with the same message, never skips.
			checkFailsNotSkips(t, func(tb testing.TB) { Postgres(tb, withSearchPath(tt.dirs...)) }, tt.want[0])
		})
	}
	b, err := findBinaries(defaultSearchPath())
	if err != nil {
		t.Fatalf("default search: %v", err)
	}
	if b.major < minMajorVersion {
		t.Errorf("found %d", b.major)
	}
}

// checkFailsNotSkips runs get, which is to fail its test saying want.
func checkFailsNotSkips(t *testing.T, get func(testing.TB), want string) {
	t.Helper()
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(ft)
	}()
	<-done
	if ft.skipped || !strings.Contains(ft.fatal, want) {
		t.Errorf("fatal %q (skipped %v), want a failure saying %q", ft.fatal, ft.skipped, want)
	}
}

// fatalTB records Fatal instead of failing the real test.
type fatalTB struct {
	testing.TB
	fatal   string
	skipped bool
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fatalTB) Skip(...any)           { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) Skipf(string, ...any)  { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) SkipNow()              { f.skipped = true; runtime.Goexit() }
func (f *fatalTB) Cleanup(func())        {}
func (f *fatalTB) Errorf(string, ...any) {}

// Parallel tests each get a database of their own from the shared cluster.
func TestParallelTestsGetOwnDatabases(t *testing.T) {
	var mu sync.Mutex
	names := map[string]bool{}
	for i := 0; i < 6; i++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			db := Postgres(t)
			db.Exec(t, "INSERT INTO audit_log (message) VALUES ($1)", db.Name)
			var n int
			if err := db.Pool(t).QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
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

// A server that will not start says why, quoting its log.
func TestStartFailureShowsServerLog(t *testing.T) {
	t.Parallel()
	_, err := StartServer(context.Background(), WithSettings(map[string]string{"wal_level": "bogus"}))
	if err == nil {
		t.Fatal("server with wal_level=bogus started")
	}
	for _, w := range []string{`invalid value for parameter "wal_level": "bogus"`, "server.log", "did not start"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

// Under root the server runs as nobody, which must reach the temp dir.
func TestUnreachableTempDir(t *testing.T) {
	dir, err := os.MkdirTemp("", "deskhook-reach-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	inner := filepath.Join(dir, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	nobody := osUser{uid: 65534, gid: 65534, switchTo: true}
	err = reachable(inner, nobody)
	if err == nil || !strings.Contains(err.Error(), dir+" has mode -rwx------") || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("reachable(%s) = %v", inner, err)
	}
	os.Chmod(dir, 0o711)
	if err := reachable(inner, nobody); err != nil {
		t.Errorf("after chmod 711: %v", err)
	}
	if err := reachable(inner, osUser{}); err != nil {
		t.Errorf("without switching users: %v", err)
	}
}

// TestSocketDSN connects through the cluster's Unix-domain socket, for
// queries and for logical replication, as the benchmark does.
func TestSocketDSN(t *testing.T) {
	var opts []Option
	if os.Getenv(DSNEnv) != "" {
		opts = append(opts, Dedicated()) // the external server has no socket of ours
	}
	db := Postgres(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := db.SocketDSN()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting through %s: %v", dsn, err)
	}
	var name string
	var viaSocket bool
	err = conn.QueryRow(ctx, "SELECT current_database(), inet_server_addr() IS NULL").Scan(&name, &viaSocket)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if name != db.Name || !viaSocket {
		t.Errorf("through %s: database %q (want %q), Unix-domain socket %v (want true)", dsn, name, db.Name, viaSocket)
	}

	repl, err := pgconn.Connect(ctx, withParam(dsn, "replication", "database"))
	if err != nil {
		t.Fatalf("replication connection through the socket: %v", err)
	}
	defer repl.Close(context.Background())
	if sys, err := pglogrepl.IdentifySystem(ctx, repl); err != nil || sys.DBName != db.Name {
		t.Errorf("IDENTIFY_SYSTEM through the socket: %+v, %v", sys, err)
	}

	if _, err := (&Server{external: "postgres://x/y"}).SocketDSN("y"); err == nil {
		t.Error("an external server gave a socket DSN")
	}
}

// TestSocketDSNQuoting: a temporary directory with spaces or quotes and a
// database name with quotes and backslashes survive the key=value
// connection string; directories that cannot hold a socket give none.
func TestSocketDSNQuoting(t *testing.T) {
	for _, dir := range []string{"/tmp/plain", "/tmp/with space", `/tmp/it's`} {
		s := &Server{dir: dir, Port: 5432, settings: serverSettings(options{}, socketDir(dir))}
		const db = `d'b \ x`
		dsn, err := s.SocketDSN(db)
		if err != nil {
			t.Fatalf("%q: %v", dir, err)
		}
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			t.Fatalf("%q: %s does not parse: %v", dir, dsn, err)
		}
		if cfg.Host != dir || cfg.Port != 5432 || cfg.Database != db || cfg.User != superuser {
			t.Errorf("%q: %s reads as host %q port %d database %q user %q", dir, dsn, cfg.Host, cfg.Port, cfg.Database, cfg.User)
		}
	}
	for _, dir := range []string{"/tmp/" + strings.Repeat("d", 100), "/tmp/a,b", `/tmp/back\slash`} {
		if got := socketDir(dir); got != "" {
			t.Errorf("socketDir(%q) = %q, want none", dir, got)
		}
		s := &Server{dir: dir, settings: serverSettings(options{}, socketDir(dir))}
		if _, err := s.SocketDSN("x"); err == nil {
			t.Errorf("%q: a socket DSN for a cluster without a socket", dir)
		}
	}
	moved := &Server{dir: "/tmp/own", settings: serverSettings(options{settings: map[string]string{"unix_socket_directories": "/elsewhere"}}, "/tmp/own")}
	if _, err := moved.SocketDSN("x"); err == nil || !strings.Contains(err.Error(), "/elsewhere") {
		t.Errorf("socket moved by the caller's settings: %v", err)
	}
}

package testenv

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"testing"
	"time"
)

// MySQLDSNEnv names the environment variable that points tests at an
// existing MySQL or MariaDB server: a go-sql-driver DSN
// (user:pass@tcp(host:3306)/) of an account that may create databases and
// accounts and grant replication privileges, such as root. Each test then
// gets a fresh database and deskhook account there. The server must log
// its binlog as deskhook needs (log_bin, binlog_format=ROW,
// binlog_row_image=FULL, binlog_row_metadata=FULL).
const MySQLDSNEnv = "DESKHOOK_TEST_MYSQL_DSN"

// MySQLDB is a MySQL/MariaDB database holding Faveo's schema and seed rows.
type MySQLDB struct {
	Server *MySQLServer
	Name   string // database name
	DSN    string // go-sql-driver DSN of this database as the administrator

	// User and Password are the account deskhook connects as: REPLICATION
	// SLAVE and REPLICATION CLIENT (on MariaDB also BINLOG MONITOR) on the
	// server, SELECT on this database; DeskhookDSN is this database as it.
	User, Password string
	DeskhookDSN    string

	mu   sync.Mutex
	exec *sql.DB // for Exec; closed at cleanup
}

// MariaDB returns a fresh database holding Faveo's MySQL schema and seed
// rows, on a MariaDB shared by the test process (or on the server named by
// DESKHOOK_TEST_MYSQL_DSN, each test in a fresh database of its own). The
// database and its account are dropped at cleanup, also when the test
// fails or panics. A failure to provide one fails the test, saying what is
// missing; it never skips. Options as for Postgres; WithSettings sets
// options of the server's my.cnf.
func MariaDB(t testing.TB, opts ...Option) *MySQLDB {
	t.Helper()
	o := collectOptions(opts)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	var srv *MySQLServer
	switch dsn := os.Getenv(MySQLDSNEnv); {
	case o.dedicated:
		s, err := startLocalMariaDB(ctx, o)
		if err != nil {
			t.Fatalf("testenv.MariaDB: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("testenv: closing server: %v", err)
			}
		})
		srv = s
	case dsn != "":
		s, err := externalMySQL(dsn)
		if err != nil {
			t.Fatalf("testenv.MariaDB: %s: %v", MySQLDSNEnv, err)
		}
		srv = s
	default:
		s, err := sharedMariaDB(o.noFsync)
		if err != nil {
			t.Fatalf("testenv.MariaDB: %v", err)
		}
		srv = s
	}

	db, err := srv.CreateDatabase(ctx, databaseName(t))
	if err != nil {
		t.Fatalf("testenv.MariaDB: %v", err)
	}
	t.Cleanup(func() {
		db.closeExec()
		if o.dedicated {
			return // the whole server goes
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, db.Name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return db
}

// SocketDSN is DSN through the server's Unix-domain socket.
func (d *MySQLDB) SocketDSN() (string, error) { return d.Server.SocketDSN(d.Name) }

// Pool opens a connection pool to the database as the administrator, in the
// session Faveo opens (see OpenFaveoMySQL); it is closed at cleanup.
func (d *MySQLDB) Pool(t testing.TB) *sql.DB {
	t.Helper()
	db, err := OpenFaveoMySQL(d.DSN)
	if err != nil {
		t.Fatalf("testenv: pool for %s: %v", d.Name, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Exec runs query (several statements if there are no args) in Faveo's
// session and fails the test on error.
func (d *MySQLDB) Exec(t testing.TB, query string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := d.execDB()
	if err == nil {
		_, err = db.ExecContext(ctx, query, args...)
	}
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v\n%s", d.Name, err, query)
	}
}

func (d *MySQLDB) execDB() (*sql.DB, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exec != nil {
		return d.exec, nil
	}
	db, err := d.Server.openAdmin(d.Name)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	d.exec = db
	return db, nil
}

func (d *MySQLDB) closeExec() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exec != nil {
		d.exec.Close()
		d.exec = nil
	}
}

// The process-wide MariaDB servers, one with fsync and one without,
// started on first use and stopped by their reaper when the process exits.
var (
	sharedMariaDBMu      sync.Mutex
	sharedMariaDBServers = map[bool]*sharedMariaDBServer{}
)

type sharedMariaDBServer struct {
	once sync.Once
	srv  *MySQLServer
	err  error
}

func sharedMariaDB(noFsync bool) (*MySQLServer, error) {
	sharedMariaDBMu.Lock()
	c := sharedMariaDBServers[noFsync]
	if c == nil {
		c = &sharedMariaDBServer{}
		sharedMariaDBServers[noFsync] = c
	}
	sharedMariaDBMu.Unlock()
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		c.srv, c.err = startLocalMariaDB(ctx, options{noFsync: noFsync})
		if c.err == nil {
			c.srv.shared = true
		}
	})
	return c.srv, c.err
}

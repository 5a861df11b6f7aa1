package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DSNEnv names the environment variable that points tests at an existing
// server (a postgres:// URL or key=value DSN of a superuser or a role with
// CREATEDB and REPLICATION). Each test then gets a fresh database there.
const DSNEnv = "DESKHOOK_TEST_DSN"

// setupTimeout bounds starting a cluster and creating a database.
const setupTimeout = 2 * time.Minute

// Option changes what Postgres and StartServer provide.
type Option func(*options)

type options struct {
	dedicated  bool
	settings   map[string]string
	noFsync    bool
	searchPath []string // where to look for binaries; nil: the default places
}

func collectOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Dedicated gives the test a cluster of its own, stopped and removed at
// cleanup. Tests that stop, restart or reconfigure the server need one; the
// shared cluster refuses Stop, Start and Close. Dedicated clusters are always
// local, also when DESKHOOK_TEST_DSN is set.
func Dedicated() Option { return func(o *options) { o.dedicated = true } }

// WithSettings sets postgresql.conf settings, e.g. {"wal_sender_timeout":
// "10s"} or {"wal_level": "replica"}, overriding testenv's; for MariaDB, the
// server's options (my.cnf), e.g. {"binlog_format": "MIXED"}, where an empty
// value removes one of testenv's ({"log_bin": ""}: no binlog). It implies
// Dedicated.
func WithSettings(settings map[string]string) Option {
	return func(o *options) {
		o.dedicated = true
		if o.settings == nil {
			o.settings = map[string]string{}
		}
		for k, v := range settings {
			o.settings[k] = v
		}
	}
}

// NoFsync runs the cluster with fsync=off (and full_page_writes=off) for
// speed; data survives a server restart but not a machine crash. Without it
// fsync is on, as in production. Shared clusters with and without fsync are
// distinct.
func NoFsync() Option { return func(o *options) { o.noFsync = true } }

// withSearchPath looks for the server binaries only in dirs (tests of the
// lookup). It implies Dedicated.
func withSearchPath(dirs ...string) Option {
	return func(o *options) {
		o.dedicated = true
		o.searchPath = append([]string{}, dirs...)
	}
}

// DB is a database holding Faveo's schema and seed rows.
type DB struct {
	Server *Server
	Name   string // database name
	DSN    string // postgres:// URL (or key=value DSN) to this database as a superuser

	mu   sync.Mutex
	pool *pgxpool.Pool // for Exec; closed at cleanup
}

// Postgres returns a fresh database holding the Faveo schema and seed rows,
// on a cluster shared by the test process (or on the server named by
// DESKHOOK_TEST_DSN, each test in a fresh database of its own). The database
// is dropped at cleanup, also when the test fails or panics. A failure to
// provide one fails the test, saying what is missing; it never skips.
func Postgres(t testing.TB, opts ...Option) *DB {
	t.Helper()
	o := collectOptions(opts)
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	var srv *Server
	switch dsn := os.Getenv(DSNEnv); {
	case o.dedicated:
		s, err := startLocal(ctx, o)
		if err != nil {
			t.Fatalf("testenv.Postgres: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("testenv: closing server: %v", err)
			}
		})
		srv = s
	case dsn != "":
		s, err := externalServer(dsn)
		if err != nil {
			t.Fatalf("testenv.Postgres: %s: %v", DSNEnv, err)
		}
		srv = s
	default:
		s, err := sharedServer(o.noFsync)
		if err != nil {
			t.Fatalf("testenv.Postgres: %v", err)
		}
		srv = s
	}

	db, err := srv.CreateDatabase(ctx, databaseName(t))
	if err != nil {
		t.Fatalf("testenv.Postgres: %v", err)
	}
	t.Cleanup(func() {
		db.closePool()
		if o.dedicated {
			return // the whole cluster goes
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, db.Name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return db
}

// ReplicationDSN is DSN plus replication=database, for a logical
// replication connection to this database.
func (d *DB) ReplicationDSN() string { return withParam(d.DSN, "replication", "database") }

// SocketDSN is DSN through the cluster's Unix-domain socket (see
// Server.SocketDSN).
func (d *DB) SocketDSN() (string, error) { return d.Server.SocketDSN(d.Name) }

// Pool opens a connection pool to the database, closed at cleanup.
func (d *DB) Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, d.DSN)
	if err != nil {
		t.Fatalf("testenv: pool for %s: %v", d.Name, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Exec runs sql (several statements if there are no args) and fails the
// test on error.
func (d *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := d.execPool(ctx)
	if err == nil {
		_, err = pool.Exec(ctx, sql, args...)
	}
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v\n%s", d.Name, err, sql)
	}
}

func (d *DB) execPool(ctx context.Context) (*pgxpool.Pool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pool != nil {
		return d.pool, nil
	}
	cfg, err := pgxpool.ParseConfig(d.DSN)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2
	d.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	return d.pool, err
}

func (d *DB) closePool() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pool != nil {
		d.pool.Close()
		d.pool = nil
	}
}

// The process-wide clusters, one with fsync and one without, started on
// first use and stopped by their reaper when the process exits.
var (
	sharedMu       sync.Mutex
	sharedClusters = map[bool]*sharedCluster{}
)

type sharedCluster struct {
	once sync.Once
	srv  *Server
	err  error
}

func sharedServer(noFsync bool) (*Server, error) {
	sharedMu.Lock()
	c := sharedClusters[noFsync]
	if c == nil {
		c = &sharedCluster{}
		sharedClusters[noFsync] = c
	}
	sharedMu.Unlock()
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		c.srv, c.err = startLocal(ctx, options{noFsync: noFsync})
		if c.err == nil {
			c.srv.shared = true
		}
	})
	return c.srv, c.err
}

// Unique database names: the test's name (readable in pg_stat_activity and
// logs), a per-process random part (processes share DESKHOOK_TEST_DSN
// servers), and a counter.
var (
	dbSeq atomic.Int64
	runID = func() string {
		b := make([]byte, 4)
		rand.Read(b)
		return hex.EncodeToString(b)
	}()
)

func databaseName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 32 {
			break
		}
	}
	return fmt.Sprintf("t_%s_%s_%d", b.String(), runID, dbSeq.Add(1))
}

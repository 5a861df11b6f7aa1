package main

// The end-to-end harness for a MySQL/MariaDB source: the same world as
// newE2E's (a receiver, a config file, a store, an admin port), with a
// fresh database on testenv's MariaDB instead of PostgreSQL.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// newMySQLE2E sets up a world on a MariaDB database (on the test process's
// shared server unless opts ask for another) whose config has one
// endpoint, "rcv", pointing at the receiver with a short retry schedule.
func newMySQLE2E(t testing.TB, opts ...testenv.Option) *e2e {
	t.Helper()
	deskhookBinary(t)
	if len(opts) == 0 {
		opts = []testenv.Option{testenv.NoFsync()}
	}
	e := &e2e{t: t, my: testenv.MariaDB(t, opts...), rcv: testenv.NewReceiver(t), dir: t.TempDir()}
	e.cfgPath = filepath.Join(e.dir, "deskhook.yaml")
	e.admin = freePort(t)
	e.slot = fmt.Sprintf("e2e_%d_%d", os.Getpid(), slotSeq.Add(1))
	// slot only names deskhook among the replicas: a unique one gives each
	// test's daemon its own server_id.
	e.cfg = e.config(map[string]any{"type": "mysql", "dsn": e.my.DeskhookDSN, "slot": e.slot, "heartbeat": "1s",
		"reconnect_min": "50ms", "reconnect_max": "1s", "progress_interval": "1s"}, "info")
	e.writeConfig()
	return e
}

// pool is the MariaDB database as its administrator, in Faveo's session.
func (e *e2e) pool() *sql.DB { return e.my.Pool(e.t) }

// loadMySQL runs testenv.LoadMySQL against the test database.
func (e *e2e) loadMySQL(ctx context.Context, cfg testenv.LoadConfig) testenv.LoadResult {
	e.t.Helper()
	res, err := testenv.LoadMySQL(ctx, e.pool(), cfg)
	if err != nil {
		e.t.Fatalf("testenv.LoadMySQL: %v", err)
	}
	return res
}

// exec runs a statement as the administrator.
func (e *e2e) exec(query string) {
	e.t.Helper()
	e.my.Exec(e.t, query)
}

// gtid is the server's current binlog position (gtid_binlog_pos).
func (e *e2e) gtid() string {
	e.t.Helper()
	var s string
	if err := e.pool().QueryRowContext(context.Background(), "SELECT @@gtid_binlog_pos").Scan(&s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// killDump ends the server's binlog dump thread serving the daemon (its
// replica connection), as a DBA's KILL would, and returns its id.
func (e *e2e) killDump() int64 {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var id int64
		err := e.pool().QueryRowContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
			WHERE USER = ? AND COMMAND LIKE 'Binlog Dump%' ORDER BY ID DESC LIMIT 1`, e.my.User).Scan(&id)
		if err == nil {
			if _, err := e.pool().ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10)); err != nil {
				e.t.Fatalf("KILL %d: %v", id, err)
			}
			return id
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no binlog dump thread of %s: %v", e.my.User, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mysqlDeliverer returns a function that loads a little (two tickets and a
// reply each, from seed) and waits until it is delivered, on top of what
// was delivered before (which must be all there is to deliver).
func (e *e2e) mysqlDeliverer() func(seed int64) testenv.LoadResult {
	return func(seed int64) testenv.LoadResult {
		e.t.Helper()
		before := len(deliveredIDs(e.rcv.Requests()))
		load := e.loadMySQL(context.Background(), testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: seed})
		e.waitDelivered(before+load.TotalEvents(), 60*time.Second)
		return load
	}
}

package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deskhook/deskhook/testenv"
)

// TestReadyz: /readyz turns unready when the slot is dropped and when the
// database stops, and ready again after each recovery (setup --accept-gap
// re-creates the slot; the server starts again); deliveries resume.
func TestReadyz(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testenv.Dedicated(), testenv.NoFsync())
	e.setup()
	d := e.start()
	ctx := context.Background()
	deliver := e.deliverer()
	deliver(1)

	// The slot is dropped (by someone who first ends its walsender).
	dropSlot(t, e)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, `replication slot "`+e.slot+`" does not exist`)
	res := e.must("status")
	if !strings.Contains(res.stdout, "NOT READY") || !strings.Contains(res.stdout, "does not exist") {
		t.Errorf("status with the slot dropped:\n%s", res.stdout)
	}
	// Recovery: the operator accepts the gap; setup creates the slot again.
	e.must("setup", "--accept-gap")
	d.waitReadyz(http.StatusOK, 30*time.Second)
	deliver(2)

	// The database stops.
	if err := e.db.Server.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Not only "not connected": why.
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "replication stream: ",
		"connection refused (connecting to 127.0.0.1")
	if code, _, err := d.get("/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz with the database down: %d %v (the process is alive)", code, err)
	}
	if res := e.run("status"); res.code != 0 || !strings.Contains(res.stdout, "NOT READY") {
		t.Errorf("status with the database down: %s", res)
	}
	if err := e.db.Server.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d.waitReadyz(http.StatusOK, 60*time.Second)
	deliver(3)
}

// dropSlot ends the walsender reading the test's slot and drops the slot;
// the daemon reconnects at once, so it loops until the drop wins.
func dropSlot(t *testing.T, e *e2e) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE slot_name = $1 AND active_pid IS NOT NULL`, e.slot)
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, e.slot)
			if err == nil {
				return
			}
		}
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "55006" { // 55006: slot active
			t.Fatalf("dropping slot %s: %v", e.slot, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

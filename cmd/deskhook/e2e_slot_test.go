package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// deliverer returns a function that loads a little (two tickets and a
// reply each, from seed) and waits until everything it loaded so far is
// delivered.
func (e *e2e) deliverer() func(seed int64) {
	delivered := 0
	return func(seed int64) {
		e.t.Helper()
		load := e.load(context.Background(), testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: seed})
		delivered += load.TotalEvents()
		e.waitDelivered(delivered, 60*time.Second)
	}
}

// slotLSN is the slot's confirmed position as PostgreSQL prints it, "" when
// it does not exist.
func slotLSN(t *testing.T, e *e2e) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var lsn string
	err := e.db.Pool(t).QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
		e.slot).Scan(&lsn)
	if err == pgx.ErrNoRows {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// errorLines are the daemon's ERROR log lines that contain s.
func errorLines(p *daemonProc, s string) []string {
	var out []string
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// TestLostSlotNeverReplacedSilently: with auto_setup on, a fresh store gets
// its slot; once it has streamed, a slot dropped while the daemon runs is
// not re-created: one ERROR naming the stored position, /readyz 503,
// `check` FAIL, plain `setup` refuses. `setup --accept-gap`, run while the
// daemon holds the store, creates the slot and records the gap, which
// `status` shows; delivery resumes. A slot re-created by someone else with
// the same name while the daemon is stopped is refused likewise, naming
// both positions.
func TestLostSlotNeverReplacedSilently(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("source")["auto_setup"] = true
	e.writeConfig()
	d := e.start() // no setup: auto_setup makes the slot of a store that never streamed
	if slotLSN(t, e) == "" {
		t.Fatal("auto_setup did not create the slot for a fresh store")
	}
	ctx := context.Background()
	deliver := e.deliverer()
	deliver(1)
	stored := statusJSON(t, e.must("status", "--json")).Outbox.Position

	// Dropped while the daemon runs.
	dropSlot(t, e)
	body := d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "does not exist", stored, "--accept-gap")
	lost := e.load(ctx, testenv.LoadConfig{Tickets: 1, Seed: 2}) // committed while there is no slot: lost
	waitRestarts(t, d, 3)
	st := statusJSON(t, e.must("status", "--json")) // the stream is down: the store's end stays put
	from := storeEnd(t, st)
	if lsn := slotLSN(t, e); lsn != "" {
		t.Fatalf("the daemon re-created the slot at %s (auto_setup on a store that has streamed); /readyz said:\n%s", lsn, body)
	}
	if lines := errorLines(d, "does not exist, but the store holds changes up to "+stored); len(lines) != 1 {
		t.Errorf("want one ERROR line naming the stored position %s, got %d:\n%s", stored, len(lines), d.stderr.String())
	}
	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  slot `+e.slot+` position: .*does not exist.*`+stored).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "fix: deskhook setup --accept-gap") {
		t.Errorf("check with the slot dropped: %s", res)
	}
	if strings.Count(res.stdout, "FAIL") != 1 {
		t.Errorf("check reports the dropped slot more than once:\n%s", res.stdout)
	}
	if res := e.run("setup"); res.code != 1 || !strings.Contains(res.stderr, "--accept-gap") || slotLSN(t, e) != "" {
		t.Errorf("setup without --accept-gap: want exit 1 pointing at --accept-gap, no slot; %s", res)
	}

	// Accepted while the daemon runs (it holds the store).
	res = e.must("setup", "--accept-gap")
	at := slotLSN(t, e)
	for _, w := range []string{"created replication slot " + e.slot, "accepted a gap (slot missing): changes committed after " +
		from + " and before " + at + " are lost", "recorded the gap in store"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("setup --accept-gap does not say %q:\n%s", w, res.stdout)
		}
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	deliver(3)
	for _, a := range arrivals(e.rcv.Requests()) {
		if a.ticket == strconv.FormatInt(lost.Tickets[0].TicketID, 10) {
			t.Errorf("%s of ticket %s, created in the gap, was delivered: the test's premise is wrong", a.event, a.ticket)
		}
	}
	res = e.must("status")
	if !regexp.MustCompile(`gap\s+changes after ` + from + ` and before ` + at + ` are lost \(slot missing; accepted `).MatchString(res.stdout) {
		t.Errorf("status does not show the gap from %s to %s:\n%s", from, at, res.stdout)
	}
	st = statusJSON(t, e.must("status", "--json"))
	if g := st.Outbox.Gaps; len(g) != 1 || g[0].From != from || g[0].To != at || g[0].Reason != "slot missing" || g[0].At.IsZero() {
		t.Errorf("status --json gaps: %+v", g)
	}
	e.must("check")

	// Re-created by someone else while the daemon is stopped.
	d.stop()
	stored = statusJSON(t, e.must("status", "--json")).Outbox.Position
	e.db.Exec(t, "SELECT pg_drop_replication_slot($1)", e.slot)
	e.load(ctx, testenv.LoadConfig{Tickets: 1, Seed: 4})
	e.db.Exec(t, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", e.slot)
	ahead := slotLSN(t, e)
	d = startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "starts at "+ahead, stored)
	waitRestarts(t, d, 1)
	if lines := errorLines(d, "starts at "+ahead+", after the store's position: the store holds changes up to "+stored); len(lines) != 1 {
		t.Errorf("want one ERROR line naming the slot's position %s and the store's %s:\n%s", ahead, stored, d.stderr.String())
	}
	if res := e.run("check"); res.code != 1 || !strings.Contains(res.stdout, "starts at "+ahead) {
		t.Errorf("check with a re-created slot: %s", res)
	}
	if res := e.must("setup", "--accept-gap"); !strings.Contains(res.stdout, "accepted a gap (slot ahead of the store)") ||
		strings.Contains(res.stdout, "created replication slot") {
		t.Errorf("setup --accept-gap of a re-created slot: %s", res)
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	deliver(5)
	if g := statusJSON(t, e.must("status", "--json")).Outbox.Gaps; len(g) != 2 || g[1].To != ahead {
		t.Errorf("gaps after the second: %+v", g)
	}
	d.stop()
}

// TestInvalidatedSlot: a slot invalidated past max_slot_wal_keep_size while
// the daemon is down is refused at start (wal_status lost, both positions
// named); `setup --accept-gap` re-creates it and records the gap.
func TestInvalidatedSlot(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testenv.WithSettings(map[string]string{"max_slot_wal_keep_size": "1MB"}), testenv.NoFsync())
	e.setup()
	d := e.start()
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 1})
	e.waitDelivered(load.TotalEvents(), 60*time.Second)
	d.stop()
	stored := statusJSON(t, e.must("status", "--json")).Outbox.Position

	for range 3 {
		e.db.Exec(t, "INSERT INTO audit_log (message) SELECT repeat('x', 100) FROM generate_series(1, 50000)")
		e.db.Exec(t, "SELECT pg_switch_wal()")
	}
	e.db.Exec(t, "CHECKPOINT")
	var walStatus string
	if err := e.db.Pool(t).QueryRow(context.Background(), "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
		e.slot).Scan(&walStatus); err != nil || walStatus != "lost" {
		t.Fatalf("the slot's wal_status is %q (%v), want lost", walStatus, err)
	}
	old := slotLSN(t, e)

	d = startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "invalidated", old, stored, "--accept-gap")
	if res := e.run("check"); res.code != 1 || !strings.Contains(res.stdout, "invalidated") {
		t.Errorf("check with an invalidated slot: %s", res)
	}
	res := e.must("setup", "--accept-gap")
	if !strings.Contains(res.stdout, "dropped the invalidated replication slot") || !strings.Contains(res.stdout, "accepted a gap (slot invalidated)") {
		t.Errorf("setup --accept-gap: %s", res)
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	more := e.load(context.Background(), testenv.LoadConfig{Tickets: 1, Replies: 1, Seed: 2})
	e.waitDelivered(load.TotalEvents()+more.TotalEvents(), 60*time.Second)
	st := statusJSON(t, e.must("status", "--json"))
	if g := st.Outbox.Gaps; len(g) != 1 || g[0].Reason != "slot invalidated" || g[0].To != slotLSNAtGap(st) {
		t.Errorf("status --json gaps: %+v", g)
	}
	d.stop()
}

// storeEnd is where the store ends: the higher of its stored and confirmed
// positions.
func storeEnd(t *testing.T, st *daemon.Status) string {
	t.Helper()
	m, err := st.Outbox.Mark()
	if err != nil {
		t.Fatal(err)
	}
	return max(m.Stored, m.Confirmed).String()
}

// slotLSNAtGap is where the last gap ends.
func slotLSNAtGap(st *daemon.Status) string {
	if len(st.Outbox.Gaps) == 0 {
		return ""
	}
	return st.Outbox.Gaps[len(st.Outbox.Gaps)-1].To
}

// waitRestarts waits until the daemon has restarted its stream n more times
// (deskhook_stream_restarts_total), so a failure had its chances to repeat.
func waitRestarts(t *testing.T, d *daemonProc, n int) {
	waitCounter(t, d, "deskhook_stream_restarts_total", n)
}

// waitCounter waits until a counter of the daemon's /metrics rose by n.
func waitCounter(t *testing.T, d *daemonProc, name string, n int) {
	t.Helper()
	count := func() int {
		_, body, err := d.get("/metrics")
		if err != nil {
			return -1
		}
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.Atoi(m[1])
		return v
	}
	start := count()
	deadline := time.Now().Add(90 * time.Second)
	for count() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not rise by %d within 90s", name, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSlotHeldElsewhere: while another consumer streams from the slot,
// /readyz says so, naming its process, and the log says it once; once it
// lets go, the daemon streams.
func TestSlotHeldElsewhere(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("log")["level"] = "info"
	e.writeConfig()
	e.setup()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	other, err := pgconn.Connect(ctx, e.db.ReplicationDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if err := pglogrepl.StartReplication(ctx, other, e.slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'deskhook'"}}); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, e.cfgPath, e.admin)
	want := fmt.Sprintf(`replication slot "%s" is in use by process %d`, e.slot, other.PID())
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, want)
	waitCounter(t, d, "deskhook_cdc_reconnects_total", 3)
	if n := strings.Count(d.stderr.String(), "is in use by process"); n != 1 {
		t.Errorf("the slot in use is logged %d times, want once:\n%s", n, d.stderr.String())
	}
	other.Close(ctx)
	d.waitReadyz(http.StatusOK, 60*time.Second)
	d.stop()
}

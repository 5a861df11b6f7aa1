package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// bareSlot is the second slot the bare pgoutput consumer reads, created
// beside the daemon's before the backlog is written.
const bareSlot = "bench_bare"

// backlog: 20,000 tickets × (created + 2 replies + 2 updates) written while
// no daemon runs (its slot exists), then the bare pgoutput consumer reads
// that WAL, then the daemon starts: the time from its start to the last
// event at the receiver.
func (e *env) backlog(ctx context.Context, rep *Report) (*Result, error) {
	tickets := e.scaled(20000, 20)
	db, pool, closeDB, err := e.scenarioDB(ctx, "backlog", 10, true)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	src := e.sourceConfig(db)
	if _, err := cdc.Setup(ctx, src); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	if _, err := pool.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", bareSlot); err != nil {
		return nil, fmt.Errorf("bare slot: %w", err)
	}
	e.say("writing the backlog: %d tickets × 5 actions (daemon stopped)...", tickets)
	load, err := testenv.Load(ctx, pool, testenv.LoadConfig{Tickets: tickets, Replies: 2, Updates: 2, Writers: 8, Seed: 7})
	if err != nil {
		return nil, err
	}
	expected := load.TotalEvents()
	res := &Result{Name: "backlog", Expected: expected}
	res.note("backlog written at %.0f events/s by 8 writers", float64(expected)/load.Elapsed.Seconds())
	if _, err := pool.Exec(ctx, "SELECT pg_logical_emit_message(false, $1, 'end')", endMarker); err != nil {
		return nil, err
	}

	settle()
	e.say("bare pgoutput consumer over the backlog...")
	bound, err := barePgoutput(ctx, src.DSN, bareSlot, src.Publication)
	if err != nil {
		return nil, err
	}
	bound.Events = expected
	bound.EventsPerSec = float64(expected) / bound.Seconds
	bound.CPUPer1000 = bound.CPUPer1000 * 1000 / float64(expected)
	bound.WalsenderCPUPerEventUs = bound.WalsenderCPUPerEventUs / float64(expected)
	rep.Bounds.Pgoutput = bound
	e.say("the same WAL through PostgreSQL's SQL interface...")
	if rep.Bounds.SQLDecode, err = sqlPgoutput(ctx, pool, bareSlot, src.Publication); err != nil {
		return nil, err
	}
	if err := dropSlot(ctx, pool, bareSlot); err != nil {
		return nil, err
	}

	settle()
	t := newTracker("/fast", false)
	e.track.Store(t)
	defer e.track.Store(nil)
	e.say("starting the daemon on %d stored events...", expected)
	m := e.measure("backlog", true)
	p, err := e.startDaemon(ctx, db, []sender.Endpoint{e.endpoint("fast")}, nil)
	if err != nil {
		m.done(res, 0, time.Time{})
		return nil, err
	}
	var walsender int // its counters start with the daemon's connection
	if slot, err := cdc.SlotInfo(ctx, src); err == nil {
		walsender = slot.ActivePID
	}
	return res, e.drain(ctx, res, t, m, p, func() {
		if cpu, ok := procCPU(walsender); ok && res.Events > 0 {
			res.extra("walsender_cpu_us_per_event", float64(cpu.Microseconds())/float64(res.Events))
		}
	})
}

// drain waits until the daemon p delivered the backlog's res.Expected
// events to "/fast", then fills res (measured by m since the daemon's
// start; done, when set, adds the source's own figures) and stops p.
func (e *env) drain(ctx context.Context, res *Result, t *tracker, m *measured, p *pipeline, done func()) error {
	werr := waitCount(ctx, t, "/fast", res.Expected, 10*time.Minute)
	last := t.lastArrival()
	res.Events = t.count("/fast")
	m.done(res, res.Events, time.Time{})
	if done != nil {
		done()
	}
	time.Sleep(200 * time.Millisecond) // anything beyond the expected would show now
	p.pipelineMetrics(res, res.Expected)
	if err := p.stop(); err != nil {
		res.note("daemon stop: %v", err)
	}
	if werr != nil {
		return werr
	}
	res.Seconds = last.Sub(m.start).Seconds()
	res.EventsPerSec = float64(res.Events) / res.Seconds
	if extra := t.count("/fast") - res.Expected; extra > 0 {
		res.note("%d events more than expected arrived", extra)
	}
	e.sample = t.first
	return nil
}

// dropSlot drops a slot once its walsender has gone (it outlives the
// client's connection by a moment).
func dropSlot(ctx context.Context, pool *pgxpool.Pool, slot string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dropping slot %s: %w", slot, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

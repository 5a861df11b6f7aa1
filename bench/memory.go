package bench

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// outboxSize: the endpoint is disabled (as an operator would, or as a dead
// receiver amounts to), the simulator fills the outbox, and the file's
// size is compared with the payload bytes of the undelivered events.
func (e *env) outboxSize(ctx context.Context, _ *Report) (*Result, error) {
	tickets := e.scaled(10000, 20)
	db, pool, closeDB, err := e.scenarioDB(ctx, "outbox", 10, true)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	if _, err := cdc.Setup(ctx, e.sourceConfig(db)); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	park := func(d *daemon.Daemon) error {
		return d.Outbox().Disable(ctx, "parked", outbox.DisabledByOperator, "bench: outbox size")
	}
	p, err := e.startDaemon(ctx, db, []sender.Endpoint{e.endpoint("parked")}, park)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	ob := p.d.Outbox()

	e.say("outbox: %d tickets × 5 actions into a disabled endpoint...", tickets)
	m := e.measure("outbox", false)
	load, err := testenv.Load(ctx, pool, testenv.LoadConfig{Tickets: tickets, Replies: 2, Updates: 2, Writers: 8, Seed: 13})
	if err != nil {
		m.done(&Result{}, 0, time.Time{})
		return nil, err
	}
	expected := load.TotalEvents()
	res := &Result{Name: "outbox", Expected: expected}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		depth, err := queueDepth(ob, "parked")
		if err != nil {
			m.done(res, 0, time.Time{})
			return nil, err
		}
		if depth >= int64(expected) {
			break
		}
		if time.Now().After(deadline) {
			m.done(res, 0, time.Time{})
			return nil, fmt.Errorf("%d of %d events stored after 2 minutes", depth, expected)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stored := time.Now()
	if err := ob.Flush(ctx); err != nil {
		return nil, err
	}
	// Measured up to here: reading every payload below maps the whole
	// file into this process.
	res.Events = expected
	m.done(res, expected, time.Time{})
	p.pipelineMetrics(res, expected)
	var payload, n int64
	after := outbox.Key{}
	for {
		page, err := ob.Pending("parked", outbox.PendingQuery{After: after, Max: 1000})
		if err != nil {
			return nil, err
		}
		for _, dl := range page.Deliveries {
			payload += int64(len(dl.Event.Payload))
			n++
		}
		if page.End {
			break
		}
		after = page.Last
	}
	fi, err := os.Stat(ob.Path())
	if err != nil {
		return nil, err
	}
	res.Events = int(n)
	res.Seconds = stored.Sub(m.start).Seconds()
	res.EventsPerSec = float64(n) / res.Seconds
	ratio := float64(fi.Size()) / float64(payload)
	res.extra("file_bytes", float64(fi.Size()))
	res.extra("payload_bytes", float64(payload))
	res.extra("file_to_payload_ratio", ratio)
	res.note("file %.1f MB for %d undelivered events of %.1f MB payload: %.2f× (events/s here = stored)",
		float64(fi.Size())/(1<<20), n, float64(payload)/(1<<20), ratio)
	return res, nil
}

func queueDepth(ob *outbox.Outbox, name string) (int64, error) {
	eps, err := ob.Endpoints()
	if err != nil {
		return 0, err
	}
	for _, ep := range eps {
		if ep.Name == name {
			return ep.Depth, nil
		}
	}
	return 0, fmt.Errorf("endpoint %s not in the outbox", name)
}

// largeTxn: one UPDATE of a million tickets rows (isoverdue, as an SLA
// sweep would: each change carries the old and the new row of 41 columns,
// REPLICA IDENTITY FULL, and no Faveo event), through the running daemon,
// then one ticket_created whose arrival says the transaction has passed.
// The tickets exist before the slot, so only the UPDATE flows.
func (e *env) largeTxn(ctx context.Context, _ *Report) (*Result, error) {
	rows := e.scaled(1_000_000, 1000)
	db, pool, closeDB, err := e.scenarioDB(ctx, "largetxn", 4, true)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	e.say("largetxn: inserting %d tickets (before the slot)...", rows)
	if _, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO tickets (ticket_number, user_id, dept_id, team_id, priority_id, sla,
		help_topic_id, status, source, created_at, updated_at, duedate, type, creator_id)
		SELECT 'BNCH-' || g, 5, 1, 1, 1, 1, 1, 1, 1, now(), now(), now(), 0, 5 FROM generate_series(1, %d) g`, rows)); err != nil {
		return nil, err
	}
	if _, err := cdc.Setup(ctx, e.sourceConfig(db)); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	t := newTracker("/fast", false)
	e.track.Store(t)
	defer e.track.Store(nil)
	p, err := e.startDaemon(ctx, db, []sender.Endpoint{e.endpoint("fast")}, nil)
	if err != nil {
		return nil, err
	}
	defer p.stop()

	settle()
	res := &Result{Name: "largetxn", Expected: rows}
	m := e.measure("largetxn", true)
	e.say("largetxn: UPDATE tickets SET isoverdue = 1 (%d rows)...", rows)
	if _, err := pool.Exec(ctx, "UPDATE tickets SET isoverdue = 1"); err != nil {
		m.done(res, 0, time.Time{})
		return nil, err
	}
	committed := time.Now()
	res.extra("update_s", committed.Sub(m.start).Seconds())
	if _, err := testenv.NewHelpdesk(pool).CreateTicket(ctx, testenv.NewTicket{}); err != nil {
		m.done(res, 0, time.Time{})
		return nil, err
	}
	werr := waitCount(ctx, t, "/fast", 1, 20*time.Minute)
	m.done(res, rows, time.Time{})
	p.pipelineMetrics(res, rows)
	if werr != nil {
		return res, fmt.Errorf("the marker event after the transaction: %w", werr)
	}
	res.Events = rows
	res.Seconds = t.lastArrival().Sub(committed).Seconds()
	res.EventsPerSec = float64(rows) / res.Seconds
	res.note("%d row changes, no events: figures are per row; %.1fs from the UPDATE's commit to the marker's arrival (the UPDATE itself took %.1fs)",
		rows, res.Seconds, res.Extra["update_s"])
	return res, nil
}

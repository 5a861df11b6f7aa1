package bench

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// liveSpec is a live scenario: the simulator at a steady rate, the daemon
// delivering as it goes, latency measured at the "fast" endpoint.
type liveSpec struct {
	name     string
	rate     float64 // actions per second; each action here is one event
	duration time.Duration
	writers  int
	second   string                                       // a second endpoint: "slow" (answers after 50 ms) or "second" (at once)
	hook     func(*testenv.Request) (testenv.Reply, bool) // the receiver's hook, if any
	skip     func() map[int64]bool                        // tickets left out of the latency
}

func (e *env) live500(ctx context.Context, _ *Report) (*Result, error) {
	return e.live(ctx, liveSpec{name: "live500", rate: 500, duration: 30 * time.Second, writers: 4})
}

func (e *env) live2000(ctx context.Context, _ *Report) (*Result, error) {
	return e.live(ctx, liveSpec{name: "live2000", rate: 2000, duration: 30 * time.Second, writers: 12})
}

// failures: 1% of first attempts answered 500 (chosen by a hash of the
// event id, retries always succeed); the latency is that of the tickets
// that saw no failure, whose events must not wait behind the others.
func (e *env) failures(ctx context.Context, _ *Report) (*Result, error) {
	var (
		mu     sync.Mutex
		seen   = map[string]bool{}
		failed = map[int64]bool{}
	)
	hook := func(r *testenv.Request) (testenv.Reply, bool) {
		id := r.Header.Get("webhook-id")
		h := fnv.New32a()
		h.Write([]byte(id))
		if h.Sum32()%100 != 0 {
			return testenv.Reply{}, false
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[id] {
			return testenv.Reply{}, false
		}
		seen[id] = true
		if _, tk, ok := formTicket(r.Body); ok {
			failed[tk] = true
		}
		return testenv.Reply{Status: 500}, true
	}
	skip := func() map[int64]bool {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(failed)
	}
	res, err := e.live(ctx, liveSpec{name: "failures", rate: 500, duration: 30 * time.Second, writers: 4, hook: hook, skip: skip})
	if res != nil {
		mu.Lock()
		res.extra("failed_requests", float64(len(seen)))
		res.extra("failed_tickets", float64(len(failed)))
		res.note("%d requests answered 500 on %d tickets; their tickets are left out of the latency", len(seen), len(failed))
		mu.Unlock()
	}
	return res, err
}

// slow: a second endpoint answers every request after 50 ms (max_in_flight
// 16: at most 320 requests/s, less than the load): the fast endpoint's
// latency must stay as in live500.
func (e *env) slow(ctx context.Context, _ *Report) (*Result, error) {
	hook := func(r *testenv.Request) (testenv.Reply, bool) {
		if r.Path == "/slow" {
			return testenv.Reply{Delay: 50 * time.Millisecond}, true
		}
		return testenv.Reply{}, false
	}
	return e.live(ctx, liveSpec{name: "slow", rate: 500, duration: 30 * time.Second, writers: 4, second: "slow", hook: hook})
}

// second: the control for slow — the same second endpoint (every event,
// max_in_flight 16) answering at once. What slow adds to the fast
// endpoint's latency beyond this is the slowness itself; what this adds to
// live500 is the cost of delivering everything twice on the same cores.
func (e *env) second(ctx context.Context, _ *Report) (*Result, error) {
	return e.live(ctx, liveSpec{name: "second", rate: 500, duration: 30 * time.Second, writers: 4, second: "second"})
}

// liveDB is a live scenario's database, PostgreSQL's or MariaDB's
// (mariadb.go), as the scenario uses it.
type liveDB struct {
	// load runs the simulator on it.
	load func(context.Context, testenv.LoadConfig) (testenv.LoadResult, error)
	// start starts the daemon on it, returning once its stream is up.
	start func(context.Context, []sender.Endpoint) (*pipeline, error)
	// streamPID is the server process streaming to the daemon (PostgreSQL's
	// walsender; 0: none of its own).
	streamPID func(context.Context) int
	// clock measures the replies' latency from the server's commit
	// timestamps (nil: the server keeps none).
	clock func(context.Context, []replyArrival) (latency, gap *Latency, err error)
	close func()
}

// pgLiveDB is a fresh PostgreSQL database with deskhook set up.
func (e *env) pgLiveDB(ctx context.Context, s liveSpec) (*liveDB, error) {
	db, pool, closeDB, err := e.scenarioDB(ctx, s.name, int32(s.writers+2), false)
	if err != nil {
		return nil, err
	}
	if _, err := cdc.Setup(ctx, e.sourceConfig(db)); err != nil {
		closeDB()
		return nil, fmt.Errorf("setup: %w", err)
	}
	return &liveDB{
		load: func(ctx context.Context, c testenv.LoadConfig) (testenv.LoadResult, error) {
			return testenv.Load(ctx, pool, c)
		},
		start: func(ctx context.Context, eps []sender.Endpoint) (*pipeline, error) {
			return e.startDaemon(ctx, db, eps, nil)
		},
		streamPID: func(ctx context.Context) int {
			if slot, err := cdc.SlotInfo(ctx, e.sourceConfig(db)); err == nil {
				return slot.ActivePID
			}
			return 0
		},
		clock: func(ctx context.Context, replies []replyArrival) (*Latency, *Latency, error) {
			return serverClock(ctx, pool, replies)
		},
		close: closeDB,
	}, nil
}

func (e *env) live(ctx context.Context, s liveSpec) (*Result, error) {
	dur := e.scaledDur(s.duration, 2*time.Second)
	tickets := max(1, int(s.rate*dur.Seconds()/5))
	newDB := e.pgLiveDB
	if e.my != nil {
		newDB = e.mysqlLiveDB
	}
	db, err := newDB(ctx, s)
	if err != nil {
		return nil, err
	}
	defer db.close()
	eps := []sender.Endpoint{e.endpoint("fast")}
	if s.second != "" {
		other := e.endpoint(s.second)
		other.MaxInFlight = 16
		eps = append(eps, other)
	}
	t := newTracker("/fast", true, "/slow", "/second")
	e.track.Store(t)
	defer e.track.Store(nil)
	e.rcv.SetHook(s.hook)
	defer e.rcv.SetHook(nil)

	p, err := db.start(ctx, eps)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p != nil {
			_ = p.stop()
		}
	}()

	warm := min(3*time.Second, dur/5)
	e.say("%s: %.0f events/s for %s (%d tickets × 5 actions, %d writers; the first %s is warm-up)...",
		s.name, s.rate, dur, tickets, s.writers, warm)
	var walsender *schedSampler
	if pid := db.streamPID(ctx); pid > 0 {
		walsender = sampleSched(pid, 20*time.Millisecond)
	}
	if walsender != nil {
		defer walsender.close()
	}
	m := e.measure(s.name, false)
	busy0 := machineBusy()
	load, err := db.load(ctx, testenv.LoadConfig{Tickets: tickets, Replies: 2, Updates: 2,
		Writers: s.writers, Rate: s.rate, Seed: 11, OnAction: t.committed})
	if err != nil {
		m.done(&Result{}, 0, time.Time{})
		return nil, err
	}
	loadEnd := time.Now()
	busy := machineBusy() - busy0
	expected := load.TotalEvents()
	res := &Result{Name: s.name, Expected: expected, OfferedPerSec: float64(expected) / load.Elapsed.Seconds()}
	werr := waitCount(ctx, t, "/fast", expected, 2*time.Minute)
	res.Events = t.count("/fast")
	delivered := res.Events + t.count("/slow") + t.count("/second")
	m.done(res, delivered, m.start.Add(warm))
	if werr != nil {
		return res, werr
	}
	last := t.lastArrival()
	res.Seconds = last.Sub(m.start).Seconds()
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.extra("drain_after_load_s", last.Sub(loadEnd).Seconds())
	busyCores := busy.Seconds() / loadEnd.Sub(m.start).Seconds()
	res.extra("machine_busy_cores_during_load", busyCores)
	if walsender != nil {
		if w, ok := walsender.finish(m.start.Add(warm), 100*time.Millisecond); ok {
			cores, waited, worst := w.CPU.Seconds()/w.Elapsed.Seconds(), w.Wait.Seconds()/w.Elapsed.Seconds(), float64(w.WorstWait)/1e6
			res.extra("walsender_cpu_cores", cores)
			res.extra("walsender_runq_wait_share", waited)
			res.extra("walsender_worst_runq_wait_per_100ms_ms", worst)
			res.note("machine %.2f of %d cores busy during the load; the walsender got %.2f cores and waited for a CPU "+
				"%.1f%% of the time, at worst %.0f ms in 100 ms (from %s)", busyCores, runtime.NumCPU(), cores, 100*waited,
				worst, w.WorstAt.Format("15:04:05.000"))
		}
	}

	var skip map[int64]bool
	if s.skip != nil {
		skip = s.skip()
	}
	d, replies, unmatched := t.latencies(m.start.Add(warm), skip)
	res.Latency = summarize(d)
	if unmatched > 0 {
		res.note("%d commits without a matching arrival", unmatched)
	}
	if t.badBody > 0 {
		res.note("%d arrivals whose ticket could not be read", t.badBody)
	}
	if s.skip != nil {
		ratio := t.deliveredBy(loadEnd.Add(200*time.Millisecond), skip)
		res.extra("delivered_during_load_ratio", ratio)
		res.note("%.2f%% of the unfailed tickets' events delivered by the end of the load + 200 ms; all %d after %.1fs",
			100*ratio, expected, last.Sub(loadEnd).Seconds())
	}
	if s.second != "" {
		n := t.count("/" + s.second)
		res.extra(s.second+"_delivered", float64(n))
		res.note("%s endpoint: %d events delivered (%.0f/s) while the fast one got all %d", s.second, n,
			float64(n)/last.Sub(m.start).Seconds(), res.Events)
	}
	if len(replies) > 0 && db.clock != nil {
		if l, gap, err := db.clock(ctx, replies); err != nil {
			res.note("latency from the server's commit timestamp: %v", err)
		} else {
			res.extra("server_commit_latency_samples", float64(l.Samples))
			res.extra("server_commit_latency_p50_ms", l.P50)
			res.extra("server_commit_latency_p90_ms", l.P90)
			res.extra("server_commit_latency_p99_ms", l.P99)
			res.extra("server_commit_latency_max_ms", l.Max)
			res.note("latency of the %d reply events from the server's commit timestamp: p50 %.2f p90 %.2f p99 %.2f max %.2f ms",
				l.Samples, l.P50, l.P90, l.P99, l.Max)
			res.extra("commit_seen_after_server_ts_p50_ms", gap.P50)
			res.extra("commit_seen_after_server_ts_p99_ms", gap.P99)
			res.note("the simulator sees COMMIT return %.2f ms (p50; p99 %.2f) after the server's commit timestamp",
				gap.P50, gap.P99)
		}
	}
	p.pipelineMetrics(res, expected)
	err = p.stop()
	p = nil
	if err != nil {
		res.note("daemon stop: %v", err)
	}
	return res, nil
}

// serverClock reads the server's commit timestamp (track_commit_timestamp)
// of each reply's thread row and returns, from it, the reply events'
// latency — stricter than the simulator's clock after COMMIT returned,
// which under load starts late (the backend's answer and the writer's
// goroutine both wait for a CPU); the server takes its timestamp before the
// commit's WAL flush, so this errs the other way, by the fsync — and the
// gap between the two clocks: when the simulator saw COMMIT return.
func serverClock(ctx context.Context, pool *pgxpool.Pool, replies []replyArrival) (latency, gap *Latency, err error) {
	ids := make([]int64, len(replies))
	for i, r := range replies {
		ids[i] = r.thread
	}
	ts, err := commitTimestamps(ctx, pool, ids)
	if err != nil {
		return nil, nil, err
	}
	var dl, dg []time.Duration
	for _, r := range replies {
		if at, ok := ts[r.thread]; ok {
			dl = append(dl, r.arrived.Sub(at))
			dg = append(dg, r.committed.Sub(at))
		}
	}
	if len(dl) == 0 {
		return nil, nil, fmt.Errorf("no commit timestamps (track_commit_timestamp off?)")
	}
	return summarize(dl), summarize(dg), nil
}

// commitTimestamps reads the server's commit timestamp of the thread rows
// ids.
func commitTimestamps(ctx context.Context, pool *pgxpool.Pool, ids []int64) (map[int64]time.Time, error) {
	rows, err := pool.Query(ctx, "SELECT id, pg_xact_commit_timestamp(xmin) FROM ticket_thread WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	ts := map[int64]time.Time{}
	for rows.Next() {
		var id int64
		var at *time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		if at != nil {
			ts[id] = *at
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ts, nil
}

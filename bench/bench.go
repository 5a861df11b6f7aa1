package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// Scenarios lists every scenario, in the order Run runs them: the bounds
// follow the backlog so the bare HTTP client posts a body the daemon really
// sent; the large rows and the million-row transaction come last because Go
// keeps some of the memory it grew to.
var Scenarios = []string{"backlog", "bounds", "live500", "live2000", "failures", "slow", "second", "outbox", "largerows", "largetxn"}

// Options say what to run.
type Options struct {
	// Scenarios to run (default all), in Scenarios' order whatever the
	// order given.
	Scenarios []string
	// Scale multiplies every scenario's size and duration: 1 is the full
	// benchmark, 0.1 the --quick smoke run.
	Scale float64
	// ProfileDir, when set, receives a CPU and a heap profile of each
	// scenario's measured phase (cpu-NAME.pprof, heap-NAME.pprof).
	ProfileDir string
	// Progress receives one line per step (nil: none).
	Progress io.Writer
	// StateSize sets the daemon's faveo.state_size (0: the default).
	StateSize int
	// NoDeliveryLog runs the daemon with delivery_log.enabled false, to
	// tell the log's cost from the rest (BENCHMARKS.md).
	NoDeliveryLog bool
	// DaemonLog receives the daemon's warnings and errors (nil: none).
	DaemonLog io.Writer
	// TCP connects everything to PostgreSQL over TCP on loopback instead of
	// its Unix-domain socket (the default, as a sidecar on the database's
	// host would): the daemon's replication stream and lookups, the bare
	// pgoutput consumer and the simulator.
	TCP bool
	// LiveRates adds a live scenario per rate (events/s), named liveN and
	// run after the others, like live2000 with writers in proportion
	// (6 per 1000 events/s, at least 4): latency against offered load.
	LiveRates []float64
	// Source is the helpdesk's database: "postgres" (the default) or
	// "mariadb" (MariaDBScenarios only; TCP as for PostgreSQL).
	Source string
}

// Run sets up the environment, runs the scenarios and returns the report.
// A scenario that fails is reported with its error and the others still
// run; Run's own error is for a broken environment or a cancelled ctx.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Scale <= 0 {
		opts.Scale = 1
	}
	known := Scenarios
	switch opts.Source {
	case "", "postgres":
	case "mariadb":
		known = MariaDBScenarios
	default:
		return nil, fmt.Errorf("bench: source %q: postgres or mariadb", opts.Source)
	}
	want, err := selectScenarios(known, opts.Scenarios)
	if err != nil {
		return nil, err
	}
	if len(opts.LiveRates) > 0 && len(opts.Scenarios) == 0 {
		want = nil // only the rates asked for
	}
	rated := map[string]float64{}
	for _, r := range opts.LiveRates {
		if r <= 0 {
			return nil, fmt.Errorf("bench: live rate %g: must be positive", r)
		}
		name := fmt.Sprintf("live%g", r)
		if !slices.Contains(want, name) {
			want = append(want, name)
		}
		rated[name] = r
	}
	if opts.ProfileDir != "" {
		if err := os.MkdirAll(opts.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: profile dir: %w", err)
		}
	}
	e := &env{opts: opts, progress: opts.Progress}
	if e.progress == nil {
		e.progress = io.Discard
	}
	rep := &Report{Started: time.Now().UTC(), Scale: opts.Scale, StateSize: opts.StateSize, NoDeliveryLog: opts.NoDeliveryLog,
		Machine: machineInfo()}
	e.say("machine: %d cores, %s; load average %.2f", rep.Machine.Cores, rep.Machine.CPU, loadAvg())

	if e.work, err = os.MkdirTemp("", "deskhook-bench-"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(e.work)
	rep.Machine.Fsync = measureFsync(e.work, 200)
	e.say("fdatasync of 4 KiB in %s: p50 %.3f ms, p99 %.3f ms", e.work, rep.Machine.Fsync.P50, rep.Machine.Fsync.P99)
	rep.Machine.SyscallNs = measureSyscall(200_000)
	e.say("one system call (getppid): %.0f ns", rep.Machine.SyscallNs)

	if opts.Source == "mariadb" {
		stop, err := e.startMariaDB(ctx, rep)
		if err != nil {
			return nil, err
		}
		defer stop()
	} else if stop, err := e.startPostgres(ctx, rep); err != nil {
		return nil, err
	} else {
		defer stop()
	}

	if e.rcv, err = testenv.StartReceiver("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer e.rcv.Close()
	e.rcv.SetDecode(false)
	e.rcv.SetKeep(false)
	e.rcv.OnRequest(func(r testenv.Request) {
		if t := e.track.Load(); t != nil {
			t.arrived(r)
		}
	})

	settle()
	time.Sleep(200 * time.Millisecond)
	rep.Baseline = toMB(readMem())
	e.say("baseline RSS (receiver, pools, no daemon): %.1f MB", rep.Baseline.RSS)

	runners := map[string]func(context.Context, *Report) (*Result, error){
		"backlog": e.backlog, "bounds": e.bounds, "live500": e.live500, "live2000": e.live2000,
		"failures": e.failures, "slow": e.slow, "second": e.second, "outbox": e.outboxSize, "largetxn": e.largeTxn,
		"largerows": e.largeRows,
	}
	if e.my != nil {
		runners["backlog"] = e.mysqlBacklog
	}
	for name, rate := range rated {
		runners[name] = func(ctx context.Context, _ *Report) (*Result, error) {
			return e.live(ctx, liveSpec{name: name, rate: rate, duration: 30 * time.Second,
				writers: max(4, int(rate*6/1000+0.5))})
		}
	}
	for _, name := range want {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		e.say("— %s", name)
		settle()
		load0 := loadAvg()
		res, err := runners[name](ctx, rep)
		if res == nil {
			res = &Result{Name: name}
		}
		res.LoadAvg = [2]float64{load0, loadAvg()}
		if err != nil {
			res.Error = err.Error()
			e.say("%s failed: %v", name, err)
		} else {
			e.say("%s", res.line())
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Targets = evaluate(rep)
	return rep, nil
}

// startPostgres starts the bench's PostgreSQL (fsync on).
func (e *env) startPostgres(ctx context.Context, rep *Report) (func(), error) {
	e.say("starting PostgreSQL (fsync on)...")
	var err error
	e.srv, err = testenv.StartServer(ctx, testenv.WithSettings(map[string]string{
		// PostgreSQL's own default; testenv's 32MB is for many small tests.
		"shared_buffers": "128MB",
		// The million-row transaction writes about 1 GB of WAL: no
		// checkpoint in its middle.
		"max_wal_size": "8GB",
		// For the server's clock of the live scenarios (serverClock).
		"track_commit_timestamp": "on",
	}))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	rep.Machine.PGVia = "unix socket"
	if e.opts.TCP {
		rep.Machine.PGVia = "tcp loopback"
	} else if _, err := e.srv.SocketDSN("postgres"); err != nil {
		e.srv.Close()
		return nil, fmt.Errorf("bench: %w (or run with --tcp)", err)
	}
	rep.Machine.PostgreSQL = e.serverVersion(ctx)
	return func() { e.srv.Close() }, nil
}

func selectScenarios(known, names []string) ([]string, error) {
	if len(names) == 0 {
		return known, nil
	}
	var bad []string
	for _, n := range names {
		if !slices.Contains(known, n) {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("bench: unknown scenario %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ","))
	}
	var out []string
	for _, n := range known {
		if slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// env is what the scenarios share: the server, the receiver, the work dir.
type env struct {
	opts     Options
	progress io.Writer
	work     string
	srv      *testenv.Server      // PostgreSQL
	my       *testenv.MySQLServer // MariaDB (Options.Source "mariadb"); srv is nil then
	rcv      *testenv.Receiver
	track    atomic.Pointer[tracker] // the running scenario's
	sample   []byte                  // a body the daemon sent, for the HTTP bound
	dbs      int
}

// serverCPU is the CPU time the database server used so far (PostgreSQL's
// processes, or MariaDB's one).
func (e *env) serverCPU() time.Duration {
	if e.my != nil {
		return mariadbCPU(e.my.DataDir)
	}
	return serverCPU(e.srv.DataDir)
}

func (e *env) say(format string, args ...any) {
	fmt.Fprintf(e.progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// scaled returns n × Scale, at least lo.
func (e *env) scaled(n int, lo int) int {
	return max(lo, int(float64(n)*e.opts.Scale))
}

func (e *env) scaledDur(d, lo time.Duration) time.Duration {
	return max(lo, time.Duration(float64(d)*e.opts.Scale))
}

func (e *env) serverVersion(ctx context.Context) string {
	db, err := e.srv.CreateDatabase(ctx, "bench_version")
	if err != nil {
		return "?"
	}
	defer e.srv.DropDatabase(context.WithoutCancel(ctx), db.Name)
	pool, err := pgxpool.New(ctx, e.dsn(db))
	if err != nil {
		return "?"
	}
	defer pool.Close()
	var v string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "?"
	}
	return v
}

// scenarioDB is a fresh database with the Faveo schema, dropped (with its
// slots) by its close function. fastFill turns synchronous_commit off for
// the pool's sessions: for filling a backlog faster; the server still
// fsyncs its WAL, and the stream sends only flushed WAL, so what the
// daemon reads is the same. Live scenarios commit synchronously.
func (e *env) scenarioDB(ctx context.Context, name string, conns int32, fastFill bool) (*testenv.DB, *pgxpool.Pool, func(), error) {
	e.dbs++
	db, err := e.srv.CreateDatabase(ctx, fmt.Sprintf("bench_%s_%d", name, e.dbs))
	if err != nil {
		return nil, nil, nil, err
	}
	pc, err := pgxpool.ParseConfig(e.dsn(db))
	if err != nil {
		return nil, nil, nil, err
	}
	pc.MaxConns = conns
	if fastFill {
		pc.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		_ = e.srv.DropDatabase(ctx, db.Name)
		return nil, nil, nil, err
	}
	closeFn := func() {
		pool.Close()
		if err := e.srv.DropDatabase(context.Background(), db.Name); err != nil {
			e.say("dropping %s: %v", db.Name, err)
		}
	}
	return db, pool, closeFn, nil
}

// dsn is how every connection of the bench reaches db: through the
// server's Unix-domain socket, or over TCP with Options.TCP. Run checked
// that the socket exists.
func (e *env) dsn(db *testenv.DB) string {
	if e.opts.TCP {
		return db.DSN
	}
	dsn, _ := db.SocketDSN()
	return dsn
}

// sourceConfig is the daemon's source section for db.
func (e *env) sourceConfig(db *testenv.DB) cdc.Config {
	c := cdc.Config{DSN: e.dsn(db)}
	c.SetDefaults()
	return c
}

// endpoint is a receiver path as a deskhook endpoint with every event.
func (e *env) endpoint(name string) sender.Endpoint {
	return sender.Endpoint{Name: name, URL: e.rcv.URL + "/" + name, Events: mapping.AllEvents}
}

// pipeline is one daemon running in this process.
type pipeline struct {
	d      *daemon.Daemon
	cancel context.CancelFunc
	done   chan error
	store  string
	reg    *prometheus.Registry
}

// benchAppKey is a fixed APP_KEY so payloads carry a real encrypted_id.
const benchAppKey = "base64:ZGVza2hvb2stYmVuY2gta2V5LTMyLWJ5dGVzLWxvbmc="

// startDaemon builds and runs the daemon on db with the given endpoints,
// the outbox fsync'd as in production; before, if set, runs between New
// and Run. It returns once the replication stream is connected.
func (e *env) startDaemon(ctx context.Context, db *testenv.DB, eps []sender.Endpoint, before func(*daemon.Daemon) error) (*pipeline, error) {
	src := daemon.SourceConfig{Config: cdc.Config{DSN: e.dsn(db)}}
	return e.startDaemonOn(ctx, src, eps, before, func(ctx context.Context, _ *daemon.Daemon) (bool, error) {
		s, err := cdc.SlotInfo(ctx, src.Postgres()) // the slot is active
		return err == nil && s.Active, err
	})
}

// startDaemonOn is startDaemon for any source: it returns once connected
// says the daemon's stream is up.
func (e *env) startDaemonOn(ctx context.Context, src daemon.SourceConfig, eps []sender.Endpoint, before func(*daemon.Daemon) error,
	connected func(context.Context, *daemon.Daemon) (bool, error)) (*pipeline, error) {
	store := filepath.Join(e.work, fmt.Sprintf("outbox-%d.db", e.dbs))
	cfg := &daemon.Config{
		Source:          src,
		Store:           daemon.StoreConfig{Path: store},
		Admin:           daemon.AdminConfig{Listen: "off"},
		Log:             daemon.LogConfig{Level: "warn"},
		Sender:          sender.Config{Endpoints: eps},
		Faveo:           mapping.Config{AppKey: benchAppKey, StateSize: e.opts.StateSize},
		ShutdownTimeout: 2 * time.Second,
	}
	if e.opts.NoDeliveryLog {
		off := false
		cfg.DeliveryLog.Enabled = &off
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	if e.opts.DaemonLog != nil {
		log = daemon.NewLogger(e.opts.DaemonLog, cfg.Log, daemon.NewRedactor(cfg.Secrets()))
	}
	reg := prometheus.NewRegistry()
	// The soft memory limit, as `deskhook run` sets it (process-wide: the
	// receiver and the simulator share it), until the daemon stops.
	prevLimit := debug.SetMemoryLimit(-1)
	daemon.ApplyMemoryLimit(cfg, log)
	d, err := daemon.New(ctx, cfg, daemon.Options{Logger: log, Version: "bench", Registry: reg})
	if err != nil {
		debug.SetMemoryLimit(prevLimit)
		return nil, fmt.Errorf("daemon: %w", err)
	}
	if before != nil {
		if err := before(d); err != nil {
			return nil, err
		}
	}
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	cancel := func() {
		cancelRun()
		debug.SetMemoryLimit(prevLimit)
	}
	p := &pipeline{d: d, cancel: cancel, done: make(chan error, 1), store: store, reg: reg}
	go func() { p.done <- d.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		up, err := connected(ctx, d)
		if up {
			return p, nil
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("daemon stopped at start: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop()
			return nil, fmt.Errorf("the daemon's replication stream did not connect within 30s (%v)", err)
		}
	}
}

func (p *pipeline) stop() error {
	p.cancel()
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("daemon did not stop within 30s")
	}
}

// waitCount waits until the tracker counted n accepted requests on path.
func waitCount(ctx context.Context, t *tracker, path string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for t.count(path) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d events arrived at %s within %s", t.count(path), n, path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// measured is a scenario's measured phase: CPU time, memory samples and,
// when asked, profiles.
type measured struct {
	e        *env
	name     string
	start    time.Time
	cpu0     time.Duration
	busy0    time.Duration // the machine's
	pg0      time.Duration // PostgreSQL's
	sys0     int64         // this process's read and write system calls (rwSyscalls)
	mem      *memSampler
	cpuProf  *os.File
	peakHeap atomic.Pointer[[]byte]
}

// measure starts a measured phase. keepPeakHeap also snapshots a heap
// profile each time RSS reaches a new high (the large transaction).
func (e *env) measure(name string, keepPeakHeap bool) *measured {
	m := &measured{e: e, name: name}
	if e.opts.ProfileDir != "" {
		if f, err := os.Create(filepath.Join(e.opts.ProfileDir, "cpu-"+name+".pprof")); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				m.cpuProf = f
			} else {
				f.Close()
			}
		}
	}
	var onPeak func()
	if keepPeakHeap && e.opts.ProfileDir != "" {
		onPeak = func() {
			var b bytes.Buffer
			if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
				s := b.Bytes()
				m.peakHeap.Store(&s)
			}
		}
	}
	m.mem = sampleMem(100*time.Millisecond, onPeak)
	m.start, m.cpu0, m.busy0, m.pg0 = time.Now(), cpuTime(), machineBusy(), e.serverCPU()
	m.sys0, _ = rwSyscalls()
	return m
}

// done ends the phase: it fills res's CPU and memory figures (steady RSS
// from the samples at or after steadyFrom) and writes the profiles.
func (m *measured) done(res *Result, events int, steadyFrom time.Time) {
	cpu := cpuTime() - m.cpu0
	pg := m.e.serverCPU() - m.pg0
	busy := machineBusy() - m.busy0
	elapsed := time.Since(m.start)
	if m.cpuProf != nil {
		pprof.StopCPUProfile()
		m.cpuProf.Close()
	}
	if steadyFrom.IsZero() {
		steadyFrom = m.start
	}
	peak, steady := m.mem.finish(steadyFrom)
	res.RSSPeak, res.RSSSteady = toMB(peak), toMB(steady)
	res.CPUSeconds = cpu.Seconds()
	res.PgCPUSeconds = pg.Seconds()
	if events > 0 {
		res.CPUPer1000 = cpu.Seconds() * 1000 / float64(events)
		res.PgCPUPer1000 = pg.Seconds() * 1000 / float64(events)
	}
	res.OtherCores = max(0, (busy-cpu-pg).Seconds()/elapsed.Seconds())
	if sys, ok := rwSyscalls(); ok && events > 0 && m.sys0 > 0 {
		res.extra("process_rw_syscalls_per_event", float64(sys-m.sys0)/float64(events))
	}
	if m.e.opts.ProfileDir == "" {
		return
	}
	path := filepath.Join(m.e.opts.ProfileDir, "heap-"+m.name+".pprof")
	if p := m.peakHeap.Load(); p != nil {
		_ = os.WriteFile(path, *p, 0o644)
		return
	}
	if f, err := os.Create(path); err == nil {
		runtime.GC()
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
}

// pipelineMetrics reads the daemon's own counters from its registry: what
// each stage did during the scenario (lookups, commits, attempts).
func (p *pipeline) pipelineMetrics(res *Result, events int) {
	mfs, err := p.reg.Gather()
	if err != nil || events == 0 {
		return
	}
	sum := map[string]float64{}
	hsum, hcount := map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				hsum[mf.GetName()] += m.GetHistogram().GetSampleSum()
				hcount[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	n := float64(events)
	res.extra("source_lookups_per_event", sum["deskhook_mapping_source_lookups_total"]/n)
	res.extra("outbox_commits_per_event", sum["deskhook_outbox_commits_total"]/n)
	if c := hcount["deskhook_outbox_commit_seconds"]; c > 0 {
		res.extra("outbox_commit_mean_ms", 1000*hsum["deskhook_outbox_commit_seconds"]/c)
	}
	if c := hcount["deskhook_delivery_attempt_seconds"]; c > 0 {
		res.extra("delivery_attempt_mean_ms", 1000*hsum["deskhook_delivery_attempt_seconds"]/c)
	}
	if t := sum["deskhook_cdc_transactions_total"]; t > 0 {
		res.extra("cdc_transactions", t)
	}
	if t := sum["deskhook_binlog_transactions_total"]; t > 0 {
		res.extra("binlog_transactions", t)
	}
}

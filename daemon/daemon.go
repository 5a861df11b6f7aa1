// Package daemon wires deskhook's pipeline — the source's change stream
// (cdc for PostgreSQL, binlog for MySQL/MariaDB, behind changeSource) →
// mapping → outbox → sender — into one long-lived component with an admin HTTP server
// (/healthz, /readyz, /metrics, open; and the operator API under /api/ the
// CLI uses while the daemon holds the store, behind a bearer token and
// Host/Origin checks: auth.go; and the operator console under /ui/:
// console.go). It also owns deskhook.yaml: the
// composition of the packages' Config sections, ${VAR} expansion and
// strict decoding.
//
// `deskhook run`, `deskhook demo` and the end-to-end tests all run this.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deskhook/deskhook/backoff"
	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/console"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
)

// Options are the daemon's collaborators.
type Options struct {
	Logger *slog.Logger // nil: discard
	// Registry receives every component's metrics and is served on
	// /metrics (nil: a new one with the Go and process collectors).
	Registry *prometheus.Registry
	Version  string
	// Redactor, when set, learns the admin token the daemon generates, so
	// that the log scrubs it like the config's secrets.
	Redactor *Redactor
	// NoSync skips the outbox's fsync. Tests only.
	NoSync bool
}

// Daemon is the running pipeline. New binds the admin ports, then opens
// the store (so a second daemon on the same file fails at once); Run
// streams until its context ends.
type Daemon struct {
	cfg  *Config
	log  *slog.Logger
	reg  *prometheus.Registry
	opts Options

	src   changeSource
	mysql *mysqlSource // src when the source is MySQL/MariaDB
	ob    *outbox.Outbox
	sd    *sender.Sender
	mp    *mapping.Mapper
	lk    lookup

	admin   *http.Server
	adminLn net.Listener
	probe   *http.Server // admin.probe_listen: probes and metrics only
	probeLn net.Listener
	// The operator API's token and the Host names it answers to.
	token    string
	hosts    map[string]bool
	refusals refusals
	console  *console.Console // under /ui/ on the admin listener (console.go)

	health  health
	source  *sourceCheck // the source's schema, verified while running (drift.go)
	metrics *daemonMetrics
	cfgMu   sync.Mutex // guards cfg during Reload
	stall   struct {
		sync.Mutex
		pos   string
		since time.Time
	}

	// Intake: the handler holds intakeMu while it maps and appends a batch
	// (handed several at once, it takes it for each in turn); shutdown
	// takes it to stop intake between batches.
	intakeMu   sync.Mutex
	stopIntake bool
	// restartStream wakes the stream loop's wait after a failure (a gap
	// was just accepted).
	restartStream chan struct{}
}

// New builds the daemon from a validated config.
func New(ctx context.Context, cfg *Config, opts Options) (*Daemon, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	d := &Daemon{cfg: cfg, log: log, reg: reg, opts: opts, restartStream: make(chan struct{}, 1)}
	fail := func(err error) (*Daemon, error) {
		d.closeAll()
		return nil, err
	}
	// The ports first: a port taken fails the start before anything is
	// created on disk or registered in the store.
	if err := d.listen(); err != nil {
		return fail(storeInUse(cfg.Store.Path, err))
	}
	d.metrics = newDaemonMetrics(reg)

	d.source = newSourceCheck(cfg.Source, log.With("component", "source"), reg)
	if cfg.Source.IsMySQL() {
		d.mysql = newMySQLSource(cfg.Source.MySQL(), binlog.ReaderOptions{Logger: log.With("component", "binlog"),
			Registerer: reg, OnTableChange: d.source.relation, OnFailure: d.health.setStreamErr})
		d.src = d.mysql
	} else {
		d.src = pgSource{cdc.NewReader(cfg.Source.Postgres(), cdc.ReaderOptions{Logger: log.With("component", "cdc"),
			Registerer: reg, OnRelation: d.source.relation, Store: storeMark{d}, OnFailure: d.health.setStreamErr})}
	}
	ob, err := outbox.Open(cfg.Store.Path, outbox.Options{
		Logger:     log.With("component", "outbox"),
		Registerer: reg,
		OnDurable:  d.src.Ack,
		NoSync:     opts.NoSync,
		Log:        cfg.DeliveryLog.Limits(),
		// The appends waiting for the committer, in bytes (issue 12.7).
		MaxQueuedBytes: int64(cfg.Store.QueueBytes),
	})
	if err != nil {
		return fail(err)
	}
	d.ob = ob
	if d.adminLn != nil {
		// After the store's lock: a second daemon on this store fails on
		// the lock, not on the token file.
		if err := d.loadToken(); err != nil {
			return fail(err)
		}
	}
	d.sd, err = sender.New(cfg.Sender, ob, sender.Options{
		Logger:        log.With("component", "sender"),
		Registerer:    reg,
		Version:       opts.Version,
		ShutdownGrace: cfg.ShutdownTimeout,
		Redact:        d.redactor().Replace,
	})
	if err != nil {
		return fail(err)
	}
	if err := d.openLookup(ctx); err != nil {
		return fail(fmt.Errorf("source: %w", err))
	}
	d.mp, err = mapping.New(cfg.Faveo, d.lk, mapping.Options{Logger: log.With("component", "mapping"), Registerer: reg})
	if err != nil {
		return fail(err)
	}
	if d.adminLn != nil {
		d.admin = &http.Server{Handler: d.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	if d.probeLn != nil {
		d.probe = &http.Server{Handler: d.probeHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return d, nil
}

// openLookup opens the source's by-primary-key reader for the mapping.
func (d *Daemon) openLookup(ctx context.Context) error {
	if d.cfg.Source.IsMySQL() {
		lk, err := binlog.NewLookup(ctx, d.cfg.Source.MySQL(), binlog.LookupOptions{})
		if err == nil {
			d.lk = lk
		}
		return err
	}
	lk, err := cdc.NewLookup(ctx, d.cfg.Source.Postgres(), cdc.LookupOptions{})
	if err == nil {
		d.lk = lk
	}
	return err
}

// prepareStream runs what must come before the stream starts (or starts
// again) and returns the resume token to stream from: PostgreSQL's
// auto_setup (its slot keeps the position), MySQL's stored position
// (mysqlStart).
func (d *Daemon) prepareStream(ctx context.Context) (string, error) {
	if d.mysql != nil {
		return d.mysqlStart(ctx)
	}
	return "", d.autoSetup(ctx)
}

// listen binds admin.listen and admin.probe_listen.
func (d *Daemon) listen() error {
	var err error
	if l := d.cfg.Admin.Listen; l != "off" {
		if d.adminLn, err = net.Listen("tcp", l); err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		d.hosts = apiHosts(d.cfg.Admin, d.adminLn.Addr())
	}
	if l := d.cfg.Admin.ProbeListen; l != "" {
		if d.probeLn, err = net.Listen("tcp", l); err != nil {
			return fmt.Errorf("admin.probe_listen: %w", err)
		}
	}
	return nil
}

// storeInUse explains a port already taken when the reason is a daemon
// already running on this store: its lock says more than the port does.
func storeInUse(path string, listenErr error) error {
	if _, err := os.Stat(path); err != nil {
		return listenErr
	}
	ob, err := outbox.Open(path, outbox.Options{ReadOnly: true, LockTimeout: 300 * time.Millisecond})
	if err == nil {
		ob.Close()
		return listenErr
	}
	if errors.Is(err, outbox.ErrInUse) {
		return fmt.Errorf("%w; %v", err, listenErr)
	}
	return listenErr
}

// loadToken sets the operator API's token: admin.token, else the one
// generated beside the store.
func (d *Daemon) loadToken() error {
	d.token = d.cfg.Admin.Token
	if d.token == "" {
		tok, err := loadOrCreateToken(TokenPath(d.cfg.Store.Path), d.log.With("component", "admin"))
		if err != nil {
			return err
		}
		d.token = tok
	}
	if d.opts.Redactor != nil {
		d.opts.Redactor.Add([]string{d.token})
	}
	return nil
}

// AdminAddr is the admin server's address ("" when it is off).
func (d *Daemon) AdminAddr() string {
	if d.adminLn == nil {
		return ""
	}
	return d.adminLn.Addr().String()
}

// ProbeAddr is the probe server's address ("" without admin.probe_listen).
func (d *Daemon) ProbeAddr() string {
	if d.probeLn == nil {
		return ""
	}
	return d.probeLn.Addr().String()
}

// AdminToken is the operator API's bearer token ("" when admin is off).
func (d *Daemon) AdminToken() string { return d.token }

// Outbox is the daemon's store, for in-process operator calls.
func (d *Daemon) Outbox() *outbox.Outbox { return d.ob }

// Run streams until ctx ends or an error no retry can heal; it always
// shuts down in order: stop intake between batches, commit the outbox and
// acknowledge, stop the stream (final standby status), let deliveries in
// flight finish until shutdown_timeout, close the store.
func (d *Daemon) Run(ctx context.Context) error {
	readerCtx, stopReader := context.WithCancel(context.WithoutCancel(ctx))
	senderCtx, stopSender := context.WithCancel(context.WithoutCancel(ctx))
	auxCtx, stopAux := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAux()
	defer stopSender()
	defer stopReader()

	fatal := make(chan error, 4)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		if err := d.stream(readerCtx); err != nil {
			fatal <- err
		}
	}()
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		if err := d.sd.Run(senderCtx); err != nil {
			fatal <- fmt.Errorf("sender: %w", err)
		}
	}()
	var auxWG sync.WaitGroup
	serve := func(name string, srv *http.Server, ln net.Listener) {
		if srv == nil {
			return
		}
		auxWG.Add(1)
		go func() {
			defer auxWG.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fatal <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	serve("admin", d.admin, d.adminLn)
	serve("admin probes", d.probe, d.probeLn)
	auxWG.Add(2)
	go func() { defer auxWG.Done(); d.pollSource(auxCtx) }()
	go func() { defer auxWG.Done(); d.source.run(auxCtx) }()
	if d.console != nil {
		auxWG.Add(1)
		go func() { defer auxWG.Done(); d.console.Run(auxCtx) }()
	}
	d.log.Info("deskhook running", "store", d.cfg.Store.Path, "admin", d.AdminAddr(), "probes", d.ProbeAddr(),
		"source", d.cfg.Source.Type, "slot", d.cfg.Source.Slot, "endpoints", len(d.cfg.Sender.Endpoints))

	var err error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err = <-fatal:
		d.log.Error("stopping", "err", err)
	}

	// 1. Stop intake between batches, commit what is queued: the outbox
	// reports it durable and the reader acknowledges it...
	d.intakeMu.Lock()
	d.stopIntake = true
	d.intakeMu.Unlock()
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 10*time.Second)
	if ferr := d.ob.Flush(flushCtx); ferr != nil && err == nil && !errors.Is(ferr, outbox.ErrClosed) {
		err = fmt.Errorf("outbox: %w", ferr)
	}
	cancelFlush()
	// 2. ...then the stream stops, sending that acknowledgement last.
	stopReader()
	<-readerDone
	// 3. Deliveries in flight get shutdown_timeout to finish.
	stopSender()
	<-senderDone
	stopAux()
	for _, srv := range []*http.Server{d.admin, d.probe} {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}
	}
	auxWG.Wait()
	if cerr := d.closeAll(); cerr != nil && err == nil {
		err = cerr
	}
	d.log.Info("stopped", "position", d.ob.Position().String())
	return err
}

func (d *Daemon) closeAll() error {
	var errs []error
	if d.sd != nil {
		errs = append(errs, d.sd.Close())
	}
	if d.ob != nil {
		errs = append(errs, d.ob.Close())
	}
	if d.lk != nil {
		d.lk.Close()
	}
	// The listeners, in case they were never served (Shutdown closed
	// those that were: closing them again only says so).
	for _, ln := range []net.Listener{d.adminLn, d.probeLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	return errors.Join(errs...)
}

// stream runs the reader, restarting it with backoff after any error: a
// database that goes away, a dropped slot or publication (unready until
// someone fixes it) or a failing lookup. Only ctx ending stops it. Each
// failure is logged once (again every cdc.RepeatEvery while it lasts).
func (d *Daemon) stream(ctx context.Context) error {
	restarts := 0
	var said cdc.RepeatFilter
	for {
		started := time.Now()
		resume, err := d.prepareStream(ctx)
		d.source.kick() // verify at start (after any setup) and after every restart
		if err == nil {
			err = d.src.Run(ctx, resume, intake{d})
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("replication stream ended")
		}
		d.health.setStreamErr(err)
		d.metrics.streamRestarts.Inc()
		d.metrics.positionLost.Set(boolGauge(isPositionLost(err)))
		if time.Since(started) > time.Minute {
			restarts, said = 0, cdc.RepeatFilter{}
		}
		restarts++
		wait := backoff.Exp(restarts, time.Second, maxStreamBackoff)
		level := slog.LevelError
		if !said.Fresh(err, time.Now()) {
			level = slog.LevelDebug
		}
		d.log.Log(ctx, level, "replication stream stopped; restarting", "err", err, "retry_in", wait)
		// A Map that failed half-way may have applied part of its batch:
		// start again from a clean state.
		d.mp.Reset()
		select {
		case <-ctx.Done():
			return nil
		case <-d.restartStream:
			restarts = 0
		case <-time.After(wait):
		}
	}
}

// intake is the daemon as the reader's handler. Given several queued
// transactions at once it reads what their mapping lacks from the source in
// one round, then maps and appends them one by one, in order, as it would
// one at a time.
//
// After the stream restarts, the source resends what it had not yet
// acknowledged, and the mapper (reset) maps it again, perhaps to other
// bodies: it reads related rows as they are now. That is harmless: the
// outbox skips transactions it has stored, and endpoints only send what is
// stored, so an event already sent keeps its body; a transaction stored in
// part (chunks) was never deliverable, and is mapped again whole, from its
// first chunk, so its events keep their indexes.
type intake struct{ d *Daemon }

func (h intake) Handle(ctx context.Context, b *change.Batch) error {
	return h.d.handle(ctx, b)
}

func (h intake) HandleBatches(ctx context.Context, bs []*change.Batch) error {
	d := h.d
	if len(bs) > 1 {
		// Only this goroutine uses the mapper; shutdown need not wait for
		// the source, so intakeMu is not held.
		if err := d.mp.Prefetch(ctx, bs); err != nil {
			d.sourceReadFailed(ctx, err)
			return fmt.Errorf("mapping transactions %s to %s: %w", bs[0].Pos, bs[len(bs)-1].Pos, err)
		}
	}
	for _, b := range bs {
		if err := d.handle(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// handle maps one batch and appends its events to the outbox.
func (d *Daemon) handle(ctx context.Context, b *change.Batch) error {
	d.intakeMu.Lock()
	if d.stopIntake {
		d.intakeMu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	defer d.intakeMu.Unlock()
	d.health.setStreamErr(nil)
	d.metrics.positionLost.Set(0)

	// Events go to the outbox in groups bounded in bytes (faveo.output_bytes),
	// each waiting for room in the outbox's budget (store.queue_bytes): a
	// batch of large events is never held whole.
	var appendErr error
	events, err := d.mp.MapGroups(ctx, b, func(group []mapping.Event) error {
		appendErr = d.ob.Append(ctx, b.Pos, false, group)
		return appendErr
	})
	if err != nil && appendErr == nil {
		d.sourceReadFailed(ctx, err)
		return fmt.Errorf("mapping transaction %s: %w", b.Pos, err)
	}
	if appendErr == nil {
		d.source.setReadErr(nil)
		appendErr = d.ob.AppendResume(ctx, b.Pos, b.Last, b.Resume, events)
	}
	if appendErr != nil {
		return fmt.Errorf("outbox: %w", appendErr)
	}
	return nil
}

// maxStreamBackoff bounds the wait between restarts of the replication
// stream after an error it cannot heal by itself (a dropped slot): once an
// operator fixes it, the daemon is back within this long.
const maxStreamBackoff = 10 * time.Second

package binlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/backoff"
	"github.com/deskhook/deskhook/change"
)

// ReaderOptions are a Reader's collaborators.
type ReaderOptions struct {
	// Logger receives the reader's logs (nil: none). Passwords never
	// appear; go-mysql's own logs come at debug level.
	Logger *slog.Logger
	// Registerer receives the reader's metrics (nil: none).
	Registerer prometheus.Registerer
	// Hostname is what the server lists for this replica (SHOW SLAVE
	// HOSTS). Default "deskhook".
	Hostname string
	// Now is the clock for progress batches (default time.Now).
	Now func() time.Time
	// OnTableChange, when set, is called with a watched table's name when
	// the stream shows it anew: its first table map in a Run, a changed
	// definition, or DDL naming it (the daemon verifies the schema then).
	// It must not block: it is called from the goroutine reading the
	// stream.
	OnTableChange func(table string)
	// OnFailure, when set, is called with every reason the stream is down:
	// each failed connection the reader retries, and the error Run
	// returns.
	OnFailure func(error)
}

// Reader reads the server's binlog as a replica and hands committed
// transactions of the helpdesk tables to a change.Handler. Create it with
// NewReader; Run it once at a time.
type Reader struct {
	cfg     Config
	opts    ReaderOptions
	log     *slog.Logger
	metrics *metrics
	running atomic.Bool
	queue   atomic.Pointer[change.Queue]

	mu    sync.Mutex
	stats Stats

	// deadAfter overrides how long a silent connection lives (tests).
	deadAfter time.Duration
}

// Stats is a snapshot of the reader's state.
type Stats struct {
	Connected bool
	// ConnectionID is the server's id of the replication connection
	// while connected (KILL it to test a reconnect).
	ConnectionID uint32
	// Handed is the position of the last transaction handed over whole;
	// Resume its resume token.
	Handed change.Position
	Resume string
	// Acknowledged is the highest position passed to Ack.
	Acknowledged change.Position
	// LastCommitTime is the commit time of the last transaction handed
	// over.
	LastCommitTime time.Time
	// Reconnects counts connections after the first in this Reader.
	Reconnects uint64
}

// NewReader returns a Reader for cfg (defaults filled in; Run validates).
func NewReader(cfg Config, opts ReaderOptions) *Reader {
	cfg.SetDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "deskhook"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Reader{cfg: cfg, opts: opts, log: opts.Logger}
	r.metrics = newMetrics(opts.Registerer, r)
	return r
}

// Ack says every transaction whose position is <= pos is durable
// downstream. The binlog keeps no position on the server, so this only
// feeds Stats; the consumer stores the batch's Resume token with its
// position, and passes it to the next Run.
func (r *Reader) Ack(pos change.Position) {
	r.mu.Lock()
	if pos > r.stats.Acknowledged {
		r.stats.Acknowledged = pos
	}
	r.mu.Unlock()
}

// Stats returns a snapshot of the reader's state.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// runState is one Run's bookkeeping, owned by the goroutine reading the
// stream.
type runState struct {
	ctx    context.Context // the Run's
	q      *change.Queue
	resume string // the token Run was given
	anchor string // and its anchor (anchor.go), if any
	dec    *decoder
	// partial is a transaction handed over in part (some chunks), if any:
	// after a reconnect the server sends it again, and the changes handed
	// over are skipped.
	partial *partialTxn
}

type partialTxn struct {
	pos     change.Position
	changes int
	nextSeq int
}

// Run streams from resume — the Resume token of the last transaction
// durable downstream; empty: from the server's current position, a
// choice only the caller can make (nothing before it will be read) —
// until ctx is cancelled (nil), the Handler fails, or an error that
// retrying cannot heal occurs (ErrPositionLost, ErrForeignGTID,
// ErrServerConfig, a stream it cannot decode, refused credentials).
// Connection loss and server restarts are retried with backoff, resuming
// after the last transaction handed over: within one Run no transaction is
// handed over twice, and none is skipped.
func (r *Reader) Run(ctx context.Context, resume string, h change.Handler) error {
	if err := r.cfg.Validate(""); err != nil {
		return fmt.Errorf("binlog: invalid config: %w", err)
	}
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("binlog: Reader.Run called while already running")
	}
	defer r.running.Store(false)

	q := change.NewQueue(r.cfg.QueueBytes)
	r.queue.Store(q)
	defer r.queue.Store(nil)
	runCtx, _, stop := q.FeedInBackground(ctx, h)
	defer stop() // idempotent: Run calls it below for the handler's error

	resume, anchored := splitToken(resume)
	st := &runState{ctx: runCtx, q: q, resume: resume, anchor: anchored}
	err := r.reconnectLoop(runCtx, st)
	handlerErr := stop()
	switch {
	case handlerErr != nil:
		return fmt.Errorf("binlog: handler: %w", handlerErr)
	case ctx.Err() != nil:
		return nil
	}
	return err
}

// reconnectLoop runs connections until ctx ends or an error won't heal.
func (r *Reader) reconnectLoop(ctx context.Context, st *runState) error {
	attempt := 0
	var said change.RepeatFilter
	for {
		handed, began := r.Stats().Handed, time.Now()
		streamed, err := r.session(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		if r.opts.OnFailure != nil && err != nil {
			r.opts.OnFailure(err)
		}
		if permanent(err) {
			r.log.Debug("binlog replication stopped", "err", err) // Run's caller says it
			return err
		}
		if healthySession(streamed, r.Stats().Handed != handed, time.Since(began), r.cfg.ReconnectMax) {
			attempt, said = 0, change.RepeatFilter{}
		}
		attempt++
		delay := backoff.Exp(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)
		level := slog.LevelWarn
		if attempt >= errorAfterAttempts {
			level = slog.LevelError
		}
		if err != nil && !said.Fresh(err, time.Now()) {
			level = slog.LevelDebug // said already
		}
		r.log.Log(ctx, level, "binlog connection failed; reconnecting", "err", err, "attempt", attempt, "retry_in", delay)
		r.metrics.reconnects.Inc()
		r.mu.Lock()
		r.stats.Reconnects++
		r.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// errorAfterAttempts is how many sessions in a row may fail without
// handing anything over before the failure is logged as an ERROR.
const errorAfterAttempts = 5

// healthySession says whether a session that ended in a failure had
// worked: it streamed and handed a transaction over, or stood for longer
// than the longest wait between attempts (an idle helpdesk hands nothing
// over). Only then do the backoff and the repeat filter start afresh: a
// session that connects and then fails at the same event every time (a
// row go-mysql cannot parse, a checksum mismatch) keeps backing off and
// its failure becomes an ERROR, not a WARN every reconnect_min forever.
func healthySession(streamed, handedOver bool, lasted, reconnectMax time.Duration) bool {
	return streamed && (handedOver || lasted > reconnectMax)
}

// session runs one replication connection. streamed reports whether it
// got as far as streaming.
func (r *Reader) session(ctx context.Context, st *runState) (streamed bool, err error) {
	db, mc, err := openSQL(r.cfg.DSN)
	if err != nil {
		return false, &configError{msg: err.Error()}
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		return false, fmt.Errorf("binlog: reading the server's settings: %w", err)
	}
	if err := info.requirementsError(); err != nil {
		return false, err
	}
	loc, err := r.location(info)
	if err != nil {
		return false, err
	}
	if st.dec == nil {
		if err := r.startDecoder(st, mc.DBName, info); err != nil {
			return false, err
		}
	}
	dec := st.dec
	dec.loc, dec.server = loc, info.identity()
	token := dec.g.token()
	// The anchor of the last transaction done, or Run's until one is:
	// before each connection, the server must still hold that
	// transaction where it was read.
	anchored := dec.doneAnchor
	if anchored == "" {
		anchored = st.anchor
	}
	if _, err := checkPosition(ctx, db, info, WithAnchor(token, anchored)); err != nil {
		return false, err
	}
	db.Close()

	idle := max(3*r.cfg.Heartbeat, 15*time.Second)
	if r.deadAfter > 0 {
		idle = r.deadAfter
	}
	d := &dialer{net: mc.Net, addr: mc.Addr, idle: idle}
	defer d.close()
	host, port := mc.Addr, uint16(0)
	if mc.Net != "unix" {
		if h, p, err := net.SplitHostPort(mc.Addr); err == nil {
			n, _ := strconv.ParseUint(p, 10, 16)
			host, port = h, uint16(n)
		}
	}
	var sessionErr error // the decoder's, which go-mysql passes on wrapped
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                r.cfg.ServerID,
		Flavor:                  info.flavor(),
		Host:                    host,
		Port:                    port,
		User:                    mc.User,
		Password:                mc.Passwd,
		Localhost:               r.opts.Hostname,
		TLSConfig:               mc.TLS,
		Dialer:                  d.dial,
		HeartbeatPeriod:         r.cfg.Heartbeat,
		DisableRetrySync:        true, // we reconnect ourselves, from what was handed over
		MaxReconnectAttempts:    1,
		ParseTime:               false, // dates as MySQL prints them; TIMESTAMP in the helpdesk's zone
		TimestampStringLocation: loc,
		VerifyChecksum:          true,
		EventCacheCount:         1, // unused: events are handled as they are read
		Logger:                  slog.New(debugOnly{r.log.Handler()}),
		RowsEventDecodeFunc:     dec.decodeRows,
		SynchronousEventHandler: eventFunc(func(e *replication.BinlogEvent) error {
			if err := dec.event(e); err != nil {
				sessionErr = err
				return err
			}
			return nil
		}),
	})
	start, err := info.startSet(token)
	if err != nil {
		return false, err
	}
	dec.reset()
	defer dec.reset()
	streamer, err := syncer.StartSyncGTID(start)
	if err != nil {
		return false, explainServerError(err)
	}
	r.log.Info("binlog streaming", "server", info.version, "from", token, "server_id", r.cfg.ServerID,
		"time_zone", loc.String(), "connection_id", syncer.LastConnectionID())
	r.setConnected(true, syncer.LastConnectionID())
	defer r.setConnected(false, 0)

	_, err = streamer.GetEvent(ctx) // events are handled by the syncer's goroutine; this waits for its end
	if ctx.Err() != nil {
		d.close()
	}
	// Wait until go-mysql's goroutine has stopped using the decoder.
	if ctx.Err() != nil {
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, _ = streamer.GetEvent(wctx)
		cancel()
		return true, nil
	}
	if sessionErr != nil {
		return true, sessionErr
	}
	return true, explainServerError(err)
}

// startDecoder makes the Run's decoder, starting at the given resume token
// or, without one, at the server's current position.
func (r *Reader) startDecoder(st *runState, db string, info serverInfo) error {
	token := st.resume
	domain := info.domain
	if info.mariadb {
		cur, err := mariaDBDomains(info.current)
		if err != nil {
			return &protocolError{err: err}
		}
		if token != "" {
			domain = info.domainOf(token)
		} else if len(cur) > 1 {
			return &foreignError{msg: fmt.Sprintf("the server's binlog has several GTID domains (gtid_binlog_pos %s); "+
				"deskhook follows one, and needs a resume position naming it", info.current)}
		} else {
			for d, gt := range cur {
				domain, token = d, gt.String()
			}
		}
	} else if token == "" {
		token = info.current
	}
	g, err := newGTIDs(info.mariadb, token, domain, info.serverUUID)
	if err != nil {
		return err
	}
	if st.resume == "" {
		r.log.Info("binlog: no stored position; starting at the server's current one", "position", token)
	}
	st.dec = &decoder{
		log:        r.log,
		tables:     r.newTableCache(db),
		maxChanges: r.cfg.MaxBatchChanges,
		maxBytes:   r.cfg.MaxBatchBytes,
		progress:   r.cfg.ProgressInterval,
		now:        r.opts.Now,
		g:          g,
		lastHanded: r.opts.Now(),
	}
	st.dec.emit = func(d decoded) error { return r.push(st, d) }
	st.dec.onBegin = func(pos change.Position) (beginPlan, error) {
		p := st.partial
		if p == nil {
			return beginPlan{}, nil
		}
		if pos != p.pos {
			return beginPlan{}, &protocolError{err: fmt.Errorf("transaction %d begins while %d, handed over in part, "+
				"was expected again", pos, p.pos)}
		}
		return beginPlan{skipChanges: p.changes, seq: p.nextSeq}, nil
	}
	return nil
}

func (r *Reader) newTableCache(db string) *tableCache {
	c := newTableCache(r.log, db, r.cfg.Tables.List())
	c.onChange = r.opts.OnTableChange
	return c
}

// push hands a batch over: into the queue, waiting while it is full
// (the stream is not read meanwhile, so the server waits too).
func (r *Reader) push(st *runState, d decoded) error {
	// What the bookkeeping needs, read before the batch is handed over:
	// from then on it is the handler's, which may change it.
	b := d.batch
	pos, last, seq, changes, resume, at := b.Pos, b.Last, b.Seq, len(b.Changes), b.Resume, b.CommitTime
	for !st.q.TryPush(b, d.bytes) {
		select {
		case <-st.q.HasRoom():
		case <-st.ctx.Done():
			return errStopped
		}
	}
	if last {
		st.partial = nil
		r.metrics.transactions.Inc()
		r.mu.Lock()
		r.stats.Handed, r.stats.Resume, r.stats.LastCommitTime = pos, resume, at
		r.mu.Unlock()
	} else {
		if st.partial == nil || st.partial.pos != pos {
			st.partial = &partialTxn{pos: pos}
		}
		st.partial.changes += changes
		st.partial.nextSeq = seq + 1
	}
	r.metrics.changes.Add(float64(changes))
	return nil
}

// location is the helpdesk's time zone: configured, or the server's.
func (r *Reader) location(info serverInfo) (*time.Location, error) {
	if r.cfg.TimeZone != "" {
		loc, err := zoneByName(r.cfg.TimeZone)
		if err != nil {
			return nil, &configError{msg: fmt.Sprintf("source.time_zone %q: %v", r.cfg.TimeZone, err)}
		}
		return loc, nil
	}
	loc, err := serverZone(info.timeZone, info.systemZone)
	if err != nil {
		return nil, &configError{msg: err.Error()}
	}
	return loc, nil
}

func (r *Reader) setConnected(up bool, id uint32) {
	r.mu.Lock()
	r.stats.Connected, r.stats.ConnectionID = up, id
	r.mu.Unlock()
}

// eventFunc adapts a function to go-mysql's EventHandler.
type eventFunc func(*replication.BinlogEvent) error

func (f eventFunc) HandleEvent(e *replication.BinlogEvent) error { return f(e) }

// debugOnly passes go-mysql's logs on at debug level: what matters of them
// reaches the reader as errors, which it logs itself.
type debugOnly struct{ h slog.Handler }

func (d debugOnly) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d debugOnly) Handle(ctx context.Context, rec slog.Record) error {
	rec.Level = slog.LevelDebug
	rec.Message = "go-mysql: " + rec.Message
	return d.h.Handle(ctx, rec)
}

func (d debugOnly) WithAttrs(as []slog.Attr) slog.Handler { return debugOnly{d.h.WithAttrs(as)} }
func (d debugOnly) WithGroup(n string) slog.Handler       { return debugOnly{d.h.WithGroup(n)} }

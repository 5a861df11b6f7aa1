package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/deskhook/deskhook/backoff"
	"github.com/deskhook/deskhook/change"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives committed transactions, in commit order: the contract
// every source reader shares (see change.Handler).
type Handler = change.Handler

// BatchHandler is a Handler that takes several transactions at once (see
// change.BatchHandler).
type BatchHandler = change.BatchHandler

// MaxHandleBatches bounds the batches of one HandleBatches call.
const MaxHandleBatches = change.MaxHandleBatches

// HandlerFunc adapts a function to Handler.
type HandlerFunc = change.HandlerFunc

// ReaderOptions are a Reader's collaborators.
type ReaderOptions struct {
	// Logger receives the reader's logs (nil: none). DSNs never appear.
	Logger *slog.Logger
	// Registerer receives the reader's metrics (nil: none). Registering two
	// Readers on one Registerer panics, as prometheus.MustRegister does.
	Registerer prometheus.Registerer
	// FinalAckWait bounds how long a shutting-down Run waits for the
	// acknowledgement of transactions already handed over, so its final
	// status update can confirm them. Default 2s; negative: no wait.
	FinalAckWait time.Duration
	// ApplicationName is shown in pg_stat_replication unless the DSN sets
	// one. Default "deskhook".
	ApplicationName string
	// Store is the consumer's durable record of the source (nil: none).
	// With it, Run refuses a slot that does not fit the store (ErrSlotGap)
	// and confirms nothing the store neither holds nor has recorded; see
	// gap.go.
	Store Store
	// OnFailure, if set, is called with every reason the stream is down:
	// each failed connection the reader retries, and the error Run returns.
	OnFailure func(error)
	// OnRelation, if set, is called with schema.table whenever the stream
	// describes a configured table (on each connection before its first
	// change, and again when its definition changed), so the caller can
	// verify the schema. It is called on the connection goroutine and
	// must not block.
	OnRelation func(table string)
}

// Reader tails the configured slot and hands committed transactions to a
// Handler. Create it with NewReader; Run it once at a time.
type Reader struct {
	cfg     Config
	opts    ReaderOptions
	log     *slog.Logger
	prog    *progress
	rels    *relationCache // outlives connections and runs (rename detection)
	metrics *metrics
	running atomic.Bool
	queue   atomic.Pointer[change.Queue]
}

// NewReader returns a Reader for cfg (defaults filled in; Run validates).
func NewReader(cfg Config, opts ReaderOptions) *Reader {
	cfg.SetDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.FinalAckWait == 0 {
		opts.FinalAckWait = 2 * time.Second
	}
	if opts.ApplicationName == "" {
		opts.ApplicationName = "deskhook"
	}
	r := &Reader{cfg: cfg, opts: opts, log: opts.Logger, prog: newProgress()}
	watched := make([]string, 0, 9)
	for _, t := range cfg.Tables.List() {
		watched = append(watched, cfg.displayName(t))
	}
	r.rels = newRelationCache(r.log, watched)
	r.metrics = newMetrics(opts.Registerer, r)
	r.rels.onRelation, r.rels.truncates = opts.OnRelation, r.metrics.truncates
	return r
}

// Ack says every transaction whose position is <= pos is durable
// downstream. Call it only once the Last chunk of a transaction has been
// handled. The slot is confirmed accordingly with the next status update;
// a restart never hands over an acknowledged transaction again.
func (r *Reader) Ack(pos change.Position) { r.prog.ack(pos) }

// Stats returns a snapshot of the reader's state.
func (r *Reader) Stats() Stats { return r.prog.stats() }

// runState is one Run's bookkeeping, owned by the connection goroutine.
type runState struct {
	q           *change.Queue
	handlerDone <-chan struct{}
	dec         *decoder
	// handedTxn is the last transaction handed over whole in this run;
	// partial is one handed over in part (some chunks), if any.
	handedTxn change.Position
	partial   *partialTxn
}

type partialTxn struct {
	pos     change.Position
	changes int // changes handed over
	nextSeq int
}

// Run streams until ctx is cancelled (then it sends a final standby status
// and returns nil), the Handler fails, or an error that retrying cannot
// heal occurs (a missing slot or publication, wal_level not logical, a
// renamed table: see the Err* values). Connection loss and server restarts
// are retried with backoff, resuming from the acknowledged position;
// within one Run no transaction is handed over twice.
func (r *Reader) Run(ctx context.Context, h Handler) error {
	if err := r.cfg.Validate(""); err != nil {
		return fmt.Errorf("cdc: invalid config: %w", err)
	}
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("cdc: Reader.Run called while already running")
	}
	defer r.running.Store(false)

	q := change.NewQueue(r.cfg.QueueBytes)
	r.queue.Store(q)
	defer r.queue.Store(nil)
	runCtx, handlerDone, stop := q.FeedInBackground(ctx, h)
	defer stop() // idempotent: Run calls it below for the handler's error

	if r.opts.Store != nil {
		recorderDone := make(chan struct{})
		defer func() { <-recorderDone }()
		go func() { defer close(recorderDone); r.recordConfirmations(runCtx) }()
	}

	st := &runState{q: q, handlerDone: handlerDone}
	st.dec = newDecoder(r.rels, r.cfg.MaxBatchChanges, r.cfg.MaxBatchBytes)
	st.dec.onBegin = func(pos change.Position, xid uint32) (beginPlan, error) { return r.plan(st, pos, xid) }
	err := r.reconnectLoop(runCtx, st)
	handlerErr := stop()
	switch {
	case handlerErr != nil:
		err = fmt.Errorf("cdc: handler: %w", handlerErr)
	case ctx.Err() != nil:
		return nil
	}
	r.failed(err)
	return err
}

// failed tells OnFailure why the stream is down.
func (r *Reader) failed(err error) {
	if err != nil && r.opts.OnFailure != nil {
		r.opts.OnFailure(err)
	}
}

// recordConfirmations has the store record the positions the reader
// wishes to confirm beyond what it holds (the server's WAL end, while
// idle), at most once per status interval, and lets the reader confirm
// them once recorded.
func (r *Reader) recordConfirmations(ctx context.Context) {
	var last time.Time
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.prog.want:
		}
		if wait := r.cfg.StatusInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		if err := r.recordWish(ctx); err != nil && ctx.Err() == nil {
			if failures++; failures == 1 || failures%100 == 0 {
				r.log.Warn("cannot record the position to confirm in the store; the slot keeps its WAL "+
					"meanwhile", "err", err, "failures", failures)
			}
			signal(r.prog.want) // try again next interval
		} else if err == nil {
			failures = 0
		}
	}
}

// recordWish records the wished position, if any, and allows it.
func (r *Reader) recordWish(ctx context.Context) error {
	pos, source := r.prog.wish()
	if pos == 0 {
		return nil
	}
	if err := r.opts.Store.RecordConfirmed(ctx, source, change.Position(pos)); err != nil {
		return err
	}
	r.prog.mayConfirm(pos)
	return nil
}

// plan decides, as a transaction begins, whether it was handed over already.
func (r *Reader) plan(st *runState, pos change.Position, xid uint32) (beginPlan, error) {
	if pos <= r.prog.ackedPos() || pos <= st.handedTxn {
		return beginPlan{skip: true}, nil
	}
	if p := st.partial; p != nil {
		if pos != p.pos {
			return beginPlan{}, fmt.Errorf("transaction %s begins while %s, handed over in part, was expected again", pos, p.pos)
		}
		return beginPlan{skipChanges: p.changes, seq: p.nextSeq}, nil
	}
	return beginPlan{}, nil
}

// reconnectLoop runs connections until ctx ends or an error won't heal.
func (r *Reader) reconnectLoop(ctx context.Context, st *runState) error {
	attempt := 0
	var said RepeatFilter
	for {
		streamed, err := r.session(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		err = explainServerError(err, r.cfg)
		if permanent(err) {
			return err // Run's caller says it
		}
		r.failed(err)
		if streamed {
			attempt, said = 0, RepeatFilter{}
		}
		attempt++
		delay := backoff.Exp(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)
		level := slog.LevelWarn
		if !said.Fresh(err, time.Now()) {
			level = slog.LevelDebug // said already
		}
		r.log.Log(ctx, level, "replication connection failed; reconnecting", "slot", r.cfg.Slot, "err", err,
			"attempt", attempt, "retry_in", delay)
		r.metrics.reconnects.Inc()
		r.prog.mu.Lock()
		r.prog.reconnects++
		r.prog.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// RepeatEvery and RepeatFilter: see package change, which both sources
// share them from.
const RepeatEvery = change.RepeatEvery

type RepeatFilter = change.RepeatFilter

// enqueued records a batch as handed over.
func (r *Reader) enqueued(st *runState, d decoded) {
	b := d.batch
	if b.Last {
		st.handedTxn, st.partial = b.Pos, nil
		r.metrics.transactions.Inc()
	} else {
		if st.partial == nil || st.partial.pos != b.Pos {
			st.partial = &partialTxn{pos: b.Pos}
		}
		st.partial.changes += len(b.Changes)
		st.partial.nextSeq = b.Seq + 1
	}
	r.metrics.changes.Add(float64(len(b.Changes)))
}

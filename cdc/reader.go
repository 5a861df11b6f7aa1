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

// Handler receives committed transactions, in commit order; large ones in
// several chunks (change.Batch Seq/Last). Handle may block for minutes: the
// reader keeps answering the server meanwhile. The reader does not touch a
// batch after handing it over. An error stops Run.
type Handler interface {
	Handle(ctx context.Context, b *change.Batch) error
}

// BatchHandler is a Handler that can take several transactions at once:
// when it implements this, the reader calls HandleBatches with every batch
// queued, up to MaxHandleBatches, in commit order, instead of Handle with
// one. A consumer that reads the source for what it lacks can then do it
// for all of them in one round, and store them together. The same rules
// hold as for Handle; the slice itself is the reader's, reused after
// HandleBatches returns (the batches are not).
type BatchHandler interface {
	Handler
	HandleBatches(ctx context.Context, bs []*change.Batch) error
}

// MaxHandleBatches bounds the batches of one HandleBatches call. Their
// memory is bounded anyway (queue_bytes); this bounds what one call reads
// ahead from the source (a few hundred transactions already make a read
// round cheap per transaction).
const MaxHandleBatches = 512

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *change.Batch) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b *change.Batch) error { return f(ctx, b) }

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
	queue   atomic.Pointer[queue]
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
	watched := make([]string, 0, 7)
	for _, t := range cfg.Tables.List() {
		watched = append(watched, cfg.displayName(t))
	}
	r.rels = newRelationCache(r.log, watched)
	r.metrics = newMetrics(opts.Registerer, r)
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
	q           *queue
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

	q := newQueue(r.cfg.QueueBytes)
	r.queue.Store(q)
	defer r.queue.Store(nil)
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// The handler goroutine: the only one that calls Handle, so the
	// connection goroutine never waits for the consumer.
	handlerDone := make(chan struct{})
	var handlerErr error
	go func() {
		defer close(handlerDone)
		bh, many := h.(BatchHandler)
		most := 1
		if many {
			most = MaxHandleBatches
		}
		var bs []*change.Batch
		for {
			var bytes int
			var err error
			bs, bytes, err = q.pop(runCtx, bs[:0], most)
			if err != nil {
				return
			}
			if many {
				err = bh.HandleBatches(runCtx, bs)
			} else {
				err = h.Handle(runCtx, bs[0])
			}
			clear(bs) // the handler owns them now
			q.release(bytes)
			if err != nil {
				if runCtx.Err() == nil {
					handlerErr = err
					cancel(err)
				}
				return
			}
		}
	}()

	st := &runState{q: q, handlerDone: handlerDone}
	st.dec = newDecoder(r.rels, r.cfg.MaxBatchChanges, r.cfg.MaxBatchBytes)
	st.dec.onBegin = func(pos change.Position, xid uint32) (beginPlan, error) { return r.plan(st, pos, xid) }
	err := r.reconnectLoop(runCtx, st)
	cancel(nil)
	<-handlerDone
	switch {
	case handlerErr != nil:
		return fmt.Errorf("cdc: handler: %w", handlerErr)
	case ctx.Err() != nil:
		return nil
	}
	return err
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
	for {
		streamed, err := r.session(ctx, st)
		if ctx.Err() != nil {
			return nil
		}
		err = explainServerError(err, r.cfg)
		if permanent(err) {
			r.log.Error("replication stopped", "slot", r.cfg.Slot, "err", err)
			return err
		}
		if streamed {
			attempt = 0
		}
		attempt++
		delay := backoff.Exp(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)
		r.log.Warn("replication connection failed; reconnecting", "slot", r.cfg.Slot, "err", err,
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

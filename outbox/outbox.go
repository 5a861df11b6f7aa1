package outbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sync/semaphore"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// Options tune an Outbox. The zero value is usable.
type Options struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: no metrics

	// OnDurable is called by the committer goroutine after each commit that
	// completed or skipped source transactions, with the highest such
	// position: every transaction at or before it is stored. It must not
	// block for long (it delays the next commit) and must not call the
	// Outbox's writing methods.
	OnDurable func(change.Position)

	// NoSync skips fsync. For tests only: a crash may lose acknowledged data.
	NoSync bool
	// ReadOnly opens the file shared and read-only, for CLI commands while
	// no daemon runs; writing methods fail.
	ReadOnly bool
	// LockTimeout is how long Open waits for another process to release the
	// file before failing (default 1s).
	LockTimeout time.Duration
	// QueueLen bounds the appends and operator requests queued for the
	// committer (default 256); Append blocks while it is full.
	QueueLen int
	// MaxQueuedBytes bounds the payload bytes of appends waiting for the
	// committer (default 32 MiB), so a huge transaction flows through in
	// bounded memory; Append blocks while it is used up.
	MaxQueuedBytes int64
	// MaxGroupEvents bounds the events written in one commit (default
	// 5000), so one commit never grows without limit during a backlog.
	MaxGroupEvents int
	// ResultDelay is how long delivery results alone wait for more results
	// before they are committed (default 10ms). A crash loses the results
	// of the last ResultDelay: those events are delivered again.
	ResultDelay time.Duration
	// MaxSize limits the file's size in bytes (0: no limit). Reaching it is a
	// write error that stops intake, like a full disk.
	MaxSize int
	// Log sets the delivery log's retention (docs/delivery-log.md). The
	// zero value records nothing and prunes nothing.
	Log LogLimits
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 256
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 32 << 20
	}
	if o.MaxGroupEvents <= 0 {
		o.MaxGroupEvents = 5000
	}
	if o.ResultDelay <= 0 {
		o.ResultDelay = 10 * time.Millisecond
	}
}

var (
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("outbox: closed")
	// ErrReadOnly is returned by writing methods of a read-only Outbox.
	ErrReadOnly = errors.New("outbox: opened read-only")
	// ErrNotFound is returned for an unknown endpoint or dead letter.
	ErrNotFound = errors.New("outbox: not found")
	// ErrInUse is wrapped by Open's error when another process holds the
	// file (the daemon, while a CLI command tries to open it).
	ErrInUse           = errors.New("in use by another deskhook process")
	errNoSubscriptions = errors.New("outbox: Append before SetSubscriptions: " +
		"events would reach no endpoint (the sender must subscribe before the source starts)")
)

var (
	bucketMeta      = []byte("meta")
	bucketEvents    = []byte("events")
	bucketRefs      = []byte("refs")
	bucketEndpoints = []byte("endpoints")
	bucketPending   = []byte("pending")
	bucketDead      = []byte("dead")
	keyVersion      = []byte("version")
	keyPosition     = []byte("position")
	keyState        = []byte("state")
)

const layoutVersion = 1

// layoutLog is the layout version of a file with the delivery log and the
// events' indexes (log.go, eventidx.go); it reads chunked payloads too
// (layoutChunked). A file of version 1 or 2 is upgraded when it is opened
// for writing (load), and read as one with an empty log until then; older
// deskhook versions refuse a file of version 3.
const layoutLog = 3

// fileGrowStep is how much the file grows at a time once it is large.
const fileGrowStep = 4 << 20

// Outbox is the open store. Its methods are safe for concurrent use.
type Outbox struct {
	path string
	db   *bolt.DB
	log  *slog.Logger
	opts Options
	m    *metrics

	in        chan request // appends and operator requests, in order
	budget    *semaphore.Weighted
	sendMu    sync.RWMutex // held shared while sending on in; Close takes it to stop senders
	closed    bool
	resMu     sync.Mutex
	results   []Result
	resSpare  []Result
	resSignal chan struct{}
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	stored    atomic.Uint64 // the stored position
	intakeErr atomic.Pointer[error]
	subsSet   atomic.Bool

	// The delivery log's limits and size (logprune.go).
	logLimits  atomic.Pointer[LogLimits]
	logCount   atomic.Int64
	logBytes   atomic.Int64
	pruneWake  chan struct{}
	pruneStop  context.CancelFunc
	prunerDone chan struct{}
	// mapTouched: bytes through the file's mapping since its pages were
	// last dropped (payloads.go).
	mapTouched atomic.Int64

	epMu sync.RWMutex
	eps  map[string]*endpointCounters

	// Owned by the committer goroutine.
	c committerState
}

type endpointCounters struct {
	depth atomic.Int64 // pending entries
	dead  atomic.Int64 // dead letters
}

// Open opens or creates the store at path. It fails quickly with a clear
// error when another process holds the file.
func Open(path string, opts Options) (*Outbox, error) {
	opts.setDefaults()
	db, warnings, err := openChecked(path, opts, &bolt.Options{
		Timeout:        opts.LockTimeout,
		NoSync:         opts.NoSync,
		ReadOnly:       opts.ReadOnly,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true, // fewer pages per commit; the freelist is rebuilt at open
		MaxSize:        opts.MaxSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, inUse(path, opts)
	}
	if err != nil {
		return nil, err
	}
	// bbolt grows a file beyond 16 MiB in steps of AllocSize (default
	// 16 MiB, each a truncate and an fsync): smaller steps keep the file
	// closer to what it holds (issue 7 bounds it at twice the undelivered
	// events), at a few more growth fsyncs while a backlog is stored.
	db.AllocSize = fileGrowStep
	o := &Outbox{
		path:      path,
		db:        db,
		log:       opts.Logger,
		opts:      opts,
		in:        make(chan request, opts.QueueLen),
		budget:    semaphore.NewWeighted(opts.MaxQueuedBytes),
		resSignal: make(chan struct{}, 1),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		eps:       map[string]*endpointCounters{},
		pruneWake: make(chan struct{}, 1),
	}
	lim := opts.Log
	o.logLimits.Store(&lim)
	if err := protect(o.load); err != nil {
		_ = db.Close()
		if isDamage(err) {
			return nil, &DamageError{Path: path, What: "reading it failed: " + err.Error()}
		}
		return nil, fmt.Errorf("outbox: store %s: %w", path, err)
	}
	o.m = newMetrics(opts.Registerer, o)
	if opts.ReadOnly {
		close(o.done)
	} else {
		go o.committer()
		o.startPruner()
	}
	for _, w := range warnings {
		o.log.Warn("outbox store: "+w, "path", path)
	}
	o.log.Info("outbox opened", "path", path, "position", o.Position().String(), "endpoints", len(o.eps))
	return o, nil
}

// load creates the buckets of a new file and reads the state the committer
// and the counters start from.
func (o *Outbox) load() error {
	if !o.opts.ReadOnly {
		err := o.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketMeta, bucketEvents, bucketRefs, bucketEndpoints, bucketPayloads} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			meta := tx.Bucket(bucketMeta)
			switch v := meta.Get(keyVersion); {
			case v == nil:
			case len(v) == 1 && (v[0] == layoutVersion || v[0] == layoutChunked):
				o.log.Info("outbox store upgraded: it gets a delivery log (layout version 3)", "path", o.path, "from", v[0])
			default:
				return nil // checked below
			}
			if err := createLogBuckets(tx); err != nil {
				return err
			}
			if err := createEventIdx(tx); err != nil {
				return err
			}
			return meta.Put(keyVersion, []byte{layoutLog})
		})
		if err != nil {
			return err
		}
	}
	return o.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not a deskhook outbox (no meta bucket)")
		}
		// Read-only (the CLI while no daemon runs), a file not upgraded
		// yet is read as one with an empty log.
		v := meta.Get(keyVersion)
		if len(v) != 1 || v[0] != layoutLog && !(o.opts.ReadOnly && (v[0] == layoutVersion || v[0] == layoutChunked)) {
			return fmt.Errorf("layout version %v; this deskhook reads version %d (and %d, %d read-only)", v, layoutLog, layoutVersion, layoutChunked)
		}
		o.c.layout = v[0]
		o.c.log = readLogStat(meta)
		o.logCount.Store(o.c.log.count)
		o.logBytes.Store(o.c.log.bytes)
		if v := meta.Get(keyPosition); len(v) == 8 {
			o.stored.Store(binary.BigEndian.Uint64(v))
		}
		if k, _ := tx.Bucket(bucketEvents).Cursor().Last(); k != nil {
			o.c.maxKey = keyFrom(k)
		}
		return tx.Bucket(bucketEndpoints).ForEachBucket(func(name []byte) error {
			eb := tx.Bucket(bucketEndpoints).Bucket(name)
			c := &endpointCounters{}
			c.depth.Store(int64(eb.Bucket(bucketPending).Stats().KeyN))
			c.dead.Store(int64(eb.Bucket(bucketDead).Stats().KeyN))
			o.eps[string(name)] = c
			return nil
		})
	})
}

// Path is the store's file.
func (o *Outbox) Path() string { return o.path }

// Position is the stored position: every source transaction at or before
// it is in the store.
func (o *Outbox) Position() change.Position { return change.Position(o.stored.Load()) }

// Err is the error that stopped intake, or nil.
func (o *Outbox) Err() error {
	if p := o.intakeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (o *Outbox) stopIntake(err error) {
	err = fmt.Errorf("outbox: writing store %s failed; intake stopped, nothing more is acknowledged "+
		"(what was stored is kept; fix the cause, e.g. free disk space, and restart): %w", o.path, err)
	if o.intakeErr.CompareAndSwap(nil, &err) {
		o.log.Error("outbox intake stopped", "err", err)
		o.m.intakeStopped()
	}
}

// Append queues one source transaction, or one chunk of it, for the next
// group commit; last marks the chunk that ends the transaction (all chunks
// share pos). Events must carry pos and be in index order; the Outbox keeps
// the slice until it is written, so the caller must not change it.
//
// Append returns once the request is queued, blocking only while the queue
// is full; durability is reported later through Options.OnDurable, and the
// subscriptions hear of the new deliveries (Subscription.Notify) after the
// same commit: nothing is delivered before it is durable, so an event sent
// again after a crash is the one stored, byte for byte. A transaction at or
// before the stored position is skipped but still reported. After a write
// error Append returns that error.
func (o *Outbox) Append(ctx context.Context, pos change.Position, last bool, events []mapping.Event) error {
	return o.AppendResume(ctx, pos, last, "", events)
}

// AppendResume is Append for a source that keeps no position on its
// server (MySQL/MariaDB's binlog): resume, the source's token for
// "everything up to and including pos" (change.Batch.Resume), is stored
// with the position in the same commit as the transaction's last chunk,
// so the store always says where to read on from (Resume). A last chunk
// without events (a source's progress batch) still advances both. An empty
// resume leaves the stored token as it is.
func (o *Outbox) AppendResume(ctx context.Context, pos change.Position, last bool, resume string,
	events []mapping.Event) error {
	if err := o.Err(); err != nil {
		return err
	}
	if o.opts.ReadOnly {
		return ErrReadOnly
	}
	if !o.subsSet.Load() {
		return errNoSubscriptions
	}
	if pos == 0 {
		return errors.New("outbox: Append at position 0")
	}
	for i := range events {
		e := &events[i]
		switch {
		case e.Pos != pos:
			return fmt.Errorf("outbox: event %q has position %s but its transaction is at %s", e.ID, e.Pos, pos)
		case e.ID == "" || len(e.ID) > 255:
			return fmt.Errorf("outbox: event %s of transaction %s has an id of %d bytes (want 1-255)", KeyOf(e), pos, len(e.ID))
		case e.Type == "" || len(e.Type) > 255:
			return fmt.Errorf("outbox: event %q has a type of %d bytes (want 1-255)", e.ID, len(e.Type))
		case i > 0 && e.Index <= events[i-1].Index:
			return fmt.Errorf("outbox: event %q has index %d after index %d", e.ID, e.Index, events[i-1].Index)
		}
	}
	var size int64
	for i := range events {
		size += int64(len(events[i].Payload)) + 256
	}
	size = min(size, o.opts.MaxQueuedBytes)
	if err := o.budget.Acquire(ctx, size); err != nil {
		return err
	}
	if err := o.send(ctx, request{pos: pos, last: last, resume: resume, events: events, bytes: size}); err != nil {
		o.budget.Release(size)
		return err
	}
	return nil
}

func (o *Outbox) send(ctx context.Context, r request) error {
	o.sendMu.RLock()
	defer o.sendMu.RUnlock()
	if o.closed {
		return ErrClosed
	}
	select {
	case o.in <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until everything queued before it is committed (and reported
// through OnDurable).
func (o *Outbox) Flush(ctx context.Context) error {
	return o.do(ctx, nil)
}

// Close commits what is queued, stops the committer and closes the file.
// Callers stop appending and recording first.
func (o *Outbox) Close() error {
	o.closeOnce.Do(func() {
		o.sendMu.Lock()
		o.closed = true
		close(o.quit)
		o.sendMu.Unlock()
		<-o.done
		o.stopPruner()
		o.m.unregister()
		o.closeErr = o.db.Close()
		o.log.Info("outbox closed", "position", o.Position().String())
	})
	return o.closeErr
}

// enqueue queues op (see do) and returns where its commit is answered.
func (o *Outbox) enqueue(ctx context.Context, op func(g *group) error) (<-chan error, error) {
	if o.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	done := make(chan error, 1)
	if err := o.send(ctx, request{op: op, barrier: op == nil, done: done}); err != nil {
		return nil, err
	}
	return done, nil
}

// do runs op in a write transaction of its own, in order with the appends
// queued before it, and waits for its commit. A nil op is a barrier.
func (o *Outbox) do(ctx context.Context, op func(g *group) error) error {
	done, err := o.enqueue(ctx, op)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

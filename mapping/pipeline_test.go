package mapping_test

// The test pipeline: a fresh testenv database, the simulator on a
// deterministic clock, cdc's real replication stream (Setup + Reader) and the
// mapper fed live by the reader, with cdc.Lookup as its Source. On MariaDB
// (newMySQLPipeline, pipeline_mysql_test.go): binlog's Reader and Lookup.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testAppKey is the APP_KEY of the tests' helpdesk.
const testAppKey = "base64:q2Ko9Zf1NnQ3m7bL0a8cW4xYtR6uV2sE9dH1jK5pG3A="

// clockStart is the simulator's first timestamp; each action advances it.
var clockStart = time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)

type pipeline struct {
	t    testing.TB
	db   *testenv.DB
	pool *pgxpool.Pool
	hd   *testenv.Helpdesk
	cfg  cdc.Config
	now  time.Time
	my   *mysqlPipe // set on MariaDB: db, pool and cfg are not
}

var slotSeq atomic.Int64

// newPipeline gives a fresh database and simulator. Nothing is replicated
// until setup: what the test writes before is what deskhook never saw.
func newPipeline(t testing.TB) *pipeline {
	t.Helper()
	db := testenv.Postgres(t)
	p := &pipeline{t: t, db: db, pool: db.Pool(t), now: clockStart}
	p.hd = testenv.NewHelpdesk(p.pool)
	p.hd.Now = func() time.Time {
		// Every read of the clock is one simulated action: a minute later.
		at := p.now
		p.now = p.now.Add(time.Minute)
		return at
	}
	p.cfg = cdc.Defaults()
	p.cfg.DSN = db.DSN
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	p.cfg.Slot = fmt.Sprintf("m%d_%s", slotSeq.Add(1), strings.Trim(name, "_"))
	p.cfg.Publication = p.cfg.Slot
	return p
}

func (p *pipeline) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	p.t.Cleanup(cancel)
	return ctx
}

// setup creates the publication and slot: from here on, writes stream.
func (p *pipeline) setup() {
	p.t.Helper()
	if p.my != nil {
		p.my.setup(p)
		return
	}
	if _, err := cdc.Setup(p.ctx(), p.cfg); err != nil {
		p.t.Fatalf("cdc.Setup: %v", err)
	}
	p.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The walsender of the last reader may still be exiting: its slot
		// is "in use" for a moment after the reader returned.
		for {
			_, err := cdc.Teardown(ctx, p.cfg)
			if err == nil {
				return
			}
			if !strings.Contains(err.Error(), "in use") || ctx.Err() != nil {
				p.t.Errorf("cdc.Teardown: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// must fails the test on a simulator error and returns the write.
func (p *pipeline) must(w testenv.Write, err error) testenv.Write {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
	return w
}

// exec runs SQL as the helpdesk would, in one transaction.
func (p *pipeline) exec(sql string, args ...any) {
	p.t.Helper()
	if p.my != nil {
		p.my.exec(p, sql, args...)
		return
	}
	p.db.Exec(p.t, sql, args...)
}

// markerSQL writes a change to a published table the mapper ignores; seeing
// it in the stream means everything written before it has arrived.
const markerSQL = `UPDATE department SET name = name WHERE id = 1`

// streamOptions tune stream.
type streamOptions struct {
	maxBatchChanges int
	queueBytes      int
	onBatch         func(b *change.Batch, events []mapping.Event) // instead of collecting events
}

// stream replicates everything written since setup through a Mapper built
// from mcfg and returns the events, in order. The mapper is returned too,
// so a test can stream more later with the same state.
func (p *pipeline) stream(m *mapping.Mapper, opts streamOptions) []mapping.Event {
	p.t.Helper()
	if p.my != nil {
		return p.my.stream(p, m, opts)
	}
	p.exec(markerSQL)
	cfg := p.cfg
	if opts.maxBatchChanges > 0 {
		cfg.MaxBatchChanges = opts.maxBatchChanges
	}
	if opts.queueBytes > 0 {
		cfg.QueueBytes = opts.queueBytes
	}
	reader := cdc.NewReader(cfg, cdc.ReaderOptions{FinalAckWait: -1})
	return p.streamThrough(m, opts, reader.Run, reader.Ack, func(c change.Change) bool {
		return c.Table != nil && c.Table.Name == "department"
	})
}

// streamThrough maps what run streams through m until a change isMarker
// arrives; ack (when set) is told of each transaction mapped.
func (p *pipeline) streamThrough(m *mapping.Mapper, opts streamOptions, run func(context.Context, change.Handler) error,
	ack func(change.Position), isMarker func(change.Change) bool) []mapping.Event {
	p.t.Helper()
	ctx, cancel := context.WithCancel(p.ctx())
	defer cancel()
	var (
		mu     sync.Mutex
		events []mapping.Event
		done   = make(chan struct{})
		once   sync.Once
	)
	handler := change.HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		evs, err := m.Map(ctx, b)
		if err != nil {
			return err
		}
		if opts.onBatch != nil {
			opts.onBatch(b, evs)
		} else {
			mu.Lock()
			events = append(events, evs...)
			mu.Unlock()
		}
		if b.Last && ack != nil {
			ack(b.Pos)
		}
		for _, c := range b.Changes {
			if isMarker(c) {
				once.Do(func() { close(done) })
			}
		}
		return nil
	})
	runErr := make(chan error, 1)
	go func() { runErr <- run(ctx, handler) }()
	select {
	case <-done:
		cancel()
		if err := <-runErr; err != nil {
			p.t.Fatalf("reader: %v", err)
		}
	case err := <-runErr:
		p.t.Fatalf("reader stopped before the marker arrived: %v", err)
	case <-time.After(4 * time.Minute):
		p.t.Fatal("timed out waiting for the stream")
	}
	mu.Lock()
	defer mu.Unlock()
	return events
}

// mapper builds a Mapper on a cdc.Lookup of the pipeline's database.
func (p *pipeline) mapper(mcfg mapping.Config, opts mapping.Options) *mapping.Mapper {
	p.t.Helper()
	var src mapping.Source
	if p.my != nil {
		src = p.my.lookup(p)
	} else {
		lookup, err := cdc.NewLookup(p.ctx(), p.cfg, cdc.LookupOptions{})
		if err != nil {
			p.t.Fatal(err)
		}
		p.t.Cleanup(lookup.Close)
		src = lookup
	}
	m, err := mapping.New(mcfg, src, opts)
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

package binlog

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// collector is a Handler recording every batch.
type collector struct {
	mu      sync.Mutex
	batches []*change.Batch
	changed chan struct{}
	fail    error
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) Handle(_ context.Context, b *change.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.batches = append(c.batches, b)
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) all() []*change.Batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*change.Batch(nil), c.batches...)
}

// waitFor waits until cond holds for the batches so far.
func (c *collector) waitFor(t *testing.T, what string, timeout time.Duration, cond func([]*change.Batch) bool) []*change.Batch {
	t.Helper()
	deadline := time.After(timeout)
	for {
		bs := c.all()
		if cond(bs) {
			return bs
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; %d batches so far", what, len(bs))
		}
	}
}

// transactions are the batches with changes, whole.
func transactions(bs []*change.Batch) []*change.Batch {
	var out []*change.Batch
	for _, b := range bs {
		if len(b.Changes) > 0 {
			out = append(out, b)
		}
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BINLOG_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func testConfig(db *testenv.MySQLDB) Config {
	cfg := Config{DSN: db.DeskhookDSN, Slot: db.Name, Heartbeat: time.Second, ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond}
	cfg.SetDefaults()
	return cfg
}

// running is a Reader running in the background.
type running struct {
	r    *Reader
	c    *collector
	stop context.CancelFunc
	done chan error
}

func startReader(t *testing.T, cfg Config, resume string, h change.Handler) *running {
	t.Helper()
	r := NewReader(cfg, ReaderOptions{Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{r: r, stop: cancel, done: make(chan error, 1)}
	if h == nil {
		run.c = newCollector()
		h = run.c
	}
	go func() { run.done <- r.Run(ctx, resume, h) }()
	t.Cleanup(func() { run.close(t) })
	// Wait until it streams, so that what the test writes next is read.
	deadline := time.Now().Add(time.Minute)
	for !r.Stats().Connected {
		select {
		case err := <-run.done:
			run.done <- err
			return run
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("reader did not connect within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return run
}

// close stops the reader and returns Run's error.
func (run *running) close(t *testing.T) error {
	run.stop()
	select {
	case err := <-run.done:
		run.done <- err
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of cancel")
	}
	return nil
}

// runErr waits for Run to end by itself.
func (run *running) runErr(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-run.done:
		run.done <- err
		if err == nil {
			return errors.New("Run returned nil")
		}
		return err
	case <-time.After(timeout):
		t.Fatalf("Run did not end within %s", timeout)
	}
	return nil
}

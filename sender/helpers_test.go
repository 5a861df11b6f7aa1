package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// harness runs an outbox and a sender against real HTTP receivers.
type harness struct {
	t      *testing.T
	path   string
	ob     *outbox.Outbox
	s      *Sender
	reg    *prometheus.Registry
	logs   *testenv.Output
	cancel context.CancelFunc
	done   chan error
	hooks  testHooks

	mu      sync.Mutex
	pos     change.Position
	durable change.Position
	evs     map[string]mapping.Event // by id
}

// fast is a retry schedule for tests: ten quick attempts.
var fast = []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond,
	100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond,
	100 * time.Millisecond, 100 * time.Millisecond}

// endpointTo configures an endpoint to a receiver path with json bodies and
// every event.
func endpointTo(name string, r *testenv.Receiver, path string) Endpoint {
	return Endpoint{Name: name, URL: r.URL + path, Format: mapping.FormatJSON, Events: mapping.AllEvents,
		Retry: Retry{Schedule: fast}, MaxInFlight: 4, Timeout: 5 * time.Second}
}

func newHarness(t *testing.T, cfg Config, opts Options) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, opts, testHooks{})
}

// newHarnessWith installs test hooks before the sender runs.
func newHarnessWith(t *testing.T, cfg Config, opts Options, hooks testHooks) *harness {
	t.Helper()
	h := &harness{t: t, path: filepath.Join(t.TempDir(), "outbox.db"), evs: map[string]mapping.Event{}, hooks: hooks}
	h.open(cfg, opts)
	return h
}

// open opens the outbox and starts a sender on it.
func (h *harness) open(cfg Config, opts Options) {
	t := h.t
	t.Helper()
	h.logs = &testenv.Output{}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ob, err := outbox.Open(h.path, outbox.Options{NoSync: true, Logger: logger, OnDurable: func(p change.Position) {
		h.mu.Lock()
		h.durable = p
		h.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.reg = prometheus.NewRegistry()
	opts.Logger, opts.Registerer, opts.Version = logger, h.reg, "test"
	s, err := New(cfg, ob, opts)
	if err != nil {
		ob.Close()
		t.Fatal(err)
	}
	h.ob, h.s = ob, s
	s.hooks = h.hooks
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- s.Run(ctx) }()
	t.Cleanup(h.stop)
}

// stop ends the sender and closes the outbox (idempotent).
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	if h.t.Failed() { // what the sender's goroutines are doing, before they stop
		var b strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
		for _, g := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(g, "deskhook/sender") || strings.Contains(g, "deskhook/outbox") {
				h.t.Logf("goroutine %s", g)
			}
		}
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.s.Close()
	if err := h.ob.Close(); err != nil {
		h.t.Errorf("closing the outbox: %v", err)
	}
	h.cancel = nil
	if h.t.Failed() {
		h.t.Logf("logs:\n%s", h.logs)
	}
}

// payload is what the test events carry: enough to check order and identity.
type payload struct {
	Event  string `json:"event"`
	Ticket string `json:"ticket"`
	Seq    string `json:"seq"`
}

// txn appends one transaction with one event per ticket given.
func (h *harness) txn(tickets ...int64) []mapping.Event {
	h.t.Helper()
	return h.txnOf(mapping.TicketReply, tickets...)
}

func (h *harness) txnOf(typ string, tickets ...int64) []mapping.Event {
	h.t.Helper()
	h.mu.Lock()
	h.pos += 10
	pos := h.pos
	h.mu.Unlock()
	evs := make([]mapping.Event, len(tickets))
	for i, tk := range tickets {
		p, _ := json.Marshal(payload{Event: typ, Ticket: fmt.Sprint(tk), Seq: fmt.Sprintf("%d.%d", pos, i)})
		evs[i] = mapping.Event{ID: mapping.EventID(pos, uint32(i)), Type: typ, Pos: pos, Index: uint32(i),
			CommitTime: time.Now(), TicketID: tk, DeptID: 1, SourceID: 1, Payload: p}
		h.mu.Lock()
		h.evs[evs[i].ID] = evs[i]
		h.mu.Unlock()
	}
	if err := h.ob.Append(context.Background(), pos, true, evs); err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func (h *harness) durablePos() change.Position {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.durable
}

// delivered is the requests a receiver answered 2xx, by webhook-id.
func delivered(reqs []testenv.Request) map[string]testenv.Request {
	out := map[string]testenv.Request{}
	for _, r := range reqs {
		if c := r.Reply.StatusCode(); c >= 200 && c < 300 && !r.Reply.Reset {
			out[r.Header.Get("webhook-id")] = r
		}
	}
	return out
}

// waitDelivered waits until the receiver answered 2xx to every id.
func waitDelivered(t *testing.T, r *testenv.Receiver, timeout time.Duration, ids ...string) {
	t.Helper()
	waitDeliveredTo(t, r, "", timeout, ids...)
}

// deliveredTo is delivered for one path ("" for any).
func deliveredTo(reqs []testenv.Request, path string) map[string]testenv.Request {
	if path == "" {
		return delivered(reqs)
	}
	var mine []testenv.Request
	for _, r := range reqs {
		if r.Path == path {
			mine = append(mine, r)
		}
	}
	return delivered(mine)
}

// waitDeliveredTo waits until the receiver answered 2xx on path to every id.
func waitDeliveredTo(t *testing.T, r *testenv.Receiver, path string, timeout time.Duration, ids ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := r.WaitFor(ctx, func(reqs []testenv.Request) bool {
		got := deliveredTo(reqs, path)
		for _, id := range ids {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
	if err != nil {
		got := deliveredTo(r.Requests(), path)
		var missing []string
		for _, id := range ids {
			if _, ok := got[id]; !ok {
				missing = append(missing, id)
			}
		}
		t.Fatalf("%d of %d events not delivered (%d requests): %v; first missing: %v", len(missing), len(ids), r.Count(), err, missing[:min(5, len(missing))])
	}
}

func ids(evs ...[]mapping.Event) []string {
	var out []string
	for _, e := range evs {
		for _, ev := range e {
			out = append(out, ev.ID)
		}
	}
	return out
}

func ticketOf(r testenv.Request) string {
	var p payload
	_ = json.Unmarshal(r.Body, &p)
	return p.Ticket
}

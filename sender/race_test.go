package sender

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// TestCommitDuringFirstReadIsNotLost forces the interleaving behind a rare
// stall (TestGoneDisablesUntilEnabled once waited 10 s for an event that
// was stored): the endpoint's first read of its queue sees the store before
// a commit; the commit's early notice is lost (as it was once passed over
// while a read was under way; early notices are now held until the read is
// in, see TestEarlyNoticeDuringAReadIsNotWasted) and its committed notice is
// taken while the read is still out; then the page arrives. The page's end
// must not hide the commit it predates.
func TestCommitDuringFirstReadIsNotLost(t *testing.T) {
	h, r, ep, release := pausedAtFirstRead(t, outbox.Options{NoSync: true}, testHooks{
		dropNotice: func(_ string, n outbox.Notice) bool { return !n.Committed },
	})
	evs := h.txn(1)
	if err := h.ob.Flush(context.Background()); err != nil { // committed: its notice is in the inbox
		t.Fatal(err)
	}
	waitInboxTaken(t, ep) // while the read is out
	release()
	waitDelivered(t, r, 5*time.Second, ids(evs)...)
}

// pausedAtFirstRead starts a sender on a new outbox with one endpoint,
// "hook", to a new receiver, and returns once the endpoint's first read of
// its queue (an empty store) is in and held: the page reaches the
// dispatcher when release is called (also at cleanup, so a failing test
// does not hang stopping the sender).
func pausedAtFirstRead(t *testing.T, obOpts outbox.Options, hooks testHooks) (*harness, *testenv.Receiver, *endpoint, func()) {
	t.Helper()
	r := testenv.NewReceiver(t)
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), obOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	s, err := New(Config{Endpoints: []Endpoint{endpointTo("hook", r, "/")}}, ob, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	readDone, held := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(held) })
	var first sync.Once
	s.hooks = hooks
	s.hooks.afterRead = func(string) {
		first.Do(func() {
			close(readDone)
			<-held
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })
	t.Cleanup(release) // runs first
	<-readDone
	return &harness{t: t, ob: ob, s: s, evs: map[string]mapping.Event{}}, r, s.endpoints["hook"], release
}

// waitInboxTaken waits until the endpoint's dispatcher has taken every
// notice in its inbox.
func waitInboxTaken(t *testing.T, ep *endpoint) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		ep.inMu.Lock()
		n := len(ep.inbox)
		ep.inMu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never took its notices")
		}
	}
}

// TestSafetyNetFindsLostEvents: when every notice of a transaction is lost
// (as a bug in the notice logic would lose them), the safety net finds its
// events in the store, says so loudly, and they are delivered.
func TestSafetyNetFindsLostEvents(t *testing.T) {
	r := testenv.NewReceiver(t)
	var lose atomic.Uint64 // the position whose notices are lost
	var lost atomic.Int32
	h := newHarnessWith(t, Config{Endpoints: []Endpoint{endpointTo("hook", r, "/")}}, Options{}, testHooks{
		dropNotice: func(_ string, n outbox.Notice) bool {
			if uint64(n.To) == lose.Load() {
				lost.Add(1)
				return true
			}
			return false
		},
	})
	h.expectStall = true
	first := h.txn(1)
	waitDelivered(t, r, 5*time.Second, ids(first)...)
	lose.Store(uint64(h.pos + 10))
	evs := h.txn(2)
	if err := h.ob.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lost.Load() != 2 {
		t.Fatalf("%d notices of the transaction lost, want its early and committed notices", lost.Load())
	}
	waitDelivered(t, r, 5*time.Second, ids(evs)...)
	if logs := h.logs.String(); !strings.Contains(logs, stallMessage) {
		t.Errorf("the safety net delivered the lost event without saying so")
	}
	if n := testutil.ToFloat64(h.s.m.stalls.WithLabelValues("hook")); n != 1 {
		t.Errorf("deskhook_sender_stalls_total %v, want 1", n)
	}
}

// TestEarlyNoticeDuringAReadIsNotWasted: an early notice that comes while
// the reader's first read of the store is out (which began before the
// transaction was queued) is delivered once that read is in, without
// waiting for the commit. (It was once passed over, and the reader then
// followed the commits rather than the early notices for as long as
// appends kept coming faster than the commit delay.)
func TestEarlyNoticeDuringAReadIsNotWasted(t *testing.T) {
	// Appends are not committed during the test unless flushed (nor by a
	// delivery result, which would otherwise commit them with it).
	h, r, ep, release := pausedAtFirstRead(t,
		outbox.Options{NoSync: true, CommitDelay: time.Hour, ResultDelay: time.Hour}, testHooks{})
	evs := append(h.txn(1), h.txn(2)...)
	waitInboxTaken(t, ep) // the early notices, while the read is out
	release()
	waitDelivered(t, r, 5*time.Second, ids(evs)...)
	if p := h.ob.Position(); p != 0 {
		t.Errorf("stored position %s: the test meant to deliver before the commit", p)
	}
}

package sender

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// TestCommitDuringFirstReadIsNotLost forces the interleaving behind a rare
// stall (TestGoneDisablesUntilEnabled once waited 10 s for an event that
// was stored): the endpoint's first read of its queue sees the store before
// a commit; the commit's notice is taken while the read is still out; then
// the page arrives. The page's end must not hide the commit it predates.
func TestCommitDuringFirstReadIsNotLost(t *testing.T) {
	h, r, ep, release := pausedAtFirstRead(t, outbox.Options{NoSync: true}, testHooks{})
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
		ep.in.mu.Lock()
		n := ep.in.n
		ep.in.mu.Unlock()
		if n == (outbox.Notice{}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never took its notices")
		}
	}
}

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
// a commit; the commit's early notice is passed over (a read is under way)
// and its committed notice is taken while the read is still out; then the
// page arrives. The page's end must not hide the commit it predates.
func TestCommitDuringFirstReadIsNotLost(t *testing.T) {
	r := testenv.NewReceiver(t)
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	s, err := New(Config{Endpoints: []Endpoint{endpointTo("hook", r, "/")}}, ob, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	readDone, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	s.hooks.afterRead = func(string) {
		first.Do(func() {
			close(readDone)
			<-release
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	<-readDone // the first page is read: an empty store
	h := &harness{t: t, ob: ob, evs: map[string]mapping.Event{}}
	evs := h.txn(1)
	if err := ob.Flush(ctx); err != nil { // committed: both notices are in the inbox
		t.Fatal(err)
	}
	ep := s.endpoints["hook"]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		ep.inMu.Lock()
		n := len(ep.inbox)
		ep.inMu.Unlock()
		if n == 0 {
			break // the dispatcher took them while its read was out
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never took its notices")
		}
	}
	close(release)
	waitDelivered(t, r, 5*time.Second, ids(evs)...)
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
	r := testenv.NewReceiver(t)
	// Appends are not committed during the test unless flushed.
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), outbox.Options{NoSync: true, CommitDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	s, err := New(Config{Endpoints: []Endpoint{endpointTo("hook", r, "/")}}, ob, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	readDone, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	s.hooks.afterRead = func(string) {
		first.Do(func() {
			close(readDone)
			<-release
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	<-readDone // the first read saw an empty store
	h := &harness{t: t, ob: ob, evs: map[string]mapping.Event{}}
	evs := append(h.txn(1), h.txn(2)...)
	ep := s.endpoints["hook"]
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		ep.inMu.Lock()
		n := len(ep.inbox)
		ep.inMu.Unlock()
		if n == 0 {
			break // the dispatcher took the early notices while its read was out
		}
		if time.Now().After(deadline) {
			t.Fatal("the dispatcher never took its notices")
		}
	}
	close(release)
	waitDelivered(t, r, 5*time.Second, ids(evs)...)
	if p := ob.Position(); p != 0 {
		t.Errorf("stored position %s: the test meant to deliver before the commit", p)
	}
}

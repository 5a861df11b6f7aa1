package sender

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// TestDisabledEndpointSleeps: an endpoint disabled by a 410 has nothing to
// do until it is enabled again. Its dispatcher must sleep, not wake over and
// over for times it cannot act on (the safety net's next check, here every
// 100 ms, once it is due while the endpoint is disabled).
func TestDisabledEndpointSleeps(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/", testenv.Reply{Status: http.StatusGone})
	ep := endpointTo("hook", r, "/")
	var rounds atomic.Int64
	h := newHarnessWith(t, Config{Endpoints: []Endpoint{ep}}, Options{},
		testHooks{round: func(*endpoint) { rounds.Add(1) }})
	first := h.txn(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := h.ob.Endpoint("hook")
		if err != nil {
			t.Fatal(err)
		}
		if st.Disabled {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the endpoint was not disabled by 410 Gone")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the safety net's check falls due
	before := rounds.Load()
	time.Sleep(time.Second)
	// Awake for its own reasons it would go round ~10 times (one safety-net
	// interval each); a loop that spins goes round hundreds of thousands.
	if n := rounds.Load() - before; n > 100 {
		t.Errorf("the disabled endpoint's dispatcher went round %d times in a second", n)
	}
	if err := h.ob.Enable(ctx, "hook"); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, 10*time.Second, ids(first)...)
}

// TestHeldEarlyNoticesBounded: while an endpoint's window is full its
// reader does not read the store, and early notices that come after one it
// had to drop are held until the store is read up to them. An endpoint that
// wants few of the events (here only ticket_created) gets a notice without
// events for every other transaction: those must not pile up without bound
// while the window stays full (a receiver down for a day).
func TestHeldEarlyNoticesBounded(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Default(testenv.Reply{Status: http.StatusServiceUnavailable})
	ep := endpointTo("hook", r, "/")
	ep.Events = []string{mapping.TicketCreated}
	ep.MaxInFlight = 1
	const window = 2
	var held, most atomic.Int64
	h := newHarnessWith(t, Config{Endpoints: []Endpoint{ep}}, Options{Window: window},
		testHooks{round: func(ep *endpoint) {
			n := int64(len(ep.d.early))
			held.Store(n)
			if n > most.Load() {
				most.Store(n)
			}
		}})
	for tk := int64(1); tk <= window+1; tk++ { // the window fills; the last one's notice is dropped
		h.txnOf(mapping.TicketCreated, tk)
	}
	for i := 0; i < 300; i++ { // notices without events for the endpoint, one at a time
		h.txn(100)
		time.Sleep(time.Millisecond)
	}
	// Every notice is queued; give the dispatcher time to take them all.
	time.Sleep(time.Second)
	t.Logf("early notices held at most %d, now %d", most.Load(), held.Load())
	if m := most.Load(); m > 2*window {
		t.Errorf("the dispatcher held up to %d early notices with a window of %d events", m, window)
	}
}

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
// over for times it cannot act on (a retry that fell due while it is
// disabled, notices of commits with nothing it may send).
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
	time.Sleep(300 * time.Millisecond) // the first event's retry falls due
	before := rounds.Load()
	more := [][]mapping.Event{first}
	for range 10 { // notices, one per commit
		more = append(more, h.txn(2))
		time.Sleep(100 * time.Millisecond)
	}
	// Awake for its own reasons it would go round a few times per notice; a
	// loop that spins goes round hundreds of thousands.
	if n := rounds.Load() - before; n > 100 {
		t.Errorf("the disabled endpoint's dispatcher went round %d times in a second", n)
	}
	if err := h.ob.Enable(ctx, "hook"); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, 10*time.Second, ids(more...)...)
}

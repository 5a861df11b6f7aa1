package sender

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

func TestReloadAddsAndRemovesEndpoints(t *testing.T) {
	r := testenv.NewReceiver(t)
	// a fails tickets 1 and 2 until told otherwise, so it keeps a queue.
	var aFails atomic.Bool
	aFails.Store(true)
	r.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		if req.Path == "/a" && aFails.Load() && ticketOf(*req) != "3" {
			return testenv.Reply{Status: 500}, true
		}
		return testenv.Reply{}, false
	})
	a := endpointTo("a", r, "/a")
	a.Retry.Schedule = []time.Duration{0}
	for range 100 {
		a.Retry.Schedule = append(a.Retry.Schedule, 200*time.Millisecond)
	}
	h := newHarness(t, Config{Endpoints: []Endpoint{a}}, Options{})
	early := h.txn(1, 2)
	ctx := context.Background()
	if err := r.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}

	b := endpointTo("b", r, "/b")
	if err := h.s.Reload(ctx, []Endpoint{a, b}); err != nil {
		t.Fatal(err)
	}
	late := h.txn(1, 3)
	waitDeliveredTo(t, r, "/b", 10*time.Second, ids(late)...)
	waitDeliveredTo(t, r, "/a", 10*time.Second, late[1].ID) // ticket 3 is not blocked at a
	var toB []string
	for _, req := range r.Requests() {
		if req.Path == "/b" {
			toB = append(toB, req.Header.Get("webhook-id"))
		}
	}
	slices.Sort(toB)
	if !slices.Equal(toB, ids(late)) {
		t.Errorf("endpoint added later got %v, want only the later events %v (not %v)", toB, ids(late), ids(early))
	}

	// A bad list changes nothing.
	bad := b
	bad.URL = "ftp://x"
	if err := h.s.Reload(ctx, []Endpoint{bad}); err == nil || !strings.Contains(err.Error(), `endpoints[0].url: must be http or https (got "ftp://x")`) {
		t.Errorf("reload with a bad url: %v", err)
	}
	if eps, _ := h.ob.Endpoints(); len(eps) != 2 {
		t.Errorf("a rejected reload changed the endpoints: %+v", eps)
	}

	// Removing a orphans it: its queue (the two failing early events and
	// the later one of ticket 1, waiting behind them) stays, nothing is
	// sent to it, a WARN says so.
	if err := h.s.Reload(ctx, []Endpoint{b}); err != nil {
		t.Fatal(err)
	}
	sentToA := len(requestsTo(r, "/a"))
	eps, _ := h.ob.Endpoints()
	if len(eps) != 2 || eps[0].Name != "a" || !eps[0].Orphaned() || eps[0].Depth != 3 || eps[1].Name != "b" || eps[1].Orphaned() {
		t.Errorf("endpoints after removing a: %+v", eps)
	}
	if logs := h.logs.String(); !strings.Contains(logs, "its queue and dead letters are kept (orphaned)") || !strings.Contains(logs, "endpoint=a pending=3") {
		t.Errorf("no WARN for a's orphaned queue:\n%s", logs)
	}
	orphaned := `
# HELP deskhook_endpoint_orphaned 1 when the endpoint is no longer in the configuration but its queue and dead letters are kept (nothing is sent): put it back, or drop them with deskhook endpoints forget.
# TYPE deskhook_endpoint_orphaned gauge
deskhook_endpoint_orphaned{endpoint="a"} 1
deskhook_endpoint_orphaned{endpoint="b"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(orphaned), "deskhook_endpoint_orphaned"); err != nil {
		t.Error(err)
	}
	// Nothing new is queued for a while it is out; when it comes back its
	// queue resumes.
	missed := h.txn(5)
	waitDeliveredTo(t, r, "/b", 10*time.Second, ids(missed)...)
	time.Sleep(500 * time.Millisecond) // a's schedule would have retried twice by now
	if n := len(requestsTo(r, "/a")); n != sentToA {
		t.Errorf("%d requests to orphaned endpoint a, want none", n-sentToA)
	}
	aFails.Store(false)
	if err := h.s.Reload(ctx, []Endpoint{a, b}); err != nil {
		t.Fatal(err)
	}
	waitDeliveredTo(t, r, "/a", 10*time.Second, append(ids(early), late[0].ID)...)
	if got := deliveredTo(r.Requests(), "/a"); len(got) != 4 { // its 3 kept ones and late's ticket 3
		t.Errorf("a delivered %d events, want its 3 kept ones and the one before, not the one stored while it was out", len(got))
	}
	if err := h.s.Reload(ctx, []Endpoint{b}); err != nil {
		t.Fatal(err)
	}

	// A changed endpoint keeps its queue: b fails, is pointed elsewhere, and
	// the new URL gets what b did not deliver.
	r.Script("/b", testenv.Reply{Status: 500}, testenv.Reply{Status: 500}, testenv.Reply{Status: 500})
	before := r.Count()
	next := h.txn(4)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Wait(waitCtx, before+1); err != nil {
		t.Fatal(err)
	}
	b2 := b
	b2.URL = r.URL + "/b2"
	if err := h.s.Reload(ctx, []Endpoint{b2}); err != nil {
		t.Fatal(err)
	}
	waitDeliveredTo(t, r, "/b2", 10*time.Second, ids(next)...)
}

// requestsTo are the requests the receiver got on path.
func requestsTo(r *testenv.Receiver, path string) []testenv.Request {
	var out []testenv.Request
	for _, req := range r.Requests() {
		if req.Path == path {
			out = append(out, req)
		}
	}
	return out
}

func TestRetriesResumeAfterRestart(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Default(testenv.Reply{Status: http.StatusServiceUnavailable})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0, 700 * time.Millisecond, 100 * time.Millisecond}
	cfg := Config{Endpoints: []Endpoint{ep}}
	h := newHarness(t, cfg, Options{})
	evs := h.txn(1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Wait(ctx, 2); err != nil {
		t.Fatal(err)
	}
	h.stop() // a restart: the failed attempts and their next times are in the file
	r.Default(testenv.Reply{})
	h.open(cfg, Options{})
	waitDelivered(t, r, 10*time.Second, ids(evs)...)
	reqs := r.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4 (two failures, two deliveries)", len(reqs))
	}
	failed := map[string]time.Time{}
	for _, req := range reqs[:2] {
		failed[req.Header.Get("webhook-id")] = req.Arrived
	}
	for _, req := range reqs[2:] {
		// The schedule's 700ms ±20% holds across the restart.
		if wait := req.Arrived.Sub(failed[req.Header.Get("webhook-id")]); wait < 500*time.Millisecond {
			t.Errorf("retried %v after the failure: the persisted schedule (≥560ms) was not kept", wait)
		}
	}
}

func TestBoundedWindowStillDeliversAroundAFailingTicket(t *testing.T) {
	r := testenv.NewReceiver(t)
	var failing atomic.Bool
	failing.Store(true)
	r.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		if failing.Load() && ticketOf(*req) == "1" {
			return testenv.Reply{Status: 500}, true
		}
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = slices.Repeat([]time.Duration{30 * time.Millisecond}, 1000)
	// A window of 8 entries; ticket 1 has 30 events queued behind its failing head.
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{Window: 8})
	var one, others []string
	for i := 0; i < 30; i++ {
		one = append(one, ids(h.txn(1))...)
	}
	for i := 0; i < 10; i++ {
		others = append(others, ids(h.txn(2, 3, 4))...)
	}
	waitDelivered(t, r, 20*time.Second, others...)
	if !strings.Contains(h.logs.String(), "left them in the store") {
		t.Errorf("the window never had to leave followers in the store")
	}
	failing.Store(false)
	waitDelivered(t, r, 20*time.Second, one...)
	var got []string
	for _, req := range r.Requests() {
		if ticketOf(req) == "1" && req.Reply.StatusCode() == 200 {
			got = append(got, req.Header.Get("webhook-id"))
		}
	}
	if !slices.Equal(got, one) {
		t.Errorf("ticket 1 delivered %d events, want its 30 in order once each", len(got))
	}
}

func TestMetrics(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/", testenv.Reply{Status: 500})
	ep := endpointTo("hook", r, "/")
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	evs := h.txnOf(mapping.TicketCreated, 1, 2)
	waitDelivered(t, r, 10*time.Second, ids(evs)...)
	var delivered, failed float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// The receiver records a request before the sender reads its answer.
		delivered = testutil.ToFloat64(h.s.m.deliveries.WithLabelValues("hook", mapping.TicketCreated, "delivered"))
		failed = testutil.ToFloat64(h.s.m.deliveries.WithLabelValues("hook", mapping.TicketCreated, "failed"))
		if delivered == 2 {
			break
		}
	}
	if delivered != 2 || failed != 1 {
		t.Errorf("deliveries: %v delivered, %v failed; want 2 and 1", delivered, failed)
	}
	if n := testutil.CollectAndCount(h.s.m.attempts); n != 1 {
		t.Errorf("%d attempt histograms, want 1", n)
	}
	_ = h.ob.Flush(context.Background())
	want := `
# HELP deskhook_dead_letters Dead letters of the endpoint.
# TYPE deskhook_dead_letters gauge
deskhook_dead_letters{endpoint="hook"} 0
# HELP deskhook_queue_depth Events waiting for delivery to the endpoint.
# TYPE deskhook_queue_depth gauge
deskhook_queue_depth{endpoint="hook"} 0
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "deskhook_queue_depth", "deskhook_dead_letters"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(h.reg, "deskhook_queue_oldest_pending_seconds", "deskhook_outbox_commits_total"); err != nil || n != 1 {
		t.Errorf("gathered %d series of oldest pending (%v)", n, err)
	}
}

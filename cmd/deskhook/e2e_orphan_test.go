package main

// Issue 12 point 3: a config change never deletes a queue. An endpoint
// that leaves the config is orphaned (kept, shown, sent nothing) until it
// comes back or is forgotten explicitly; an endpoint's identity never
// comes from its place in the list.

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// orphanWorld is an e2e world with a second endpoint, "gone", that takes
// ticket_created events to its own receiver, which fails (500) until told
// otherwise.
type orphanWorld struct {
	*e2e
	other   *testenv.Receiver
	failing atomic.Bool
	gone    map[string]any
}

func newOrphanWorld(t *testing.T) *orphanWorld {
	w := &orphanWorld{e2e: newE2E(t), other: testenv.NewReceiver(t)}
	w.failing.Store(true)
	w.other.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		if w.failing.Load() {
			return testenv.Reply{Status: 500, Body: "receiver down"}, true
		}
		return testenv.Reply{}, false
	})
	// First its events die at once (dead letters)...
	w.gone = map[string]any{"name": "gone", "url": w.other.URL + "/in", "events": []string{"ticket_created"},
		"retry": map[string]any{"schedule": []string{"0s", "10ms"}}}
	w.setEndpoints(true)
	return w
}

// retryForLong makes gone retry every 2s for minutes: its failed events
// stay pending.
func (w *orphanWorld) retryForLong() {
	schedule := []string{"0s"}
	for range 100 {
		schedule = append(schedule, "2s")
	}
	w.gone["retry"] = map[string]any{"schedule": schedule}
}

// setEndpoints writes the config with rcv, and gone when withGone.
func (w *orphanWorld) setEndpoints(withGone bool) {
	eps := w.cfg["endpoints"].([]any)[:1]
	if withGone {
		eps = append(eps, w.gone)
	}
	w.cfg["endpoints"] = eps
	w.writeConfig()
}

// fill stores dead letters (load a) and pending events (load b) at gone,
// and waits until rcv has everything.
func (w *orphanWorld) fill(t *testing.T, d *daemonProc, seed int64) (dead, pending testenv.LoadResult) {
	ctx := context.Background()
	dead = w.load(ctx, testenv.LoadConfig{Tickets: 2, Seed: seed})
	waitStatus(t, w.e2e, func(st *daemon.Status) bool { return endpointNamed(st, "gone").DeadLetters == 2 })
	w.retryForLong()
	w.writeConfig()
	d.signal(syscall.SIGHUP)
	waitLogCount(t, d, "endpoints reloaded", 2) // the sender's line and the daemon's
	pending = w.load(ctx, testenv.LoadConfig{Tickets: 3, Seed: seed + 1})
	w.waitDelivered(dead.TotalEvents()+pending.TotalEvents(), 30*time.Second)
	waitStatus(t, w.e2e, func(st *daemon.Status) bool { return endpointNamed(st, "gone").Pending == 3 })
	// Each has been tried and failed: the receiver is really down.
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.other.WaitFor(ctx2, func(reqs []testenv.Request) bool {
		return len(createdTickets(reqs, false)) >= 5
	}); err != nil {
		t.Fatalf("gone's receiver never saw all 5 tickets: %v", err)
	}
	return dead, pending
}

// checkOrphaned checks every place an orphaned gone (3 pending, 2 dead
// letters) must show: status (JSON and text), endpoints list (JSON and
// text), and, with a daemon, its metrics.
func (w *orphanWorld) checkOrphaned(t *testing.T, d *daemonProc) {
	t.Helper()
	st := statusJSON(t, w.must("status", "--json"))
	g := endpointNamed(st, "gone")
	if !g.Orphaned || g.Configured || g.Pending != 3 || g.DeadLetters != 2 || g.URL != w.other.URL+"/in" {
		t.Errorf("status --json: gone is %+v; want orphaned, not configured, 3 pending, 2 dead letters, its last url", g)
	}
	if d != nil && g.OrphanedSince.IsZero() {
		t.Errorf("status --json: gone has no orphaned_since")
	}
	if r := endpointNamed(st, "rcv"); r.Orphaned || !r.Configured {
		t.Errorf("status --json: rcv is %+v", r)
	}
	res := w.must("status")
	for _, want := range []string{"ORPHANED (not in config)", "endpoint gone is orphaned", "3 pending events and 2 dead letters",
		"deskhook endpoints forget gone"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, res.stdout)
		}
	}
	var list []map[string]any
	res = w.must("endpoints", "list", "--json")
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("endpoints list --json: %v\n%s", err, res.stdout)
	}
	orphaned := map[string]any{}
	for _, ep := range list {
		orphaned[ep["name"].(string)] = ep["orphaned"]
	}
	if orphaned["gone"] != true || orphaned["rcv"] != false {
		t.Errorf(`endpoints list --json: "orphaned" is %v, want true for gone and false for rcv:%s`, orphaned, res.stdout)
	}
	res = w.must("endpoints", "list")
	if !strings.Contains(res.stdout, "ORPHANED") || !strings.Contains(res.stdout, "deskhook endpoints forget gone") {
		t.Errorf("endpoints list does not show gone orphaned:\n%s", res.stdout)
	}
	if d == nil {
		return
	}
	m := d.metrics()
	for key, want := range map[string]float64{
		`deskhook_endpoint_orphaned{endpoint="gone"}`: 1,
		`deskhook_endpoint_orphaned{endpoint="rcv"}`:  0,
		`deskhook_queue_depth{endpoint="gone"}`:       3,
		`deskhook_dead_letters{endpoint="gone"}`:      2,
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("metric %s = %v (present: %v), want %v", key, got, ok, want)
		}
	}
	waitLog(t, d, `level=WARN msg="endpoint is not in the configuration: its queue and dead letters are kept (orphaned)`)
	waitLog(t, d, "endpoint=gone pending=3 dead_letters=2 url="+w.other.URL+"/in")
}

// checkNothingSent stores more events while gone is orphaned: rcv gets
// them, gone's receiver gets nothing, not even retries of its queue.
func (w *orphanWorld) checkNothingSent(t *testing.T, seed int64, delivered int) testenv.LoadResult {
	t.Helper()
	n := w.other.Count()
	while := w.load(context.Background(), testenv.LoadConfig{Tickets: 2, Seed: seed})
	w.waitDelivered(delivered+while.TotalEvents(), 30*time.Second)
	time.Sleep(3 * time.Second) // gone's queue would have been retried (every 2s) by now
	if got := w.other.Count(); got != n {
		t.Errorf("an orphaned endpoint got %d requests, want none", got-n)
	}
	st := statusJSON(t, w.must("status", "--json"))
	if g := endpointNamed(st, "gone"); g.Pending != 3 {
		t.Errorf("orphaned gone has %d pending after more events were stored, want its 3: nothing new is queued", g.Pending)
	}
	return while
}

// checkResumed: gone is back and its receiver works: its 3 pending events
// arrive, not those stored while it was orphaned; its dead letters stay.
func (w *orphanWorld) checkResumed(t *testing.T, pending, while testenv.LoadResult) {
	t.Helper()
	want := ticketIDs(pending)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.other.WaitFor(ctx, func(reqs []testenv.Request) bool {
		got := createdTickets(reqs, true)
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("gone's kept queue was not delivered after it came back: %v (delivered tickets %v, want %v)",
			err, createdTickets(w.other.Requests(), true), want)
	}
	time.Sleep(500 * time.Millisecond)
	for id := range ticketIDs(while) {
		if createdTickets(w.other.Requests(), false)[id] {
			t.Errorf("ticket %s, created while gone was orphaned, reached it: nothing is queued for an orphan", id)
		}
	}
	st := waitStatus(t, w.e2e, func(st *daemon.Status) bool { return endpointNamed(st, "gone").Pending == 0 })
	if g := endpointNamed(st, "gone"); g.Orphaned || !g.Configured || g.DeadLetters != 2 {
		t.Errorf("gone after its return: %+v; want configured, not orphaned, its 2 dead letters kept", g)
	}
}

// checkForgetRefused: forget refuses gone while the config names it.
func (w *orphanWorld) checkForgetRefused(t *testing.T) {
	t.Helper()
	if res := w.run("endpoints", "forget", "gone"); res.code != 1 || !strings.Contains(res.stderr, `endpoint "gone" is in the configuration: it is not orphaned`) {
		t.Errorf("forget a configured endpoint: want exit 1 saying it is configured; %s", res)
	}
}

// checkForgotten forgets an orphaned gone (its 2 dead letters left) and
// checks it is gone.
func (w *orphanWorld) checkForgotten(t *testing.T) {
	t.Helper()
	res := w.must("endpoints", "forget", "gone")
	if !strings.Contains(res.stdout, "endpoint gone forgotten: dropped 2 events (0 pending, 2 dead letters)") {
		t.Errorf("endpoints forget:\n%s", res)
	}
	st := statusJSON(t, w.must("status", "--json"))
	if len(st.Endpoints) != 1 || st.Endpoints[0].Name != "rcv" {
		t.Errorf("endpoints after forget: %+v", st.Endpoints)
	}
}

// TestOrphanedEndpointOnSIGHUP: an endpoint removed from the config and
// SIGHUP keeps its queue and dead letters, shown as orphaned everywhere,
// sent nothing; restored, its queue is delivered; forgotten while the
// daemon runs, it is gone and the count is printed.
func TestOrphanedEndpointOnSIGHUP(t *testing.T) {
	t.Parallel()
	w := newOrphanWorld(t)
	w.setup()
	d := w.start()
	dead, pending := w.fill(t, d, 51)
	delivered := dead.TotalEvents() + pending.TotalEvents()

	w.setEndpoints(false)
	d.signal(syscall.SIGHUP)
	waitStatus(t, w.e2e, func(st *daemon.Status) bool { return endpointNamed(st, "gone").Orphaned })
	w.checkOrphaned(t, d)
	while := w.checkNothingSent(t, 53, delivered)
	delivered += while.TotalEvents()

	w.failing.Store(false)
	w.setEndpoints(true)
	d.signal(syscall.SIGHUP)
	w.checkResumed(t, pending, while)
	waitLog(t, d, "endpoint is back in the configuration: its queue resumes")

	// Forget, while the daemon runs: refused while configured, done once
	// it is out, with the count.
	w.checkForgetRefused(t)
	w.setEndpoints(false)
	d.signal(syscall.SIGHUP)
	waitStatus(t, w.e2e, func(st *daemon.Status) bool { return endpointNamed(st, "gone").Orphaned })
	w.checkForgotten(t)
	if m := d.metrics(); hasMetric(m, `deskhook_endpoint_orphaned{endpoint="gone"}`) {
		t.Errorf("forgotten endpoint still has metrics")
	}
	if res := w.run("endpoints", "forget", "gone"); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("forget twice: %s", res)
	}
	d.stop()
}

// TestOrphanedEndpointAcrossRestart: the same with restarts instead of
// SIGHUP, and status and forget on the store while no daemon runs.
func TestOrphanedEndpointAcrossRestart(t *testing.T) {
	t.Parallel()
	w := newOrphanWorld(t)
	w.setup()
	d := w.start()
	dead, pending := w.fill(t, d, 61)
	delivered := dead.TotalEvents() + pending.TotalEvents()
	d.stop()

	w.setEndpoints(false)
	w.checkOrphaned(t, nil) // offline: the store knows it, the config does not
	d = w.start()
	w.checkOrphaned(t, d)
	while := w.checkNothingSent(t, 63, delivered)
	d.stop()

	w.failing.Store(false)
	w.setEndpoints(true)
	d = w.start()
	w.checkResumed(t, pending, while)
	d.stop()

	// Forget without a daemon: refused while configured, done once out.
	w.checkForgetRefused(t)
	w.setEndpoints(false)
	w.checkForgotten(t)
	if res := w.run("store", "check"); res.code != 0 {
		t.Errorf("store check after forget: %s", res)
	}
	d = w.start()
	if strings.Contains(d.stderr.String(), "endpoint=gone") {
		t.Errorf("a forgotten endpoint is still known at start")
	}
	d.stop()
}

// TestSwappingUnnamedEndpointsMovesNothing: two unnamed endpoints on one
// host, each with a failing queue, are swapped in the file (SIGHUP): each
// queue stays with its receiver.
func TestSwappingUnnamedEndpointsMovesNothing(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	var failing atomic.Bool
	failing.Store(true)
	e.rcv.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		if failing.Load() {
			return testenv.Reply{Status: 503}, true
		}
		return testenv.Reply{}, false
	})
	schedule := []string{"0s"}
	for range 100 {
		schedule = append(schedule, "2s")
	}
	created := map[string]any{"url": e.rcv.URL + "/created", "events": []string{"ticket_created"},
		"retry": map[string]any{"schedule": schedule}}
	replies := map[string]any{"url": e.rcv.URL + "/replies", "events": []string{"ticket_reply"},
		"retry": map[string]any{"schedule": schedule}}
	e.cfg["endpoints"] = []any{created, replies}
	e.writeConfig()
	e.setup()
	d := e.start()
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 3, Replies: 1, Seed: 71})
	wantCreated, wantReplies := load.Events["ticket_created"], load.Events["ticket_reply"]
	waitStatus(t, e, func(st *daemon.Status) bool {
		return st.Outbox.Pending == int64(wantCreated+wantReplies)
	})

	e.cfg["endpoints"] = []any{replies, created}
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	waitLogCount(t, d, "endpoints reloaded", 2)
	failing.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool {
		return len(deliveredIDs(reqs)) >= wantCreated+wantReplies
	}); err != nil {
		t.Fatalf("not everything delivered after the swap: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	got := map[string]map[string]int{"/created": {}, "/replies": {}}
	for _, r := range e.rcv.Requests() {
		if c := r.Reply.StatusCode(); c < 200 || c >= 300 {
			continue
		}
		form, _ := url.ParseQuery(string(r.Body))
		got[r.Path][form.Get("event")]++
	}
	if got["/created"]["ticket_created"] != wantCreated || len(got["/created"]) != 1 ||
		got["/replies"]["ticket_reply"] != wantReplies || len(got["/replies"]) != 1 {
		t.Errorf("after swapping the two unnamed endpoints, deliveries by path and event: %v; want %d ticket_created at /created and %d ticket_reply at /replies, nothing else",
			got, wantCreated, wantReplies)
	}
	st := statusJSON(t, e.must("status", "--json"))
	for _, ep := range st.Endpoints {
		if ep.Orphaned || !strings.HasPrefix(ep.Name, "127.0.0.1:") {
			t.Errorf("endpoint after the swap: %+v; want both named after their URL, none orphaned", ep)
		}
	}
	d.stop()
}

// endpointNamed is status's endpoint of that name (zero when none).
func endpointNamed(st *daemon.Status, name string) daemon.EndpointStatus {
	for _, ep := range st.Endpoints {
		if ep.Name == name {
			return ep
		}
	}
	return daemon.EndpointStatus{}
}

// createdTickets are the ticket ids of ticket_created requests (only those
// answered 2xx when ok).
func createdTickets(reqs []testenv.Request, ok bool) map[string]bool {
	ids := map[string]bool{}
	for _, r := range reqs {
		if c := r.Reply.StatusCode(); ok && (c < 200 || c >= 300) {
			continue
		}
		form, _ := url.ParseQuery(string(r.Body))
		if form.Get("event") == "ticket_created" {
			ids[form.Get("ticket[id]")] = true
		}
	}
	return ids
}

func ticketIDs(l testenv.LoadResult) map[string]bool {
	ids := map[string]bool{}
	for _, tk := range l.Tickets {
		ids[strconv.FormatInt(tk.TicketID, 10)] = true
	}
	return ids
}

// waitLogCount waits until the daemon logged lines containing s n times.
func waitLogCount(t *testing.T, d *daemonProc, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(d.stderr.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon logged %q %d times, want %d", s, strings.Count(d.stderr.String(), s), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

// TestSIGTERMUnderLoad: SIGTERM in the middle of a load exits 0, and after
// a restart every event arrives (duplicates only with the same id and
// body, per-ticket order kept).
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("log")["level"] = "info"
	e.writeConfig()
	e.setup()
	d := e.start()

	ctx := context.Background()
	type result struct {
		res testenv.LoadResult
		err error
	}
	loaded := make(chan result, 1)
	go func() {
		res, err := testenv.Load(ctx, e.db.Pool(t), testenv.LoadConfig{Tickets: 150, Replies: 2, Updates: 2, Writers: 3, Rate: 300, Seed: 7})
		loaded <- result{res, err}
	}()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := e.rcv.Wait(wctx, 150); err != nil {
		t.Fatal(err)
	}
	d.signal(syscall.SIGTERM)
	start := time.Now()
	if code := d.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("stopped %s after SIGTERM, %d requests received so far", time.Since(start).Round(time.Millisecond), e.rcv.Count())
	for _, want := range []string{"signal received: shutting down", "msg=stopped"} {
		if !strings.Contains(d.stderr.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}

	e.start()
	r := <-loaded
	if r.err != nil {
		t.Fatal(r.err)
	}
	e.waitDelivered(r.res.TotalEvents(), 90*time.Second)
	time.Sleep(300 * time.Millisecond) // anything extra would arrive now
	checkDeliveries(t, r.res, e.rcv.Requests())
}

// TestShutdownInFlight: a request in flight at SIGTERM gets
// shutdown_timeout, then the daemon exits 0; a second signal exits at once
// with 1. Nothing is lost either way.
func TestShutdownInFlight(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.cfg["shutdown_timeout"] = "1s"
	e.writeConfig()
	hang := func(on bool) {
		if on {
			e.rcv.SetHook(func(*testenv.Request) (testenv.Reply, bool) { return testenv.Reply{Delay: time.Minute}, true })
		} else {
			e.rcv.SetHook(nil)
		}
	}
	e.setup()
	ctx := context.Background()
	var loads []testenv.LoadResult

	for i, second := range []bool{false, true} {
		d := e.start()
		hang(true)
		n := e.rcv.Count()
		loads = append(loads, e.load(ctx, testenv.LoadConfig{Tickets: 1, Seed: int64(10 + i)}))
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := e.rcv.Wait(wctx, n+1); err != nil {
			t.Fatal(err)
		}
		cancel()
		start := time.Now()
		d.signal(syscall.SIGTERM)
		want := 0
		if second {
			time.Sleep(100 * time.Millisecond)
			d.signal(syscall.SIGINT)
			want = 1
		}
		code := d.wait(20 * time.Second)
		took := time.Since(start)
		if code != want {
			t.Errorf("second signal %v: exit code %d, want %d", second, code, want)
		}
		switch {
		case !second && (took < 900*time.Millisecond || took > 8*time.Second):
			t.Errorf("with a request in flight, SIGTERM took %s; want about shutdown_timeout (1s)", took)
		case second && took > 900*time.Millisecond:
			t.Errorf("a second signal took %s to exit; want at once", took)
		}
		if second && !strings.Contains(d.stderr.String(), "second signal: exiting at once") {
			t.Errorf("no log line for the second signal")
		}
		hang(false)
	}
	e.start()
	total := 0
	for _, l := range loads {
		total += l.TotalEvents()
	}
	e.waitDelivered(total, 30*time.Second)
}

// TestSIGHUPReload: an endpoint added to the config gets the events stored
// after SIGHUP, and none before; a removed one stops; a broken config is
// refused and the running one kept.
func TestSIGHUPReload(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.setup()
	d := e.start()
	ctx := context.Background()
	before := e.load(ctx, testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 20})
	e.waitDelivered(before.TotalEvents(), 30*time.Second)

	second := testenv.NewReceiver(t)
	e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any), map[string]any{
		"name": "second", "url": second.URL + "/other", "events": []string{"ticket_created", "ticket_reply"},
		"secret": "whsec_" + "c2Vjb25kLWVuZHBvaW50LXNlY3JldC1rZXk=",
	})
	e.section("log")["level"] = "info" // not reloadable: a warning says so
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	waitStatus(t, e, func(st *daemon.Status) bool {
		return len(st.Endpoints) == 2 && st.Endpoints[1].Name == "second" && st.Endpoints[1].Configured
	})
	waitLog(t, d, "endpoints reloaded")
	waitLog(t, d, "sections=[log]")
	after := e.load(ctx, testenv.LoadConfig{Tickets: 3, Replies: 2, Seed: 21})
	e.waitDelivered(before.TotalEvents()+after.TotalEvents(), 30*time.Second)
	want := after.Events["ticket_created"] + after.Events["ticket_reply"]
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := second.Wait(wctx, want); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	oldIDs := deliveredIDs(e.rcv.Requests())
	for _, a := range arrivals(second.Requests()) {
		if a.event != "ticket_created" && a.event != "ticket_reply" {
			t.Errorf("second endpoint got %s, which it does not subscribe to", a.event)
		}
		if a.ticket == "" {
			t.Errorf("second endpoint got a body without a ticket: %s", a.body)
		}
	}
	if got := len(second.Requests()); got != want {
		t.Errorf("second endpoint got %d requests, want the %d created/reply events stored after the reload", got, want)
	}
	for _, r := range second.Requests() {
		if r.Header.Get("Webhook-Signature") == "" {
			t.Errorf("the reloaded endpoint's secret is not used: no webhook-signature")
		}
		if !oldIDs[r.Header.Get("Webhook-Id")] {
			t.Errorf("second endpoint got %s, which the first never got", r.Header.Get("Webhook-Id"))
		}
	}
	checkDeliveries(t, mergeLoads(before, after), e.rcv.Requests())

	// A broken config is refused; the running endpoints keep working.
	good := e.cfg["endpoints"]
	e.cfg["endpoints"] = []any{map[string]any{"url": "ftp://nope"}}
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	waitLog(t, d, "reload failed; keeping the running config")
	if !strings.Contains(d.stderr.String(), "endpoints[0].url: must be http or https") {
		t.Errorf("the refused reload does not say why")
	}
	// Removing the second endpoint stops its deliveries (it is orphaned:
	// e2e_orphan_test.go).
	e.cfg["endpoints"] = good.([]any)[:1]
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	waitStatus(t, e, func(st *daemon.Status) bool { return len(st.Endpoints) == 2 && st.Endpoints[1].Orphaned })
	n := len(second.Requests())
	last := e.load(ctx, testenv.LoadConfig{Tickets: 2, Seed: 22})
	e.waitDelivered(before.TotalEvents()+after.TotalEvents()+last.TotalEvents(), 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := len(second.Requests()); got != n {
		t.Errorf("a removed endpoint got %d more requests", got-n)
	}
	if code, _, _ := d.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the reloads: %d", code)
	}
	d.stop()
}

// waitLog waits until the daemon logged a line containing s.
func waitLog(t *testing.T, d *daemonProc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never logged %q", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mergeLoads joins the results of loads on one database.
func mergeLoads(loads ...testenv.LoadResult) testenv.LoadResult {
	var out testenv.LoadResult
	out.Events = map[string]int{}
	for _, l := range loads {
		out.Tickets = append(out.Tickets, l.Tickets...)
		for k, v := range l.Events {
			out.Events[k] += v
		}
	}
	return out
}

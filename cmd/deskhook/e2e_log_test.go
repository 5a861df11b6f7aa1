package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// The delivery log and re-sending (docs/delivery-log.md), end to end.

const (
	logTestKey    = "k3y-d0nt-st0re-me"
	logTestSecret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ="
)

func logPage(t *testing.T, res cmdResult) outbox.LogPage {
	t.Helper()
	var p outbox.LogPage
	if err := json.Unmarshal([]byte(res.stdout), &p); err != nil {
		t.Fatalf("log --json: %v\n%s", err, res.stdout)
	}
	return p
}

// attemptsByID counts the requests the receiver got for each webhook id
// (path: only those to this path; "" all).
func attemptsByID(reqs []testenv.Request, path string) map[string]int {
	m := map[string]int{}
	for _, r := range reqs {
		if path == "" || r.Path == path {
			m[r.Header.Get("Webhook-Id")]++
		}
	}
	return m
}

// waitLogged polls `log --json` with args until cond holds.
func waitLogged(t *testing.T, e *e2e, cond func([]outbox.LogEntry) bool, args ...string) []outbox.LogEntry {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := logPage(t, e.must(append([]string{"log", "--json", "--limit", "100000"}, args...)...))
		if cond(p.Entries) {
			return p.Entries
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %v never met the condition; it has %d entries\n%s", args, len(p.Entries), e.must("log", "--json").stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDeliveryLog: an endpoint that fails, then recovers: `deskhook log
// --ticket N` and GET /api/log show every attempt the receiver saw, with
// status, answer (secrets scrubbed), duration and next retry; `log show`
// the event; re-sending a delivered event, a ticket's and a time range's
// reaches the receiver with the same webhook-id and byte-identical body,
// and the new attempts are in the log; the store file holds no secret and
// passes `store check`.
func TestDeliveryLog(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ep := e.endpoint(0)
	ep["retry"] = map[string]any{"schedule": []string{"0s", "100ms", "200ms", "300ms", "400ms", "500ms", "500ms", "500ms", "500ms", "500ms", "500ms", "500ms"}}
	ep["headers"] = map[string]any{"X-Api-Key": logTestKey}
	ep["secret"] = logTestSecret
	e.writeConfig()
	// A broken receiver that echoes what it should not.
	e.rcv.Default(testenv.Reply{Status: 503, Body: "down for maintenance; you sent X-Api-Key: " + logTestKey + " and " + logTestSecret})
	e.setup()
	d := e.start()

	before := time.Now().Add(-time.Second)
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 3, Replies: 2, Seed: 15})
	total := load.TotalEvents()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rcv.Wait(ctx, 9); err != nil { // the heads failed three times
		t.Fatal(err)
	}
	e.rcv.Default(testenv.Reply{Body: "thanks"})
	e.waitDelivered(total, 30*time.Second)

	// Every attempt the receiver saw is in the log, with its outcome.
	seen := attemptsByID(e.rcv.Requests(), "")
	attempts := 0
	for _, n := range seen {
		attempts += n
	}
	all := waitLogged(t, e, func(l []outbox.LogEntry) bool { return len(l) == attempts })
	logged := map[string]int{}
	ticketOf := map[string]int64{}
	failed := int64(0)
	for _, l := range all {
		logged[l.EventID]++
		ticketOf[l.EventID] = l.TicketID
		if l.Endpoint != "rcv" || l.At.Before(before) || l.Duration <= 0 {
			t.Errorf("entry %+v: want endpoint rcv, a time and a duration", l)
		}
		switch l.Outcome {
		case outbox.Retry:
			failed = l.TicketID
			if l.Status != 503 || l.NextAt.Before(l.At) || !strings.HasPrefix(l.Response, "down for maintenance") {
				t.Errorf("failed attempt %+v: want status 503, the answer and a next retry", l)
			}
			if strings.Contains(l.Response, logTestKey) || strings.Contains(l.Response, "c2VjcmV0LXNpZ25pbmcta2V5") ||
				!strings.Contains(l.Response, "[redacted]") {
				t.Errorf("failed attempt's response %q: the secrets must be scrubbed", l.Response)
			}
		case outbox.Delivered:
			if l.Status != 200 || l.Response != "thanks" || !l.NextAt.IsZero() {
				t.Errorf("delivered attempt %+v", l)
			}
		default:
			t.Errorf("entry with outcome %s", l.Outcome)
		}
	}
	if fmt.Sprint(logged) != fmt.Sprint(seen) {
		t.Errorf("attempts per event in the log %v, the receiver saw %v", logged, seen)
	}
	if failed == 0 {
		t.Fatal("no failed attempt in the log")
	}

	// One ticket: the CLI's table and JSON, and the API, agree.
	tk := strconv.FormatInt(failed, 10)
	mine := logPage(t, e.must("log", "--json", "--ticket", tk)).Entries
	if len(mine) == 0 || mine[len(mine)-1].Outcome != outbox.Retry || mine[0].Outcome != outbox.Delivered {
		t.Fatalf("log --ticket %s: %+v; want its failures, then its deliveries, newest first", tk, mine)
	}
	for i, l := range mine {
		if l.TicketID != failed || i > 0 && l.At.After(mine[i-1].At) {
			t.Errorf("log --ticket %s: entry %d %+v: another ticket, or not newest first", tk, i, l)
		}
	}
	text := e.must("log", "--ticket", tk).stdout
	for _, want := range []string{"HTTP 503", "retry", "delivered", "HTTP 200", fmt.Sprintf("%d attempt(s)", len(mine))} {
		if !strings.Contains(text, want) {
			t.Errorf("log --ticket %s lacks %q:\n%s", tk, want, text)
		}
	}
	code, body := apiCall(t, http.MethodGet, "http://"+e.admin+"/api/log?ticket="+tk+"&limit=1000", e.adminToken(), nil)
	var api outbox.LogPage
	if err := json.Unmarshal([]byte(body), &api); code != http.StatusOK || err != nil || api.Index != "ticket" {
		t.Fatalf("GET /api/log?ticket=%s: %d %v %s", tk, code, err, body)
	}
	if strings.Contains(body, logTestKey) || strings.Contains(body, "c2VjcmV0LXNpZ25pbmcta2V5") {
		t.Errorf("GET /api/log shows a secret the receiver echoed: %s", body)
	}
	if fmt.Sprint(api.Entries) != fmt.Sprint(mine) {
		t.Errorf("the API's ticket %s:\n%+v\nthe CLI's:\n%+v", tk, api.Entries, mine)
	}
	if code, _ := apiCall(t, http.MethodGet, "http://"+e.admin+"/api/log?ticket="+tk, "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/log without the token: %d, want 401", code)
	}
	if fails := logPage(t, e.must("log", "--json", "--outcome", "failed", "--endpoint", "rcv")).Entries; len(fails) == 0 ||
		len(fails) != attempts-total {
		t.Errorf("log --outcome failed --endpoint rcv: %d entries, want %d", len(fails), attempts-total)
	}

	// log show: the stored event.
	id := mine[0].EventID
	show := e.must("log", "show", id).stdout
	for _, want := range []string{"id         " + id, "rcv", "delivered", "payload    {"} {
		if !strings.Contains(show, want) {
			t.Errorf("log show %s lacks %q:\n%s", id, want, show)
		}
	}

	// Re-send one delivered event, while the daemon runs.
	deliveries := func() map[string][]string {
		m := map[string][]string{}
		for _, r := range e.rcv.Requests() {
			if r.Reply.StatusCode() == 200 {
				id := r.Header.Get("Webhook-Id")
				m[id] = append(m[id], string(r.Body))
			}
		}
		return m
	}
	waitDeliveries := func(want map[string]int) map[string][]string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := deliveries()
			ok := true
			for id, n := range want {
				ok = ok && len(got[id]) >= n
			}
			if ok {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("re-sent events never arrived: want %v deliveries", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if res := e.must("resend", "--endpoint", "rcv", id); !strings.Contains(res.stdout, "re-sending 1 event(s) to rcv: 1 queued again") {
		t.Errorf("resend %s: %s", id, res)
	}
	got := waitDeliveries(map[string]int{id: 2})
	if got[id][0] != got[id][1] {
		t.Errorf("re-sent %s with another body:\n%s\n%s", id, got[id][0], got[id][1])
	}
	again := waitLogged(t, e, func(l []outbox.LogEntry) bool { return countOutcome(l, outbox.Delivered) == 2 }, "--event", id)
	if again[0].Attempt != 1 || again[0].Outcome != outbox.Delivered {
		t.Errorf("the re-sent attempt in the log: %+v", again[0])
	}

	// Re-send a ticket's events through the API; the selection is required.
	var other int64
	want := map[string]int{}
	for _, tkt := range ticketOf {
		if tkt != failed && other == 0 {
			other = tkt
		}
	}
	for id, tkt := range ticketOf {
		if tkt == other {
			want[id] = len(got[id]) + 1
		}
	}
	token := e.adminToken()
	base := "http://" + e.admin + "/api/resend?"
	for q, code := range map[string]int{"endpoint=rcv": 400, "ticket=1": 400, "endpoint=nosuch&ticket=1": 404} {
		if c, b := apiCall(t, http.MethodPost, base+q, token, nil); c != code {
			t.Errorf("POST /api/resend?%s: %d %s, want %d", q, c, b, code)
		}
	}
	c, b := apiCall(t, http.MethodPost, base+"endpoint=rcv&ticket="+strconv.FormatInt(other, 10), token, nil)
	var rr outbox.ResendResult
	if err := json.Unmarshal([]byte(b), &rr); c != 200 || err != nil || rr.Events != len(want) || rr.Queued != len(want) {
		t.Errorf("POST /api/resend ticket %d: %d %s; want %d events queued", other, c, b, len(want))
	}
	got = waitDeliveries(want)
	checkSameBodies(t, got)
	// The ticket's events arrive again in the ticket's order.
	var order []string
	for _, r := range e.rcv.Requests() {
		if want[r.Header.Get("Webhook-Id")] > 0 && r.Reply.StatusCode() == 200 {
			order = append(order, r.Header.Get("Webhook-Id"))
		}
	}
	half := order[len(order)-len(want):]
	for i := 1; i < len(half); i++ {
		if half[i] < half[i-1] {
			t.Errorf("ticket %d re-sent out of order: %v", other, half)
		}
	}

	// Re-send by commit time: everything committed since the load began.
	want = map[string]int{}
	for id := range seen {
		want[id] = len(got[id]) + 1
	}
	res := e.must("resend", "--endpoint", "rcv", "--from", before.Format(time.RFC3339Nano), "--to", "0s")
	if !strings.Contains(res.stdout, fmt.Sprintf("re-sending %d event(s)", total)) {
		t.Errorf("resend --from: %s", res)
	}
	got = waitDeliveries(want)
	checkSameBodies(t, got)
	d.stop()

	// Offline: the log is read from the store.
	offline := logPage(t, e.must("log", "--json", "--ticket", tk)).Entries
	if len(offline) <= len(mine) {
		t.Errorf("log --ticket %s offline: %d entries, want more than %d (re-sent since)", tk, len(offline), len(mine))
	}
	if res := e.run("resend", "--endpoint", "rcv"); res.code != 2 {
		t.Errorf("resend without a selection: %s", res)
	}
	store, err := os.ReadFile(e.storePath())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{logTestKey, "c2VjcmV0LXNpZ25pbmcta2V5"} {
		if bytes.Contains(store, []byte(s)) {
			t.Errorf("the store file holds the secret %q", s)
		}
	}
	e.must("store", "check")
}

func countOutcome(l []outbox.LogEntry, o outbox.Outcome) int {
	n := 0
	for _, x := range l {
		if x.Outcome == o {
			n++
		}
	}
	return n
}

// checkSameBodies: every delivery of an id carried the same body.
func checkSameBodies(t *testing.T, got map[string][]string) {
	t.Helper()
	for id, bodies := range got {
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Errorf("%s delivered with different bodies:\n%s\n%s", id, bodies[0], b)
			}
		}
	}
}

// TestDeliveryLogRetention: entries older than delivery_log.retention are
// pruned, and the events only the log kept with them, but an event still
// pending at an endpoint is not lost: re-sent after its log is gone, it
// arrives. A reload switches to a size bound, which prunes the oldest
// entries down to it. `store check` passes.
func TestDeliveryLogRetention(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any), map[string]any{
		"name": "down", "url": e.rcv.URL + "/down", "events": allEvents(),
		"retry": map[string]any{"schedule": []string{"0s", "1h"}},
	})
	e.cfg["delivery_log"] = map[string]any{"retention": "3s", "prune_interval": "200ms"}
	e.writeConfig()
	downOK := make(chan struct{})
	e.rcv.SetHook(func(r *testenv.Request) (testenv.Reply, bool) {
		if r.Path != "/down" {
			return testenv.Reply{}, false
		}
		select {
		case <-downOK:
			return testenv.Reply{}, true
		default:
			return testenv.Reply{Status: 500, Body: "down"}, true
		}
	})
	e.setup()
	d := e.start()
	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 4, Replies: 1, Seed: 21})
	total := load.TotalEvents()
	e.waitDelivered(total, 30*time.Second)
	// At down, each ticket's first event failed and waits an hour; the
	// ticket's other events wait behind it.
	entries := waitLogged(t, e, func(l []outbox.LogEntry) bool { return countOutcome(l, outbox.Delivered) == total })
	var ids []string
	tickets := map[int64]bool{}
	for _, l := range entries {
		if l.Endpoint == "rcv" {
			ids = append(ids, l.EventID)
			tickets[l.TicketID] = true
		}
	}
	// Retention: 3s later everything is pruned; the events pending at down
	// stay.
	waitLogged(t, e, func(l []outbox.LogEntry) bool { return len(l) == 0 })
	for _, id := range ids {
		ev := e.must("log", "show", "--json", id)
		var st outbox.StoredEvent
		if err := json.Unmarshal([]byte(ev.stdout), &st); err != nil || len(st.Endpoints) != 1 ||
			st.Endpoints[0].Endpoint != "down" || st.Endpoints[0].State != "pending" {
			t.Errorf("event %s after its log was pruned: %s", id, ev.stdout)
		}
	}
	// Nothing pending was lost: re-sent, every event reaches down now.
	close(downOK)
	for tk := range tickets {
		e.must("resend", "--endpoint", "down", "--ticket", strconv.FormatInt(tk, 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool {
		ok := map[string]bool{}
		for _, r := range reqs {
			if r.Path == "/down" && r.Reply.StatusCode() == 200 {
				ok[r.Header.Get("Webhook-Id")] = true
			}
		}
		return len(ok) == total
	})
	if err != nil {
		t.Fatalf("the pending events never reached down: %v", err)
	}
	// Once delivered and their log pruned, the events go too.
	waitLogged(t, e, func(l []outbox.LogEntry) bool { return len(l) == 0 })
	if res := e.run("log", "show", ids[0]); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Errorf("log show of an event delivered everywhere and pruned: %s", res)
	}

	// Size: a reload keeps entries for an hour but at most 64KiB.
	e.cfg["delivery_log"] = map[string]any{"retention": "1h", "max_bytes": "64KiB", "prune_interval": "200ms"}
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	more := e.load(context.Background(), testenv.LoadConfig{Tickets: 60, Replies: 2, Seed: 22})
	e.waitDelivered(total+more.TotalEvents(), 60*time.Second)
	var stats outbox.LogStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := apiCall(t, http.MethodGet, "http://"+e.admin+"/api/log/stats", e.adminToken(), nil)
		if err := json.Unmarshal([]byte(body), &stats); code != 200 || err != nil {
			t.Fatalf("GET /api/log/stats: %d %s", code, body)
		}
		if stats.MaxBytes == 64<<10 && stats.Bytes <= 64<<10 && stats.Entries > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log never got under 64KiB: %+v", stats)
		}
		time.Sleep(100 * time.Millisecond)
	}
	attempts := 2*more.TotalEvents() + total // rcv and down each tried every new event
	newest := logPage(t, e.must("log", "--json", "--limit", "1")).Entries
	if int(stats.Entries) >= attempts || len(newest) != 1 || time.Since(newest[0].At) > time.Minute {
		t.Errorf("after pruning by size: %+v, newest %+v; want fewer than %d entries, the newest kept", stats, newest, attempts)
	}
	if m := d.metrics(); m["deskhook_outbox_log_pruned_total"] == 0 || m["deskhook_outbox_log_bytes"] > 64<<10 {
		t.Errorf("metrics: pruned %v, bytes %v", m["deskhook_outbox_log_pruned_total"], m["deskhook_outbox_log_bytes"])
	}
	d.stop()
	res := e.must("store", "check", "--json")
	var rep outbox.CheckReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || !rep.OK() || len(rep.Warnings) > 0 || rep.LogEntries == 0 {
		t.Errorf("store check: %s", res.stdout)
	}
}

// TestDeliveryLogSIGKILL: killed with SIGKILL while it delivers to a
// flaky endpoint, the daemon leaves a log `store check` finds consistent
// (entries, indexes, events, size counter), and every event the receiver
// accepted has a delivered entry (a result lost in the kill is an event
// delivered again, and logged then).
func TestDeliveryLogSIGKILL(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("log")["level"] = "info"
	e.writeConfig()
	var n atomic.Int64
	e.rcv.SetHook(func(r *testenv.Request) (testenv.Reply, bool) {
		if n.Add(1)%3 == 0 {
			return testenv.Reply{Status: 502, Body: "flaky"}, true
		}
		return testenv.Reply{}, false
	})
	e.setup()
	ctx := context.Background()
	loaded := make(chan testenv.LoadResult, 1)
	d := startDaemon(t, e.cfgPath, e.admin)
	go func() {
		res, err := testenv.Load(ctx, e.db.Pool(t), testenv.LoadConfig{Tickets: 300, Replies: 1, Updates: 1, Writers: 2, Rate: 150, Seed: 5})
		if err != nil {
			t.Error(err)
		}
		loaded <- res
	}()
	for kill := 1; kill <= 3; kill++ {
		time.Sleep(time.Duration(500+kill*700) * time.Millisecond)
		d.signal(syscall.SIGKILL)
		if code := d.wait(10 * time.Second); code != -int(syscall.SIGKILL) {
			t.Fatalf("kill %d: exit %d, want death by SIGKILL", kill, code)
		}
		d = startDaemon(t, e.cfgPath, e.admin)
	}
	load := <-loaded
	d.waitReadyz(http.StatusOK, 60*time.Second)
	e.waitDelivered(load.TotalEvents(), 90*time.Second)
	accepted := deliveredIDs(e.rcv.Requests())
	entries := waitLogged(t, e, func(l []outbox.LogEntry) bool {
		done := map[string]bool{}
		for _, x := range l {
			if x.Outcome == outbox.Delivered {
				done[x.EventID] = true
			}
		}
		return len(done) == len(accepted)
	})
	failures := 0
	for _, x := range entries {
		if x.Outcome == outbox.Retry && x.Status == 502 {
			failures++
		}
	}
	if failures == 0 {
		t.Error("no failed attempt in the log")
	}
	d.stop()
	res := e.must("store", "check", "--json")
	var rep outbox.CheckReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil || !rep.OK() || len(rep.Warnings) > 0 || rep.LogEntries < len(accepted) {
		t.Errorf("store check after kills: %s", res.stdout)
	}
}

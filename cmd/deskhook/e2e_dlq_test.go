package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// TestDLQ: an endpoint that fails permanently turns events into dead
// letters; dlq list, show, replay and drop work while the daemon runs and
// while it does not; a replayed event arrives with its original id and
// body.
func TestDLQ(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.endpoint(0)["retry"] = map[string]any{"schedule": []string{"0s", "10ms"}}
	e.writeConfig()
	e.rcv.Default(testenv.Reply{Status: 500, Body: "receiver broken"})
	e.setup()
	d := e.start()

	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 3, Replies: 1, Seed: 3})
	total := load.TotalEvents()
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.DeadLetters == int64(total) })

	// list, while the daemon runs
	res := e.must("dlq", "list")
	if !strings.Contains(res.stdout, strconv.Itoa(total)+" dead letter(s)") || !strings.Contains(res.stdout, "HTTP 500") {
		t.Errorf("dlq list:\n%s", res.stdout)
	}
	dead := dlqJSON(t, e.must("dlq", "list", "--json"))
	if len(dead) != total {
		t.Fatalf("dlq list --json: %d dead letters, want %d", len(dead), total)
	}
	bodies := failedBodies(e.rcv.Requests())
	for _, dl := range dead {
		if dl.Endpoint != "rcv" || len(dl.Attempts) != 2 || dl.Attempts[1].Status != 500 || dl.Attempts[1].Response != "receiver broken" {
			t.Errorf("dead letter %+v: want 2 attempts answered 500 \"receiver broken\" at rcv", dl)
		}
		if len(bodies[dl.ID]) != 2 {
			t.Errorf("dead letter %s: the receiver saw %d attempts, want 2", dl.ID, len(bodies[dl.ID]))
		}
	}
	if n := len(dlqJSON(t, e.must("dlq", "list", "--json", "--limit", "2"))); n != 2 {
		t.Errorf("dlq list --limit 2: %d", n)
	}
	ticket := dead[0].TicketID
	var ofTicket int
	for _, dl := range dead {
		if dl.TicketID == ticket {
			ofTicket++
		}
	}
	if got := dlqJSON(t, e.must("dlq", "list", "--json", "--ticket", strconv.FormatInt(ticket, 10))); len(got) != ofTicket {
		t.Errorf("dlq list --ticket %d: %d, want %d", ticket, len(got), ofTicket)
	}
	if got := dlqJSON(t, e.must("dlq", "list", "--json", "--endpoint", "nosuch")); len(got) != 0 {
		t.Errorf("dlq list --endpoint nosuch: %d", len(got))
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := dlqJSON(t, e.must("dlq", "list", "--json", "--from", future)); len(got) != 0 {
		t.Errorf("dlq list --from the future: %d", len(got))
	}

	// show
	id := dead[0].ID
	res = e.must("dlq", "show", id)
	for _, want := range []string{"id         " + id, "attempts   2", "status 500", `response: "receiver broken"`, "payload    {"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("dlq show lacks %q:\n%s", want, res.stdout)
		}
	}
	var shown outbox.DeadLetter
	if err := json.Unmarshal([]byte(e.must("dlq", "show", "--json", id).stdout), &shown); err != nil || shown.ID != id || len(shown.Payload) == 0 {
		t.Errorf("dlq show --json: %+v %v", shown, err)
	}
	if res := e.run("dlq", "show", "evt_nosuch"); res.code != 1 || !strings.Contains(res.stderr, "evt_nosuch") {
		t.Errorf("dlq show of an unknown id: want exit 1 naming it; %s", res)
	}

	// replay one, then a ticket's, while the daemon runs
	e.rcv.Default(testenv.Reply{})
	if res := e.must("dlq", "replay", id); !strings.Contains(res.stdout, "replayed 1 dead letter(s)") {
		t.Errorf("dlq replay ID: %s", res)
	}
	waitArrived(t, e, id)
	checkReplayed(t, e, bodies, id)
	res = e.must("dlq", "replay", "--ticket", strconv.FormatInt(ticket, 10))
	if !strings.Contains(res.stdout, "replayed "+strconv.Itoa(ofTicket-1)+" dead letter(s)") {
		t.Errorf("dlq replay --ticket: want %d replayed; %s", ofTicket-1, res)
	}
	var rest []string
	for _, dl := range dead {
		if dl.TicketID == ticket {
			waitArrived(t, e, dl.ID)
			checkReplayed(t, e, bodies, dl.ID)
		} else {
			rest = append(rest, dl.ID)
		}
	}

	d.stop()

	// offline: list, drop one, replay the others; they go out at the next start
	if got := dlqJSON(t, e.must("dlq", "list", "--json")); len(got) != len(rest) {
		t.Errorf("dlq list offline: %d, want %d", len(got), len(rest))
	}
	dropped := rest[0]
	if res := e.must("dlq", "drop", dropped); !strings.Contains(res.stdout, "dropped 1 dead letter(s)") {
		t.Errorf("dlq drop ID: %s", res)
	}
	res = e.must("dlq", "replay", "--all")
	if !strings.Contains(res.stdout, "replayed "+strconv.Itoa(len(rest)-1)+" dead letter(s)") {
		t.Errorf("dlq replay --all: %s", res)
	}
	if res := e.must("dlq", "list"); !strings.Contains(res.stdout, "0 dead letter(s)") {
		t.Errorf("dlq list after replaying all:\n%s", res.stdout)
	}
	e.start()
	for _, id := range rest[1:] {
		waitArrived(t, e, id)
		checkReplayed(t, e, bodies, id)
	}
	time.Sleep(200 * time.Millisecond)
	if delivered := deliveredIDs(e.rcv.Requests()); delivered[dropped] {
		t.Errorf("dropped dead letter %s was delivered", dropped)
	}
	if res := e.must("dlq", "drop", "--all"); !strings.Contains(res.stdout, "dropped 0 dead letter(s)") {
		t.Errorf("dlq drop --all with none left: %s", res)
	}
}

func dlqJSON(t *testing.T, res cmdResult) []outbox.DeadLetter {
	t.Helper()
	var dl []outbox.DeadLetter
	if err := json.Unmarshal([]byte(res.stdout), &dl); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, res.stdout)
	}
	return dl
}

// failedBodies maps each webhook id to the bodies of its failed requests.
func failedBodies(reqs []testenv.Request) map[string][]string {
	m := map[string][]string{}
	for _, r := range reqs {
		if r.Reply.StatusCode() >= 300 {
			id := r.Header.Get("Webhook-Id")
			m[id] = append(m[id], string(r.Body))
		}
	}
	return m
}

func waitArrived(t *testing.T, e *e2e, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool { return deliveredIDs(reqs)[id] }); err != nil {
		t.Fatalf("replayed event %s never delivered: %v", id, err)
	}
}

// checkReplayed: the delivered request of id carries the body the failed
// attempts carried, and a valid timestamp.
func checkReplayed(t *testing.T, e *e2e, failed map[string][]string, id string) {
	t.Helper()
	for _, r := range e.rcv.Requests() {
		if r.Header.Get("Webhook-Id") != id || r.Reply.StatusCode() != 200 {
			continue
		}
		if !slices.Contains(failed[id], string(r.Body)) {
			t.Errorf("replayed %s with another body:\n got %s\nwant %s", id, r.Body, failed[id])
		}
		if !regexp.MustCompile(`^\d+$`).MatchString(r.Header.Get("Webhook-Timestamp")) {
			t.Errorf("replayed %s: webhook-timestamp %q", id, r.Header.Get("Webhook-Timestamp"))
		}
		return
	}
	t.Errorf("no delivery of %s", id)
}

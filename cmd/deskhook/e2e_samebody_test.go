package main

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestSameIDSameBodyAcrossKill is issue 12's point 8 on the real binary: an
// event's first delivery is cut short by kill -9 (the receiver kills the
// daemon the moment the request arrives), then, before the restart, rows
// the event's body is made of change (the replying agent is renamed, the
// ticket's subject edited). After the restart the event goes out again; a
// receiver deduplicating by webhook-id must get, for every id, the same
// bytes every time. A later reply by the same agent shows the new name and
// subject, so the change does reach a body mapped now.
func TestSameIDSameBodyAcrossKill(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("log")["level"] = "info"
	e.writeConfig()
	e.setup()
	d := e.start()

	ctx := context.Background()
	hd := testenv.NewHelpdesk(e.db.Pool(t))
	created, err := hd.CreateTicket(ctx, testenv.NewTicket{Subject: "Printer on fire"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitDelivered(1, 30*time.Second)

	// The next request, the reply's first delivery, kills the daemon before
	// it is answered.
	var once sync.Once
	killed := make(chan string, 1)
	e.rcv.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		hit := false
		once.Do(func() {
			hit = true
			_ = d.cmd.Process.Signal(syscall.SIGKILL)
			killed <- req.Header.Get("Webhook-Id")
		})
		if hit {
			return testenv.Reply{Status: http.StatusServiceUnavailable}, true
		}
		return testenv.Reply{}, false
	})
	first, err := hd.AgentReply(ctx, created.TicketID, testenv.AgentAlice, "<p>Have you tried water?</p>")
	if err != nil {
		t.Fatal(err)
	}
	var replyID string
	select {
	case replyID = <-killed:
	case <-time.After(30 * time.Second):
		t.Fatal("the reply was never sent")
	}
	if code := d.wait(10 * time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("exit %d, want death by SIGKILL", code)
	}
	e.rcv.SetHook(nil)

	// What the reply's body is made of changes while deskhook is down.
	e.db.Exec(t, `UPDATE users SET first_name = 'Renamed' WHERE id = $1`, testenv.AgentAlice)
	e.db.Exec(t, `UPDATE ticket_thread SET title = 'Subject edited' WHERE ticket_id = $1 AND id < $2`,
		created.TicketID, first.ThreadID)

	d = e.start()
	second, err := hd.AgentReply(ctx, created.TicketID, testenv.AgentAlice, "<p>Or sand?</p>")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var secondID string
	err = e.rcv.WaitFor(wctx, func(reqs []testenv.Request) bool {
		ok := deliveredIDs(reqs)
		secondID = ""
		for _, r := range reqs {
			if f, _ := url.ParseQuery(string(r.Body)); f.Get("thread[id]") == strconv.FormatInt(second.ThreadID, 10) {
				secondID = r.Header.Get("Webhook-Id")
			}
		}
		return ok[replyID] && secondID != "" && ok[secondID]
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // anything extra would arrive now
	d.stop()

	reqs := e.rcv.Requests()
	bodies := checkOneBodyPerID(t, reqs)
	n := 0
	for _, r := range reqs {
		if r.Header.Get("Webhook-Id") == replyID {
			n++
		}
	}
	if n < 2 {
		t.Errorf("the reply %s was sent %d times, want at least 2 (the killed attempt and one after the restart)", replyID, n)
	}
	// The fixture: the first reply's body is the one mapped before the
	// change, and a body mapped after it shows the change.
	f, _ := url.ParseQuery(bodies[replyID])
	if f.Get("thread[id]") != strconv.FormatInt(first.ThreadID, 10) || f.Get("replied_by[first_name]") != "Alice" ||
		f.Get("thread[ticket][first_thread][title]") != "Printer on fire" {
		t.Errorf("the killed request %s is not the first reply as mapped before the change: %s", replyID, bodies[replyID])
	}
	f, _ = url.ParseQuery(bodies[secondID])
	if f.Get("replied_by[first_name]") != "Renamed" || f.Get("thread[ticket][first_thread][title]") != "Subject edited" {
		t.Errorf("a reply mapped after the change does not show it (so this test could not see a body mapped again): %s",
			bodies[secondID])
	}
}

package mapping

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/change"
)

// TestMapThreadChangesInvalidateFacts: a thread update or delete the
// stream shows cannot leave a ticket's thread facts (thread_count, poster,
// first_thread) stale. Without the old row (ticket_thread keeps the default
// replica identity) the mapper cannot tell what changed, so it reads the
// facts again when an event needs them; a first thread edited in place is
// applied directly.
func TestMapThreadChangesInvalidateFacts(t *testing.T) {
	u := unchanged
	keyOnly := func(id int) *change.Row { return mkRow(threadsT, id, u, u, u, u, u, u) }
	for _, tc := range []struct {
		name string
		// change is applied after ticket 1 got threads 1 (client) and 2
		// (support reply), and ticket 2 got thread 3 (client).
		change    changeSpec
		facts     map[int64]TicketFacts // what the source says afterwards
		ticket    int                   // whose status then changes
		want      []string
		factReads int
	}{
		{
			name:   "reply deleted, default identity",
			change: changeSpec{del: keyOnly(2)},
			facts: map[int64]TicketFacts{1: {FirstThread: threadRow(1, 1, 5, "client", 0), ThreadCount: 1,
				LastPoster: "client", MaxThreadID: 1}},
			ticket: 1, want: []string{`"thread_count":"1"`, `"poster":"client"`}, factReads: 1,
		},
		{
			name:   "reply made internal",
			change: changeSpec{upd: mkRow(threadsT, 2, 1, 1, nil, "support", 1, "<p>2</p>")},
			facts: map[int64]TicketFacts{1: {FirstThread: threadRow(1, 1, 5, "client", 0), ThreadCount: 1,
				LastPoster: "client", MaxThreadID: 2}},
			ticket: 1, want: []string{`"thread_count":"1"`, `"poster":"client"`}, factReads: 1,
		},
		{
			name:   "thread moved to another ticket (merge)",
			change: changeSpec{upd: mkRow(threadsT, 2, 2, 1, nil, "support", 0, "<p>2</p>")},
			facts: map[int64]TicketFacts{2: {FirstThread: threadRow(2, 2, 1, "support", 0), ThreadCount: 2,
				LastPoster: "client", MaxThreadID: 3}},
			ticket: 2, want: []string{`"thread_count":"2"`, `"first_thread":{"id":"2"`}, factReads: 1,
		},
		{
			name:   "first thread edited: applied in place",
			change: changeSpec{upd: mkRow(threadsT, 1, 1, 5, nil, "client", 0, "<p>edited</p>")},
			ticket: 1, want: []string{`"thread_count":"2"`, `"body":"<p>edited</p>"`}, factReads: 0,
		},
		{
			name:   "last reply edited: applied in place",
			change: changeSpec{upd: mkRow(threadsT, 2, 1, 1, nil, "support", 0, "<p>typo fixed</p>")},
			ticket: 1, want: []string{`"thread_count":"2"`, `"poster":"support"`}, factReads: 0,
		},
		{
			name:   "first thread made internal",
			change: changeSpec{upd: mkRow(threadsT, 1, 1, 5, nil, "client", 1, "<p>1</p>")},
			facts: map[int64]TicketFacts{1: {FirstThread: threadRow(2, 1, 1, "support", 0), ThreadCount: 1,
				LastPoster: "support", MaxThreadID: 2}},
			ticket: 1, want: []string{`"thread_count":"1"`, `"first_thread":{"id":"2"`}, factReads: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMemSource()
			m, _ := newTestMapper(t, src, nil)
			mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0)),
				ins(threadRow(2, 1, 1, "support", 0)), ins(ticketRow(2, 5, 1, 1, nil)), ins(threadRow(3, 2, 5, "client", 0))))
			for id, f := range tc.facts {
				src.facts[id] = f
			}
			if tc.change.del != nil {
				mustMap(t, m, txn(2, del(tc.change.del)))
			} else {
				mustMap(t, m, txn(2, upd(nil, tc.change.upd)))
			}
			evs := mustMap(t, m, txn(3, upd(ticketRow(tc.ticket, 5, 1, 1, nil), ticketRow(tc.ticket, 5, 1, 2, nil))))
			if got := eventTypes(evs); got != TicketStatusUpdated {
				t.Fatalf("got %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(evs[0].Payload), w) {
					t.Errorf("payload lacks %s: %s", w, evs[0].Payload)
				}
			}
			if src.factCalls != tc.factReads {
				t.Errorf("facts read %d times, want %d", src.factCalls, tc.factReads)
			}
		})
	}
}

type changeSpec struct{ del, upd *change.Row }

// TestMapThreadTriggers: which later public threads fire. Replies need
// poster support and thread_type NULL, ” or first_reply; client messages
// fire ticket_commented; notes and activity threads fire nothing even when
// a client posted them publicly (docs/faveo-webhooks.md, "Events": notes
// and activity fire nothing).
func TestMapThreadTriggers(t *testing.T) {
	for _, tc := range []struct {
		poster     string
		threadType any
		internal   int
		want       string
	}{
		{"support", nil, 0, TicketReply},
		{"support", "", 0, TicketReply},
		{"support", "first_reply", 0, TicketReply},
		{"support", "note", 0, ""},
		{"support", "ticket_assign_alert", 0, ""},
		{"support", nil, 1, ""},
		{"agent", nil, 0, ""},
		{"client", nil, 0, TicketCommented},
		{"client", "", 0, TicketCommented},
		{"client", nil, 1, ""},
		{"client", "note", 0, ""},
		{"client", "ticket_transfer_alert", 0, ""},
		{"client", "internal_activity_alert", 0, ""},
		{"client", "response_due", 0, ""},
		{"client", "resolve_due", 0, ""},
	} {
		m, _ := newTestMapper(t, newMemSource(), nil)
		mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0))))
		evs := mustMap(t, m, txn(2, ins(mkRow(threadsT, 2, 1, 5, tc.threadType, tc.poster, tc.internal, "x"))))
		if got := eventTypes(evs); got != tc.want {
			t.Errorf("poster %s, thread_type %v, is_internal %d: fired %q, want %q", tc.poster, tc.threadType,
				tc.internal, got, tc.want)
		}
	}
}

// TestMapRelatedRowsAsOfCommit: a status, status type or user changed in
// the same transaction as the event, before it, shows as changed.
func TestMapRelatedRowsAsOfCommit(t *testing.T) {
	m, _ := newTestMapper(t, newMemSource(), nil)
	mustMap(t, m, txn(1, ins(ticketRow(1, 5, 1, 1, nil)), ins(threadRow(1, 1, 5, "client", 0))))
	// Cache status 2, type 2 and user 1 as the source has them.
	mustMap(t, m, txn(2, upd(ticketRow(1, 5, 1, 1, nil), ticketRow(1, 5, 1, 2, nil)), ins(threadRow(2, 1, 1, "support", 0))))
	evs := mustMap(t, m, txn(3,
		upd(nil, mkRow(statusT, 1, "Reopened", 2, `{"client":"0"}`)),
		upd(nil, mkRow(typesT, 2, "closed-renamed")),
		upd(nil, mkRow(usersT, 1, "admin", "Ada", "Lovelace", "ada@x.example", "h", "1", "")),
		upd(ticketRow(1, 5, 1, 2, nil), ticketRow(1, 5, 1, 1, nil)),
		ins(threadRow(3, 1, 1, "support", 0))))
	if got := eventTypes(evs); got != TicketStatusUpdated+","+TicketReply {
		t.Fatalf("got %s", got)
	}
	if p := string(evs[0].Payload); !strings.Contains(p, `"statuses":{"id":"1","name":"Reopened","purpose_of_status":"2","send_email":{"client":"0"},"type":{"id":"2","name":"closed-renamed"}}`) {
		t.Errorf("status as of the commit: %s", p)
	}
	if p := string(evs[1].Payload); !strings.Contains(p, `"full_name":"Ada Lovelace"`) || !strings.Contains(p, `"status":"1"`) {
		t.Errorf("user and ticket as of the commit: %s", p)
	}
}

// TestMapResetStartsClean: after Reset (the daemon's answer to a Map that
// failed half-way) the mapper knows nothing: a batch it applied in part is
// mapped again from the source's rows, with the same ids and bytes as a
// fresh mapper gives.
func TestMapResetStartsClean(t *testing.T) {
	src := newMemSource()
	src.put(ticketRow(7, 5, 1, 1, nil))
	src.facts[7] = TicketFacts{FirstThread: threadRow(70, 7, 5, "client", 0), ThreadCount: 1, LastPoster: "client", MaxThreadID: 70}
	batch := txn(9, upd(ticketRow(7, 5, 1, 1, nil), ticketRow(7, 5, 2, 2, nil)), ins(threadRow(71, 7, 1, "support", 0)))

	fresh, _ := newTestMapper(t, src, nil)
	want := mustMap(t, fresh, batch)

	m, _ := newTestMapper(t, src, nil)
	src.fail = errors.New("source down")
	if _, err := m.Map(context.Background(), batch); err == nil {
		t.Fatal("Map succeeded with the source down")
	}
	src.fail = nil
	m.Reset()
	if m.tickets.len() != 0 || m.users.len() != 0 {
		t.Fatalf("state after Reset: %d tickets, %d users", m.tickets.len(), m.users.len())
	}
	got := mustMap(t, m, batch)
	if eventTypes(got) != eventTypes(want) || len(got) != 3 {
		t.Fatalf("after Reset: %s, want %s", eventTypes(got), eventTypes(want))
	}
	for i := range got {
		if got[i].ID != want[i].ID || string(got[i].Payload) != string(want[i].Payload) {
			t.Errorf("event %d differs after Reset:\n%s\n%s", i, got[i].Payload, want[i].Payload)
		}
	}
}

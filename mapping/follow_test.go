package mapping_test

// What the mapper follows beyond tickets and threads, and what it refuses
// to guess, on the real replication stream: attachments and collaborators
// added while streaming, a TRUNCATE, and a column the mapping reads
// renamed away.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// ticketCounts reads the ticket object's attachment and collaborator
// counts from an event's payload (wherever the event puts the ticket).
func ticketCounts(t *testing.T, ev mapping.Event) (attachments, collaborators string) {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatal(err)
	}
	ticket, _ := p["ticket"].(map[string]any)
	if th, ok := p["thread"].(map[string]any); ok && ticket == nil {
		if tk, ok := th["ticket"].(map[string]any); ok {
			ticket = tk
		} else {
			ticket = th // ticket_department_updated
		}
	}
	if ticket == nil {
		t.Fatalf("%s payload without a ticket: %s", ev.Type, ev.Payload)
	}
	a, _ := ticket["attachment_count"].(string)
	c, _ := ticket["collaborator_count"].(string) // null (no collaborators) reads ""
	return a, c
}

// TestFollowAttachmentsAndCollaborators: an attachment or a collaborator
// added to a ticket while streaming shows in the ticket's next event, also
// when the thread it is attached to was never seen by the stream.
func TestFollowAttachmentsAndCollaborators(t *testing.T) {
	p := newPipeline(t)
	old := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{})) // before the stream: the mapper never saw its thread
	p.setup()
	m := p.mapper(mapping.Config{AppKey: testAppKey}, mapping.Options{})
	attach := func(thread int64) {
		t.Helper()
		if _, err := p.hd.AddAttachment(p.ctx(), thread, "a.txt", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// Streamed step by step: the source is read as it is when the mapper
	// needs it, so each step's event shows the counts as of that step.
	step := func(event, attachments, collaborators string) {
		t.Helper()
		evs := p.stream(m, streamOptions{})
		if len(evs) != 1 {
			t.Fatalf("%d events, want one %s", len(evs), event)
		}
		a, c := ticketCounts(t, evs[0])
		if evs[0].Type != event || a != attachments || c != collaborators {
			t.Errorf("%s with attachment_count %q, collaborator_count %q; want %s with %q, %q",
				evs[0].Type, a, c, event, attachments, collaborators)
		}
	}
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	step(mapping.TicketCreated, "0", "")
	attach(w.ThreadID)
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>with one attachment</p>"))
	step(mapping.TicketReply, "1", "")
	if _, err := p.hd.AddCollaborator(p.ctx(), w.TicketID, testenv.ClientErin); err != nil {
		t.Fatal(err)
	}
	r := p.must(p.hd.ClientReply(p.ctx(), w.TicketID, testenv.ClientDave, "<p>and a collaborator</p>"))
	step(mapping.TicketCommented, "1", "1")
	attach(r.ThreadID)
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusClosed))
	step(mapping.TicketStatusUpdated, "2", "1")
	// The old ticket's facts are read from the source; then its first
	// thread, which the stream never showed, gets an attachment.
	p.must(p.hd.ChangeStatus(p.ctx(), old.TicketID, testenv.StatusClosed))
	step(mapping.TicketStatusUpdated, "0", "")
	attach(old.ThreadID)
	p.must(p.hd.AgentReply(p.ctx(), old.TicketID, testenv.AgentBob, "<p>old one</p>"))
	step(mapping.TicketReply, "1", "")
}

// TestTruncateInventsNothing: after TRUNCATE ticket_thread, a reply to a
// ticket created before is a ticket_reply, not a second ticket_created;
// a ticket created after it is created as usual.
func TestTruncateInventsNothing(t *testing.T) {
	p := newPipeline(t)
	before := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{})) // never seen by the stream
	p.setup()
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.exec(`TRUNCATE ticket_thread`)
	p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>after the truncate</p>"))
	p.must(p.hd.ClientReply(p.ctx(), before.TicketID, testenv.ClientDave, "<p>an older ticket</p>"))
	fresh := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.must(p.hd.AgentReply(p.ctx(), fresh.TicketID, testenv.AgentAlice, "<p>on the new one</p>"))

	m := p.mapper(mapping.Config{AppKey: testAppKey}, mapping.Options{})
	var got []string
	for _, ev := range p.stream(m, streamOptions{}) {
		got = append(got, ev.Type)
	}
	want := []string{mapping.TicketCreated, mapping.TicketReply, mapping.TicketCommented, mapping.TicketCreated, mapping.TicketReply}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestRenamedColumnIsABadRow: a tickets row that lacks a column the
// mapping reads (status renamed) is skipped and counted, not mapped into
// a different event; the rows after the column is back map again.
func TestRenamedColumnIsABadRow(t *testing.T) {
	p := newPipeline(t)
	p.setup()
	w := p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{}))
	p.exec(`ALTER TABLE tickets RENAME COLUMN status TO status_id`)
	p.exec(`UPDATE tickets SET status_id = $1, dept_id = 2 WHERE id = $2`, testenv.StatusClosed, w.TicketID)
	p.exec(`ALTER TABLE tickets RENAME COLUMN status_id TO status`)
	p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusOpen))

	reg := prometheus.NewRegistry()
	m := p.mapper(mapping.Config{AppKey: testAppKey}, mapping.Options{Registerer: reg})
	var got []string
	for _, ev := range p.stream(m, streamOptions{}) {
		got = append(got, ev.Type)
	}
	// The update without status fires nothing (not a department change
	// alone, which is what the row would seem to say); the one after the
	// rename back fires.
	want := []string{mapping.TicketCreated, mapping.TicketStatusUpdated}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", got, want)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP deskhook_mapping_bad_rows_total Row changes the mapper could not use (logged and skipped), by table.
# TYPE deskhook_mapping_bad_rows_total counter
deskhook_mapping_bad_rows_total{table="tickets"} 1
`), "deskhook_mapping_bad_rows_total"); err != nil {
		t.Error(err)
	}
}

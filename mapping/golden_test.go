package mapping_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenCase is a scenario of simulator actions; every event it fires is
// compared with testdata/golden/<name>/<index>_<event>.{json,form}.
type goldenCase struct {
	name string
	// before runs before the slot exists: rows deskhook never saw.
	before func(p *pipeline)
	// actions run after setup and are replicated.
	actions func(p *pipeline)
	config  func(c *mapping.Config)
	want    []string // event types, in order
	// sameTxn lists events that must come from one transaction, numbered
	// 0, 1, ... in it.
	sameTxn []int
}

func goldenCases() []goldenCase {
	create := func(p *pipeline) testenv.Write {
		return p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{Subject: "Printer on fire", Body: "<p>It is on fire &amp; smoking.</p>"}))
	}
	return []goldenCase{
		{name: "created", actions: func(p *pipeline) { create(p) }, want: []string{mapping.TicketCreated}},
		{
			name: "created_two_transactions",
			actions: func(p *pipeline) {
				p.must(p.hd.CreateTicket(p.ctx(), testenv.NewTicket{TwoTransactions: true, Requester: testenv.ClientGrace}))
			},
			want: []string{mapping.TicketCreated},
		},
		{
			name: "reply",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>Have you tried water?</p>"))
				p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentBob, "<p>Second reply</p>\n<p>with \"quotes\" + 100% ünïcödé</p>"))
			},
			want: []string{mapping.TicketCreated, mapping.TicketReply, mapping.TicketReply},
		},
		{
			name: "commented",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.ClientReply(p.ctx(), w.TicketID, testenv.ClientDave, "<p>Still burning</p>"))
			},
			want: []string{mapping.TicketCreated, mapping.TicketCommented},
		},
		{
			name: "internal_note_and_assignment",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.InternalNote(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>internal</p>"))
				p.must(p.hd.AssignAgent(p.ctx(), w.TicketID, testenv.AgentCarol, testenv.AdminID))
			},
			want: []string{mapping.TicketCreated, mapping.TicketAssigned},
		},
		{
			name: "status",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusOnHold))
				p.must(p.hd.ChangeStatus(p.ctx(), w.TicketID, testenv.StatusClosed))
			},
			want: []string{mapping.TicketCreated, mapping.TicketStatusUpdated, mapping.TicketStatusUpdated},
		},
		{
			name: "department",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.AssignAgent(p.ctx(), w.TicketID, testenv.AgentAlice, testenv.AdminID))
				p.must(p.hd.ChangeDepartment(p.ctx(), w.TicketID, testenv.DeptOperation))
			},
			want: []string{mapping.TicketCreated, mapping.TicketAssigned, mapping.TicketDepartmentUpdated},
		},
		{
			name: "owner_and_due_date",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.ChangeOwner(p.ctx(), w.TicketID, testenv.ClientErin))
				p.must(p.hd.ChangeDueDate(p.ctx(), w.TicketID, time.Date(2022, 7, 1, 17, 0, 0, 0, time.UTC)))
			},
			want: []string{mapping.TicketCreated, mapping.TicketOwnerUpdated, mapping.TicketDueDateUpdated},
		},
		{
			name: "team_assignment_off",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.AssignTeam(p.ctx(), w.TicketID, testenv.TeamLevel2))
			},
			want: []string{mapping.TicketCreated},
		},
		{
			name:   "team_assignment_on",
			config: func(c *mapping.Config) { c.TeamAssignment = true },
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.AssignTeam(p.ctx(), w.TicketID, testenv.TeamLevel2))
				p.must(p.hd.AssignAgent(p.ctx(), w.TicketID, testenv.AgentBob, testenv.AdminID))
			},
			want: []string{mapping.TicketCreated, mapping.TicketAssigned, mapping.TicketAssigned},
		},
		{
			// One UPDATE changing status, department, agent, owner and due
			// date: five events in the contract's order.
			name: "several_fields_one_update",
			actions: func(p *pipeline) {
				w := create(p)
				p.exec(`UPDATE tickets SET duedate = '2022-08-01 10:00:00', user_id = $2, assigned_to = $3,
					dept_id = $4, status = $5, updated_at = '2022-06-16 09:00:00' WHERE id = $1`,
					w.TicketID, testenv.ClientFrank, testenv.AgentBob, testenv.DeptSales, testenv.StatusResolved)
			},
			want: []string{mapping.TicketCreated, mapping.TicketStatusUpdated, mapping.TicketDepartmentUpdated,
				mapping.TicketAssigned, mapping.TicketOwnerUpdated, mapping.TicketDueDateUpdated},
			sameTxn: []int{1, 2, 3, 4, 5},
		},
		{
			// Updates that change nothing an event is about fire nothing.
			name: "irrelevant_updates",
			actions: func(p *pipeline) {
				w := create(p)
				p.exec(`UPDATE tickets SET priority_id = 3, updated_at = '2022-06-16 09:00:00' WHERE id = $1`, w.TicketID)
				p.exec(`UPDATE tickets SET status = status, dept_id = dept_id WHERE id = $1`, w.TicketID)
				p.exec(`UPDATE tickets SET assigned_to = NULL WHERE id = $1`, w.TicketID)
				p.exec(`UPDATE ticket_thread SET updated_at = '2022-06-16 09:30:00' WHERE ticket_id = $1`, w.TicketID)
			},
			want: []string{mapping.TicketCreated},
		},
		{
			// One transaction touching several tickets: events in commit order.
			name: "several_tickets_one_transaction",
			actions: func(p *pipeline) {
				create(p)
				create(p)
				p.exec(`UPDATE tickets SET status = 9 WHERE id = 2;
					UPDATE tickets SET dept_id = 2 WHERE id = 1;
					INSERT INTO ticket_thread (ticket_id, user_id, poster, is_internal, body, created_at, updated_at)
						VALUES (2, 3, 'support', 0, '<p>batch reply</p>', '2022-06-16 10:00:00', '2022-06-16 10:00:00');
					UPDATE tickets SET status = 3 WHERE id = 1`)
			},
			want: []string{mapping.TicketCreated, mapping.TicketCreated, mapping.TicketStatusUpdated,
				mapping.TicketDepartmentUpdated, mapping.TicketReply, mapping.TicketStatusUpdated},
			sameTxn: []int{2, 3, 4, 5},
		},
		{
			// A hard delete fires nothing; a ticket created and deleted in one
			// transaction neither. Moving to the trash is a status change.
			name: "deleted",
			actions: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.HardDelete(p.ctx(), w.TicketID))
				p.exec(`INSERT INTO tickets (id, ticket_number, user_id, status, created_at, updated_at)
						VALUES (100, 'AAAA-0000-0100', 5, 1, '2022-06-16 10:00:00', '2022-06-16 10:00:00');
					INSERT INTO ticket_thread (ticket_id, user_id, poster, is_internal, title, body, created_at, updated_at)
						VALUES (100, 5, 'client', 0, 'gone', '<p>gone</p>', '2022-06-16 10:00:00', '2022-06-16 10:00:00');
					UPDATE tickets SET status = 2 WHERE id = 100;
					DELETE FROM ticket_thread WHERE ticket_id = 100;
					DELETE FROM tickets WHERE id = 100`)
				w = create(p)
				p.must(p.hd.Delete(p.ctx(), w.TicketID))
			},
			want: []string{mapping.TicketCreated, mapping.TicketCreated, mapping.TicketStatusUpdated},
		},
		{
			// The ticket, its first thread, its collaborator and attachment
			// were written before deskhook was set up: the reply's payload
			// is built from rows read from the database, once.
			name: "never_seen_ticket",
			before: func(p *pipeline) {
				w := create(p)
				p.must(p.hd.AgentReply(p.ctx(), w.TicketID, testenv.AgentAlice, "<p>before setup</p>"))
				if _, err := p.hd.AddCollaborator(p.ctx(), w.TicketID, testenv.ClientGrace); err != nil {
					p.t.Fatal(err)
				}
				if _, err := p.hd.AddAttachment(p.ctx(), w.ThreadID, "log.txt", []byte("smoke")); err != nil {
					p.t.Fatal(err)
				}
			},
			actions: func(p *pipeline) {
				p.must(p.hd.ClientReply(p.ctx(), 1, testenv.ClientDave, "<p>after setup</p>"))
				p.must(p.hd.AgentReply(p.ctx(), 1, testenv.AgentBob, "<p>second after setup</p>"))
				p.must(p.hd.ChangeStatus(p.ctx(), 1, testenv.StatusResolved))
			},
			want: []string{mapping.TicketCommented, mapping.TicketReply, mapping.TicketStatusUpdated},
		},
		{
			// The ticket row was written before setup, its first thread after.
			name: "first_thread_of_never_seen_ticket",
			before: func(p *pipeline) {
				p.exec(`INSERT INTO tickets (id, ticket_number, user_id, dept_id, status, source, created_at, updated_at)
					VALUES (1, 'AAAA-0000-0001', 6, 2, 1, 2, '2022-06-16 07:00:00', '2022-06-16 07:00:00')`)
			},
			actions: func(p *pipeline) {
				p.exec(`INSERT INTO ticket_thread (ticket_id, user_id, poster, is_internal, title, body, created_at, updated_at)
					VALUES (1, 6, 'client', 0, 'By mail', '<p>mailed in</p>', '2022-06-16 07:01:00', '2022-06-16 07:01:00')`)
			},
			want: []string{mapping.TicketCreated},
		},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			events := runGolden(t, newPipeline(t), tc)
			for i, e := range tc.sameTxn {
				ev, first := events[e], events[tc.sameTxn[0]]
				if ev.Pos != first.Pos || ev.Index != uint32(i) || ev.ID != mapping.EventID(ev.Pos, uint32(i)) {
					t.Errorf("event %d: pos %s index %d id %s; want pos %s index %d", e, ev.Pos, ev.Index, ev.ID, first.Pos, i)
				}
			}
			for i := 1; i < len(events); i++ {
				if events[i].Pos < events[i-1].Pos {
					t.Errorf("event %d at %s comes after %s: not in commit order", i, events[i].Pos, events[i-1].Pos)
				}
			}
			checkGolden(t, filepath.Join("golden", tc.name), events)
		})
	}
}

// runGolden runs a golden case on p and returns its events, which must be
// of the types the case wants.
func runGolden(t *testing.T, p *pipeline, tc goldenCase) []mapping.Event {
	t.Helper()
	if tc.before != nil {
		tc.before(p)
	}
	p.setup()
	tc.actions(p)
	cfg := mapping.Config{AppKey: testAppKey}
	if tc.config != nil {
		tc.config(&cfg)
	}
	events := p.stream(p.mapper(cfg, mapping.Options{}), streamOptions{})
	var got []string
	for _, ev := range events {
		got = append(got, ev.Type)
	}
	if !slices.Equal(got, tc.want) {
		t.Fatalf("events %v, want %v", got, tc.want)
	}
	return events
}

// checkGolden compares each event's canonical JSON and faveo-form body
// with its golden file under testdata/dir (rewriting them with -update).
func checkGolden(t *testing.T, dir string, events []mapping.Event) {
	t.Helper()
	dir = filepath.Join("testdata", dir)
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i, ev := range events {
		form, _, err := mapping.Render(mapping.FormatForm, ev.Payload)
		if err != nil {
			t.Fatalf("event %d: render: %v", i, err)
		}
		if !json.Valid(ev.Payload) {
			t.Fatalf("event %d: payload is not JSON: %s", i, ev.Payload)
		}
		base := filepath.Join(dir, fmt.Sprintf("%02d_%s", i, ev.Type))
		for ext, body := range map[string][]byte{".json": ev.Payload, ".form": form} {
			path := base + ext
			if *update {
				if err := os.WriteFile(path, append(bytes.Clone(body), '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./mapping -run TestGolden -update to create it)", err)
			}
			if want = bytes.TrimSuffix(want, []byte("\n")); !bytes.Equal(body, want) {
				t.Errorf("%s differs (-update rewrites it): %s", path, firstDiff(body, want))
			}
		}
	}
	if !*update {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if len(files) != len(events) {
			t.Errorf("%s holds %d golden payloads, the case fired %d events", dir, len(files), len(events))
		}
	}
}

// firstDiff shows where got and want part, with some context.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-60)
	window := func(b []byte) []byte { return b[min(from, len(b)):min(i+60, len(b))] }
	return fmt.Sprintf("at byte %d\ngot  …%s…\nwant …%s…", i, window(got), window(want))
}

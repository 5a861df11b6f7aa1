package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// clock is a settable Helpdesk.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newHelpdesk(t *testing.T) (*Helpdesk, *pgxpool.Pool, *clock) {
	t.Helper()
	pool := Postgres(t, NoFsync()).Pool(t)
	c := &clock{t: time.Date(2022, 6, 16, 7, 52, 32, 987654321, time.UTC)}
	h := NewHelpdesk(pool)
	h.Now = c.Now
	return h, pool, c
}

type row map[string]any

func getRow(t *testing.T, pool *pgxpool.Pool, table string, id int64) row {
	t.Helper()
	rows, _ := pool.Query(context.Background(), "SELECT *, xmin::text AS xmin FROM "+table+" WHERE id = $1", id)
	r, err := pgx.CollectOneRow(rows, pgx.RowToMap)
	if err != nil {
		t.Fatalf("%s %d: %v", table, id, err)
	}
	return r
}

// want checks columns of r: a nil want means NULL.
func want(t *testing.T, what string, r row, cols map[string]any) {
	t.Helper()
	for col, w := range cols {
		got, ok := r[col]
		if !ok {
			t.Errorf("%s: no column %s", what, col)
			continue
		}
		if fmt.Sprint(normalize(got)) != fmt.Sprint(normalize(w)) {
			t.Errorf("%s.%s = %v, want %v", what, col, normalize(got), normalize(w))
		}
	}
}

func normalize(v any) any {
	switch v := v.(type) {
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case time.Time:
		return v.UTC().Format(time.DateTime)
	}
	return v
}

func TestCreateTicket(t *testing.T) {
	for _, two := range []bool{false, true} {
		t.Run(fmt.Sprintf("two transactions %v", two), func(t *testing.T) {
			h, pool, c := newHelpdesk(t)
			ctx := context.Background()
			w, err := h.CreateTicket(ctx, NewTicket{Requester: ClientErin, Creator: AgentAlice, HelpTopic: TopicSales,
				Priority: PriorityHigh, Source: SourceEmail, Subject: "Printer", Body: "<p>on fire</p>", TwoTransactions: two})
			if err != nil {
				t.Fatal(err)
			}
			at := c.Now().Truncate(time.Second)
			if w.TicketID != 1 || w.TicketNumber != "AAAA-0000-0001" || w.ThreadID != 1 || !w.At.Equal(at) || w.CommittedAt.IsZero() {
				t.Errorf("write = %+v", w)
			}
			ticket := getRow(t, pool, "tickets", w.TicketID)
			want(t, "ticket", ticket, map[string]any{
				"ticket_number": "AAAA-0000-0001", "user_id": ClientErin, "dept_id": DeptSales, "team_id": nil,
				"priority_id": PriorityHigh, "sla": 1, "help_topic_id": TopicSales, "status": StatusOpen,
				"assigned_to": nil, "source": SourceEmail, "closed": 0, "is_deleted": 0, "isanswered": 0,
				"transferred_at": nil, "duedate": at.Add(5 * time.Hour), "created_at": at, "updated_at": at,
				"type": 0, "location_id": 0, "creator_id": AgentAlice, "response_due_by": at.Add(5 * time.Hour),
				"is_manual_duedate": 0, "resolution_due_by": at.Add(5 * time.Hour), "closed_at": nil,
				"assigned_at": nil, "status_changed_at": nil,
			})
			thread := getRow(t, pool, "ticket_thread", w.ThreadID)
			want(t, "first thread", thread, map[string]any{
				"ticket_id": w.TicketID, "user_id": ClientErin, "thread_type": nil, "poster": "client",
				"is_internal": 0, "title": "Printer", "body": "<p>on fire</p>", "source": nil, "response_time": nil,
				"created_at": at, "updated_at": at,
			})
			sameTx := ticket["xmin"] == thread["xmin"]
			if sameTx == two {
				t.Errorf("ticket xmin %v, thread xmin %v: want same transaction = %v", ticket["xmin"], thread["xmin"], !two)
			}
			w2, err := h.CreateTicket(ctx, NewTicket{})
			if err != nil {
				t.Fatal(err)
			}
			if w2.TicketNumber != "AAAA-0000-0002" {
				t.Errorf("second ticket number %q", w2.TicketNumber)
			}
			want(t, "default ticket", getRow(t, pool, "tickets", w2.TicketID), map[string]any{
				"user_id": ClientDave, "creator_id": ClientDave, "dept_id": DeptSupport, "help_topic_id": TopicSupport,
				"priority_id": PriorityLow, "source": SourceWeb, "status": StatusOpen,
			})
		})
	}
}

func TestTicketNumber(t *testing.T) {
	for id, want := range map[int64]string{1: "AAAA-0000-0001", 10: "AAAA-0000-0010", 12345: "AAAA-0001-2345",
		99999999: "AAAA-9999-9999"} {
		if got := TicketNumber(id); got != want {
			t.Errorf("TicketNumber(%d) = %q, want %q", id, got, want)
		}
	}
}

func TestReplies(t *testing.T) {
	h, pool, c := newHelpdesk(t)
	ctx := context.Background()
	tk, err := h.CreateTicket(ctx, NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	created := tk.At

	at := c.Advance(21 * time.Minute).Truncate(time.Second)
	first, err := h.AgentReply(ctx, tk.TicketID, AgentAlice, "<p>first</p>")
	if err != nil {
		t.Fatal(err)
	}
	if !first.FirstReply || first.ThreadID == 0 {
		t.Errorf("first reply write %+v", first)
	}
	ticket := getRow(t, pool, "tickets", tk.TicketID)
	thread := getRow(t, pool, "ticket_thread", first.ThreadID)
	want(t, "first reply", thread, map[string]any{
		"ticket_id": tk.TicketID, "user_id": AgentAlice, "thread_type": "first_reply", "poster": "support",
		"is_internal": 0, "body": "<p>first</p>", "response_time": 21, "created_at": at,
	})
	want(t, "ticket after first reply", ticket, map[string]any{
		"updated_at": at, "created_at": created, "isanswered": 1, "first_response_time": at,
		"response_due_by": nil, "duedate": created.Add(5 * time.Hour),
	})
	if ticket["xmin"] != thread["xmin"] {
		t.Error("reply and ticket update in different transactions")
	}

	at = c.Advance(time.Minute).Truncate(time.Second)
	client, err := h.ClientReply(ctx, tk.TicketID, ClientDave, "<p>thanks</p>")
	if err != nil {
		t.Fatal(err)
	}
	want(t, "client reply", getRow(t, pool, "ticket_thread", client.ThreadID), map[string]any{
		"user_id": ClientDave, "thread_type": nil, "poster": "client", "is_internal": 0, "body": "<p>thanks</p>",
	})
	want(t, "ticket after client reply", getRow(t, pool, "tickets", tk.TicketID), map[string]any{
		"updated_at": at, "isanswered": 0, "last_message_at": at,
	})

	at = c.Advance(time.Minute).Truncate(time.Second)
	second, err := h.AgentReply(ctx, tk.TicketID, AgentBob, "<p>second</p>")
	if err != nil {
		t.Fatal(err)
	}
	if second.FirstReply {
		t.Error("second agent reply marked first")
	}
	want(t, "second reply", getRow(t, pool, "ticket_thread", second.ThreadID), map[string]any{
		"user_id": AgentBob, "thread_type": nil, "poster": "support", "is_internal": 0,
	})
	want(t, "ticket after second reply", getRow(t, pool, "tickets", tk.TicketID), map[string]any{
		"updated_at": at, "isanswered": 1, "first_response_time": first.At,
	})

	for _, who := range []struct {
		id     int64
		poster string
	}{{AgentCarol, "agent"}, {AdminID, "admin"}} {
		note, err := h.InternalNote(ctx, tk.TicketID, who.id, "<p>psst</p>")
		if err != nil {
			t.Fatal(err)
		}
		want(t, "note", getRow(t, pool, "ticket_thread", note.ThreadID), map[string]any{
			"user_id": who.id, "thread_type": "note", "poster": who.poster, "is_internal": 1,
		})
	}
}

func TestTicketUpdates(t *testing.T) {
	h, pool, c := newHelpdesk(t)
	ctx := context.Background()
	tk, err := h.CreateTicket(ctx, NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	id := tk.TicketID
	due := time.Date(2022, 7, 1, 12, 0, 0, 500, time.FixedZone("x", 3600))
	steps := []struct {
		name  string
		do    func() (Write, error)
		want  map[string]any
		alert bool // writes a ticket_assign_alert thread
	}{
		{"assign team", func() (Write, error) { return h.AssignTeam(ctx, id, TeamLevel2) },
			map[string]any{"team_id": TeamLevel2, "assigned_to": nil, "assigned_at": "now"}, false},
		{"assign agent", func() (Write, error) { return h.AssignAgent(ctx, id, AgentBob, AdminID) },
			map[string]any{"assigned_to": AgentBob, "team_id": nil, "assigned_at": "now"}, true},
		{"department", func() (Write, error) { return h.ChangeDepartment(ctx, id, DeptOperation) },
			map[string]any{"dept_id": DeptOperation, "assigned_to": nil}, false},
		{"close", func() (Write, error) { return h.ChangeStatus(ctx, id, StatusClosed) },
			map[string]any{"status": StatusClosed, "closed": 1, "closed_at": "now", "status_changed_at": "now",
				"reopened": 0, "reopened_at": nil}, false},
		{"reopen", func() (Write, error) { return h.ChangeStatus(ctx, id, StatusOpen) },
			map[string]any{"status": StatusOpen, "closed": 0, "reopened": 1, "reopened_at": "now",
				"status_changed_at": "now"}, false},
		{"on hold", func() (Write, error) { return h.ChangeStatus(ctx, id, StatusOnHold) },
			map[string]any{"status": StatusOnHold, "closed": 0, "reopened": 1}, false},
		{"owner", func() (Write, error) { return h.ChangeOwner(ctx, id, ClientGrace) },
			map[string]any{"user_id": ClientGrace}, false},
		{"due date", func() (Write, error) { return h.ChangeDueDate(ctx, id, due) },
			map[string]any{"duedate": due.UTC().Truncate(time.Second), "is_manual_duedate": 1}, false},
		{"delete", func() (Write, error) { return h.Delete(ctx, id) },
			map[string]any{"status": StatusDeleted, "is_deleted": 1, "closed": 0}, false},
	}
	for _, st := range steps {
		now := c.Advance(time.Minute).Truncate(time.Second)
		w, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if w.TicketID != id || !w.At.Equal(now) {
			t.Errorf("%s: write %+v", st.name, w)
		}
		cols := map[string]any{"updated_at": now}
		for k, v := range st.want {
			if v == "now" {
				v = now
			}
			cols[k] = v
		}
		ticket := getRow(t, pool, "tickets", id)
		want(t, st.name, ticket, cols)
		if st.alert {
			thread := getRow(t, pool, "ticket_thread", w.ThreadID)
			want(t, st.name+" alert", thread, map[string]any{
				"ticket_id": id, "user_id": AdminID, "thread_type": "ticket_assign_alert", "is_internal": 1,
				"body": "Assigned to Bob Agent", "created_at": now,
			})
			if thread["xmin"] != ticket["xmin"] {
				t.Errorf("%s: alert thread and ticket update in different transactions", st.name)
			}
		} else if w.ThreadID != 0 {
			t.Errorf("%s wrote thread %d", st.name, w.ThreadID)
		}
	}
}

func TestHardDelete(t *testing.T) {
	h, pool, _ := newHelpdesk(t)
	ctx := context.Background()
	tk, err := h.CreateTicket(ctx, NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.CreateTicket(ctx, NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddCollaborator(ctx, tk.TicketID, ClientGrace); err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddAttachment(ctx, tk.ThreadID, "log.txt", []byte("boom")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddAttachment(ctx, other.ThreadID, "keep.txt", []byte("keep")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.HardDelete(ctx, tk.TicketID); err != nil {
		t.Fatal(err)
	}
	for table, wantN := range map[string]int{"tickets": 1, "ticket_thread": 1, "ticket_collaborator": 0, "ticket_attachment": 1} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != wantN {
			t.Errorf("%s has %d rows after hard delete, want %d (the other ticket's)", table, n, wantN)
		}
	}
}

func TestActionsOnMissingTicket(t *testing.T) {
	h, _, _ := newHelpdesk(t)
	checkActionsOnMissingTicket(t, h)
}

// checkActionsOnMissingTicket: every action on a ticket that does not
// exist fails, naming the ticket.
func checkActionsOnMissingTicket(t *testing.T, h *Helpdesk) {
	t.Helper()
	ctx := context.Background()
	actions := map[string]func() (Write, error){
		"agent reply":  func() (Write, error) { return h.AgentReply(ctx, 42, AgentAlice, "x") },
		"client reply": func() (Write, error) { return h.ClientReply(ctx, 42, ClientDave, "x") },
		"note":         func() (Write, error) { return h.InternalNote(ctx, 42, AgentAlice, "x") },
		"status":       func() (Write, error) { return h.ChangeStatus(ctx, 42, StatusClosed) },
		"department":   func() (Write, error) { return h.ChangeDepartment(ctx, 42, DeptSales) },
		"agent":        func() (Write, error) { return h.AssignAgent(ctx, 42, AgentAlice, AdminID) },
		"team":         func() (Write, error) { return h.AssignTeam(ctx, 42, TeamLevel1) },
		"owner":        func() (Write, error) { return h.ChangeOwner(ctx, 42, ClientDave) },
		"due":          func() (Write, error) { return h.ChangeDueDate(ctx, 42, time.Now()) },
		"hard delete":  func() (Write, error) { return h.HardDelete(ctx, 42) },
	}
	for name, do := range actions {
		_, err := do()
		if err == nil || !strings.Contains(err.Error(), "ticket 42") {
			t.Errorf("%s on a missing ticket: %v, want an error naming ticket 42", name, err)
		}
	}
}

// Several goroutines share one Helpdesk; concurrent agent replies to one
// ticket still give it exactly one first_reply.
func TestHelpdeskConcurrent(t *testing.T) {
	h, pool, _ := newHelpdesk(t)
	h.Now = time.Now
	ctx := context.Background()
	const writers, perWriter = 4, 5
	createConcurrently(t, h, writers, perWriter)
	var tickets, firsts, withOneFirst int
	err := pool.QueryRow(ctx, `SELECT count(*), sum(f), count(*) FILTER (WHERE f = 1) FROM (
		SELECT t.id, count(th.id) FILTER (WHERE th.thread_type = 'first_reply') AS f
		FROM tickets t LEFT JOIN ticket_thread th ON th.ticket_id = t.id GROUP BY t.id) x`).Scan(&tickets, &firsts, &withOneFirst)
	if err != nil {
		t.Fatal(err)
	}
	if tickets != writers*perWriter || withOneFirst != tickets || firsts != tickets {
		t.Errorf("%d tickets, %d first replies, %d tickets with exactly one", tickets, firsts, withOneFirst)
	}
}

// createConcurrently has writers goroutines share h, each creating
// perWriter tickets (every other one in two transactions) to which all
// agents reply at once. Tickets get distinct numbers.
func createConcurrently(t *testing.T, h *Helpdesk, writers, perWriter int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*(1+len(Agents)))
	numbers := make(chan string, writers*perWriter)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < perWriter; j++ {
				tk, err := h.CreateTicket(ctx, NewTicket{TwoTransactions: j%2 == 1})
				if err != nil {
					errs <- err
					return
				}
				numbers <- tk.TicketNumber
				var inner sync.WaitGroup
				for _, agent := range Agents {
					inner.Add(1)
					go func() {
						defer inner.Done()
						if _, err := h.AgentReply(ctx, tk.TicketID, agent, "hi"); err != nil {
							errs <- err
						}
					}()
				}
				inner.Wait()
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(numbers)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for n := range numbers {
		if seen[n] {
			t.Errorf("ticket number %s twice", n)
		}
		seen[n] = true
	}
}

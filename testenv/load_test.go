package testenv

import (
	"context"
	"math/rand"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// The load generator does what it reports: the rows in the database add up
// to its counts, and each ticket ends in the state its last actions set.
func TestLoadProducesReportedCounts(t *testing.T) {
	pool := Postgres(t, NoFsync()).Pool(t)
	ctx := context.Background()
	var (
		mu       sync.Mutex
		hooked   int
		lastSeen = map[int]int{} // ticket index -> actions seen
	)
	cfg := LoadConfig{Tickets: 12, Replies: 3, Updates: 4, Writers: 3, Seed: 7,
		UpdateKinds: []ActionKind{ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner, ActDueDate, ActNote},
		OnAction: func(a Action) {
			mu.Lock()
			defer mu.Unlock()
			hooked++
			lastSeen[a.Ticket]++
			if a.CommittedAt.IsZero() || a.TicketID == 0 {
				t.Errorf("hook got %+v", a)
			}
		}}
	res, err := Load(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	perTicket := 1 + cfg.Replies + cfg.Updates
	if hooked != cfg.Tickets*perTicket {
		t.Errorf("OnAction called %d times, want %d", hooked, cfg.Tickets*perTicket)
	}
	total := 0
	for _, n := range res.Actions {
		total += n
	}
	if total != cfg.Tickets*perTicket || res.Actions[ActCreate] != cfg.Tickets ||
		res.Actions[ActAgentReply]+res.Actions[ActClientReply] != cfg.Tickets*cfg.Replies {
		t.Errorf("actions %v", res.Actions)
	}

	count := func(sql string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	checks := []struct {
		what string
		got  int
		want int
	}{
		{"tickets", count("SELECT count(*) FROM tickets"), cfg.Tickets},
		{"ticket_created", count("SELECT count(DISTINCT ticket_id) FROM ticket_thread"), res.Events[EventTicketCreated]},
		{"ticket_reply", count("SELECT count(*) FROM ticket_thread WHERE poster = 'support' AND is_internal = 0"), res.Events[EventTicketReply]},
		{"ticket_commented", count("SELECT count(*) FROM ticket_thread WHERE poster = 'client' AND is_internal = 0") - cfg.Tickets,
			res.Events[EventTicketCommented]},
		{"assign alerts", count("SELECT count(*) FROM ticket_thread WHERE thread_type = 'ticket_assign_alert'"), res.Actions[ActAssignAgent]},
		{"ticket_assigned", res.Events[EventTicketAssigned], res.Actions[ActAssignAgent]},
		{"notes", count("SELECT count(*) FROM ticket_thread WHERE thread_type = 'note'"), res.Actions[ActNote]},
		{"ticket_status_updated", res.Events[EventTicketStatusUpdated], res.Actions[ActStatus]},
		{"ticket_department_updated", res.Events[EventTicketDepartmentUpdated], res.Actions[ActDepartment]},
		{"ticket_owner_updated", res.Events[EventTicketOwnerUpdated], res.Actions[ActOwner]},
		{"ticket_due_date_updated", res.Events[EventTicketDueDateUpdated], res.Actions[ActDueDate]},
		{"first replies", count("SELECT count(*) FROM ticket_thread WHERE thread_type = 'first_reply'"),
			count("SELECT count(DISTINCT ticket_id) FROM ticket_thread WHERE poster = 'support' AND is_internal = 0")},
		{"total events", res.TotalEvents(), cfg.Tickets + res.Actions[ActAgentReply] + res.Actions[ActClientReply] +
			res.Actions[ActStatus] + res.Actions[ActDepartment] + res.Actions[ActAssignAgent] + res.Actions[ActOwner] + res.Actions[ActDueDate]},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.what, c.got, c.want)
		}
	}

	// Final state follows each ticket's last actions.
	for i, tl := range res.Tickets {
		if len(tl.Actions) != perTicket || tl.Actions[0].Kind != ActCreate || lastSeen[i] != perTicket {
			t.Fatalf("ticket %d: %d actions, first %s", i, len(tl.Actions), tl.Actions[0].Kind)
		}
		final := map[string]any{"status": StatusOpen}
		for _, a := range tl.Actions {
			switch a.Kind {
			case ActCreate:
				final["user_id"] = a.Value
			case ActStatus:
				final["status"] = a.Value
			case ActDepartment:
				final["dept_id"], final["assigned_to"] = a.Value, nil
			case ActAssignAgent:
				final["assigned_to"], final["team_id"] = a.Value, nil
			case ActAssignTeam:
				final["team_id"], final["assigned_to"] = a.Value, nil
			case ActOwner:
				final["user_id"] = a.Value
			case ActDueDate:
				final["duedate"] = time.Unix(a.Value, 0)
			}
			if a.Ticket != i || a.TicketID != tl.TicketID {
				t.Errorf("ticket %d action %+v", i, a)
			}
		}
		want(t, "ticket", getRow(t, pool, "tickets", tl.TicketID), final)
	}
}

// Every update in a plan changes its column: a no-op change would be no
// event, and the counts would lie.
func TestLoadPlanChangesSomethingEachTime(t *testing.T) {
	cfg := LoadConfig{Replies: 5, Updates: 30}
	kinds := []ActionKind{ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner, ActDueDate}
	a := planTicket(rand.New(rand.NewSource(3)), cfg, kinds)
	b := planTicket(rand.New(rand.NewSource(3)), cfg, kinds)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed, different plans")
	}
	last := map[ActionKind]int64{ActStatus: StatusOpen, ActDepartment: a.topic, ActOwner: a.requester}
	for _, s := range a.steps[1:] {
		switch s.kind {
		case ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner, ActDueDate:
			if s.value == last[s.kind] {
				t.Errorf("%s set to its current value %d", s.kind, s.value)
			}
			last[s.kind] = s.value
			if s.kind == ActDepartment || s.kind == ActAssignTeam {
				last[ActAssignAgent] = 0
			}
			if s.kind == ActAssignAgent {
				last[ActAssignTeam] = 0
			}
		}
	}
	if len(a.steps) != 1+cfg.Replies+cfg.Updates {
		t.Errorf("%d steps", len(a.steps))
	}
}

func TestLoadRateAndErrors(t *testing.T) {
	pool := Postgres(t, NoFsync()).Pool(t)
	ctx := context.Background()
	res, err := Load(ctx, pool, LoadConfig{Tickets: 4, Replies: 1, Updates: 0, Writers: 2, Rate: 40})
	if err != nil {
		t.Fatal(err)
	}
	// 8 actions at 40/s: the last starts no earlier than 7/40 s after the first.
	if res.Elapsed < 7*time.Second/40 {
		t.Errorf("8 actions at 40/s took %v", res.Elapsed)
	}
	if _, err := Load(ctx, pool, LoadConfig{Tickets: 1, UpdateKinds: []ActionKind{ActCreate}}); err == nil ||
		!strings.Contains(err.Error(), `"create"`) {
		t.Errorf("create as an update kind: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Load(cctx, pool, LoadConfig{Tickets: 2, Replies: 2}); err == nil {
		t.Error("Load with a cancelled context succeeded")
	}
}

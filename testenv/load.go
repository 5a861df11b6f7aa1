package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Faveo's event names (docs/faveo-webhooks.md, "Events"), as the load
// generator predicts them.
const (
	EventTicketCreated           = "ticket_created"
	EventTicketReply             = "ticket_reply"
	EventTicketStatusUpdated     = "ticket_status_updated"
	EventTicketDepartmentUpdated = "ticket_department_updated"
	EventTicketAssigned          = "ticket_assigned"
	EventTicketCommented         = "ticket_commented"
	EventTicketOwnerUpdated      = "ticket_owner_updated"
	EventTicketDueDateUpdated    = "ticket_due_date_updated"
)

// ActionKind names a simulated helpdesk action.
type ActionKind string

const (
	ActCreate      ActionKind = "create"       // CreateTicket
	ActAgentReply  ActionKind = "agent_reply"  // AgentReply
	ActClientReply ActionKind = "client_reply" // ClientReply
	ActNote        ActionKind = "note"         // InternalNote
	ActStatus      ActionKind = "status"       // ChangeStatus
	ActDepartment  ActionKind = "department"   // ChangeDepartment
	ActAssignAgent ActionKind = "assign_agent" // AssignAgent
	ActAssignTeam  ActionKind = "assign_team"  // AssignTeam
	ActOwner       ActionKind = "owner"        // ChangeOwner
	ActDueDate     ActionKind = "due_date"     // ChangeDueDate
)

// DefaultUpdateKinds are the updates Load mixes by default: the ones behind
// Faveo's documented events.
var DefaultUpdateKinds = []ActionKind{ActStatus, ActDepartment, ActAssignAgent}

// LoadConfig says how much load to generate.
type LoadConfig struct {
	Tickets int     // tickets to create
	Replies int     // replies per ticket after its creation: agent replies and client comments, mixed
	Updates int     // updates per ticket, of UpdateKinds
	Writers int     // concurrent writers (connections); default 1
	Rate    float64 // actions per second over all writers; 0 = as fast as possible
	Seed    int64   // seeds every random choice: the same seed gives the same plan

	// UpdateKinds are the updates to mix; default DefaultUpdateKinds. Any of
	// ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner,
	// ActDueDate, ActNote.
	UpdateKinds []ActionKind
	// TwoTransactions creates tickets in two transactions (ticket, then
	// first thread).
	TwoTransactions bool
	// OnAction, if set, is called after each action commits, from the
	// writer's goroutine (so concurrently when Writers > 1).
	OnAction func(Action)
}

// Action is one action Load performed.
type Action struct {
	Kind   ActionKind
	Ticket int // index of the ticket in LoadResult.Tickets
	Value  int64
	// Value is what was set: the status, department, agent, team or owner
	// id; the replying user for replies and notes; the due date's Unix
	// seconds.
	Write
	// Events are the events docs/faveo-webhooks.md derives from the action, in
	// order (none for notes, team assignments, or an agent reply's ticket
	// update).
	Events []string
}

// TicketLoad is what happened to one ticket, in order.
type TicketLoad struct {
	TicketID int64
	Actions  []Action
}

// LoadResult says what Load did.
type LoadResult struct {
	Tickets []TicketLoad
	Actions map[ActionKind]int // count per kind
	Events  map[string]int     // expected count per event name
	Elapsed time.Duration
}

// TotalEvents is the number of events expected over all kinds.
func (r LoadResult) TotalEvents() int {
	n := 0
	for _, c := range r.Events {
		n += c
	}
	return n
}

// plannedAction is one step of a ticket's plan.
type plannedAction struct {
	kind  ActionKind
	value int64
	ev    []string
}

// ticketPlan simulates the ticket's state while planning, so every update
// really changes its column (a row change that changes nothing is no event).
type ticketPlan struct {
	requester int64
	topic     int64
	steps     []plannedAction
}

func planTicket(rng *rand.Rand, cfg LoadConfig, kinds []ActionKind) ticketPlan {
	p := ticketPlan{requester: Clients[rng.Intn(len(Clients))], topic: HelpTopics[rng.Intn(len(HelpTopics))]}
	status, dept, agent, team, owner := StatusOpen, p.topic, int64(0), int64(0), p.requester
	p.steps = append(p.steps, plannedAction{kind: ActCreate, value: p.requester, ev: []string{EventTicketCreated}})

	var rest []ActionKind
	for i := 0; i < cfg.Replies; i++ {
		if rng.Intn(5) < 3 {
			rest = append(rest, ActAgentReply)
		} else {
			rest = append(rest, ActClientReply)
		}
	}
	for i := 0; i < cfg.Updates; i++ {
		rest = append(rest, kinds[rng.Intn(len(kinds))])
	}
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })

	other := func(choices []int64, current int64) int64 {
		for {
			if c := choices[rng.Intn(len(choices))]; c != current {
				return c
			}
		}
	}
	due := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, k := range rest {
		a := plannedAction{kind: k}
		switch k {
		case ActAgentReply:
			a.value, a.ev = Agents[rng.Intn(len(Agents))], []string{EventTicketReply}
		case ActClientReply:
			a.value, a.ev = owner, []string{EventTicketCommented}
		case ActNote:
			a.value = Agents[rng.Intn(len(Agents))]
		case ActStatus:
			status = other([]int64{StatusOpen, StatusResolved, StatusClosed, StatusOnHold, StatusRequestToClose}, status)
			a.value, a.ev = status, []string{EventTicketStatusUpdated}
		case ActDepartment:
			dept, agent = other(Departments, dept), 0
			a.value, a.ev = dept, []string{EventTicketDepartmentUpdated}
		case ActAssignAgent:
			agent, team = other(Agents, agent), 0
			a.value, a.ev = agent, []string{EventTicketAssigned}
		case ActAssignTeam:
			team, agent = other(Teams, team), 0
			a.value = team
		case ActOwner:
			owner = other(Clients, owner)
			a.value, a.ev = owner, []string{EventTicketOwnerUpdated}
		case ActDueDate:
			due += int64(3600 * (1 + rng.Intn(48)))
			a.value, a.ev = due, []string{EventTicketDueDateUpdated}
		}
		p.steps = append(p.steps, a)
	}
	return p
}

// Load drives the helpdesk on PostgreSQL: cfg.Tickets tickets, each created
// and then given cfg.Replies replies and cfg.Updates updates in a random
// order, by cfg.Writers concurrent writers each owning a share of the
// tickets and interleaving them. Each ticket's actions happen in order. It
// returns what it did, with the events deskhook should deliver; on error,
// what it did up to then.
func Load(ctx context.Context, pool *pgxpool.Pool, cfg LoadConfig) (LoadResult, error) {
	return load(ctx, NewHelpdesk(pool), cfg)
}

// LoadMySQL is Load on MySQL/MariaDB, through db from OpenFaveoMySQL (or
// MySQLDB.Pool). The same configuration makes the same plan as on
// PostgreSQL.
func LoadMySQL(ctx context.Context, db *sql.DB, cfg LoadConfig) (LoadResult, error) {
	return load(ctx, NewMySQLHelpdesk(db), cfg)
}

func load(ctx context.Context, h *Helpdesk, cfg LoadConfig) (LoadResult, error) {
	if cfg.Writers <= 0 {
		cfg.Writers = 1
	}
	kinds := cfg.UpdateKinds
	if len(kinds) == 0 {
		kinds = DefaultUpdateKinds
	}
	for _, k := range kinds {
		switch k {
		case ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner, ActDueDate, ActNote:
		default:
			return LoadResult{}, fmt.Errorf("testenv.Load: update kind %q: not an update", k)
		}
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	plans := make([]ticketPlan, cfg.Tickets)
	for i := range plans {
		plans[i] = planTicket(rng, cfg, kinds)
	}

	res := LoadResult{Tickets: make([]TicketLoad, cfg.Tickets)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		slots    atomic.Int64
		start    = time.Now()
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	// pace waits for the next slot of the global rate.
	pace := func() error {
		if cfg.Rate <= 0 {
			return ctx.Err()
		}
		at := start.Add(time.Duration(float64(slots.Add(1)-1) / cfg.Rate * float64(time.Second)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(at)):
			return nil
		}
	}
	for w := 0; w < cfg.Writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wrng := rand.New(rand.NewSource(cfg.Seed + int64(w) + 1))
			var mine []int // tickets of this writer with steps left
			for i := w; i < cfg.Tickets; i += cfg.Writers {
				mine = append(mine, i)
			}
			next := make(map[int]int)
			for len(mine) > 0 {
				j := wrng.Intn(len(mine))
				ti := mine[j]
				if err := pace(); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				step := plans[ti].steps[next[ti]]
				a, err := perform(ctx, h, &plans[ti], &res.Tickets[ti], step, cfg.TwoTransactions)
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				a.Ticket = ti
				res.Tickets[ti].Actions = append(res.Tickets[ti].Actions, a)
				if cfg.OnAction != nil {
					cfg.OnAction(a)
				}
				if next[ti]++; next[ti] == len(plans[ti].steps) {
					mine = append(mine[:j], mine[j+1:]...)
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Actions, res.Events = map[ActionKind]int{}, map[string]int{}
	for _, tl := range res.Tickets {
		for _, a := range tl.Actions {
			res.Actions[a.Kind]++
			for _, e := range a.Events {
				res.Events[e]++
			}
		}
	}
	if firstErr != nil {
		return res, fmt.Errorf("testenv.Load: %w", firstErr)
	}
	return res, nil
}

// perform carries out one planned step on a ticket.
func perform(ctx context.Context, h *Helpdesk, p *ticketPlan, tl *TicketLoad, s plannedAction, two bool) (Action, error) {
	var (
		w   Write
		err error
		id  = tl.TicketID
	)
	switch s.kind {
	case ActCreate:
		w, err = h.CreateTicket(ctx, NewTicket{Requester: p.requester, HelpTopic: p.topic, TwoTransactions: two,
			Subject: "Load ticket", Body: "<p>Generated by testenv.Load</p>"})
		tl.TicketID = w.TicketID
	case ActAgentReply:
		w, err = h.AgentReply(ctx, id, s.value, "<p>Agent reply</p>")
	case ActClientReply:
		w, err = h.ClientReply(ctx, id, s.value, "<p>Client comment</p>")
	case ActNote:
		w, err = h.InternalNote(ctx, id, s.value, "<p>Internal note</p>")
	case ActStatus:
		w, err = h.ChangeStatus(ctx, id, s.value)
	case ActDepartment:
		w, err = h.ChangeDepartment(ctx, id, s.value)
	case ActAssignAgent:
		w, err = h.AssignAgent(ctx, id, s.value, AdminID)
	case ActAssignTeam:
		w, err = h.AssignTeam(ctx, id, s.value)
	case ActOwner:
		w, err = h.ChangeOwner(ctx, id, s.value)
	case ActDueDate:
		w, err = h.ChangeDueDate(ctx, id, time.Unix(s.value, 0))
	}
	return Action{Kind: s.kind, Value: s.value, Write: w, Events: s.ev}, err
}

package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Helpdesk writes to a Faveo database the rows Faveo writes for each agent
// or client action, statement by statement, so deskhook sees the same WAL
// or binlog. The same actions run on PostgreSQL (NewHelpdesk) and on
// MySQL/MariaDB (NewMySQLHelpdesk). Each method returns the ids it wrote,
// so a test can predict the events. Methods may be called from several
// goroutines at once; actions on one ticket are serialized by a row lock,
// as Faveo's would be by its users.
type Helpdesk struct {
	db helpdeskDB

	// Now is the clock written into created_at, updated_at and friends,
	// truncated to whole seconds in UTC (Faveo's datetime columns hold no
	// fraction). Set it before use; it defaults to time.Now.
	Now func() time.Time
}

// NewHelpdesk returns a simulator writing to a PostgreSQL database through
// pool.
func NewHelpdesk(pool *pgxpool.Pool) *Helpdesk {
	return &Helpdesk{db: newPGHelpdeskDB(pool), Now: time.Now}
}

// Write says what an action wrote.
type Write struct {
	TicketID     int64
	ThreadID     int64     // the thread inserted (first thread, reply, note, assignment alert); 0 if none
	TicketNumber string    // CreateTicket only
	FirstReply   bool      // AgentReply only: the thread is the ticket's first_reply
	At           time.Time // the timestamp written into the rows
	CommittedAt  time.Time // wall-clock time right after the commit
}

func (h *Helpdesk) now() time.Time { return h.Now().UTC().Truncate(time.Second) }

// NewTicket describes a ticket to create. Zero fields take the defaults
// noted.
type NewTicket struct {
	Requester int64  // users.id of the client; default ClientDave
	Creator   int64  // who filed it; default the requester
	HelpTopic int64  // default TopicSupport
	Dept      int64  // default the help topic's department
	Priority  int64  // default PriorityLow
	Source    int64  // default SourceWeb
	Status    int64  // default StatusOpen
	Type      int64  // default 0, which Faveo writes when no type is chosen
	SLA       int64  // default 1
	Subject   string // the first thread's title; default "Ticket subject"
	Body      string // the first thread's body; default "<p>Ticket body</p>"

	// TwoTransactions commits the ticket row and its first thread
	// separately, as Faveo does without an enclosing transaction.
	TwoTransactions bool
}

func (n *NewTicket) setDefaults() {
	def := func(v *int64, d int64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&n.Requester, ClientDave)
	def(&n.Creator, n.Requester)
	def(&n.HelpTopic, TopicSupport)
	def(&n.Dept, n.HelpTopic) // seeded topics route to the department with their id
	def(&n.Priority, PriorityLow)
	def(&n.Source, SourceWeb)
	def(&n.Status, StatusOpen)
	def(&n.SLA, 1)
	if n.Subject == "" {
		n.Subject = "Ticket subject"
	}
	if n.Body == "" {
		n.Body = "<p>Ticket body</p>"
	}
}

// dueIn is the SLA Faveo's default plan gives a new ticket to respond and
// resolve (as in the docs' examples: created 07:49:49, due 12:49:49).
const dueIn = 5 * time.Hour

// TicketNumber is the number Faveo's default format gives ticket id.
func TicketNumber(id int64) string {
	return fmt.Sprintf("AAAA-%04d-%04d", id/10000%10000, id%10000)
}

// CreateTicket inserts the ticket row, then its first thread (the client's
// message), in one transaction unless TwoTransactions is set.
func (h *Helpdesk) CreateTicket(ctx context.Context, n NewTicket) (Write, error) {
	n.setDefaults()
	w := Write{At: h.now()}
	due := w.At.Add(dueIn)
	// transferred_at is left out, as Faveo leaves it: NULL on PostgreSQL,
	// the zero date on MySQL.
	insertTicket := func(tx sqlRunner) error {
		var err error
		if w.TicketID, err = h.db.nextTicketID(ctx, tx); err != nil {
			return err
		}
		w.TicketNumber = TicketNumber(w.TicketID)
		_, err = tx.exec(ctx, `INSERT INTO tickets (id, ticket_number, user_id, dept_id, team_id, priority_id, sla,
				help_topic_id, status, rating, ratingreply, flags, ip_address, assigned_to, lock_by, source, isoverdue,
				reopened, isanswered, html, is_deleted, closed, is_transferred, duedate, created_at, updated_at, type,
				location_id, creator_id, response_due_by, is_manual_duedate, resolution_due_by)
			VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, $8, 0, 0, 0, 0, NULL, 0, $9, 0, 0, 0, 0, 0, 0, 0, $10, $11, $11,
				$12, 0, $13, $10, 0, $10)`,
			w.TicketID, w.TicketNumber, n.Requester, n.Dept, n.Priority, n.SLA, n.HelpTopic, n.Status, n.Source,
			due, w.At, n.Type, n.Creator)
		return err
	}
	insertThread := func(tx sqlRunner) (err error) {
		w.ThreadID, err = tx.insert(ctx, `INSERT INTO ticket_thread (ticket_id, user_id, thread_type, poster, source,
				reply_rating, rating_count, is_internal, title, body, format, ip_address, created_at, updated_at)
			VALUES ($1, $2, NULL, 'client', NULL, 0, 0, 0, $3, $4, '', '', $5, $5)`,
			w.TicketID, n.Requester, n.Subject, n.Body, w.At)
		return err
	}
	var err error
	if n.TwoTransactions {
		if err = h.tx(ctx, &w, insertTicket); err == nil {
			err = h.tx(ctx, &w, insertThread)
		}
	} else {
		err = h.tx(ctx, &w, func(tx sqlRunner) error {
			if err := insertTicket(tx); err != nil {
				return err
			}
			return insertThread(tx)
		})
	}
	if err != nil {
		return w, fmt.Errorf("create ticket: %w", err)
	}
	return w, nil
}

// AgentReply adds an agent's reply (poster 'support'). The ticket's first
// support reply has thread_type 'first_reply' and records the first
// response on the ticket; later ones have thread_type NULL. Either way the
// ticket's updated_at moves.
func (h *Helpdesk) AgentReply(ctx context.Context, ticketID, agentID int64, body string) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error { return h.agentReply(ctx, tx, &w, agentID, body) })
	if err != nil {
		return w, fmt.Errorf("agent reply to ticket %d: %w", ticketID, err)
	}
	return w, nil
}

// agentReply writes one agent reply to w.TicketID in tx, at w.At.
func (h *Helpdesk) agentReply(ctx context.Context, tx sqlRunner, w *Write, agentID int64, body string) error {
	ticketID := w.TicketID
	created, err := lockTicket(ctx, tx, ticketID)
	if err != nil {
		return err
	}
	err = tx.queryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM ticket_thread
		WHERE ticket_id = $1 AND thread_type = 'first_reply' AND poster = 'support')`, ticketID).Scan(&w.FirstReply)
	if err != nil {
		return err
	}
	var threadType any // NULL
	if w.FirstReply {
		threadType = "first_reply"
	}
	responseMinutes := int(math.Round(w.At.Sub(created).Minutes()))
	w.ThreadID, err = tx.insert(ctx, `INSERT INTO ticket_thread (ticket_id, user_id, thread_type, poster, source,
			reply_rating, rating_count, is_internal, title, body, format, ip_address, response_time, created_at,
			updated_at)
		VALUES ($1, $2, $3, 'support', NULL, 0, 0, 0, '', $4, '', '', $5, $6, $6)`,
		ticketID, agentID, threadType, body, responseMinutes, w.At)
	if err != nil {
		return err
	}
	if w.FirstReply {
		_, err = tx.exec(ctx, `UPDATE tickets SET isanswered = 1, first_response_time = $2, response_due_by = NULL,
			updated_at = $2 WHERE id = $1`, ticketID, w.At)
	} else {
		_, err = tx.exec(ctx, `UPDATE tickets SET isanswered = 1, updated_at = $2 WHERE id = $1`, ticketID, w.At)
	}
	return err
}

// ClientReply adds a client's message (poster 'client') to a ticket.
func (h *Helpdesk) ClientReply(ctx context.Context, ticketID, clientID int64, body string) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		_, err := lockTicket(ctx, tx, ticketID)
		if err != nil {
			return err
		}
		w.ThreadID, err = tx.insert(ctx, `INSERT INTO ticket_thread (ticket_id, user_id, thread_type, poster, source,
				reply_rating, rating_count, is_internal, title, body, format, ip_address, created_at, updated_at)
			VALUES ($1, $2, NULL, 'client', NULL, 0, 0, 0, '', $3, '', '', $4, $4)`,
			ticketID, clientID, body, w.At)
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE tickets SET isanswered = 0, last_message_at = $2, updated_at = $2 WHERE id = $1`,
			ticketID, w.At)
		return err
	})
	if err != nil {
		return w, fmt.Errorf("client reply to ticket %d: %w", ticketID, err)
	}
	return w, nil
}

// InternalNote adds an agent's internal note: is_internal 1, thread_type
// 'note', poster the agent's role.
func (h *Helpdesk) InternalNote(ctx context.Context, ticketID, agentID int64, body string) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		_, err := lockTicket(ctx, tx, ticketID)
		if err != nil {
			return err
		}
		w.ThreadID, err = tx.insert(ctx, `INSERT INTO ticket_thread (ticket_id, user_id, thread_type, poster, source,
				reply_rating, rating_count, is_internal, title, body, format, ip_address, created_at, updated_at)
			VALUES ($1, $2, 'note', (SELECT role FROM users WHERE id = $2), NULL, 0, 0, 1, '', $3, '', '', $4, $4)`,
			ticketID, agentID, body, w.At)
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE tickets SET updated_at = $2 WHERE id = $1`, ticketID, w.At)
		return err
	})
	if err != nil {
		return w, fmt.Errorf("internal note on ticket %d: %w", ticketID, err)
	}
	return w, nil
}

// ChangeStatus sets the ticket's status. A status whose type is closed
// also sets closed=1 and closed_at; leaving a closed status for an open one
// counts a reopening; a status of type deleted sets is_deleted=1.
func (h *Helpdesk) ChangeStatus(ctx context.Context, ticketID, statusID int64) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		var closed, purpose int64
		err := tx.queryRow(ctx, `SELECT closed FROM tickets WHERE id = $1 FOR UPDATE`, ticketID).Scan(&closed)
		if err == nil {
			err = tx.queryRow(ctx, `SELECT purpose_of_status FROM ticket_status WHERE id = $1`, statusID).Scan(&purpose)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("no ticket %d or no status %d", ticketID, statusID)
		}
		if err != nil {
			return err
		}
		// One UPDATE, whose SET reads no column another of its assignments
		// changes: MySQL, unlike PostgreSQL, would read the new value.
		set := "status = $2, status_changed_at = $3, updated_at = $3, closed = $4, is_deleted = $5"
		if purpose == StatusTypeClosed {
			set += ", closed_at = $3"
		}
		if closed == 1 && purpose == StatusTypeOpen {
			set += ", reopened = reopened + 1, reopened_at = $3"
		}
		_, err = tx.exec(ctx, "UPDATE tickets SET "+set+" WHERE id = $1", ticketID, statusID, w.At,
			oneIf(purpose == StatusTypeClosed), oneIf(purpose == StatusTypeDeleted))
		return err
	})
	if err != nil {
		return w, fmt.Errorf("status of ticket %d: %w", ticketID, err)
	}
	return w, nil
}

// ChangeDepartment moves the ticket to another department, unassigning
// its agent.
func (h *Helpdesk) ChangeDepartment(ctx context.Context, ticketID, deptID int64) (Write, error) {
	return h.update(ctx, "department of", ticketID,
		`UPDATE tickets SET dept_id = $2, assigned_to = NULL, updated_at = $3 WHERE id = $1`, deptID)
}

// AssignAgent assigns the ticket to an agent (nulling its team) and, as
// Faveo does, records the assignment as an internal activity thread
// (thread_type 'ticket_assign_alert') written by actor.
func (h *Helpdesk) AssignAgent(ctx context.Context, ticketID, agentID, actor int64) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		n, err := tx.exec(ctx, `UPDATE tickets SET assigned_to = $2, assigned_at = $3, team_id = NULL, updated_at = $3
			WHERE id = $1`, ticketID, agentID, w.At)
		if err == nil && n == 0 {
			err = errNoTicket
		}
		if err != nil {
			return err
		}
		w.ThreadID, err = tx.insert(ctx, `INSERT INTO ticket_thread (ticket_id, user_id, thread_type, poster, source,
				reply_rating, rating_count, is_internal, title, body, format, ip_address, created_at, updated_at)
			VALUES ($1, $2, 'ticket_assign_alert', 'support', NULL, 0, 0, 1, '',
				(SELECT CONCAT('Assigned to ', first_name, ' ', last_name) FROM users WHERE id = $3), '', '', $4, $4)`,
			ticketID, actor, agentID, w.At)
		return err
	})
	if err != nil {
		return w, fmt.Errorf("assign ticket %d to agent %d: %w", ticketID, agentID, err)
	}
	return w, nil
}

// AssignTeam assigns the ticket to a team, nulling its agent.
func (h *Helpdesk) AssignTeam(ctx context.Context, ticketID, teamID int64) (Write, error) {
	return h.update(ctx, "team of", ticketID,
		`UPDATE tickets SET team_id = $2, assigned_to = NULL, assigned_at = $3, updated_at = $3 WHERE id = $1`, teamID)
}

// ChangeOwner gives the ticket another requester.
func (h *Helpdesk) ChangeOwner(ctx context.Context, ticketID, userID int64) (Write, error) {
	return h.update(ctx, "owner of", ticketID, `UPDATE tickets SET user_id = $2, updated_at = $3 WHERE id = $1`, userID)
}

// ChangeDueDate sets the ticket's due date by hand (is_manual_duedate=1).
// due is truncated to seconds in UTC.
func (h *Helpdesk) ChangeDueDate(ctx context.Context, ticketID int64, due time.Time) (Write, error) {
	return h.update(ctx, "due date of", ticketID,
		`UPDATE tickets SET duedate = $2, is_manual_duedate = 1, updated_at = $3 WHERE id = $1`,
		due.UTC().Truncate(time.Second))
}

// Delete moves the ticket to the trash, as Faveo's delete button does: the
// status becomes Deleted (is_deleted=1). The rows stay; see HardDelete.
func (h *Helpdesk) Delete(ctx context.Context, ticketID int64) (Write, error) {
	return h.ChangeStatus(ctx, ticketID, StatusDeleted)
}

// HardDelete removes the ticket for good, as emptying Faveo's trash does:
// its attachments, collaborators, threads and the ticket row, in one
// transaction.
func (h *Helpdesk) HardDelete(ctx context.Context, ticketID int64) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		for _, q := range []string{
			h.db.attachments().deleteOfTicket,
			`DELETE FROM ticket_collaborator WHERE ticket_id = $1`,
			`DELETE FROM ticket_thread WHERE ticket_id = $1`,
		} {
			if _, err := tx.exec(ctx, q, ticketID); err != nil {
				return err
			}
		}
		n, err := tx.exec(ctx, `DELETE FROM tickets WHERE id = $1`, ticketID)
		if err == nil && n == 0 {
			err = errNoTicket
		}
		return err
	})
	if err != nil {
		return w, fmt.Errorf("delete ticket %d: %w", ticketID, err)
	}
	return w, nil
}

// AddCollaborator adds a user to the ticket's collaborators (Faveo's cc),
// which the ticket's collaborator_count counts.
func (h *Helpdesk) AddCollaborator(ctx context.Context, ticketID, userID int64) (int64, error) {
	at := h.now()
	id, err := h.db.insert(ctx, `INSERT INTO ticket_collaborator (isactive, ticket_id, user_id, role, created_at,
			updated_at)
		VALUES (1, $1, $2, 'ccc', $3, $3)`, ticketID, userID, at)
	if err != nil {
		return 0, fmt.Errorf("collaborator on ticket %d: %w", ticketID, err)
	}
	return id, nil
}

// AddAttachment attaches a file to a thread, which its ticket's
// attachment_count counts.
func (h *Helpdesk) AddAttachment(ctx context.Context, threadID int64, name string, content []byte) (int64, error) {
	at := h.now()
	a := h.db.attachments()
	id, err := h.db.insert(ctx, a.insert, name, threadID, fmt.Sprint(len(content)), a.content(content), at)
	if err != nil {
		return 0, fmt.Errorf("attachment on thread %d: %w", threadID, err)
	}
	return id, nil
}

var errNoTicket = errors.New("no such ticket")

// update runs one UPDATE of a ticket with $1 the ticket, $2 the value and
// $3 the time.
func (h *Helpdesk) update(ctx context.Context, what string, ticketID int64, query string, value any) (Write, error) {
	w := Write{TicketID: ticketID, At: h.now()}
	err := h.tx(ctx, &w, func(tx sqlRunner) error {
		n, err := tx.exec(ctx, query, ticketID, value, w.At)
		if err == nil && n == 0 {
			err = errNoTicket
		}
		return err
	})
	if err != nil {
		return w, fmt.Errorf("%s ticket %d: %w", what, ticketID, err)
	}
	return w, nil
}

// lockTicket takes the ticket's row lock (serializing concurrent actions on
// one ticket; it changes nothing in the WAL stream's row data) and returns
// its created_at.
func lockTicket(ctx context.Context, tx sqlRunner, ticketID int64) (time.Time, error) {
	var created time.Time
	err := tx.queryRow(ctx, `SELECT created_at FROM tickets WHERE id = $1 FOR UPDATE`, ticketID).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		err = errNoTicket
	}
	return created, err
}

// tx runs fn in a transaction and stamps the commit time.
func (h *Helpdesk) tx(ctx context.Context, w *Write, fn func(sqlRunner) error) error {
	if err := h.db.inTx(ctx, fn); err != nil {
		return err
	}
	w.CommittedAt = time.Now()
	return nil
}

// oneIf is 1 when b holds, else 0 (Faveo's integer flags).
func oneIf(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

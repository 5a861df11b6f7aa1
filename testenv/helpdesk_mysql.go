package testenv

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// NewMySQLHelpdesk returns a simulator writing to a Faveo database on
// MySQL/MariaDB through db, which should come from OpenFaveoMySQL (or
// MySQLDB.Pool): the simulator relies on its session — not strict, UTC
// times, matched-row counts — as Faveo relies on Laravel's.
func NewMySQLHelpdesk(db *sql.DB) *Helpdesk {
	return &Helpdesk{db: mysqlHelpdeskDB{mysqlRunner: mysqlRunner{db}, db: db}, Now: time.Now}
}

// mysqlHelpdeskDB is MySQL/MariaDB through database/sql.
type mysqlHelpdeskDB struct {
	mysqlRunner
	db *sql.DB
}

// mysqlDeadlockRetries bounds how often a transaction InnoDB chose as a
// deadlock victim (error 1213, rolled back whole) is run again, after a
// random pause that grows with each attempt (writers retrying in lockstep
// would meet again).
const mysqlDeadlockRetries = 100

func (m mysqlHelpdeskDB) inTx(ctx context.Context, fn func(sqlRunner) error) error {
	for attempt := 0; ; attempt++ {
		tx, err := m.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err = fn(mysqlRunner{tx}); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err == nil || !isMySQLError(err, 1213) || attempt == mysqlDeadlockRetries {
			return err
		}
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(min(attempt+1, 20)) * int64(5*time.Millisecond)))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// nextTicketID is one more than the highest ticket id, read with a lock on
// the last ticket row so that concurrent creations take turns (MySQL has no
// sequence to draw from; AUTO_INCREMENT gives the id only after the insert,
// and Faveo writes the ticket number in the same insert).
func (mysqlHelpdeskDB) nextTicketID(ctx context.Context, tx sqlRunner) (int64, error) {
	var last int64
	err := tx.queryRow(ctx, "SELECT id FROM tickets ORDER BY id DESC LIMIT 1 FOR UPDATE").Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		err = nil
	}
	return last + 1, err
}

func (mysqlHelpdeskDB) attachments() attachmentSQL {
	return attachmentSQL{
		insert: `INSERT INTO ticket_attachment (name, thread_id, size, type, poster, created_at, updated_at, file)
			VALUES ($1, $2, $3, 'application/octet-stream', 'ATTACHMENT', $5, $5, $4)`,
		deleteOfTicket: `DELETE FROM ticket_attachment WHERE thread_id IN (SELECT id FROM ticket_thread WHERE ticket_id = $1)`,
		content:        func(b []byte) any { return b }, // a MEDIUMBLOB: bytes, not text in the session's character set
	}
}

// mysqlRunner runs statements on a pool (each its own transaction) or in a
// transaction, rewriting $n placeholders to MySQL's.
type mysqlRunner struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (r mysqlRunner) exec(ctx context.Context, query string, args ...any) (int64, error) {
	query, args = mysqlPlaceholders(query, args)
	res, err := r.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (r mysqlRunner) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	query, args = mysqlPlaceholders(query, args)
	return r.q.QueryRowContext(ctx, query, args...)
}

func (r mysqlRunner) insert(ctx context.Context, query string, args ...any) (int64, error) {
	query, args = mysqlPlaceholders(query, args)
	res, err := r.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

var placeholderRE = regexp.MustCompile(`\$(\d+)`)

// mysqlPlaceholders rewrites PostgreSQL's numbered placeholders ($1, which
// may repeat and come in any order) to MySQL's positional ones (?), with
// the arguments in the order they are used. The simulator's statements
// have no $ in their string literals.
func mysqlPlaceholders(query string, args []any) (string, []any) {
	p := parsedPlaceholders(query)
	out := make([]any, 0, len(p.order))
	for _, n := range p.order {
		if n <= len(args) { // else too few arguments: the driver says so
			out = append(out, args[n-1])
		}
	}
	return p.query, out
}

type placeholders struct {
	query string
	order []int // the argument number of each ?
}

var placeholderCache sync.Map // PostgreSQL query -> placeholders

func parsedPlaceholders(query string) placeholders {
	if p, ok := placeholderCache.Load(query); ok {
		return p.(placeholders)
	}
	var p placeholders
	p.query = placeholderRE.ReplaceAllStringFunc(query, func(m string) string {
		n, _ := strconv.Atoi(m[1:])
		p.order = append(p.order, n)
		return "?"
	})
	placeholderCache.Store(query, p)
	return p
}

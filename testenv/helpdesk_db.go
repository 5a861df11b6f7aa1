package testenv

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The Helpdesk writes the same rows, statement by statement, to PostgreSQL
// and to MySQL/MariaDB. Its statements are written once, with PostgreSQL's
// $n placeholders (MySQL's runner rewrites them); what the two databases
// do differently sits behind helpdeskDB.

// sqlRunner runs the simulator's statements, inside a transaction or
// outside one (each statement then commits on its own).
type sqlRunner interface {
	// exec runs a statement and returns the number of rows it matched.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// queryRow runs a query for one row; no row is sql.ErrNoRows.
	queryRow(ctx context.Context, query string, args ...any) rowScanner
	// insert runs an INSERT of one row and returns the row's id.
	insert(ctx context.Context, query string, args ...any) (int64, error)
}

type rowScanner interface{ Scan(dest ...any) error }

// helpdeskDB is the database under a Helpdesk.
type helpdeskDB interface {
	sqlRunner
	// inTx runs fn in a transaction and commits it.
	inTx(ctx context.Context, fn func(tx sqlRunner) error) error
	// nextTicketID reserves the id of a ticket about to be inserted in tx
	// (Faveo derives the ticket number from it).
	nextTicketID(ctx context.Context, tx sqlRunner) (int64, error)
	// attachments says how attachment rows are written.
	attachments() attachmentSQL
}

// attachmentSQL is how a database keeps attachments, in Faveo's
// ticket_attachment table (its model Ticket_attachments names it so): the
// older Faveo the PostgreSQL schema follows has path and driver columns,
// Faveo v9 on MySQL a MEDIUMBLOB file.
type attachmentSQL struct {
	insert         string           // $1 name, $2 thread id, $3 size, $4 content, $5 time
	deleteOfTicket string           // $1 ticket id
	content        func([]byte) any // the file's content as an argument
}

// pgHelpdeskDB is PostgreSQL through a pgx pool.
type pgHelpdeskDB struct {
	pgRunner
	pool *pgxpool.Pool
}

func newPGHelpdeskDB(pool *pgxpool.Pool) pgHelpdeskDB {
	return pgHelpdeskDB{pgRunner: pgRunner{pool}, pool: pool}
}

func (p pgHelpdeskDB) inTx(ctx context.Context, fn func(sqlRunner) error) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error { return fn(pgRunner{tx}) })
}

func (pgHelpdeskDB) nextTicketID(ctx context.Context, tx sqlRunner) (int64, error) {
	var id int64
	err := tx.queryRow(ctx, "SELECT nextval(pg_get_serial_sequence('tickets', 'id'))").Scan(&id)
	return id, err
}

func (pgHelpdeskDB) attachments() attachmentSQL {
	return attachmentSQL{
		insert: `INSERT INTO ticket_attachment (name, thread_id, size, type, poster, file, path, driver,
			created_at, updated_at)
		VALUES ($1, $2, $3, 'application/octet-stream', 'ATTACHMENT', $4, '', 'database', $5, $5)`,
		deleteOfTicket: `DELETE FROM ticket_attachment WHERE thread_id IN (SELECT id FROM ticket_thread WHERE ticket_id = $1)`,
		content:        func(b []byte) any { return string(b) }, // a text column
	}
}

// pgRunner runs statements on a pool (each its own transaction) or in a
// transaction.
type pgRunner struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (r pgRunner) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := r.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

// queryRow's no row is pgx.ErrNoRows, which is also sql.ErrNoRows.
func (r pgRunner) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return r.q.QueryRow(ctx, query, args...)
}

func (r pgRunner) insert(ctx context.Context, query string, args ...any) (int64, error) {
	var id int64
	err := r.q.QueryRow(ctx, query+" RETURNING id", args...).Scan(&id)
	return id, err
}

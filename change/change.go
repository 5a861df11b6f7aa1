// Package change holds the source-neutral values a change source
// (PostgreSQL logical replication in package cdc, the MySQL/MariaDB binlog in
// package binlog) hands to package mapping: committed transactions as
// batches of row changes.
//
// Nothing here knows about PostgreSQL. A source translates its own types into
// Value (keeping the text form it printed, so payloads can reproduce it byte
// for byte) and its own ordering into Position.
package change

import (
	"fmt"
	"time"
)

// Position is an opaque, totally ordered place in a source's log. Larger is
// later. A source packs its native position into it (PostgreSQL: the LSN; a
// binlog reader: the transaction's GTID sequence number). Zero means
// "nothing".
//
// The position of a batch is the position of its transaction's commit, so all
// batches of one transaction carry the same Position.
type Position uint64

// String prints a position the way PostgreSQL prints an LSN; sources with
// another native form format it themselves.
func (p Position) String() string { return fmt.Sprintf("%X/%X", uint32(p>>32), uint32(p)) }

// Op is the kind of a row change.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
	Truncate
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Batch is a whole committed transaction, or one chunk of it: a source hands
// a large transaction over in several batches so it flows through in bounded
// memory. All chunks of a transaction share Pos, Xid and CommitTime; Seq
// numbers them from 0 and Last marks the one that ends the transaction. A
// consumer may treat the transaction as durable downstream only once it has
// handled the Last chunk.
//
// Resume is the source's own token for "everything up to and including
// this transaction" (MySQL/MariaDB: a GTID or GTID set), to be stored with
// Pos in the same commit as the transaction's events: a reader that keeps
// no position on the server starts again from it. Empty for PostgreSQL,
// whose slot keeps the position. A Last batch without Changes may come from
// such a reader only to carry Pos and Resume past transactions it did not
// hand over (other tables, other databases), so the stored position keeps
// up with the server's log.
//
// Anchor, beside Resume, says where that transaction is in the source's
// own files (MySQL/MariaDB: the binlog file and offset of its GTID event),
// so that a server reset or rebuilt since, whose GTIDs have gone past
// Resume again, is told from the one that was read. Opaque like Resume.
type Batch struct {
	Pos        Position
	Xid        uint32
	CommitTime time.Time
	Seq        int
	Last       bool
	Resume     string
	Anchor     string
	Changes    []Change
}

// Change is one row change. Old is set for updates and deletes when the
// source has the old row (PostgreSQL: REPLICA IDENTITY FULL gives all
// columns; the default identity gives only the key columns, the others
// KindUnchanged). New is set for inserts and updates. A Truncate has neither;
// Table names the truncated table (one Change per table).
type Change struct {
	Op    Op
	Table *Table
	Old   *Row
	New   *Row
}

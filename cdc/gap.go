package cdc

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/deskhook/deskhook/change"
)

// A slot that no longer fits the consumer's store must never be streamed
// from as if nothing happened (design rule 1): when it was dropped,
// invalidated (wal_status lost), re-created or advanced by someone else,
// the changes in between are gone, and streaming on would replace them
// silently. The reader compares the slot with what the store remembers
// (Mark) before it streams, and refuses with ErrSlotGap; only an operator
// accepts the gap (`deskhook setup --accept-gap`, SetupWith's AcceptGap).
//
// What makes the comparison exact: the slot's confirmed position is only
// ever moved by the reader, and the reader confirms nothing beyond what
// the store holds (Mark.Stored) or has recorded beforehand (Mark.Confirmed,
// for the server's WAL end it confirms while idle). A slot confirmed past
// both was moved by someone else, or is another slot.

// Mark is what the consumer's store remembers of the source.
type Mark struct {
	// Source names the database the store was filled from (SourceID); ""
	// until its first stream.
	Source string
	// Stored is the stored position: every transaction at or before it is
	// stored (0: none).
	Stored change.Position
	// Confirmed is the highest position recorded as confirmable before the
	// reader confirmed it.
	Confirmed change.Position
}

// Streamed reports whether the store has ever streamed: only then can a
// slot have lost something it needed.
func (m Mark) Streamed() bool { return m.Stored > 0 || m.Source != "" }

// upTo is the highest position the slot may be confirmed at.
func (m Mark) upTo() change.Position { return max(m.Stored, m.Confirmed) }

// Store is the consumer's durable record of the source, for
// ReaderOptions.Store. The daemon implements it on its outbox.
type Store interface {
	// Mark returns what the store holds now.
	Mark() (Mark, error)
	// RecordConfirmed durably raises the confirmed mark to pos for source
	// (recording source on the first stream). The reader calls it before
	// confirming pos to the server.
	RecordConfirmed(ctx context.Context, source string, pos change.Position) error
}

// slotView is a slot as the gap rules see it.
type slotView struct {
	exists    bool
	confirmed change.Position
	walStatus string
	source    string // SourceID of the database the slot is in
}

// sourceID names a database: its server's system identifier and the
// database's name. A store filled from one is not resumed from another.
func sourceID(systemID, database string) string { return systemID + "/" + database }

// databaseSource is the sourceID of the database conn is connected to, or
// "" when the role may not read the system identifier (pg_control_system()
// may be locked away on managed services): databases are then not
// compared. The reader asks the replication protocol instead.
func databaseSource(ctx context.Context, conn *pgx.Conn) string {
	var s string
	if err := conn.QueryRow(ctx, `SELECT system_identifier::text || '/' || current_database()
		FROM pg_control_system()`).Scan(&s); err != nil {
		return ""
	}
	return s
}

// GapReason says why a slot does not fit the store (see judgeSlot).
type GapReason string

// The ways a slot can fail to fit a store that has streamed.
const (
	GapSlotMissing GapReason = "slot missing"
	GapSlotLost    GapReason = "slot invalidated"
	GapSlotAhead   GapReason = "slot ahead of the store"
	GapOtherSource GapReason = "another database"
)

// GapError is a slot that does not fit the store: streaming from it would
// skip changes the store never got. errors.Is(err, ErrSlotGap) holds.
type GapError struct {
	Reason GapReason
	Slot   string
	// From is where the store ends (the highest of its stored and
	// confirmed positions); To is the slot's confirmed position (0 when it
	// does not exist).
	From, To change.Position
	Stored   change.Position
	// StoreSource and SlotSource name the databases, for GapOtherSource.
	StoreSource, SlotSource string
}

func (e *GapError) Is(target error) bool { return target == ErrSlotGap }

func (e *GapError) Error() string {
	slot := quoteIdent(e.Slot)
	held := fmt.Sprintf("the store holds changes up to %s", e.Stored)
	if e.From > e.Stored {
		held += fmt.Sprintf(" (confirmed to the server up to %s)", e.From)
	}
	var what string
	switch e.Reason {
	case GapSlotMissing:
		what = fmt.Sprintf("replication slot %s does not exist, but %s: the slot was dropped, and the changes "+
			"committed since are lost. Run `deskhook setup --accept-gap` to create it and record the gap", slot, held)
	case GapSlotLost:
		what = fmt.Sprintf("replication slot %s is at %s but was invalidated (wal_status lost: the server removed "+
			"WAL it needed, past max_slot_wal_keep_size); %s, and the changes committed since are lost. Run "+
			"`deskhook setup --accept-gap` to re-create it and record the gap", slot, e.To, held)
	case GapSlotAhead:
		who := "The slot was re-created or advanced by someone else, and the changes committed in between " +
			"were never read"
		if e.StoreSource == "" {
			who = "Either the slot was re-created or advanced by someone else, and the changes committed in " +
				"between were never read, or a deskhook older than this store's record confirmed it there " +
				"(it did not record how far)"
		}
		what = fmt.Sprintf("replication slot %s starts at %s, after the store's position: %s. %s. Run "+
			"`deskhook setup --accept-gap` to accept the gap and stream from %s", slot, e.To, held, who, e.To)
	case GapOtherSource:
		what = fmt.Sprintf("the store was filled from database %s, but source.dsn is database %s (replication "+
			"slot %s at %s; %s): its positions mean nothing here. Point store.path at a new file for this "+
			"database, or run `deskhook setup --accept-gap` to go on in this store", e.StoreSource, e.SlotSource,
			slot, e.To, held)
	}
	return "cdc: " + what
}

// judgeSlot says whether a slot can resume a store: nil, or the GapError.
// A store that never streamed takes any slot.
func judgeSlot(name string, m Mark, s slotView) *GapError {
	if !m.Streamed() {
		return nil
	}
	e := &GapError{Slot: name, From: m.upTo(), To: s.confirmed, Stored: m.Stored,
		StoreSource: m.Source, SlotSource: s.source}
	switch {
	case m.Source != "" && s.source != "" && m.Source != s.source:
		e.Reason = GapOtherSource
	case !s.exists:
		e.Reason = GapSlotMissing
	case s.walStatus == "lost":
		e.Reason = GapSlotLost
	case s.confirmed > m.upTo():
		e.Reason = GapSlotAhead
	default:
		return nil
	}
	return e
}

package cdc

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors that retrying cannot heal. Reader.Run returns them (wrapped, with
// a message naming the object and the fix); test with errors.Is.
var (
	ErrSlotMissing        = errors.New("replication slot does not exist")
	ErrSlotInvalid        = errors.New("replication slot is not a pgoutput slot of this database")
	ErrSlotLost           = errors.New("replication slot lost WAL it needs")
	ErrPublicationMissing = errors.New("publication does not exist")
	ErrWALLevel           = errors.New("wal_level is not logical")
	// ErrSlotInUse is retried by the Reader (the other consumer may be a
	// previous connection of ours still exiting); Check reports it.
	ErrSlotInUse = errors.New("replication slot is in use by another process")
)

// objectError is an error about a named database object: its message is
// complete, and errors.Is matches its kind.
type objectError struct {
	kind error
	msg  string
	err  error // the server's error, if any
}

func (e *objectError) Error() string        { return e.msg }
func (e *objectError) Is(target error) bool { return target == e.kind }
func (e *objectError) Unwrap() error        { return e.err }

// protocolError is a stream the decoder cannot understand. Reconnecting
// would only read the same bytes again.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "cdc: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// permanent reports whether a connection-level error will not heal by
// reconnecting: Run returns those instead of retrying.
func permanent(err error) bool {
	var pe *protocolError
	var re *TableRenamedError
	switch {
	case errors.Is(err, ErrSlotInUse):
		return false
	case errors.Is(err, ErrSlotMissing), errors.Is(err, ErrSlotInvalid), errors.Is(err, ErrSlotLost),
		errors.Is(err, ErrPublicationMissing), errors.Is(err, ErrWALLevel),
		errors.As(err, &pe), errors.As(err, &re):
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch {
		case strings.HasPrefix(pg.Code, "28"), // invalid authorization
			pg.Code == "3D000", // database does not exist
			pg.Code == "42501", // insufficient privilege (no REPLICATION)
			pg.Code == "42704", // undefined object (slot, publication)
			pg.Code == "55000", // object not in prerequisite state (wal_level, invalidated slot)
			pg.Code == "0A000": // feature not supported
			return true
		}
	}
	return false
}

// explainServerError turns the server's errors about our objects into ones
// that name the object and the fix; others pass through.
func explainServerError(err error, cfg Config) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err
	}
	switch {
	case pg.Code == "42704" && strings.Contains(pg.Message, "publication"):
		return &objectError{kind: ErrPublicationMissing, err: err, msg: "cdc: publication " + quoteIdent(cfg.Publication) +
			" does not exist (server: " + pg.Message + "); run `deskhook setup` or fix source.publication"}
	case pg.Code == "42704" && strings.Contains(pg.Message, "replication slot"):
		return &objectError{kind: ErrSlotMissing, err: err, msg: "cdc: replication slot " + quoteIdent(cfg.Slot) +
			" does not exist (server: " + pg.Message + "); run `deskhook setup` or fix source.slot"}
	case pg.Code == "55006":
		return &objectError{kind: ErrSlotInUse, err: err, msg: "cdc: replication slot " + quoteIdent(cfg.Slot) +
			" is in use (server: " + pg.Message + "); another deskhook or consumer reads it"}
	case pg.Code == "55000" && strings.Contains(pg.Message, "wal_level"):
		return &objectError{kind: ErrWALLevel, err: err, msg: "cdc: " + pg.Message +
			"; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"}
	case pg.Code == "55000" && strings.Contains(pg.Message, "slot"):
		return &objectError{kind: ErrSlotLost, err: err, msg: "cdc: replication slot " + quoteIdent(cfg.Slot) +
			" cannot be read (server: " + pg.Message + " " + pg.Detail + "); recreate it with `deskhook teardown && deskhook setup` (changes in between are lost)"}
	}
	return err
}

package cdc

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
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
	// ErrSlotGap is a slot that does not fit the consumer's store (see
	// GapError): streaming from it would skip changes silently.
	ErrSlotGap = errors.New("replication slot does not fit the store: changes would be lost")
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

// storeError is the consumer's store failing to say, or to record, where
// the slot may be: the reader does not stream without it.
type storeError struct{ err error }

func (e *storeError) Error() string { return "cdc: the store: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// permanent reports whether a connection-level error will not heal by
// reconnecting: Run returns those instead of retrying.
func permanent(err error) bool {
	var pe *protocolError
	var re *TableRenamedError
	var se *storeError
	switch {
	case errors.Is(err, ErrSlotInUse):
		return false
	case errors.Is(err, ErrSlotMissing), errors.Is(err, ErrSlotInvalid), errors.Is(err, ErrSlotLost),
		errors.Is(err, ErrSlotGap), errors.Is(err, ErrPublicationMissing), errors.Is(err, ErrWALLevel),
		errors.As(err, &pe), errors.As(err, &re), errors.As(err, &se):
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
			" cannot be read (server: " + pg.Message + " " + pg.Detail + "); re-create it with `deskhook setup --accept-gap` (changes in between are lost)"}
	}
	return err
}

// connError is a failed connection, described with the server's own reason
// first; it unwraps to pgconn's error.
type connError struct {
	msg string
	err error
}

func (e *connError) Error() string { return e.msg }
func (e *connError) Unwrap() error { return e.err }

// describeConnect rewrites a failed connection attempt so that it starts
// with what went wrong: the server's reason (`password authentication
// failed for user "deskhook"`) or the last attempt's network error, then
// where it was connecting to. pgconn's own message starts with every
// attempt in turn, so with sslmode=prefer against a server without TLS it
// starts with an unrelated "server refused TLS connection".
func describeConnect(err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Config == nil {
		return err
	}
	where := fmt.Sprintf("connecting to %s as %s, database %s", hostPort(ce.Config), ce.Config.User, ce.Config.Database)
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		msg := pg.Message
		if pg.Detail != "" {
			msg += ": " + pg.Detail
		}
		return &connError{msg: fmt.Sprintf("%s (SQLSTATE %s; %s)", msg, pg.Code, where), err: err}
	}
	last := ce.Unwrap()
	if j, ok := last.(interface{ Unwrap() []error }); ok {
		if errs := j.Unwrap(); len(errs) > 0 {
			last = errs[len(errs)-1]
		}
	}
	if inner := errors.Unwrap(last); inner != nil { // drop pgconn's "host:port (host): " prefix
		last = inner
	}
	return &connError{msg: fmt.Sprintf("%v (%s)", last, where), err: err}
}

// IsConnectError reports whether err is a failure to connect to the source
// at all (the reader reports those itself, once).
func IsConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

func hostPort(c *pgconn.Config) string {
	if strings.HasPrefix(c.Host, "/") {
		return fmt.Sprintf("the socket in %s (port %d)", c.Host, c.Port)
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port)))
}

// DSNError says why a DSN does not parse, without quoting the DSN (it may
// hold a password): pgconn's reason, e.g. "invalid port" or "failed to
// parse as keyword/value (unterminated quoted string in connection info
// string)".
func DSNError(err error) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+3:]
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = strings.ReplaceAll(msg, ue.Error(), ue.Err.Error())
		}
		if pe.ConnString != "" {
			msg = strings.ReplaceAll(msg, pe.ConnString, RedactDSN(pe.ConnString))
		}
	}
	return msg
}

// invalidDSN is the error for a source.dsn that does not parse.
func invalidDSN(dsn string, err error) error {
	return fmt.Errorf("cdc: source.dsn is not a valid connection string: %s (got %q)", DSNError(err), RedactDSN(dsn))
}

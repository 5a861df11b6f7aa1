package binlog

import (
	"errors"
	"fmt"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// Errors that retrying cannot heal. Reader.Run returns them (wrapped, with
// a message naming what is wrong and the fix); test with errors.Is.
var (
	// ErrPositionLost: the resume position is no longer in the server's
	// binlogs (purged, or the server was rebuilt or reset), so the
	// transactions after it cannot be read. Deskhook never starts
	// elsewhere by itself: an operator accepts the gap explicitly.
	ErrPositionLost = errors.New("the resume position is no longer in the server's binlogs")
	// ErrForeignGTID: a transaction of another GTID domain (MariaDB) or
	// source UUID (MySQL) than the one deskhook follows.
	ErrForeignGTID = errors.New("a transaction of another GTID domain or source")
	// ErrServerConfig: the server does not log what deskhook needs
	// (binary log off, not row-based, no column names in table maps, no
	// GTIDs).
	ErrServerConfig = errors.New("the server's binlog settings do not suit deskhook")
)

// PositionLostError says which stored position is gone and what the
// server still has.
type PositionLostError struct {
	Stored string // the resume token that was asked for
	// Oldest is the GTID (set) the oldest binlog on the server starts
	// after; Current where the server's binlog ends. Either may be empty
	// when unknown.
	Oldest, Current string
	// Reason is what the server or the check found.
	Reason string
}

func (e *PositionLostError) Error() string {
	msg := fmt.Sprintf("binlog: the stored position %s is no longer in the server's binlogs (%s)", e.Stored, e.Reason)
	if e.Oldest != "" {
		msg += "; the oldest binlog starts after " + e.Oldest
	}
	if e.Current != "" {
		msg += "; the binlog ends at " + e.Current
	}
	if strings.Contains(e.Reason, "rebuilt or reset") {
		return msg + ": what the server holds now is another history. Accept the gap with `deskhook setup " +
			"--accept-gap` (deskhook reads on from the start of the oldest binlog left, in a new epoch)"
	}
	return msg + ": the transactions in between cannot be read. Accept the gap with `deskhook setup --accept-gap` " +
		"(events in between are lost), and keep binlogs longer (binlog_expire_logs_seconds)"
}

func (e *PositionLostError) Is(target error) bool { return target == ErrPositionLost }

// foreignError is ErrForeignGTID with its message.
type foreignError struct{ msg string }

func (e *foreignError) Error() string        { return "binlog: " + e.msg }
func (e *foreignError) Is(target error) bool { return target == ErrForeignGTID }

// configError is ErrServerConfig with its message (naming the my.cnf line).
type configError struct{ msg string }

func (e *configError) Error() string        { return "binlog: " + e.msg }
func (e *configError) Is(target error) bool { return target == ErrServerConfig }

// protocolError is a stream the reader cannot understand (or that breaks
// the ordering it relies on). Reconnecting would only read the same bytes
// again.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return "binlog: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// permanent reports whether an error will not heal by reconnecting.
func permanent(err error) bool {
	var pe *protocolError
	return errors.Is(err, ErrPositionLost) || errors.Is(err, ErrForeignGTID) || errors.Is(err, ErrServerConfig) ||
		errors.As(err, &pe) || isAccessDenied(err)
}

// MySQL error numbers the reader tells apart.
const (
	erAccessDenied         = 1045 // wrong user or password
	erDBAccessDenied       = 1044
	erTableAccessDenied    = 1142
	erSpecificAccessDenied = 1227 // lacks a privilege such as REPLICATION SLAVE
	erMasterFatalReading   = 1236 // the server cannot send the binlog from where asked
)

// serverErrorCode returns the server's error number in err (0: none).
func serverErrorCode(err error) uint16 {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	var de *mysql.MySQLError
	if errors.As(err, &de) {
		return de.Number
	}
	return 0
}

func isAccessDenied(err error) bool {
	switch serverErrorCode(err) {
	case erAccessDenied, erDBAccessDenied, erTableAccessDenied, erSpecificAccessDenied:
		return true
	}
	return false
}

// explainServerError turns the server's errors about the stream into ones
// that say what is wrong and the fix; others pass through.
func explainServerError(err error) error {
	if err == nil {
		return nil
	}
	var me *gomysql.MyError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Code {
	case erMasterFatalReading:
		msg := strings.ToLower(me.Message)
		if strings.Contains(msg, "gtid") || strings.Contains(msg, "purged") || strings.Contains(msg, "could not find") {
			return &PositionLostError{Reason: "the server: " + me.Message}
		}
		return &protocolError{err: fmt.Errorf("the server cannot send its binlog: %s", me.Message)}
	case erSpecificAccessDenied:
		return fmt.Errorf("binlog: the server refused the replication stream (%s): the account needs REPLICATION "+
			"SLAVE and REPLICATION CLIENT (see `deskhook setup --print-sql`): %w", me.Message, err)
	case erAccessDenied:
		return fmt.Errorf("binlog: the server refused the account (%s): check source.dsn's user and password: %w",
			me.Message, err)
	}
	return err
}

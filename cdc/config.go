package cdc

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deskhook/deskhook/change"
)

// Config says where the helpdesk database is and what deskhook reads from
// it. In deskhook.yaml it is the `source` section.
type Config struct {
	// DSN is a libpq connection string or URL. Required. Its password is
	// never logged (see RedactDSN).
	DSN string `yaml:"dsn"`
	// Slot is the logical replication slot (pgoutput) deskhook reads.
	Slot string `yaml:"slot"`
	// Publication is the publication over Tables.
	Publication string `yaml:"publication"`
	// Schema holds the helpdesk tables.
	Schema string `yaml:"schema"`
	// AutoSetup makes the daemon run Setup at start; otherwise only
	// `deskhook setup` changes the database.
	AutoSetup bool `yaml:"auto_setup"`
	// Tables names the helpdesk tables.
	Tables Tables `yaml:"tables"`

	// StatusInterval is how often a standby status update is sent. At most
	// 10s; at connect it is further lowered to a third of the server's
	// wal_sender_timeout.
	StatusInterval time.Duration `yaml:"status_interval"`
	// MaxBatchChanges bounds the changes in one handed-over batch: larger
	// transactions are handed over in several chunks.
	MaxBatchChanges int `yaml:"max_batch_changes"`
	// MaxBatchBytes bounds the estimated memory of one batch.
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// QueueBytes bounds the estimated memory of batches decoded and not yet
	// handled: queued, or in the Handler's hands. When it is full the
	// reader stops reading from the server (and keeps answering it). The
	// reader's memory for row data is about QueueBytes plus one batch (being
	// decoded, or waiting for room), or two batches when one is larger than
	// QueueBytes (one batch is always taken when nothing else is held). The
	// estimate counts Go's own overhead (values, rows, slices), not only
	// the bytes the server sent.
	QueueBytes int `yaml:"queue_bytes"`
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// reconnect attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// VerifyInterval is how often the daemon compares the helpdesk schema
	// with what deskhook reads (Verify) while it runs, besides at start,
	// after each stream restart and when the stream shows a watched
	// table's definition changed. A table that leaves the publication (a
	// migration that rebuilds it) sends no change at all: this interval
	// bounds how long that goes unnoticed.
	VerifyInterval time.Duration `yaml:"verify_interval"`
}

// Tables names the helpdesk tables deskhook reads, all in Config.Schema.
type Tables = change.Tables

// Defaults for the tuning knobs.
const (
	DefaultStatusInterval  = 5 * time.Second
	MaxStatusInterval      = 10 * time.Second
	DefaultMaxBatchChanges = 1024
	DefaultMaxBatchBytes   = 8 << 20
	DefaultQueueBytes      = 16 << 20
	DefaultReconnectMin    = 250 * time.Millisecond
	DefaultReconnectMax    = 30 * time.Second
	// MaxReconnect bounds both reconnect waits: a database back after an
	// outage should not wait longer than this to be streamed again.
	MaxReconnect          = 10 * time.Minute
	DefaultVerifyInterval = 30 * time.Second
	MinVerifyInterval     = time.Second
	MaxVerifyInterval     = time.Hour
)

// Defaults returns a Config with every default set and no DSN.
func Defaults() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills every empty field except DSN with its default.
func (c *Config) SetDefaults() {
	setStr := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	setStr(&c.Slot, "deskhook")
	setStr(&c.Publication, "deskhook")
	setStr(&c.Schema, "public")
	c.Tables.SetDefaults()
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.MaxBatchChanges == 0 {
		c.MaxBatchChanges = DefaultMaxBatchChanges
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.VerifyInterval == 0 {
		c.VerifyInterval = DefaultVerifyInterval
	}
}

// slotNameRE is what PostgreSQL accepts as a replication slot name.
var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate reports every problem of c at once, each naming its YAML path
// under path (e.g. "source") and the bad value. Call SetDefaults first.
func (c Config) Validate(path string) error {
	at := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", at(key), fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.DSN) == "" {
		bad("dsn", "required (a PostgreSQL connection string or URL)")
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		// pgconn's message quotes the DSN; ours quotes it redacted.
		bad("dsn", "not a valid PostgreSQL connection string: %s (got %q)", DSNError(err), RedactDSN(c.DSN))
	}
	if !slotNameRE.MatchString(c.Slot) {
		bad("slot", "must be 1-63 lowercase letters, digits or underscores (got %q)", c.Slot)
	}
	checkIdent := func(key, v string) {
		switch {
		case v == "":
			bad(key, "required")
		case len(v) > 63:
			bad(key, "longer than PostgreSQL's 63-byte identifier limit (got %q)", v)
		case strings.ContainsRune(v, 0):
			bad(key, "contains a NUL byte (got %q)", v)
		}
	}
	checkIdent("publication", c.Publication)
	checkIdent("schema", c.Schema)
	seen := map[string]string{}
	for i, name := range c.Tables.List() {
		key := "tables." + c.Tables.Keys()[i]
		checkIdent(key, name)
		if other, dup := seen[name]; dup && name != "" {
			bad(key, "same table as %s (got %q)", at(other), name)
		}
		seen[name] = key
	}
	if c.StatusInterval <= 0 || c.StatusInterval > MaxStatusInterval {
		bad("status_interval", "must be more than 0 and at most %s (got %s)", MaxStatusInterval, c.StatusInterval)
	}
	if c.MaxBatchChanges < 1 || c.MaxBatchChanges > 1<<20 {
		bad("max_batch_changes", "must be between 1 and %d (got %d)", 1<<20, c.MaxBatchChanges)
	}
	if c.MaxBatchBytes < 64<<10 {
		bad("max_batch_bytes", "must be at least %d (got %d)", 64<<10, c.MaxBatchBytes)
	}
	if c.QueueBytes < 64<<10 {
		bad("queue_bytes", "must be at least %d (got %d)", 64<<10, c.QueueBytes)
	}
	if c.ReconnectMin <= 0 || c.ReconnectMin > MaxReconnect {
		bad("reconnect_min", "must be more than 0 and at most %s (got %s)", MaxReconnect, c.ReconnectMin)
	}
	switch {
	case c.ReconnectMax > MaxReconnect:
		bad("reconnect_max", "must be at most %s (got %s)", MaxReconnect, c.ReconnectMax)
	case c.ReconnectMax < c.ReconnectMin:
		bad("reconnect_max", "must be at least reconnect_min %s (got %s)", c.ReconnectMin, c.ReconnectMax)
	}
	if c.VerifyInterval < MinVerifyInterval || c.VerifyInterval > MaxVerifyInterval {
		bad("verify_interval", "must be between %s and %s (got %s)", MinVerifyInterval, MaxVerifyInterval, c.VerifyInterval)
	}
	return errors.Join(errs...)
}

// qualified returns the schema-qualified, quoted name of a table.
func (c Config) qualified(table string) string {
	return quoteIdent(c.Schema) + "." + quoteIdent(table)
}

// displayName returns schema.table as a person reads it (unquoted).
func (c Config) displayName(table string) string { return c.Schema + "." + table }

const redacted = "xxxxx"

var (
	kvPasswordRE  = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s]*)`)
	urlUserRE     = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:@/?#]*:)(.*)(@)`)
	urlPasswordRE = regexp.MustCompile(`(?i)(password=)([^&#]*)`)
)

// RedactDSN returns dsn with every password (URL userinfo, password= and
// sslpassword= in either syntax) replaced by "xxxxx", for logs and errors.
// It works on text, so strings that do not parse are redacted too; when in
// doubt it masks more (up to the last "@" for a URL's userinfo).
func RedactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		s := urlUserRE.ReplaceAllString(dsn, "${1}"+redacted+"${3}")
		return urlPasswordRE.ReplaceAllString(s, "${1}"+redacted)
	}
	return kvPasswordRE.ReplaceAllString(dsn, "${1}"+redacted)
}

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes a PostgreSQL string literal (standard_conforming_strings
// on, the default since PostgreSQL 9.1; the replication connection checks it).
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

package binlog

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/change"
)

// Config says where the helpdesk database is and how deskhook reads its
// server's binlog. In deskhook.yaml it is the `source` section when
// source.type is mysql.
type Config struct {
	// DSN is a go-sql-driver/mysql DSN naming the helpdesk database:
	// user:password@tcp(host:3306)/helpdesk (or unix(/path/to/socket)).
	// Required. The daemon expands ${VAR} in it before this package sees
	// it; its password is never logged (see RedactDSN). tls=true and
	// tls=skip-verify apply to the replication connection too.
	DSN string `yaml:"dsn"`
	// Slot names this deskhook among the server's replicas (the same key as
	// for PostgreSQL, where it names the replication slot). It only serves
	// to derive ServerID when that is not set. Default "deskhook".
	Slot string `yaml:"slot"`
	// ServerID is the replica id deskhook registers with: it must differ
	// from the server's own and from every other replica's (a second
	// replica with the same id makes the server drop the first). Default:
	// DefaultServerID(Slot), a number at or above 2^31, away from the small
	// ids operators give their servers.
	ServerID uint32 `yaml:"server_id"`
	// TimeZone is the helpdesk's time zone: TIMESTAMP columns (UTC in the
	// binlog) are rendered in it, as Faveo's database session renders them.
	// An IANA name ("Europe/Berlin"), "UTC", or an offset ("+02:00").
	// Default: the server's time zone (@@global.time_zone; when that is
	// SYSTEM, the server's system zone, which must then be UTC or an
	// offset: a zone abbreviation such as CET does not say its daylight
	// saving rules, so deskhook asks for the name instead).
	TimeZone string `yaml:"time_zone"`
	// Heartbeat is how often the server sends a heartbeat on an idle
	// stream; a connection silent for three heartbeats (and at least 15s)
	// is presumed dead and reconnected.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Tables names the helpdesk tables, in the DSN's database.
	Tables change.Tables `yaml:"tables"`
	// ProgressInterval: when only transactions deskhook does not read
	// (other tables, other databases) passed for this long, the reader hands
	// over an empty batch carrying their position, so the position stored
	// downstream keeps up with the server's binlog and is not purged from
	// under an idle helpdesk.
	ProgressInterval time.Duration `yaml:"progress_interval"`
	// MinRetention is the outage deskhook must survive: Check fails when
	// the server purges binlogs sooner (binlog_expire_logs_seconds,
	// expire_logs_days).
	MinRetention time.Duration `yaml:"min_retention"`

	// MaxBatchChanges, MaxBatchBytes and QueueBytes bound memory as in the
	// PostgreSQL reader: a transaction is handed over in chunks of at most
	// this many changes or estimated bytes, and batches decoded and not yet
	// handled hold at most QueueBytes (an empty queue always takes one).
	MaxBatchChanges int `yaml:"max_batch_changes"`
	MaxBatchBytes   int `yaml:"max_batch_bytes"`
	QueueBytes      int `yaml:"queue_bytes"`
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// reconnect attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

// Defaults for the tuning knobs.
const (
	DefaultSlot             = "deskhook"
	DefaultHeartbeat        = 5 * time.Second
	DefaultProgressInterval = 10 * time.Second
	DefaultMinRetention     = 72 * time.Hour
	DefaultMaxBatchChanges  = 1024
	DefaultMaxBatchBytes    = 8 << 20
	DefaultQueueBytes       = 16 << 20
	DefaultReconnectMin     = 250 * time.Millisecond
	DefaultReconnectMax     = 30 * time.Second
)

// DefaultServerID is the replica id deskhook uses for a slot name when
// source.server_id is not set: 2^31 plus the low 31 bits of the name's
// 32-bit FNV-1a hash. The same name always gives the same id, two names
// rarely the same one, and none is below 2^31, where operators number
// their servers.
func DefaultServerID(slot string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(slot))
	return 1<<31 | h.Sum32()&(1<<31-1)
}

// SetDefaults fills every empty field except DSN with its default.
func (c *Config) SetDefaults() {
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.ServerID == 0 {
		c.ServerID = DefaultServerID(c.Slot)
	}
	c.Tables.SetDefaults()
	for _, d := range []struct {
		p *time.Duration
		v time.Duration
	}{
		{&c.Heartbeat, DefaultHeartbeat}, {&c.ProgressInterval, DefaultProgressInterval},
		{&c.MinRetention, DefaultMinRetention}, {&c.ReconnectMin, DefaultReconnectMin},
		{&c.ReconnectMax, DefaultReconnectMax},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	for _, d := range []struct {
		p *int
		v int
	}{
		{&c.MaxBatchChanges, DefaultMaxBatchChanges}, {&c.MaxBatchBytes, DefaultMaxBatchBytes},
		{&c.QueueBytes, DefaultQueueBytes},
	} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
}

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
		bad("dsn", "required (a MySQL DSN such as user:password@tcp(host:3306)/helpdesk)")
	} else if mc, err := parseDSN(c.DSN); err != nil {
		bad("dsn", "%v (got %q)", err, RedactDSN(c.DSN))
	} else if mc.DBName == "" {
		bad("dsn", "names no database: end it with /<the helpdesk database> (got %q)", RedactDSN(c.DSN))
	}
	if c.ServerID == 0 {
		bad("server_id", "must not be 0 (a replica needs an id)")
	}
	if _, err := zoneByName(c.TimeZone); c.TimeZone != "" && err != nil {
		bad("time_zone", "%v (got %q)", err, c.TimeZone)
	}
	if c.Heartbeat < 100*time.Millisecond || c.Heartbeat > time.Hour {
		bad("heartbeat", "must be between 100ms and 1h (got %s)", c.Heartbeat)
	}
	seen := map[string]string{}
	for i, name := range c.Tables.List() {
		key := "tables." + c.Tables.Keys()[i]
		switch {
		case name == "":
			bad(key, "required")
		case len(name) > 64:
			bad(key, "longer than MySQL's 64-character table names (got %q)", name)
		case strings.ContainsRune(name, 0) || strings.HasSuffix(name, " "):
			bad(key, "not a MySQL table name (got %q)", name)
		}
		if other, dup := seen[name]; dup && name != "" {
			bad(key, "same table as %s (got %q)", at(other), name)
		}
		seen[name] = key
	}
	if c.ProgressInterval <= 0 {
		bad("progress_interval", "must be more than 0 (got %s)", c.ProgressInterval)
	}
	if c.MinRetention < 0 {
		bad("min_retention", "must not be negative (got %s)", c.MinRetention)
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
	if c.ReconnectMin <= 0 {
		bad("reconnect_min", "must be more than 0 (got %s)", c.ReconnectMin)
	}
	if c.ReconnectMax < c.ReconnectMin {
		bad("reconnect_max", "must be at least reconnect_min %s (got %s)", c.ReconnectMin, c.ReconnectMax)
	}
	return errors.Join(errs...)
}

// parseDSN parses a go-sql-driver DSN, with an error that never quotes it
// (the driver's may).
func parseDSN(dsn string) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errors.New("not a valid MySQL DSN (user:password@tcp(host:3306)/database)")
	}
	switch mc.Net {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("protocol %q: deskhook reads the binlog over tcp or unix only", mc.Net)
	}
	return mc, nil
}

const redacted = "xxxxx"

// dsnPasswordRE finds the password of a DSN that does not parse: from the
// first ':' of the user part up to the last '@' before the protocol.
var dsnPasswordRE = regexp.MustCompile(`^([^:@/]*:)(.*)(@[a-z0-9]*\(|@/)`)

// RedactDSN returns dsn with its password replaced by "xxxxx", for logs and
// errors. A DSN that does not parse is redacted as text; when in doubt it
// masks more.
func RedactDSN(dsn string) string {
	if mc, err := mysql.ParseDSN(dsn); err == nil {
		if mc.Passwd != "" {
			mc.Passwd = redacted
		}
		return mc.FormatDSN()
	}
	if dsnPasswordRE.MatchString(dsn) {
		return dsnPasswordRE.ReplaceAllString(dsn, "${1}"+redacted+"${3}")
	}
	if i := strings.LastIndexByte(dsn, '@'); i >= 0 {
		return redacted + dsn[i:]
	}
	return dsn
}

// DSNPassword returns the password in dsn ("" when none), also from a DSN
// that does not parse (as RedactDSN finds it), for a log scrubber.
func DSNPassword(dsn string) string {
	if mc, err := mysql.ParseDSN(dsn); err == nil {
		return mc.Passwd
	}
	if m := dsnPasswordRE.FindStringSubmatch(dsn); m != nil {
		return m[2]
	}
	return ""
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteString quotes a MySQL string literal (in any sql_mode: backslashes
// doubled too).
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(s) + "'"
}

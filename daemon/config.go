package daemon

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
)

// Config is deskhook.yaml. Each section belongs to the package that uses
// it; the command only composes them and adds its own (store, admin, log).
type Config struct {
	Source          SourceConfig      `yaml:"source"`
	Store           StoreConfig       `yaml:"store"`
	Faveo           mapping.Config    `yaml:"faveo"`
	Sender          sender.Config     `yaml:",inline"`
	Admin           AdminConfig       `yaml:"admin"`
	Log             LogConfig         `yaml:"log"`
	DeliveryLog     DeliveryLogConfig `yaml:"delivery_log"`
	ShutdownTimeout time.Duration     `yaml:"shutdown_timeout"`
	// MemoryLimit is the soft memory limit (memory.go).
	MemoryLimit MemoryLimit `yaml:"memory_limit"`

	// Unresolved lists the values LoadOpsConfig left unexpanded because a
	// variable they refer to is not set: YAML path → "${VAR}".
	Unresolved map[string]string `yaml:"-"`
}

// StoreConfig says where the outbox file lives.
type StoreConfig struct {
	Path string `yaml:"path"`
	// QueueBytes bounds the events mapped and waiting to be stored (their
	// payloads' bytes), the ones being written included: when it is used
	// up the intake waits. One event larger than it is still stored, alone.
	QueueBytes int `yaml:"queue_bytes"`
}

// AdminConfig is the admin HTTP server: health, readiness, metrics and the
// operator API the CLI uses while the daemon holds the store.
type AdminConfig struct {
	// Listen serves the probes, the metrics and the operator API (/api/...,
	// which needs the token). Keep it on loopback.
	Listen string `yaml:"listen"`
	// ProbeListen, when set, serves /healthz, /readyz and /metrics only, on
	// a listener of their own that may be exposed (a kubelet, Prometheus).
	ProbeListen string `yaml:"probe_listen"`
	// Token is the bearer token every /api/ request must carry. Empty: the
	// daemon generates one at its first start into TokenPath, where the CLI
	// reads it.
	Token string `yaml:"token"`
	// Hosts are extra names the operator API answers to in the Host
	// header, besides the listen address, localhost and loopback addresses
	// (a defence against DNS rebinding).
	Hosts []string `yaml:"hosts"`
	// MaxSlotLag is the retained WAL (bytes) past which /readyz fails.
	MaxSlotLag ByteSize `yaml:"max_slot_lag"`
	// MinBinlogMargin (MySQL/MariaDB) is how many binlog files the server
	// must be able to purge before it reaches the stored position; with
	// fewer, /readyz fails (deskhook is behind, and the next purges take
	// what it has yet to read). The active file is never purged, so a
	// deskhook that keeps up is never at risk. Default 1: /readyz fails
	// when the next purge would take the stored position.
	MinBinlogMargin int `yaml:"min_binlog_margin"`
}

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DeliveryLogConfig is the delivery log's retention (docs/delivery-log.md):
// every attempt is recorded in the store, with the events it points at.
type DeliveryLogConfig struct {
	// Enabled false records nothing and prunes what a previous run
	// recorded (default true).
	Enabled *bool `yaml:"enabled"`
	// Retention is how long entries are kept.
	Retention time.Duration `yaml:"retention"`
	// MaxBytes bounds the log's size: entries, index keys and the bodies
	// of the events they point at.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// PruneInterval is how often the pruner looks for expired entries.
	PruneInterval time.Duration `yaml:"prune_interval"`
}

// Defaults and bounds of delivery_log.
const (
	DefaultLogRetention     = 7 * 24 * time.Hour
	DefaultLogMaxBytes      = ByteSize(256 << 20)
	DefaultLogPruneInterval = time.Minute
	minLogMaxBytes          = ByteSize(64 << 10)
)

// Limits are the outbox's log settings for c.
func (c DeliveryLogConfig) Limits() outbox.LogLimits {
	if c.Enabled != nil && !*c.Enabled {
		return outbox.LogLimits{Retention: -1, PruneInterval: c.PruneInterval}
	}
	return outbox.LogLimits{Retention: c.Retention, MaxBytes: int64(c.MaxBytes), PruneInterval: c.PruneInterval}
}

// Defaults of the command's own keys.
const (
	DefaultStorePath       = "deskhook.db"
	DefaultStoreQueueBytes = 16 << 20
	DefaultAdminListen     = "127.0.0.1:9187"
	DefaultMaxSlotLag      = ByteSize(1 << 30)
	DefaultMinBinlogMargin = 1
	DefaultShutdownTimeout = 30 * time.Second
	// MaxShutdownTimeout bounds shutdown_timeout: a stop that waits longer
	// is a hung stop (systemd and Kubernetes kill it well before).
	MaxShutdownTimeout = time.Hour
)

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	c.Source.SetDefaults()
	c.Faveo.SetDefaults()
	c.Sender.SetDefaults()
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.Store.QueueBytes == 0 {
		c.Store.QueueBytes = DefaultStoreQueueBytes
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Admin.MaxSlotLag == 0 {
		c.Admin.MaxSlotLag = DefaultMaxSlotLag
	}
	if c.Admin.MinBinlogMargin == 0 {
		c.Admin.MinBinlogMargin = DefaultMinBinlogMargin
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.DeliveryLog.Enabled == nil {
		on := true
		c.DeliveryLog.Enabled = &on
	}
	if c.DeliveryLog.Retention == 0 {
		c.DeliveryLog.Retention = DefaultLogRetention
	}
	if c.DeliveryLog.MaxBytes == 0 {
		c.DeliveryLog.MaxBytes = DefaultLogMaxBytes
	}
	if c.DeliveryLog.PruneInterval == 0 {
		c.DeliveryLog.PruneInterval = DefaultLogPruneInterval
	}
	// The mapper reads the tables the source names.
	c.Faveo.Tables = c.Source.Tables
}

// Validate reports every problem at once, each naming its YAML path.
// Call SetDefaults first.
func (c *Config) Validate() error {
	// faveo.tables is not a key of deskhook.yaml (SetDefaults copies
	// source.tables there, which the source validates): checking it again
	// would report each table problem twice, under a path nobody wrote.
	faveo := c.Faveo
	faveo.Tables = mapping.Defaults().Tables
	errs := []error{
		c.Source.Validate("source"),
		faveo.Validate("faveo"),
		c.Sender.Validate(""),
	}
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if len(c.Sender.Endpoints) == 0 {
		// Without one, every change would be read, acknowledged and lost.
		bad("endpoints", "at least one endpoint (with a url) is required")
	}
	if strings.TrimSpace(c.Store.Path) == "" {
		bad("store.path", "required (got %q)", c.Store.Path)
	}
	c.validateMemory(bad)
	if c.Admin.Listen != "off" && !validHostPort(c.Admin.Listen) {
		bad("admin.listen", `must be host:port (port 0-65535) or "off" (got %q)`, c.Admin.Listen)
	}
	if c.Admin.ProbeListen != "" && !validHostPort(c.Admin.ProbeListen) {
		bad("admin.probe_listen", `must be host:port (port 0-65535), or empty for none (got %q)`, c.Admin.ProbeListen)
	}
	if c.Admin.ProbeListen != "" && c.Admin.ProbeListen == c.Admin.Listen {
		bad("admin.probe_listen", "must differ from admin.listen (got %q for both)", c.Admin.ProbeListen)
	}
	if t := c.Admin.Token; t != "" && (len(t) < minTokenLen || strings.ContainsAny(t, " \t\r\n")) {
		// Never quote the token itself.
		bad("admin.token", "must be at least %d characters without spaces (got %d characters); leave it empty to have one generated", minTokenLen, len(t))
	}
	for i, h := range c.Admin.Hosts {
		if h == "" || strings.ContainsAny(h, "/ \t") || strings.Contains(h, ":") && net.ParseIP(h) == nil {
			bad(fmt.Sprintf("admin.hosts[%d]", i), "must be a host name or IP address without port (got %q)", h)
		}
	}
	if c.Admin.MaxSlotLag < 0 {
		bad("admin.max_slot_lag", "must not be negative (got %d)", c.Admin.MaxSlotLag)
	}
	if c.Admin.MinBinlogMargin < 0 {
		bad("admin.min_binlog_margin", "must not be negative (got %d)", c.Admin.MinBinlogMargin)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "must be text or json (got %q)", c.Log.Format)
	}
	if r := c.DeliveryLog.Retention; r < time.Second {
		bad("delivery_log.retention", "must be at least 1s (got %s); to record nothing, set delivery_log.enabled: false", r)
	}
	if m := c.DeliveryLog.MaxBytes; m < minLogMaxBytes {
		bad("delivery_log.max_bytes", "must be at least 64KiB (got %d)", int64(m))
	}
	if p := c.DeliveryLog.PruneInterval; p < 100*time.Millisecond || p > time.Hour {
		bad("delivery_log.prune_interval", "must be between 100ms and 1h (got %s)", p)
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdown_timeout", "must not be negative (got %s)", c.ShutdownTimeout)
	}
	if c.ShutdownTimeout > MaxShutdownTimeout {
		bad("shutdown_timeout", "must be at most %s (got %s)", MaxShutdownTimeout, c.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// validHostPort reports whether s is host:port with a numeric port.
func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// ConfigError is a configuration that cannot be used; the command exits 2.
type ConfigError struct {
	Path string
	Err  error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config %s:\n%v", e.Path, indent(e.Err)) }
func (e *ConfigError) Unwrap() error { return e.Err }

func indent(err error) string {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// ByteSize is a size in bytes written as 1073741824, "512MB" or "1GiB".
type ByteSize int64

var sizeRE = regexp.MustCompile(`^\s*(\d+)\s*([kKmMgGtT]?i?[bB]?)\s*$`)

// UnmarshalYAML accepts a plain number of bytes or a number with a unit.
// Its errors are yaml.TypeErrors, so decoding goes on and reports the
// other problems too.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	bad := &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s `%s` into daemon.ByteSize", n.Line, n.ShortTag(), n.Value)}}
	if n.Kind != yaml.ScalarNode {
		bad.Errors[0] = fmt.Sprintf("line %d: cannot unmarshal %s into daemon.ByteSize", n.Line, n.ShortTag())
		return bad
	}
	m := sizeRE.FindStringSubmatch(n.Value)
	if m == nil {
		return bad
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return bad
	}
	unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(m[2], "b"), "B"))
	mult := map[string]int64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"KI": 1 << 10, "MI": 1 << 20, "GI": 1 << 30, "TI": 1 << 40}[unit]
	if mult == 0 || v > math.MaxInt64/mult {
		return bad
	}
	*b = ByteSize(v * mult)
	return nil
}

func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%dB", int64(b))
}

// Secrets lists every secret in c, for the log scrubber: the DSN's
// password, the admin token, endpoint secrets, header values and URL
// passwords, and the app key.
func (c *Config) Secrets() []string {
	s := dsnPasswords(c.Source.DSN)
	if c.Source.IsMySQL() {
		if p := binlog.DSNPassword(c.Source.DSN); p != "" {
			s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if c.Admin.Token != "" {
		s = append(s, c.Admin.Token)
	}
	if c.Faveo.AppKey != "" {
		s = append(s, c.Faveo.AppKey, strings.TrimPrefix(c.Faveo.AppKey, "base64:"))
	}
	for _, e := range c.Sender.Endpoints {
		for _, sec := range strings.Fields(string(e.Secret)) {
			s = append(s, sec, strings.TrimPrefix(sec, "whsec_"))
		}
		for _, v := range e.Headers {
			if len(v) >= 4 { // shorter values would scrub innocent text
				s = append(s, v)
			}
		}
		if u, err := url.Parse(e.URL); err == nil {
			if p, ok := u.User.Password(); ok && p != "" {
				s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
			}
		}
	}
	// A value left unexpanded (LoadOpsConfig) holds no secret, only the
	// variable's name, which messages about it must be able to quote.
	if len(c.Unresolved) > 0 {
		kept := s[:0]
		for _, sec := range s {
			if !c.quotesUnresolved(sec) {
				kept = append(kept, sec)
			}
		}
		s = kept
	}
	return s
}

func (c *Config) quotesUnresolved(s string) bool {
	for _, ref := range c.Unresolved {
		if strings.Contains(s, ref) || strings.Contains(s, url.PathEscape(ref)) || strings.Contains(s, url.QueryEscape(ref)) {
			return true
		}
	}
	return false
}

var kvPasswordRE = regexp.MustCompile(`(?i)(?:^|\s)(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)`)

// dsnPasswords finds the passwords in a DSN, as pgconn reads them and, in
// case it cannot parse the DSN, as they are written (URL or key=value), in
// the forms a message might quote them.
func dsnPasswords(dsn string) []string {
	var s []string
	add := func(p string) {
		if p != "" {
			s = append(s, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if pc, err := pgconn.ParseConfig(dsn); err == nil {
		add(pc.Password)
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		if p, ok := u.User.Password(); ok {
			add(p)
		}
		for k, vs := range u.Query() {
			if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
				for _, v := range vs {
					add(v)
				}
			}
		}
		return s
	}
	for _, m := range kvPasswordRE.FindAllStringSubmatch(dsn, -1) {
		v := m[1]
		if strings.HasPrefix(v, "'") {
			add(v)
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(strings.Trim(v, "'"))
		}
		add(v)
	}
	return s
}

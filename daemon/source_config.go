package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
)

// The source types.
const (
	SourcePostgres = "postgres"
	SourceMySQL    = "mysql"
)

// SourceConfig is deskhook.yaml's source section: the helpdesk's database,
// PostgreSQL (read by package cdc) or MySQL/MariaDB (package binlog). The
// two share most keys (dsn, slot, tables, auto_setup, the batch, queue and
// reconnect bounds, verify_interval); the keys only one type has are
// refused for the other (pgOnlyKeys, mysqlOnlyKeys), so a config copied
// from one kind of install to the other says what does not apply.
type SourceConfig struct {
	// Type is postgres (the default) or mysql (MySQL or MariaDB).
	Type string `yaml:"type"`
	// The keys of a PostgreSQL source, most shared with MySQL. For mysql,
	// dsn is a go-sql-driver DSN (user:password@tcp(host:3306)/helpdesk)
	// and slot only names deskhook among the server's replicas (the
	// default server_id derives from it).
	cdc.Config `yaml:",inline"`

	// The keys of a MySQL/MariaDB source only (see binlog.Config).
	ServerID         uint32        `yaml:"server_id"`
	TimeZone         string        `yaml:"time_zone"`
	Heartbeat        time.Duration `yaml:"heartbeat"`
	ProgressInterval time.Duration `yaml:"progress_interval"`
	MinRetention     time.Duration `yaml:"min_retention"`
}

// pgOnlyKeys and mysqlOnlyKeys are the source keys of one type only.
var (
	pgOnlyKeys    = []string{"publication", "schema", "status_interval"}
	mysqlOnlyKeys = []string{"server_id", "time_zone", "heartbeat", "progress_interval", "min_retention"}
)

// IsMySQL reports whether the source is MySQL/MariaDB.
func (s SourceConfig) IsMySQL() bool { return s.Type == SourceMySQL }

// Postgres is the section as package cdc reads it.
func (s SourceConfig) Postgres() cdc.Config { return s.Config }

// MySQL is the section as package binlog reads it.
func (s SourceConfig) MySQL() binlog.Config {
	return binlog.Config{DSN: s.DSN, Slot: s.Slot, ServerID: s.ServerID, TimeZone: s.TimeZone, Heartbeat: s.Heartbeat,
		Tables: s.Tables, ProgressInterval: s.ProgressInterval, MinRetention: s.MinRetention,
		MaxBatchChanges: s.MaxBatchChanges, MaxBatchBytes: s.MaxBatchBytes, QueueBytes: s.QueueBytes,
		ReconnectMin: s.ReconnectMin, ReconnectMax: s.ReconnectMax}
}

// canonicalSourceType accepts the names people give their database:
// "mariadb" is a mysql source (the same binlog protocol), "postgresql" a
// postgres one, in any case.
func canonicalSourceType(t string) string {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case SourceMySQL, "mariadb":
		return SourceMySQL
	case SourcePostgres, "postgresql":
		return SourcePostgres
	}
	return t
}

// SetDefaults fills every empty field of the source's type with its
// default (postgres when no type is given); the other type's keys stay
// empty.
func (s *SourceConfig) SetDefaults() {
	if s.Type == "" {
		s.Type = SourcePostgres
	}
	if !s.IsMySQL() {
		s.Config.SetDefaults()
		return
	}
	m := s.MySQL()
	m.SetDefaults()
	s.Slot, s.ServerID, s.Tables, s.Heartbeat, s.ProgressInterval, s.MinRetention = m.Slot, m.ServerID, m.Tables,
		m.Heartbeat, m.ProgressInterval, m.MinRetention
	s.MaxBatchChanges, s.MaxBatchBytes, s.QueueBytes, s.ReconnectMin, s.ReconnectMax = m.MaxBatchChanges,
		m.MaxBatchBytes, m.QueueBytes, m.ReconnectMin, m.ReconnectMax
	if s.VerifyInterval == 0 {
		s.VerifyInterval = cdc.DefaultVerifyInterval
	}
}

// Validate reports every problem at once, each naming its YAML path under
// path. Call SetDefaults first.
func (s SourceConfig) Validate(path string) error {
	switch s.Type {
	case SourcePostgres:
		return s.Config.Validate(path)
	case SourceMySQL:
		errs := []error{s.MySQL().Validate(path)}
		// As for PostgreSQL: a database back after an outage is read again
		// within this long.
		for _, d := range []struct {
			key string
			v   time.Duration
		}{{"reconnect_min", s.ReconnectMin}, {"reconnect_max", s.ReconnectMax}} {
			if d.v > cdc.MaxReconnect {
				errs = append(errs, fmt.Errorf("%s.%s: must be at most %s (got %s)", path, d.key, cdc.MaxReconnect, d.v))
			}
		}
		if v := s.VerifyInterval; v < cdc.MinVerifyInterval || v > cdc.MaxVerifyInterval {
			errs = append(errs, fmt.Errorf("%s.verify_interval: must be between %s and %s (got %s)", path,
				cdc.MinVerifyInterval, cdc.MaxVerifyInterval, v))
		}
		return errors.Join(errs...)
	}
	return fmt.Errorf("%s.type: must be %s or %s (mariadb is read as mysql) (got %q)", path, SourcePostgres, SourceMySQL, s.Type)
}

// sourceKeyErrors reports the keys under source that the source's type
// does not have (a PostgreSQL key in a mysql source, or the reverse), with
// their lines.
func sourceKeyErrors(root *yaml.Node, typ string) []error {
	if typ == "" {
		typ = SourcePostgres
	}
	if typ != SourcePostgres && typ != SourceMySQL {
		return nil // Validate names the type
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	var section *yaml.Node
	doc := root.Content[0]
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "source" {
			section = doc.Content[i+1]
		}
	}
	if section == nil || section.Kind != yaml.MappingNode {
		return nil
	}
	foreign, other := mysqlOnlyKeys, "MySQL/MariaDB (source.type: mysql)"
	if typ == SourceMySQL {
		foreign, other = pgOnlyKeys, "PostgreSQL (source.type: postgres)"
	}
	var errs []error
	for i := 0; i+1 < len(section.Content); i += 2 {
		k := section.Content[i]
		if slices.Contains(foreign, k.Value) {
			errs = append(errs, fmt.Errorf("source.%s: applies to a %s source only; this source is %s (line %d): "+
				"remove it", k.Value, other, typeName(typ), k.Line))
		}
	}
	return errs
}

// typeName names a source type for people.
func typeName(typ string) string {
	if typ == SourceMySQL {
		return "MySQL/MariaDB (source.type: mysql)"
	}
	return "PostgreSQL (source.type: postgres)"
}

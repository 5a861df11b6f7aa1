package mapping

import (
	"errors"
	"fmt"

	"github.com/deskhook/deskhook/change"
)

// Config is the mapper's part of deskhook.yaml (the `faveo` section).
type Config struct {
	// AppKey is the helpdesk's Laravel APP_KEY ("base64:..."), used for the
	// ticket objects' encrypted_id. Empty: encrypted_id is left out. A
	// secret: never logged.
	AppKey string `yaml:"app_key"`
	// TeamAssignment makes setting tickets.team_id to a team fire
	// ticket_assigned. Faveo fires nothing for it, so it is off by default.
	TeamAssignment bool `yaml:"team_assignment"`
	// Tables names the helpdesk tables as the change source reports them.
	// Not a key of its own in deskhook.yaml: the command copies
	// source.tables here.
	Tables Tables `yaml:"-"`
	// StateSize bounds the state of related rows: at most this many tickets,
	// and as many users, statuses and status types, are kept (least recently
	// used go first and are read from the source again when needed).
	StateSize int `yaml:"state_size"`
	// StateBytes bounds the state's memory as well, whatever StateSize
	// says: the tickets kept (their rows and first threads, whose bodies
	// can be large mails) take at most three quarters of it, the users a
	// quarter, counted as the heap they really hold (allocator size
	// classes, LRU entries and map slots included; the metric
	// deskhook_mapping_state_bytes shows it). About 750 bytes per ticket
	// with Faveo's rows and short first threads: the default keeps some
	// 30,000 tickets. Statuses and status types, a handful of rows in any
	// helpdesk, are bounded by StateSize only.
	// 0 means DefaultStateBytes.
	StateBytes int `yaml:"state_bytes"`

	// OutputBytes bounds the events of one batch held at once: they are
	// handed to the store in groups whose payloads add up to about this
	// many bytes (a group holds at least one event, however large). A
	// batch's events can be far larger than its rows: each reply carries
	// its ticket's first thread, a mail of megabytes perhaps.
	// 0 means DefaultOutputBytes.
	OutputBytes int `yaml:"output_bytes"`
}

// Tables names the helpdesk tables the mapper reads changes of.
type Tables = change.Tables

// Defaults of StateSize and StateBytes. The state's memory budget is
// DefaultStateBytes; the count is set high enough that the bytes bind
// first for tickets (a catch-up after an outage touches tens of thousands
// of tickets, each read back from the source once it has been evicted).
const (
	DefaultStateSize   = 50000
	DefaultStateBytes  = 32 << 20
	DefaultOutputBytes = 4 << 20
)

// minOutputBytes: below it, groups would be small for no gain.
const minOutputBytes = 64 << 10

// minStateBytes keeps a ticket with a large first thread in the state.
const minStateBytes = 1 << 20

// Defaults returns a Config with every default set.
func Defaults() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	c.Tables.SetDefaults()
	if c.StateSize == 0 {
		c.StateSize = DefaultStateSize
	}
	if c.StateBytes == 0 {
		c.StateBytes = DefaultStateBytes
	}
	if c.OutputBytes == 0 {
		c.OutputBytes = DefaultOutputBytes
	}
}

// Validate reports every problem of c at once, each naming its YAML path
// under path (e.g. "mapping") and the bad value (never the key itself).
// Call SetDefaults first.
func (c Config) Validate(path string) error {
	at := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	var errs []error
	if c.AppKey != "" {
		if _, err := parseAppKey(c.AppKey); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", at("app_key"), err))
		}
	}
	if c.StateSize < 1 {
		errs = append(errs, fmt.Errorf("%s: must be at least 1 (got %d)", at("state_size"), c.StateSize))
	}
	if c.StateBytes != 0 && c.StateBytes < minStateBytes {
		errs = append(errs, fmt.Errorf("%s: must be at least %d (got %d)", at("state_bytes"), minStateBytes, c.StateBytes))
	}
	if c.OutputBytes < minOutputBytes {
		errs = append(errs, fmt.Errorf("%s: must be at least %d (got %d)", at("output_bytes"), minOutputBytes, c.OutputBytes))
	}
	seen := map[string]string{}
	names := c.Tables.List()
	for i, k := range c.Tables.Keys() {
		key, name := at("tables."+k), names[i]
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: required", key))
			continue
		}
		if other, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s: same table as %s (got %q)", key, other, name))
		}
		seen[name] = key
	}
	return errors.Join(errs...)
}

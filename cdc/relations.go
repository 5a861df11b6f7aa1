package cdc

import (
	"fmt"
	"log/slog"
	"strconv"

	"github.com/deskhook/deskhook/change"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/prometheus/client_golang/prometheus"
)

// relation is the decoder's view of one published table, as of its latest
// Relation message.
type relation struct {
	table *change.Table
	oids  []uint32 // column type OIDs, in column order
	key   []bool   // replica identity columns
}

// TableRenamedError reports that a table deskhook reads was renamed (or
// moved to another schema) while it is in the publication: its changes now
// arrive under a name the configuration does not know, so the reader stops
// rather than let them go unnoticed. Fix the configuration (source.tables /
// source.schema) or rename the table back, then restart.
type TableRenamedError struct {
	RelationID uint32
	Old, New   string // schema.table
}

func (e *TableRenamedError) Error() string {
	return fmt.Sprintf("cdc: table %s (relation id %d) was renamed to %s: deskhook reads it as %s; "+
		"rename it back or set source.schema/source.tables to the new name, then restart",
		e.Old, e.RelationID, e.New, e.Old)
}

// relationCache maps pgoutput relation ids to tables. pgoutput sends a
// Relation message before the first change of a table on each connection
// and again whenever its definition changes; each one replaces the cached
// *change.Table, so batches already handed over keep the table they were
// decoded with while later rows see the new columns.
type relationCache struct {
	log     *slog.Logger
	watched map[string]bool // configured tables, "schema.table"
	// rels is valid for one replication connection.
	rels map[uint32]*relation
	// names outlives connections: the last name seen for each relation id,
	// so a rename is noticed even across a reconnect.
	names map[uint32]string
	// types are names from Type messages (types not built in).
	types   map[uint32]string
	builtin *pgtype.Map
	// onRelation, if set, hears of each Relation message for a watched
	// table (its schema.table), on the connection goroutine: it must not
	// block.
	onRelation func(table string)
	// truncates counts TRUNCATEs of published tables, by table (nil: not
	// counted).
	truncates *prometheus.CounterVec
}

func newRelationCache(log *slog.Logger, watched []string) *relationCache {
	c := &relationCache{
		log:     log,
		watched: make(map[string]bool, len(watched)),
		rels:    map[uint32]*relation{},
		names:   map[uint32]string{},
		types:   map[uint32]string{},
		builtin: pgtype.NewMap(),
	}
	for _, w := range watched {
		c.watched[w] = true
	}
	return c
}

// reset forgets the per-connection state: a new walsender sends every
// Relation message again.
func (c *relationCache) reset() {
	c.rels = map[uint32]*relation{}
	c.types = map[uint32]string{}
}

func (c *relationCache) get(id uint32) (*relation, error) {
	r, ok := c.rels[id]
	if !ok {
		return nil, fmt.Errorf("pgoutput: change for relation id %d before its Relation message", id)
	}
	return r, nil
}

// typeName returns the name of a column type.
func (c *relationCache) typeName(oid uint32) string {
	if t, ok := c.builtin.TypeForOID(oid); ok {
		return t.Name
	}
	if n, ok := c.types[oid]; ok {
		return n
	}
	return "oid:" + strconv.FormatUint(uint64(oid), 10)
}

// columnSpec is a column as a Relation message describes it.
type columnSpec struct {
	name string
	oid  uint32
	key  bool
}

// put installs a new definition for relation id.
func (c *relationCache) put(id uint32, schema, name string, cols []columnSpec) error {
	qn := schema + "." + name
	if old, seen := c.names[id]; seen && old != qn {
		if c.watched[old] || c.watched[qn] {
			return &TableRenamedError{RelationID: id, Old: old, New: qn}
		}
		c.log.Info("published table renamed", "relation_id", id, "old", old, "new", qn)
	}
	if _, seen := c.names[id]; !seen && !c.watched[qn] {
		c.log.Warn("publication sends a table deskhook does not read; its changes are handed over as they are",
			"table", qn, "relation_id", id)
	}
	c.names[id] = qn
	if c.onRelation != nil && c.watched[qn] {
		c.onRelation(qn)
	}

	tcols := make([]change.Column, len(cols))
	r := &relation{oids: make([]uint32, len(cols)), key: make([]bool, len(cols))}
	for i, col := range cols {
		tcols[i] = change.Column{Name: col.name, Type: c.typeName(col.oid), Key: col.key}
		r.oids[i] = col.oid
		r.key[i] = col.key
	}
	r.table = change.NewTable(schema, name, tcols)
	c.rels[id] = r
	return nil
}

// truncated notes a TRUNCATE of a published table: its rows are gone
// without a delete each, so nothing downstream can make events of it (and
// the mapping makes none). An operator should know: it is logged at WARN
// and counted.
func (c *relationCache) truncated(t *change.Table, pos change.Position) {
	name := t.Schema + "." + t.Name
	if c.truncates != nil {
		c.truncates.WithLabelValues(name).Inc()
	}
	c.log.Warn("TRUNCATE of a published table: its rows are gone without a delete event each, and deskhook makes "+
		"no events from it (deskhook_cdc_truncates_total)", "table", name, "pos", pos.String(), "watched", c.watched[name])
}

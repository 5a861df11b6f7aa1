package mapping

// What the mapping reads of the source, declared once: the source's checks
// (deskhook check, and the daemon's re-verification while it runs) compare
// the live schema with it, and Map skips, counts and logs a row whose table
// lacks a column declared here rather than turn it into a different event.

import (
	"fmt"
	"strings"
	"time"

	"github.com/deskhook/deskhook/change"
)

// TypeFamily is a source-neutral family of column types; each source maps
// its own type names onto these (PostgreSQL's int8 and MySQL's bigint are
// both Integer).
type TypeFamily uint8

// The families the mapping tells apart.
const (
	Integer   TypeFamily = iota + 1 // whole numbers of any width
	Text                            // character strings of any length
	Timestamp                       // dates and date-times, with or without a zone
	Boolean                         // true/false
	JSON                            // JSON documents
)

func (f TypeFamily) String() string {
	switch f {
	case Integer:
		return "integer"
	case Text:
		return "text"
	case Timestamp:
		return "timestamp"
	case Boolean:
		return "boolean"
	case JSON:
		return "json"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// ColumnNeed is a column the mapping reads.
type ColumnNeed struct {
	Name string
	// Families are the type families it can read the column as (any one).
	Families []TypeFamily
	// Why says what the mapping reads it for, for the operator.
	Why string
}

// FamiliesString lists the acceptable families ("integer or boolean").
func (c ColumnNeed) FamiliesString() string {
	s := make([]string, len(c.Families))
	for i, f := range c.Families {
		s[i] = f.String()
	}
	return strings.Join(s, " or ")
}

// Accepts reports whether a column of family f will do.
func (c ColumnNeed) Accepts(f TypeFamily) bool {
	for _, ok := range c.Families {
		if ok == f {
			return true
		}
	}
	return false
}

// TableNeed is what the mapping reads of one table.
type TableNeed struct {
	// Key is the table's key under source.tables (change.Tables.Keys).
	Key     string
	Columns []ColumnNeed
	// OldRow: updates and deletes must carry the whole old row
	// (PostgreSQL: REPLICA IDENTITY FULL), or column changes cannot be told
	// apart.
	OldRow bool
}

func col(name, why string, fams ...TypeFamily) ColumnNeed {
	return ColumnNeed{Name: name, Families: fams, Why: why}
}

// needs is the declaration. Every table under source.tables is listed,
// those whose columns the mapping does not read with none: the table must
// still exist, be readable and be published.
var needs = []TableNeed{
	{Key: "tickets", OldRow: true, Columns: []ColumnNeed{
		col("id", "the ticket's key", Integer),
		col("status", "ticket_status_updated", Integer),
		col("dept_id", "ticket_department_updated", Integer),
		col("assigned_to", "ticket_assigned", Integer),
		col("team_id", "ticket_assigned (faveo.team_assignment)", Integer),
		col("user_id", "ticket_owner_updated and the requester", Integer),
		col("duedate", "ticket_due_date_updated", Timestamp),
		col("source", "endpoint filters by source", Integer),
	}},
	{Key: "threads", Columns: []ColumnNeed{
		col("id", "the thread's key", Integer),
		col("ticket_id", "the thread's ticket", Integer),
		col("user_id", "replied_by", Integer),
		col("is_internal", "notes fire nothing", Integer, Boolean),
		col("poster", "ticket_reply or ticket_commented", Text),
		col("thread_type", "ticket_reply or ticket_commented", Text),
	}},
	{Key: "users", Columns: []ColumnNeed{
		col("id", "the user's key", Integer),
		col("email", "collaborator_count and the user objects", Text),
	}},
	{Key: "statuses", Columns: []ColumnNeed{
		col("id", "the status's key", Integer),
		col("purpose_of_status", "the status type", Integer),
		col("send_email", "the statuses object", Text, JSON),
	}},
	{Key: "status_types", Columns: []ColumnNeed{
		col("id", "the status type's key", Integer),
	}},
	{Key: "departments"},
	{Key: "teams"},
	{Key: "collaborators", Columns: []ColumnNeed{
		col("ticket_id", "collaborator_count", Integer),
		col("user_id", "collaborator_count", Integer),
	}},
	{Key: "attachments", Columns: []ColumnNeed{
		col("thread_id", "attachment_count", Integer),
	}},
}

// Needs returns what the mapping reads of each table under source.tables,
// in the order of change.Tables.Keys.
func Needs() []TableNeed {
	out := make([]TableNeed, len(needs))
	copy(out, needs)
	return out
}

// NeedsOf returns what the mapping reads of the table under key.
func NeedsOf(key string) TableNeed {
	for _, n := range needs {
		if n.Key == key {
			return n
		}
	}
	return TableNeed{Key: key}
}

// shapeCheck remembers, per table name, whether the last shape (column
// set) seen for it has every column the mapping reads. A source makes a
// new *change.Table when a table's definition changes, so the pointer
// says whether the answer still holds.
type shapeCheck struct {
	needs map[string][]ColumnNeed // by table name
	last  map[string]shapeVerdict
}

type shapeVerdict struct {
	table   *change.Table
	missing string // "" when complete; else the missing columns, comma-separated
	// For rate-limited logging of the rows skipped because of it.
	logged  time.Time
	skipped int
}

func newShapeCheck(t Tables) *shapeCheck {
	s := &shapeCheck{needs: map[string][]ColumnNeed{}, last: map[string]shapeVerdict{}}
	for _, n := range needs {
		if name := t.Name(n.Key); name != "" && len(n.Columns) > 0 {
			s.needs[name] = n.Columns
		}
	}
	return s
}

// missing returns the columns the mapping reads that t lacks ("" when none).
func (s *shapeCheck) missing(t *change.Table) string {
	if t == nil {
		return ""
	}
	cols, ok := s.needs[t.Name]
	if !ok {
		return ""
	}
	if v, ok := s.last[t.Name]; ok && v.table == t {
		return v.missing
	}
	var lack []string
	for _, c := range cols {
		if t.Col(c.Name) < 0 {
			lack = append(lack, c.Name)
		}
	}
	v := shapeVerdict{table: t, missing: strings.Join(lack, ", ")}
	if old, ok := s.last[t.Name]; ok && old.missing == v.missing {
		v.logged, v.skipped = old.logged, old.skipped
	}
	s.last[t.Name] = v
	return v.missing
}

// shapeLogEvery bounds how often rows skipped for one table's missing
// columns are logged: the first at once, then a summary at most this often.
const shapeLogEvery = time.Minute

// skipped records a row skipped because its table lacks columns, and
// reports whether to log now and how many rows were skipped since the last
// line.
func (s *shapeCheck) skipped(table string, now time.Time) (log bool, n int) {
	v := s.last[table]
	v.skipped++
	if !v.logged.IsZero() && now.Sub(v.logged) < shapeLogEvery {
		s.last[table] = v
		return false, 0
	}
	n, v.skipped, v.logged = v.skipped, 0, now
	s.last[table] = v
	return true, n
}

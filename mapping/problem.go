package mapping

// Problem is one way a source's schema differs from what the mapping reads
// (Needs): each source's verification (cdc.Verify, binlog.Verify) reports
// them in this one form, so that `deskhook check` and the daemon's
// re-verification while it runs say them the same way for every source.
type Problem struct {
	// Table is the table as its source names it (schema.table,
	// database.table); "" for the source as a whole (PostgreSQL's
	// publication, MySQL's server settings).
	Table string
	// Kind is short and stable (a metric label): missing, no_select,
	// missing_column:NAME, column_type:NAME, and the source's own
	// (PostgreSQL: not_published, replica_identity, publication_missing;
	// MySQL: row_image, row_metadata).
	Kind string
	// Detail says what is wrong, Fix how to mend it.
	Detail string
	Fix    string
}

// String is the problem as one line: what, where, and the fix.
func (p Problem) String() string {
	s := p.Detail
	if p.Table != "" {
		s = "table " + p.Table + ": " + s
	}
	if p.Fix != "" {
		s += " (fix: " + p.Fix + ")"
	}
	return s
}

package mapping

import (
	"context"

	"github.com/deskhook/deskhook/change"
)

// Source reads rows the change stream has not shown the mapper (rows older
// than the stream, or evicted from the state), by primary key, and answers
// the aggregate reads the mapping writes (Aggregate): cdc.Lookup for
// PostgreSQL, binlog.Lookup for MySQL/MariaDB. Values must be decoded
// exactly as the stream decodes them, so that a fetched row renders like a
// streamed one. Faveo's rules (which threads count, which collaborators)
// are the mapping's, written as Aggregates (facts.go); a Source knows
// tables and columns only.
//
// What a Source returns is the row as it is now, which may be later than the
// transaction being mapped; the stream's own changes override it as they
// arrive.
type Source interface {
	// Rows returns the rows of table whose "id" is one of ids, in any order;
	// ids with no row are left out.
	Rows(ctx context.Context, table string, ids []int64) ([]*change.Row, error)
	// Aggregate answers a in one statement (so from one snapshot), one
	// AggregateRow for each of its keys.
	Aggregate(ctx context.Context, a Aggregate) (map[int64]AggregateRow, error)
}

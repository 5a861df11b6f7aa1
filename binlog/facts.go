package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/deskhook/deskhook/mapping"
)

// TicketFacts reads each ticket's first non-internal thread, its
// non-internal thread count, the poster of its last non-internal thread,
// its highest thread id, and its collaborator and attachment counts, as
// cdc.Lookup.TicketFacts does on PostgreSQL (same rules: threads up to the
// query's MaxThreadID when it is > 0; collaborators whose user has an
// email; attachments of internal threads too), in one statement and so one
// snapshot. It needs common table expressions (MySQL 8, MariaDB 10.2).
//
// This is Faveo business SQL; it moves to package mapping with cdc's.
func (l *Lookup) TicketFacts(ctx context.Context, qs []mapping.FactsQuery) (map[int64]mapping.TicketFacts, error) {
	out := make(map[int64]mapping.TicketFacts, len(qs))
	if len(qs) == 0 {
		return out, nil
	}
	var q strings.Builder
	var ids []int64
	for _, fq := range qs {
		if _, dup := out[fq.TicketID]; dup {
			continue
		}
		out[fq.TicketID] = mapping.TicketFacts{}
		ids = append(ids, fq.TicketID)
		if q.Len() > 0 {
			q.WriteString(" UNION ALL ")
		}
		q.WriteString("SELECT " + strconv.FormatInt(fq.TicketID, 10) + " AS ticket_id, " +
			strconv.FormatInt(max(fq.MaxThreadID, 0), 10) + " AS mark")
	}
	rows, err := l.db.QueryContext(ctx, l.factsSQL(q.String(), idList(ids)))
	if err != nil {
		return nil, l.factsErr(err)
	}
	defer rows.Close()
	const fixed = 7
	cols, err := rows.Columns()
	if err != nil || len(cols) < fixed+1 {
		return nil, l.factsErr(fmt.Errorf("%d columns in the answer (%v)", len(cols), err))
	}
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		dst := make([]any, len(raw))
		for i := range raw {
			dst[i] = &raw[i]
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, l.factsErr(err)
		}
		var perr error
		num := func(i int) int64 {
			n, err := strconv.ParseInt(string(raw[i]), 10, 64)
			if err != nil && perr == nil {
				perr = fmt.Errorf("column %d: %q is not an integer", i+1, raw[i])
			}
			return n
		}
		f := mapping.TicketFacts{ThreadCount: num(1), MaxThreadID: num(2), LastPoster: string(raw[3]),
			CollaboratorCount: num(4), AttachmentCount: num(5)}
		if string(raw[fixed-1]) == "1" {
			t, types, err := l.tableFor(l.cfg.Tables.Threads, rows, fixed)
			if err != nil {
				return nil, l.factsErr(err)
			}
			f.FirstThread = l.decodeRow(t, types, raw[fixed:])
		}
		id := num(0)
		if perr != nil {
			return nil, l.factsErr(perr)
		}
		out[id] = f
	}
	if err := rows.Err(); err != nil {
		return nil, l.factsErr(err)
	}
	return out, nil
}

func (l *Lookup) factsErr(err error) error {
	return fmt.Errorf("binlog: ticket facts from %s.%s: %w", l.name, l.cfg.Tables.Threads, err)
}

// factsSQL is TicketFacts' statement for the queries q (a UNION of
// ticket_id, mark rows) and their ticket ids.
func (l *Lookup) factsSQL(q, ids string) string {
	threads := l.qualified(l.cfg.Tables.Threads)
	const public = "COALESCE(t.is_internal, 0) = 0"
	upTo := "JOIN " + threads + " t ON t.ticket_id = q.ticket_id AND (q.mark = 0 OR t.id <= q.mark)"
	sql := "WITH q AS (" + q + "),\n" +
		"th AS (SELECT q.ticket_id, SUM(" + public + ") AS n, MAX(t.id) AS max_id,\n" +
		"  MIN(CASE WHEN " + public + " THEN t.id END) AS first_id, MAX(CASE WHEN " + public + " THEN t.id END) AS last_id\n" +
		"  FROM q " + upTo + " GROUP BY q.ticket_id)"
	collab, attach, joins := "0", "0", ""
	if l.opts.Collaborators != "-" {
		sql += ",\nco AS (SELECT c.ticket_id, COUNT(*) AS n FROM " + l.qualified(l.opts.Collaborators) + " c\n" +
			"  JOIN " + l.qualified(l.cfg.Tables.Users) + " u ON u.id = c.user_id\n" +
			"  WHERE c.ticket_id IN (" + ids + ") AND u.email <> '' GROUP BY c.ticket_id)"
		collab, joins = "COALESCE(co.n, 0)", joins+"\nLEFT JOIN co ON co.ticket_id = q.ticket_id"
	}
	if l.opts.Attachments != "-" {
		sql += ",\nac AS (SELECT q.ticket_id, COUNT(*) AS n FROM q " + upTo + "\n" +
			"  JOIN " + l.qualified(l.opts.Attachments) + " a ON a.thread_id = t.id GROUP BY q.ticket_id)"
		attach, joins = "COALESCE(ac.n, 0)", joins+"\nLEFT JOIN ac ON ac.ticket_id = q.ticket_id"
	}
	return sql + "\nSELECT q.ticket_id, COALESCE(th.n, 0), COALESCE(th.max_id, 0), COALESCE(lp.poster, ''), " +
		collab + ", " + attach + ", f.id IS NOT NULL, f.*\n" +
		"FROM q LEFT JOIN th ON th.ticket_id = q.ticket_id\n" +
		"LEFT JOIN " + threads + " lp ON lp.id = th.last_id\n" +
		"LEFT JOIN " + threads + " f ON f.id = th.first_id" + joins
}

package mapping

import (
	"slices"
	"strings"
	"testing"
)

// The facts Aggregate's statement has the shape its readers rely on: the
// key, then every part's values, then each fetch's flag and columns; the
// spans find the fetched columns whatever the width of the table fetched
// whole, and refuse an answer too narrow for the fetches.
func TestAggregateLayout(t *testing.T) {
	a := factsAggregate(Tables{Tickets: "tickets", Threads: "th", Users: "u", Collaborators: "co", Attachments: "at"},
		[]FactsQuery{{TicketID: 7, MaxThreadID: 9}})
	if a.Width() != 1+4+1+1 {
		t.Errorf("width %d", a.Width())
	}
	// 20 columns in the thread table fetched whole, then the poster.
	total := a.Width() + 1 + 20 + 1 + 1
	spans, ok := a.FetchSpans(total)
	if !ok || !slices.Equal(spans, [][2]int{{a.Width() + 1, a.Width() + 21}, {a.Width() + 22, a.Width() + 23}}) {
		t.Errorf("spans of %d columns: %v, %v", total, spans, ok)
	}
	if _, ok := a.FetchSpans(a.Width() + 2); ok {
		t.Error("an answer without room for the fetches was accepted")
	}
	d := SQLDialect{Table: func(n string) string { return `"s"."` + n + `"` }, Ident: func(n string) string { return `"` + n + `"` },
		IsZero: func(e string) string { return "Z(" + e + ")" }}
	sql := a.SQL(d, "KEYS")
	for _, want := range []string{"WITH q AS (KEYS)",
		`count(CASE WHEN Z(t."is_internal") THEN 1 END) AS v0, max(t."id") AS v1`,
		`FROM q, "s"."co" t, "s"."u" j`, `WHERE j.id = t."user_id" AND t."ticket_id" = q.k`,
		`count(CASE WHEN j."email" <> '' THEN 1 END)`,
		`WHERE j.id = t."thread_id" AND j."ticket_id" = q.k AND (q.b = 0 OR j."id" <= q.b)`,
		`CASE WHEN f0.id IS NULL THEN 0 ELSE 1 END, f0.*, CASE WHEN f1.id IS NULL THEN 0 ELSE 1 END, f1."poster"`,
		`LEFT JOIN "s"."th" f0 ON f0.id = p0.v2`, `LEFT JOIN "s"."th" f1 ON f1.id = p0.v3`} {
		if !strings.Contains(sql, want) {
			t.Errorf("the statement lacks %s:\n%s", want, sql)
		}
	}
}

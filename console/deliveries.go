package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// The deliveries page lists the delivery log, newest first, a page at a
// time: each page is one indexed query of the log (by event, ticket,
// endpoint, type or time: docs/delivery-log.md) continued by its cursor,
// never a count or an offset, so it costs the same in a log of a million
// entries as in one of ten.

// deliveriesPerPage is how many entries a page lists.
const deliveriesPerPage = 50

// logFilterForm is the deliveries page's filters as the form carries them.
type logFilterForm struct {
	Ticket, Endpoint, Event, Type, Outcome, Since, Until string
}

func logFormOf(v url.Values) logFilterForm {
	return logFilterForm{Ticket: v.Get("ticket"), Endpoint: v.Get("endpoint"), Event: v.Get("event"),
		Type: v.Get("type"), Outcome: v.Get("outcome"), Since: v.Get("since"), Until: v.Get("until")}
}

func (f logFilterForm) query() (outbox.LogQuery, error) {
	q := outbox.LogQuery{Endpoint: strings.TrimSpace(f.Endpoint), EventID: strings.TrimSpace(f.Event),
		EventType: strings.TrimSpace(f.Type), Limit: deliveriesPerPage}
	if t := strings.TrimSpace(f.Ticket); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return q, badInputf("ticket: not a ticket id (got %q)", t)
		}
		q.TicketID = n
	}
	var err error
	if q.Outcomes, err = outbox.ParseOutcomes(f.Outcome); err != nil {
		return q, badInputf("%v", err)
	}
	if q.Since, err = parseTime("since", strings.TrimSpace(f.Since)); err != nil {
		return q, err
	}
	if q.Until, err = parseTime("until", strings.TrimSpace(f.Until)); err != nil {
		return q, err
	}
	return q, nil
}

// values is the filter as query parameters, for the pager's links.
func (f logFilterForm) values() url.Values {
	v := url.Values{}
	for _, kv := range [][2]string{{"ticket", f.Ticket}, {"endpoint", f.Endpoint}, {"event", f.Event},
		{"type", f.Type}, {"outcome", f.Outcome}, {"since", f.Since}, {"until", f.Until}} {
		if kv[1] != "" {
			v.Set(kv[0], kv[1])
		}
	}
	return v
}

type deliveriesView struct {
	Filter    logFilterForm
	Entries   []outbox.LogEntry
	Endpoints []Endpoint
	Types     []string
	Outcomes  []string
	// Paging: Older continues after this page; First is set when this is
	// not the newest page.
	Older   string
	First   string
	Index   string
	Scanned int
}

func (c *Console) deliveries(r *http.Request) (view, error) {
	form := logFormOf(r.URL.Query())
	q, err := form.query()
	if err != nil {
		return view{}, err
	}
	q.Cursor = r.URL.Query().Get("cursor")
	page, err := c.b.Log(r.Context(), q)
	if errors.Is(err, outbox.ErrBadCursor) {
		return view{}, badInputf("this page's link is stale or damaged: start again from the newest")
	}
	if err != nil {
		return view{}, err
	}
	eps, err := c.b.Endpoints(r.Context())
	if err != nil {
		return view{}, err
	}
	v := deliveriesView{Filter: form, Entries: page.Entries, Endpoints: eps, Types: mapping.AllEvents,
		Outcomes: []string{"delivered", "failed", "retry", "dead"}, Index: page.Index, Scanned: page.Scanned}
	base := form.values()
	if page.Next != "" {
		older := url.Values{}
		for k, vs := range base {
			older[k] = vs
		}
		older.Set("cursor", page.Next)
		v.Older = "/ui/deliveries?" + older.Encode()
	}
	if q.Cursor != "" {
		v.First = "/ui/deliveries"
		if len(base) > 0 {
			v.First += "?" + base.Encode()
		}
	}
	return view{name: "deliveries", title: "Deliveries", data: v}, nil
}

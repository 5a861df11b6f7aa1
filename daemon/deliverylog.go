package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"time"

	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
)

// The delivery log and re-sending (docs/delivery-log.md): the methods the
// console calls in-process, and the /api/ routes the CLI uses while the
// daemon holds the store.

// Log lists the delivery log's entries matching q, newest first, with the
// results recorded so far committed first.
func (d *Daemon) Log(ctx context.Context, q outbox.LogQuery) (outbox.LogPage, error) {
	d.commitResults(ctx)
	return d.ob.Log(q)
}

// LogStats is the log's size and limits.
func (d *Daemon) LogStats(ctx context.Context) (outbox.LogStats, error) {
	d.commitResults(ctx)
	return d.ob.LogStats()
}

// Event returns a stored event with its endpoints and attempts.
func (d *Daemon) Event(ctx context.Context, id string) (outbox.StoredEvent, error) {
	d.commitResults(ctx)
	return d.ob.Event(id)
}

// Events lists stored events by ticket and commit time.
func (d *Daemon) Events(ctx context.Context, q outbox.EventQuery) (outbox.EventPage, error) {
	d.commitResults(ctx)
	return d.ob.Events(q)
}

// Resend queues the selected stored events again for one endpoint.
func (d *Daemon) Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error) {
	return d.ob.Resend(ctx, sel, endpoint)
}

// redactor is the scrubber of the configured secrets the sender applies
// to what receivers answer before it is stored: the process's (which
// learns a reloaded config's secrets), else one for this config.
func (d *Daemon) redactor() *Redactor {
	if d.opts.Redactor == nil {
		d.opts.Redactor = NewRedactor(nil)
	}
	d.opts.Redactor.Add(d.cfg.Secrets())
	return d.opts.Redactor
}

// reloadDeliveryLog applies a reloaded config's delivery_log section, and
// has its new secrets scrubbed from what receivers answer.
func (d *Daemon) reloadDeliveryLog(next *Config) {
	d.redactor().Add(next.Secrets())
	if reflect.DeepEqual(d.cfg.DeliveryLog, next.DeliveryLog) {
		return
	}
	dl := next.DeliveryLog
	d.cfg.DeliveryLog = dl
	d.ob.SetLogLimits(dl.Limits())
	d.log.Info("delivery log settings reloaded", "retention", dl.Retention, "max_bytes", dl.MaxBytes.String(),
		"enabled", dl.Enabled == nil || *dl.Enabled)
}

// logRoutes are the delivery log's /api/ routes.
func (d *Daemon) logRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/log", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseLogQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		page, err := d.Log(r.Context(), q)
		writeJSON(w, page, queryError(err))
	})
	mux.HandleFunc("GET /api/log/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := d.LogStats(r.Context())
		writeJSON(w, st, err)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseEventQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		page, err := d.Events(r.Context(), q)
		writeJSON(w, page, queryError(err))
	})
	mux.HandleFunc("GET /api/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		ev, err := d.Event(r.Context(), r.PathValue("id"))
		writeJSON(w, ev, err)
	})
	mux.HandleFunc("POST /api/resend", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		endpoint := q.Get("endpoint")
		if endpoint == "" {
			writeJSON(w, nil, badRequest(errors.New("endpoint: required (the one endpoint to send the events to)")))
			return
		}
		sel, err := ParseResendSelection(q)
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		// Never everything: a client that forgot its selection must not
		// send the whole store again.
		if sel.Empty() {
			writeJSON(w, nil, badRequest(errors.New("no selection: give id, ticket, from or to")))
			return
		}
		res, err := d.Resend(r.Context(), sel, endpoint)
		switch {
		case errors.Is(err, outbox.ErrNotSubscribed):
			err = &httpError{code: http.StatusConflict, err: err}
		case errors.Is(err, outbox.ErrTooMany):
			err = badRequest(err)
		}
		writeJSON(w, res, err)
	})
}

// queryError makes a bad cursor a 400.
func queryError(err error) error {
	if errors.Is(err, outbox.ErrBadCursor) {
		return badRequest(err)
	}
	return err
}

// ParseLogQuery reads the /api/log parameters: ticket, endpoint, event,
// type, outcome, since, until (RFC 3339), cursor, limit.
func ParseLogQuery(v url.Values) (outbox.LogQuery, error) {
	q := outbox.LogQuery{Endpoint: v.Get("endpoint"), EventID: v.Get("event"), EventType: v.Get("type"), Cursor: v.Get("cursor")}
	var err error
	if q.TicketID, err = queryInt64(v, "ticket"); err != nil {
		return q, err
	}
	if q.Outcomes, err = outbox.ParseOutcomes(v.Get("outcome")); err != nil {
		return q, err
	}
	if q.Since, err = queryTime(v, "since"); err != nil {
		return q, err
	}
	if q.Until, err = queryTime(v, "until"); err != nil {
		return q, err
	}
	q.Limit, err = queryLimit(v)
	return q, err
}

// ParseEventQuery reads the /api/events parameters: ticket, from, to
// (commit time, RFC 3339), cursor, limit.
func ParseEventQuery(v url.Values) (outbox.EventQuery, error) {
	q := outbox.EventQuery{Cursor: v.Get("cursor")}
	var err error
	if q.TicketID, err = queryInt64(v, "ticket"); err != nil {
		return q, err
	}
	if q.From, err = queryTime(v, "from"); err != nil {
		return q, err
	}
	if q.To, err = queryTime(v, "to"); err != nil {
		return q, err
	}
	q.Limit, err = queryLimit(v)
	return q, err
}

// ParseResendSelection reads a re-send selection: id, ticket, from, to.
func ParseResendSelection(v url.Values) (outbox.ResendSelection, error) {
	s := outbox.ResendSelection{ID: v.Get("id")}
	var err error
	if s.TicketID, err = queryInt64(v, "ticket"); err != nil {
		return s, err
	}
	if s.From, err = queryTime(v, "from"); err != nil {
		return s, err
	}
	s.To, err = queryTime(v, "to")
	return s, err
}

func queryInt64(v url.Values, key string) (int64, error) {
	s := v.Get(key)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a number (got %q)", key, s)
	}
	return n, nil
}

func queryTime(v url.Values, key string) (time.Time, error) {
	s := v.Get(key)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: not an RFC 3339 time (got %q)", key, s)
	}
	return t, nil
}

func queryLimit(v url.Values) (int, error) {
	s := v.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("limit: not a count (got %q)", s)
	}
	return n, nil
}

// logQueryValues is ParseLogQuery's inverse, for the CLI's client.
func logQueryValues(q outbox.LogQuery) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("endpoint", q.Endpoint)
	set("event", q.EventID)
	set("type", q.EventType)
	set("cursor", q.Cursor)
	if q.TicketID != 0 {
		v.Set("ticket", strconv.FormatInt(q.TicketID, 10))
	}
	if len(q.Outcomes) > 0 {
		s := ""
		for i, o := range q.Outcomes {
			if i > 0 {
				s += ","
			}
			s += o.String()
		}
		v.Set("outcome", s)
	}
	setTime(v, "since", q.Since)
	setTime(v, "until", q.Until)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func eventQueryValues(q outbox.EventQuery) url.Values {
	v := url.Values{}
	if q.TicketID != 0 {
		v.Set("ticket", strconv.FormatInt(q.TicketID, 10))
	}
	setTime(v, "from", q.From)
	setTime(v, "to", q.To)
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

func resendValues(sel outbox.ResendSelection, endpoint string) url.Values {
	v := url.Values{"endpoint": {endpoint}}
	if sel.ID != "" {
		v.Set("id", sel.ID)
	}
	if sel.TicketID != 0 {
		v.Set("ticket", strconv.FormatInt(sel.TicketID, 10))
	}
	setTime(v, "from", sel.From)
	setTime(v, "to", sel.To)
	return v
}

func setTime(v url.Values, key string, t time.Time) {
	if !t.IsZero() {
		v.Set(key, t.UTC().Format(time.RFC3339Nano))
	}
}

// The delivery log through Ops: on the store, or through the API.

func (l *localOps) Log(_ context.Context, q outbox.LogQuery) (outbox.LogPage, error) {
	return l.ob.Log(q)
}

func (l *localOps) LogStats(context.Context) (outbox.LogStats, error) { return l.ob.LogStats() }

func (l *localOps) Event(_ context.Context, id string) (outbox.StoredEvent, error) {
	return l.ob.Event(id)
}

func (l *localOps) Events(_ context.Context, q outbox.EventQuery) (outbox.EventPage, error) {
	return l.ob.Events(q)
}

// Resend checks the configuration itself: the store, opened without a
// daemon, does not know which endpoints are configured.
func (l *localOps) Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error) {
	named := false
	for _, e := range l.cfg.Sender.Endpoints {
		if e.Name == endpoint {
			named = true
			if sel.Wants == nil {
				sel.Wants = sender.Wants(e)
			}
		}
	}
	if !named {
		if _, err := l.ob.Endpoint(endpoint); err != nil {
			return outbox.ResendResult{}, err
		}
		return outbox.ResendResult{}, fmt.Errorf("endpoint %q %w", endpoint, outbox.ErrNotSubscribed)
	}
	return l.ob.Resend(ctx, sel, endpoint)
}

func (r *remoteOps) Log(ctx context.Context, q outbox.LogQuery) (outbox.LogPage, error) {
	var p outbox.LogPage
	return p, r.do(ctx, http.MethodGet, "/api/log", logQueryValues(q), &p)
}

func (r *remoteOps) LogStats(ctx context.Context) (outbox.LogStats, error) {
	var st outbox.LogStats
	return st, r.do(ctx, http.MethodGet, "/api/log/stats", nil, &st)
}

func (r *remoteOps) Event(ctx context.Context, id string) (outbox.StoredEvent, error) {
	var ev outbox.StoredEvent
	return ev, r.do(ctx, http.MethodGet, "/api/events/"+url.PathEscape(id), nil, &ev)
}

func (r *remoteOps) Events(ctx context.Context, q outbox.EventQuery) (outbox.EventPage, error) {
	var p outbox.EventPage
	return p, r.do(ctx, http.MethodGet, "/api/events", eventQueryValues(q), &p)
}

func (r *remoteOps) Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error) {
	var res outbox.ResendResult
	return res, r.do(ctx, http.MethodPost, "/api/resend", resendValues(sel, endpoint), &res)
}

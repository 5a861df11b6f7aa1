package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deskhook/deskhook/outbox"
)

// adminHandler serves the probes, the metrics, the operator API and the
// console (/ui/, console.go) on admin.listen.
//
// The operator API (under /api/) is what the CLI uses while the daemon
// holds the store's lock. It shows dead letters and changes delivery state
// (replay, drop, enable, disable, forget): apiGuard (auth.go) checks every request
// under /api/, whatever route serves it, so a route added here is covered
// without more ado.
func (d *Daemon) adminHandler() http.Handler {
	mux := http.NewServeMux()
	d.probeRoutes(mux)
	d.operatorRoutes(mux)
	d.consoleRoutes(mux)
	return d.apiGuard(mux)
}

// probeHandler serves only the probes and the metrics (admin.probe_listen).
func (d *Daemon) probeHandler() http.Handler {
	mux := http.NewServeMux()
	d.probeRoutes(mux)
	return mux
}

// probeRoutes are /healthz, /readyz and /metrics: read-only, unauthenticated,
// safe to expose.
func (d *Daemon) probeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		problems := d.problems()
		if len(problems) > 0 {
			d.metrics.ready.Set(0)
			writeText(w, http.StatusServiceUnavailable, "not ready:\n- "+strings.Join(problems, "\n- "))
			return
		}
		d.metrics.ready.Set(1)
		writeText(w, http.StatusOK, "ready")
	})
	metrics := promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		d.commitResults(r.Context())
		metrics.ServeHTTP(w, r)
	})
}

// operatorRoutes are the operator API, under /api/.
func (d *Daemon) operatorRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		d.commitResults(r.Context())
		st, err := d.Status(r.Context())
		writeJSON(w, st, err)
	})
	mux.HandleFunc("GET /api/dlq", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		d.commitResults(r.Context())
		dl, err := d.ob.DeadLetters(f)
		writeJSON(w, dl, err)
	})
	mux.HandleFunc("GET /api/dlq/{endpoint}/{id}", func(w http.ResponseWriter, r *http.Request) {
		d.commitResults(r.Context())
		dl, err := d.ob.DeadLetter(r.PathValue("endpoint"), r.PathValue("id"))
		writeJSON(w, dl, err)
	})
	mux.HandleFunc("POST /api/dlq/{op}", func(w http.ResponseWriter, r *http.Request) {
		f, err := filterFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		// Replay and drop act on the whole selection: a limit they would
		// ignore must not pass for a smaller one.
		if f.Limit != 0 {
			writeJSON(w, nil, badRequest(errors.New("limit applies to listing only: narrow the selection instead")))
			return
		}
		// Everything only when asked for in so many words: a client that
		// forgot its selection must not replay or drop every dead letter.
		if selectsAll(f) && r.URL.Query().Get("all") != "true" {
			writeJSON(w, nil, badRequest(errors.New(
				"no selection: give endpoint, id, ticket, from or to, or all=true for every dead letter")))
			return
		}
		var n int
		switch r.PathValue("op") {
		case "replay":
			n, err = d.ob.Replay(r.Context(), f)
		case "drop":
			n, err = d.ob.Drop(r.Context(), f)
		default:
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]int{"count": n}, err)
	})
	d.sourceRoutes(mux)
	d.logRoutes(mux)
	mux.HandleFunc("POST /api/endpoints/{name}/{op}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var err error
		switch r.PathValue("op") {
		case "forget":
			// The outbox refuses an endpoint the running config names.
			f, err := d.ob.Forget(r.Context(), name)
			if errors.Is(err, outbox.ErrSubscribed) {
				err = &httpError{code: http.StatusConflict, err: err}
			}
			writeJSON(w, f, err)
			return
		case "enable":
			err = d.ob.Enable(r.Context(), name)
		case "disable":
			reason := r.URL.Query().Get("reason")
			if reason == "" {
				reason = "disabled with deskhook endpoints disable"
			}
			err = d.ob.Disable(r.Context(), name, outbox.DisabledByOperator, reason)
		default:
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]string{"endpoint": name}, err)
	})
	mux.HandleFunc("GET "+backupPath, d.serveBackup)
}

// commitResults commits the delivery results the sender recorded so far
// (the outbox commits them within milliseconds anyway), so what a read
// shows (queues, dead letters, last success) includes every result
// recorded before the request.
func (d *Daemon) commitResults(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = d.ob.Flush(ctx) // a failure shows in the store's error
}

// problems lists why the daemon is not ready; none means ready.
func (d *Daemon) problems() []string {
	var p []string
	st := d.src.Stats()
	slot, _, streamErr, slotErr := d.health.snapshot()
	// The last stream error matters only while the stream is down: once
	// the reader is connected again (the slot re-created, the server back)
	// it is history, even before the next transaction arrives.
	switch {
	case st.Connected:
	case streamErr != nil:
		p = append(p, "replication stream: "+streamErr.Error())
	default:
		p = append(p, "replication stream is not connected")
	}
	if err := d.ob.Err(); err != nil {
		p = append(p, "outbox intake stopped: "+err.Error())
	}
	p = append(p, d.source.readiness()...)
	if since := d.stalledFor(st.Acknowledged, st.Pending); since >= stallAfter {
		p = append(p, fmt.Sprintf("delivery into the outbox has stalled: %d transactions waiting, nothing stored for %s",
			st.Pending, since.Round(time.Second)))
	}
	if d.mysql != nil {
		r, err := d.health.retentionSnapshot()
		return append(p, retentionProblems(r, err, streamErr, d.cfg.Admin.MinBinlogMargin)...)
	}
	switch {
	case slotErr != nil:
		p = append(p, "replication slot: "+slotErr.Error())
	case int64(d.cfg.Admin.MaxSlotLag) > 0 && slot.RetainedBytes > int64(d.cfg.Admin.MaxSlotLag):
		p = append(p, fmt.Sprintf("replication slot %s retains %d bytes of WAL (admin.max_slot_lag %s)",
			slot.Name, slot.RetainedBytes, d.cfg.Admin.MaxSlotLag))
	}
	return p
}

// stalledFor says how long the acknowledged position has stood still while
// transactions wait for it.
func (d *Daemon) stalledFor(acked interface{ String() string }, pending int) time.Duration {
	d.stall.Lock()
	defer d.stall.Unlock()
	now := time.Now()
	pos := acked.String()
	if pending == 0 || pos != d.stall.pos {
		d.stall.pos, d.stall.since = pos, now
		return 0
	}
	return now.Sub(d.stall.since)
}

type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }

func badRequest(err error) error { return &httpError{code: http.StatusBadRequest, err: err} }

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, s)
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		switch {
		case errors.As(err, &he):
			code = he.code
		case errors.Is(err, outbox.ErrNotFound):
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// filterFromQuery reads a dead-letter selection: endpoint, id, ticket,
// from, to (RFC 3339) and limit.
func filterFromQuery(q url.Values) (outbox.DeadFilter, error) {
	f := outbox.DeadFilter{Endpoint: q.Get("endpoint"), ID: q.Get("id")}
	var err error
	if v := q.Get("ticket"); v != "" {
		if f.TicketID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return f, fmt.Errorf("ticket: not a number (got %q)", v)
		}
	}
	for _, t := range []struct {
		key string
		dst *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(t.key); v != "" {
			if *t.dst, err = time.Parse(time.RFC3339, v); err != nil {
				return f, fmt.Errorf("%s: not an RFC 3339 time (got %q)", t.key, v)
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil {
			return f, fmt.Errorf("limit: not a number (got %q)", v)
		}
	}
	return f, nil
}

// selectsAll reports whether f selects every dead letter.
func selectsAll(f outbox.DeadFilter) bool {
	f.Limit = 0
	return f == (outbox.DeadFilter{})
}

// filterQuery is filterFromQuery's inverse, for the CLI's client.
func filterQuery(f outbox.DeadFilter) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("endpoint", f.Endpoint)
	set("id", f.ID)
	if f.TicketID != 0 {
		q.Set("ticket", strconv.FormatInt(f.TicketID, 10))
	}
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

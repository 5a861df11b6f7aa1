package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/outbox"
)

// The store's record of the source and the gaps an operator accepted: the
// reader compares the slot with it before streaming (a lost slot is never
// replaced silently), `setup` consults it (and, with --accept-gap, records
// the gap in it: in the store file, or through the running daemon's
// operator API when the daemon holds the file), `check` and `status`
// show it.

// storeMark is the daemon's outbox as the reader's cdc.Store.
type storeMark struct{ d *Daemon }

func (s storeMark) Mark() (cdc.Mark, error) { return markOf(s.d.ob) }

func (s storeMark) RecordConfirmed(ctx context.Context, source string, pos change.Position) error {
	return s.d.ob.RecordConfirmed(ctx, source, pos)
}

func markOf(ob *outbox.Outbox) (cdc.Mark, error) {
	m, err := ob.SourceMark()
	return cdc.Mark{Source: m.Source, Stored: ob.Position(), Confirmed: m.Confirmed}, err
}

// autoSetup runs setup before the stream starts when source.auto_setup is
// on and the store has never streamed. A store that has streamed gets a new
// slot only from an operator (`deskhook setup --accept-gap`): the reader
// says why it cannot stream.
func (d *Daemon) autoSetup(ctx context.Context) error {
	if !d.cfg.Source.AutoSetup {
		return nil
	}
	m, err := markOf(d.ob)
	if err != nil || m.Streamed() {
		return nil // the reader reports a store it cannot read
	}
	res, err := cdc.SetupWith(ctx, d.cfg.Source.Postgres(), cdc.SetupOptions{Mark: func() (cdc.Mark, error) { return markOf(d.ob) }})
	if err != nil {
		return fmt.Errorf("auto_setup: %w", err)
	}
	if len(res.Done) > 0 {
		d.log.Info("setup", "done", res.Done)
	}
	return nil
}

// sourceRoutes adds the operator API's source routes to mux.
func (d *Daemon) sourceRoutes(mux *http.ServeMux) {
	// POST /api/source/gaps records a gap `deskhook setup --accept-gap`
	// accepted (gapQuery's parameters) and restarts the stream at once.
	mux.HandleFunc("POST /api/source/gaps", func(w http.ResponseWriter, r *http.Request) {
		g, err := gapFromQuery(r.URL.Query())
		if err != nil {
			writeJSON(w, nil, badRequest(err))
			return
		}
		if err := d.ob.AcceptGap(r.Context(), g); err != nil {
			writeJSON(w, nil, err)
			return
		}
		d.log.Warn("gap accepted: the changes in it are lost", "from", d.posString(g.From), "to", d.posString(g.To),
			"reason", g.Reason, "resume", g.Resume)
		select {
		case d.restartStream <- struct{}{}:
		default:
		}
		writeJSON(w, map[string]string{"from": d.posString(g.From), "to": d.posString(g.To)}, nil)
	})
}

// gapQuery is a gap as the operator API's query parameters.
func gapQuery(g outbox.Gap) url.Values {
	q := url.Values{"from": {strconv.FormatUint(uint64(g.From), 10)}, "to": {strconv.FormatUint(uint64(g.To), 10)},
		"at": {g.At.UTC().Format(time.RFC3339Nano)}, "reason": {g.Reason}, "source": {g.Source}}
	if g.Resume != "" {
		q.Set("resume", g.Resume)
	}
	return q
}

func gapFromQuery(q url.Values) (outbox.Gap, error) {
	g := outbox.Gap{Reason: q.Get("reason"), Source: q.Get("source"), Resume: q.Get("resume")}
	for _, p := range []struct {
		key string
		dst *change.Position
	}{{"from", &g.From}, {"to", &g.To}} {
		n, err := strconv.ParseUint(q.Get(p.key), 10, 64)
		if err != nil {
			return g, fmt.Errorf("%s: not a position (got %q)", p.key, q.Get(p.key))
		}
		*p.dst = change.Position(n)
	}
	at, err := time.Parse(time.RFC3339Nano, q.Get("at"))
	if err != nil {
		return g, fmt.Errorf("at: not an RFC 3339 time (got %q)", q.Get("at"))
	}
	g.At = at
	return g, nil
}

// GapStatus is an accepted gap, as status shows it.
type GapStatus struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"accepted_at"`
	Reason string    `json:"reason"`
	// Resume is where a MySQL source read on from after the gap (a GTID).
	Resume string `json:"resume,omitempty"`
}

// sourceStatus fills the store's record of the source into os.
func sourceStatus(ob *outbox.Outbox, os *OutboxStatus) error {
	m, err := ob.SourceMark()
	if err != nil {
		return err
	}
	os.Source = m.Source
	if m.Confirmed > 0 {
		os.Confirmed = m.Confirmed.String()
	}
	gaps, err := ob.Gaps()
	for _, g := range gaps {
		os.Gaps = append(os.Gaps, GapStatus{From: g.From.String(), To: g.To.String(), At: g.At, Reason: g.Reason})
	}
	return err
}

// Mark is the store's record of the source as status shows it.
func (o OutboxStatus) Mark() (cdc.Mark, error) {
	m := cdc.Mark{Source: o.Source}
	for _, p := range []struct {
		s   string
		dst *change.Position
	}{{o.Position, &m.Stored}, {o.Confirmed, &m.Confirmed}} {
		if p.s == "" {
			continue
		}
		l, err := pglogrepl.ParseLSN(p.s)
		if err != nil {
			return m, fmt.Errorf("store position %q: %w", p.s, err)
		}
		*p.dst = change.Position(l)
	}
	return m, nil
}

// StoreMark returns the store's record of the source, from the file or the
// running daemon; a store that does not exist yet has never streamed.
func StoreMark(ctx context.Context, cfg *Config) (cdc.Mark, error) {
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
		return cdc.Mark{}, nil
	}
	ops, err := OpenOps(ctx, cfg, false)
	if err != nil {
		return cdc.Mark{}, err
	}
	defer ops.Close()
	if l, ok := ops.(*localOps); ok {
		return markOf(l.ob) // without the slot query Status makes
	}
	st, err := ops.Status(ctx)
	if err != nil {
		return cdc.Mark{}, err
	}
	return st.Outbox.Mark()
}

// Setup runs `deskhook setup`: cdc.SetupWith against the store's record of
// the source. A gap it accepts (acceptGap) is recorded in the store, or by
// the running daemon that holds it, and said in the lines returned.
func Setup(ctx context.Context, cfg *Config, acceptGap bool) ([]string, error) {
	if cfg.Source.IsMySQL() {
		return setupMySQL(ctx, cfg, acceptGap)
	}
	opts := cdc.SetupOptions{AcceptGap: acceptGap, Mark: func() (cdc.Mark, error) { return StoreMark(ctx, cfg) }}
	res, err := cdc.SetupWith(ctx, cfg.Source.Postgres(), opts)
	if err != nil || res.Gap == nil {
		return res.Done, err
	}
	g := outbox.Gap{From: res.Gap.From, To: res.Gap.To, At: time.Now().UTC(), Reason: string(res.Gap.Reason),
		Source: res.Gap.Source}
	done := append(res.Done, fmt.Sprintf("accepted a gap (%s): changes committed after %s and before %s are lost",
		g.Reason, g.From, g.To))
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
		return append(done, "no store yet: the daemon starts from the slot"), nil
	}
	if err := recordGap(ctx, cfg, g); err != nil {
		return done, fmt.Errorf("recording the gap in store %s: %w; the slot is ready: run `deskhook setup "+
			"--accept-gap` again to record it", cfg.Store.Path, err)
	}
	return append(done, "recorded the gap in store "+cfg.Store.Path), nil
}

// recordGap records g in the store file, or asks the daemon holding it.
func recordGap(ctx context.Context, cfg *Config, g outbox.Gap) error {
	ops, err := OpenOps(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer ops.Close()
	switch o := ops.(type) {
	case *localOps:
		return o.ob.AcceptGap(ctx, g)
	case *remoteOps:
		return o.do(ctx, http.MethodPost, "/api/source/gaps", gapQuery(g), nil)
	}
	return fmt.Errorf("cannot record a gap through %T", ops)
}

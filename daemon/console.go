package daemon

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/console"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
)

// The operator console (package console) is served under /ui/ on the
// admin listener only (never on admin.probe_listen), behind the same Host
// and Origin checks as the operator API; it signs in with the admin token.
// consoleBackend is the daemon as the console's Backend.

// consoleRoutes builds the console and mounts it on mux, with the operator
// API's route that makes one-time login links (`deskhook ui`).
func (d *Daemon) consoleRoutes(mux *http.ServeMux) {
	b := &consoleBackend{d: d}
	c, err := console.New(b, console.Options{
		Token:   d.token,
		Secrets: b.Secrets,
		Refused: d.refused,
		Logger:  d.log.With("component", "console"),
	})
	if err != nil {
		// Only a missing token fails, and the admin listener never runs
		// without one.
		d.log.Error("console not served", "err", err)
		return
	}
	d.console = c
	mux.Handle("/ui/", d.consoleGuard(c.Handler()))
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("POST "+loginLinkPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, loginLink{Path: c.LoginPath(), Expires: time.Now().Add(console.LoginCodeLifetime)}, nil)
	})
}

// loginLinkPath is the operator API's route for a one-time login link.
const loginLinkPath = "/api/ui/login-link"

type loginLink struct {
	Path    string    `json:"path"`
	Expires time.Time `json:"expires"`
}

// consoleGuard refuses a request whose Host or Origin is not the admin
// listener's own (DNS rebinding, a form on another site), as apiGuard does
// for /api/; the console checks the session and CSRF token itself.
func (d *Daemon) consoleGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := d.foreignRequest(r); why != "" {
			d.refused(r, http.StatusForbidden, why)
			writeText(w, http.StatusForbidden, "403 Forbidden: "+why)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ConsoleURL is the console's address as a browser on this host reaches
// it ("" when admin.listen is off).
func (d *Daemon) ConsoleURL() string {
	if d.adminLn == nil || d.console == nil {
		return ""
	}
	return "http://" + dialAddr(d.AdminAddr()) + "/ui/"
}

// ConsoleLoginURL is a new one-time login link to the console ("" when
// admin.listen is off).
func (d *Daemon) ConsoleLoginURL() string {
	if d.adminLn == nil || d.console == nil {
		return ""
	}
	return "http://" + dialAddr(d.AdminAddr()) + d.console.LoginPath()
}

// ConsoleLoginLink asks the running daemon for a one-time login link to
// its console (`deskhook ui`), and returns the console's URL and the link.
func ConsoleLoginLink(ctx context.Context, cfg *Config) (consoleURL, link string, expires time.Time, err error) {
	if cfg.Admin.Listen == "off" {
		return "", "", time.Time{}, fmt.Errorf("admin.listen is off: the console is served on the admin listener")
	}
	token, err := ClientToken(cfg)
	if err != nil {
		return "", "", time.Time{}, err
	}
	base := "http://" + dialAddr(cfg.Admin.Listen)
	rc := &remoteOps{base: base, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
	var l loginLink
	if err := rc.do(ctx, http.MethodPost, loginLinkPath, nil, &l); err != nil {
		return "", "", time.Time{}, fmt.Errorf("asking the daemon at %s for a login link (is it running? `deskhook run`): %w", cfg.Admin.Listen, err)
	}
	return base + "/ui/", base + l.Path, l.Expires, nil
}

// consoleBackend implements console.Backend on the running daemon.
type consoleBackend struct {
	d *Daemon

	// The secrets of every configuration the daemon ran with (a reload
	// adds the new ones; pages may still quote the old), and the token.
	mu      sync.Mutex
	secrets map[string]bool
}

func (b *consoleBackend) Secrets() []string {
	b.d.cfgMu.Lock()
	cur := b.d.cfg.Secrets()
	b.d.cfgMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.secrets == nil {
		b.secrets = map[string]bool{b.d.token: true}
	}
	for _, s := range cur {
		b.secrets[s] = true
	}
	out := make([]string, 0, len(b.secrets))
	for s := range b.secrets {
		out = append(out, s)
	}
	return out
}

func (b *consoleBackend) Overview(ctx context.Context) (console.Overview, error) {
	d := b.d
	d.commitResults(ctx)
	st, err := d.Status(ctx)
	if err != nil {
		return console.Overview{}, err
	}
	ov := console.Overview{Version: d.opts.Version, Problems: st.Problems}
	ov.Ready = st.Ready != nil && *st.Ready
	m := gatherValues(d.reg, "deskhook_cdc_replication_lag_seconds", "deskhook_outbox_file_bytes")

	fact := func(dst *[]console.Fact, label, value string, warn bool) {
		*dst = append(*dst, console.Fact{Label: label, Value: value, Warn: warn})
	}
	src := &ov.Source
	if st.Binlog != nil {
		fact(src, "Database", "MySQL/MariaDB, binlog", false)
	} else {
		fact(src, "Database", "PostgreSQL, slot "+st.Slot.Name, false)
	}
	if r := st.Stream; r != nil {
		conn := "disconnected"
		switch {
		case r.Connected && st.Binlog != nil:
			conn = fmt.Sprintf("connected (connection id %d)", r.ConnectionID)
		case r.Connected:
			conn = fmt.Sprintf("connected (walsender pid %d)", r.WalsenderPID)
		}
		fact(src, "Stream", conn, !r.Connected)
		fact(src, "Received", r.Received, false)
		fact(src, "Confirmed to the server", r.Confirmed, false)
		if st.Binlog == nil { // the binlog reader has no lag gauge: its last transaction's time below says it
			lag := m["deskhook_cdc_replication_lag_seconds"]
			fact(src, "Replication lag", fmt.Sprintf("%s behind, %s of WAL not yet confirmed",
				(time.Duration(lag*float64(time.Second))).Round(time.Millisecond), cdc.HumanBytes(st.Slot.LagBytes)), lag > 60)
		}
		last := "–"
		if !r.LastCommitTime.IsZero() {
			last = r.LastCommitTime.Local().Format("2006-01-02 15:04:05 MST")
		}
		fact(src, "Last transaction", last, false)
		fact(src, "Pending transactions", fmt.Sprint(r.Pending), false)
		fact(src, "Reconnects", fmt.Sprint(r.Reconnects), false)
	}
	switch b := st.Binlog; {
	case b != nil && b.Error != "":
		fact(src, "Binlog", b.Error, b.Stored != "")
	case b != nil:
		fact(src, "Binlog", fmt.Sprintf("%d files, stored position %s, current %s", b.Files, b.Stored, b.Current), false)
		fact(src, "Margin before the position is purged", fmt.Sprintf("%d files, %s (admin.min_binlog_margin %d)",
			b.MarginFiles, cdc.HumanBytes(b.MarginBytes), d.cfg.Admin.MinBinlogMargin), b.AtRisk)
	case st.Slot.Error != "":
		fact(src, "Slot", st.Slot.Error, true)
	default:
		limit := int64(d.cfg.Admin.MaxSlotLag)
		fact(src, "Retained WAL", fmt.Sprintf("%s (admin.max_slot_lag %s; wal_status %s)",
			cdc.HumanBytes(st.Slot.RetainedBytes), cdc.HumanBytes(limit), st.Slot.WALStatus),
			limit > 0 && st.Slot.RetainedBytes > limit*8/10)
		if limit > 0 {
			fact(src, "Margin before not ready", cdc.HumanBytes(max(0, limit-st.Slot.RetainedBytes)), st.Slot.RetainedBytes > limit)
		}
	}

	sto := &ov.Store
	fact(sto, "File", st.Outbox.Path, false)
	fact(sto, "Size", cdc.HumanBytes(int64(m["deskhook_outbox_file_bytes"])), false)
	fact(sto, "Stored position", st.Outbox.Position, false)
	fact(sto, "Pending deliveries", fmt.Sprint(st.Outbox.Pending), false)
	fact(sto, "Dead letters", fmt.Sprint(st.Outbox.DeadLetters), st.Outbox.DeadLetters > 0)
	if st.Outbox.Error != "" {
		fact(sto, "Intake stopped", st.Outbox.Error, true)
	}
	if ls, err := d.LogStats(ctx); err == nil {
		oldest := "–"
		if !ls.Oldest.IsZero() {
			oldest = ls.Oldest.Local().Format("2006-01-02 15:04:05 MST")
		}
		fact(sto, "Delivery log", fmt.Sprintf("%d attempts, %s (oldest %s)", ls.Entries, cdc.HumanBytes(ls.Bytes), oldest), false)
	}
	if n := len(st.Outbox.Gaps); n > 0 {
		fact(sto, "Accepted gaps", fmt.Sprint(n), true)
	}
	return ov, nil
}

func (b *consoleBackend) Endpoints(ctx context.Context) ([]console.Endpoint, error) {
	d := b.d
	d.commitResults(ctx)
	d.cfgMu.Lock()
	eps := d.cfg.Sender.Endpoints
	d.cfgMu.Unlock()
	_, states, err := storeStatus(d.ob, eps, time.Now())
	if err != nil {
		return nil, err
	}
	byName := map[string]sender.Endpoint{}
	for _, e := range eps {
		byName[e.Name] = e
	}
	out := make([]console.Endpoint, 0, len(states))
	for _, s := range states {
		ce := console.Endpoint{
			Name: s.Name, URL: s.URL, Configured: s.Configured, Orphaned: s.Orphaned, OrphanedSince: s.OrphanedSince,
			DisabledBy: s.DisabledBy, DisabledReason: s.DisabledReason, Disabled: s.DisabledBy != "",
			Pending: s.Pending, DeadLetters: s.DeadLetters, OldestPending: time.Duration(s.OldestPendingAge * float64(time.Second)),
			LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
			UserAgent: "deskhook/" + d.opts.Version,
		}
		if e, ok := byName[s.Name]; ok {
			ce.PausedInConfig = !e.IsEnabled()
			ce.Format, ce.Signed = string(e.Format), e.Secret != ""
			for h := range e.Headers {
				ce.HeaderNames = append(ce.HeaderNames, h)
			}
			sort.Strings(ce.HeaderNames)
		}
		out = append(out, ce)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (b *consoleBackend) SetEnabled(ctx context.Context, endpoint string, enabled bool) error {
	if enabled {
		return b.d.ob.Enable(ctx, endpoint)
	}
	return b.d.ob.Disable(ctx, endpoint, outbox.DisabledByOperator, "disabled in the console")
}

func (b *consoleBackend) DeadLetters(ctx context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error) {
	b.d.commitResults(ctx)
	return b.d.ob.DeadLetters(f)
}

func (b *consoleBackend) Replay(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return b.d.ob.Replay(ctx, f)
}

func (b *consoleBackend) Drop(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return b.d.ob.Drop(ctx, f)
}

// Counters reads the totals behind the charts from the daemon's metrics.
func (b *consoleBackend) Counters() console.Counters {
	var c console.Counters
	mfs, err := b.d.reg.Gather()
	if err != nil && len(mfs) == 0 {
		return c
	}
	bounds := map[float64]float64{}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "deskhook_outbox_events_stored_total":
			c.EventsStored = sumValues(mf)
		case "deskhook_delivery_attempt_seconds":
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				c.Attempts += float64(h.GetSampleCount())
				for _, bk := range h.GetBucket() {
					bounds[bk.GetUpperBound()] += float64(bk.GetCumulativeCount())
				}
				bounds[math.Inf(1)] += float64(h.GetSampleCount())
			}
		}
	}
	for ub, n := range bounds {
		c.AttemptSeconds = append(c.AttemptSeconds, console.Bucket{UpperBound: ub, Count: n})
	}
	sort.Slice(c.AttemptSeconds, func(i, j int) bool { return c.AttemptSeconds[i].UpperBound < c.AttemptSeconds[j].UpperBound })
	return c
}

// gatherValues reads gauges and counters from reg, each summed over its
// labels.
func gatherValues(reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, names ...string) map[string]float64 {
	out := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() == n {
				out[n] = sumValues(mf)
			}
		}
	}
	return out
}

func sumValues(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		}
	}
	return v
}

func (b *consoleBackend) Log(ctx context.Context, q outbox.LogQuery) (outbox.LogPage, error) {
	return b.d.Log(ctx, q)
}

func (b *consoleBackend) Event(ctx context.Context, id string) (outbox.StoredEvent, error) {
	return b.d.Event(ctx, id)
}

func (b *consoleBackend) Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error) {
	return b.d.Resend(ctx, sel, endpoint)
}

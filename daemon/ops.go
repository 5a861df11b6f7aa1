package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// Ops are the operator functions behind `status`, `dlq` and `endpoints`.
// OpenOps gives them on the store itself when no daemon runs, or through
// the running daemon's admin API when it holds the store.
type Ops interface {
	Status(ctx context.Context) (*Status, error)
	DeadLetters(ctx context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error)
	DeadLetter(ctx context.Context, endpoint, id string) (outbox.DeadLetter, error)
	Replay(ctx context.Context, f outbox.DeadFilter) (int, error)
	Drop(ctx context.Context, f outbox.DeadFilter) (int, error)
	Enable(ctx context.Context, endpoint string) error
	Disable(ctx context.Context, endpoint, reason string) error
	// Forget drops an orphaned endpoint's queue, dead letters and state;
	// it refuses an endpoint the configuration names.
	Forget(ctx context.Context, endpoint string) (outbox.Forgotten, error)
	// The delivery log and re-sending (deliverylog.go).
	Log(ctx context.Context, q outbox.LogQuery) (outbox.LogPage, error)
	LogStats(ctx context.Context) (outbox.LogStats, error)
	Event(ctx context.Context, id string) (outbox.StoredEvent, error)
	Events(ctx context.Context, q outbox.EventQuery) (outbox.EventPage, error)
	Resend(ctx context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error)
	Close() error
}

// OpenOps opens the store directly (read-only unless write), or, when a
// daemon holds it, returns a client of that daemon's admin API.
func OpenOps(ctx context.Context, cfg *Config, write bool) (Ops, error) {
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store %s does not exist yet: the daemon creates it at its first start", cfg.Store.Path)
	}
	ob, err := outbox.Open(cfg.Store.Path, outbox.Options{ReadOnly: !write, LockTimeout: 300 * time.Millisecond})
	if err == nil {
		return &localOps{cfg: cfg, ob: ob}, nil
	}
	if !errors.Is(err, outbox.ErrInUse) {
		return nil, err
	}
	if cfg.Admin.Listen == "off" {
		return nil, fmt.Errorf("%w; and admin.listen is off, so the daemon cannot be asked instead", err)
	}
	token, err := ClientToken(cfg)
	if err != nil {
		return nil, fmt.Errorf("store %s is held by a running daemon, but %w", cfg.Store.Path, err)
	}
	rc := &remoteOps{base: "http://" + dialAddr(cfg.Admin.Listen), token: token, hc: &http.Client{Timeout: 30 * time.Second}}
	if _, err := rc.Status(ctx); err != nil {
		return nil, fmt.Errorf("store %s is held by a running daemon, whose admin API at %s does not answer: %w",
			cfg.Store.Path, cfg.Admin.Listen, err)
	}
	return rc, nil
}

// dialAddr is where a client on this host reaches a listener bound to
// listen: a wildcard address is reached through loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port)
}

// localOps works on the store file while no daemon runs.
type localOps struct {
	cfg *Config
	ob  *outbox.Outbox
}

func (l *localOps) Status(ctx context.Context) (*Status, error) {
	st := &Status{}
	var unavailable string
	if p, v, unset := l.cfg.unresolvedUnder("source"); unset {
		// The database's password lives where this user cannot read it:
		// the slot is not this command's business then.
		unavailable = fmt.Sprintf("unavailable: %s refers to %s, which is not set in this environment", p, v)
	}
	var err error
	st.Outbox, st.Endpoints, err = storeStatus(l.ob, l.cfg.Sender.Endpoints, time.Now())
	if err != nil {
		return st, err
	}
	if !l.cfg.Source.IsMySQL() {
		st.Slot = SlotStatus{Name: l.cfg.Source.Slot, Error: unavailable}
		if unavailable == "" {
			st.Slot = slotStatus(ctx, l.cfg.Source.Postgres())
		}
		return st, nil
	}
	if err := mysqlPositions(l.ob, &st.Outbox); err != nil {
		return st, err
	}
	st.Binlog = &BinlogStatus{Stored: st.Outbox.Resume, Error: unavailable}
	if unavailable == "" {
		st.Binlog = binlogStatus(ctx, l.cfg, st.Outbox.ResumeToken)
	}
	return st, nil
}

func (l *localOps) DeadLetters(_ context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error) {
	return l.ob.DeadLetters(f)
}

func (l *localOps) DeadLetter(_ context.Context, endpoint, id string) (outbox.DeadLetter, error) {
	return l.ob.DeadLetter(endpoint, id)
}

func (l *localOps) Replay(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return l.ob.Replay(ctx, f)
}

func (l *localOps) Drop(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return l.ob.Drop(ctx, f)
}

func (l *localOps) Enable(ctx context.Context, endpoint string) error {
	return l.ob.Enable(ctx, endpoint)
}

func (l *localOps) Disable(ctx context.Context, endpoint, reason string) error {
	return l.ob.Disable(ctx, endpoint, outbox.DisabledByOperator, reason)
}

// Forget checks the configuration itself: the store, opened without a
// daemon, does not know which endpoints are configured.
func (l *localOps) Forget(ctx context.Context, endpoint string) (outbox.Forgotten, error) {
	for _, e := range l.cfg.Sender.Endpoints {
		if e.Name == endpoint {
			return outbox.Forgotten{}, fmt.Errorf("endpoint %q %w: it is not orphaned; to drop its queue, "+
				"remove it from the configuration first", endpoint, outbox.ErrSubscribed)
		}
	}
	return l.ob.Forget(ctx, endpoint)
}

func (l *localOps) Close() error { return l.ob.Close() }

// remoteOps asks the running daemon.
type remoteOps struct {
	base  string
	token string
	hc    *http.Client
}

// maxAnswer bounds what the CLI reads of one answer from the daemon.
const maxAnswer = 64 << 20

func (r *remoteOps) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := r.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return err
	}
	if len(body) > maxAnswer {
		return fmt.Errorf("%s %s: the daemon's answer is larger than %d MiB; narrow the selection (--limit, --endpoint, "+
			"--ticket, --from/--to)", method, path, maxAnswer>>20)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			if resp.StatusCode == http.StatusNotFound {
				return fmt.Errorf("%w: %s", outbox.ErrNotFound, e.Error)
			}
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(body))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}

func (r *remoteOps) Status(ctx context.Context) (*Status, error) {
	var st Status
	return &st, r.do(ctx, http.MethodGet, "/api/status", nil, &st)
}

func (r *remoteOps) DeadLetters(ctx context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error) {
	var dl []outbox.DeadLetter
	return dl, r.do(ctx, http.MethodGet, "/api/dlq", filterQuery(f), &dl)
}

func (r *remoteOps) DeadLetter(ctx context.Context, endpoint, id string) (outbox.DeadLetter, error) {
	var dl outbox.DeadLetter
	return dl, r.do(ctx, http.MethodGet, "/api/dlq/"+url.PathEscape(endpoint)+"/"+url.PathEscape(id), nil, &dl)
}

func (r *remoteOps) count(ctx context.Context, op string, f outbox.DeadFilter) (int, error) {
	var res struct{ Count int }
	q := filterQuery(f)
	if selectsAll(f) {
		q.Set("all", "true") // the API wants it said
	}
	err := r.do(ctx, http.MethodPost, "/api/dlq/"+op, q, &res)
	return res.Count, err
}

func (r *remoteOps) Replay(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return r.count(ctx, "replay", f)
}

func (r *remoteOps) Drop(ctx context.Context, f outbox.DeadFilter) (int, error) {
	return r.count(ctx, "drop", f)
}

func (r *remoteOps) Enable(ctx context.Context, endpoint string) error {
	return r.do(ctx, http.MethodPost, "/api/endpoints/"+url.PathEscape(endpoint)+"/enable", nil, nil)
}

func (r *remoteOps) Disable(ctx context.Context, endpoint, reason string) error {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	return r.do(ctx, http.MethodPost, "/api/endpoints/"+url.PathEscape(endpoint)+"/disable", q, nil)
}

func (r *remoteOps) Forget(ctx context.Context, endpoint string) (outbox.Forgotten, error) {
	var f outbox.Forgotten
	return f, r.do(ctx, http.MethodPost, "/api/endpoints/"+url.PathEscape(endpoint)+"/forget", nil, &f)
}

func (r *remoteOps) Close() error { return nil }

// unresolvedUnder returns the first (by path) value under section that
// LoadOpsConfig left unexpanded, and the variable it refers to.
func (c *Config) unresolvedUnder(section string) (path, variable string, ok bool) {
	paths := make([]string, 0, len(c.Unresolved))
	for p := range c.Unresolved {
		if p == section || strings.HasPrefix(p, section+".") {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return "", "", false
	}
	sort.Strings(paths)
	return paths[0], c.Unresolved[paths[0]], true
}

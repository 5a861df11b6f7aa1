package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
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
	rc := &remoteOps{base: "http://" + cfg.Admin.Listen, hc: &http.Client{Timeout: 30 * time.Second}}
	if _, err := rc.Status(ctx); err != nil {
		return nil, fmt.Errorf("store %s is held by a running daemon, whose admin API at %s does not answer: %w",
			cfg.Store.Path, cfg.Admin.Listen, err)
	}
	return rc, nil
}

// localOps works on the store file while no daemon runs.
type localOps struct {
	cfg *Config
	ob  *outbox.Outbox
}

func (l *localOps) Status(ctx context.Context) (*Status, error) {
	st := &Status{Slot: slotStatus(ctx, l.cfg.Source)}
	var err error
	st.Outbox, st.Endpoints, err = storeStatus(l.ob, l.cfg.Sender.Endpoints, time.Now())
	return st, err
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

func (l *localOps) Close() error { return l.ob.Close() }

// remoteOps asks the running daemon.
type remoteOps struct {
	base string
	hc   *http.Client
}

func (r *remoteOps) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := r.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
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
	err := r.do(ctx, http.MethodPost, "/api/dlq/"+op, filterQuery(f), &res)
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

func (r *remoteOps) Close() error { return nil }

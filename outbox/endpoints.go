package outbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
)

// Why an endpoint is disabled.
const (
	DisabledByGone     = "410 Gone"
	DisabledByOperator = "operator"
)

// EndpointState is what the file keeps about an endpoint besides its queue.
type EndpointState struct {
	Name string `json:"name"`
	// URL is where the endpoint delivered when it was last configured,
	// without secrets.
	URL string `json:"url,omitempty"`
	// AddedAt and AddedPos say when the endpoint was registered: it gets the
	// events stored after that.
	AddedAt  time.Time       `json:"added_at"`
	AddedPos change.Position `json:"added_pos"`

	// OrphanedAt, when set, says the endpoint left the configuration then,
	// at stored position OrphanedPos: its queue and dead letters are kept,
	// nothing is sent and nothing new is queued for it until it comes back.
	OrphanedAt  time.Time       `json:"orphaned_at,omitzero"`
	OrphanedPos change.Position `json:"orphaned_pos,omitempty"`

	Disabled       bool      `json:"disabled,omitempty"`
	DisabledBy     string    `json:"disabled_by,omitempty"` // DisabledByGone or DisabledByOperator
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`

	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Orphaned reports whether the endpoint was left out of the last
// subscriptions (the configuration the daemon last ran with).
func (st EndpointState) Orphaned() bool { return !st.OrphanedAt.IsZero() }

// EndpointStatus is an endpoint's state and queue, for `status` and metrics.
type EndpointStatus struct {
	EndpointState
	Depth       int64     // pending entries
	Oldest      time.Time // commit time of the oldest pending event; zero when none
	DeadLetters int64
}

// ErrSubscribed is wrapped by Forget's error for an endpoint that is in
// the subscriptions (configured): only an orphaned endpoint is forgotten.
var ErrSubscribed = errors.New("is in the configuration")

// SetSubscriptions tells the outbox which endpoints exist and what each
// wants. A new name is registered and gets the events stored from now on.
// A registered endpoint missing from subs is orphaned, never dropped: its
// queue, dead letters and state are kept, nothing new is queued for it (it
// has no Wants), and a WARN line says so with what it holds; when a later
// call names it again, its queue resumes. Only Forget drops an endpoint.
// Append fails until this is first called.
func (o *Outbox) SetSubscriptions(ctx context.Context, subs []Subscription) error {
	keep := make(map[string]bool, len(subs))
	for _, s := range subs {
		if s.Name == "" || len(s.Name) > 200 {
			return fmt.Errorf("outbox: endpoint name %q: want 1-200 bytes", s.Name)
		}
		if keep[s.Name] {
			return fmt.Errorf("outbox: endpoint %q subscribed twice", s.Name)
		}
		keep[s.Name] = true
	}
	subs = append([]Subscription(nil), subs...)
	// Appends queued after the change are written with the new
	// subscriptions. The committer answers every queued request, also at
	// Close; if ctx ends first (a disk that hangs), the caller goes on and
	// the change is applied, in order, when the committer gets to it.
	done, err := o.enqueue(ctx, func(g *group) error {
		now := time.Now().UTC()
		for _, s := range subs {
			if g.endpoint(s.Name) == nil {
				if err := g.addEndpoint(s, now); err != nil {
					return err
				}
				continue
			}
			if err := g.resubscribe(s); err != nil {
				return err
			}
		}
		left, err := g.registeredExcept(keep)
		if err != nil {
			return err
		}
		for _, name := range left {
			if err := g.orphan(name, now); err != nil {
				return err
			}
		}
		g.newSubs = &subs
		return nil
	})
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("outbox: changing the subscriptions: %w (the change is queued and may still be applied)", ctx.Err())
	}
}

func (g *group) addEndpoint(s Subscription, now time.Time) error {
	root, err := g.epRoot.CreateBucket([]byte(s.Name))
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", s.Name, err)
	}
	eb := &endpointBuckets{root: root}
	if eb.pending, err = root.CreateBucket(bucketPending); err != nil {
		return err
	}
	if eb.dead, err = root.CreateBucket(bucketDead); err != nil {
		return err
	}
	if err := g.writeState(root, EndpointState{Name: s.Name, URL: s.URL, AddedAt: now, AddedPos: g.stored}); err != nil {
		return err
	}
	g.eb[s.Name] = eb
	g.delta(s.Name)
	g.o.log.Info("endpoint added: it gets the events stored from now on", "endpoint", s.Name, "position", g.stored.String())
	return nil
}

// state is an endpoint's state as this group sees it.
func (g *group) state(name string, eb *endpointBuckets) (EndpointState, error) {
	if st, ok := g.newStates[name]; ok {
		return st, nil
	}
	if st, ok := g.o.c.states[name]; ok {
		return st, nil
	}
	return readState(eb.root, name)
}

// resubscribe updates a registered endpoint named again: its URL, and, if
// it was orphaned, its return.
func (g *group) resubscribe(s Subscription) error {
	eb := g.endpoint(s.Name)
	st, err := g.state(s.Name, eb)
	if err != nil {
		return err
	}
	if st.URL == s.URL && !st.Orphaned() {
		return nil
	}
	if st.Orphaned() {
		depth, dead := g.o.counts(s.Name)
		attrs := []any{"endpoint", s.Name, "pending", depth, "dead_letters", dead,
			"orphaned_since", st.OrphanedAt.Format(time.RFC3339)}
		if g.stored > st.OrphanedPos {
			attrs = append(attrs, "not_queued_after", st.OrphanedPos.String(), "not_queued_until", g.stored.String())
		}
		g.o.log.Info("endpoint is back in the configuration: its queue resumes "+
			"(events stored while it was out of the configuration were not queued for it)", attrs...)
		st.OrphanedAt, st.OrphanedPos = time.Time{}, 0
	}
	st.URL = s.URL
	return g.writeState(eb.root, st)
}

// orphan keeps an endpoint that left the configuration, and says so.
func (g *group) orphan(name string, now time.Time) error {
	eb := g.endpoint(name)
	st, err := g.state(name, eb)
	if err != nil {
		return err
	}
	if !st.Orphaned() {
		st.OrphanedAt, st.OrphanedPos = now, g.stored
		if err := g.writeState(eb.root, st); err != nil {
			return err
		}
	}
	depth, dead := g.o.counts(name)
	g.o.log.Warn("endpoint is not in the configuration: its queue and dead letters are kept (orphaned); "+
		"nothing is sent to it and nothing new is queued for it. To resume it, put an endpoint with this name back "+
		"in the configuration (an endpoint without a name is named after its url; give the one that owned "+
		"this queue `name: "+name+"`); to drop its events, run `deskhook endpoints forget "+name+"`",
		"endpoint", name, "pending", depth, "dead_letters", dead, "url", st.URL,
		"orphaned_since", st.OrphanedAt.Format(time.RFC3339))
	return nil
}

// counts are an endpoint's committed queue depth and dead letters.
func (o *Outbox) counts(name string) (depth, dead int64) {
	o.epMu.RLock()
	defer o.epMu.RUnlock()
	if c := o.eps[name]; c != nil {
		return c.depth.Load(), c.dead.Load()
	}
	return 0, 0
}

// Forgotten is what Forget dropped.
type Forgotten struct {
	Pending     int `json:"pending"`
	DeadLetters int `json:"dead_letters"`
}

// Forget drops an orphaned endpoint: its queue, its dead letters, its
// state, and the events no other endpoint needs. An endpoint in the
// current subscriptions is refused (ErrSubscribed): remove it from the
// configuration first. An Outbox that was never subscribed (the CLI's,
// while no daemon runs) cannot tell; its caller checks the configuration.
func (o *Outbox) Forget(ctx context.Context, name string) (Forgotten, error) {
	var f Forgotten
	err := o.do(ctx, func(g *group) error {
		if g.endpoint(name) == nil {
			return fmt.Errorf("outbox: endpoint %q: %w", name, ErrNotFound)
		}
		for _, s := range g.subs {
			if s.Name == name {
				return fmt.Errorf("outbox: endpoint %q %w: it is not orphaned; to drop its queue, "+
					"remove it from the configuration, reload (SIGHUP), then forget it", name, ErrSubscribed)
			}
		}
		var err error
		f, err = g.dropEndpoint(name)
		return err
	})
	if err != nil {
		return Forgotten{}, err
	}
	o.log.Info("endpoint forgotten: its queue, dead letters and state are dropped",
		"endpoint", name, "pending", f.Pending, "dead_letters", f.DeadLetters)
	return f, nil
}

func (g *group) dropEndpoint(name string) (Forgotten, error) {
	eb := g.endpoint(name)
	counts := [2]int{}
	for i, b := range []*bolt.Bucket{eb.pending, eb.dead} {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := g.release(append([]byte(nil), k...)); err != nil {
				return Forgotten{}, err
			}
			counts[i]++
		}
	}
	if err := g.epRoot.DeleteBucket([]byte(name)); err != nil {
		return Forgotten{}, err
	}
	g.eb[name] = nil
	delete(g.deltas, name)
	g.dropped = append(g.dropped, name)
	return Forgotten{Pending: counts[0], DeadLetters: counts[1]}, nil
}

// Endpoint returns an endpoint's persisted state.
func (o *Outbox) Endpoint(name string) (EndpointState, error) {
	var st EndpointState
	err := o.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketEndpoints).Bucket([]byte(name))
		if root == nil {
			return fmt.Errorf("outbox: endpoint %q: %w", name, ErrNotFound)
		}
		var err error
		st, err = readState(root, name)
		return err
	})
	return st, err
}

// Endpoints returns every registered endpoint's state and queue, by name.
func (o *Outbox) Endpoints() ([]EndpointStatus, error) {
	var out []EndpointStatus
	err := o.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		eps := tx.Bucket(bucketEndpoints)
		return eps.ForEachBucket(func(name []byte) error {
			root := eps.Bucket(name)
			st, err := readState(root, string(name))
			if err != nil {
				return err
			}
			s := EndpointStatus{EndpointState: st}
			if k, _ := root.Bucket(bucketPending).Cursor().First(); k != nil {
				s.Oldest, _, _, _ = eventHeader(events.Get(k))
			}
			o.epMu.RLock()
			if c := o.eps[string(name)]; c != nil {
				s.Depth, s.DeadLetters = c.depth.Load(), c.dead.Load()
			}
			o.epMu.RUnlock()
			out = append(out, s)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Disable stops deliveries to an endpoint until Enable; its events keep
// queueing. by is DisabledByGone or DisabledByOperator. An endpoint already
// disabled keeps its first reason.
func (o *Outbox) Disable(ctx context.Context, name, by, reason string) error {
	return o.setEnabled(ctx, name, func(st *EndpointState) {
		if st.Disabled {
			return
		}
		st.Disabled, st.DisabledBy, st.DisabledReason, st.DisabledAt = true, by, reason, time.Now().UTC()
	})
}

// Enable resumes deliveries to a disabled endpoint.
func (o *Outbox) Enable(ctx context.Context, name string) error {
	return o.setEnabled(ctx, name, func(st *EndpointState) {
		st.Disabled, st.DisabledBy, st.DisabledReason, st.DisabledAt = false, "", "", time.Time{}
	})
}

func (o *Outbox) setEnabled(ctx context.Context, name string, change func(*EndpointState)) error {
	err := o.do(ctx, func(g *group) error {
		if g.endpoint(name) == nil {
			return fmt.Errorf("outbox: endpoint %q: %w", name, ErrNotFound)
		}
		g.statusOf(name).stateChange = change
		g.notice(name, noticeFlags{state: true})
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("outbox: endpoint %q: %w", name, err)
	}
	return err
}

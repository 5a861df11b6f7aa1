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
	// AddedAt and AddedPos say when the endpoint was registered: it gets the
	// events stored after that.
	AddedAt  time.Time       `json:"added_at"`
	AddedPos change.Position `json:"added_pos"`

	Disabled       bool      `json:"disabled,omitempty"`
	DisabledBy     string    `json:"disabled_by,omitempty"` // DisabledByGone or DisabledByOperator
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`

	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// EndpointStatus is an endpoint's state and queue, for `status` and metrics.
type EndpointStatus struct {
	EndpointState
	Depth       int64     // pending entries
	Oldest      time.Time // commit time of the oldest pending event; zero when none
	DeadLetters int64
}

// SetSubscriptions tells the outbox which endpoints exist and what each
// wants. A new name is registered and gets the events stored from now on;
// a registered endpoint missing from subs has its queue and dead letters
// dropped, with a log line. Append fails until this is first called.
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
			if g.endpoint(s.Name) != nil {
				continue
			}
			if err := g.addEndpoint(s.Name, now); err != nil {
				return err
			}
		}
		var gone []string
		err := g.epRoot.ForEachBucket(func(name []byte) error {
			if !keep[string(name)] {
				gone = append(gone, string(name))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range gone {
			if err := g.dropEndpoint(name); err != nil {
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

func (g *group) addEndpoint(name string, now time.Time) error {
	root, err := g.epRoot.CreateBucket([]byte(name))
	if err != nil {
		return fmt.Errorf("endpoint %q: %w", name, err)
	}
	eb := &endpointBuckets{root: root}
	if eb.pending, err = root.CreateBucket(bucketPending); err != nil {
		return err
	}
	if eb.dead, err = root.CreateBucket(bucketDead); err != nil {
		return err
	}
	if err := g.writeState(root, EndpointState{Name: name, AddedAt: now, AddedPos: g.stored}); err != nil {
		return err
	}
	g.eb[name] = eb
	g.delta(name)
	g.o.log.Info("endpoint added: it gets the events stored from now on", "endpoint", name, "position", g.stored.String())
	return nil
}

func (g *group) dropEndpoint(name string) error {
	eb := g.endpoint(name)
	counts := [2]int{}
	for i, b := range []*bolt.Bucket{eb.pending, eb.dead} {
		c := b.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := g.release(append([]byte(nil), k...)); err != nil {
				return err
			}
			counts[i]++
		}
	}
	if err := g.epRoot.DeleteBucket([]byte(name)); err != nil {
		return err
	}
	g.eb[name] = nil
	delete(g.deltas, name)
	g.dropped = append(g.dropped, name)
	g.o.log.Warn("endpoint removed from the configuration: its queue is dropped",
		"endpoint", name, "pending", counts[0], "dead_letters", counts[1])
	return nil
}

// Endpoint returns an endpoint's persisted state.
func (o *Outbox) Endpoint(name string) (EndpointState, error) {
	var st EndpointState
	err := o.db.View(func(tx *bolt.Tx) error {
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
	err := o.db.View(func(tx *bolt.Tx) error {
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

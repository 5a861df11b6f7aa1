package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/outbox"
)

// Options are the sender's dependencies and tuning.
type Options struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: no metrics
	Version    string                // sent as User-Agent: deskhook/<Version>
	// Window bounds the pending entries each endpoint holds in memory
	// (default 4096); the rest stay in the outbox until there is room.
	Window int
	// ShutdownGrace is how long Run waits for requests in flight after its
	// context ends before cancelling them (default 5s).
	ShutdownGrace time.Duration
}

// Sender delivers the outbox's queues to the configured endpoints.
type Sender struct {
	ob   Store
	opts Options
	log  *slog.Logger
	m    *metrics

	mu        sync.Mutex
	cfg       Config
	endpoints map[string]*endpoint
	runCtx    context.Context // set while Run runs
	runCancel context.CancelFunc
	runDone   chan struct{}
	closed    bool

	hooks testHooks // set by tests before Run
}

// testHooks let tests force the interleavings that matter; all nil in
// production.
type testHooks struct {
	// afterRead runs in an endpoint's loader after it read a page of the
	// queue and before the dispatcher gets it.
	afterRead func(endpoint string)
	// round runs at the start of each round of an endpoint's dispatcher
	// loop, in its goroutine (to count wake-ups, to look at its state).
	round func(ep *endpoint)
}

// New validates cfg, builds the endpoints' clients and subscribes them to
// the store, so events appended from now on are queued for them. Call it
// before the source starts appending; Run starts the deliveries.
func New(cfg Config, ob Store, opts Options) (*Sender, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return nil, fmt.Errorf("sender: invalid configuration:\n%w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Window <= 0 {
		opts.Window = 4096
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	s := &Sender{ob: ob, opts: opts, log: opts.Logger, cfg: cfg,
		endpoints: map[string]*endpoint{}}
	s.m = newMetrics(opts.Registerer, s)
	for _, e := range cfg.Endpoints {
		ep, err := newEndpoint(s, e)
		if err != nil {
			s.m.unregister()
			return nil, fmt.Errorf("sender: %w", err)
		}
		s.endpoints[e.Name] = ep
	}
	if err := ob.SetSubscriptions(context.Background(), s.subscriptions()); err != nil {
		s.m.unregister()
		return nil, fmt.Errorf("sender: subscribing endpoints: %w", err)
	}
	return s, nil
}

func (s *Sender) subscriptions() []outbox.Subscription {
	subs := make([]outbox.Subscription, 0, len(s.cfg.Endpoints))
	for _, e := range s.cfg.Endpoints {
		subs = append(subs, s.endpoints[e.Name].subscription())
	}
	return subs
}

// Run delivers until ctx ends, then lets requests in flight finish (up to
// Options.ShutdownGrace) and returns nil.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("sender: Run after Close")
	}
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("sender: already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.runCtx, s.runCancel, s.runDone = ctx, cancel, make(chan struct{})
	defer close(s.runDone)
	for _, ep := range s.endpoints {
		if ep.cfg.IsEnabled() {
			ep.start(ctx)
		}
	}
	s.log.Info("sender started", "endpoints", len(s.endpoints))
	s.mu.Unlock()

	<-ctx.Done()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAll(s.endpoints)
	s.runCtx, s.runCancel = nil, nil
	s.log.Info("sender stopped")
	return nil
}

// stopAll stops endpoints concurrently, so their grace periods overlap.
func (s *Sender) stopAll(eps map[string]*endpoint) {
	var wg sync.WaitGroup
	for _, ep := range eps {
		wg.Go(ep.stop)
	}
	wg.Wait()
}

// Reload applies a new list of endpoints (on SIGHUP): added endpoints get
// the events stored from now on (one that was orphaned resumes its queue),
// removed ones stop and are orphaned (the store keeps their queues and dead
// letters; nothing new is queued for them), changed ones restart with the
// new settings and keep their queues, unchanged ones are not touched.
// Endpoints are matched by name, never by their place in the list. An
// invalid list changes nothing.
func (s *Sender) Reload(ctx context.Context, endpoints []Endpoint) error {
	cfg := s.currentConfig()
	cfg.Endpoints = endpoints
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return fmt.Errorf("sender: invalid configuration, nothing changed:\n%w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("sender: Reload after Close")
	}
	next := map[string]*endpoint{}
	stop := map[string]*endpoint{}
	var added, changed, removed []string
	for _, e := range cfg.Endpoints {
		old := s.endpoints[e.Name]
		if old != nil && reflect.DeepEqual(old.cfg, e) {
			next[e.Name] = old
			continue
		}
		ep, err := newEndpoint(s, e)
		if err != nil {
			return fmt.Errorf("sender: nothing changed: %w", err)
		}
		next[e.Name] = ep
		if old != nil {
			stop[e.Name] = old
			changed = append(changed, e.Name)
		} else {
			added = append(added, e.Name)
		}
	}
	for name, old := range s.endpoints {
		if next[name] == nil {
			stop[name] = old
			removed = append(removed, name)
		}
	}
	s.stopAll(stop)
	for _, old := range stop {
		old.transport.CloseIdleConnections()
	}
	// Results of the stopped endpoints' last requests are committed before
	// their successors read the queues.
	if err := s.ob.Flush(ctx); err != nil {
		s.log.Error("flushing the outbox during reload", "err", err)
	}
	s.cfg, s.endpoints = cfg, next
	err := s.ob.SetSubscriptions(ctx, s.subscriptions())
	if s.runCtx != nil {
		for _, name := range append(added, changed...) {
			if ep := next[name]; ep.cfg.IsEnabled() {
				ep.start(s.runCtx)
			}
		}
	}
	for _, name := range removed {
		s.m.forget(name)
	}
	s.log.Info("endpoints reloaded", "added", added, "changed", changed, "removed_orphaned", removed)
	if err != nil {
		return fmt.Errorf("sender: subscribing endpoints: %w", err)
	}
	return nil
}

func (s *Sender) currentConfig() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Close stops deliveries if Run is still running, unregisters the metrics
// and closes idle connections. The outbox stays open (its owner closes it).
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel, done := s.runCancel, s.runDone
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopAll(s.endpoints)
	for _, ep := range s.endpoints {
		ep.transport.CloseIdleConnections()
	}
	s.m.unregister()
	return nil
}

package sender

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/sync/semaphore"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// endpoint delivers one endpoint's queue: a dispatcher goroutine that owns
// the in-memory window of pending entries, and max_in_flight workers that
// make the requests.
type endpoint struct {
	s         *Sender
	cfg       Endpoint
	name      string
	log       *slog.Logger
	client    *retryablehttp.Client
	transport *http.Transport
	secrets   [][]byte
	headers   http.Header
	template  *http.Request // see requestTemplate
	// userAgent is a header value shared by every request.
	userAgent []string
	window    int
	m         endpointMetrics
	// The sender's settings this endpoint uses, copied: a reload replaces
	// the sender's config while dispatchers run.
	retryAfterCap      time.Duration
	failureLogInterval time.Duration

	// Memory bounds in bytes (memory.go).
	windowBytes, renderBytes int
	renderBudget             *semaphore.Weighted

	in   inbox
	wake chan struct{}

	// The store is read by a loader goroutine, so the dispatcher keeps
	// dispatching while a page is read.
	reads chan readReq
	pages chan readResp

	cancel  context.CancelFunc
	stopped chan struct{}

	d dispatchState // the dispatcher goroutine's alone
	f failureLog    // the dispatcher goroutine's alone
}

type dispatchState struct {
	tickets    map[int64]*ticketQ
	ready      readyQueue
	timers     timerHeap
	loaded     int             // entries in memory, in flight included
	cursor     outbox.Key      // the store was read up to here
	committed  change.Position // the stored position as of the last notice
	needScan   bool            // the store may hold entries after cursor
	rescan     map[int64]*ticketQ
	lastRescan time.Time
	retryRead  time.Time // after a failed read of the store
	free       freeLists
	reading    bool // a read is with the loader
	gen        int  // bumped by reset: pages read before are stale
	inFlight   map[outbox.Key]bool
	// stale holds the keys in flight at the last reset: they stay in memory
	// (as heads, or done), so rereading them from the store, where their
	// outcome may not be committed yet, must not load them again.
	stale     map[outbox.Key]bool
	disabled  bool
	holdUntil time.Time // Retry-After
	results   []outbox.Result

	// loadedBytes: payload bytes the window holds (memory.go).
	loadedBytes int
}

type job struct {
	t *ticketQ
	e *entry
}

type jobDone struct {
	job
	res attemptResult
}

const rescanEvery = 20 * time.Millisecond

func newEndpoint(s *Sender, cfg Endpoint) (*endpoint, error) {
	client, tr, err := newClient(&cfg)
	if err != nil {
		return nil, err
	}
	secrets, err := parseSecrets(string(cfg.Secret))
	if err != nil {
		return nil, err
	}
	headers := http.Header{}
	for k, v := range cfg.Headers {
		headers.Set(k, v)
	}
	template, err := requestTemplate(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: url: %w", cfg.Name, err)
	}
	ep := &endpoint{
		s:         s,
		cfg:       cfg,
		name:      cfg.Name,
		log:       s.log.With("endpoint", cfg.Name),
		client:    client,
		transport: tr,
		secrets:   secrets,
		headers:   headers,
		template:  template,
		userAgent: []string{"deskhook/" + s.opts.Version},
		window:    s.opts.Window,
		m:         s.m.forEndpoint(cfg.Name),
		wake:      make(chan struct{}, 1),

		retryAfterCap:      s.cfg.RetryAfterCap,
		failureLogInterval: s.cfg.FailureLogInterval,
	}
	client.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, try int) {
		if try > 0 {
			ep.m.transportRetry()
		}
	}
	ep.windowBytes, ep.renderBytes = s.cfg.WindowBytes, s.cfg.RenderBytes
	ep.renderBudget = newRenderBudget(ep.renderBytes)
	return ep, nil
}

// subscription is what the outbox needs to fan events out to ep.
func (ep *endpoint) subscription() outbox.Subscription {
	sub := outbox.Subscription{Name: ep.name, URL: RedactURL(ep.cfg.URL)}
	if !ep.cfg.IsEnabled() {
		return sub
	}
	sub.Wants = wants(ep.cfg)
	sub.Notify = ep.notify
	return sub
}

func wants(cfg Endpoint) func(*mapping.Event) bool {
	events := map[string]bool{}
	for _, e := range cfg.Events {
		events[e] = true
	}
	set := func(ids []int64) map[int64]bool {
		if len(ids) == 0 {
			return nil
		}
		m := make(map[int64]bool, len(ids))
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	depts, sources := set(cfg.Filter.Departments), set(cfg.Filter.Sources)
	return func(e *mapping.Event) bool {
		return events[e.Type] && (depts == nil || depts[e.DeptID]) && (sources == nil || sources[e.SourceID])
	}
}

func (ep *endpoint) start(ctx context.Context) {
	ctx, ep.cancel = context.WithCancel(ctx)
	ep.stopped = make(chan struct{})
	go ep.run(ctx)
}

// stop ends the dispatcher after in-flight requests finish (or the grace
// period ends) and waits for it.
func (ep *endpoint) stop() {
	if ep.cancel != nil {
		ep.cancel()
		<-ep.stopped
		ep.cancel = nil
	}
}

func (ep *endpoint) run(ctx context.Context) {
	defer close(ep.stopped)
	d := &ep.d
	*d = dispatchState{
		tickets:  map[int64]*ticketQ{},
		rescan:   map[int64]*ticketQ{},
		inFlight: map[outbox.Key]bool{},
		needScan: true,
	}
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	ep.reads, ep.pages = make(chan readReq, 1), make(chan readResp, 1)
	var loader sync.WaitGroup
	loader.Go(ep.load)
	defer func() {
		close(ep.reads)
		loader.Wait()
	}()
	work := make(chan job, ep.cfg.MaxInFlight)
	done := make(chan jobDone, ep.cfg.MaxInFlight)
	var workers sync.WaitGroup
	for range ep.cfg.MaxInFlight {
		workers.Go(func() {
			w := &worker{}
			for j := range work {
				done <- jobDone{job: j, res: ep.deliver(reqCtx, w, j.e)}
			}
		})
	}
	defer func() {
		close(work)
		workers.Wait()
	}()

	ep.refreshState()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		began := time.Now()
		if h := ep.s.hooks.round; h != nil {
			h(ep)
		}
		ep.takeInbox()
		ep.fill()
		ep.dispatch(work)
		ep.flushResults()
		timer.Reset(ep.nextWake(began))
		select {
		case <-ctx.Done():
			ep.drain(done, cancelReqs)
			return
		case <-ep.wake:
		case <-timer.C:
		case p := <-ep.pages:
			ep.applyPage(p)
		case r := <-done:
			ep.complete(r)
			for more := true; more; { // take every finished request at once
				select {
				case r := <-done:
					ep.complete(r)
				default:
					more = false
				}
			}
		}
	}
}

// drain waits for in-flight requests, up to the grace period, then cancels
// them; results that came back are recorded.
func (ep *endpoint) drain(done chan jobDone, cancelReqs context.CancelFunc) {
	grace := time.NewTimer(ep.s.opts.ShutdownGrace)
	defer grace.Stop()
	for len(ep.d.inFlight) > 0 {
		select {
		case r := <-done:
			ep.complete(r)
		case <-grace.C:
			ep.log.Warn("cancelling requests still in flight at shutdown", "in_flight", len(ep.d.inFlight))
			cancelReqs()
		}
	}
	ep.flushResults()
}

func (ep *endpoint) nextWake(began time.Time) time.Duration {
	d := &ep.d
	var next time.Time
	consider := func(t time.Time) {
		// A time already due when this round began was due for every step
		// of it: what the round could do about it is done, and what it
		// could not (a full window, a store read out, a disabled endpoint)
		// waits for a completion, a page or a notice, which wake the loop.
		// Waking for it again would spin.
		if t.After(began) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(d.timers.nextDue())
	if d.ready.len() > 0 {
		consider(d.holdUntil)
	}
	if len(d.rescan) > 0 {
		consider(d.lastRescan.Add(rescanEvery))
	}
	if d.needScan {
		consider(d.retryRead)
	}
	if next.IsZero() {
		return time.Hour
	}
	return max(time.Until(next), 0)
}

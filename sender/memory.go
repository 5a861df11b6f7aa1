package sender

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// Memory bounds, in bytes, what each endpoint holds of the events it
// delivers (issue 12, point 7). Events can be of any size (a reply carries
// its ticket's first thread; either may be a mail of megabytes), so counts
// alone bound nothing.
//
//   - The window holds at most WindowBytes of payloads. Entries whose
//     payload does not fit are held without it and read from the store when
//     their turn comes; an entry waiting for a retry lets go of its payload
//     too, so a large event that keeps failing never fills the window and
//     holds back other tickets.
//   - Requests being rendered and sent hold at most RenderBytes: the body
//     (for faveo-form, built from the payload) and, for an entry read when
//     its turn came, its payload. A request larger than the bound still
//     goes, alone.
//
// An endpoint's memory for events is thus about WindowBytes + RenderBytes.
type Memory struct {
	// WindowBytes bounds the payloads each endpoint holds in its window.
	// 0 means DefaultWindowBytes.
	WindowBytes int `yaml:"window_bytes"`
	// RenderBytes bounds the requests each endpoint renders and sends at
	// once, counted as the bodies and payloads they hold.
	// 0 means DefaultRenderBytes.
	RenderBytes int `yaml:"render_bytes"`
}

// Defaults of the memory bounds.
const (
	DefaultWindowBytes = 16 << 20
	DefaultRenderBytes = 16 << 20
	// MinMemoryBytes is the least either bound may be.
	MinMemoryBytes = 64 << 10
)

func (m *Memory) setDefaults() {
	if m.WindowBytes == 0 {
		m.WindowBytes = DefaultWindowBytes
	}
	if m.RenderBytes == 0 {
		m.RenderBytes = DefaultRenderBytes
	}
}

func (m Memory) validate(at func(string) string) error {
	var errs []error
	for _, f := range []struct {
		key string
		v   int
	}{{"window_bytes", m.WindowBytes}, {"render_bytes", m.RenderBytes}} {
		if f.v < MinMemoryBytes {
			errs = append(errs, fmt.Errorf("%s: must be at least %d (got %d)", at(f.key), MinMemoryBytes, f.v))
		}
	}
	return errors.Join(errs...)
}

// roomBytes is how many more payload bytes the window takes.
func (ep *endpoint) roomBytes() int { return ep.windowBytes - ep.d.loadedBytes }

// payloadBudget is what a read of the store may bring in payloads (see
// outbox.PendingQuery.MaxBytes): what the window has room for, or none.
func (ep *endpoint) payloadBudget() int {
	if room := ep.roomBytes(); room > 0 {
		return room
	}
	return -1
}

// holds reports whether e's payload is in the window (counted in
// loadedBytes) rather than left in the store.
func (e *entry) holds() bool { return e.ev.Payload != nil }

// forget drops e's payload from the window, if it holds it.
func (ep *endpoint) forget(e *entry) {
	if e.holds() {
		ep.d.loadedBytes -= e.size
	}
}

// park lets go of the payload of an entry that waits for a retry: it is
// read from the store again when the retry is due.
func (ep *endpoint) park(e *entry) {
	if e.holds() && e.size > 0 {
		ep.forget(e)
		e.ev.Payload = nil
	}
}

// verdictVanished: the entry is no longer pending in the store (an
// operator dropped the endpoint's queue while it was in the window):
// nothing to send, nothing to record.
const verdictVanished verdict = 0xff

// deliver makes one attempt at e within the endpoint's render budget: it
// reserves what the request will hold, reads the payload if the window
// does not hold it, and sends.
func (ep *endpoint) deliver(ctx context.Context, w *worker, e *entry) attemptResult {
	ev := e.ev
	lazy := !e.holds() && e.size > 0
	need := 0
	if lazy {
		// The body's size is known only once the payload is read: reserve
		// what a form can take at most (every byte %XX-encoded, plus key
		// paths), and give back the difference once it is known.
		need = e.size
		if ep.cfg.Format == mapping.FormatForm {
			need += 3*e.size + 64<<10
		}
	} else if n, err := mapping.RenderSize(ep.cfg.Format, ev.Payload); err == nil {
		need = n
	}
	need = min(need, ep.renderBytes)
	if need > 0 {
		if err := ep.renderBudget.Acquire(ctx, int64(need)); err != nil {
			return attemptResult{verdict: verdictCanceled}
		}
		defer func() { ep.renderBudget.Release(int64(need)) }()
	}
	if lazy {
		payload, res, ok := ep.readPayload(e)
		if !ok {
			return res
		}
		loaded := *ev
		loaded.Payload = payload
		ev = &loaded
		w.own = ev
		defer func() { w.own = nil }()
		if n, err := mapping.RenderSize(ep.cfg.Format, payload); err == nil && len(payload)+n < need {
			ep.renderBudget.Release(int64(need - len(payload) - n))
			need = len(payload) + n
		}
	}
	return ep.send(ctx, w, ev)
}

// renderBody renders ev's payload for the wire. The payload of an event
// read for this request alone is let go once the body is built: only the
// body is sent.
func (ep *endpoint) renderBody(w *worker, ev *mapping.Event) ([]byte, string, error) {
	body, contentType, err := mapping.Render(ep.cfg.Format, ev.Payload)
	if ev == w.own && ep.cfg.Format != mapping.FormatJSON {
		ev.Payload = nil
	}
	return body, contentType, err
}

// readPayload reads the payload of e from the store.
func (ep *endpoint) readPayload(e *entry) ([]byte, attemptResult, bool) {
	page, err := ep.s.ob.Pending(ep.name, outbox.PendingQuery{After: prevKey(e.key), Until: e.key, Max: 1})
	if err != nil {
		ep.log.Error("reading an event's payload from the outbox", "id", e.ev.ID, "err", err)
		return nil, attemptResult{verdict: verdictFail, attempt: outbox.Attempt{At: time.Now(),
			Error: "reading the event from the store: " + err.Error()}}, false
	}
	if len(page.Deliveries) == 0 || page.Deliveries[0].Key != e.key || page.Deliveries[0].Event.Payload == nil {
		return nil, attemptResult{verdict: verdictVanished}, false
	}
	return page.Deliveries[0].Event.Payload, attemptResult{}, true
}

func newRenderBudget(n int) *semaphore.Weighted { return semaphore.NewWeighted(int64(n)) }

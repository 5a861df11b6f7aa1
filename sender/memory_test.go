package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// bigPayload is an event payload of about size bytes.
type bigPayload struct {
	Event  string `json:"event"`
	Ticket string `json:"ticket"`
	Seq    string `json:"seq"`
	Body   string `json:"body"`
}

// bigTxn appends one transaction with one event of about size bytes for
// ticket.
func (h *harness) bigTxn(ticket int64, size int) mapping.Event {
	h.t.Helper()
	h.mu.Lock()
	h.pos += 10
	pos := h.pos
	h.mu.Unlock()
	seq := fmt.Sprintf("%d.0", pos)
	body := strings.Repeat(seq+" <p>a &amp; b</p> ", size/20+1)[:size]
	p, _ := json.Marshal(bigPayload{Event: mapping.TicketReply, Ticket: fmt.Sprint(ticket), Seq: seq, Body: body})
	ev := mapping.Event{ID: mapping.EventID(pos, 0), Type: mapping.TicketReply, Pos: pos, CommitTime: time.Now(),
		TicketID: ticket, DeptID: 1, SourceID: 1, Payload: p}
	h.mu.Lock()
	h.evs[ev.ID] = ev
	h.mu.Unlock()
	if err := h.ob.Append(context.Background(), pos, true, []mapping.Event{ev}); err != nil {
		h.t.Fatal(err)
	}
	return ev
}

// windowWatch records, at every round of the dispatcher, the most payload
// bytes its window held.
type windowWatch struct{ most atomic.Int64 }

func (w *windowWatch) round(ep *endpoint) {
	if n := int64(ep.d.loadedBytes); n > w.most.Load() {
		w.most.Store(n)
	}
}

// TestWindowBytesBoundsThePayloadsHeld: with payloads far larger than
// window_bytes in all, the window holds at most window_bytes of them (the
// rest are read from the store when their turn comes); every event,
// the ones larger than the whole window too, arrives once with its body.
func TestWindowBytesBoundsThePayloadsHeld(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Default(testenv.Reply{Delay: 5 * time.Millisecond})
	ep := endpointTo("hook", r, "/")
	var watch windowWatch
	const windowBytes = 256 << 10
	cfg := Config{Endpoints: []Endpoint{ep}, Memory: Memory{WindowBytes: windowBytes, RenderBytes: 1 << 20}}
	h := newHarnessWith(t, cfg, Options{}, testHooks{round: watch.round})
	var evs []mapping.Event
	for i := range 40 {
		evs = append(evs, h.bigTxn(int64(i%7+1), 60<<10))
	}
	evs = append(evs, h.bigTxn(1, 1<<20), h.bigTxn(9, 2<<20)) // each larger than the window, one than the render budget
	for i := range 10 {
		evs = append(evs, h.bigTxn(int64(i%3+1), 60<<10))
	}
	waitDelivered(t, r, 30*time.Second, ids(evs)...)
	if most := watch.most.Load(); most > windowBytes || most == 0 {
		t.Errorf("the window held up to %d bytes of payloads, want some and at most %d", most, windowBytes)
	}
	checkBodies(t, h, r.Requests(), evs)
}

// checkBodies: every event arrived exactly once with 2xx, with its body.
func checkBodies(t *testing.T, h *harness, reqs []testenv.Request, evs []mapping.Event) {
	t.Helper()
	n := map[string]int{}
	for _, req := range reqs {
		if req.Reply.StatusCode() != http.StatusOK {
			continue
		}
		id := req.Header.Get("webhook-id")
		n[id]++
		h.mu.Lock()
		ev, ok := h.evs[id]
		h.mu.Unlock()
		if !ok || string(req.Body) != string(ev.Payload) {
			t.Errorf("event %s arrived with a body of %d bytes, not its payload of %d", id, len(req.Body), len(ev.Payload))
		}
	}
	for _, ev := range evs {
		if n[ev.ID] != 1 {
			t.Errorf("event %s delivered %d times, want once", ev.ID, n[ev.ID])
		}
	}
}

// inFlightServer is a real HTTP server that records the bodies it is
// receiving at once, and each event's body.
type inFlightServer struct {
	*httptest.Server
	mu       sync.Mutex
	now      int             // body bytes of the requests being answered
	most     int             // the most body bytes of two requests or more at once
	alone    map[string]bool // webhook-id → nothing else was in flight while it was
	bodies   map[string][]byte
	fail     func(id string, body []byte) bool
	attempts map[string]int
}

func newInFlightServer(t *testing.T) *inFlightServer {
	s := &inFlightServer{alone: map[string]bool{}, bodies: map[string][]byte{}, attempts: map[string]int{}}
	inFlight := 0
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get("webhook-id")
		s.mu.Lock()
		s.now += len(body)
		inFlight++
		if inFlight >= 2 {
			s.most = max(s.most, s.now)
		}
		s.alone[id] = inFlight == 1
		s.attempts[id]++
		fail := s.fail != nil && s.fail(id, body)
		s.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		s.mu.Lock()
		s.now -= len(body)
		inFlight--
		if s.alone[id] && inFlight > 0 {
			s.alone[id] = false
		}
		if !fail {
			s.bodies[id] = body
		}
		s.mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *inFlightServer) delivered(ids []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.bodies[id] == nil {
			return false
		}
	}
	return true
}

func (s *inFlightServer) wait(t *testing.T, timeout time.Duration, ids []string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !s.delivered(ids); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not every event was delivered within %s", timeout)
		}
	}
}

// TestRenderBytesBoundsTheRequestsInFlight: with max_in_flight 8 and form
// bodies of some 130 KB, render_bytes 512 KiB lets only a few be rendered
// and sent at once; a body larger than all of it goes alone; every body
// arrives as PHP would read it.
func TestRenderBytesBoundsTheRequestsInFlight(t *testing.T) {
	srv := newInFlightServer(t)
	ep := Endpoint{Name: "hook", URL: srv.URL + "/", Format: mapping.FormatForm, Events: mapping.AllEvents,
		Retry: Retry{Schedule: fast}, MaxInFlight: 8, Timeout: 10 * time.Second}
	const renderBytes = 512 << 10
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}, Memory: Memory{WindowBytes: 8 << 20, RenderBytes: renderBytes}}, Options{})
	var evs []mapping.Event
	for i := range 24 {
		evs = append(evs, h.bigTxn(int64(i+1), 100<<10))
	}
	large := h.bigTxn(100, 1<<20)
	evs = append(evs, large)
	srv.wait(t, 30*time.Second, ids(evs))
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.most > renderBytes {
		t.Errorf("the receiver got %d body bytes of several requests at once, over render_bytes %d", srv.most, renderBytes)
	}
	if srv.most < 2*130<<10 {
		t.Errorf("at most %d body bytes at once: requests were not sent concurrently at all", srv.most)
	}
	if !srv.alone[large.ID] {
		t.Errorf("the body larger than render_bytes was sent alongside others")
	}
	for _, ev := range evs {
		want, err := mapping.AppendForm(nil, ev.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if string(srv.bodies[ev.ID]) != string(want) {
			t.Errorf("event %s: body of %d bytes, want its form of %d", ev.ID, len(srv.bodies[ev.ID]), len(want))
		}
		if form, err := url.ParseQuery(string(srv.bodies[ev.ID])); err != nil || form.Get("ticket") != fmt.Sprint(ev.TicketID) {
			t.Errorf("event %s: body does not parse as its form (%v)", ev.ID, err)
		}
	}
}

// TestLargeFailingEventHoldsBackOnlyItsTicket: a large event that keeps
// failing lets go of its payload while it waits for its retries, so the
// window goes on with other tickets' events; once the receiver takes it,
// it arrives intact, and its ticket's later events after it, in order.
func TestLargeFailingEventHoldsBackOnlyItsTicket(t *testing.T) {
	srv := newInFlightServer(t)
	var failing atomic.Bool
	failing.Store(true)
	var bigID string
	srv.fail = func(id string, _ []byte) bool { return failing.Load() && id == bigID }
	ep := Endpoint{Name: "hook", URL: srv.URL + "/", Format: mapping.FormatJSON, Events: mapping.AllEvents,
		Retry: Retry{Schedule: slices.Repeat([]time.Duration{20 * time.Millisecond}, 1000)}, MaxInFlight: 4, Timeout: 10 * time.Second}
	var watch windowWatch
	const windowBytes = 300 << 10
	h := newHarnessWith(t, Config{Endpoints: []Endpoint{ep}, Memory: Memory{WindowBytes: windowBytes, RenderBytes: 1 << 20}},
		Options{}, testHooks{round: watch.round})
	srv.mu.Lock()
	big := h.bigTxn(1, 250<<10)
	bigID = big.ID
	srv.mu.Unlock()
	after := h.bigTxn(1, 10<<10)
	var others []mapping.Event
	for i := range 30 {
		others = append(others, h.bigTxn(int64(i%5+2), 50<<10))
	}
	srv.wait(t, 30*time.Second, ids(others))
	srv.mu.Lock()
	tries := srv.attempts[big.ID]
	srv.mu.Unlock()
	if tries < 2 {
		t.Fatalf("the large event was tried %d times while the others went: the test did not keep it failing", tries)
	}
	failing.Store(false)
	srv.wait(t, 30*time.Second, []string{big.ID, after.ID})
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, ev := range append([]mapping.Event{big, after}, others...) {
		if string(srv.bodies[ev.ID]) != string(ev.Payload) {
			t.Errorf("event %s arrived with %d bytes, not its payload of %d", ev.ID, len(srv.bodies[ev.ID]), len(ev.Payload))
		}
	}
	if srv.attempts[after.ID] != 1 {
		t.Errorf("ticket 1's later event was sent %d times, want once (after the large one)", srv.attempts[after.ID])
	}
	if most := watch.most.Load(); most > windowBytes {
		t.Errorf("the window held %d bytes of payloads, over %d", most, windowBytes)
	}
}

// TestMemoryConfig: defaults, and bounds below the minimum are errors
// naming the key and the value.
func TestMemoryConfig(t *testing.T) {
	c := Defaults()
	if c.WindowBytes != DefaultWindowBytes || c.RenderBytes != DefaultRenderBytes {
		t.Errorf("defaults %+v", c.Memory)
	}
	c.WindowBytes, c.RenderBytes = 1000, -1
	err := c.Validate("")
	for _, want := range []string{"window_bytes: must be at least 65536 (got 1000)", "render_bytes: must be at least 65536 (got -1)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}

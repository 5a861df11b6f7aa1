package sender

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

var outage = flag.Duration("outage", 3*time.Second,
	"how long the receiver answers 503 in TestOutageThenRecovery (issue 5 says a minute: -outage=1m)")

func TestOutageThenRecovery(t *testing.T) {
	t.Parallel()
	r := testenv.NewReceiver(t)
	start := time.Now()
	r.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		if time.Since(start) < *outage {
			return testenv.Reply{Status: http.StatusServiceUnavailable}, true
		}
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	// Attempts spread over about twice the outage, as the real schedule does
	// for a minute's outage (0, 5s, 30s, 2m).
	step := *outage / 4
	ep.Retry.Schedule = []time.Duration{0, step, step, 2 * step, 4 * step, 8 * step}
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	var all []string
	for i := 0; i < 20; i++ {
		all = append(all, ids(h.txn(int64(i%5), int64(i%5+10)))...)
		time.Sleep(*outage / 40)
	}
	waitDelivered(t, r, 10**outage+10*time.Second, all...)
	if dead, _ := h.ob.DeadLetters(outbox.DeadFilter{}); len(dead) != 0 {
		t.Errorf("%d dead letters after a %v outage", len(dead), *outage)
	}
	t.Logf("%d events delivered after a %v outage, %d requests", len(all), *outage, r.Count())
}

func TestRedirectIsAFailureAndNotFollowed(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/hook", testenv.Reply{Status: http.StatusFound, Location: r.URL + "/target"})
	h := newHarness(t, Config{Endpoints: []Endpoint{endpointTo("hook", r, "/hook")}}, Options{})
	evs := h.txn(1)
	waitDelivered(t, r, 10*time.Second, ids(evs)...)
	var paths []string
	for _, req := range r.Requests() {
		paths = append(paths, req.Path)
	}
	if !slices.Equal(paths, []string{"/hook", "/hook"}) {
		t.Errorf("requests to %v, want /hook twice (302, then retried) and never /target", paths)
	}
	_ = h.ob.Flush(context.Background())
	st, _ := h.ob.Endpoint("hook")
	if !strings.Contains(st.LastError, "HTTP 302") {
		t.Errorf("last error %q, want the 302", st.LastError)
	}
}

func TestGoneDisablesUntilEnabled(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/", testenv.Reply{Status: http.StatusGone})
	ep := endpointTo("hook", r, "/")
	ep.MaxInFlight = 1
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	first := h.txn(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	later := h.txn(2, 3)
	time.Sleep(300 * time.Millisecond) // several retry periods
	if n := r.Count(); n != 1 {
		t.Errorf("%d requests after 410 Gone, want 1: the endpoint must be disabled", n)
	}
	st, err := h.ob.Endpoint("hook")
	if err != nil || !st.Disabled || st.DisabledBy != outbox.DisabledByGone || !strings.Contains(st.DisabledReason, "410") {
		t.Fatalf("state after 410: %+v %v", st, err)
	}
	if err := h.ob.Enable(ctx, "hook"); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, 10*time.Second, ids(first, later)...)
}

func TestRetryAfterIsObeyed(t *testing.T) {
	for _, c := range []struct {
		name       string
		retryAfter func() string
		cap        time.Duration
		wantGap    time.Duration
	}{
		{"seconds", func() string { return "1" }, 0, time.Second},
		{"http date", func() string { return time.Now().Add(2500 * time.Millisecond).UTC().Format(http.TimeFormat) }, 0, time.Second},
		{"capped", func() string { return "3600" }, 700 * time.Millisecond, 700 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := testenv.NewReceiver(t)
			retryAfter := c.retryAfter()
			r.Script("/", testenv.Reply{Status: http.StatusTooManyRequests, RetryAfter: retryAfter})
			h := newHarness(t, Config{Endpoints: []Endpoint{endpointTo("hook", r, "/")}, RetryAfterCap: c.cap}, Options{})
			evs := h.txn(1)
			waitDelivered(t, r, 10*time.Second, ids(evs)...)
			reqs := r.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			gap := reqs[1].Arrived.Sub(reqs[0].Arrived)
			if gap < c.wantGap || gap > c.wantGap+2*time.Second {
				t.Errorf("retried after %v, want Retry-After's %v (the schedule alone says 50ms)", gap, c.wantGap)
			}
			t.Logf("Retry-After %q: retried after %v", retryAfter, gap.Round(time.Millisecond))
		})
	}
}

func TestTimingOutEndpointDoesNotSlowAnother(t *testing.T) {
	slow := testenv.NewReceiver(t)
	slow.Default(testenv.Reply{Delay: time.Minute})
	fastR := testenv.NewReceiver(t)
	var arrived arrivals
	fastR.OnRequest(func(req testenv.Request) { arrived.Store(req.Header.Get("webhook-id"), req.Arrived) })
	slowEp := endpointTo("slow", slow, "/")
	slowEp.Timeout, slowEp.MaxInFlight = 300*time.Millisecond, 2
	slowEp.Retry.Schedule = []time.Duration{0, time.Hour} // nothing dies during the test
	fastEp := endpointTo("fast", fastR, "/")
	h := newHarness(t, Config{Endpoints: []Endpoint{slowEp, fastEp}}, Options{})

	appended := map[string]time.Time{}
	var all []string
	for i := 0; i < 100; i++ {
		at := time.Now()
		for _, id := range ids(h.txn(int64(i%10), int64(i%10+100))) {
			appended[id] = at
			all = append(all, id)
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitDelivered(t, fastR, 20*time.Second, all...)
	var lat []time.Duration
	for _, id := range all {
		at, _ := arrived.Load(id)
		lat = append(lat, at.Sub(appended[id]))
	}
	slices.Sort(lat)
	t.Logf("fast endpoint, append → arrival over %d events while the other endpoint times out: p50 %v p99 %v max %v",
		len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	// The source position is not held back by the endpoint that never answers.
	// (The endpoints hear of a commit just before OnDurable reports it:
	// wait for it, then read the acknowledgement and depth.)
	if err := h.ob.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := h.durablePos(), h.pos; got != want {
		t.Errorf("acknowledged %s while %s was stored", got, want)
	}
	if slow.Count() == 0 {
		t.Error("the slow endpoint got no requests")
	}
	eps, _ := h.ob.Endpoints()
	for _, e := range eps {
		if e.Name == "slow" && e.Depth != int64(len(all)) {
			t.Errorf("slow endpoint's queue holds %d, want all %d", e.Depth, len(all))
		}
	}
}

// arrivals records when each event id arrived.
type arrivals struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (a *arrivals) Store(id string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]time.Time{}
	}
	if _, ok := a.m[id]; !ok {
		a.m[id] = at
	}
}

func (a *arrivals) Load(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.m[id]
	return at, ok
}

func TestDeadLetterReplayedWithItsOriginalID(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Default(testenv.Reply{Status: 500, Body: "database down"})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0, 20 * time.Millisecond, 20 * time.Millisecond}
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	evs := h.txn(7)
	var dead []outbox.DeadLetter
	deadline := time.Now().Add(10 * time.Second)
	for len(dead) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		_ = h.ob.Flush(context.Background())
		dead, _ = h.ob.DeadLetters(outbox.DeadFilter{Endpoint: "hook"})
	}
	if len(dead) != 1 {
		t.Fatalf("dead letters %+v, want 1", dead)
	}
	d := dead[0]
	if d.ID != evs[0].ID || d.TicketID != 7 || len(d.Attempts) != 3 {
		t.Errorf("dead letter %+v", d)
	}
	for _, a := range d.Attempts {
		if a.Status != 500 || a.Response != "database down" || a.At.IsZero() || a.Latency <= 0 {
			t.Errorf("attempt %+v", a)
		}
	}
	if r.Count() != 3 {
		t.Errorf("%d requests, want 3 (the schedule's length)", r.Count())
	}

	r.Default(testenv.Reply{})
	if n, err := h.ob.Replay(context.Background(), outbox.DeadFilter{ID: evs[0].ID}); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitDelivered(t, r, 10*time.Second, evs[0].ID)
	reqs := r.Requests()
	if string(reqs[3].Body) != string(reqs[0].Body) {
		t.Errorf("replayed body %s, original %s", reqs[3].Body, reqs[0].Body)
	}
}

// TestConnectionResetIsRetried: a connection reset before the answer is
// retried at once within the attempt (go-retryablehttp), so the attempt
// succeeds and counts once; past the client's retries, the attempt fails
// and the schedule takes over.
func TestConnectionResetIsRetried(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/", testenv.Reply{Reset: true}, testenv.Reply{Reset: true})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0, time.Hour} // a failed attempt would wait an hour
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	evs := h.txn(1)
	waitDelivered(t, r, 10*time.Second, ids(evs)...)
	if r.Count() != 3 {
		t.Errorf("%d requests, want 3 (two resets, then success)", r.Count())
	}
	if n := testutil.ToFloat64(h.s.m.retries.WithLabelValues("hook")); n != 2 {
		t.Errorf("%v transport retries counted, want 2", n)
	}
	if n := testutil.ToFloat64(h.s.m.deliveries.WithLabelValues("hook", mapping.TicketReply, "failed")); n != 0 {
		t.Errorf("%v failed attempts counted, want none: the resets are retried within the attempt", n)
	}

	// Three resets: the client gives up after two retries, the attempt
	// fails once and is retried on the schedule.
	r.Script("/", testenv.Reply{Reset: true}, testenv.Reply{Reset: true}, testenv.Reply{Reset: true})
	ep.Retry.Schedule = []time.Duration{0, 100 * time.Millisecond}
	if err := h.s.Reload(context.Background(), []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	more := h.txn(2)
	waitDelivered(t, r, 10*time.Second, ids(more)...)
	if n := r.Count(); n != 7 {
		t.Errorf("%d requests, want 7 (3 before, then 3 resets and a success)", n)
	}
	_ = h.ob.Flush(context.Background())
	if st, _ := h.ob.Endpoint("hook"); !strings.Contains(st.LastError, "connection reset") {
		t.Errorf("last error %q, want the reset", st.LastError)
	}
}

// TestConnectionRefusedIsRetriedWithinTheAttempt: a receiver that comes up
// a moment after the attempt starts gets the event in that attempt.
func TestConnectionRefusedIsRetriedWithinTheAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused until the server starts
	ep := Endpoint{Name: "late", URL: "http://" + addr + "/", Events: mapping.AllEvents,
		Retry: Retry{Schedule: []time.Duration{0, time.Hour}}, MaxInFlight: 1, Timeout: 5 * time.Second}
	refused := 0
	c, _, err := newClient(&ep)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) })}
	c.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, try int) {
		if try == 1 { // the first try was refused: start the receiver now
			refused++
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listen again on %s: %v", addr, err)
				return
			}
			go srv.Serve(ln)
		}
	}
	defer srv.Close()
	req, _ := retryablehttp.NewRequest(http.MethodPost, ep.URL, []byte("x"))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("request to a receiver that started after a refusal: %v", err)
	}
	resp.Body.Close()
	if refused != 1 || got.Load() != 1 {
		t.Errorf("refused %d times, %d requests served; want 1 and 1", refused, got.Load())
	}
}

func TestRetryableTransportErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&url.Error{Op: "Post", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, true},
		{&url.Error{Op: "Post", Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, true},
		{&url.Error{Op: "Post", Err: io.EOF}, true},
		{&url.Error{Op: "Post", Err: context.DeadlineExceeded}, false},
		{&url.Error{Op: "Post", Err: errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")}, false},
		{&url.Error{Op: "Post", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}, false},
	} {
		if got := retryableTransportError(c.err); got != c.want {
			t.Errorf("retryableTransportError(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	// Not when the attempt's budget is nearly spent.
	ctx, cancel := context.WithTimeout(context.Background(), transportRetryMax)
	defer cancel()
	refused := &url.Error{Op: "Post", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	if retry, err := retryTransport(ctx, nil, refused); retry || err != nil {
		t.Errorf("retryTransport with %v left: %v %v, want no retry", transportRetryMax, retry, err)
	}
	if retry, err := retryTransport(context.Background(), nil, refused); !retry || err != nil {
		t.Errorf("retryTransport with time left: %v %v, want a retry", retry, err)
	}
	if retry, _ := retryTransport(context.Background(), &http.Response{StatusCode: 503}, nil); retry {
		t.Error("retryTransport retried an HTTP answer")
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") != "" {
			got.Add(1)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake failures
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	trusted := Endpoint{Name: "trusted", URL: srv.URL + "/a", CAFile: caFile, Events: []string{"ticket_reply"},
		Retry: Retry{Schedule: fast}}
	untrusted := Endpoint{Name: "untrusted", URL: srv.URL + "/b", Events: []string{"ticket_reply"},
		Retry: Retry{Schedule: []time.Duration{0, time.Hour}}}
	h := newHarness(t, Config{Endpoints: []Endpoint{trusted, untrusted}}, Options{})
	h.txn(1)
	deadline := time.Now().Add(10 * time.Second)
	var st outbox.EndpointState
	for time.Now().Before(deadline) {
		_ = h.ob.Flush(context.Background())
		st, _ = h.ob.Endpoint("untrusted")
		if got.Load() == 1 && st.LastError != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Load() != 1 {
		t.Errorf("%d requests reached the TLS server, want 1 (from the endpoint trusting its CA)", got.Load())
	}
	if !strings.Contains(st.LastError, "certificate") {
		t.Errorf("untrusted endpoint's last error %q, want a certificate error", st.LastError)
	}
}

func TestReplayWhileDelivering(t *testing.T) {
	r := testenv.NewReceiver(t)
	var broken atomic.Bool
	broken.Store(true)
	r.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		if ticketOf(*req) == "99" && broken.Load() {
			return testenv.Reply{Status: 400}, true
		}
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0} // one attempt, then dead
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	bad := h.txn(99)
	var all []string
	for i := 0; i < 100; i++ {
		all = append(all, ids(h.txn(int64(i%7), int64(i%7+10)))...)
		if i == 50 {
			// Ticket 99's event is a dead letter by now, or soon (on a busy
			// machine the first request can take a while): wait for it,
			// mend the receiver, replay it while events keep coming.
			var dead []outbox.DeadLetter
			for deadline := time.Now().Add(10 * time.Second); len(dead) == 0 && time.Now().Before(deadline); {
				_ = h.ob.Flush(context.Background())
				dead, _ = h.ob.DeadLetters(outbox.DeadFilter{TicketID: 99})
			}
			broken.Store(false)
			if n, err := h.ob.Replay(context.Background(), outbox.DeadFilter{TicketID: 99}); err != nil || n != 1 {
				t.Fatalf("replay: %d %v (dead letters of ticket 99: %d)", n, err, len(dead))
			}
		}
		time.Sleep(time.Millisecond)
	}
	waitDelivered(t, r, 10*time.Second, append(all, bad[0].ID)...)
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	seen := map[string]int{}
	for _, req := range r.Requests() {
		if req.Reply.StatusCode() == 200 {
			seen[req.Header.Get("webhook-id")]++
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Receiver is a real HTTP server on loopback that records every request it
// gets and answers as it is told: by default 200 OK, or scripted statuses,
// delays, Retry-After and Location headers and connection resets, per
// request or per path, or whatever a hook decides.
//
// Recording is cheap (one lock, one append) so a benchmark can push tens of
// thousands of requests a second through it; SetDecode(false) skips body
// decoding and SetKeep(false) stops keeping requests at all (Count, Wait and
// OnRequest still work).
type Receiver struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL string

	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve returns

	seq    atomic.Int64
	decode atomic.Bool
	keep   atomic.Bool
	hook   atomic.Pointer[func(*Request) (Reply, bool)]

	mu        sync.Mutex
	reqs      []Request
	count     int
	changed   chan struct{} // closed and replaced on each arrival while someone waits
	waiters   int
	scripts   map[string][]Reply // per path; "" is any path
	def       Reply
	callbacks []func(Request)
	closeOnce sync.Once
}

// Request is one recorded request.
type Request struct {
	Seq      int64 // arrival order, from 1
	Arrived  time.Time
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
	// Form is the decoded body of an application/x-www-form-urlencoded
	// request, JSON the decoded tree of an application/json one (numbers as
	// json.Number); DecodeErr says why decoding failed. All nil when
	// decoding is off.
	Form      url.Values
	JSON      any
	DecodeErr error
	// Reply is what the receiver answered (or was about to answer when a
	// reset or the client's timeout cut the exchange short).
	Reply Reply
}

// Reply tells the receiver how to answer one request.
type Reply struct {
	Status     int           // 0 means 200
	Delay      time.Duration // wait before answering (cut short when the client gives up)
	RetryAfter string        // Retry-After header value: seconds or an HTTP date
	Location   string        // Location header, for redirects
	Header     http.Header   // further response headers
	Body       string
	// Reset drops the connection without an HTTP answer (after Delay): the
	// client sees a connection reset.
	Reset bool
}

// StatusCode is the status the reply sends (200 when unset).
func (rp Reply) StatusCode() int {
	if rp.Status == 0 {
		return http.StatusOK
	}
	return rp.Status
}

// NewReceiver starts a receiver on 127.0.0.1 for a test; it is closed at
// the test's cleanup.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r, err := StartReceiver("127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: start receiver: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// StartReceiver starts a receiver listening on addr ("127.0.0.1:0" for any
// free port), for the demo and the benchmark. Close stops it.
func StartReceiver(addr string) (*Receiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receiver: listen on %s: %w", addr, err)
	}
	r := &Receiver{
		URL:     "http://" + ln.Addr().String(),
		ln:      ln,
		done:    make(chan struct{}),
		reqs:    make([]Request, 0, 1024),
		changed: make(chan struct{}),
		scripts: map[string][]Reply{},
	}
	r.decode.Store(true)
	r.keep.Store(true)
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 30 * time.Second, ErrorLog: nil}
	go func() {
		defer close(r.done)
		_ = r.srv.Serve(ln)
	}()
	return r, nil
}

// Close stops the server and drops open connections. It is safe to call
// more than once.
func (r *Receiver) Close() {
	r.closeOnce.Do(func() {
		_ = r.srv.Close()
		<-r.done
	})
}

// SetDecode turns decoding of form and JSON bodies on (the default) or off.
func (r *Receiver) SetDecode(on bool) { r.decode.Store(on) }

// SetKeep turns keeping requests on (the default) or off. Off, Requests
// returns only what was kept before, while Count, Wait and OnRequest go on.
func (r *Receiver) SetKeep(on bool) { r.keep.Store(on) }

// Script queues replies for requests to path ("" for any path), used one
// each in order; a path's own script goes before the any-path script. When
// the scripts are used up the default reply answers.
func (r *Receiver) Script(path string, replies ...Reply) {
	r.mu.Lock()
	r.scripts[path] = append(r.scripts[path], replies...)
	r.mu.Unlock()
}

// Default sets the reply used when no hook or script decides (initially
// 200 OK).
func (r *Receiver) Default(reply Reply) {
	r.mu.Lock()
	r.def = reply
	r.mu.Unlock()
}

// SetHook installs a function that decides replies before scripts and the
// default: it returns the reply and true, or false to let them decide. It
// runs concurrently for concurrent requests. nil removes the hook.
func (r *Receiver) SetHook(hook func(req *Request) (Reply, bool)) {
	if hook == nil {
		r.hook.Store(nil)
		return
	}
	r.hook.Store(&hook)
}

// OnRequest registers a function called with each request as it is
// recorded, before the reply is sent (so keep it quick).
func (r *Receiver) OnRequest(fn func(Request)) {
	r.mu.Lock()
	r.callbacks = append(r.callbacks, fn)
	r.mu.Unlock()
}

// Requests returns a copy of the kept requests, in recording order.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count is the number of requests recorded so far (kept or not).
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Wait blocks until at least n requests have been recorded.
func (r *Receiver) Wait(ctx context.Context, n int) error {
	err := r.waitFor(ctx, func(count int, _ []Request) bool { return count >= n })
	if err != nil {
		return fmt.Errorf("receiver: waiting for %d requests (have %d): %w", n, r.Count(), err)
	}
	return nil
}

// WaitFor blocks until cond holds for the kept requests; cond is checked now
// and after each arrival, with the receiver locked: it must not keep or
// change the slice, nor call the receiver.
func (r *Receiver) WaitFor(ctx context.Context, cond func(reqs []Request) bool) error {
	err := r.waitFor(ctx, func(_ int, reqs []Request) bool { return cond(reqs) })
	if err != nil {
		return fmt.Errorf("receiver: waiting for a condition (%d requests so far): %w", r.Count(), err)
	}
	return nil
}

func (r *Receiver) waitFor(ctx context.Context, cond func(int, []Request) bool) error {
	r.mu.Lock()
	r.waiters++
	defer func() {
		r.mu.Lock()
		r.waiters--
		r.mu.Unlock()
	}()
	for {
		if cond(r.count, r.reqs) {
			r.mu.Unlock()
			return nil
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		r.mu.Lock()
	}
}

// ServeHTTP records the request and answers it.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	body, err := readBody(hr)
	if err != nil {
		http.Error(w, "receiver: reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{
		Seq:      r.seq.Add(1),
		Arrived:  time.Now(),
		Method:   hr.Method,
		Path:     hr.URL.Path,
		RawQuery: hr.URL.RawQuery,
		Header:   hr.Header.Clone(),
		Body:     body,
	}
	if r.decode.Load() {
		req.decodeBody()
	}
	reply, decided := Reply{}, false
	if hook := r.hook.Load(); hook != nil {
		reply, decided = (*hook)(&req)
	}

	r.mu.Lock()
	if !decided {
		reply = r.nextReplyLocked(req.Path)
	}
	req.Reply = reply
	r.count++
	if r.keep.Load() {
		r.reqs = append(r.reqs, req)
	}
	if r.waiters > 0 {
		close(r.changed)
		r.changed = make(chan struct{})
	}
	callbacks := r.callbacks
	r.mu.Unlock()
	for _, fn := range callbacks {
		fn(req)
	}
	answer(w, hr, reply)
}

func (r *Receiver) nextReplyLocked(path string) Reply {
	for _, p := range [2]string{path, ""} {
		if q := r.scripts[p]; len(q) > 0 {
			r.scripts[p] = q[1:]
			return q[0]
		}
	}
	return r.def
}

func answer(w http.ResponseWriter, hr *http.Request, reply Reply) {
	if reply.Delay > 0 {
		t := time.NewTimer(reply.Delay)
		select {
		case <-t.C:
		case <-hr.Context().Done():
			t.Stop()
			return
		}
	}
	if reply.Reset {
		resetConn(w)
		return
	}
	h := w.Header()
	for k, vs := range reply.Header {
		h[k] = append([]string(nil), vs...)
	}
	if reply.RetryAfter != "" {
		h.Set("Retry-After", reply.RetryAfter)
	}
	if reply.Location != "" {
		h.Set("Location", reply.Location)
	}
	h.Set("Content-Length", strconv.Itoa(len(reply.Body)))
	w.WriteHeader(reply.StatusCode())
	_, _ = io.WriteString(w, reply.Body)
}

// resetConn takes the connection over and closes it with SO_LINGER 0, so
// the kernel sends a RST instead of an orderly FIN.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

const maxBody = 64 << 20

func readBody(hr *http.Request) ([]byte, error) {
	if hr.ContentLength > maxBody {
		return nil, fmt.Errorf("body of %d bytes is over the receiver's limit", hr.ContentLength)
	}
	if hr.ContentLength > 0 {
		buf := make([]byte, hr.ContentLength)
		if _, err := io.ReadFull(hr.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(io.LimitReader(hr.Body, maxBody))
}

func (req *Request) decodeBody() {
	ct, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil {
		if req.Header.Get("Content-Type") != "" {
			req.DecodeErr = fmt.Errorf("content type: %w", err)
		}
		return
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		req.Form, req.DecodeErr = url.ParseQuery(string(req.Body))
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(req.Body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			req.DecodeErr = err
			return
		}
		if dec.More() {
			req.DecodeErr = errors.New("trailing data after the JSON value")
			return
		}
		req.JSON = v
	}
}

package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// noRedirect is a client that, like deskhook, never follows redirects.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func post(t *testing.T, c *http.Client, u, contentType, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Webhook-Id", "evt_1")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func TestReceiverRecordsRequests(t *testing.T) {
	r := NewReceiver(t)
	var seen atomic.Int64
	r.OnRequest(func(Request) { seen.Add(1) })

	before := time.Now()
	if _, err := post(t, noRedirect, r.URL+"/hook?x=1", "application/x-www-form-urlencoded",
		"event=ticket_created&ticket%5Bid%5D=10&ticket%5Bstatuses%5D%5Bname%5D=On+hold"); err != nil {
		t.Fatal(err)
	}
	if _, err := post(t, noRedirect, r.URL+"/json", "application/json; charset=utf-8",
		`{"event":"ticket_reply","thread":{"id":"22","body":null}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := post(t, noRedirect, r.URL+"/bad", "application/json", `{"event":`); err != nil {
		t.Fatal(err)
	}

	reqs := r.Requests()
	if len(reqs) != 3 || r.Count() != 3 || seen.Load() != 3 {
		t.Fatalf("recorded %d requests, count %d, callbacks %d; want 3", len(reqs), r.Count(), seen.Load())
	}
	form := reqs[0]
	if form.Seq != 1 || form.Method != http.MethodPost || form.Path != "/hook" || form.RawQuery != "x=1" {
		t.Errorf("first request: seq %d %s %s?%s", form.Seq, form.Method, form.Path, form.RawQuery)
	}
	if form.Arrived.Before(before) || form.Arrived.After(time.Now()) {
		t.Errorf("arrival time %v out of range", form.Arrived)
	}
	if got := form.Header.Get("Webhook-Id"); got != "evt_1" {
		t.Errorf("header webhook-id = %q", got)
	}
	want := url.Values{"event": {"ticket_created"}, "ticket[id]": {"10"}, "ticket[statuses][name]": {"On hold"}}
	if form.DecodeErr != nil || form.Form.Encode() != want.Encode() {
		t.Errorf("form = %v (err %v), want %v", form.Form, form.DecodeErr, want)
	}
	if form.Reply.StatusCode() != 200 {
		t.Errorf("reply status %d, want 200", form.Reply.StatusCode())
	}

	js := reqs[1]
	tree, ok := js.JSON.(map[string]any)
	if !ok || js.DecodeErr != nil {
		t.Fatalf("json tree %T (err %v)", js.JSON, js.DecodeErr)
	}
	thread, _ := tree["thread"].(map[string]any)
	if tree["event"] != "ticket_reply" || thread["id"] != "22" || thread["body"] != nil {
		t.Errorf("json tree = %v", tree)
	}
	if string(js.Body) != `{"event":"ticket_reply","thread":{"id":"22","body":null}}` {
		t.Errorf("raw body = %s", js.Body)
	}
	if reqs[2].DecodeErr == nil {
		t.Errorf("truncated JSON decoded without error: %v", reqs[2].JSON)
	}
}

func TestReceiverScriptsReplies(t *testing.T) {
	r := NewReceiver(t)
	r.Script("/a", Reply{Status: 503, RetryAfter: "7"}, Reply{Status: 302, Location: "/elsewhere"})
	r.Script("", Reply{Status: 410})
	r.Default(Reply{Status: 204})

	type want struct {
		path       string
		status     int
		retryAfter string
		location   string
	}
	for i, w := range []want{
		{"/a", 503, "7", ""},
		{"/b", 410, "", ""}, // any-path script
		{"/a", 302, "", "/elsewhere"},
		{"/a", 204, "", ""}, // scripts used up: default
		{"/b", 204, "", ""},
	} {
		resp, err := post(t, noRedirect, r.URL+w.path, "text/plain", "x")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != w.status || resp.Header.Get("Retry-After") != w.retryAfter ||
			resp.Header.Get("Location") != w.location {
			t.Errorf("request %d to %s: %d Retry-After %q Location %q; want %d %q %q", i, w.path,
				resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Location"),
				w.status, w.retryAfter, w.location)
		}
	}
	if got := r.Requests()[0].Reply.Status; got != 503 {
		t.Errorf("recorded reply status %d, want 503", got)
	}
}

func TestReceiverDelayAndReset(t *testing.T) {
	r := NewReceiver(t)
	r.Script("/slow", Reply{Delay: 2 * time.Second})
	r.Script("/reset", Reply{Reset: true})
	r.Script("/late", Reply{Delay: 100 * time.Millisecond, Status: 201})

	impatient := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := post(t, impatient, r.URL+"/slow", "text/plain", "x")
	if err == nil || time.Since(start) > time.Second {
		t.Errorf("slow reply: err %v after %v; want a client timeout after ~200ms", err, time.Since(start))
	}

	_, err = post(t, noRedirect, r.URL+"/reset", "text/plain", "x")
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("reset: err %v, want connection reset", err)
	}

	start = time.Now()
	resp, err := post(t, noRedirect, r.URL+"/late", "text/plain", "x")
	if err != nil || resp.StatusCode != 201 || time.Since(start) < 100*time.Millisecond {
		t.Errorf("delayed reply: %v %v after %v", resp, err, time.Since(start))
	}
	if r.Count() != 3 {
		t.Errorf("count %d, want 3 (every request is recorded, whatever the reply)", r.Count())
	}
}

func TestReceiverHookAndWait(t *testing.T) {
	r := NewReceiver(t)
	outage := 300 * time.Millisecond
	start := time.Now()
	r.SetHook(func(req *Request) (Reply, bool) {
		if time.Since(start) < outage {
			return Reply{Status: 503}, true
		}
		return Reply{}, false // default: 200
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- r.WaitFor(ctx, func(reqs []Request) bool {
			return len(reqs) > 0 && reqs[len(reqs)-1].Reply.StatusCode() == 200
		})
	}()
	var statuses []int
	for {
		resp, err := post(t, noRedirect, r.URL+"/", "application/json", `{}`)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-waitErr; err != nil {
		t.Fatal(err)
	}
	if statuses[0] != 503 || time.Since(start) < outage {
		t.Errorf("statuses %v: want 503s for %v, then 200", statuses, outage)
	}
	if err := r.Wait(ctx, len(statuses)); err != nil {
		t.Fatal(err)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := r.Wait(short, len(statuses)+1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait for a request that never comes: %v", err)
	}
}

func TestReceiverWithoutKeepingOrDecoding(t *testing.T) {
	r := NewReceiver(t)
	r.SetDecode(false)
	var last atomic.Value
	r.OnRequest(func(req Request) { last.Store(req) })
	if _, err := post(t, noRedirect, r.URL+"/", "application/json", `{"a":"1"}`); err != nil {
		t.Fatal(err)
	}
	r.SetKeep(false)
	if _, err := post(t, noRedirect, r.URL+"/", "application/json", `{"a":"2"}`); err != nil {
		t.Fatal(err)
	}
	if len(r.Requests()) != 1 || r.Count() != 2 {
		t.Errorf("kept %d, count %d; want 1 kept of 2", len(r.Requests()), r.Count())
	}
	got := last.Load().(Request)
	var v map[string]string
	if got.JSON != nil || json.Unmarshal(got.Body, &v) != nil || v["a"] != "2" {
		t.Errorf("undecoded request: JSON %v body %s", got.JSON, got.Body)
	}
}

func TestReceiverConcurrentLoad(t *testing.T) {
	r := NewReceiver(t)
	r.SetDecode(false)
	const workers, each = 8, 200
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < each; i++ {
				if _, err := post(t, noRedirect, r.URL+"/", "text/plain", "x"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	reqs := r.Requests()
	seen := make(map[int64]bool, len(reqs))
	for _, req := range reqs {
		seen[req.Seq] = true
	}
	if len(reqs) != workers*each || len(seen) != workers*each {
		t.Errorf("recorded %d requests with %d distinct sequence numbers, want %d", len(reqs), len(seen), workers*each)
	}
}

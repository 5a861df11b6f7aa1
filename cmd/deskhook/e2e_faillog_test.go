package main

// Issue 13 point 2 (the sender's part): at the default log level an
// operator hears of failing endpoints at once, then in rate-limited
// summaries, then of the recovery; of 410 Gone and of dead letters with
// the status and the answer; and JSON logs write durations readably.

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

func TestFailuresLoggedAtInfo(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	flaky := testenv.NewReceiver(t)
	var failing atomic.Bool
	failing.Store(true)
	flaky.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		if failing.Load() {
			return testenv.Reply{Status: 500, Body: "<html>\n<h1>Internal error</h1>\n</html>"}, true
		}
		return testenv.Reply{}, false
	})
	gone := testenv.NewReceiver(t)
	gone.Default(testenv.Reply{Status: 410, Body: "hook deleted"})
	broken := testenv.NewReceiver(t)
	broken.Default(testenv.Reply{Status: 400, Body: `{"error":"ticket field missing"}`})
	schedule := []string{"0s"}
	for range 100 {
		schedule = append(schedule, "200ms")
	}
	e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any),
		map[string]any{"name": "flaky", "url": flaky.URL + "/in", "retry": map[string]any{"schedule": schedule}},
		map[string]any{"name": "gone", "url": gone.URL + "/in?token=s3cr3t-t0ken"},
		map[string]any{"name": "broken", "url": broken.URL + "/in", "retry": map[string]any{"schedule": []string{"0s", "10ms"}}},
	)
	e.cfg["failure_log_interval"] = "1s"
	e.section("log")["level"] = "info" // the default
	e.writeConfig()
	e.setup()
	d := e.start()
	ctx := context.Background()
	began := time.Now()
	load := e.load(ctx, testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 81})
	e.waitDelivered(load.TotalEvents(), 30*time.Second)
	waitLog(t, d, "component=sender endpoint=flaky status=500")
	time.Sleep(3 * time.Second) // failures go on: summaries, one a second
	failing.Store(false)
	failedFor := time.Since(began)
	waitLog(t, d, `msg="endpoint recovered: deliveries succeed again" component=sender endpoint=flaky failing_for=`)
	waitLog(t, d, "endpoint=broken id=")
	logs := d.stderr.String()

	if n := strings.Count(logs, "level=DEBUG"); n > 0 {
		t.Errorf("%d DEBUG lines at level info", n)
	}
	first := regexp.MustCompile(`level=WARN msg="endpoint failing: a delivery attempt failed; events are retried on the endpoint's schedule" component=sender endpoint=flaky status=500 response="<html> <h1>Internal error</h1> </html>" retry_in=\d+ms`)
	if n := len(first.FindAllString(logs, -1)); n != 1 {
		t.Errorf("%d first-failure lines for flaky, want 1", n)
	}
	summary := regexp.MustCompile(`level=WARN msg="endpoint still failing" component=sender endpoint=flaky failures=\d+ failing_for=\S+ status=500 response="[^"]+" pending=\d+ oldest_pending=\S+`)
	if n, most := len(summary.FindAllString(logs, -1)), int(failedFor/time.Second)+1; n < 1 || n > most {
		t.Errorf("%d summaries for flaky while it failed for %v, want 1 to %d (one a second at most)", n, failedFor, most)
	}
	if n := strings.Count(logs, `msg="endpoint recovered: deliveries succeed again" component=sender endpoint=flaky`); n != 1 {
		t.Errorf("%d recovery lines for flaky, want 1", n)
	}
	if !regexp.MustCompile(`level=WARN msg="endpoint answered 410 Gone: it is disabled and nothing is sent to it until an operator enables it \(deskhook endpoints enable gone\); its events keep queueing" component=sender endpoint=gone url=http://127\.0\.0\.1:\d+/in\?… status=410 response="hook deleted"`).MatchString(logs) {
		t.Errorf("no WARN line for gone's 410 with its URL and status")
	}
	if strings.Contains(logs, "s3cr3t") {
		t.Errorf("the log quotes the URL's token")
	}
	if !regexp.MustCompile(`level=WARN msg="retries exhausted: event is a dead letter \(deskhook dlq show / replay\)" component=sender endpoint=broken id=\S+ ticket=\d+ attempts=2 status=400 response="{\\"error\\":\\"ticket field missing\\"}"`).MatchString(logs) {
		t.Errorf("no dead-letter line for broken with its status and answer")
	}
	if strings.Contains(logs, `err=""`) {
		t.Errorf("a line logs an empty error")
	}
	d.stop()

	// The same in JSON: durations are text, not nanoseconds.
	e.section("log")["format"] = "json"
	e.writeConfig()
	failing.Store(true)
	d = e.start()
	more := e.load(ctx, testenv.LoadConfig{Tickets: 1, Replies: 1, Seed: 82})
	e.waitDelivered(load.TotalEvents()+more.TotalEvents(), 30*time.Second)
	waitLog(t, d, `"msg":"endpoint failing`)
	time.Sleep(1500 * time.Millisecond)
	failing.Store(false)
	waitLog(t, d, `"msg":"endpoint recovered`)
	d.stop()
	durations := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(d.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", line, err)
		}
		for _, key := range []string{"retry_in", "failing_for", "oldest_pending"} {
			v, ok := rec[key]
			if !ok {
				continue
			}
			s, isText := v.(string)
			if _, err := time.ParseDuration(s); !isText || err != nil {
				t.Errorf("%s = %v (%T) in %s, want a duration as text like \"1.5s\"", key, v, v, line)
			}
			durations[key] = true
		}
	}
	if !durations["retry_in"] || !durations["failing_for"] {
		t.Errorf("the JSON log has no retry_in or failing_for to check (found %v)", durations)
	}
}

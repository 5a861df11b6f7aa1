package sender

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestFailuresAreLoggedOnceThenSummarised: at the default level an
// endpoint that starts failing is logged once, then summarised once per
// failure_log_interval, then its recovery once.
func TestFailuresAreLoggedOnceThenSummarised(t *testing.T) {
	r := testenv.NewReceiver(t)
	var failing atomic.Bool
	failing.Store(true)
	r.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		if failing.Load() {
			return testenv.Reply{Status: http.StatusInternalServerError, Body: "upstream\ndatabase is down\x00"}, true
		}
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0}
	for range 200 {
		ep.Retry.Schedule = append(ep.Retry.Schedule, 50*time.Millisecond)
	}
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}, FailureLogInterval: time.Second}, Options{})
	evs := h.txn(1, 2, 3)
	time.Sleep(2500 * time.Millisecond) // at least two summaries' worth of failures
	failing.Store(false)
	waitDelivered(t, r, 10*time.Second, ids(evs)...)
	logs := h.logs.String()
	info := infoAndAbove(logs)
	if n := strings.Count(info, "endpoint failing"); n != 1 {
		t.Errorf("%d 'endpoint failing' lines, want 1:\n%s", n, info)
	}
	if !strings.Contains(info, `level=WARN msg="endpoint failing: a delivery attempt failed; events are retried on the endpoint's schedule" endpoint=hook status=500 response="upstream database is down" retry_in=`) {
		t.Errorf("the first failure's line lacks the status, the answer or the next retry:\n%s", info)
	}
	if n := strings.Count(info, "endpoint still failing"); n < 1 || n > 3 {
		t.Errorf("%d summaries over about 2.5s at one per second, want 1 to 3:\n%s", n, info)
	}
	if !strings.Contains(info, "level=WARN msg=\"endpoint still failing\" endpoint=hook failures=") ||
		!strings.Contains(info, "status=500") || !strings.Contains(info, "pending=3 oldest_pending=") {
		t.Errorf("a summary lacks the count, the last status or the oldest pending event:\n%s", info)
	}
	if n := strings.Count(info, `level=INFO msg="endpoint recovered: deliveries succeed again" endpoint=hook failing_for=`); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, info)
	}
	if strings.Contains(info, `msg="attempt failed"`) {
		t.Errorf("each attempt logged above DEBUG:\n%s", info)
	}
}

func TestGoneIsLoggedWithStatusAndURL(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Script("/gone", testenv.Reply{Status: http.StatusGone, Body: "no such hook"})
	ep := endpointTo("hook", r, "/gone?token=s3cr3t")
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	h.txn(1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(h.logs.String(), "410 Gone") {
		time.Sleep(10 * time.Millisecond)
	}
	info := infoAndAbove(h.logs.String())
	want := `level=WARN msg="endpoint answered 410 Gone: it is disabled and nothing is sent to it until an operator enables it (deskhook endpoints enable hook); its events keep queueing" endpoint=hook url=` + r.URL + `/gone?… status=410 response="no such hook"`
	if !strings.Contains(info, want) {
		t.Errorf("no WARN line for the 410:\nwant %s\nlogs:\n%s", want, info)
	}
	if strings.Contains(h.logs.String(), "s3cr3t") {
		t.Error("the log quotes the url's query")
	}
	if strings.Contains(info, "endpoint failing") {
		t.Errorf("a 410 also logged as a failure:\n%s", info)
	}
}

func TestDeadLetterLogsStatusAndAnswer(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.Default(testenv.Reply{Status: http.StatusBadRequest, Body: `{"error":"` + strings.Repeat("x", 500) + `"}`})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = []time.Duration{0, 10 * time.Millisecond}
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	evs := h.txn(1)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(h.logs.String(), "dead letter") {
		time.Sleep(10 * time.Millisecond)
	}
	info := infoAndAbove(h.logs.String())
	want := `level=WARN msg="retries exhausted: event is a dead letter (deskhook dlq show / replay)" endpoint=hook id=` + evs[0].ID +
		` ticket=1 attempts=2 status=400 response="{\"error\":\"` + strings.Repeat("x", 200-len(`{"error":"`)) + `…"`
	if !strings.Contains(info, want) {
		t.Errorf("dead letter line:\nwant %s\nlogs:\n%s", want, info)
	}
	if strings.Contains(info, `err=""`) {
		t.Errorf("an empty error logged:\n%s", info)
	}
}

func TestExcerpt(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"  a\r\n\tb  \x00c ", 10, "a b c"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééééé", 5, "éé…"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"", 10, ""},
	} {
		if got := excerpt(c.in, c.max); got != c.want {
			t.Errorf("excerpt(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// infoAndAbove keeps the lines a default (info) log level shows.
func infoAndAbove(logs string) string {
	var b strings.Builder
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=INFO") || strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

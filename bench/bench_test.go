package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/mapping"
)

// TestSmokeBacklog runs the backlog scenario on a few hundred events
// through the real pipeline (PostgreSQL, daemon, receiver) and checks only
// that it completes and that every event arrived, and that the report
// renders: no timing is asserted.
func TestSmokeBacklog(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		via := map[bool]string{false: "unix socket", true: "tcp loopback"}[tcp]
		t.Run(strings.ReplaceAll(via, " ", "_"), func(t *testing.T) { smokeBacklog(t, tcp, via) })
	}
}

// TestSmokeBacklogMariaDB is TestSmokeBacklog on MariaDB: the daemon reads
// the backlog from the binlog, and both bare binlog readers read the same
// transactions.
func TestSmokeBacklogMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Source: "mariadb", Scenarios: []string{"backlog"}, Scale: 0.005, Progress: &progress})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if rep.Machine.MariaDB == "" || rep.Machine.PGVia != "unix socket" {
		t.Errorf("machine: MariaDB %q via %q", rep.Machine.MariaDB, rep.Machine.PGVia)
	}
	if len(rep.Results) != 1 || rep.Results[0].Error != "" {
		t.Fatalf("results %+v\n%s", rep.Results, progress.String())
	}
	res := rep.Results[0]
	if res.Expected != 500 || res.Events != res.Expected || res.Extra["binlog_transactions"] < 500 {
		t.Errorf("backlog delivered %d of %d events (%v), want all of 500", res.Events, res.Expected, res.Extra)
	}
	if b := rep.Bounds.Binlog; len(b) != 2 || b[0].Transactions != b[1].Transactions || b[0].Transactions < res.Expected ||
		b[0].EventsPerSec <= 0 || b[1].EventsPerSec <= 0 {
		t.Errorf("binlog bounds %+v: want both readers over the same transactions", b)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"MariaDB 10.", "go-mysql replication (parse and decode only) over the backlog's binlog",
		"deskhook binlog.Reader (counting handler) over the backlog's binlog", "of the event rate of"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if _, err := Run(ctx, Options{Source: "mariadb", Scenarios: []string{"largetxn"}}); err == nil {
		t.Error("a PostgreSQL-only scenario ran on MariaDB")
	}
}

func smokeBacklog(t *testing.T, tcp bool, via string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := Run(ctx, Options{Scenarios: []string{"backlog"}, Scale: 0.005, Progress: &progress, TCP: tcp})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, progress.String())
	}
	if rep.Machine.PGVia != via || rep.Machine.SyscallNs <= 0 {
		t.Errorf("machine: PostgreSQL via %q (want %q), system call %.0f ns (want > 0)", rep.Machine.PGVia, via, rep.Machine.SyscallNs)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1", len(rep.Results))
	}
	res := rep.Results[0]
	if res.Error != "" {
		t.Fatalf("backlog failed: %s\n%s", res.Error, progress.String())
	}
	if res.Expected != 500 || res.Events != res.Expected {
		t.Errorf("backlog delivered %d of %d events, want all of 500", res.Events, res.Expected)
	}
	if p := rep.Bounds.Pgoutput; p == nil || p.Transactions < res.Expected {
		t.Errorf("bare pgoutput bound: %+v, want at least one transaction per event", p)
	} else if runtime.GOOS == "linux" && p.WalsenderCPUPerEventUs <= 0 {
		t.Errorf("bare pgoutput bound: no walsender CPU (%+v)", p)
	}
	if q, p := rep.Bounds.SQLDecode, rep.Bounds.Pgoutput; q == nil || p == nil || q.Transactions != p.Transactions {
		t.Errorf("SQL-interface bound: %+v, want as many transactions as the bare consumer read", q)
	}
	if runtime.GOOS == "linux" {
		for _, k := range []string{"process_rw_syscalls_per_event", "walsender_cpu_us_per_event"} {
			if res.Extra[k] <= 0 {
				t.Errorf("backlog %s = %v, want > 0 (extras %v)", k, res.Extra[k], res.Extra)
			}
		}
	}
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "backlog") || !strings.Contains(table.String(), "catch-up throughput") {
		t.Errorf("table lacks the backlog row or its target:\n%s", table.String())
	}
	for _, bound := range []string{"bare pgoutput consumer over the backlog", "SQL interface"} {
		if n := strings.Count(table.String(), bound); n != 1 {
			t.Errorf("table shows the %q bound %d times, want once:\n%s", bound, n, table.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != 1 {
		t.Errorf("JSON does not read back (%v):\n%s", err, js.String())
	}
}

func TestSelectScenarios(t *testing.T) {
	for _, tc := range []struct {
		known   []string
		in      []string
		want    string
		wantErr string
	}{
		{known: Scenarios, in: nil, want: strings.Join(Scenarios, ",")},
		{known: Scenarios, in: []string{"largetxn", "backlog"}, want: "backlog,largetxn"},
		{known: Scenarios, in: []string{"backlog", "nope", "x"}, wantErr: `unknown scenario "nope", "x"`},
		{known: MariaDBScenarios, in: []string{"live2000", "backlog"}, want: "backlog,live2000"},
		{known: MariaDBScenarios, in: []string{"largetxn"}, wantErr: `unknown scenario "largetxn" (known: backlog,live500,live2000)`},
	} {
		got, err := selectScenarios(tc.known, tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("%v: %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// TestFormTicket reads the event and ticket from bodies rendered by the
// real faveo-form renderer, for each place Faveo puts the ticket id.
func TestFormTicket(t *testing.T) {
	for _, tc := range []struct {
		payload string
		event   string
		ticket  int64
		ok      bool
	}{
		{`{"event":"ticket_created","ticket":{"id":"17","ticket_number":"A-1"},"requester":{"id":"5"}}`, "ticket_created", 17, true},
		{`{"event":"ticket_reply","replied_by":{"id":"2"},"thread":{"id":"99","ticket_id":"18","ticket":{"id":"18"}}}`, "ticket_reply", 18, true},
		{`{"event":"ticket_commented","replied_by":{"id":"5"},"thread":{"id":"98","ticket_id":"19"}}`, "ticket_commented", 19, true},
		{`{"event":"ticket_department_updated","thread":{"id":"20","dept_id":"2"}}`, "ticket_department_updated", 20, true},
		{`{"event":"ticket_status_updated","ticket":{"id":"21"}}`, "ticket_status_updated", 21, true},
		{`{"event":"ticket_assigned","ticket":{"id":"x"}}`, "ticket_assigned", 0, false},
		{`{"event":"something_else","ticket":{"id":"22"}}`, "", 0, false},
	} {
		body, _, err := mapping.Render(mapping.FormatForm, []byte(tc.payload))
		if err != nil {
			t.Fatal(err)
		}
		ev, tk, ok := formTicket(body)
		if ev != tc.event || tk != tc.ticket || ok != tc.ok {
			t.Errorf("%s: got (%q, %d, %v), want (%q, %d, %v)", body, ev, tk, ok, tc.event, tc.ticket, tc.ok)
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	l := summarize(d)
	if l.Samples != 100 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarize(1..100 ms) = %+v", *l)
	}
	if summarize(nil) != nil {
		t.Error("summarize(nil) should be nil")
	}
}

func TestTrackerPairsInOrder(t *testing.T) {
	tr := newTracker("/fast", true)
	t0 := time.Unix(1000, 0)
	k := eventKey{ticket: 1, event: "ticket_reply"}
	tr.commits = []stamp{{key: k, at: t0}, {key: k, at: t0.Add(10 * time.Millisecond)}, {key: eventKey{2, "ticket_created"}, at: t0}}
	tr.arrivals = []stamp{{key: k, at: t0.Add(2 * time.Millisecond)}, {key: k, at: t0.Add(13 * time.Millisecond)}}
	d, _, unmatched := tr.latencies(t0, nil)
	if unmatched != 1 || len(d) != 2 || d[0] != 2*time.Millisecond || d[1] != 3*time.Millisecond {
		t.Errorf("latencies = %v, unmatched %d; want [2ms 3ms], 1", d, unmatched)
	}
	if d, _, _ := tr.latencies(t0, map[int64]bool{1: true}); len(d) != 0 {
		t.Errorf("skipped ticket still measured: %v", d)
	}
	if r := tr.deliveredBy(t0.Add(5*time.Millisecond), nil); r < 0.33 || r > 0.34 {
		t.Errorf("deliveredBy = %v, want 1/3", r)
	}
}

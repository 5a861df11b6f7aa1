package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestMetrics: after a load, /metrics counts what the receiver got and
// what the simulator wrote, and every metric family an operator needs is
// there.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	// A few failures first, so the failed outcome is counted too.
	e.rcv.Script("", testenv.Reply{Status: 503}, testenv.Reply{Status: 500}, testenv.Reply{Status: 502})
	// No `deskhook setup`: source.auto_setup does it at start.
	e.section("source")["auto_setup"] = true
	e.writeConfig()
	d := e.start()
	if code, body, err := d.get("/healthz"); err != nil || code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz: %d %q %v", code, body, err)
	}

	load := e.load(context.Background(), testenv.LoadConfig{Tickets: 25, Replies: 2, Updates: 3, Writers: 3, Seed: 5,
		UpdateKinds: []testenv.ActionKind{testenv.ActStatus, testenv.ActDepartment, testenv.ActAssignAgent,
			testenv.ActOwner, testenv.ActDueDate, testenv.ActNote, testenv.ActAssignTeam}})
	e.waitDelivered(load.TotalEvents(), 60*time.Second)
	checkDeliveries(t, load, e.rcv.Requests())

	var got2xx, gotFailed float64
	perEvent := map[string]float64{}
	for _, r := range e.rcv.Requests() {
		if c := r.Reply.StatusCode(); c >= 200 && c < 300 {
			got2xx++
			for _, a := range arrivals([]testenv.Request{r}) {
				perEvent[a.event]++
			}
		} else {
			gotFailed++
		}
	}
	// The outbox commits results asynchronously: wait for the counters to
	// settle rather than read them once.
	var m map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = d.metrics()
		if sumMetric(m, "deskhook_deliveries_total", `endpoint="rcv"`, `outcome="delivered"`) >= got2xx || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := sumMetric(m, "deskhook_deliveries_total", `endpoint="rcv"`, `outcome="delivered"`); v != got2xx {
		t.Errorf(`deskhook_deliveries_total{outcome="delivered"} = %v; the receiver answered 2xx to %v`, v, got2xx)
	}
	if v := sumMetric(m, "deskhook_deliveries_total", `endpoint="rcv"`, `outcome="failed"`); v != gotFailed {
		t.Errorf(`deskhook_deliveries_total{outcome="failed"} = %v; the receiver failed %v`, v, gotFailed)
	}
	for ev, n := range perEvent {
		if v := sumMetric(m, "deskhook_deliveries_total", `event="`+ev+`"`, `outcome="delivered"`); v != n {
			t.Errorf(`deskhook_deliveries_total{event=%q,outcome="delivered"} = %v; the receiver got %v`, ev, v, n)
		}
	}
	if v := sumMetric(m, "deskhook_delivery_attempt_seconds_count", `endpoint="rcv"`); v != got2xx+gotFailed {
		t.Errorf("deskhook_delivery_attempt_seconds_count = %v; the receiver got %v requests", v, got2xx+gotFailed)
	}
	for _, ev := range allEvents() {
		want := float64(load.Events[ev])
		if v := sumMetric(m, "deskhook_events_mapped_total", `event="`+ev+`"`); v != want {
			t.Errorf(`deskhook_events_mapped_total{event=%q} = %v; the simulator expects %v`, ev, v, want)
		}
	}
	if v := sumMetric(m, "deskhook_events_mapped_total"); v != float64(load.TotalEvents()) {
		t.Errorf("deskhook_events_mapped_total = %v, want %d", v, load.TotalEvents())
	}
	for _, family := range []string{
		"deskhook_delivery_attempt_seconds_bucket", "deskhook_delivery_attempt_seconds_sum",
		`deskhook_queue_depth{endpoint="rcv"}`, `deskhook_queue_oldest_pending_seconds{endpoint="rcv"}`,
		`deskhook_dead_letters{endpoint="rcv"}`, `deskhook_endpoint_disabled{endpoint="rcv"}`,
		"deskhook_slot_retained_wal_bytes", "deskhook_cdc_replication_lag_seconds", "deskhook_cdc_connected",
		"deskhook_cdc_transactions_total", "deskhook_outbox_commits_total", "deskhook_ready", "go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !hasMetric(m, family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	if v := m[`deskhook_queue_depth{endpoint="rcv"}`]; v != 0 {
		t.Errorf("deskhook_queue_depth = %v after everything was delivered", v)
	}
	if v := m[`deskhook_dead_letters{endpoint="rcv"}`]; v != 0 {
		t.Errorf("deskhook_dead_letters = %v", v)
	}
	if v := m["deskhook_cdc_connected"]; v != 1 {
		t.Errorf("deskhook_cdc_connected = %v", v)
	}
	if v := m["deskhook_cdc_transactions_total"]; v < float64(len(load.Tickets)) {
		t.Errorf("deskhook_cdc_transactions_total = %v", v)
	}
	t.Logf("%d events, %v requests (%v failed), %s", load.TotalEvents(), got2xx+gotFailed, gotFailed,
		strconv.FormatFloat(m["deskhook_outbox_commits_total"], 'f', 0, 64)+" outbox commits")
}

// hasMetric reports whether a sample's name{labels} starts with key.
func hasMetric(m map[string]float64, key string) bool {
	for k := range m {
		if k == key || strings.HasPrefix(k, key+"{") || strings.HasPrefix(k, strings.TrimSuffix(key, "}")) {
			return true
		}
	}
	return false
}

// metrics scrapes /metrics into name{labels} → value.
func (p *daemonProc) metrics() map[string]float64 {
	p.t.Helper()
	code, body, err := p.get("/metrics")
	if err != nil || code != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d %v", code, err)
	}
	return parseMetrics(body)
}

// parseMetrics reads the Prometheus text format's samples.
func parseMetrics(text string) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

// sumMetric adds the samples of family name whose labels include every
// one of labels (e.g. `outcome="delivered"`).
func sumMetric(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		fam, rest, _ := strings.Cut(k, "{")
		if fam != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

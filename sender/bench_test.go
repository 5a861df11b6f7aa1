package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// benchPayload is a canonical payload about the size of a Faveo ticket_reply.
var benchPayload = []byte(`{"event":"ticket_reply","replied_by":{"id":"1","first_name":"Mohammad","last_name":"Asif","email":"agent@example.com"},` +
	`"thread":{"ticket_id":"10","user_id":"1","poster":"support","body":"` + strings.Repeat("<p>reply text</p>", 100) +
	`","is_internal":"0","ticket":{"id":"10","ticket_number":"HDSK-AAAA-0010","status":"9","dept_id":"2"}}}`)

func benchEvents(pos change.Position, tickets ...int64) []mapping.Event {
	evs := make([]mapping.Event, len(tickets))
	for i, tk := range tickets {
		evs[i] = mapping.Event{ID: mapping.EventID(pos, uint32(i)), Type: mapping.TicketReply, Pos: pos, Index: uint32(i),
			CommitTime: time.Now(), TicketID: tk, Payload: benchPayload}
	}
	return evs
}

// BenchmarkCatchUp delivers a stored backlog (transactions of 5 events over
// many tickets) to one fast endpoint, the outbox fsync'd as in production.
// Receiver, sender and outbox share the process (and its 2 cores).
func BenchmarkCatchUp(b *testing.B) {
	for _, format := range []mapping.Format{mapping.FormatJSON, mapping.FormatForm} {
		b.Run(string(format), func(b *testing.B) {
			r := testenv.NewReceiver(b)
			r.SetDecode(false)
			r.SetKeep(false)
			path := filepath.Join(b.TempDir(), "outbox.db")
			reg := prometheus.NewRegistry()
			ob, err := outbox.Open(path, outbox.Options{NoSync: benchNoSync, ResultDelay: benchResultDelay, Registerer: reg, Log: benchLog})
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			ep := Endpoint{Name: "fast", URL: r.URL + "/", Format: format, Events: mapping.AllEvents}
			s, err := New(Config{Endpoints: []Endpoint{ep}}, ob, Options{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			n := 0
			for pos := change.Position(1); n < b.N; pos++ {
				k := min(5, b.N-n)
				tickets := make([]int64, k)
				for i := range tickets {
					tickets[i] = int64(n+i) % 20000
				}
				if err := ob.Append(ctx, pos, true, benchEvents(pos, tickets...)); err != nil {
					b.Fatal(err)
				}
				n += k
			}
			if err := ob.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			stopProfile := profilePhase(b, "catchup-"+string(format))
			start, cpu0, commits0 := time.Now(), cpuTime(), commits(b, reg)
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- s.Run(runCtx) }()
			waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Minute)
			defer cancelWait()
			if err := r.Wait(waitCtx, b.N); err != nil {
				b.Fatal(err)
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			stopProfile()
			b.StopTimer()
			cancel()
			<-done
			_ = ob.Flush(ctx)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/event")
			b.ReportMetric((commits(b, reg)-commits0)/float64(b.N), "commits/event")
		})
	}
}

// BenchmarkLiveLatency appends one-event transactions at a steady rate and
// reports append → arrival latency at the receiver (fsync on).
func BenchmarkLiveLatency(b *testing.B) {
	for _, rate := range []int{500, 2000} {
		b.Run(fmt.Sprintf("%d_per_s", rate), func(b *testing.B) {
			r := testenv.NewReceiver(b)
			r.SetDecode(false)
			r.SetKeep(false)
			var mu sync.Mutex
			sent := map[string]time.Time{}
			lat := make([]time.Duration, 0, b.N)
			r.OnRequest(func(req testenv.Request) {
				mu.Lock()
				lat = append(lat, req.Arrived.Sub(sent[req.Header.Get("webhook-id")]))
				mu.Unlock()
			})
			reg := prometheus.NewRegistry()
			ob, err := outbox.Open(filepath.Join(b.TempDir(), "outbox.db"),
				outbox.Options{Registerer: reg, ResultDelay: benchResultDelay, Log: benchLog})
			if err != nil {
				b.Fatal(err)
			}
			defer ob.Close()
			ep := Endpoint{Name: "fast", URL: r.URL + "/", Events: mapping.AllEvents}
			s, err := New(Config{Endpoints: []Endpoint{ep}}, ob, Options{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			b.ResetTimer()
			stopProfile := profilePhase(b, fmt.Sprintf("live%d", rate))
			cpu0, commits0 := cpuTime(), commits(b, reg)
			// Paced by the clock, not a ticker: a ticker drops the ticks its
			// reader was late for (and the reader shares the cores with the
			// pipeline), which lowered the rate actually offered.
			start, interval := time.Now(), time.Second/time.Duration(rate)
			for i := 0; i < b.N; i++ {
				if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				pos := change.Position(i + 1)
				evs := benchEvents(pos, int64(i%1000))
				mu.Lock()
				sent[evs[0].ID] = time.Now()
				mu.Unlock()
				if err := ob.Append(ctx, pos, true, evs); err != nil {
					b.Fatal(err)
				}
			}
			offered := float64(b.N) / time.Since(start).Seconds()
			waitCtx, cancelWait := context.WithTimeout(context.Background(), time.Minute)
			defer cancelWait()
			if err := r.Wait(waitCtx, b.N); err != nil {
				b.Fatal(err)
			}
			stopProfile()
			b.StopTimer()
			cpu, ncommits := cpuTime()-cpu0, commits(b, reg)-commits0
			cancel()
			<-done
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/event")
			b.ReportMetric(ncommits/float64(b.N), "commits/event")
			b.ReportMetric(offered, "offered/s")
			mu.Lock()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)]) / 1e6 }
			b.ReportMetric(q(0.5), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
			b.ReportMetric(q(1), "max_ms")
			mu.Unlock()
		})
	}
}

var benchNoSync = os.Getenv("BENCH_NOSYNC") != ""

// benchLog is the delivery log as the daemon runs it by default;
// BENCH_DELIVERY_LOG=off measures without it.
var benchLog = func() outbox.LogLimits {
	if os.Getenv("BENCH_DELIVERY_LOG") == "off" {
		return outbox.LogLimits{}
	}
	return outbox.LogLimits{Retention: 7 * 24 * time.Hour, MaxBytes: 256 << 20}
}()

// profilePhase writes a CPU profile of a benchmark's measured phase alone
// (without its setup, which -cpuprofile would include) to
// $BENCH_PROFILE_DIR/cpu-<name>.pprof when that variable is set.
func profilePhase(b *testing.B, name string) (stop func()) {
	dir := os.Getenv("BENCH_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "cpu-"+name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// commits reads the outbox's commit counter.
func commits(b *testing.B, g prometheus.Gatherer) float64 {
	mfs, err := g.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "deskhook_outbox_commits_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	b.Fatal("no deskhook_outbox_commits_total")
	return 0
}

// benchResultDelay sets the outbox's ResultDelay (BENCH_RESULT_DELAY=10ms;
// unset: the default).
var benchResultDelay, _ = time.ParseDuration(os.Getenv("BENCH_RESULT_DELAY"))

// cpuTime is the CPU time the process used so far (user and system). The
// benchmark shares the machine with its receiver, so CPU per event says more
// than wall time on a busy machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBareHTTP is the bound for BenchmarkCatchUp: plain keep-alive
// POSTs of the same body from 16 goroutines to the same receiver, no outbox.
func BenchmarkBareHTTP(b *testing.B) {
	r := testenv.NewReceiver(b)
	r.SetDecode(false)
	r.SetKeep(false)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var n atomic.Int64
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for n.Add(1) <= int64(b.N) {
				resp, err := c.Post(r.URL+"/", "application/json", bytes.NewReader(benchPayload))
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_µs/req")
}

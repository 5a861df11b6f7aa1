package bench

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// schedSampler follows one process of the server (the walsender that
// decodes for the daemon) through /proc/PID/schedstat: the CPU time it
// got and the time it spent runnable but waiting for a CPU. When the
// machine is saturated, the walsender, one process among the backends and
// the benchmark's threads, waits for a CPU while commits pile up behind it:
// what it waited is latency the whole pipeline inherits.
type schedSampler struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu      sync.Mutex
	samples []schedSample
}

type schedSample struct {
	at        time.Time
	cpu, wait time.Duration
}

// readSchedstat returns the CPU time and the run-queue wait of pid so far.
func readSchedstat(pid int) (cpu, wait time.Duration, ok bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0, 0, false
	}
	c, err1 := strconv.ParseInt(f[0], 10, 64)
	w, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return time.Duration(c), time.Duration(w), true
}

// procCPU is the CPU time process pid has used so far (false for pid 0 or
// where /proc cannot tell). A walsender or backend lives as long as its
// connection, so read at the end of a stream it is that stream's cost,
// its start-up included.
func procCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	cpu, _, ok := readSchedstat(pid)
	return cpu, ok
}

// sampleSched reads pid's schedstat every interval until finish; nil when
// the file cannot be read (not Linux, no schedstats).
func sampleSched(pid int, interval time.Duration) *schedSampler {
	if _, _, ok := readSchedstat(pid); !ok {
		return nil
	}
	s := &schedSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			at := time.Now() // before the read: a delay after it does not stretch the window
			if c, w, ok := readSchedstat(pid); ok {
				s.mu.Lock()
				s.samples = append(s.samples, schedSample{at: at, cpu: c, wait: w})
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// schedSummary is what the walsender got and waited for from `from` on.
type schedSummary struct {
	CPU, Wait time.Duration
	Elapsed   time.Duration
	// WorstWait is the most run-queue wait in any window of the given
	// length, and WorstAt when that window started.
	WorstWait time.Duration
	WorstAt   time.Time
}

// close stops the sampling; finish calls it.
func (s *schedSampler) close() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

func (s *schedSampler) finish(from time.Time, window time.Duration) (schedSummary, bool) {
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []schedSample
	for _, sm := range s.samples {
		if !sm.at.Before(from) {
			v = append(v, sm)
		}
	}
	if len(v) < 2 {
		return schedSummary{}, false
	}
	sum := schedSummary{CPU: v[len(v)-1].cpu - v[0].cpu, Wait: v[len(v)-1].wait - v[0].wait,
		Elapsed: v[len(v)-1].at.Sub(v[0].at)}
	j := 0
	for i := range v {
		for j < len(v)-1 && v[j+1].at.Sub(v[i].at) <= window {
			j++
		}
		if w := v[j].wait - v[i].wait; w > sum.WorstWait {
			sum.WorstWait, sum.WorstAt = w, v[i].at
		}
	}
	return sum, true
}

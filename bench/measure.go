package bench

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// mem is the process's resident memory as /proc/self/status reports it, in
// bytes. The daemon, the receiver and the simulator share the process.
type mem struct {
	RSS  int64 // VmRSS
	HWM  int64 // VmHWM: the peak since the last resetPeak
	Anon int64 // RssAnon: heap, stacks
	File int64 // RssFile: mapped files (the binary, bbolt's mmap)
}

func readMem() mem {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return mem{}
	}
	var m mem
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		*dst = kb << 10
	}
	return m
}

// settle returns freed memory to the OS and resets the peak, so the next
// scenario's peak is its own.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// cpuTime is the CPU time (user + system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// memSampler reads the process's memory every interval until stopped.
type memSampler struct {
	mu      sync.Mutex
	samples []memSample
	stop    chan struct{}
	done    chan struct{}
	onPeak  func() // called (from the sampler) when RSS reaches a new high
}

type memSample struct {
	at time.Time
	mem
}

func sampleMem(interval time.Duration, onPeak func()) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{}), onPeak: onPeak}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		var high int64
		for {
			m := readMem()
			s.mu.Lock()
			s.samples = append(s.samples, memSample{at: time.Now(), mem: m})
			s.mu.Unlock()
			if m.RSS > high+(4<<20) && s.onPeak != nil {
				high = m.RSS
				s.onPeak()
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

// finish stops the sampler and returns the peak (VmHWM, which also sees
// what happened between samples) and the median RSS of the samples taken at
// or after from (the steady state).
func (s *memSampler) finish(from time.Time) (peak, steady mem) {
	close(s.stop)
	<-s.done
	peak = readMem()
	s.mu.Lock()
	defer s.mu.Unlock()
	var rss, anon, file []int64
	for _, sm := range s.samples {
		peak.RSS = max(peak.RSS, sm.RSS)
		peak.Anon = max(peak.Anon, sm.Anon)
		peak.File = max(peak.File, sm.File)
		if !sm.at.Before(from) {
			rss, anon, file = append(rss, sm.RSS), append(anon, sm.Anon), append(file, sm.File)
		}
	}
	peak.RSS = max(peak.RSS, peak.HWM)
	steady = mem{RSS: median(rss), Anon: median(anon), File: median(file)}
	return peak, steady
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// Latency summarizes commit → receiver latencies, in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// summarize sorts d in place and returns its percentiles (nearest rank).
func summarize(d []time.Duration) *Latency {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(float64(len(d))*p+0.999999) - 1
		i = max(0, min(i, len(d)-1))
		return float64(d[i]) / 1e6
	}
	return &Latency{Samples: len(d), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: float64(d[len(d)-1]) / 1e6}
}

// rwSyscalls is how many read- and write-class system calls this whole
// process (daemon, receiver, simulator, the bench's samplers) has made so
// far, from /proc/self/io (syscr + syscw: read, readv, pread, write,
// writev, pwrite — Go's sockets use read and write, so every HTTP and
// PostgreSQL message counts; epoll, futex and fdatasync do not); false
// where that file cannot be read. Linux counts send and recv elsewhere, so
// this would undercount PostgreSQL's processes: it is for ours only.
func rwSyscalls() (int64, bool) {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	var n int64
	found := 0
	for _, l := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, false
		}
		n += c
		found++
	}
	return n, found == 2
}

// clockTick is the unit of /proc's CPU counters (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// machineBusy is the CPU time all cores spent busy so far (/proc/stat:
// everything but idle and iowait).
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// serverCPU is the CPU time used so far by the PostgreSQL server whose
// data directory is dataDir: the postmaster and its live children
// (backends, walsenders, the WAL writer...). Children that exited are
// not counted, so it errs low.
func serverCPU(dataDir string) time.Duration {
	raw, err := os.ReadFile(dataDir + "/postmaster.pid")
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	pm := strings.TrimSpace(first)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		pid := e.Name()
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces), from field 3.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 || (pid != pm && f[1] != pm) {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += ut + st
	}
	return time.Duration(ticks) * clockTick
}

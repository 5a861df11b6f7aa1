package bench

import (
	"testing"
	"time"
)

func TestSchedWorstWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := time.Millisecond
	cases := []struct {
		name      string
		waits     []time.Duration // cumulative run-queue wait at t0, t0+20ms, ...
		from      time.Duration
		wantWait  time.Duration
		wantWorst time.Duration
		wantAt    time.Duration
	}{
		{"steady", []time.Duration{0, 2 * ms, 4 * ms, 6 * ms, 8 * ms, 10 * ms, 12 * ms, 14 * ms}, 0, 14 * ms, 10 * ms, 0},
		{"one stall", []time.Duration{0, 0, 0, 20 * ms, 40 * ms, 60 * ms, 60 * ms, 60 * ms, 60 * ms}, 0, 60 * ms, 60 * ms, 0},
		{"stall before from", []time.Duration{0, 20 * ms, 40 * ms, 40 * ms, 40 * ms, 41 * ms, 41 * ms, 41 * ms, 41 * ms}, 60 * ms, 1 * ms, 1 * ms, 60 * ms},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &schedSampler{stop: make(chan struct{}), done: make(chan struct{})}
			close(s.done)
			for i, w := range c.waits {
				s.samples = append(s.samples, schedSample{at: t0.Add(time.Duration(i) * 20 * ms), cpu: time.Duration(i) * ms, wait: w})
			}
			sum, ok := s.finish(t0.Add(c.from), 100*ms)
			if !ok {
				t.Fatal("finish: no summary")
			}
			if sum.Wait != c.wantWait || sum.WorstWait != c.wantWorst || !sum.WorstAt.Equal(t0.Add(c.wantAt)) {
				t.Errorf("wait %v worst %v at +%v; want %v, %v at +%v", sum.Wait, sum.WorstWait, sum.WorstAt.Sub(t0),
					c.wantWait, c.wantWorst, c.wantAt)
			}
		})
	}
}

func TestTrackerKeepsReplyThreads(t *testing.T) {
	tr := newTracker("/fast", true)
	t0 := time.Unix(1000, 0)
	reply := eventKey{ticket: 1, event: "ticket_reply"}
	status := eventKey{ticket: 1, event: "ticket_status_updated"}
	tr.commits = []stamp{{key: reply, at: t0, thread: 7}, {key: status, at: t0}, {key: reply, at: t0.Add(time.Second), thread: 9}}
	tr.arrivals = []stamp{{key: reply, at: t0.Add(2 * time.Millisecond)}, {key: status, at: t0.Add(3 * time.Millisecond)},
		{key: reply, at: t0.Add(time.Second + time.Millisecond)}}
	_, replies, _ := tr.latencies(t0.Add(time.Millisecond), nil) // the first reply is before from
	if len(replies) != 1 || replies[0].thread != 9 || !replies[0].committed.Equal(t0.Add(time.Second)) ||
		!replies[0].arrived.Equal(t0.Add(time.Second+time.Millisecond)) {
		t.Errorf("replies = %+v; want thread 9 committed at +1s, arriving at +1.001s", replies)
	}
}

package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// largeRows: issue 12's point 7, memory bounded in bytes whatever the rows,
// in two phases measured apart (the peak of each is its own):
//
//   - burst: a ticket whose first thread is a 10 MB mail, then five 10 MB
//     replies in one transaction (each reply's payload carries the first
//     thread: five events of 20 MB);
//   - backlog: three tickets whose first threads are 5 MB, thirty 5 MB
//     replies stored while the endpoint is disabled, then enabled.
//
// The receiver here reads each body into nothing (a counter), so the
// process's peak is the daemon's and the simulator's, not the receiver's
// copies of 20 MB requests. The end-to-end test (TestMemoryLarge*) checks
// the bodies byte for byte on the real binary.
func (e *env) largeRows(ctx context.Context, _ *Report) (*Result, error) {
	burstReplies, backlogReplies := e.scaled(5, 2), e.scaled(30, 6)
	db, pool, closeDB, err := e.scenarioDB(ctx, "largerows", 4, false)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	if _, err := cdc.Setup(ctx, e.sourceConfig(db)); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	rcv, err := startCountingReceiver()
	if err != nil {
		return nil, err
	}
	defer rcv.close()
	ep := sender.Endpoint{Name: "large", URL: rcv.url + "/large", Events: []string{"ticket_created", "ticket_reply"}}
	p, err := e.startDaemon(ctx, db, []sender.Endpoint{ep}, nil)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	hd := testenv.NewHelpdesk(pool)
	res := &Result{Name: "largerows", Expected: 1 + burstReplies + 3 + backlogReplies}
	wait := func(n int) error {
		deadline := time.Now().Add(10 * time.Minute)
		for rcv.delivered() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("%d of %d events delivered within 10 minutes", rcv.delivered(), n)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		return nil
	}

	// The bodies are made before each phase is measured.
	first := testenv.LargeBody(1, 10<<20)
	var bodies []string
	for i := range burstReplies {
		bodies = append(bodies, testenv.LargeBody(uint64(10+i), 10<<20))
	}
	settle()
	e.say("largerows: a ticket with a 10 MB first thread, %d 10 MB replies in one transaction...", burstReplies)
	m := e.measure("largerows-burst", true)
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{Body: first})
	if err == nil {
		_, err = hd.AgentReplies(ctx, w.TicketID, testenv.AgentAlice, bodies...)
	}
	first, bodies = "", nil // the simulator's part is done
	if err == nil {
		err = wait(1 + burstReplies)
	}
	burst := &Result{}
	m.done(burst, 1+burstReplies, time.Time{})
	if err != nil {
		return res, fmt.Errorf("burst: %w", err)
	}
	burstSecs := time.Since(m.start).Seconds()

	// The backlog: stored while the endpoint is disabled.
	ob := p.d.Outbox()
	if err := ob.Disable(ctx, "large", outbox.DisabledByOperator, "bench: large backlog"); err != nil {
		return res, err
	}
	var firsts []string
	for i := range 3 {
		firsts = append(firsts, testenv.LargeBody(uint64(100+i), 5<<20))
	}
	settle()
	e.say("largerows: %d 5 MB replies on 3 tickets with 5 MB first threads, stored while the endpoint is disabled...", backlogReplies)
	m = e.measure("largerows-backlog", true)
	for i := range firsts {
		w, err := hd.CreateTicket(ctx, testenv.NewTicket{Body: firsts[i]})
		if err != nil {
			return res, err
		}
		firsts[i] = ""
		for j := i; j < backlogReplies; j += 3 {
			if _, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentBob, testenv.LargeBody(uint64(200+j), 5<<20)); err != nil {
				return res, err
			}
		}
	}
	firsts = nil
	queued := 3 + backlogReplies
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		depth, err := queueDepth(ob, "large")
		if err != nil {
			return res, err
		}
		if depth >= int64(queued) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("backlog: %d of %d events stored within 5 minutes", depth, queued)
		}
	}
	stored := time.Now()
	if err := ob.Enable(ctx, "large"); err != nil {
		return res, err
	}
	err = wait(res.Expected)
	backlog := &Result{}
	m.done(backlog, queued, time.Time{})
	if err != nil {
		return res, fmt.Errorf("backlog: %w", err)
	}
	res.Events = rcv.delivered()
	res.Seconds = burstSecs + time.Since(m.start).Seconds()
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.RSSPeak, res.CPUSeconds = burst.RSSPeak, burst.CPUSeconds+backlog.CPUSeconds
	res.CPUPer1000 = res.CPUSeconds * 1000 / float64(res.Events)
	if backlog.RSSPeak.RSS > burst.RSSPeak.RSS {
		res.RSSPeak = backlog.RSSPeak
	}
	res.extra("burst_rss_peak_mb", burst.RSSPeak.RSS)
	res.extra("backlog_rss_peak_mb", backlog.RSSPeak.RSS)
	res.extra("backlog_drain_s", time.Since(stored).Seconds())
	res.extra("body_mb", float64(rcv.bytes())/(1<<20))
	res.note("burst (%d×10 MB in one transaction) RSS peak %.1f MB; backlog (%d×5 MB, disabled then enabled) %.1f MB, drained in %.1fs; %.0f MB of bodies received",
		burstReplies, burst.RSSPeak.RSS, backlogReplies, backlog.RSSPeak.RSS, res.Extra["backlog_drain_s"], res.Extra["body_mb"])
	return res, nil
}

// countingReceiver answers 200 to every request after reading its body
// into a counter, and counts the distinct webhook ids it accepted.
type countingReceiver struct {
	url string
	srv *http.Server

	mu  sync.Mutex
	ids map[string]bool
	n   int64
}

func startCountingReceiver() (*countingReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &countingReceiver{url: "http://" + ln.Addr().String(), ids: map[string]bool{}}
	r.srv = &http.Server{ReadHeaderTimeout: 30 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n, err := io.Copy(io.Discard, req.Body)
		if err != nil || (req.ContentLength >= 0 && n != req.ContentLength) {
			http.Error(w, "short body", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.ids[req.Header.Get("Webhook-Id")] = true
		r.n += n
		r.mu.Unlock()
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *countingReceiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids)
}

func (r *countingReceiver) bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *countingReceiver) close() { _ = r.srv.Close() }

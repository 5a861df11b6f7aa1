package main

import (
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestCrashSIGKILL is issue 5's crash test: the real binary's `run` (cdc →
// mapping → outbox → sender, the outbox fsyncing as in production) is
// killed with SIGKILL at random points during a 5,000-event load and
// restarted 5 times. At the end every event was delivered at least once,
// every duplicate carries the same webhook-id and body, and each ticket's
// events first arrived in the order of its actions.
func TestCrashSIGKILL(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("log")["level"] = "info"
	e.writeConfig()
	e.setup()
	crashDuringLoad(t, e, startDaemon(t, e.cfgPath, e.admin), func(seed int64) (testenv.LoadResult, error) {
		// 1,000 tickets × (created + 2 replies + 2 updates) = 5,000
		// events, paced over about 25 s so the kills land during it.
		return testenv.Load(context.Background(), e.db.Pool(t), testenv.LoadConfig{
			Tickets: 1000, Replies: 2, Updates: 2, Writers: 4, Rate: 200, Seed: seed})
	})
}

// loadOutcome is what a load in the background ended with.
type loadOutcome struct {
	res testenv.LoadResult
	err error
}

// loadInBackground runs load in a goroutine; its outcome comes on the
// channel.
func loadInBackground(load func() (testenv.LoadResult, error)) <-chan loadOutcome {
	ch := make(chan loadOutcome, 1)
	go func() {
		res, err := load()
		ch <- loadOutcome{res, err}
	}()
	return ch
}

// crashDuringLoad runs load (given a random seed) of 5,000 events while
// the daemon d is killed with SIGKILL at random points and restarted, 5
// times; then it waits for every event and checks the delivery guarantees
// (checkDeliveries).
func crashDuringLoad(t *testing.T, e *e2e, d *daemonProc, load func(seed int64) (testenv.LoadResult, error)) {
	t.Helper()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)
	loaded := loadInBackground(func() (testenv.LoadResult, error) { return load(seed) })
	for kill := 1; kill <= 5; kill++ {
		time.Sleep(time.Duration(300+rng.IntN(3700)) * time.Millisecond)
		if d.exited() {
			t.Fatalf("deskhook run exited on its own (%d) before kill %d", d.code, kill)
		}
		d.signal(syscall.SIGKILL)
		if code := d.wait(10 * time.Second); code != -int(syscall.SIGKILL) {
			t.Fatalf("kill %d: exit %d, want death by SIGKILL", kill, code)
		}
		t.Logf("kill %d: %d requests received", kill, e.rcv.Count())
		d = startDaemon(t, e.cfgPath, e.admin)
	}
	r := <-loaded
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.TotalEvents() != 5000 {
		t.Fatalf("the load expects %d events, want 5000", r.res.TotalEvents())
	}
	d.waitReadyz(200, 60*time.Second)
	e.waitDelivered(r.res.TotalEvents(), 120*time.Second)
	time.Sleep(500 * time.Millisecond) // anything extra would arrive now
	checkDeliveries(t, r.res, e.rcv.Requests())
	d.stop()
}

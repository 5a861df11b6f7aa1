package sender

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// The crash test runs outbox and sender in a child process (this test
// binary again), kills it with SIGKILL at random points and restarts it,
// as the daemon's end-to-end test does with PostgreSQL in front. The child
// plays the source: after a restart it resends from a little before the
// stored position, as a replication slot does from its confirmed LSN.

const (
	crashEnvDir  = "DESKHOOK_SENDER_CRASH_DIR"
	crashEnvURL  = "DESKHOOK_SENDER_CRASH_URL"
	crashTxns    = 1500
	crashTickets = 23
)

// crashEvents are the deterministic events of transaction pos: 1-3 events,
// so resending yields the same ids and bodies.
func crashEvents(pos change.Position) []mapping.Event {
	n := int(pos%3) + 1
	evs := make([]mapping.Event, n)
	for i := range evs {
		tk := int64(pos*7+change.Position(i)) % crashTickets
		p, _ := json.Marshal(payload{Event: mapping.TicketReply, Ticket: strconv.FormatInt(tk, 10), Seq: fmt.Sprintf("%d.%d", pos, i)})
		evs[i] = mapping.Event{ID: mapping.EventID(pos, uint32(i)), Type: mapping.TicketReply, Pos: pos, Index: uint32(i),
			CommitTime: time.Unix(int64(pos), 0), TicketID: tk, Payload: p}
	}
	return evs
}

// TestCrashHelperProcess is not a test: TestSIGKILLAndRestart runs it.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		return
	}
	ctx := context.Background()
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	ep := Endpoint{Name: "r", URL: os.Getenv(crashEnvURL), Format: mapping.FormatJSON, Events: mapping.AllEvents,
		MaxInFlight: 8, Retry: Retry{Schedule: fast}}
	s, err := New(Config{Endpoints: []Endpoint{ep}}, ob, Options{})
	if err != nil {
		fmt.Println("sender:", err)
		os.Exit(3)
	}
	go func() { _ = s.Run(ctx) }()
	from := max(ob.Position(), 3) - 2 // resend a little: the outbox skips what it has
	fmt.Println("started at", from)
	for pos := from; pos <= crashTxns; pos++ {
		evs := crashEvents(pos)
		if pos%10 == 0 && len(evs) > 1 { // a transaction in chunks
			if err := ob.Append(ctx, pos, false, evs[:1]); err != nil {
				os.Exit(4)
			}
			evs = evs[1:]
		}
		if err := ob.Append(ctx, pos, true, evs); err != nil {
			os.Exit(4)
		}
		time.Sleep(200 * time.Microsecond)
	}
	for {
		_ = ob.Flush(ctx)
		eps, _ := ob.Endpoints()
		if len(eps) == 1 && eps[0].Depth == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("done")
	os.Exit(0)
}

func TestSIGKILLAndRestart(t *testing.T) {
	r := testenv.NewReceiver(t)
	r.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		if req.Seq%50 == 0 {
			return testenv.Reply{Status: 500}, true // some failures to retry
		}
		return testenv.Reply{}, false
	})
	dir := t.TempDir()
	run := func(killAfter time.Duration) (finished bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvURL+"="+r.URL+"/")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		var timeout <-chan time.Time
		if killAfter > 0 {
			timeout = time.After(killAfter)
		} else {
			timeout = time.After(60 * time.Second)
		}
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					err := cmd.Wait()
					t.Fatalf("child exited without finishing: %v", err)
				}
				if l == "done" {
					_ = cmd.Wait()
					return true
				}
				t.Logf("child: %s", l)
			case <-timeout:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				_ = cmd.Wait()
				if killAfter == 0 {
					t.Fatal("child did not finish within a minute")
				}
				return false
			}
		}
	}
	for i := 0; i < 5; i++ {
		kill := time.Duration(150+rand.IntN(500)) * time.Millisecond
		if run(kill) {
			t.Logf("run %d finished before its kill at %v", i+1, kill)
		} else {
			t.Logf("run %d killed after %v; %d requests so far", i+1, kill, r.Count())
		}
	}
	if !run(0) {
		t.Fatal("last run did not finish")
	}

	// Every event at least once, duplicates identical, per-ticket order of
	// first deliveries kept.
	bodies := map[string]string{}
	lastPerTicket := map[string]string{}
	dups := 0
	for _, req := range r.Requests() {
		if req.Reply.StatusCode() != 200 {
			continue
		}
		id := req.Header.Get("webhook-id")
		if b, seen := bodies[id]; seen {
			dups++
			if b != string(req.Body) {
				t.Errorf("%s delivered again with another body", id)
			}
			continue
		}
		bodies[id] = string(req.Body)
		tk := ticketOf(req)
		if last := lastPerTicket[tk]; last != "" && id < last {
			t.Errorf("ticket %s: %s delivered after %s", tk, id, last)
		}
		lastPerTicket[tk] = id
	}
	want := 0
	for pos := change.Position(1); pos <= crashTxns; pos++ {
		for _, ev := range crashEvents(pos) {
			want++
			if _, ok := bodies[ev.ID]; !ok {
				t.Errorf("%s never delivered", ev.ID)
			}
		}
	}
	t.Logf("%d events, %d requests, %d duplicate deliveries after 5 SIGKILLs", want, r.Count(), dups)
	if len(bodies) != want {
		t.Errorf("%d distinct events delivered, want %d", len(bodies), want)
	}
}

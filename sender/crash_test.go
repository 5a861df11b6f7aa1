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
// Like the real mapper, which starts cold after a restart and reads
// related rows as they are now, it maps a resent transaction to the same
// ids but other bodies (each run's number is in them): a receiver must
// still see one body per id.

const (
	crashEnvDir  = "DESKHOOK_SENDER_CRASH_DIR"
	crashEnvURL  = "DESKHOOK_SENDER_CRASH_URL"
	crashEnvRun  = "DESKHOOK_SENDER_CRASH_RUN"
	crashTxns    = 1500
	crashTickets = 23
)

// crashPayload is a crash test event's body: payload, and the run that
// mapped it.
type crashPayload struct {
	payload
	MappedBy string `json:"mapped_by"`
}

// crashEvents are the events of transaction pos as run maps them: 1-3
// events, the same ids in every run, bodies naming the run.
func crashEvents(pos change.Position, run string) []mapping.Event {
	n := int(pos%3) + 1
	evs := make([]mapping.Event, n)
	for i := range evs {
		tk := int64(pos*7+change.Position(i)) % crashTickets
		p, _ := json.Marshal(crashPayload{MappedBy: run,
			payload: payload{Event: mapping.TicketReply, Ticket: strconv.FormatInt(tk, 10), Seq: fmt.Sprintf("%d.%d", pos, i)}})
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
		evs := crashEvents(pos, os.Getenv(crashEnvRun))
		if pos%10 == 0 && len(evs) > 1 { // a transaction in chunks
			if err := ob.Append(ctx, pos, false, evs[:1]); err != nil {
				os.Exit(4)
			}
			evs = evs[1:]
		}
		if err := ob.Append(ctx, pos, true, evs); err != nil {
			os.Exit(4)
		}
		// Slow enough for the sender to keep up: it sends each event as
		// soon as it may, where sending before the commit would show.
		time.Sleep(time.Millisecond)
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
	runs := 0
	// run runs the child until it finishes, or kills it after killAfter or
	// once the receiver counted killAt requests (either 0: not).
	run := func(killAfter time.Duration, killAt int) (finished bool) {
		runs++
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$")
		cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvURL+"="+r.URL+"/", crashEnvRun+"="+strconv.Itoa(runs))
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
		mustFinish := killAfter == 0 && killAt == 0
		if killAfter == 0 {
			killAfter = time.Minute
		}
		timeout := time.After(killAfter)
		poll := time.NewTicker(time.Millisecond)
		defer poll.Stop()
		kill := func() bool {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			if mustFinish {
				t.Fatal("child did not finish within a minute")
			}
			return false
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
				return kill()
			case <-poll.C:
				if killAt > 0 && r.Count() >= killAt {
					return kill()
				}
			}
		}
	}
	// The first run is killed while it delivers (the load is ~3,000
	// events), so that later runs map again what it had appended: bodies
	// of several runs reach the receiver.
	killAt := 100 + rand.IntN(1500)
	if run(0, killAt) {
		t.Fatalf("run 1 finished before its kill at %d requests", killAt)
	}
	t.Logf("run 1 killed at %d requests", r.Count())
	for i := 1; i < 5; i++ {
		kill := time.Duration(150+rand.IntN(500)) * time.Millisecond
		if run(kill, 0) {
			t.Logf("run %d finished before its kill at %v", i+1, kill)
		} else {
			t.Logf("run %d killed after %v; %d requests so far", i+1, kill, r.Count())
		}
	}
	if !run(0, 0) {
		t.Fatal("last run did not finish")
	}

	// Every event at least once, every delivery of an id with the same body
	// (whatever its reply: a receiver may have acted on one that failed),
	// per-ticket order of first deliveries kept.
	bodies := map[string]string{}
	for _, req := range r.Requests() {
		id := req.Header.Get("webhook-id")
		if b, seen := bodies[id]; seen && b != string(req.Body) {
			t.Errorf("%s delivered again with another body:\n%s\n%s", id, b, req.Body)
		} else if !seen {
			bodies[id] = string(req.Body)
		}
	}
	mappedBy := map[string]bool{}
	for _, b := range bodies {
		var p crashPayload
		_ = json.Unmarshal([]byte(b), &p)
		mappedBy[p.MappedBy] = true
	}
	if len(mappedBy) < 2 {
		// Then every body came from one run, and the test could not tell
		// a body mapped again from the first one.
		t.Errorf("every event was mapped by run(s) %v: the kills did not split the load", mappedBy)
	}
	clear(bodies)
	lastPerTicket := map[string]string{}
	dups := 0
	for _, req := range r.Requests() {
		if req.Reply.StatusCode() != 200 {
			continue
		}
		id := req.Header.Get("webhook-id")
		if _, seen := bodies[id]; seen {
			dups++
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
		for _, ev := range crashEvents(pos, "") {
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

package outbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

// TestCompactHelperProcess is not a test: TestCompactKilled runs the test
// binary again with it to compact a store in a process it can kill.
func TestCompactHelperProcess(t *testing.T) {
	path := os.Getenv("DESKHOOK_OUTBOX_COMPACT_HELPER")
	if path == "" {
		return // not the helper: nothing to do
	}
	fmt.Println("compacting")
	if _, err := Compact(path, time.Second); err != nil {
		fmt.Println("compact failed:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// TestCompactKilled: store compact killed with SIGKILL at any moment
// leaves a whole store holding everything, old or compacted, and a later
// compact runs over what it left.
func TestCompactKilled(t *testing.T) {
	path := sampleStore(t)
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	big := bytes.Repeat([]byte("x"), 256<<10)
	for pos := change.Position(sampleEvents + 1); pos <= sampleEvents+60; pos++ {
		evs := txn(pos, 1)
		evs[0].Payload = big
		mustAppend(t, o, pos, true, evs)
	}
	mustFlush(t, o)
	for pos := change.Position(sampleEvents + 1); pos <= sampleEvents+50; pos++ {
		o.Record(Result{Endpoint: "a", Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}},
			Result{Endpoint: "b", Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}})
	}
	mustFlush(t, o)
	wantA, wantB := pendingKeys(t, o, "a"), pendingKeys(t, o, "b")
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	original := path + ".original"
	copyFile(t, path, original)

	compacted := 0
	for _, delay := range []time.Duration{0, 2, 5, 10, 20, 40, 80, 160, 400, 1500} {
		copyFile(t, original, path)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompactHelperProcess$")
		cmd.Env = append(os.Environ(), "DESKHOOK_OUTBOX_COMPACT_HELPER="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "compacting" {
			t.Fatalf("helper: %q", line)
		}
		time.Sleep(delay * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("killed after %dms: %v", delay, err)
		}
		if orig, _ := os.Stat(original); fi.Size() < orig.Size() {
			compacted++
		}
		rep, err := Check(path, time.Second)
		if err != nil || !rep.OK() {
			t.Fatalf("killed after %dms: check: %v %+v", delay, err, rep)
		}
		o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
		gotA, gotB := pendingKeys(t, o, "a"), pendingKeys(t, o, "b")
		dl, err := o.DeadLetters(DeadFilter{})
		_ = o.Close()
		if !equalKeys(gotA, wantA) || !equalKeys(gotB, wantB) || err != nil || len(dl) != sampleDead {
			t.Fatalf("killed after %dms: a %d, b %d pending, %d dead letters (%v); want %d, %d, %d",
				delay, len(gotA), len(gotB), len(dl), err, len(wantA), len(wantB), sampleDead)
		}
	}
	t.Logf("%d of 10 kills came after the compacted file was in place", compacted)
	if _, err := Compact(path, time.Second); err != nil {
		t.Fatalf("compact after the kills: %v", err)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale copy is left after a whole compact: %v", err)
	}
}

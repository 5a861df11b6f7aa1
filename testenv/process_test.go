package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const helperEnv = "DESKHOOK_TESTENV_HELPER"

// TestHelperProcess is not a test of its own: TestParallelProcesses runs the
// test binary again with helperEnv set, to act as another test process.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	if strings.HasPrefix(mode, "mariadb") {
		mariadbHelper(t, mode)
		return
	}
	db := Postgres(t)
	db.Exec(t, "INSERT INTO audit_log (message) VALUES ($1)", mode)
	var n int
	if err := db.Pool(t).QueryRow(context.Background(), "SELECT count(*) FROM audit_log").Scan(&n); err != nil || n != 1 {
		t.Fatalf("audit_log has %d rows (%v), want only this process's one", n, err)
	}
	fmt.Printf("HELPER db=%s port=%d dir=%s\n", db.Name, db.Server.Port, db.Server.dir)
	if mode == "panic" {
		panic("helper panics on purpose")
	}
}

var helperLine = regexp.MustCompile(`HELPER db=(\S+) port=(\d+) dir=(\S+)`)

type helperResult struct {
	db, port, dir string
	out           string
	err           error
}

func runHelper(t *testing.T, tmp, mode string) helperResult {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.timeout=3m")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, DSNEnv+"=") && !strings.HasPrefix(kv, MySQLDSNEnv+"=") && !strings.HasPrefix(kv, "TMPDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+mode, "TMPDIR="+tmp)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := helperResult{out: out.String(), err: err}
	if m := helperLine.FindStringSubmatch(r.out); m != nil {
		r.db, r.port, r.dir = m[1], m[2], m[3]
	}
	return r
}

// Two test processes started together (as go test ./... runs packages)
// each get their own cluster and database; they build the per-machine cache
// once between them; their clusters vanish when they exit, also when a test
// panics.
func TestParallelProcesses(t *testing.T) {
	t.Parallel()
	// A TMPDIR of their own, so the two processes race to build the cache.
	tmp, err := os.MkdirTemp("", "deskhook-parallel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o711); err != nil { // the server user must get through
		t.Fatal(err)
	}

	results := make([]helperResult, 2)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runHelper(t, tmp, fmt.Sprintf("process-%d", i))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil || r.db == "" {
			t.Fatalf("helper %d: %v\n%s", i, r.err, r.out)
		}
		if !strings.HasPrefix(r.dir, tmp) {
			t.Errorf("helper %d cluster in %s, want under its TMPDIR %s", i, r.dir, tmp)
		}
	}
	a, b := results[0], results[1]
	if a.db == b.db || a.port == b.port || a.dir == b.dir {
		t.Errorf("helpers share a database, port or cluster: %+v / %+v", a, b)
	}
	entries, _ := filepath.Glob(filepath.Join(tmp, "deskhook-testenv-*", "pg*"))
	if len(entries) != 1 {
		t.Errorf("cache entries %v, want exactly one built between the two processes", entries)
	}

	panicked := runHelper(t, tmp, "panic")
	if panicked.err == nil || !strings.Contains(panicked.out, "helper panics on purpose") || panicked.dir == "" {
		t.Fatalf("panicking helper: %v\n%s", panicked.err, panicked.out)
	}

	// Nobody closed the shared clusters: their reapers stop them and remove
	// their directories once the processes are gone.
	for _, r := range append(results, panicked) {
		waitGone(t, r.dir)
	}
}

func waitGone(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("cluster dir %s still there after its process exited", dir)
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

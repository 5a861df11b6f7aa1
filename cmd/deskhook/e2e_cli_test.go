package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

var subcommands = []string{"run", "setup", "teardown", "check", "status", "dlq", "endpoints", "demo", "version"}

// TestCLIUsage: version, help of each subcommand, usage errors.
func TestCLIUsage(t *testing.T) {
	t.Parallel()
	if res := mustDeskhook(t, "version"); res.stdout != "deskhook "+e2eVersion+"\n" {
		t.Errorf("version: %s", res)
	}
	if res := deskhook(t, nil, "--version"); res.code != 0 || !strings.Contains(res.stdout, e2eVersion) {
		t.Errorf("--version: %s", res)
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"-h"}} {
		res := deskhook(t, nil, args...)
		if res.code != 0 {
			t.Errorf("%v: %s", args, res)
		}
		for _, c := range subcommands {
			if !strings.Contains(res.stdout, "  "+c+" ") {
				t.Errorf("%v does not list %s:\n%s", args, c, res.stdout)
			}
		}
	}
	helps := [][]string{{"dlq", "list", "--help"}, {"dlq", "show", "-h"}, {"dlq", "replay", "--help"}, {"dlq", "drop", "--help"},
		{"endpoints", "list", "--help"}, {"endpoints", "enable", "--help"}, {"endpoints", "disable", "-h"}}
	for _, c := range subcommands {
		helps = append(helps, []string{c, "--help"})
	}
	for _, args := range helps {
		res := deskhook(t, nil, args...)
		out := res.stdout + res.stderr
		if res.code != 0 || !strings.Contains(out, "deskhook "+args[0]) {
			t.Errorf("deskhook %s: want exit 0 and usage; %s", strings.Join(args, " "), res)
		}
		if strings.Contains(out, "deskhook: ") {
			t.Errorf("deskhook %s printed an error: %s", strings.Join(args, " "), res)
		}
		for _, o := range []string{res.stdout, res.stderr} {
			if o != "" && (!strings.HasSuffix(o, "\n") || strings.HasSuffix(o, "\n\n")) {
				t.Errorf("deskhook %s: output does not end with exactly one newline: %q", strings.Join(args, " "), tail(o, 80))
			}
		}
	}
	usageErrors := [][]string{
		{}, {"frobnicate"}, {"status", "--nope"}, {"run", "extra"}, {"setup", "extra"}, {"dlq"}, {"dlq", "undo"},
		{"dlq", "show"}, {"dlq", "replay"}, {"dlq", "drop"}, {"dlq", "list", "--from", "yesterday"}, {"dlq", "list", "a", "b"},
		{"endpoints"}, {"endpoints", "enable"}, {"endpoints", "rename", "x"}, {"endpoints", "list", "x"},
		{"demo", "--tickets", "0"}, {"version", "--nope"},
		{"-c"}, {"-c", "x.yaml"}, {"--config=x.yaml"}, {"-c", "x.yaml", "frobnicate"},
	}
	for _, args := range usageErrors {
		res := deskhook(t, nil, args...)
		if res.code != 2 {
			t.Errorf("deskhook %s: want exit 2 (usage); %s", strings.Join(args, " "), res)
		}
		if res.stderr == "" {
			t.Errorf("deskhook %s: nothing on stderr", strings.Join(args, " "))
		}
	}
}

// TestCLIBadConfig: every command that reads the config exits 2 on a bad
// one, naming the file and the YAML path of each problem.
func TestCLIBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`
source: {dsn: "postgres://u@127.0.0.1:1/db", slot: Bad-Slot}
endpoints:
  - url: https://ok.example.com/
  - url: ftp://x
    timeout: soon
loglevel: debug
`), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yaml")
	cmds := [][]string{{"run"}, {"setup"}, {"teardown"}, {"check"}, {"status"}, {"status", "--json"}, {"dlq", "list"},
		{"dlq", "replay", "--all"}, {"endpoints", "list"}, {"endpoints", "enable", "x"}}
	problems := []string{`source.slot: must be 1-63 lowercase letters, digits or underscores (got "Bad-Slot")`,
		`endpoints[1].url: must be http or https (got "ftp://x")`, `endpoints[1].timeout: must be a duration`,
		"loglevel: unknown key (line 7)"}
	for _, args := range cmds {
		res := deskhook(t, nil, append(args, "-c", bad)...)
		if res.code != 2 {
			t.Errorf("deskhook %s with a bad config: want exit 2; %s", strings.Join(args, " "), res)
		}
		if args[0] == "check" {
			// check reports on stdout, each problem once on a FAIL line
			// naming the file, and nothing on stderr.
			for _, want := range problems {
				if n := strings.Count(res.stdout, "FAIL  config "+bad+": "+want); n != 1 {
					t.Errorf("check: %d FAIL lines with %q, want 1: %s", n, want, res)
				}
			}
			if lines := strings.Split(strings.TrimSpace(res.stdout), "\n"); len(lines) != len(problems)+1 ||
				lines[len(lines)-1] != fmt.Sprintf("%d check(s) failed", len(problems)) || res.stderr != "" {
				t.Errorf("check with a bad config: every line a FAIL, then the count, nothing else: %s", res)
			}
			continue
		}
		for _, want := range append([]string{bad}, problems...) {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("deskhook %s: stderr lacks %q: %s", strings.Join(args, " "), want, res)
			}
		}
		res = deskhook(t, nil, append(args, "-c", missing)...)
		if res.code != 2 || !strings.Contains(res.stderr, missing) {
			t.Errorf("deskhook %s with a missing config: want exit 2 naming it; %s", strings.Join(args, " "), res)
		}
	}
	// A valid config whose database does not answer: check and setup say
	// so and exit 1.
	unreachable := filepath.Join(dir, "unreachable.yaml")
	if err := os.WriteFile(unreachable, []byte("source: {dsn: \"postgres://u@"+freePort(t)+"/db?connect_timeout=2\"}\n"+
		"endpoints: [{url: \"http://127.0.0.1:1/\"}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := deskhook(t, nil, "check", "-c", unreachable)
	if res.code != 1 || !strings.Contains(res.stdout, "FAIL  connection") || !strings.Contains(res.stdout, "fix: check source.dsn") {
		t.Errorf("check with the database unreachable: %s", res)
	}
	if res := deskhook(t, nil, "setup", "-c", unreachable); res.code != 1 || !strings.Contains(res.stderr, "connection refused") {
		t.Errorf("setup with the database unreachable: %s", res)
	}

	// DESKHOOK_CONFIG names the default config file.
	res = deskhook(t, []string{"DESKHOOK_CONFIG=" + bad}, "status")
	if res.code != 2 || !strings.Contains(res.stderr, bad) {
		t.Errorf("DESKHOOK_CONFIG not used: %s", res)
	}
}

// TestCLILifecycle: setup (twice), check, run, status and endpoints while
// the daemon runs and while it does not, teardown.
func TestCLILifecycle(t *testing.T) {
	t.Parallel()
	e := newE2E(t)

	res := e.run("status")
	if res.code != 1 || !strings.Contains(res.stderr, "does not exist yet") {
		t.Errorf("status before the first start: want exit 1 saying the store does not exist; %s", res)
	}
	res = e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  publication`).MatchString(res.stdout) ||
		!regexp.MustCompile(`(?m)^FAIL  slot`).MatchString(res.stdout) || !strings.Contains(res.stdout, "deskhook setup") {
		t.Errorf("check before setup: want exit 1, FAIL publication and slot, pointing at setup; %s", res)
	}

	first := e.must("setup")
	if !strings.Contains(first.stdout, e.slot) {
		t.Errorf("setup does not say it created slot %s: %s", e.slot, first)
	}
	second := e.must("setup")
	if !strings.Contains(second.stdout, "nothing to do") {
		t.Errorf("second setup: want nothing to do; %s", second)
	}
	res = e.must("check")
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		// The test cluster leaves max_slot_wal_keep_size unbounded: a
		// warning with its fix, the only one.
		if !strings.HasPrefix(line, "ok    ") && !strings.HasPrefix(line, "WARN  max_slot_wal_keep_size: ") &&
			!strings.HasPrefix(line, "      fix: ALTER SYSTEM SET max_slot_wal_keep_size") {
			t.Errorf("check after setup: line %q is not ok\n%s", line, res.stdout)
		}
	}
	for _, want := range []string{"ok    config", "ok    connection", "ok    wal_level", "ok    publication", "ok    slot"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("check lacks %q:\n%s", want, res.stdout)
		}
	}

	d := e.start()
	ctx := context.Background()
	load := e.load(ctx, testenv.LoadConfig{Tickets: 4, Replies: 1, Updates: 2, Seed: 1})
	e.waitDelivered(load.TotalEvents(), 30*time.Second)

	// status while the daemon runs: through its admin API.
	res = e.must("status")
	for _, want := range []string{"running, ready", "slot " + e.slot, "active (pid", "rcv", "position 0/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status (daemon running) lacks %q:\n%s", want, res.stdout)
		}
	}
	st := statusJSON(t, e.must("status", "--json"))
	if !st.Daemon || st.Ready == nil || !*st.Ready || !st.Slot.Active || st.Stream == nil || !st.Stream.Connected {
		t.Errorf("status --json (daemon running): %+v", st)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].Name != "rcv" || !st.Endpoints[0].Enabled || st.Endpoints[0].LastSuccess.IsZero() {
		t.Errorf("status --json endpoints: %+v", st.Endpoints)
	}

	// check while the daemon runs: its own reader on the slot is fine.
	res = e.must("check")
	if !strings.Contains(res.stdout, "by the running deskhook daemon") || strings.Contains(res.stdout, "FAIL") {
		t.Errorf("check while the daemon runs:\n%s", res.stdout)
	}
	// A second daemon on the same store fails at once, saying why.
	other := startDaemon(t, e.cfgPath, e.admin)
	if code := other.wait(30 * time.Second); code != 1 || !strings.Contains(other.stderr.String(), "in use by another deskhook process") {
		t.Errorf("other daemon: exit %d\n%s", code, other.stderr.String())
	}

	// endpoints while the daemon runs.
	res = e.must("endpoints", "list")
	if !regexp.MustCompile(`rcv\s+http://127\.0\.0\.1:\d+/hooks\s+yes\s+0\s+0`).MatchString(res.stdout) {
		t.Errorf("endpoints list:\n%s", res.stdout)
	}
	e.must("endpoints", "disable", "rcv", "--reason", "maintenance window")
	before := len(deliveredIDs(e.rcv.Requests()))
	more := e.load(ctx, testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 2})
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.Pending == int64(more.TotalEvents()) })
	if got := len(deliveredIDs(e.rcv.Requests())); got != before {
		t.Errorf("a disabled endpoint got %d deliveries", got-before)
	}
	res = e.must("endpoints", "list")
	if !strings.Contains(res.stdout, "maintenance window") || !strings.Contains(res.stdout, "no (operator: maintenance window)") {
		t.Errorf("endpoints list does not show the endpoint disabled:\n%s", res.stdout)
	}
	e.must("endpoints", "enable", "rcv")
	e.waitDelivered(load.TotalEvents()+more.TotalEvents(), 30*time.Second)
	if res := e.run("endpoints", "enable", "nosuch"); res.code != 1 || !strings.Contains(res.stderr, "nosuch") {
		t.Errorf("enable an unknown endpoint: want exit 1 naming it; %s", res)
	}

	d.stop()

	// status and endpoints while no daemon runs: from the store directly.
	res = e.must("status")
	if !strings.Contains(res.stdout, "not running") || !strings.Contains(res.stdout, "slot "+e.slot) || !strings.Contains(res.stdout, "inactive") {
		t.Errorf("status (no daemon):\n%s", res.stdout)
	}
	st = statusJSON(t, e.must("status", "--json"))
	if st.Daemon || st.Slot.Active || st.Outbox.Pending != 0 || len(st.Endpoints) != 1 || st.Endpoints[0].LastSuccess.IsZero() {
		t.Errorf("status --json (no daemon): %+v", st)
	}
	e.must("endpoints", "disable", "rcv")
	if res := e.must("endpoints", "list", "--json"); !strings.Contains(res.stdout, `"disabled_by"`) {
		t.Errorf("endpoints list --json after an offline disable:\n%s", res.stdout)
	}
	e.must("endpoints", "enable", "rcv")

	res = e.must("teardown")
	if !strings.Contains(res.stdout, e.slot) {
		t.Errorf("teardown does not say it dropped slot %s: %s", e.slot, res)
	}
	if res := e.must("teardown"); !strings.Contains(res.stdout, "nothing to do") {
		t.Errorf("second teardown: %s", res)
	}
	if res := e.run("check"); res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  slot`).MatchString(res.stdout) {
		t.Errorf("check after teardown: %s", res)
	}
}

// TestCheckWALLevelReplica: check on a server with wal_level=replica says
// so and how to fix it.
func TestCheckWALLevelReplica(t *testing.T) {
	t.Parallel()
	e := newE2E(t, testenv.WithSettings(map[string]string{"wal_level": "replica"}), testenv.NoFsync())
	res := e.run("check")
	if res.code != 1 {
		t.Errorf("check: want exit 1; %s", res)
	}
	if !regexp.MustCompile(`(?m)^FAIL  wal_level: wal_level is replica`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "fix: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL") {
		t.Errorf("check does not explain wal_level:\n%s", res.stdout)
	}
	if res := e.run("setup"); res.code != 1 || !strings.Contains(res.stderr, "wal_level") {
		t.Errorf("setup with wal_level=replica: want exit 1 explaining wal_level; %s", res)
	}
}

func statusJSON(t *testing.T, res cmdResult) *daemon.Status {
	t.Helper()
	var st daemon.Status
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, res.stdout)
	}
	return &st
}

// waitStatus polls `status --json` until cond holds.
func waitStatus(t *testing.T, e *e2e, cond func(*daemon.Status) bool) *daemon.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := statusJSON(t, e.must("status", "--json"))
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(st, "", "  ")
			t.Fatalf("status never met the condition; last:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

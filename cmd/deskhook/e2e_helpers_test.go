package main

// The end-to-end tests build the real binary once per test process and run
// it against testenv's PostgreSQL and Receiver, with a config file each
// test writes.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/testenv"
)

const e2eVersion = "e2e-test-1.2.3"

var (
	binDir   string
	binPath  string
	buildErr error
)

// TestMain builds the binary before any test starts: a build on a loaded
// machine can take minutes, which no test's command deadline should count.
func TestMain(m *testing.M) {
	binDir, buildErr = buildDeskhook()
	code := m.Run()
	stopBrowser()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildDeskhook builds cmd/deskhook into a new temporary directory.
func buildDeskhook() (string, error) {
	dir, err := os.MkdirTemp("", "deskhook-e2e-bin-")
	if err != nil {
		return "", err
	}
	// go test puts its own toolchain's bin first on PATH.
	goTool, err := exec.LookPath("go")
	if err != nil {
		return dir, fmt.Errorf("no go tool to build the binary with: %w", err)
	}
	binPath = filepath.Join(dir, "deskhook")
	cmd := exec.Command(goTool, "build", "-ldflags", "-X main.Version="+e2eVersion, "-o", binPath, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, fmt.Errorf("go build ./cmd/deskhook: %v\n%s", err, out)
	}
	return dir, nil
}

// deskhookBinary returns the path of the binary TestMain built.
func deskhookBinary(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("building the deskhook binary: %v", buildErr)
	}
	return binPath
}

// cmdResult is a finished command.
type cmdResult struct {
	stdout, stderr string
	code           int
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// deskhook runs the binary with args and returns what it printed and its
// exit code. Extra environment variables come as "K=V" in env.
func deskhook(t testing.TB, env []string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, deskhookBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cmdResult{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok || ctx.Err() != nil {
			t.Fatalf("deskhook %s: %v\n%s", strings.Join(args, " "), err, res)
		}
		res.code = ee.ExitCode()
	}
	return res
}

// mustDeskhook runs a command that must exit 0.
func mustDeskhook(t testing.TB, args ...string) cmdResult {
	t.Helper()
	res := deskhook(t, nil, args...)
	if res.code != 0 {
		t.Fatalf("deskhook %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// freePort returns a loopback address with a port nobody listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var slotSeq atomic.Int64

// e2e is one test's world: a fresh database, a receiver, a directory with
// the config file and the store, a unique slot and admin port.
type e2e struct {
	t       testing.TB
	db      *testenv.DB      // PostgreSQL (newE2E)
	my      *testenv.MySQLDB // MariaDB (newMySQLE2E)
	rcv     *testenv.Receiver
	dir     string
	cfgPath string
	admin   string
	slot    string
	cfg     map[string]any
}

// newE2E sets up a world whose config has one endpoint, "rcv", pointing at
// the receiver with a short retry schedule.
func newE2E(t testing.TB, dbOpts ...testenv.Option) *e2e {
	t.Helper()
	deskhookBinary(t) // fail early, before starting anything
	if len(dbOpts) == 0 {
		dbOpts = []testenv.Option{testenv.NoFsync()}
	}
	e := &e2e{t: t, db: testenv.Postgres(t, dbOpts...), rcv: testenv.NewReceiver(t), dir: t.TempDir()}
	e.cfgPath = filepath.Join(e.dir, "deskhook.yaml")
	e.admin = freePort(t)
	e.slot = fmt.Sprintf("e2e_%d_%d", os.Getpid(), slotSeq.Add(1))
	e.cfg = e.config(map[string]any{"dsn": e.db.DSN, "slot": e.slot}, "debug")
	e.writeConfig()
	return e
}

// config is a world's config with source section source: its store and
// admin port, the log at level, one endpoint "rcv" with a short retry
// schedule.
func (e *e2e) config(source map[string]any, level string) map[string]any {
	return map[string]any{
		"source": source,
		"store":  map[string]any{"path": filepath.Join(e.dir, "deskhook.db")},
		"admin":  map[string]any{"listen": e.admin},
		"log":    map[string]any{"level": level},
		"endpoints": []any{map[string]any{
			"name": "rcv", "url": e.rcv.URL + "/hooks", "events": allEvents(),
			"retry": map[string]any{"schedule": []string{"0s", "50ms", "100ms", "200ms", "400ms", "800ms", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"}},
		}},
		"shutdown_timeout": "10s",
	}
}

func allEvents() []string {
	return []string{"ticket_created", "ticket_reply", "ticket_status_updated", "ticket_department_updated",
		"ticket_assigned", "ticket_commented", "ticket_owner_updated", "ticket_due_date_updated"}
}

// endpoint returns the i-th endpoint of the config, to change it.
func (e *e2e) endpoint(i int) map[string]any {
	return e.cfg["endpoints"].([]any)[i].(map[string]any)
}

// section returns a top-level section of the config, to change it.
func (e *e2e) section(name string) map[string]any {
	s, ok := e.cfg[name].(map[string]any)
	if !ok {
		s = map[string]any{}
		e.cfg[name] = s
	}
	return s
}

// writeConfig writes e.cfg to the config file.
func (e *e2e) writeConfig() {
	e.t.Helper()
	b, err := yaml.Marshal(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.cfgPath, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs a deskhook command with -c the config file appended.
func (e *e2e) run(args ...string) cmdResult {
	e.t.Helper()
	return deskhook(e.t, nil, append(args, "-c", e.cfgPath)...)
}

// must runs a deskhook command with the config file; it must exit 0.
func (e *e2e) must(args ...string) cmdResult {
	e.t.Helper()
	res := e.run(args...)
	if res.code != 0 {
		e.t.Fatalf("deskhook %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// setup runs `deskhook setup`.
func (e *e2e) setup() { e.t.Helper(); e.must("setup") }

// start starts the daemon and waits until it is ready.
func (e *e2e) start() *daemonProc {
	e.t.Helper()
	p := startDaemon(e.t, e.cfgPath, e.admin)
	p.waitReadyz(http.StatusOK, 60*time.Second)
	return p
}

// load runs testenv.Load against the test database.
func (e *e2e) load(ctx context.Context, cfg testenv.LoadConfig) testenv.LoadResult {
	e.t.Helper()
	res, err := testenv.Load(ctx, e.db.Pool(e.t), cfg)
	if err != nil {
		e.t.Fatalf("testenv.Load: %v", err)
	}
	return res
}

// waitDelivered waits until the receiver answered 2xx to n distinct
// webhook ids.
func (e *e2e) waitDelivered(n int, timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool { return len(deliveredIDs(reqs)) >= n })
	if err != nil {
		e.t.Fatalf("waiting for %d deliveries (have %d): %v", n, len(deliveredIDs(e.rcv.Requests())), err)
	}
}

// deliveredIDs is the set of webhook ids the receiver answered with 2xx.
func deliveredIDs(reqs []testenv.Request) map[string]bool {
	ids := map[string]bool{}
	for _, r := range reqs {
		if c := r.Reply.StatusCode(); c >= 200 && c < 300 {
			ids[r.Header.Get("Webhook-Id")] = true
		}
	}
	return ids
}

// arrival is one delivered webhook as the tests see it.
type arrival struct {
	id, event, ticket string
	body              string
	seq               int64
}

// arrivals decodes the receiver's successful requests.
func arrivals(reqs []testenv.Request) []arrival {
	var out []arrival
	for _, r := range reqs {
		if c := r.Reply.StatusCode(); c < 200 || c >= 300 {
			continue
		}
		form, _ := url.ParseQuery(string(r.Body))
		ev := form.Get("event")
		id, _ := ticketOf(ev, form)
		out = append(out, arrival{id: r.Header.Get("Webhook-Id"), event: ev, ticket: id, body: string(r.Body), seq: r.Seq})
	}
	return out
}

// storePath is the world's store file.
func (e *e2e) storePath() string { return e.section("store")["path"].(string) }

// adminToken reads the token the daemon generated beside the store.
func (e *e2e) adminToken() string {
	e.t.Helper()
	b, err := os.ReadFile(daemon.TokenPath(e.storePath()))
	if err != nil {
		e.t.Fatalf("reading the admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// apiCall sends method u with the bearer token (none when token is "")
// and the extra headers ("Host" sets the Host header), and returns the
// status and body.
func apiCall(t testing.TB, method, u, token string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

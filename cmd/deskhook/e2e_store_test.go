package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/testenv"
)

// TestStoreDamaged: a store file cut short, with random bytes in a header,
// a branch or a leaf page, or not a store at all (a PNG, an empty file, an
// SQLite database) makes run, status, dlq list and endpoints list exit 1
// with one line naming the file, what is wrong and what to do, never a
// crash; store check names the damage. Damage bbolt survives (the older
// of its two header pages, a free page) is no error; the store with a
// damaged free page then delivers everything it held.
func TestStoreDamaged(t *testing.T) {
	t.Parallel()
	e, d, dead := withDeadLetters(t, testenv.LoadConfig{Tickets: 6, Replies: 2, Seed: 11})
	ctx := context.Background()
	e.must("endpoints", "disable", "rcv")
	pending := e.load(ctx, testenv.LoadConfig{Tickets: 6, Replies: 2, Seed: 12}).TotalEvents()
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.Pending == int64(pending) })
	d.stop()

	store := e.section("store")["path"].(string)
	good := filepath.Join(e.dir, "good.db")
	copyPath(t, store, good)
	ps, hwm := pageGeometry(t, good)
	branch, leaf := eventsPages(t, good, ps)
	free := aFreePage(t, good)
	newer := int64(0)
	if l := readHeaders(t, good, ps); l[1] > l[0] {
		newer = ps
	}
	older := ps - newer

	const damaged, foreign, fine = "is damaged", "is not a deskhook store", ""
	cases := []struct {
		name   string
		damage func(path string)
		open   string // damaged, foreign or fine
		check  string // in store check's output
	}{
		{"cut to half", func(p string) { truncateTo(t, p, fileSize(t, p)/2) }, damaged, "PROBLEM: the file is cut short"},
		{"cut by one byte of its pages", func(p string) { truncateTo(t, p, hwm*ps-1) }, damaged, "PROBLEM: the file is cut short"},
		{"both header pages", func(p string) { scribbleAt(t, p, 32, 32); scribbleAt(t, p, ps+32, 32) }, damaged,
			"PROBLEM: both header pages are damaged"},
		{"the older header page", func(p string) { scribbleAt(t, p, older+32, 32) }, fine,
			"is damaged (checksum mismatch); bbolt uses the other one"},
		{"a branch page", func(p string) { scribbleAt(t, p, branch*ps+16, 64) }, damaged, `PROBLEM: bucket "events", page`},
		{"a leaf page", func(p string) { scribbleAt(t, p, leaf*ps+16, 48) }, damaged, `PROBLEM: bucket "events", page`},
		{"a leaf page's header", func(p string) { scribbleAt(t, p, leaf*ps, 16) }, damaged, "is damaged: "},
		{"a free page", func(p string) { scribbleAt(t, p, free*ps, int(ps)) }, fine, "ok: no damage found"},
		{"a PNG image", func(p string) { writeBytes(t, p, pngFile()) }, foreign, "it is a PNG image"},
		{"an empty file", func(p string) { writeBytes(t, p, nil) }, foreign, "it is empty (0 bytes)"},
		{"an SQLite database", func(p string) { writeBytes(t, p, sqliteFile()) }, foreign, "it is an SQLite database"},
	}
	for _, c := range cases {
		copyPath(t, good, store)
		c.damage(store)
		// store check first: a read-write open repairs a damaged header page.
		res := e.run("store", "check")
		wantCode := 1
		if c.open == fine {
			wantCode = 0
		}
		if res.code != wantCode || !strings.Contains(res.stdout, c.check) || crashed(res) {
			t.Errorf("%s: store check: want exit %d saying %q; %s", c.name, wantCode, c.check, res)
		}
		for _, args := range [][]string{{"run"}, {"status"}, {"dlq", "list"}, {"endpoints", "list"}} {
			if c.open == fine && args[0] == "run" {
				continue // it would run; the others show the store opens
			}
			res := e.run(args...)
			what := c.name + ": deskhook " + strings.Join(args, " ")
			if crashed(res) {
				t.Errorf("%s crashed: %s", what, res)
				continue
			}
			if c.open == fine {
				if res.code != 0 {
					t.Errorf("%s: %s", what, res)
				}
				continue
			}
			lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
			msg := lines[len(lines)-1]
			if res.code != 1 || len(lines) != 1 {
				t.Errorf("%s: want exit 1 and one line on stderr; %s", what, res)
			}
			for _, want := range []string{"deskhook: store " + store + " " + c.open, "restore the file from a backup",
				"`deskhook setup --accept-gap`", "`deskhook store check`"} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s: the message lacks %q: %s", what, want, msg)
				}
			}
		}
	}

	// The store with a damaged free page lost nothing: everything it held
	// is delivered.
	copyPath(t, good, store)
	scribbleAt(t, store, free*ps, int(ps))
	e.rcv.Default(testenv.Reply{})
	e.start()
	e.must("endpoints", "enable", "rcv")
	e.must("dlq", "replay", "--all")
	e.waitDelivered(dead+pending, 60*time.Second)
}

// TestStoreDamagedWhileRunning: a page damaged under the running daemon,
// in a part it reads only later (the dead letters), is found when read:
// dlq list fails with the damage, /readyz turns 503 naming it, the
// intake-stopped metric is 1, and the process stays up and stops cleanly
// on SIGTERM, saying so, without a crash.
func TestStoreDamagedWhileRunning(t *testing.T) {
	t.Parallel()
	e, d, dead := withDeadLetters(t, testenv.LoadConfig{Tickets: 8, Replies: 2, Seed: 41})
	d.stop()
	store := e.section("store")["path"].(string)
	db, err := bolt.Open(store, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var deadRoot int64
	_ = db.View(func(tx *bolt.Tx) error {
		deadRoot = int64(tx.Bucket([]byte("endpoints")).Bucket([]byte("rcv")).Bucket([]byte("dead")).Root())
		return nil
	})
	db.Close()
	if deadRoot == 0 {
		t.Fatalf("the %d dead letters fit inline in their endpoint's page: too few to damage a page of their own", dead)
	}
	ps, _ := pageGeometry(t, store)

	e.rcv.Default(testenv.Reply{})
	d = e.start()
	// Nothing is written to the dead letters while the daemon idles: their
	// page stays where it was.
	scribbleAt(t, store, deadRoot*ps+16, 64)
	res := e.run("dlq", "list")
	if res.code != 1 || !strings.Contains(res.stderr, "store "+store+" is damaged") || crashed(res) {
		t.Errorf("dlq list of damaged dead letters: %s", res)
	}
	body := d.waitReadyz(503, 30*time.Second, "outbox intake stopped: store "+store+" is damaged")
	t.Logf("/readyz: %s", body)
	if m := d.metrics(); m["deskhook_outbox_intake_stopped"] != 1 {
		t.Errorf("deskhook_outbox_intake_stopped = %v, want 1", m["deskhook_outbox_intake_stopped"])
	}
	if code, _, err := d.get("/healthz"); code != 200 || err != nil {
		t.Errorf("/healthz: %d %v", code, err)
	}
	if !strings.Contains(d.stderr.String(), "outbox store is damaged: intake stopped") {
		t.Errorf("no ERROR line about the damage:\n%s", tail(d.stderr.String(), 4<<10))
	}
	d.signal(syscall.SIGTERM)
	code := d.wait(60 * time.Second)
	if code < 0 || strings.Contains(d.stderr.String(), "panic") || strings.Contains(d.stderr.String(), "goroutine ") {
		t.Errorf("the daemon crashed (exit %d):\n%s", code, tail(d.stderr.String(), 8<<10))
	}
	if res := e.run("store", "check"); res.code != 1 || !strings.Contains(res.stdout, `bucket "endpoints/rcv/dead"`) {
		t.Errorf("store check after the daemon stopped: %s", res)
	}
}

// TestStoreCompact: a store that grew with a burst of large replies
// shrinks under store compact, which keeps every pending event and dead
// letter (they are all delivered afterwards); it refuses while the daemon
// holds the file, and store backup works offline.
func TestStoreCompact(t *testing.T) {
	t.Parallel()
	e, d, dead := withDeadLetters(t, testenv.LoadConfig{Tickets: 3, Replies: 1, Seed: 21})
	ctx := context.Background()

	// A burst of large replies while the endpoint is disabled, then
	// delivered: the file keeps the size it grew to.
	e.rcv.Default(testenv.Reply{})
	e.must("endpoints", "disable", "rcv")
	hd := testenv.NewHelpdesk(e.db.Pool(t))
	big := "<p>" + strings.Repeat("large reply ", 90_000) + "</p>" // ~1 MB
	burst := 0
	for range 3 {
		w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
		if err != nil {
			t.Fatal(err)
		}
		burst++
		for range 8 {
			if _, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, big); err != nil {
				t.Fatal(err)
			}
			burst++
		}
	}
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.Pending == int64(burst) })
	e.must("endpoints", "enable", "rcv")
	e.waitDelivered(burst, 120*time.Second)
	delivered := deliveredIDs(e.rcv.Requests())
	// The delivery log keeps the bodies of what it shows for its
	// retention: a short one (reloaded) lets the burst go, as a week
	// does in production.
	e.cfg["delivery_log"] = map[string]any{"retention": "1s", "prune_interval": "100ms"}
	e.writeConfig()
	d.signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := apiCall(t, http.MethodGet, "http://"+e.admin+"/api/log/stats", e.adminToken(), nil)
		if strings.Contains(body, `"entries":0,`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the delivery log was never pruned: %s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	e.must("endpoints", "disable", "rcv")
	pending := e.load(ctx, testenv.LoadConfig{Tickets: 3, Replies: 1, Seed: 22}).TotalEvents()
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.Pending == int64(pending) })
	deadIDs := dlqIDs(t, e)

	if res := e.run("store", "compact"); res.code != 1 || !strings.Contains(res.stderr, "in use by another deskhook process") ||
		!strings.Contains(res.stderr, "stop the daemon first") {
		t.Errorf("store compact while the daemon runs: %s", res)
	}
	d.stop()

	store := e.section("store")["path"].(string)
	backup := filepath.Join(e.dir, "offline-backup.db")
	if res := e.must("store", "backup", backup); !strings.Contains(res.stdout, "checked") {
		t.Errorf("store backup offline: %s", res)
	}
	before := fileSize(t, store)
	res := e.must("store", "compact")
	after := fileSize(t, store)
	t.Logf("%s", res.stdout)
	m := regexp.MustCompile(`compacted: (\S+ \S+) before, (\S+ \S+) after`).FindStringSubmatch(res.stdout)
	if m == nil || before < 16<<20 || after > before/4 {
		t.Errorf("store compact: %d → %d bytes; want a file of more than 16 MiB shrunk to a quarter; %s", before, after, res)
	}
	if res := e.must("store", "check"); !strings.Contains(res.stdout, "ok: no damage found") {
		t.Errorf("store check after compact: %s", res)
	}
	if st := statusJSON(t, e.must("status", "--json")); st.Outbox.Pending != int64(pending) || st.Outbox.DeadLetters != int64(dead) {
		t.Errorf("after compact: %d pending, %d dead letters; want %d, %d", st.Outbox.Pending, st.Outbox.DeadLetters, pending, dead)
	}

	e.start()
	e.must("endpoints", "enable", "rcv")
	e.must("dlq", "replay", "--all")
	e.waitDelivered(len(delivered)+pending+dead, 60*time.Second)
	now := deliveredIDs(e.rcv.Requests())
	for _, id := range deadIDs {
		if !now[id] {
			t.Errorf("dead letter %s was not delivered after the compaction", id)
		}
	}
}

// TestStoreBackup: store backup while the daemon runs under load (some
// events delivered, some failing and pending) writes a file store check
// passes; a daemon started on it after the original is gone delivers every
// event that was pending in it. store check refuses the live store.
func TestStoreBackup(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	schedule := []string{"0s"}
	for range 40 {
		schedule = append(schedule, "500ms")
	}
	e.endpoint(0)["retry"] = map[string]any{"schedule": schedule}
	e.writeConfig()
	// A third of the events fail until the receiver is mended: they are
	// pending when the backup is taken.
	broken := make(chan struct{})
	e.rcv.SetHook(func(r *testenv.Request) (testenv.Reply, bool) {
		select {
		case <-broken:
			return testenv.Reply{}, false
		default:
		}
		if crc32.ChecksumIEEE([]byte(r.Header.Get("Webhook-Id")))%3 == 0 {
			return testenv.Reply{Status: 503}, true
		}
		return testenv.Reply{Delay: 2 * time.Millisecond}, true
	})
	e.setup()
	d := e.start()
	ctx := context.Background()

	loadDone := make(chan testenv.LoadResult)
	go func() {
		res, err := testenv.Load(ctx, e.db.Pool(t), testenv.LoadConfig{Tickets: 40, Replies: 3, Rate: 60, Seed: 31})
		if err != nil {
			t.Errorf("load: %v", err)
		}
		loadDone <- res
	}()
	// The load is under way and deliveries with it.
	e.waitDelivered(10, 30*time.Second)
	before := len(deliveredIDs(e.rcv.Requests()))
	backup := filepath.Join(e.dir, "backup.db")
	res := e.must("store", "backup", backup)
	t.Logf("%s", res.stdout)
	if !strings.Contains(res.stdout, "written to "+backup) || !strings.Contains(res.stdout, "checked") {
		t.Errorf("store backup: %s", res)
	}
	if code, body, err := httpGet("http://" + e.admin + "/api/store/backup"); code != 401 || err != nil {
		t.Errorf("GET /api/store/backup without the admin token: %d %v %.40q; want 401", code, err, body)
	}
	if res := e.run("store", "check"); res.code != 1 || !strings.Contains(res.stderr, "store backup COPY") {
		t.Errorf("store check of the live store: want exit 1 pointing to a backup; %s", res)
	}
	<-loadDone
	if res := e.must("store", "check", backup); !strings.Contains(res.stdout, "ok: no damage found") {
		t.Errorf("store check of the backup: %s", res)
	}
	wanted := pendingIDs(t, backup)
	if len(wanted) == 0 {
		t.Fatal("the backup holds no pending event: nothing to prove")
	}
	t.Logf("the backup holds %d pending events; %d had been delivered when it was started", len(wanted), before)
	d.stop()

	// Restore: the backup takes the store's place; the receiver works now.
	store := e.section("store")["path"].(string)
	copyPath(t, backup, store)
	close(broken)
	seen := e.rcv.Count()
	// Not waiting for /readyz: the source has moved past the backup's
	// position (a gap the daemon may refuse to stream over); the queue is
	// delivered all the same.
	startDaemon(t, e.cfgPath, e.admin)
	ctxW, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	err := e.rcv.WaitFor(ctxW, func(reqs []testenv.Request) bool {
		got := map[string]bool{}
		for _, r := range reqs {
			if r.Seq > int64(seen) && r.Reply.StatusCode() == 200 {
				got[r.Header.Get("Webhook-Id")] = true
			}
		}
		for _, id := range wanted {
			if !got[id] {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("the restored daemon did not deliver the %d events pending in the backup: %v", len(wanted), err)
	}
}

// TestStoreCLIUsage: store's help and usage errors.
func TestStoreCLIUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"store", "--help"}, {"store", "check", "--help"}, {"store", "compact", "-h"}, {"store", "backup", "--help"}} {
		res := deskhook(t, nil, args...)
		if out := res.stdout + res.stderr; res.code != 0 || !strings.Contains(out, "deskhook store") || strings.Contains(out, "deskhook: ") {
			t.Errorf("deskhook %s: %s", strings.Join(args, " "), res)
		}
	}
	if res := deskhook(t, nil, "help"); !strings.Contains(res.stdout, "  store ") {
		t.Errorf("help does not list store: %s", res)
	}
	for _, args := range [][]string{{"store"}, {"store", "repair"}, {"store", "backup"}, {"store", "check", "a", "b"}} {
		if res := deskhook(t, nil, args...); res.code != 2 || res.stderr == "" {
			t.Errorf("deskhook %s: want exit 2 (usage); %s", strings.Join(args, " "), res)
		}
	}
	missing := filepath.Join(t.TempDir(), "nothing.db")
	if res := deskhook(t, nil, "store", "check", missing); res.code != 1 || !strings.Contains(res.stderr, missing) {
		t.Errorf("store check of a missing file: %s", res)
	}
}

// withDeadLetters starts a world whose receiver fails everything, with a
// retry schedule of two attempts, runs load and waits until all its events
// are dead letters; it returns how many.
func withDeadLetters(t *testing.T, load testenv.LoadConfig) (*e2e, *daemonProc, int) {
	t.Helper()
	e := newE2E(t)
	e.endpoint(0)["retry"] = map[string]any{"schedule": []string{"0s", "10ms"}}
	e.writeConfig()
	e.rcv.Default(testenv.Reply{Status: 500})
	e.setup()
	d := e.start()
	dead := e.load(context.Background(), load).TotalEvents()
	waitStatus(t, e, func(st *daemon.Status) bool { return st.Outbox.DeadLetters == int64(dead) })
	return e, d, dead
}

// crashed says whether a command died of a signal or printed a Go panic or
// goroutine dump.
func crashed(r cmdResult) bool {
	out := r.stdout + r.stderr
	return r.code > 2 || r.code < 0 || strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") ||
		strings.Contains(out, "SIGBUS") || strings.Contains(out, "SIGSEGV")
}

func dlqIDs(t *testing.T, e *e2e) []string {
	t.Helper()
	var ids []string
	for _, dl := range dlqJSON(t, e.must("dlq", "list", "--json")) {
		ids = append(ids, dl.ID)
	}
	return ids
}

// pendingIDs lists the event ids pending for endpoint rcv in a store file.
func pendingIDs(t *testing.T, path string) []string {
	t.Helper()
	o, err := outbox.Open(path, outbox.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var ids []string
	after := outbox.Key{}
	for {
		page, err := o.Pending("rcv", outbox.PendingQuery{After: after})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deliveries {
			ids = append(ids, d.Event.ID)
		}
		if page.End {
			return ids
		}
		after = page.Last
	}
}

func copyPath(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeBytes(t, to, b)
}

func writeBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncateTo(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// scribbleAt writes n random bytes at off.
func scribbleAt(t *testing.T, path string, off int64, n int) {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(off)).Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// pageGeometry reads the page size and the pages in use from store check.
func pageGeometry(t *testing.T, path string) (pageSize, pages int64) {
	t.Helper()
	res := mustDeskhook(t, "store", "check", "--json", path)
	var r outbox.CheckReport
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil || r.PageSize == 0 {
		t.Fatalf("store check --json: %v\n%s", err, res.stdout)
	}
	return int64(r.PageSize), int64(r.Pages)
}

// readHeaders returns the transaction ids of the two header pages (bbolt's
// meta: at 16 bytes into the page, txid at offset 48).
func readHeaders(t *testing.T, path string, ps int64) [2]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return [2]uint64{binary.NativeEndian.Uint64(b[16+48:]), binary.NativeEndian.Uint64(b[ps+16+48:])}
}

// eventsPages returns the events bucket's root page, which must be a
// branch page, and the leaf page its first element points to.
func eventsPages(t *testing.T, path string, ps int64) (branch, leaf int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = db.View(func(tx *bolt.Tx) error {
		branch = int64(tx.Bucket([]byte("events")).Root())
		return nil
	})
	db.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := b[branch*ps:]
	if flags := binary.NativeEndian.Uint16(page[8:]); flags != 0x01 {
		t.Fatalf("the events bucket's root page %d is not a branch page (flags %#x): too few events", branch, flags)
	}
	return branch, int64(binary.NativeEndian.Uint64(page[16+8:]))
}

// aFreePage returns a page no tree uses (bbolt's free list, rebuilt at a
// read-write open).
func aFreePage(t *testing.T, path string) int64 {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "free.db")
	copyPath(t, path, tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var free int64
	_ = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "free" {
				free = int64(id)
				return nil
			}
		}
	})
	if free == 0 {
		t.Fatal("the store has no free page")
	}
	return free
}

func pngFile() []byte {
	return append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"), make([]byte, 8000)...)
}

// sqliteFile is an empty SQLite database: its 100-byte header and one
// empty table page of 4096 bytes.
func sqliteFile() []byte {
	b := make([]byte, 4096)
	copy(b, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(b[16:], 4096)
	b[18], b[19], b[21], b[22], b[23] = 1, 1, 64, 32, 32
	binary.BigEndian.PutUint32(b[24:], 1) // change counter
	binary.BigEndian.PutUint32(b[28:], 1) // pages
	binary.BigEndian.PutUint32(b[44:], 4) // schema format
	binary.BigEndian.PutUint32(b[56:], 1) // UTF-8
	binary.BigEndian.PutUint32(b[92:], 1)
	binary.BigEndian.PutUint32(b[96:], 3040001)
	b[100] = 0x0d // a leaf table page with no cells
	binary.BigEndian.PutUint16(b[105:], 4096)
	return b
}

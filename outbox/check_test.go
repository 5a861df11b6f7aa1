package outbox

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
)

// The sample store: endpoints "a" and "b" get every event; "a" has dead
// letters, "b" had some delivered, so the file has free pages too.
const (
	sampleEvents = 400
	sampleDead   = 20 // a's first events
	sampleSent   = 200
)

var (
	sampleOnce  sync.Once
	sampleBytes []byte
	sampleErr   error
)

// sampleStore returns a copy of the sample store in a new temp dir (the
// sample is built once per test process, and kept in memory).
func sampleStore(t testing.TB) string {
	t.Helper()
	sampleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outbox-sample-")
		if err != nil {
			sampleErr = err
			return
		}
		defer os.RemoveAll(dir)
		p := filepath.Join(dir, "sample.db")
		if sampleErr = buildSample(p); sampleErr == nil {
			sampleBytes, sampleErr = os.ReadFile(p)
		}
	})
	if sampleErr != nil {
		t.Fatalf("building the sample store: %v", sampleErr)
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	writeFile(t, path, sampleBytes)
	return path
}

// openAB opens a store whose endpoints "a" and "b" get every event, with
// the delivery log on.
func openAB(path string) (*Outbox, error) {
	o, err := Open(path, Options{NoSync: true, Log: LogLimits{Retention: 24 * time.Hour}})
	if err != nil {
		return nil, err
	}
	if err := o.SetSubscriptions(context.Background(), []Subscription{{Name: "a", Wants: all}, {Name: "b", Wants: all}}); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

func buildSample(path string) error {
	o, err := openAB(path)
	if err != nil {
		return err
	}
	defer o.Close()
	ctx := context.Background()
	for pos := change.Position(1); pos <= sampleEvents; pos++ {
		evs := txn(pos, int64(pos%7))
		evs[0].Payload = append(evs[0].Payload, bytes.Repeat([]byte(" "), 300)...)
		if err := o.Append(ctx, pos, true, evs); err != nil {
			return err
		}
	}
	if err := o.Flush(ctx); err != nil {
		return err
	}
	now := time.Now()
	for pos := change.Position(1); pos <= sampleEvents; pos++ {
		k := Key{Pos: pos}
		if pos <= sampleDead {
			o.Record(Result{Endpoint: "a", Key: k, Outcome: Dead, Attempt: Attempt{At: now, Status: 500, Error: "broken"}})
		}
		if pos <= sampleSent {
			o.Record(Result{Endpoint: "b", Key: k, Outcome: Delivered, Attempt: Attempt{At: now, Status: 200}})
		}
	}
	return o.Flush(ctx)
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// layout walks a store file (white box).
func layout(t testing.TB, path string) *fileLayout {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := walkFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// treePages returns a branch page of the events bucket and a leaf page
// under it.
func treePages(t testing.TB, path string) (branch, leaf uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		branch = uint64(tx.Bucket(bucketEvents).Root())
		return nil
	})
	l := layout(t, path)
	page := readPage(t, path, l.pageSize, branch)
	if ne.Uint16(page[8:]) != flagBranch {
		t.Fatalf("the events bucket's root page %d is not a branch page: the sample is too small", branch)
	}
	leaf = ne.Uint64(page[boltPageHeader+8:]) // the first element's child
	return branch, leaf
}

func freePage(t testing.TB, path string) uint64 {
	t.Helper()
	l := layout(t, path)
	for id := uint64(2); id < l.meta.pgid; id++ {
		if l.seen[id/64]&(1<<(id%64)) == 0 {
			return id
		}
	}
	t.Fatal("the sample store has no free page")
	return 0
}

// headerPage returns the offset of the newer or older header page.
func headerPage(t testing.TB, path string, newer bool) int64 {
	l := layout(t, path)
	if (l.metas[1].txid > l.metas[0].txid) == newer {
		return int64(l.pageSize)
	}
	return 0
}

func readPage(t testing.TB, path string, ps int, id uint64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, ps)
	if _, err := f.ReadAt(b, int64(id)*int64(ps)); err != nil {
		t.Fatal(err)
	}
	return b
}

// scribble writes n random bytes at off.
func scribble(t testing.TB, path string, off int64, n int, seed int64) {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedFiles: a damaged, truncated or foreign file is a DamageError
// at Open, read-only or not, naming the file and what to do; Check finds
// the same; damage bbolt survives (one header page, a free page, the end
// of the file beyond its pages) opens, and Check says what it saw.
func TestDamagedFiles(t *testing.T) {
	const (
		damaged = "is damaged"
		foreign = "is not a deskhook store"
		fine    = ""
	)
	cases := []struct {
		name    string
		damage  func(t *testing.T, path string)
		open    string // damaged, foreign or fine
		check   string // in Check's problems ("" when OK)
		warning string // in Check's warnings
		// olderCommit: the file opens as of the commit before the last.
		olderCommit bool
	}{
		{name: "cut to half", open: damaged, check: "the file is cut short", damage: func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			truncate(t, p, fi.Size()/2)
		}},
		{name: "cut by one byte of its last page", open: damaged, check: "the file is cut short", damage: func(t *testing.T, p string) {
			l := layout(t, p)
			truncate(t, p, int64(l.meta.pgid)*int64(l.pageSize)-1)
		}},
		{name: "cut after its last page", open: fine, damage: func(t *testing.T, p string) {
			l := layout(t, p)
			truncate(t, p, int64(l.meta.pgid)*int64(l.pageSize))
		}},
		{name: "cut to one page and a bit", open: damaged, check: "cut short", damage: func(t *testing.T, p string) {
			truncate(t, p, 4096+100)
		}},
		{name: "cut to 100 bytes", open: damaged, check: "cut short", damage: func(t *testing.T, p string) {
			truncate(t, p, 100)
		}},
		{name: "the older header page", open: fine, warning: "is damaged (checksum mismatch); bbolt uses the other one", damage: func(t *testing.T, p string) {
			scribble(t, p, headerPage(t, p, false)+boltPageHeader+16, 32, 1)
		}},
		// The newer one lost, bbolt goes back one commit: lossless after a
		// crash during that commit (it was never acknowledged), else the
		// stored position goes back, which the source's check of its
		// position against the store's sees.
		{name: "the newer header page", open: fine, warning: "is damaged (checksum mismatch); bbolt uses the other one",
			olderCommit: true, damage: func(t *testing.T, p string) {
				scribble(t, p, headerPage(t, p, true)+boltPageHeader+16, 32, 1)
			}},
		{name: "both header pages", open: damaged, check: "both header pages are damaged", damage: func(t *testing.T, p string) {
			l := layout(t, p)
			scribble(t, p, boltPageHeader+16, 32, 1)
			scribble(t, p, int64(l.pageSize)+boltPageHeader+16, 32, 2)
		}},
		{name: "branch page", open: damaged, check: `bucket "events", page`, damage: func(t *testing.T, p string) {
			branch, _ := treePages(t, p)
			scribble(t, p, int64(branch)*int64(layout(t, p).pageSize)+boltPageHeader, 64, 3)
		}},
		{name: "branch page header", open: damaged, check: "its header says page", damage: func(t *testing.T, p string) {
			branch, _ := treePages(t, p)
			scribble(t, p, int64(branch)*int64(layout(t, p).pageSize), 8, 4)
		}},
		{name: "leaf page", open: damaged, check: `bucket "events", page`, damage: func(t *testing.T, p string) {
			_, leaf := treePages(t, p)
			scribble(t, p, int64(leaf)*int64(layout(t, p).pageSize)+boltPageHeader, 48, 5)
		}},
		{name: "free page", open: fine, damage: func(t *testing.T, p string) {
			id := freePage(t, p)
			scribble(t, p, int64(id)*int64(layout(t, p).pageSize), 4096, 6)
		}},
		{name: "empty", open: foreign, check: "it is empty (0 bytes)", damage: func(t *testing.T, p string) {
			writeFile(t, p, nil)
		}},
		{name: "PNG", open: foreign, check: "it is a PNG image", damage: func(t *testing.T, p string) {
			writeFile(t, p, append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), make([]byte, 9000)...))
		}},
		{name: "SQLite", open: foreign, check: "it is an SQLite database", damage: func(t *testing.T, p string) {
			writeFile(t, p, append([]byte("SQLite format 3\x00\x10\x00\x01\x01"), make([]byte, 8192)...))
		}},
		{name: "random bytes", open: foreign, check: "no valid bbolt header", damage: func(t *testing.T, p string) {
			b := make([]byte, 64<<10)
			rand.New(rand.NewSource(7)).Read(b)
			writeFile(t, p, b)
		}},
		{name: "zeros", open: foreign, check: "all zero bytes", damage: func(t *testing.T, p string) {
			writeFile(t, p, make([]byte, 32<<10))
		}},
		{name: "another program's bbolt file", open: foreign, check: "a bbolt file of another program (its buckets: sessions, users)",
			damage: func(t *testing.T, p string) {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				db, err := bolt.Open(p, 0o600, nil)
				if err != nil {
					t.Fatal(err)
				}
				_ = db.Update(func(tx *bolt.Tx) error {
					_, _ = tx.CreateBucket([]byte("users"))
					_, err := tx.CreateBucket([]byte("sessions"))
					return err
				})
				_ = db.Close()
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := sampleStore(t)
			c.damage(t, path)
			// Check first: a read-write open commits, which repairs a damaged
			// header page.
			rep, err := Check(path, time.Second)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			probs := strings.Join(rep.Problems, "\n")
			switch {
			case c.check == "" && !rep.OK():
				t.Errorf("check found problems in a usable file:\n%s", probs)
			case c.check != "" && !strings.Contains(probs, c.check):
				t.Errorf("check's problems lack %q:\n%s", c.check, probs)
			}
			if c.warning != "" && !strings.Contains(strings.Join(rep.Warnings, "\n"), c.warning) {
				t.Errorf("check's warnings lack %q: %q", c.warning, rep.Warnings)
			}
			t.Logf("check: problems %q, warnings %q", rep.Problems, rep.Warnings)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				o, err := Open(path, Options{ReadOnly: ro, NoSync: true})
				if c.open == fine {
					if err != nil {
						t.Fatalf("open (read-only %v): %v", ro, err)
					}
					if !ro && !c.olderCommit {
						if n := len(pendingKeys(t, o, "a")); n != sampleEvents-sampleDead {
							t.Errorf("a has %d pending, want %d", n, sampleEvents-sampleDead)
						}
						if dl, err := o.DeadLetters(DeadFilter{}); err != nil || len(dl) != sampleDead {
							t.Errorf("dead letters: %d, %v", len(dl), err)
						}
					}
					_ = o.Close()
					continue
				}
				if err == nil {
					_ = o.Close()
					t.Fatalf("open (read-only %v) succeeded", ro)
				}
				var de *DamageError
				msg := err.Error()
				if !errors.As(err, &de) || !errors.Is(err, ErrDamaged) {
					t.Fatalf("open (read-only %v): %v; want a DamageError", ro, err)
				}
				for _, want := range []string{"store " + path + " " + c.open, c.check, "restore the file from a backup",
					"deskhook setup --accept-gap", "deskhook store check"} {
					if !strings.Contains(msg, want) {
						t.Errorf("open (read-only %v): %q lacks %q", ro, msg, want)
					}
				}
				if strings.Contains(msg, "\n") {
					t.Errorf("open: a message of several lines: %q", msg)
				}
			}
			if c.open != fine {
				after, _ := os.ReadFile(path)
				if !bytes.Equal(before, after) {
					t.Errorf("opening the damaged file changed it")
				}
			}

		})
	}
}

// TestWalkUnmapped: where the file is not mapped (other systems than
// Linux), the walk reads the pages and finds the same.
func TestWalkUnmapped(t *testing.T) {
	path := sampleStore(t)
	branch, leaf := treePages(t, path)
	for i, damage := range []func(){
		func() {},
		func() { scribble(t, path, int64(leaf)*4096+boltPageHeader, 48, 5) },
		func() { scribble(t, path, int64(branch)*4096, 8, 4) },
	} {
		damage()
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		mapped, err1 := walk(f, true)
		read, err2 := walk(f, false)
		f.Close()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if (i > 0) != (len(read.problems) > 0) {
			t.Errorf("case %d: problems %q", i, read.problems)
		}
		if strings.Join(mapped.problems, "\n") != strings.Join(read.problems, "\n") || mapped.used != read.used {
			t.Errorf("mapped: %d pages used, %q; read: %d, %q", mapped.used, mapped.problems, read.used, read.problems)
		}
	}
}

// TestCheckHealthy: Check counts what a healthy store holds.
func TestCheckHealthy(t *testing.T) {
	path := sampleStore(t)
	rep, err := Check(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Warnings) > 0 {
		t.Fatalf("problems %q, warnings %q", rep.Problems, rep.Warnings)
	}
	want := []CheckEndpoint{{Name: "a", Pending: sampleEvents - sampleDead, DeadLetters: sampleDead}, {Name: "b", Pending: sampleEvents - sampleSent}}
	if rep.Events != sampleEvents || rep.Position != sampleEvents || rep.Layout != layoutVersion ||
		rep.LogEntries != sampleDead+sampleSent ||
		len(rep.Endpoints) != 2 || rep.Endpoints[0] != want[0] || rep.Endpoints[1] != want[1] {
		t.Errorf("report %+v; want %d events at position %d, endpoints %+v", rep, sampleEvents, sampleEvents, want)
	}
	if rep.FreePages == 0 || rep.Pages == 0 {
		t.Errorf("pages %d, free %d", rep.Pages, rep.FreePages)
	}
}

// TestCheckRecords: damage bbolt does not see (deskhook's records and
// invariants, written here through bbolt) is found by Check, each with
// what is wrong.
func TestCheckRecords(t *testing.T) {
	k := func(pos uint64) []byte { return Key{Pos: change.Position(pos)}.bytes() }
	ep := func(tx *bolt.Tx, name string) *bolt.Bucket { return tx.Bucket(bucketEndpoints).Bucket([]byte(name)) }
	cases := []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"event record", func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Put(k(300), []byte{9, 9}) },
			"event 0/12C#0 does not decode"},
		{"event missing", func(tx *bolt.Tx) error { return tx.Bucket(bucketEvents).Delete(k(300)) },
			`endpoint "a": pending 0/12C#0: its event is missing`},
		{"pending record", func(tx *bolt.Tx) error { return ep(tx, "b").Bucket(bucketPending).Put(k(300), []byte{1}) },
			`endpoint "b": pending 0/12C#0: its record does not decode`},
		{"dead letter attempts", func(tx *bolt.Tx) error {
			v := append([]byte(nil), ep(tx, "a").Bucket(bucketDead).Get(k(3))...)
			return ep(tx, "a").Bucket(bucketDead).Put(k(3), v[:len(v)-3])
		}, `endpoint "a": dead letter 0/3#0: its record does not decode`},
		{"pending and dead", func(tx *bolt.Tx) error {
			return ep(tx, "a").Bucket(bucketPending).Put(k(3), ep(tx, "a").Bucket(bucketDead).Get(k(3)))
		}, `endpoint "a": pending 0/3#0: it is also a dead letter`},
		{"reference count", func(tx *bolt.Tx) error { return tx.Bucket(bucketRefs).Put(k(300), []byte{0, 3}) },
			"refs: event 0/12C#0 is held by 2 endpoints, its count says 3"},
		{"reference count missing", func(tx *bolt.Tx) error { return tx.Bucket(bucketRefs).Delete(k(300)) },
			"refs: event 0/12C#0 is held by 2 endpoints, its count says 0"},
		{"reference count of one", func(tx *bolt.Tx) error { return tx.Bucket(bucketRefs).Put(k(100), []byte{0, 2}) },
			"refs: event 0/64#0 is held by 1 endpoint(s), its count says 2"},
		{"reference count of nothing", func(tx *bolt.Tx) error { return tx.Bucket(bucketRefs).Put(k(999), []byte{0, 2}) },
			"refs: a count for event 0/3E7#0, which does not exist"},
		{"endpoint state", func(tx *bolt.Tx) error { return ep(tx, "a").Put(keyState, []byte("{not json")) },
			`endpoint "a": its state does not decode`},
		{"endpoint's queue", func(tx *bolt.Tx) error { return ep(tx, "b").DeleteBucket(bucketDead) },
			`endpoint "b": its pending or dead bucket is missing`},
		{"layout version", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte{7}) },
			"layout version 7: written by a newer deskhook"},
		{"position", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyPosition, []byte{1, 2}) },
			"meta: the stored position is 2 bytes"},
		{"bucket", func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketRefs) }, `bucket "refs" is missing`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := sampleStore(t)
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(c.damage); err != nil {
				t.Fatal(err)
			}
			_ = db.Close()
			rep, err := Check(path, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(rep.Problems, "\n"), c.want) {
				t.Errorf("problems lack %q:\n%s", c.want, strings.Join(rep.Problems, "\n"))
			}
		})
	}
}

// TestDamageWhileOpen: a record that does not decode, or a file cut short
// under a running outbox (a fault on its mapping), is a DamageError from
// the read, not a crash, and stops intake.
func TestDamageWhileOpen(t *testing.T) {
	t.Run("record", func(t *testing.T) {
		path := sampleStore(t)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketEndpoints).Bucket([]byte("a")).Bucket(bucketPending).Put(Key{Pos: 300}.bytes(), []byte{1})
		})
		_ = db.Close()
		log, out := testLogger(t)
		o := open(t, path, Options{NoSync: true, Logger: log}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
		_, err = o.Pending("a", PendingQuery{After: Key{Pos: 250}})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "pending 0/12C#0: corrupt record") {
			t.Fatalf("pending: %v; want a DamageError naming the entry", err)
		}
		if !errors.Is(o.Err(), ErrDamaged) {
			t.Errorf("intake not stopped: %v", o.Err())
		}
		if err := o.Append(context.Background(), 1000, true, txn(1000, 1)); !errors.Is(err, ErrDamaged) {
			t.Errorf("append after damage: %v", err)
		}
		if !strings.Contains(out.String(), "outbox store is damaged: intake stopped") {
			t.Errorf("no ERROR line:\n%s", out.String())
		}
	})
	t.Run("cut short", func(t *testing.T) {
		path := sampleStore(t)
		o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
		truncate(t, path, 3*4096)
		_, err := o.DeadLetters(DeadFilter{})
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("dead letters from a file cut short: %v; want a DamageError", err)
		}
		t.Logf("%v", err)
		if _, err := o.Pending("b", PendingQuery{}); !errors.Is(err, ErrDamaged) {
			t.Errorf("pending from a file cut short: %v", err)
		}
		if !errors.Is(o.Err(), ErrDamaged) {
			t.Errorf("intake not stopped: %v", o.Err())
		}
	})
}

// TestCompact: a file that grew shrinks, keeps every key and value, and
// opens with the same queues.
func TestCompact(t *testing.T) {
	path := sampleStore(t)
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	// A burst of large events, delivered: the file keeps its size.
	big := bytes.Repeat([]byte("x"), 256<<10)
	for pos := change.Position(sampleEvents + 1); pos <= sampleEvents+40; pos++ {
		evs := txn(pos, 1)
		evs[0].Payload = big
		mustAppend(t, o, pos, true, evs)
	}
	mustFlush(t, o)
	for pos := change.Position(sampleEvents + 1); pos <= sampleEvents+40; pos++ {
		for _, ep := range []string{"a", "b"} {
			o.Record(Result{Endpoint: ep, Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}})
		}
	}
	mustFlush(t, o)
	wantA, wantB := pendingKeys(t, o, "a"), pendingKeys(t, o, "b")
	wantDead, err := o.DeadLetters(DeadFilter{})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := Compact(path, 200*time.Millisecond); !errors.Is(err, ErrInUse) {
		t.Fatalf("compact while open: %v; want ErrInUse", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Compact(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d → %d bytes in %v", res.Before, res.After, res.Took)
	if res.Before < 10<<20 || res.After > res.Before/4 {
		t.Errorf("compact: %d → %d bytes; want a file of more than 10 MiB shrunk to a quarter", res.Before, res.After)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != res.After || fi.Mode().Perm() != 0o600 {
		t.Errorf("the compacted file: %v %v", fi, err)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary copy is left: %v", err)
	}
	if rep, err := Check(path, time.Second); err != nil || !rep.OK() {
		t.Fatalf("check after compact: %v %+v", err, rep)
	}
	o = open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	gotA, gotB := pendingKeys(t, o, "a"), pendingKeys(t, o, "b")
	gotDead, err := o.DeadLetters(DeadFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !equalKeys(gotA, wantA) || !equalKeys(gotB, wantB) || len(gotDead) != len(wantDead) {
		t.Errorf("after compact: a %d, b %d pending, %d dead; before %d, %d, %d",
			len(gotA), len(gotB), len(gotDead), len(wantA), len(wantB), len(wantDead))
	}
	if o.Position() != sampleEvents+40 {
		t.Errorf("position %s", o.Position())
	}
	// The compacted store keeps working.
	mustAppend(t, o, sampleEvents+41, true, txn(sampleEvents+41, 1))
	mustFlush(t, o)
	if n := len(pendingKeys(t, o, "a")); n != len(wantA)+1 {
		t.Errorf("a has %d pending after an append, want %d", n, len(wantA)+1)
	}
}

func equalKeys(a, b []Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestCompactRefusesDamage: a damaged file is left as it is.
func TestCompactRefusesDamage(t *testing.T) {
	path := sampleStore(t)
	branch, _ := treePages(t, path)
	scribble(t, path, int64(branch)*4096+boltPageHeader, 64, 3)
	before, _ := os.ReadFile(path)
	_, err := Compact(path, time.Second)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "compact copies an intact store only") {
		t.Fatalf("compact of a damaged file: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("compact changed the damaged file")
	}
}

// TestBackup: a backup taken while appends and results are committed is a
// store that passes Check and holds a consistent state: the position it
// stores and every event up to it with its pending entries.
func TestBackup(t *testing.T) {
	path := sampleStore(t)
	o := open(t, path, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pos := change.Position(sampleEvents + 1); ctx.Err() == nil; pos++ {
			if err := o.Append(ctx, pos, true, txn(pos, int64(pos%5))); err != nil {
				return
			}
			o.Record(Result{Endpoint: "b", Key: Key{Pos: pos - 50}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}})
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); o.Position() < sampleEvents+100; {
		if time.Now().After(deadline) {
			t.Fatalf("appends not committed: position %s", o.Position())
		}
		time.Sleep(5 * time.Millisecond)
	}
	dst := filepath.Join(t.TempDir(), "backup.db")
	var size int64
	rep, err := SaveBackup(dst, func(w io.Writer) error {
		n, err := o.Backup(w, func(s int64) { size = s })
		if err == nil && n != size {
			t.Errorf("backup wrote %d bytes, announced %d", n, size)
		}
		return err
	})
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Path != dst || rep.Position <= sampleEvents {
		t.Fatalf("backup check: %+v", rep)
	}
	b := open(t, dst, Options{NoSync: true}, Subscription{Name: "a", Wants: all}, Subscription{Name: "b", Wants: all})
	if b.Position() != rep.Position {
		t.Errorf("the backup opens at %s, its check said %s", b.Position(), rep.Position)
	}
	keys := pendingKeys(t, b, "a")
	if len(keys) != int(rep.Position)-sampleDead {
		t.Errorf("a has %d pending in the backup, want every event up to %s but the %d dead", len(keys), rep.Position, sampleDead)
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
}

// TestSaveBackupRefusesBadCopy: a copy cut short never replaces the file.
func TestSaveBackupRefusesBadCopy(t *testing.T) {
	src := sampleStore(t)
	dst := filepath.Join(t.TempDir(), "backup.db")
	writeFile(t, dst, []byte("the previous backup"))
	whole, _ := os.ReadFile(src)
	_, err := SaveBackup(dst, func(w io.Writer) error {
		_, err := w.Write(whole[:len(whole)/2])
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "the copy fails its check") {
		t.Fatalf("a copy cut short: %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "the previous backup" {
		t.Error("the previous backup was replaced")
	}
	if _, err := os.Stat(dst + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
}

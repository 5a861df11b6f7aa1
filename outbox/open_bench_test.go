package outbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
)

// BenchmarkOpenLarge measures what opening a large store costs: the
// structural walk before bbolt maps the file (walk), bbolt's own
// read-write open, which walks every page to rebuild its free list (bolt),
// both as Open does them (open), and the full Check. The store holds
// undelivered events of 2 KiB for two endpoints;
// DESKHOOK_BENCH_STORE_MB sets its size (default 256), and it is kept in
// the temp directory between runs. The page cache is warm: the figures are
// the CPU's; a cold cache adds reading the file once (the walk reads it,
// and bbolt's open then finds it cached).
func BenchmarkOpenLarge(b *testing.B) {
	mb := 256
	if v := os.Getenv("DESKHOOK_BENCH_STORE_MB"); v != "" {
		var err error
		if mb, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("deskhook-bench-store-%dMB.db", mb))
	if _, err := os.Stat(path); err != nil {
		if err := buildLarge(path, int64(mb)<<20); err != nil {
			os.Remove(path)
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	b.Logf("store %s: %d MiB", path, fi.Size()>>20)
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			l, err := walkFile(f)
			f.Close()
			if err != nil || len(l.problems) > 0 {
				b.Fatal(err, l.problems)
			}
		}
	})
	b.Run("bolt", func(b *testing.B) {
		for b.Loop() {
			db, err := bolt.Open(path, 0o600, &bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			o, err := Open(path, Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			o.Close()
		}
	})
	b.Run("check", func(b *testing.B) {
		for b.Loop() {
			r, err := Check(path, time.Second)
			if err != nil || !r.OK() {
				b.Fatal(err, r.Problems)
			}
		}
	})
}

func buildLarge(path string, size int64) error {
	o, err := openAB(path)
	if err != nil {
		return err
	}
	defer o.Close()
	ctx := context.Background()
	pad := bytes.Repeat([]byte("x"), 2<<10)
	pos := change.Position(1)
	for {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.Size() >= size {
			return nil
		}
		for range 1000 {
			evs := txn(pos, int64(pos%1000), int64(pos%999))
			for i := range evs {
				evs[i].Payload = append(evs[i].Payload, pad...)
			}
			if err := o.Append(ctx, pos, true, evs); err != nil {
				return err
			}
			pos++
		}
		if err := o.Flush(ctx); err != nil {
			return err
		}
	}
}

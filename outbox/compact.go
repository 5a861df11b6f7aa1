package outbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CompactResult is what Compact did.
type CompactResult struct {
	Path   string        `json:"path"`
	Before int64         `json:"before_bytes"`
	After  int64         `json:"after_bytes"`
	Took   time.Duration `json:"took_ns"`
}

// compactTxSize bounds the bytes copied per transaction while compacting,
// so the copy runs in bounded memory.
const compactTxSize = 64 << 20

// Compact rewrites the store file at path with only what it holds: a bbolt
// file never gives back the pages it freed, so after a burst (a backlog,
// large replies) it keeps its largest size. Everything is kept: every
// bucket, key, value and sequence is copied (bbolt's Compact), and the copy
// is compared with the original, key by key and byte by byte, before it
// replaces it.
//
// It needs the file to itself (an error wrapping ErrInUse while a daemon
// holds it) and refuses a damaged file. The copy is written next to the
// file, synced, and renamed over it: a crash at any moment leaves either
// the old file or the new one, whole (and perhaps a stale copy named
// path+".compact", which the next Compact removes).
func Compact(path string, lockTimeout time.Duration) (CompactResult, error) {
	start := time.Now()
	res := CompactResult{Path: path}
	// Renaming over a symbolic link would replace the link: compact the
	// file it points to.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return res, fmt.Errorf("outbox: store %s: %w", path, err)
	}
	opts := Options{LockTimeout: lockTimeout}
	opts.setDefaults()
	// Opened for writing, so bbolt holds the exclusive lock until the new
	// file is in place: no daemon starts on the old one meanwhile (and one
	// that waited for the lock finds the file replaced: see openChecked).
	src, _, err := openChecked(real, opts, &bolt.Options{
		Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
	})
	if errors.Is(err, ErrDamaged) {
		return res, fmt.Errorf("compact copies an intact store only: %w", err)
	}
	if err != nil {
		return res, err
	}
	defer src.Close()
	fi, err := os.Stat(real)
	if err != nil {
		return res, err
	}
	res.Before = fi.Size()

	tmp := real + ".compact"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("outbox: removing a stale %s: %w", tmp, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := writeCompacted(tmp, src, fi); err != nil {
		return res, fmt.Errorf("outbox: compacting %s: %w", path, err)
	}
	if err := os.Rename(tmp, real); err != nil {
		return res, fmt.Errorf("outbox: compacting %s: %w", path, err)
	}
	ok = true
	if err := syncDir(filepath.Dir(real)); err != nil {
		return res, fmt.Errorf("outbox: compacting %s: the new file is in place, but syncing its directory failed: %w", path, err)
	}
	if nfi, err := os.Stat(real); err == nil {
		res.After = nfi.Size()
	}
	res.Took = time.Since(start)
	return res, nil
}

// writeCompacted copies src into a new file at tmp, compares the two and
// syncs the copy, with the original's mode and (when allowed) owner.
func writeCompacted(tmp string, src *bolt.DB, orig os.FileInfo) error {
	dst, err := bolt.Open(tmp, orig.Mode().Perm(), &bolt.Options{
		NoSync: true, FreelistType: bolt.FreelistMapType, NoFreelistSync: true,
	})
	if err != nil {
		return err
	}
	defer dst.Close()
	err = protect(func() error {
		if err := bolt.Compact(dst, src, compactTxSize); err != nil {
			return err
		}
		return sameContent(src, dst)
	})
	if err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, orig.Mode().Perm()); err != nil {
		return err
	}
	copyOwner(tmp, orig)
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// sameContent compares two bbolt files bucket by bucket: the same keys,
// values, nesting and sequences.
func sameContent(a, b *bolt.DB) error {
	return a.View(func(ta *bolt.Tx) error {
		return b.View(func(tb *bolt.Tx) error {
			return sameBuckets("", ta.Cursor(), tb.Cursor(),
				func(k []byte) (*bolt.Bucket, *bolt.Bucket) { return ta.Bucket(k), tb.Bucket(k) })
		})
	})
}

func sameBuckets(path string, ca, cb *bolt.Cursor, sub func([]byte) (*bolt.Bucket, *bolt.Bucket)) error {
	ka, va := ca.First()
	kb, vb := cb.First()
	for ; ka != nil || kb != nil; ka, va, kb, vb = next2(ca, cb) {
		if !bytes.Equal(ka, kb) {
			return fmt.Errorf("the copy differs from the original in bucket %q: key %x against %x", path, ka, kb)
		}
		if (va == nil) != (vb == nil) || !bytes.Equal(va, vb) {
			return fmt.Errorf("the copy differs from the original in bucket %q at key %x", path, ka)
		}
		if va != nil {
			continue
		}
		ba, bb := sub(ka)
		if ba == nil || bb == nil || ba.Sequence() != bb.Sequence() {
			return fmt.Errorf("the copy differs from the original: bucket %q/%s", path, ka)
		}
		err := sameBuckets(path+"/"+string(ka), ba.Cursor(), bb.Cursor(),
			func(k []byte) (*bolt.Bucket, *bolt.Bucket) { return ba.Bucket(k), bb.Bucket(k) })
		if err != nil {
			return err
		}
	}
	return nil
}

func next2(ca, cb *bolt.Cursor) (ka, va, kb, vb []byte) {
	ka, va = ca.Next()
	kb, vb = cb.Next()
	return ka, va, kb, vb
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

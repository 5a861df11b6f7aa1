package outbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the store to w: the file as of one
// read transaction (bbolt's Tx.WriteTo), while the committer goes on
// writing. size, when set, is called with the copy's length before its
// first byte. The copy is a store file of its own: restoring it means
// putting it in the store's place while no daemon runs.
//
// The read transaction holds its pages for as long as the copy takes; a
// commit that must grow the file's mapping meanwhile waits for it.
func (o *Outbox) Backup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := o.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("outbox: backup of %s: %w", o.path, err)
	}
	return n, nil
}

// SaveBackup writes a backup to the file dst: write (Backup, or a copy
// streamed from the daemon) fills a temporary file next to dst, which is
// synced and checked (Check) before it is renamed to dst. A copy that is
// cut short or fails the check never takes dst's place; dst, if it
// exists, is replaced only by a good copy.
func SaveBackup(dst string, write func(io.Writer) error) (*CheckReport, error) {
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	rep, err := Check(tmp, time.Second)
	if err != nil {
		return nil, fmt.Errorf("backup: checking the copy: %w", err)
	}
	if !rep.OK() {
		return rep, fmt.Errorf("backup: the copy fails its check (%s); %s is left as it was",
			strings.Join(rep.Problems, "; "), dst)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	ok = true
	rep.Path = dst
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return rep, fmt.Errorf("backup: %s is written, but syncing its directory failed: %w", dst, err)
	}
	return rep, nil
}

//go:build unix

package outbox

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockFile takes an advisory lock on f, shared or exclusive, as bbolt does
// on the file it opens (so the two exclude each other), waiting up to
// timeout. It reports false when the lock stayed taken.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) (bool, error) {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return false, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// copyOwner gives path the owner and group of orig, when allowed (as root):
// a store compacted by root must stay readable by the daemon's user.
func copyOwner(path string, orig os.FileInfo) {
	if st, ok := orig.Sys().(*syscall.Stat_t); ok {
		_ = os.Chown(path, int(st.Uid), int(st.Gid))
	}
}

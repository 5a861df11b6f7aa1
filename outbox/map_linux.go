package outbox

import (
	"errors"
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. MAP_POPULATE maps every page at
// once (reading ahead, in order, what is not cached) instead of taking a
// fault on each first touch, which costs more than the walk's checks.
func mapFile(f *os.File, size int64) ([]byte, func(), error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil, errors.New("cannot map the file")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, nil, err
	}
	return b, func() { _ = syscall.Munmap(b) }, nil
}

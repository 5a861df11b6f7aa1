package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/deskhook/deskhook/cdc"
)

// Free space the store needs: below storeSpaceFail a burst of large
// replies can fill the disk (bbolt grows its file in steps of up to 1 GiB,
// and a write that fails stops the intake); below storeSpaceWarn, or below
// the store's own size (a backup or a compaction writes a copy of it), the
// operator should make room before it comes to that.
const (
	storeSpaceFail = 256 << 20
	storeSpaceWarn = 1 << 30
)

// storeSpace checks that the store's directory exists and has room.
func storeSpace(path string) cdc.CheckResult {
	dir := filepath.Dir(path)
	res := cdc.CheckResult{Name: "store space " + dir}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		res.Detail = "the store's directory does not exist"
		res.Fix = fmt.Sprintf("mkdir -p %s, or set store.path", dir)
		return res
	case err != nil:
		res.Detail = err.Error()
		return res
	case !info.IsDir():
		res.Detail = "not a directory"
		res.Fix = "set store.path to a file in a directory"
		return res
	}
	free, err := freeBytes(dir)
	if err != nil {
		res.OK, res.Warn = true, true
		res.Detail = "cannot tell the free space: " + err.Error()
		return res
	}
	var size int64
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	return judgeStoreSpace(res, free, size)
}

// judgeStoreSpace grades free bytes against the thresholds and the
// store's size.
func judgeStoreSpace(res cdc.CheckResult, free uint64, size int64) cdc.CheckResult {
	detail := fmt.Sprintf("%s free; the store is %s", cdc.HumanBytes(int64(free)), cdc.HumanBytes(size))
	fix := "make room on that file system, or move store.path to one with more"
	switch {
	case free < storeSpaceFail:
		res.Detail = detail + fmt.Sprintf(": less than %s, a burst of large events can fill it and stop the intake",
			cdc.HumanBytes(storeSpaceFail))
		res.Fix = fix
	case free < storeSpaceWarn || free < uint64(size):
		res.OK, res.Warn = true, true
		res.Detail = detail + fmt.Sprintf(": less than %s or than the store's size (a backup or compaction "+
			"writes a copy)", cdc.HumanBytes(storeSpaceWarn))
		res.Fix = fix
	default:
		res.OK = true
		res.Detail = detail
	}
	return res
}

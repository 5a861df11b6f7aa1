package main

import (
	"strings"
	"testing"

	"github.com/deskhook/deskhook/cdc"
)

// TestJudgeStoreSpace: FAIL under 256 MiB free, WARN under 1 GiB or under
// the store's own size, ok above; each with what it saw.
func TestJudgeStoreSpace(t *testing.T) {
	for _, tc := range []struct {
		free      uint64
		size      int64
		ok, warn  bool
		substring string
	}{
		{100 << 20, 0, false, false, "100.0 MiB free; the store is 0 B: less than 256.0 MiB"},
		{256<<20 - 1, 1 << 20, false, false, "less than 256.0 MiB"},
		{256 << 20, 0, true, true, "less than 1.0 GiB or than the store's size"},
		{2 << 30, 3 << 30, true, true, "2.0 GiB free; the store is 3.0 GiB"},
		{2 << 30, 1 << 30, true, false, "2.0 GiB free; the store is 1.0 GiB"},
	} {
		r := judgeStoreSpace(cdc.CheckResult{Name: "store space /x"}, tc.free, tc.size)
		if r.OK != tc.ok || r.Warn != tc.warn || !strings.Contains(r.Detail, tc.substring) ||
			(!tc.ok || tc.warn) != (r.Fix != "") {
			t.Errorf("free %d, store %d: %+v", tc.free, tc.size, r)
		}
	}
}

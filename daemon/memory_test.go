package daemon

import (
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/testenv"
)

// TestMemoryLimitParsing: auto (the default), off, or a size.
func TestMemoryLimitParsing(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want MemoryLimit
	}{
		{"", MemoryLimitAuto},
		{"memory_limit: auto\n", MemoryLimitAuto},
		{"memory_limit: off\n", MemoryLimitOff},
		{"memory_limit: 200MiB\n", 200 << 20},
		{"memory_limit: 268435456\n", 256 << 20},
	} {
		c := mustParse(t, minimal+tc.yaml)
		if c.MemoryLimit != tc.want {
			t.Errorf("%q: memory_limit %s, want %s", tc.yaml, c.MemoryLimit, tc.want)
		}
	}
}

// TestMemoryBudget: auto is the sum of the bounds, each endpoint's counted
// once per endpoint, plus the base.
func TestMemoryBudget(t *testing.T) {
	c := mustParse(t, minimal)
	const mib = 1 << 20
	// 16 queue + 8 batch + 32 state + 4 output + 16 store + 16 window + 16 render + 32 base
	if got, want := c.MemoryBudget(), int64(140*mib); got != want {
		t.Errorf("default budget %d MiB, want %d MiB", got/mib, want/mib)
	}
	c = mustParse(t, minimal+"  - url: https://two.example.com/hooks\nwindow_bytes: 1048576\nstore: {queue_bytes: 2097152}\n")
	if got, want := c.MemoryBudget(), int64((16+8+32+4+2+2*(1+16)+32)*mib); got != want {
		t.Errorf("budget %d MiB, want %d MiB", got/mib, want/mib)
	}
}

// TestApplyMemoryLimit: the process's soft limit follows memory_limit,
// unless GOMEMLIMIT is set; what applies is logged.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	logs := &testenv.Output{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	t.Setenv("GOMEMLIMIT", "")
	c := mustParse(t, minimal)
	if got := ApplyMemoryLimit(c, log); got != c.MemoryBudget() || debug.SetMemoryLimit(-1) != got {
		t.Errorf("auto: limit %d, process limit %d, want %d", got, debug.SetMemoryLimit(-1), c.MemoryBudget())
	}
	c = mustParse(t, minimal+"memory_limit: 100MiB\n")
	if got := ApplyMemoryLimit(c, log); got != 100<<20 || debug.SetMemoryLimit(-1) != 100<<20 {
		t.Errorf("100MiB: limit %d", got)
	}
	if !strings.Contains(logs.String(), "memory_limit is below the sum of the memory bounds") {
		t.Errorf("no warning for a limit below the bounds:\n%s", logs)
	}
	c = mustParse(t, minimal+"memory_limit: off\n")
	if got := ApplyMemoryLimit(c, log); got != 0 {
		t.Errorf("off: limit %d", got)
	}

	t.Setenv("GOMEMLIMIT", "300MiB")
	debug.SetMemoryLimit(300 << 20) // as the runtime did at start
	c = mustParse(t, minimal+"memory_limit: 100MiB\n")
	if got := ApplyMemoryLimit(c, log); got != 300<<20 || debug.SetMemoryLimit(-1) != 300<<20 {
		t.Errorf("GOMEMLIMIT set: limit %d, want GOMEMLIMIT's", got)
	}
	if !strings.Contains(logs.String(), "memory limit from GOMEMLIMIT") {
		t.Errorf("GOMEMLIMIT not logged:\n%s", logs)
	}
	debug.SetMemoryLimit(math.MaxInt64)
}

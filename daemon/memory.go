package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"gopkg.in/yaml.v3"
)

// The daemon's memory is bounded in bytes stage by stage (issue 12, point
// 7), each bound a key of its own section:
//
//	source.queue_bytes      decoded changes waiting for the mapper
//	source.max_batch_bytes  one more batch, being decoded or waiting for room
//	faveo.state_bytes       related rows kept between transactions
//	faveo.output_bytes      events mapped, not yet handed to the store
//	store.queue_bytes       events handed to the store, not yet committed
//	window_bytes            per endpoint: payloads waiting to be sent
//	render_bytes            per endpoint: requests being rendered and sent
//
// Each admits at least one item, however large, so a single event larger
// than a bound still flows. Go's garbage collector, left to itself, lets
// the heap grow to twice what is live before it collects (GOGC=100), and
// hands freed memory back to the system only gradually: bounded live
// memory can still mean twice as much resident. memory_limit is the soft
// limit (runtime/debug.SetMemoryLimit) that makes it collect before the
// process passes the sum of the bounds.

// MemoryLimit is memory_limit: "auto" (the default: MemoryBudget), "off"
// (Go's own behaviour, GOGC alone), or a size in bytes ("256MiB"). The
// GOMEMLIMIT environment variable, when set, wins over it.
type MemoryLimit int64

// The special values of MemoryLimit.
const (
	MemoryLimitAuto MemoryLimit = 0
	MemoryLimitOff  MemoryLimit = -1
)

// minMemoryLimit: below it the collector would run all the time.
const minMemoryLimit = 32 << 20

// minQueueBytes is the least store.queue_bytes may be.
const minQueueBytes = 64 << 10

// memoryBase is what the daemon holds besides the bounded stages: the Go
// runtime, connections and their buffers, one replication message being
// received, the items each bound admits beyond it. Measured (BENCHMARKS.md,
// "Memory bounded in bytes"): the heap holds about 10 MB at rest.
const memoryBase = 32 << 20

// UnmarshalYAML reads "auto", "off" or a size.
func (m *MemoryLimit) UnmarshalYAML(n *yaml.Node) error {
	switch strings.TrimSpace(n.Value) {
	case "auto":
		*m = MemoryLimitAuto
		return nil
	case "off":
		*m = MemoryLimitOff
		return nil
	}
	var b ByteSize
	if err := b.UnmarshalYAML(n); err != nil || b <= 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s `%s` into daemon.MemoryLimit", n.Line, n.ShortTag(), n.Value)}}
	}
	*m = MemoryLimit(b)
	return nil
}

func (m MemoryLimit) String() string {
	switch m {
	case MemoryLimitAuto:
		return "auto"
	case MemoryLimitOff:
		return "off"
	}
	return ByteSize(m).String()
}

// MemoryBudget is the sum of the memory bounds plus memoryBase: what
// memory_limit "auto" sets.
func (c *Config) MemoryBudget() int64 {
	s := int64(c.Source.QueueBytes) + int64(c.Source.MaxBatchBytes) +
		int64(c.Faveo.StateBytes) + int64(c.Faveo.OutputBytes) + int64(c.Store.QueueBytes) +
		int64(len(c.Sender.Endpoints))*(int64(c.Sender.WindowBytes)+int64(c.Sender.RenderBytes))
	return s + memoryBase
}

// validateMemory checks memory_limit against the bounds it must hold.
func (c *Config) validateMemory(bad func(path, format string, args ...any)) {
	if c.Store.QueueBytes < minQueueBytes {
		bad("store.queue_bytes", "must be at least %d (got %d)", minQueueBytes, c.Store.QueueBytes)
	}
	if c.MemoryLimit > 0 && c.MemoryLimit < minMemoryLimit {
		bad("memory_limit", "must be at least %s, or auto, or off (got %s)", ByteSize(minMemoryLimit), c.MemoryLimit)
	}
}

// ApplyMemoryLimit sets the process's soft memory limit from memory_limit
// (unless GOMEMLIMIT is set, which Go applied at start) and logs what
// applies. It returns the limit in force (0: none).
func ApplyMemoryLimit(c *Config, log *slog.Logger) int64 {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		limit := debug.SetMemoryLimit(-1)
		log.Info("memory limit from GOMEMLIMIT; memory_limit is not used", "GOMEMLIMIT", env,
			"limit", ByteSize(limit).String(), "bounds", ByteSize(c.MemoryBudget()).String())
		return limit
	}
	var limit int64
	switch c.MemoryLimit {
	case MemoryLimitOff:
		log.Info("no memory limit (memory_limit: off): Go's collector alone paces the heap",
			"bounds", ByteSize(c.MemoryBudget()).String())
		return 0
	case MemoryLimitAuto:
		limit = c.MemoryBudget()
	default:
		limit = int64(c.MemoryLimit)
		if b := c.MemoryBudget(); limit < b {
			log.Warn("memory_limit is below the sum of the memory bounds: the collector will work harder than it needs to",
				"memory_limit", ByteSize(limit).String(), "bounds", ByteSize(b).String())
		}
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit", "limit", ByteSize(limit).String(), "from", c.MemoryLimit.String())
	return limit
}

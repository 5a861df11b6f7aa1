package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/outbox"
)

// offlineConfig is a valid config whose database is never reached: New
// connects lazily, so the daemon can be built without one.
func offlineConfig(t *testing.T) *Config {
	t.Helper()
	c := mustParse(t, `
source: {dsn: "postgres://deskhook@127.0.0.1:1/helpdesk?connect_timeout=1"}
store: {path: `+filepath.Join(t.TempDir(), "deskhook.db")+`}
admin: {listen: off, max_slot_lag: 1MiB}
endpoints: [{url: "http://127.0.0.1:1/hooks"}]
`)
	return c
}

func TestNewFailsFastOnAStoreInUse(t *testing.T) {
	cfg := offlineConfig(t)
	ctx := context.Background()
	d, err := New(ctx, cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	start := time.Now()
	_, err = New(ctx, cfg, Options{NoSync: true})
	if !errors.Is(err, outbox.ErrInUse) || !strings.Contains(err.Error(), cfg.Store.Path) {
		t.Errorf("second daemon on one store: %v; want ErrInUse naming the file", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("second daemon took %s to fail", took)
	}
}

func TestNewFailsOnABusyAdminPort(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.Admin.Listen = "127.0.0.1:0"
	ctx := context.Background()
	d, err := New(ctx, cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	cfg2 := offlineConfig(t)
	cfg2.Admin.Listen = d.AdminAddr()
	if _, err := New(ctx, cfg2, Options{NoSync: true}); err == nil || !strings.Contains(err.Error(), "admin.listen") {
		t.Errorf("admin port in use: %v; want an error naming admin.listen", err)
	}
	// The port is bound before the store is created.
	if _, err := os.Stat(cfg2.Store.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed New created the store: %v", err)
	}
	cfg4 := offlineConfig(t)
	cfg4.Admin.Listen, cfg4.Admin.ProbeListen = "127.0.0.1:0", d.AdminAddr()
	if _, err := New(ctx, cfg4, Options{NoSync: true}); err == nil || !strings.Contains(err.Error(), "admin.probe_listen") {
		t.Errorf("probe port in use: %v; want an error naming admin.probe_listen", err)
	}
	if _, err := os.Stat(cfg4.Store.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed New created the store: %v", err)
	}
	// The failed daemon let go of its store.
	d3, err := New(ctx, cfg2.withListen("off"), Options{NoSync: true})
	if err != nil {
		t.Fatalf("store still locked after a failed New: %v", err)
	}
	d3.closeAll()
}

func (c *Config) withListen(l string) *Config {
	cc := *c
	cc.Admin.Listen = l
	return &cc
}

// TestProblems: readiness reports the slot's state: an error reading it,
// and retained WAL beyond admin.max_slot_lag.
func TestProblems(t *testing.T) {
	d, err := New(context.Background(), offlineConfig(t), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.closeAll()
	has := func(want string) {
		t.Helper()
		p := strings.Join(d.problems(), "\n")
		if !strings.Contains(p, want) {
			t.Errorf("problems lack %q:\n%s", want, p)
		}
	}
	has("replication stream is not connected")
	d.health.setStreamErr(errors.New("cdc: replication slot \"deskhook\" does not exist"))
	has(`replication stream: cdc: replication slot "deskhook" does not exist`)

	d.health.setSlot(cdc.Slot{Name: "deskhook", RetainedBytes: 2 << 20}, nil)
	has("replication slot deskhook retains 2097152 bytes of WAL (admin.max_slot_lag 1MiB)")
	d.health.setSlot(cdc.Slot{Name: "deskhook", RetainedBytes: 1 << 20}, nil)
	if p := strings.Join(d.problems(), "\n"); strings.Contains(p, "retains") {
		t.Errorf("retained WAL at the limit reported: %s", p)
	}
	d.health.setSlot(cdc.Slot{}, errors.New("connection refused"))
	has("replication slot: connection refused")
}

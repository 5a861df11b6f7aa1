package daemon

import (
	"context"
	"reflect"
)

// Reload applies the endpoints of a newly loaded config (SIGHUP). Other
// sections need a restart; a change to them is logged and ignored.
// Endpoints are matched by name: one left out is orphaned (its queue and
// dead letters stay in the store, logged at WARN), one named again
// resumes its queue.
func (d *Daemon) Reload(ctx context.Context, next *Config) error {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	if err := d.sd.Reload(ctx, next.Sender.Endpoints); err != nil {
		return err
	}
	d.cfg.Sender.Endpoints = next.Sender.Endpoints
	d.log.Info("endpoints reloaded", "endpoints", len(next.Sender.Endpoints))
	if changed := d.cfg.restartOnly(next); len(changed) > 0 {
		d.log.Warn("config changes that need a restart were not applied (a reload applies endpoints only)",
			"sections", changed)
	}
	return nil
}

// restartOnly lists the sections other than endpoints in which next
// differs from c.
func (c *Config) restartOnly(next *Config) []string {
	var changed []string
	for _, s := range []struct {
		name      string
		old, next any
	}{
		{"source", c.Source, next.Source},
		{"store", c.Store, next.Store},
		{"faveo", c.Faveo, next.Faveo},
		{"retry_after_cap", c.Sender.RetryAfterCap, next.Sender.RetryAfterCap},
		{"failure_log_interval", c.Sender.FailureLogInterval, next.Sender.FailureLogInterval},
		{"admin", c.Admin, next.Admin},
		{"log", c.Log, next.Log},
		{"shutdown_timeout", c.ShutdownTimeout, next.ShutdownTimeout},
	} {
		if !reflect.DeepEqual(s.old, s.next) {
			changed = append(changed, s.name)
		}
	}
	return changed
}

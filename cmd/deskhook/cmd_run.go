package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("run", "run the daemon: stream changes, deliver webhooks", cmdRun)
}

func cmdRun(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "run", "[-c deskhook.yaml]",
		"Streams the helpdesk's changes and delivers them as webhooks until SIGTERM or SIGINT.\n"+
			"A first signal shuts down in order (stop reading, commit the store, acknowledge,\n"+
			"finish requests in flight until shutdown_timeout); a second exits at once.\n"+
			"SIGHUP reloads the endpoints from the config file.", true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := daemon.NewLogger(e.stderr, cfg.Log, e.red)
	daemon.ApplyMemoryLimit(cfg, log)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	d, err := daemon.New(ctx, cfg, daemon.Options{Logger: log, Version: Version, Redactor: e.red})
	if err != nil {
		return err
	}
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				next, err := e.loadConfig(*cfgPath)
				if err != nil {
					log.Error("reload failed; keeping the running config", "err", err)
					continue
				}
				if err := d.Reload(ctx, next); err != nil {
					log.Error("reload failed", "err", err)
				}
			case stopping:
				log.Error("second signal: exiting at once", "signal", sig.String())
				os.Exit(1)
			default:
				stopping = true
				log.Info("signal received: shutting down (again to exit at once)", "signal", sig.String())
				cancel()
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	return nil
}

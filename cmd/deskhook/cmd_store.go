package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
)

func init() {
	register("store", "the store file: check, compact, backup", cmdStore)
}

const storeHelp = `The store is the file at store.path: the events not yet delivered, the dead
letters, the endpoints' state and the source position stored.

  deskhook store check   [FILE] [--json]
      Reads the whole file and changes nothing: bbolt's structure and its own
      check, then deskhook's records (every entry's event exists, reference
      counts agree, the layout version, endpoint states). Exits 1 on damage.
  deskhook store compact [FILE]
      Rewrites the file with only what it holds (the file never shrinks by
      itself) and prints its size before and after. Keeps everything; needs
      the daemon stopped; a crash midway leaves the old file whole.
  deskhook store backup  FILE
      Writes a consistent copy to FILE, checked before it replaces FILE.
      Works while the daemon runs (through its admin API).

FILE for check and compact defaults to the config's store.path.`

// storeLockWait is how long the store commands wait for a lock another
// process holds before saying who holds it.
const storeLockWait = time.Second

func cmdStore(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, storeHelp)
		if len(args) == 0 {
			return usagef("store: which of check, compact, backup?")
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "check", "compact", "backup":
	default:
		return usagef("store: unknown subcommand %q (check, compact, backup)", sub)
	}
	fs, cfgPath := newFlags(e, "store "+sub, "[flags] [FILE]", storeHelp, true)
	asJSON := fs.Bool("json", false, "print JSON (check)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("store %s: one file at most (got %d arguments)", sub, len(pos))
	}
	if sub == "backup" {
		if len(pos) == 0 {
			return usagef("store backup: to which file?")
		}
		return storeBackup(ctx, e, *cfgPath, pos[0])
	}
	path := ""
	if len(pos) == 1 {
		path = pos[0]
	} else {
		cfg, err := e.loadConfig(*cfgPath)
		if err != nil {
			return err
		}
		path = cfg.Store.Path
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store %s: %w", path, err)
	}
	if sub == "compact" {
		return storeCompact(e, path)
	}
	return storeCheck(e, path, *asJSON)
}

func storeCheck(e *env, path string, asJSON bool) error {
	rep, err := outbox.Check(path, storeLockWait)
	if errors.Is(err, outbox.ErrInUse) {
		return fmt.Errorf("%w; to check it while the daemon runs, check a copy: "+
			"`deskhook store backup COPY` writes one and checks it", err)
	}
	if err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(e, rep); err != nil {
			return err
		}
	} else {
		printCheck(e.stdout, rep)
	}
	if !rep.OK() {
		return &quietError{code: 1}
	}
	return nil
}

func printCheck(w io.Writer, r *outbox.CheckReport) {
	fmt.Fprintf(w, "store %s: %s", r.Path, cdc.HumanBytes(r.Size))
	if r.PageSize > 0 {
		fmt.Fprintf(w, ", %d pages of %d bytes, %d free, transaction %d", r.Pages, r.PageSize, r.FreePages, r.Txid)
	}
	fmt.Fprintln(w)
	if r.Layout > 0 {
		fmt.Fprintf(w, "layout version %d, stored position %s, %d events\n", r.Layout, r.Position, r.Events)
	}
	for _, ep := range r.Endpoints {
		fmt.Fprintf(w, "endpoint %s: %d pending, %d dead letters\n", ep.Name, ep.Pending, ep.DeadLetters)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", p)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
	took := r.Took.Round(time.Millisecond)
	if r.OK() {
		fmt.Fprintf(w, "ok: no damage found (checked in %s)\n", took)
		if r.Pages > 0 && r.FreePages > r.Pages/2 {
			fmt.Fprintf(w, "%d of %d pages are free: `deskhook store compact` would shrink the file\n", r.FreePages, r.Pages)
		}
		return
	}
	fmt.Fprintf(w, "DAMAGED: %d problem(s) (checked in %s). Stop deskhook, then restore the file from a backup, "+
		"or move it aside and run `deskhook setup --accept-gap` to start a new store, accepting that the events "+
		"it held are lost.\n", len(r.Problems), took)
}

func storeCompact(e *env, path string) error {
	res, err := outbox.Compact(path, storeLockWait)
	if errors.Is(err, outbox.ErrInUse) {
		return fmt.Errorf("%w; stop the daemon first: compact needs the store to itself "+
			"(`deskhook store backup` works while it runs)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "store %s compacted: %s before, %s after (took %s)\n",
		path, cdc.HumanBytes(res.Before), cdc.HumanBytes(res.After), res.Took.Round(time.Millisecond))
	return nil
}

func storeBackup(ctx context.Context, e *env, cfgPath, dst string) error {
	cfg, err := e.loadConfig(cfgPath)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dst); err == nil {
		if fi.IsDir() {
			return usagef("store backup: %s is a directory; name the backup's file", dst)
		}
		if sfi, err := os.Stat(cfg.Store.Path); err == nil && os.SameFile(fi, sfi) {
			return usagef("store backup: %s is the store itself", dst)
		}
	}
	var n int64
	rep, err := outbox.SaveBackup(dst, func(w io.Writer) error {
		var err error
		n, err = daemon.Backup(ctx, cfg, w)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup of %s written to %s: %s, checked: stored position %s, %d events",
		cfg.Store.Path, dst, cdc.HumanBytes(n), rep.Position, rep.Events)
	for _, ep := range rep.Endpoints {
		fmt.Fprintf(e.stdout, "; %s: %d pending, %d dead letters", ep.Name, ep.Pending, ep.DeadLetters)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

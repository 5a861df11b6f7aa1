// Command deskhook-bench runs deskhook's end-to-end benchmark (package
// bench) and prints its table, or its JSON with --json. It needs the
// PostgreSQL server binaries, like `deskhook demo` (the MariaDB server's
// with --source mariadb).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/deskhook/deskhook/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "deskhook-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deskhook-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run (default all: "+strings.Join(bench.Scenarios, ",")+")")
	quick := fs.Bool("quick", false, "shrink every scenario about 10× (a smoke run)")
	scale := fs.Float64("scale", 0, "multiply every scenario's size by this (overrides --quick)")
	profiles := fs.String("profile", "", "write CPU and heap profiles of each scenario into this directory")
	stateSize := fs.Int("state-size", 0, "the daemon's faveo.state_size (0: its default)")
	noLog := fs.Bool("no-delivery-log", false, "run the daemon with delivery_log.enabled: false (the log's cost)")
	from := fs.String("table-from", "", "print the table of a report saved with --json, and run nothing")
	verbose := fs.Bool("v", false, "show the daemon's warnings and errors")
	tcp := fs.Bool("tcp", false, "connect to the database over TCP on loopback instead of its Unix-domain socket")
	source := fs.String("source", "postgres", "the helpdesk's database: postgres, or mariadb (scenarios "+
		strings.Join(bench.MariaDBScenarios, ",")+", with bare binlog readers as the bound)")
	rates := fs.String("live-rates", "", "comma-separated simulator rates (events/s, e.g. 1000,1500,2000): one live\n"+
		"scenario per rate (liveN, writers in proportion), latency against offered load; with no\n"+
		"--scenarios, only these run")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: deskhook-bench [--json] [--scenarios %s] [--live-rates R,...] [--quick] [--profile DIR]\n\n",
			strings.Join(bench.Scenarios, ","))
		fmt.Fprintln(fs.Output(), "Starts a throwaway PostgreSQL (fsync on; MariaDB with --source mariadb), a local receiver and the helpdesk simulator,")
		fmt.Fprintln(fs.Output(), "runs deskhook in this process through each scenario, and prints events/s, latency,")
		fmt.Fprintln(fs.Output(), "RSS and CPU per scenario with the machine's bounds measured in the same run.")
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *from != "" {
		raw, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		var rep bench.Report
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("%s: %w", *from, err)
		}
		return rep.WriteTable(stdout)
	}
	opts := bench.Options{Scale: 1, ProfileDir: *profiles, Progress: stderr, StateSize: *stateSize, TCP: *tcp, Source: *source,
		NoDeliveryLog: *noLog}
	if *quick {
		opts.Scale = 0.1
	}
	if *scale > 0 {
		opts.Scale = *scale
	}
	if *verbose {
		opts.DaemonLog = stderr
	}
	for _, s := range strings.Split(*rates, ",") {
		if s = strings.TrimSpace(s); s != "" {
			r, err := strconv.ParseFloat(s, 64)
			if err != nil || r <= 0 {
				return fmt.Errorf("--live-rates: %q is not a positive number", s)
			}
			opts.LiveRates = append(opts.LiveRates, r)
		}
	}
	for _, s := range strings.Split(*scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Scenarios = append(opts.Scenarios, s)
		}
	}
	rep, err := bench.Run(ctx, opts)
	if rep != nil {
		if *asJSON {
			if jerr := rep.WriteJSON(stdout); jerr != nil && err == nil {
				err = jerr
			}
		} else if terr := rep.WriteTable(stdout); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

// Command deskhook turns a Faveo helpdesk database into Faveo webhooks.
//
// main only wires the process to run; each subcommand lives in a file of
// its own (cmd_*.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/deskhook/deskhook/daemon"
)

// Version is set at build time: `make build` stamps `git describe --tags
// --always --dirty` with -ldflags "-X main.Version=..." (README, Install).
var Version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command line and returns the exit code. An error is printed
// on stderr, with the loaded config's secrets scrubbed from it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	red := daemon.NewRedactor(nil)
	// Everything printed is scrubbed of the secrets of the configs loaded
	// (dead letters' responses, errors quoting a header, ...).
	e := &env{stdout: daemon.NewScrubWriter(stdout, red), stderr: daemon.NewScrubWriter(stderr, red),
		getenv: os.Getenv, red: red}
	err := e.dispatch(ctx, args)
	if err != nil && !errors.Is(err, errQuiet) && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(e.stderr, "deskhook:", err)
	}
	return exitCode(err)
}

// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
func exitCode(err error) int {
	var ue *usageError
	var ce *daemon.ConfigError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue), errors.As(err, &ce):
		return 2
	case errors.Is(err, errQuiet):
		var q *quietError
		if errors.As(err, &q) {
			return q.code
		}
	}
	return 1
}

// usageError is a command line that cannot be understood.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errQuiet marks a failure the command already explained on its output
// (e.g. a failed check): main prints nothing more.
var errQuiet = errors.New("failed")

type quietError struct{ code int }

func (e *quietError) Error() string   { return "failed" }
func (e *quietError) Is(t error) bool { return t == errQuiet }

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a subcommand gets from the process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// red scrubs the secrets of the configs loaded so far from what is
	// printed.
	red *daemon.Redactor
	// config is the config file given before the command
	// (`deskhook -c FILE status`): the default of the command's -c.
	config string
}

// loadConfig loads the config file and remembers its secrets for scrubbing.
func (e *env) loadConfig(path string) (*daemon.Config, error) {
	return e.remember(daemon.LoadConfig(path))
}

// loadOpsConfig loads the config file for status, dlq and endpoints, which
// need only the store and the admin API: variables the operator's
// environment lacks elsewhere (the database password) are no error.
func (e *env) loadOpsConfig(path string) (*daemon.Config, error) {
	return e.remember(daemon.LoadOpsConfig(path))
}

func (e *env) remember(cfg *daemon.Config, err error) (*daemon.Config, error) {
	if err != nil {
		return nil, err
	}
	e.red.Add(cfg.Secrets())
	if tok, err := daemon.ClientToken(cfg); err == nil {
		e.red.Add([]string{tok}) // the generated one, when this user may read it
	}
	return cfg, nil
}

var commands = map[string]command{}

func register(name, summary string, run func(context.Context, *env, []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func (e *env) dispatch(ctx context.Context, args []string) error {
	args, err := e.globalFlags(args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		usage(e.stderr)
		return usagef("no command given")
	}
	name := args[0]
	switch name {
	case "-h", "--help", "help":
		usage(e.stdout)
		return nil
	case "-v", "--version":
		name = "version"
	}
	cmd, ok := commands[name]
	if !ok {
		usage(e.stderr)
		return usagef("unknown command %q", name)
	}
	return cmd.run(ctx, e, args[1:])
}

// globalFlags takes -c/--config FILE given before the command, so that
// `deskhook -c FILE status` works as `deskhook status -c FILE` does.
func (e *env) globalFlags(args []string) ([]string, error) {
	for len(args) > 0 {
		name, value, hasValue := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if !strings.HasPrefix(args[0], "-") || name != "c" && name != "config" {
			return args, nil
		}
		if !hasValue {
			if len(args) < 2 {
				return nil, usagef("%s: which config file?", args[0])
			}
			value, args = args[1], args[1:]
		}
		e.config, args = value, args[1:]
	}
	return args, nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "deskhook turns a Faveo helpdesk database into Faveo webhooks.")
	fmt.Fprintln(w, "\nUsage: deskhook [-c deskhook.yaml] <command> [flags]   (deskhook <command> --help for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

// newFlags makes a subcommand's flag set; with config true it carries
// -c/--config (default $DESKHOOK_CONFIG, else deskhook.yaml).
func newFlags(e *env, name, args, summary string, config bool) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var path *string
	if config {
		def := e.config
		if def == "" {
			def = e.getenv("DESKHOOK_CONFIG")
		}
		if def == "" {
			def = "deskhook.yaml"
		}
		path = fs.String("config", def, "config file (env DESKHOOK_CONFIG)")
		fs.StringVar(path, "c", def, "config file (shorthand)")
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: deskhook %s %s\n\n%s\n\nFlags:\n", name, args, summary)
		fs.PrintDefaults()
	}
	return fs, path
}

// parseFlags parses args — flags and arguments in any order, so
// `endpoints disable NAME --reason x -c f.yaml` works; "--" ends the
// flags — and returns the arguments. Flag errors are usage errors.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noArgs parses flags for a command that takes no arguments.
func noArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseFlags(fs, args)
	if err == nil && len(pos) > 0 {
		err = usagef("%s: unexpected argument %q", fs.Name(), pos[0])
	}
	return err
}

func init() {
	register("version", "print the version", func(_ context.Context, e *env, args []string) error {
		fs, _ := newFlags(e, "version", "", "Prints deskhook's version.", false)
		if err := noArgs(fs, args); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "deskhook %s\n", Version)
		return nil
	})
}

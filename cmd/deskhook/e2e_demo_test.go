package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestDemo runs `deskhook demo` as a newcomer would, then with --keep:
// other commands work against the demo's config until Ctrl-C, which
// cleans up.
func TestDemo(t *testing.T) {
	t.Parallel()
	res := deskhook(t, nil, "demo", "--tickets", "4", "--rate", "40")
	if res.code != 0 {
		t.Fatalf("demo: %s", res)
	}
	m := regexp.MustCompile(`(\d+) webhooks arrived \((\d+) expected\)`).FindStringSubmatch(res.stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("demo summary: %v\n%s", m, res.stdout)
	}
	for _, want := range []string{"ticket_created", "AAAA-0000-0001", " ms\n", "all ", "console: http://127.0.0.1:", "/ui/login/"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, " -") && regexp.MustCompile(`\s-\d+\.\d ms`).MatchString(res.stdout) {
		t.Errorf("demo shows negative latencies:\n%s", res.stdout)
	}

	// --keep
	keptDemo(t, []string{"--tickets", "2", "--rate", "40"}, func(cfgPath, out string) {
		if !strings.Contains(out, "database: postgres://") {
			t.Errorf("demo --keep does not print the DSN:\n%s", out)
		}
		st := deskhook(t, nil, "status", "-c", cfgPath)
		if st.code != 0 || !strings.Contains(st.stdout, "running, ready") || !strings.Contains(st.stdout, "demo-receiver") {
			t.Errorf("status against the kept demo: %s", st)
		}
		if res := deskhook(t, nil, "check", "-c", cfgPath); res.code != 0 {
			t.Errorf("check against the kept demo: %s", res)
		}
	})
}

// keptDemo runs `deskhook demo --keep` with args, calls check with the
// config it prints and what it printed so far while everything keeps
// running, then stops it with Ctrl-C, which must clean up.
func keptDemo(t *testing.T, args []string, check func(cfgPath, out string)) {
	t.Helper()
	demo := startDemo(t, append(args, "--keep")...)
	cfgPath := demo.waitFor(regexp.MustCompile(`config:\s+(\S+deskhook\.yaml)`), 2*time.Minute)[1]
	check(cfgPath, demo.out.String())
	if err := demo.interrupt(60 * time.Second); err != nil {
		t.Errorf("demo --keep after Ctrl-C: %v\n%s", err, demo.out.String())
	}
	if _, err := os.Stat(filepath.Dir(cfgPath)); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (%v)", filepath.Dir(cfgPath), err)
	}
}

// demoProc is `deskhook demo` running.
type demoProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  testenv.Output
	done chan error
}

// startDemo starts `deskhook demo args...`; it is killed at the test's end
// if it still runs.
func startDemo(t *testing.T, args ...string) *demoProc {
	t.Helper()
	p := &demoProc{t: t, done: make(chan error, 1)}
	p.cmd = exec.Command(deskhookBinary(t), append([]string{"demo"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// waitFor waits until the demo's output matches re and returns the match.
func (p *demoProc) waitFor(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			return m
		}
		select {
		case err := <-p.done:
			p.t.Fatalf("the demo exited (%v) before printing %s:\n%s", err, re, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the demo printed no %s within %s:\n%s", re, timeout, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// interrupt sends Ctrl-C and waits for the demo to exit.
func (p *demoProc) interrupt(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		return errors.New("the demo did not stop after Ctrl-C")
	}
}

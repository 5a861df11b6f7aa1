package main

import (
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
	for _, want := range []string{"ticket_created", "AAAA-0000-0001", " ms\n", "all "} {
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
	var out testenv.Output
	cmd := exec.Command(deskhookBinary(t), append(append([]string{"demo"}, args...), "--keep")...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	cfgRE := regexp.MustCompile(`config:\s+(\S+deskhook\.yaml)`)
	deadline := time.Now().Add(2 * time.Minute)
	var cfgPath string
	for cfgPath == "" {
		if m := cfgRE.FindStringSubmatch(out.String()); m != nil {
			cfgPath = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("demo --keep exited (%v) before printing its config:\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo --keep printed no config:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	check(cfgPath, out.String())
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo --keep after Ctrl-C: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo --keep did not stop after Ctrl-C")
	}
	if _, err := os.Stat(filepath.Dir(cfgPath)); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (%v)", filepath.Dir(cfgPath), err)
	}
}

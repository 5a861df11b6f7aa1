package testenv

import (
	"fmt"
	"os/exec"
	"syscall"
)

// reaperScript waits for its stdin to close — which happens when Close
// dismisses it, or when the test process dies however it dies — then stops
// the cluster if it still runs and removes its directory ($1).
const reaperScript = `cat >/dev/null
pidfile="$1/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ] && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
`

// startReaper starts the cluster's reaper: a shell that cleans up after the
// test process if it cannot (killed, timed out, os.Exit before cleanup).
func (s *Server) startReaper() error {
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "deskhook-reaper", s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // immune to the terminal's Ctrl-C
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("testenv: reaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: starting reaper: %w", err)
	}
	s.reaper, s.reapIn = cmd, in
	return nil
}

// stopReaper dismisses the reaper and waits for it to finish, which removes
// the cluster's directory.
func (s *Server) stopReaper() {
	if s.reaper == nil {
		return
	}
	s.reapIn.Close()
	s.reaper.Wait()
	s.reaper, s.reapIn = nil, nil
}

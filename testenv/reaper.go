package testenv

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
)

// reaperScript waits for its stdin to close — which happens when Close
// dismisses it, or when the test process dies however it dies — then stops
// the server if it still runs and removes its directory ($1). $2 is the
// server's pid file inside $1, $3 a word of the server's command line (so a
// recycled pid is left alone), $4 the signal that shuts it down cleanly.
const reaperScript = `cat >/dev/null
pidfile="$1/$2"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if [ -n "$pid" ] && grep -q "$3" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -"$4" "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$1"
`

// A reaper is a shell that cleans up after the test process if it cannot
// (killed, timed out, os.Exit before cleanup): it stops the server and
// removes its directory.
type reaper struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

// startReaper starts the reaper of the server living in dir, whose pid
// file is dir/pidFile, whose command line contains program and which shuts
// down cleanly on signal (a name kill(1) knows, e.g. "INT").
func startReaper(dir, pidFile, program, signal string) (*reaper, error) {
	cmd := exec.Command("/bin/sh", "-c", reaperScript, "deskhook-reaper", dir, pidFile, program, signal)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // immune to the terminal's Ctrl-C
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("testenv: reaper: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: starting reaper: %w", err)
	}
	return &reaper{cmd: cmd, in: in}, nil
}

// stop dismisses the reaper and waits for it to finish, which removes the
// server's directory. A nil reaper does nothing.
func (r *reaper) stop() {
	if r == nil {
		return
	}
	r.in.Close()
	r.cmd.Wait()
}

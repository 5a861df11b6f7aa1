package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// serverProc is the process of a local server, PostgreSQL's or MariaDB's:
// started with its output appended to its log, stopped by signals. Server
// and MySQLServer embed one; its methods ending in Locked want mu held.
type serverProc struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	closed bool
}

// serverSignals say how a server program is stopped.
type serverSignals struct {
	stop       syscall.Signal // a clean shutdown; also sent when the test process dies
	stopWithin time.Duration  // how long a clean shutdown may take
	quit       syscall.Signal // a shutdown that waits for nothing (SIGKILL if the server has none)
}

// startableLocked refuses to start a closed or running server.
func (p *serverProc) startableLocked() error {
	if p.closed {
		return errors.New("testenv: Start on a closed server")
	}
	if p.cmd != nil {
		select {
		case <-p.exited: // it died on its own (crash, kill): start afresh
			p.cmd, p.exited = nil, nil
		default:
			return errors.New("testenv: server already running")
		}
	}
	return nil
}

// launchLocked starts cmd, the server's program, as u with its output
// appended to logPath, and waits until ready says it accepts connections
// (ready learns through exited that the program ended). A server that does
// not get ready is made to quit; the error's second return is then what it
// logged since the start.
func (p *serverProc) launchLocked(ctx context.Context, cmd *exec.Cmd, u osUser, logPath string, sig serverSignals,
	ready func(ctx context.Context, exited <-chan struct{}) error) (logged string, err error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("testenv: server log: %w", err)
	}
	defer logf.Close() // the child keeps its own descriptor
	if u.switchTo {
		logf.Chown(u.uid, u.gid) // a server may reopen it by name
	}
	logStart, _ := logf.Seek(0, io.SeekEnd)

	cmd.Env = childEnv()
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	u.apply(cmd)
	// Should this process die without cleaning up, the server stops with it
	// (the reaper then removes its files).
	setPdeathsig(cmd.SysProcAttr, sig.stop)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("testenv: starting %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited

	if err := ready(ctx, exited); err != nil {
		cmd.Process.Signal(sig.quit)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		p.cmd, p.exited = nil, nil
		return fileTail(logPath, logStart), err
	}
	return "", nil
}

// stopLocked shuts the server down cleanly, and, if that takes longer than
// allowed or ctx ends first, makes it quit. It says whether the clean
// shutdown was in time.
func (p *serverProc) stopLocked(ctx context.Context, sig serverSignals) (inTime bool) {
	if p.cmd == nil {
		return true
	}
	cmd, exited := p.cmd, p.exited
	p.cmd, p.exited = nil, nil
	cmd.Process.Signal(sig.stop)
	select {
	case <-exited:
		return true
	case <-ctx.Done():
	case <-time.After(sig.stopWithin):
	}
	cmd.Process.Signal(sig.quit)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	return false
}

// close stops the server, dismisses its reaper and removes dir. Calling it
// again does nothing.
func (p *serverProc) close(sig serverSignals, r **reaper, dir string, port int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), sig.stopWithin)
	defer cancel()
	var err error
	if !p.stopLocked(ctx, sig) {
		err = errNotStoppedInTime(port)
	}
	(*r).stop()
	*r = nil
	if rerr := os.RemoveAll(dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("testenv: removing %s: %w", dir, rerr))
	}
	return err
}

func errNotStoppedInTime(port int) error {
	return fmt.Errorf("testenv: server on port %d did not shut down in time; killed", port)
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// daemonProc is a running `deskhook run`.
type daemonProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	admin  string
	stdout testenv.Output
	stderr testenv.Output
	done   chan struct{}
	code   int
}

// startDaemon starts `deskhook run -c cfgPath`; it is killed at cleanup if
// still running.
func startDaemon(t testing.TB, cfgPath, admin string, env ...string) *daemonProc {
	t.Helper()
	p := &daemonProc{t: t, admin: admin, done: make(chan struct{})}
	p.cmd = exec.Command(deskhookBinary(t), "run", "-c", cfgPath)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting deskhook run: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = -int(ws.Signal())
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("deskhook run output (pid %d):\n%s%s", p.cmd.Process.Pid, p.stdout.String(), tail(p.stderr.String(), 16<<10))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// exited reports whether the process has exited.
func (p *daemonProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the daemon.
func (p *daemonProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the daemon to exit and returns its exit code (-signal
// when a signal killed it).
func (p *daemonProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		p.t.Fatalf("deskhook run did not exit within %s\n%s", timeout, tail(p.stderr.String(), 8<<10))
		return 0
	}
}

// stop sends SIGTERM and requires a clean exit.
func (p *daemonProc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		p.t.Fatalf("deskhook run exited %d after SIGTERM\n%s", code, tail(p.stderr.String(), 8<<10))
	}
}

// get fetches an admin URL path.
func (p *daemonProc) get(path string) (int, string, error) {
	return httpGet("http://" + p.admin + path)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func httpGet(u string) (int, string, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitReadyz waits until /readyz answers want (200 or 503) with a body
// containing each of contains.
func (p *daemonProc) waitReadyz(want int, timeout time.Duration, contains ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		code, body, err := p.get("/readyz")
		if err == nil && code == want {
			ok := true
			for _, c := range contains {
				ok = ok && strings.Contains(body, c)
			}
			if ok {
				return body
			}
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", code, body)
		}
		if p.exited() {
			p.t.Fatalf("deskhook run exited (%d) while waiting for /readyz %d\n%s", p.code, want, tail(p.stderr.String(), 8<<10))
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("/readyz did not answer %d %q within %s; last: %s", want, contains, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

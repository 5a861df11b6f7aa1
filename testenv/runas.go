package testenv

import (
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// osUser is the account the PostgreSQL programs run as. PostgreSQL refuses
// to run as root, so a root test process runs them as "nobody"; otherwise
// they run as the current user (switch == false).
type osUser struct {
	uid, gid int
	switchTo bool
}

func serverUser() osUser {
	if os.Geteuid() != 0 {
		return osUser{uid: os.Geteuid(), gid: os.Getegid()}
	}
	u := osUser{uid: 65534, gid: 65534, switchTo: true}
	if nobody, err := user.Lookup("nobody"); err == nil {
		if uid, err := strconv.Atoi(nobody.Uid); err == nil {
			u.uid = uid
		}
		if gid, err := strconv.Atoi(nobody.Gid); err == nil {
			u.gid = gid
		}
	}
	return u
}

// apply makes cmd run as the user, in a process group of its own (so a
// terminal's Ctrl-C reaches the test process, which then cleans up, rather
// than killing the server under it).
func (u osUser) apply(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if u.switchTo {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}}
	}
}

// own hands the tree at dir to the user (a no-op unless switching users).
func (u osUser) own(dir string) error {
	if !u.switchTo {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, u.uid, u.gid)
	})
}

// childEnv is the environment the PostgreSQL programs get: nothing of the
// test process's (no PG* variables leaking in), a fixed locale and zone.
func childEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
}

package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// A cluster is made by copying a cached data directory: initdb'd once per
// machine, PostgreSQL installation, server user and schema, with the
// template database already loaded. Copying takes a fraction of the time
// initdb and loading the schema take.

// cacheFormat changes whenever buildCache makes a different data directory
// from the same schema, retiring older entries.
const cacheFormat = "2"

// cacheRoot is the per-user cache directory, shared by all test processes.
func cacheRoot(u osUser) (string, error) {
	if err := reachable(os.TempDir(), u); err != nil {
		return "", err
	}
	root := filepath.Join(os.TempDir(), fmt.Sprintf("deskhook-testenv-%d", os.Geteuid()))
	if err := os.MkdirAll(root, 0o711); err != nil {
		return "", fmt.Errorf("testenv: cache dir: %w", err)
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return "", fmt.Errorf("testenv: cache dir: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("testenv: cache dir %s is not a directory owned by uid %d; remove it", root, os.Geteuid())
	}
	// The server user (nobody, under root) must be able to reach its files
	// in here, but nobody needs to list them.
	if err := os.Chmod(root, 0o711); err != nil {
		return "", fmt.Errorf("testenv: cache dir: %w", err)
	}
	return root, nil
}

// reachable checks that the server user can get through every directory
// above dir, which it must to use its cluster's files there.
func reachable(dir string, u osUser) error {
	if !u.switchTo {
		return nil
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("testenv: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("testenv: the server runs as uid %d (PostgreSQL refuses root), which cannot reach "+
				"the temp dir %s: %s has mode %v; point TMPDIR at a world-traversable directory such as /tmp",
				u.uid, dir, d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// lockFile takes an exclusive lock on path, waiting until ctx ends. Parallel
// test processes (go test ./... runs packages in parallel) queue here.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("testenv: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("testenv: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("testenv: waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cachedDataDir returns the cached data directory for this installation,
// user and schema, building it first if needed. The result must not be
// modified: copy it.
func cachedDataDir(ctx context.Context, bins binaries, u osUser) (string, error) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d\x00%s", cacheFormat, bins.dir, bins.version, u.uid, schemaHash())))
	key := fmt.Sprintf("pg%d-%s", bins.major, hex.EncodeToString(sum[:])[:16])
	entry, err := cachedEntry(ctx, u, key, bins.version, func(tmp string) error { return buildCache(ctx, bins, u, tmp) })
	return filepath.Join(entry, "data"), err
}

// cachedEntry returns the cache entry named key, a directory shared by all
// test processes of this user, building it first if needed: build fills a
// fresh directory owned by the server user, which is then marked READY
// (holding version) and moved into place.
func cachedEntry(ctx context.Context, u osUser, key, version string, build func(tmp string) error) (string, error) {
	root, err := cacheRoot(u)
	if err != nil {
		return "", err
	}
	entry := filepath.Join(root, key)
	ready := filepath.Join(entry, "READY")

	unlock, err := lockFile(ctx, filepath.Join(root, "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(ready); err != nil {
		if err := buildEntry(u, root, key, version, build); err != nil {
			return "", err
		}
	}
	now := time.Now()
	os.Chtimes(ready, now, now) // marks the entry as in use for pruning
	pruneCache(root, key)
	return entry, nil
}

// buildEntry builds the entry key in a temporary directory and moves it
// into place. Called with the cache lock held.
func buildEntry(u osUser, root, key, version string, build func(tmp string) error) error {
	tmp, err := os.MkdirTemp(root, key+".build-")
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := u.own(tmp); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := build(tmp); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "READY"), []byte(version+"\n"), 0o644); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(root, key)); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	ok = true
	return nil
}

// pruneCache removes entries not used for an hour (another schema version,
// an older PostgreSQL) and builds abandoned by a dead process.
func pruneCache(root, keep string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-time.Hour)
	for _, e := range ents {
		if !e.IsDir() || e.Name() == keep {
			continue
		}
		mark := filepath.Join(root, e.Name(), "READY")
		if strings.Contains(e.Name(), ".build-") {
			mark = filepath.Join(root, e.Name())
		}
		if fi, err := os.Stat(mark); err != nil || fi.ModTime().Before(cutoff) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// buildCache runs initdb into tmp/data and loads the schema into the
// template database. Called with the cache lock held.
func buildCache(ctx context.Context, bins binaries, u osUser, tmp string) error {
	data := filepath.Join(tmp, "data")
	cmd := exec.CommandContext(ctx, bins.initdb(), "-D", data, "-U", superuser, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Env = childEnv()
	cmd.Dir = "/"
	u.apply(cmd)
	setPdeathsig(cmd.SysProcAttr, syscall.SIGKILL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: initdb (%s, as uid %d) failed: %w\n%s", bins.initdb(), u.uid, err, out)
	}
	// Settings live in deskhook.conf, written per cluster; authentication
	// trusts every local connection (TCP on loopback and the cluster's
	// private Unix-domain socket), replication included.
	conf, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	_, err = conf.WriteString("\n# deskhook testenv: per-cluster settings\ninclude_if_exists = 'deskhook.conf'\n")
	conf.Close()
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	hba := "# deskhook testenv: trust everything local\n" +
		"local all all trust\n" +
		"local replication all trust\n" +
		"host all all 127.0.0.1/32 trust\n" +
		"host replication all 127.0.0.1/32 trust\n" +
		"host all all ::1/128 trust\n" +
		"host replication all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if err := u.own(tmp); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}

	s := &Server{Host: "127.0.0.1", DataDir: data, bins: bins, user: u, dir: tmp,
		settings: serverSettings(options{noFsync: true}, "")}
	s.logPath = filepath.Join(data, "server.log")
	if err := startOnFreePort(&s.Port, func() error { return s.Start(ctx) }); err != nil {
		return err
	}
	err = loadTemplate(ctx, s)
	if serr := s.Stop(context.Background()); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	for _, f := range []string{"server.log", "deskhook.conf", "postmaster.opts"} {
		os.Remove(filepath.Join(data, f))
	}
	return nil
}

// loadTemplate creates the template database on a fresh cluster.
func loadTemplate(ctx context.Context, s *Server) error {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+templateDB); err != nil {
		return fmt.Errorf("testenv: creating template: %w", err)
	}
	if err := loadSchema(ctx, s.DSN(templateDB)); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+templateDB+" WITH IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("testenv: marking template: %w", err)
	}
	return nil
}

// loadSchema runs schema.sql and seed.sql in the database at dsn.
func loadSchema(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("testenv: schema.sql: %w", err)
	}
	if _, err := conn.Exec(ctx, seedSQL); err != nil {
		return fmt.Errorf("testenv: seed.sql: %w", err)
	}
	return nil
}

// copyTree copies the directory tree src to dst (which must not exist),
// keeping permission bits.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		}
		return nil // sockets and the like: not part of a stopped cluster
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

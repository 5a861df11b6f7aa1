package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the role initdb creates; it may open replication connections.
const superuser = "postgres"

// templateDB holds schema and seed in every local cluster; test databases are
// created from it.
const templateDB = "deskhook_template"

// Server is a PostgreSQL server: a throwaway local cluster (StartServer,
// Postgres), or the server named by DESKHOOK_TEST_DSN.
type Server struct {
	Host    string
	Port    int
	DataDir string // the cluster's data directory; empty for an external server

	bins     binaries
	user     osUser
	dir      string            // temp dir holding DataDir; removed by Close
	settings map[string]string // postgresql.conf settings, ours then the caller's
	logPath  string

	external string // DSN of an external server (DESKHOOK_TEST_DSN)
	template string // database new ones are created from
	shared   bool   // the process-wide cluster: Stop, Start and Close refused

	serverProc
	reaper *reaper
	tmplMu sync.Mutex
	tmplOK bool
}

// postgresSignals: SIGINT is PostgreSQL's fast shutdown (sessions are
// ended), SIGQUIT its immediate one.
var postgresSignals = serverSignals{stop: syscall.SIGINT, stopWithin: 30 * time.Second, quit: syscall.SIGQUIT}

// StartServer starts a throwaway cluster for non-test use (the demo, the
// benchmark). The caller must Close it. Options as for Postgres; Dedicated is
// implied.
func StartServer(ctx context.Context, opts ...Option) (*Server, error) {
	return startLocal(ctx, collectOptions(opts))
}

// startLocal creates a cluster from the cached data directory and starts it.
func startLocal(ctx context.Context, o options) (*Server, error) {
	bins, err := lookupBinaries(o.searchPath)
	if err != nil {
		return nil, err
	}
	u := serverUser()
	cached, err := cachedDataDir(ctx, bins, u)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "deskhook-pg-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	s := &Server{
		Host:     "127.0.0.1",
		DataDir:  filepath.Join(dir, "data"),
		bins:     bins,
		user:     u,
		dir:      dir,
		settings: serverSettings(o, socketDir(dir)),
		template: templateDB,
	}
	s.logPath = filepath.Join(s.DataDir, "server.log")
	fail := func(err error) (*Server, error) {
		s.reaper.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	if err := layOutServerDir(cached, dir, s.DataDir, u); err != nil {
		return fail(err)
	}
	if s.reaper, err = startReaper(dir, "data/postmaster.pid", "postgres", "INT"); err != nil {
		return fail(err)
	}
	if err := startOnFreePort(&s.Port, func() error { return s.Start(ctx) }); err != nil {
		return fail(err)
	}
	return s, nil
}

// layOutServerDir copies the cached data directory to dataDir, inside dir,
// and hands dir to the server user. The server's socket lives in dir:
// clients of another user (root without CAP_DAC_OVERRIDE, when the server
// runs as nobody) must reach it, as they reach the TCP port. They may not
// list dir; the data directory inside stays 0700.
func layOutServerDir(cached, dir, dataDir string, u osUser) error {
	if err := copyTree(cached, dataDir); err != nil {
		return fmt.Errorf("testenv: copying cached data directory: %w", err)
	}
	if err := u.own(dir); err != nil {
		return fmt.Errorf("testenv: handing %s to uid %d: %w", dir, u.uid, err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// startOnFreePort sets port to a free one and starts the server there. A
// free port can be taken by someone else between our probe and the
// server's bind; it tries a few.
func startOnFreePort(port *int, start func() error) error {
	for attempt := 0; ; attempt++ {
		p, err := freePort()
		if err != nil {
			return err
		}
		*port = p
		err = start()
		if err == nil || attempt == 4 || !errors.Is(err, errPortInUse) {
			return err
		}
	}
}

// serverSettings are the cluster's settings: what a logical-replication
// test needs, then the caller's overrides. sockets is the directory of the
// cluster's Unix-domain socket ("" for none).
func serverSettings(o options, sockets string) map[string]string {
	set := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": sockets,
		"wal_level":               "logical",
		"max_replication_slots":   "64",
		"max_wal_senders":         "64",
		"max_connections":         "200",
		"shared_buffers":          "32MB",
		"fsync":                   "on",
		"full_page_writes":        "on",
		"timezone":                "UTC",
		"log_timezone":            "UTC",
		"log_line_prefix":         "%m [%p] %q%a ",
		"logging_collector":       "off",
	}
	if o.noFsync {
		set["fsync"] = "off"
		set["full_page_writes"] = "off"
	}
	for k, v := range o.settings {
		set[k] = v
	}
	return set
}

// writeConfig writes the settings (and the port) to deskhook.conf, which the
// cached cluster's postgresql.conf includes last. ALTER SYSTEM still
// overrides it, as on a real server.
func (s *Server) writeConfig() error {
	keys := make([]string, 0, len(s.settings))
	for k := range s.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by deskhook testenv\n")
	fmt.Fprintf(&b, "port = %d\n", s.Port)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(s.settings[k], "'", "''"))
	}
	path := filepath.Join(s.DataDir, "deskhook.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if s.user.switchTo {
		return os.Chown(path, s.user.uid, s.user.gid)
	}
	return nil
}

var errPortInUse = errors.New("port in use")

// Start starts the server (again), on the same port and data.
func (s *Server) Start(ctx context.Context) error {
	if err := s.local("Start"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startableLocked(); err != nil {
		return err
	}
	if err := s.writeConfig(); err != nil {
		return err
	}
	cmd := exec.Command(s.bins.postgres(), "-D", s.DataDir)
	if tail, err := s.launchLocked(ctx, cmd, s.user, s.logPath, postgresSignals, s.waitReady); err != nil {
		if strings.Contains(tail, "Address already in use") || strings.Contains(tail, "could not create any TCP/IP sockets") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("testenv: PostgreSQL %s on port %d did not start: %w\n--- %s (tail) ---\n%s",
			s.bins.version, s.Port, err, s.logPath, tail)
	}
	return nil
}

// waitReady polls until the server accepts connections, it exits, or ctx
// ends (at most a minute).
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, s.DSN("postgres"))
		ccancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			return errors.New("server exited")
		case <-ctx.Done():
			return fmt.Errorf("waiting for server: %w (last: %v)", ctx.Err(), err)
		case <-time.After(15 * time.Millisecond):
		}
	}
}

// LogPath is the file the server's log (its stderr) goes to, inside
// DataDir; empty for an external server.
func (s *Server) LogPath() string { return s.logPath }

// LogTail returns the end of the server's log (at most 4 KiB), for failure
// messages.
func (s *Server) LogTail() string {
	if s.logPath == "" {
		return ""
	}
	return s.logTail(0)
}

func (s *Server) logTail(offset int64) string { return fileTail(s.logPath, offset) }

// fileTail returns what was written to the file at path since offset, at
// most its last 4 KiB.
func fileTail(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return strings.TrimRight(string(b), "\n")
}

// Stop shuts the server down (fast shutdown: sessions are ended) and keeps
// its data.
func (s *Server) Stop(ctx context.Context) error {
	if err := s.local("Stop"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopLocked(ctx, postgresSignals) {
		return errNotStoppedInTime(s.Port)
	}
	return nil
}

// Restart stops and starts the server.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Close stops the server and removes its files. Calling it again is a no-op.
func (s *Server) Close() error {
	if s.external != "" {
		return nil
	}
	if s.shared {
		return errSharedClose
	}
	return s.close(postgresSignals, &s.reaper, s.dir, s.Port)
}

var errSharedClose = errors.New("testenv: Close on the shared server (it lives as long as the test process)")

// local refuses operations that only a local, private cluster supports.
func (s *Server) local(op string) error {
	switch {
	case s.external != "":
		return fmt.Errorf("testenv: %s is not possible on the DESKHOOK_TEST_DSN server; use Dedicated()", op)
	case s.shared:
		return fmt.Errorf("testenv: %s on the process-wide shared server; ask for Dedicated()", op)
	}
	return nil
}

// DSN is a URL for database db on this server, as the superuser.
func (s *Server) DSN(db string) string {
	if s.external != "" {
		return withDatabase(s.external, db)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SocketDSN is like DSN, through the cluster's Unix-domain socket: how a
// client on the same host usually connects, without TCP's work on every
// message. It fails for an external server, for a cluster whose temporary
// directory cannot hold a socket (see socketDir) and when the caller's
// settings moved the socket.
func (s *Server) SocketDSN(db string) (string, error) {
	dir := s.settings["unix_socket_directories"]
	switch {
	case s.external != "":
		return "", fmt.Errorf("testenv: no Unix-domain socket on the %s server", DSNEnv)
	case dir == "" || dir != socketDir(s.dir):
		return "", fmt.Errorf("testenv: the cluster in %s has no Unix-domain socket of its own "+
			"(unix_socket_directories = %q; a path over %d bytes or with a comma or backslash cannot hold one)", s.dir, dir, maxSocketPath)
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		quoteDSNValue(dir), s.Port, superuser, quoteDSNValue(db)), nil
}

// quoteDSNValue quotes v for a key=value connection string.
func quoteDSNValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// maxSocketPath is the longest socket path every Unix takes (sun_path is
// 104 bytes on the BSDs, 108 on Linux, both counting the final NUL).
const maxSocketPath = 103

// socketDir is dir when PostgreSQL can create its socket there, else ""
// (no socket: TCP only): the socket's path must fit a socket address,
// unix_socket_directories is a comma-separated list, and postgresql.conf
// reads a backslash in a quoted value as an escape.
func socketDir(dir string) string {
	if len(filepath.Join(dir, ".s.PGSQL.65535")) > maxSocketPath || strings.ContainsAny(dir, `,\`) {
		return ""
	}
	return dir
}

// freePort asks the kernel for a port on 127.0.0.1 nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mariadbAdmin is the account local servers are administered as: the root
// user mariadb-install-db creates, without a password, reachable only on
// loopback and through the server's private socket.
const mariadbAdmin = "root"

// MySQLServer is a MySQL-protocol server: a throwaway local MariaDB
// (StartMariaDB, MariaDB), or the server named by DESKHOOK_TEST_MYSQL_DSN,
// which may also be MySQL.
type MySQLServer struct {
	Host    string
	Port    int
	DataDir string // the server's data directory (binlogs included); empty for an external server
	Socket  string // the server's Unix-domain socket; empty for an external server

	bins     mariadbBinaries
	user     osUser
	dir      string            // temp dir holding DataDir; removed by Close
	settings map[string]string // the [mariadbd] options of my.cnf, ours then the caller's
	logPath  string

	external *mysql.Config // admin connection of an external server (DESKHOOK_TEST_MYSQL_DSN)
	shared   bool          // the process-wide server: Stop, Start and Close refused

	serverProc
	reaper *reaper
}

// mariadbSignals: SIGTERM is mariadbd's clean shutdown; it has no quicker
// one but SIGKILL, after which it recovers at the next start.
var mariadbSignals = serverSignals{stop: syscall.SIGTERM, stopWithin: time.Minute, quit: syscall.SIGKILL}

// StartMariaDB starts a throwaway MariaDB for non-test use (the demo, the
// benchmark). The caller must Close it. Options as for MariaDB; Dedicated is
// implied.
func StartMariaDB(ctx context.Context, opts ...Option) (*MySQLServer, error) {
	return startLocalMariaDB(ctx, collectOptions(opts))
}

// startLocalMariaDB creates a server from the cached data directory and
// starts it.
func startLocalMariaDB(ctx context.Context, o options) (*MySQLServer, error) {
	bins, err := lookupMariaDB(o.searchPath)
	if err != nil {
		return nil, err
	}
	u := serverUser()
	cached, err := cachedMariaDBDataDir(ctx, bins, u)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "deskhook-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	s := &MySQLServer{
		Host:     "127.0.0.1",
		DataDir:  filepath.Join(dir, "data"),
		Socket:   filepath.Join(dir, "mysqld.sock"),
		bins:     bins,
		user:     u,
		dir:      dir,
		settings: mariadbSettings(o),
	}
	s.logPath = filepath.Join(s.DataDir, "server.log")
	fail := func(err error) (*MySQLServer, error) {
		s.reaper.stop()
		os.RemoveAll(dir)
		return nil, err
	}
	// mariadbd cannot run without its socket, so a temp dir too deep for one
	// is an error rather than a server reachable over TCP only.
	if len(s.Socket) > maxSocketPath {
		return fail(fmt.Errorf("testenv: the MariaDB socket path %s is longer than %d bytes; point TMPDIR at a shorter directory such as /tmp",
			s.Socket, maxSocketPath))
	}
	if err := layOutServerDir(cached, dir, s.DataDir, u); err != nil {
		return fail(err)
	}
	if s.reaper, err = startReaper(dir, "mariadbd.pid", "mariadbd", "TERM"); err != nil {
		return fail(err)
	}
	if err := startOnFreePort(&s.Port, func() error { return s.Start(ctx) }); err != nil {
		return fail(err)
	}
	return s, nil
}

// mariadbSettings are the server's options: what a binlog reader needs, then
// the caller's overrides. Option names are normalised to underscores, so
// "binlog-format" and "binlog_format" are one option; a caller's empty value
// removes an option (e.g. {"log_bin": ""} turns binary logging off).
func mariadbSettings(o options) map[string]string {
	set := map[string]string{
		"bind_address":      "127.0.0.1",
		"skip_name_resolve": "ON",
		// Row-based binary logging with full before and after images and
		// column names in the table maps, as deskhook's source needs. MariaDB
		// writes GTIDs (domain-server-sequence) into every binlog.
		"log_bin":             "binlog",
		"binlog_format":       "ROW",
		"binlog_row_image":    "FULL",
		"binlog_row_metadata": "FULL",
		"server_id":           "1",
		// Faveo's tables name their character sets; the server's default
		// serves the rest (Debian's own configuration uses the same).
		"character_set_server": "utf8mb4",
		"collation_server":     "utf8mb4_general_ci",
		"max_connections":      "200",
		// Small enough for many servers on one machine.
		"innodb_buffer_pool_size": "32M",
		"innodb_log_file_size":    mariadbLogFileSize,
		// Durable as in production: the redo log and the binlog are synced
		// at every commit.
		"innodb_flush_log_at_trx_commit": "1",
		"sync_binlog":                    "1",
	}
	if o.noFsync {
		set["innodb_flush_log_at_trx_commit"] = "2"
		set["sync_binlog"] = "0"
		set["innodb_doublewrite"] = "OFF"
	}
	for k, v := range o.settings {
		k = strings.ReplaceAll(k, "-", "_")
		if v == "" {
			delete(set, k)
		} else {
			set[k] = v
		}
	}
	return set
}

// mariadbLogFileSize is the redo log size of the cached data directory and
// of every server made from it (a different size is resized at start).
const mariadbLogFileSize = "16M"

// cnfPath is the server's option file, which alone configures it.
func (s *MySQLServer) cnfPath() string { return filepath.Join(s.dir, "my.cnf") }

// writeConfig writes my.cnf: where the server keeps its files, the port,
// then the settings.
func (s *MySQLServer) writeConfig() error {
	keys := make([]string, 0, len(s.settings))
	for k := range s.settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by deskhook testenv\n[mariadbd]\n")
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, cnfQuote(v)) }
	line("datadir", s.DataDir)
	line("socket", s.Socket)
	line("port", strconv.Itoa(s.Port))
	line("pid_file", filepath.Join(s.dir, "mariadbd.pid"))
	line("log_error", s.logPath)
	for _, k := range keys {
		line(k, s.settings[k])
	}
	if err := os.WriteFile(s.cnfPath(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if s.user.switchTo {
		return os.Chown(s.cnfPath(), s.user.uid, s.user.gid)
	}
	return nil
}

// cnfQuote quotes an option file value; the server reads a backslash in it
// as an escape.
func cnfQuote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// Start starts the server (again), on the same port and data.
func (s *MySQLServer) Start(ctx context.Context) error {
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
	// --defaults-file must come first: the server then reads no other
	// option file (no /etc/mysql/my.cnf of the machine). Its environment
	// has TZ=UTC: the server's SYSTEM time zone is UTC.
	cmd := exec.Command(s.bins.mariadbd, "--defaults-file="+s.cnfPath())
	if tail, err := s.launchLocked(ctx, cmd, s.user, s.logPath, mariadbSignals, s.waitReady); err != nil {
		if strings.Contains(tail, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return fmt.Errorf("testenv: MariaDB %s on port %d did not start: %w\n--- %s (tail) ---\n%s",
			s.bins.version, s.Port, err, s.logPath, tail)
	}
	return nil
}

// waitReady polls until the server accepts connections, it exits, or ctx
// ends (at most a minute).
func (s *MySQLServer) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cfg, err := mysql.ParseDSN(s.DSN(""))
	if err != nil {
		return err
	}
	cfg.Timeout = 2 * time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := connector.Connect(cctx)
		ccancel()
		if err == nil {
			conn.Close()
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

// LogPath is the file the server's log goes to, inside DataDir; empty for
// an external server.
func (s *MySQLServer) LogPath() string { return s.logPath }

// LogTail returns the end of the server's log (at most 4 KiB), for failure
// messages.
func (s *MySQLServer) LogTail() string {
	if s.logPath == "" {
		return ""
	}
	return fileTail(s.logPath, 0)
}

// Version is the server's version as mariadbd reports it (e.g.
// "10.11.14-MariaDB-0+deb12u2"); empty for an external server.
func (s *MySQLServer) Version() string { return s.bins.version }

// Stop shuts the server down cleanly (sessions are ended, the binlog is
// closed) and keeps its data.
func (s *MySQLServer) Stop(ctx context.Context) error {
	if err := s.local("Stop"); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.stopLocked(ctx, mariadbSignals) {
		return errNotStoppedInTime(s.Port)
	}
	return nil
}

// Restart stops and starts the server.
func (s *MySQLServer) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Close stops the server and removes its files. Calling it again is a no-op.
func (s *MySQLServer) Close() error {
	if s.external != nil {
		return nil
	}
	if s.shared {
		return errSharedClose
	}
	return s.close(mariadbSignals, &s.reaper, s.dir, s.Port)
}

// local refuses operations that only a local, private server supports.
func (s *MySQLServer) local(op string) error {
	switch {
	case s.external != nil:
		return fmt.Errorf("testenv: %s is not possible on the %s server; use Dedicated()", op, MySQLDSNEnv)
	case s.shared:
		return fmt.Errorf("testenv: %s on the process-wide shared server; ask for Dedicated()", op)
	}
	return nil
}

// DSN is a go-sql-driver DSN for database db (none when empty) on this
// server, as the administrator: root on a local server, the DSN's user on
// an external one. It sets no session options; OpenFaveoMySQL adds
// Faveo's.
func (s *MySQLServer) DSN(db string) string {
	if s.external != nil {
		cfg := s.external.Clone()
		cfg.DBName = db
		return cfg.FormatDSN()
	}
	cfg := mysql.NewConfig()
	cfg.User = mariadbAdmin
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	cfg.DBName = db
	return cfg.FormatDSN()
}

// SocketDSN is like DSN, through the server's Unix-domain socket. It fails
// for an external server.
func (s *MySQLServer) SocketDSN(db string) (string, error) {
	if s.external != nil || s.Socket == "" {
		return "", fmt.Errorf("testenv: no Unix-domain socket on the %s server", MySQLDSNEnv)
	}
	cfg := mysql.NewConfig()
	cfg.User = mariadbAdmin
	cfg.Net = "unix"
	cfg.Addr = s.Socket
	cfg.DBName = db
	return cfg.FormatDSN(), nil
}

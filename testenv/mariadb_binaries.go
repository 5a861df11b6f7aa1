package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// MariaDB 10.5 is the oldest server the tests run against: it brought
// binlog_row_metadata=FULL (column names in the binlog's table maps) and the
// BINLOG MONITOR privilege.
const minMariaDBVersion = "10.5"

// mariadbBinDirEnv names a directory holding mariadbd and
// mariadb-install-db; it overrides the search.
const mariadbBinDirEnv = "DESKHOOK_MARIADB_BINDIR"

// mariadbInstallHint says what to do when no server binaries are found.
const mariadbInstallHint = "install the MariaDB server: `apt-get install mariadb-server` " +
	"(Debian/Ubuntu; `make test` installs it for you), or set " + mariadbBinDirEnv +
	" to the directory holding mariadbd and mariadb-install-db"

// mariadbBinaries is one MariaDB installation's server programs.
type mariadbBinaries struct {
	mariadbd  string // the server
	installDB string // mariadb-install-db, which creates a data directory
	version   string // e.g. "10.11.14-MariaDB-0+deb12u2"
}

// defaultMariaDBSearchPath lists the directories to look in:
// DESKHOOK_MARIADB_BINDIR alone when set, else PATH and the directories
// distributions install the server and its scripts in (sbin is often not on
// a user's PATH).
func defaultMariaDBSearchPath() []string {
	if d := os.Getenv(mariadbBinDirEnv); d != "" {
		return []string{d}
	}
	dirs := filepath.SplitList(os.Getenv("PATH"))
	return append(dirs, "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")
}

var mariadbVersionRE = regexp.MustCompile(`Ver\s+(\d+)\.(\d+)\.(\S+)`)

// findMariaDB returns the first mariadbd of version 10.5 or newer among the
// directories, with the first mariadb-install-db found, or an error saying
// exactly what to install. MySQL's mysqld is not taken: testenv starts
// MariaDB only (an existing MySQL server is reached through
// DESKHOOK_TEST_MYSQL_DSN).
func findMariaDB(searchPath []string) (mariadbBinaries, error) {
	var (
		b        mariadbBinaries
		rejected []string
	)
	for _, dir := range searchPath {
		if dir == "" {
			continue
		}
		if b.installDB == "" {
			if p := filepath.Join(dir, "mariadb-install-db"); isExecutable(p) {
				b.installDB = p
			}
		}
		if b.mariadbd != "" {
			continue
		}
		p := filepath.Join(dir, "mariadbd")
		if !isExecutable(p) {
			continue
		}
		out, err := exec.Command(p, "--version").Output()
		if err != nil {
			rejected = append(rejected, fmt.Sprintf("%s (--version: %v)", p, err))
			continue
		}
		line := strings.TrimSpace(string(out))
		m := mariadbVersionRE.FindStringSubmatch(line)
		if m == nil || !strings.Contains(line, "MariaDB") {
			rejected = append(rejected, fmt.Sprintf("%s (not MariaDB: %q)", p, line))
			continue
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major < 10 || major == 10 && minor < 5 {
			rejected = append(rejected, fmt.Sprintf("%s (%s.%s.%s)", p, m[1], m[2], m[3]))
			continue
		}
		b.mariadbd, b.version = p, m[1]+"."+m[2]+"."+m[3]
	}
	var missing []string
	if b.mariadbd == "" {
		missing = append(missing, fmt.Sprintf("mariadbd (MariaDB %s or newer)", minMariaDBVersion))
	}
	if b.installDB == "" {
		missing = append(missing, "mariadb-install-db")
	}
	if len(missing) == 0 {
		return b, nil
	}
	msg := fmt.Sprintf("testenv: no %s found in %s", strings.Join(missing, " and no "), strings.Join(nonEmpty(searchPath), ":"))
	if len(rejected) > 0 {
		msg += "; not usable: " + strings.Join(rejected, ", ")
	}
	return mariadbBinaries{}, errors.New(msg + "; " + mariadbInstallHint)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

var (
	defaultMariaDBOnce sync.Once
	defaultMariaDB     mariadbBinaries
	defaultMariaDBErr  error
)

// lookupMariaDB finds the binaries on the given search path, or on the
// default one (cached for the process) when searchPath is nil.
func lookupMariaDB(searchPath []string) (mariadbBinaries, error) {
	if searchPath != nil {
		return findMariaDB(searchPath)
	}
	defaultMariaDBOnce.Do(func() { defaultMariaDB, defaultMariaDBErr = findMariaDB(defaultMariaDBSearchPath()) })
	return defaultMariaDB, defaultMariaDBErr
}

package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// minMajorVersion is the oldest PostgreSQL the tests run against: pgoutput
// streaming of large transactions (protocol v2) needs 14.
const minMajorVersion = 14

// binDirEnv names a directory holding initdb and postgres; it overrides the
// search.
const binDirEnv = "DESKHOOK_PG_BINDIR"

// installHint says what to do when no server binaries are found.
const installHint = "install the PostgreSQL server: `apt-get install postgresql` " +
	"(Debian/Ubuntu; `make test` installs it for you), or set " + binDirEnv +
	" to the directory holding initdb and postgres"

// binaries is one PostgreSQL installation's server programs.
type binaries struct {
	dir     string // holds initdb and postgres
	major   int    // e.g. 15
	version string // e.g. "15.18 (Debian 15.18-0+deb12u1)"
}

func (b binaries) initdb() string   { return filepath.Join(b.dir, "initdb") }
func (b binaries) postgres() string { return filepath.Join(b.dir, "postgres") }

// defaultSearchPath lists the directories to look in, in order of
// preference: DESKHOOK_PG_BINDIR, then PATH, then the Debian/Ubuntu layout
// /usr/lib/postgresql/<major>/bin (highest major first).
func defaultSearchPath() []string {
	var dirs []string
	if d := os.Getenv(binDirEnv); d != "" {
		return []string{d}
	}
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versioned, func(i, j int) bool {
		return majorFromPath(versioned[i]) > majorFromPath(versioned[j])
	})
	return append(dirs, versioned...)
}

func majorFromPath(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(\.\S+)?(.*)$`)

// findBinaries returns the newest installation (major ≥ 14) among the
// directories, or an error saying exactly what to install.
func findBinaries(searchPath []string) (binaries, error) {
	var (
		best    binaries
		tooOld  []string
		visited = map[string]bool{}
	)
	for _, dir := range searchPath {
		if dir == "" {
			continue
		}
		pg := filepath.Join(dir, "postgres")
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err != nil {
			continue
		}
		real, err := filepath.EvalSymlinks(pg)
		if err != nil {
			continue
		}
		// Programs are run from the directory they really live in, so that a
		// symlink on PATH (e.g. /usr/local/bin/postgres) finds its share dir.
		realDir := filepath.Dir(real)
		if visited[realDir] {
			continue
		}
		visited[realDir] = true
		if _, err := os.Stat(filepath.Join(realDir, "initdb")); err != nil {
			realDir = dir // initdb only beside the symlink: keep the pair as found
		}
		out, err := exec.Command(real, "--version").Output()
		if err != nil {
			continue
		}
		m := versionRE.FindStringSubmatch(strings.TrimSpace(string(out)))
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		b := binaries{dir: realDir, major: major, version: strings.TrimSpace(m[1] + m[2] + m[3])}
		if major < minMajorVersion {
			tooOld = append(tooOld, fmt.Sprintf("%s (%s)", realDir, b.version))
			continue
		}
		if major > best.major {
			best = b
		}
	}
	if best.dir != "" {
		return best, nil
	}
	msg := fmt.Sprintf("testenv: no PostgreSQL server binaries (initdb and postgres, version %d or newer) "+
		"found on PATH or under /usr/lib/postgresql/*/bin", minMajorVersion)
	if len(tooOld) > 0 {
		msg += "; too old: " + strings.Join(tooOld, ", ")
	}
	return binaries{}, errors.New(msg + "; " + installHint)
}

var (
	defaultBinsOnce sync.Once
	defaultBins     binaries
	defaultBinsErr  error
)

// lookupBinaries finds the binaries on the given search path, or on the
// default one (cached for the process) when searchPath is nil.
func lookupBinaries(searchPath []string) (binaries, error) {
	if searchPath != nil {
		return findBinaries(searchPath)
	}
	defaultBinsOnce.Do(func() { defaultBins, defaultBinsErr = findBinaries(defaultSearchPath()) })
	return defaultBins, defaultBinsErr
}

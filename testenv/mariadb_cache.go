package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
)

// A local MariaDB is made by copying a cached data directory, made once per
// machine, installation and server user by mariadb-install-db (about four
// seconds; the copy takes a fraction of that). It holds the system tables
// only: each test database gets Faveo's schema when it is created.

// mariadbCacheFormat changes whenever buildMariaDBCache makes a different
// data directory, retiring older entries.
const mariadbCacheFormat = "1"

// mariadbInstallSQL runs after mariadb-install-db's own: it drops the root
// account named after the machine's host name, which a server that does
// not resolve names warns about at every start. root@localhost,
// root@127.0.0.1 and root@::1 remain, without a password.
const mariadbInstallSQL = `DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
`

var unsafeKeyRE = regexp.MustCompile(`[^0-9A-Za-z.]+`)

// cachedMariaDBDataDir returns the cached data directory for this
// installation and user, building it first if needed. The result must not
// be modified: copy it.
func cachedMariaDBDataDir(ctx context.Context, bins mariadbBinaries, u osUser) (string, error) {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%s\x00%d\x00%s",
		mariadbCacheFormat, bins.mariadbd, bins.installDB, bins.version, u.uid, mariadbLogFileSize)))
	key := fmt.Sprintf("mariadb%s-%s", unsafeKeyRE.ReplaceAllString(bins.version, "_"), hex.EncodeToString(sum[:])[:16])
	entry, err := cachedEntry(ctx, u, key, bins.version, func(tmp string) error { return buildMariaDBCache(ctx, bins, u, tmp) })
	return filepath.Join(entry, "data"), err
}

// buildMariaDBCache runs mariadb-install-db into tmp/data, as the server
// user. Called with the cache lock held.
func buildMariaDBCache(ctx context.Context, bins mariadbBinaries, u osUser, tmp string) error {
	extra := filepath.Join(tmp, "install.sql")
	if err := os.WriteFile(extra, []byte(mariadbInstallSQL), 0o644); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer os.Remove(extra)
	data := filepath.Join(tmp, "data")
	// --no-defaults: nothing of the machine's /etc/mysql; options not of the
	// script itself go to the bootstrapping mariadbd.
	cmd := exec.CommandContext(ctx, bins.installDB, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
		"--extra-file="+extra, "--innodb-log-file-size="+mariadbLogFileSize,
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci")
	cmd.Env = childEnv()
	cmd.Dir = "/"
	u.apply(cmd)
	setPdeathsig(cmd.SysProcAttr, syscall.SIGKILL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: mariadb-install-db (%s, as uid %d) failed: %w\n%s", bins.installDB, u.uid, err, out)
	}
	return nil
}

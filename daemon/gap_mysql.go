package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/outbox"
)

// What `deskhook setup` and `deskhook check` do for a MySQL/MariaDB source:
// there is nothing to create on the server, so setup only judges the store
// against the server, and with --accept-gap records a lost position as a
// gap (in the store file, or through the running daemon's operator API)
// with where to read on from: the start of the oldest binlog left, so that
// everything the server still holds is read.

// mysqlStore is what the store says of a MySQL source.
type mysqlStore struct {
	exists         bool
	pos, confirmed change.Position
	resume, source string
}

// streamed reports whether the store has ever streamed (or recorded its
// start).
func (s mysqlStore) streamed() bool { return s.pos > 0 || s.source != "" }

// readMySQLStore reads the store's position, resume token and source, from
// the file or the running daemon.
func readMySQLStore(ctx context.Context, cfg *Config) (mysqlStore, error) {
	if _, err := os.Stat(cfg.Store.Path); errors.Is(err, os.ErrNotExist) {
		return mysqlStore{}, nil
	}
	ops, err := OpenOps(ctx, cfg, false)
	if err != nil {
		return mysqlStore{}, err
	}
	defer ops.Close()
	st := mysqlStore{exists: true}
	if l, ok := ops.(*localOps); ok {
		if st.pos, st.resume, err = l.ob.Resume(); err != nil {
			return st, err
		}
		m, err := l.ob.SourceMark()
		st.confirmed, st.source = m.Confirmed, m.Source
		return st, err
	}
	s, err := ops.Status(ctx)
	if err != nil {
		return st, err
	}
	st.resume, st.source = s.Outbox.ResumeToken, s.Outbox.Source
	if st.pos, err = parseBinlogPos(s.Outbox.Position); err != nil {
		return st, fmt.Errorf("the daemon's stored position: %w", err)
	}
	if s.Outbox.Confirmed != "" {
		if st.confirmed, err = parseBinlogPos(s.Outbox.Confirmed); err != nil {
			return st, fmt.Errorf("the daemon's confirmed position: %w", err)
		}
	}
	return st, nil
}

// judgeMySQLStore says whether the server still holds what the store reads
// on from: nil and the retention, or the error that stops the stream and
// the gap reason it makes.
func judgeMySQLStore(ctx context.Context, cfg *Config, st mysqlStore) (binlog.Retention, string, error) {
	mcfg := cfg.Source.MySQL()
	id, err := binlog.SourceID(ctx, mcfg)
	if err != nil {
		return binlog.Retention{}, "", err
	}
	if st.resume == "" || st.source != id {
		return binlog.Retention{}, "another database", &storeSourceError{store: cfg.Store.Path, stored: st.source, server: id}
	}
	r, err := binlog.CheckRetention(ctx, mcfg, st.resume)
	var lost *binlog.PositionLostError
	switch {
	case err == nil:
		return r, "", nil
	case !errors.As(err, &lost):
		return r, "", err
	case strings.Contains(lost.Reason, "rebuilt or reset"):
		return r, "server rebuilt or reset", err
	}
	return r, "binlog purged", err
}

// setupMySQL is `deskhook setup` for a MySQL/MariaDB source.
func setupMySQL(ctx context.Context, cfg *Config, acceptGap bool) ([]string, error) {
	done := []string{"nothing to create on the MySQL/MariaDB server: the binlog reader needs no slot, publication " +
		"or replica identity (the account and its grants: deskhook setup --print-sql; the server's settings: " +
		"deskhook check)"}
	st, err := readMySQLStore(ctx, cfg)
	if err != nil {
		return done, err
	}
	if !st.streamed() {
		return append(done, "the store has not streamed yet: the daemon starts at the server's current position"), nil
	}
	r, reason, err := judgeMySQLStore(ctx, cfg, st)
	if err == nil {
		return append(done, fmt.Sprintf("the stored position (GTID %s) is on the server; %d binlog file(s) can be "+
			"purged before it", binlog.TokenGTID(st.resume), r.FilesBefore)), nil
	}
	if reason == "" || !acceptGap {
		return done, err
	}
	start, err := binlog.AfterGap(ctx, cfg.Source.MySQL())
	if err != nil {
		return done, err
	}
	cur := max(st.pos, st.confirmed)
	base := epochOf(cur)
	if start.Pos <= cur&seqMask {
		// The sequence restarted (or the server is another): below what
		// the store holds, which the outbox would skip. A new epoch keeps
		// positions and event ids unique and increasing.
		base += 1 << epochShift
		done = append(done, fmt.Sprintf("the server's GTID sequence is at or below the stored position: positions "+
			"(and event ids) go on in epoch %d, so they stay unique", base>>epochShift))
	}
	g := outbox.Gap{From: cur, To: base | start.Pos, At: time.Now().UTC(), Reason: reason, Source: start.Source,
		Resume: start.Resume}
	resume := "the binlog's first transaction"
	if start.Pos > 0 {
		resume = "GTID " + start.Resume
	}
	done = append(done, fmt.Sprintf("accepted a gap (%s): changes after position %s (GTID %s) and up to position %s "+
		"are lost; reading on after %s, the start of the oldest binlog on the server", reason, binlogPos(g.From),
		binlog.TokenGTID(st.resume), binlogPos(g.To), resume))
	if err := recordGap(ctx, cfg, g); err != nil {
		return done, fmt.Errorf("recording the gap in store %s: %w; run `deskhook setup --accept-gap` again",
			cfg.Store.Path, err)
	}
	return append(done, "recorded the gap in store "+cfg.Store.Path), nil
}

// CheckResult is one line of `deskhook check`.
type CheckResult struct {
	Name   string
	OK     bool
	Warn   bool // OK, but watch it
	Detail string
	Fix    string
}

// CheckMySQL is `deskhook check` for a MySQL/MariaDB source: the server's
// settings, the account's privileges, the tables and columns
// (binlog.Check), then the stored position against the server's binlogs:
// lost (FAIL, with the fix), or close to being purged (WARN, as /readyz
// does under admin.min_binlog_margin).
func CheckMySQL(ctx context.Context, cfg *Config) []CheckResult {
	var out []CheckResult
	for _, r := range binlog.Check(ctx, cfg.Source.MySQL()) {
		out = append(out, CheckResult{Name: r.Name, OK: r.OK || r.Warn, Warn: r.Warn, Detail: r.Detail, Fix: r.Fix})
		if r.Name == "connection" && !r.OK {
			return out
		}
	}
	const name = "stored binlog position"
	st, err := readMySQLStore(ctx, cfg)
	switch {
	case err != nil:
		return append(out, CheckResult{Name: name, Detail: "reading the store: " + err.Error()})
	case !st.streamed():
		return append(out, CheckResult{Name: name, OK: true,
			Detail: "none yet: the daemon starts at the server's current position"})
	}
	r, _, err := judgeMySQLStore(ctx, cfg, st)
	switch {
	case err != nil:
		return append(out, CheckResult{Name: name, Detail: err.Error(),
			Fix: "deskhook setup --accept-gap (the changes in between are lost)"})
	case retentionAtRisk(r, cfg.Admin.MinBinlogMargin):
		return append(out, CheckResult{Name: name, OK: true, Warn: true, Detail: retentionRisk(r, cfg.Admin.MinBinlogMargin),
			Fix: "let deskhook catch up (deskhook status), and keep binlogs longer (binlog_expire_logs_seconds)"})
	}
	where := fmt.Sprintf("%d of %d binlog file(s) can be purged before it", r.FilesBefore, r.Files)
	if r.FilesBefore == r.Files-1 {
		where = "in the active binlog file, which the server never purges"
	}
	return append(out, CheckResult{Name: name, OK: true, Detail: fmt.Sprintf("GTID %s is on the server, %s",
		binlog.TokenGTID(st.resume), where)})
}

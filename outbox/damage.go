package outbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged store file (cut short, overwritten in part, or not a store at
// all) is an error naming the file, what is wrong and what to do, never a
// crash. Three defences:
//
//   - preflight walks the file's structure, bounds-checked, before bbolt
//     maps it (filecheck.go), so bbolt never follows a reference out of the
//     file: what would be a SIGBUS or an assertion in one of bbolt's
//     goroutines becomes a DamageError at Open.
//   - Reads run under protect: a fault on the mapped file (one cut short
//     while open) is a panic in that goroutine (debug.SetPanicOnFault),
//     recovered like bbolt's own assertion panics, and a record that does
//     not decode is errCorrupt; both become a DamageError.
//   - The committer recovers the same way around its write transactions.
//
// In the daemon, damage found while running stops intake (nothing more is
// acknowledged, so the source keeps everything not yet stored), which
// /readyz, the intake-stopped metric and an ERROR line report.

// ErrDamaged is wrapped by the errors about a store file that cannot be
// read as a deskhook store (errors.Is).
var ErrDamaged = errors.New("store file damaged")

// panicError is a panic recovered while reading or writing the file.
type panicError struct{ text string }

func (e *panicError) Error() string { return e.text }

// DamageError is a store file that is damaged or not a store at all.
type DamageError struct {
	Path    string
	What    string // what is wrong, in a sentence
	Foreign bool   // not a deskhook store at all (another kind of file)
}

func (e *DamageError) Error() string {
	if e.Foreign {
		return fmt.Sprintf("store %s is not a deskhook store: %s. If store.path is wrong, correct it; "+
			"if this file was the store, it was overwritten: %s", e.Path, e.What, recoveryAdvice)
	}
	return fmt.Sprintf("store %s is damaged: %s. %s", e.Path, e.What, recoveryAdvice)
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// recoveryAdvice is what an operator does about a damaged store.
const recoveryAdvice = "To recover, stop deskhook, then restore the file from a backup (made with `deskhook store backup`), " +
	"or move it aside and run `deskhook setup --accept-gap`, which starts a new store and records the events " +
	"the old one held as lost; `deskhook store check` lists every problem"

// preflight checks the file at path before bbolt opens it (see above),
// holding the lock bbolt will take so that no daemon writes meanwhile. It
// returns the file it checked (nil when none exists yet) and what the walk
// found that bbolt can live with (a damaged header page of two).
func preflight(path string, opts Options) (checked os.FileInfo, warnings []string, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil // bbolt creates it (or, read-only, says it is missing)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: open store %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: open store %s: %w", path, err)
	}
	if fi.IsDir() {
		return nil, nil, fmt.Errorf("outbox: store %s is a directory; store.path names the store's file", path)
	}
	locked, err := lockFile(f, !opts.ReadOnly, opts.LockTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: locking store %s: %w", path, err)
	}
	if !locked {
		return nil, nil, inUse(path, opts)
	}
	l, err := walkFile(f)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: reading store %s: %w", path, err)
	}
	if err := l.damage(path); err != nil {
		return nil, nil, err
	}
	return fi, l.warnings(), nil
}

// openChecked runs preflight, then opens the file with bbolt and makes sure
// bbolt opened the file preflight checked: `deskhook store compact`
// replaces the file by renaming, which may happen in between (a process
// that opened the old file and waited for its lock would write to a file
// no longer in the directory).
func openChecked(path string, opts Options, bo *bolt.Options) (*bolt.DB, []string, error) {
	for attempt := 1; ; attempt++ {
		checked, warnings, err := preflight(path, opts)
		if err != nil {
			return nil, nil, err
		}
		var opened *os.File
		bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			opened = f
			return f, err
		}
		var db *bolt.DB
		err = protect(func() (err error) {
			db, err = bolt.Open(path, 0o600, bo)
			return err
		})
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, nil, err
		case isDamage(err), errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
			errors.Is(err, berrors.ErrVersionMismatch):
			return nil, nil, &DamageError{Path: path, What: "bbolt cannot open it: " + err.Error()}
		case err != nil:
			return nil, nil, fmt.Errorf("outbox: open store %s: %w", path, err)
		}
		if same, err := sameFile(checked, opened, path); err != nil || same {
			if err != nil {
				_ = db.Close()
				return nil, nil, fmt.Errorf("outbox: open store %s: %w", path, err)
			}
			return db, warnings, nil
		}
		_ = db.Close()
		if attempt == 3 {
			return nil, nil, fmt.Errorf("outbox: store %s was replaced while being opened, three times "+
				"(is `deskhook store compact` running in a loop?); try again", path)
		}
	}
}

// sameFile says whether the file bbolt opened is the one preflight checked
// (when there was one) and still the one at path.
func sameFile(checked os.FileInfo, opened *os.File, path string) (bool, error) {
	if opened == nil {
		return false, errors.New("bbolt opened no file")
	}
	ofi, err := opened.Stat()
	if err != nil {
		return false, err
	}
	pfi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	return os.SameFile(ofi, pfi) && (checked == nil || os.SameFile(checked, ofi)), nil
}

func inUse(path string, opts Options) error {
	return fmt.Errorf("outbox: store %s is %w (still locked after %s)", path, ErrInUse, opts.LockTimeout)
}

// damage turns what the walk found into a DamageError, or nil when bbolt
// can open the file safely and it is a deskhook store (or an empty bbolt
// file, which Open makes one).
func (l *fileLayout) damage(path string) error {
	switch {
	case l.foreign != "":
		return &DamageError{Path: path, What: l.foreign, Foreign: true}
	case len(l.fatal()) > 0:
		p := l.fatal()
		what := p[0]
		if len(p) > 1 {
			what += fmt.Sprintf(" (and %d more problems)", len(p)-1)
		}
		return &DamageError{Path: path, What: what}
	case len(l.topBuckets) > 0 && !slices.Contains(l.topBuckets, string(bucketMeta)):
		return &DamageError{Path: path, Foreign: true,
			What: "it is a bbolt file of another program (its buckets: " + strings.Join(l.topBuckets, ", ") + ")"}
	}
	return nil
}

// A damaged header page is not fatal: bbolt uses the other one.
const headerWarning = "header page "

func (l *fileLayout) fatal() []string {
	var out []string
	for _, p := range l.problems {
		if !strings.HasPrefix(p, headerWarning) {
			out = append(out, p)
		}
	}
	return out
}

func (l *fileLayout) warnings() []string {
	var out []string
	for _, p := range l.problems {
		if strings.HasPrefix(p, headerWarning) {
			out = append(out, p)
		}
	}
	return out
}

// protect runs fn with a fault on the mapped file and a panic (bbolt's
// assertions) turned into a panicError.
func protect(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{text: panicText(r)}
		}
	}()
	return fn()
}

// panicText says what a recovered panic means for the file.
func panicText(r any) string {
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		return fmt.Sprintf("a read of the mapped file faulted at %#x (%v): the file is shorter than "+
			"bbolt expects (cut short while open?) or its pages point outside it", f.Addr(), r)
	}
	if s, ok := r.(string); ok && strings.HasPrefix(s, "assertion failed") {
		return "bbolt met a damaged page: " + s
	}
	if _, ok := r.(runtime.Error); ok {
		return fmt.Sprintf("bbolt met a damaged page (%v)", r)
	}
	return fmt.Sprint(r)
}

// isDamage says whether err comes from a damaged file.
func isDamage(err error) bool {
	var pe *panicError
	return errors.Is(err, errCorrupt) || errors.As(err, &pe) || errors.Is(err, ErrDamaged)
}

// view runs a read transaction under protect; damage found is a
// DamageError, which also stops the daemon's intake.
func (o *Outbox) view(fn func(tx *bolt.Tx) error) error {
	err := protect(func() error { return o.db.View(fn) })
	if err == nil || !isDamage(err) {
		return err
	}
	var de *DamageError
	if !errors.As(err, &de) {
		de = &DamageError{Path: o.path, What: "reading it failed: " + strings.TrimPrefix(err.Error(), "outbox: ")}
	}
	o.damaged(de)
	return de
}

// damaged stops intake for good: the file cannot be trusted with more.
func (o *Outbox) damaged(err *DamageError) {
	if o.opts.ReadOnly {
		return
	}
	var e error = err
	if o.intakeErr.CompareAndSwap(nil, &e) {
		o.log.Error("outbox store is damaged: intake stopped, nothing more is acknowledged "+
			"(the source keeps what is not stored)", "err", err)
		o.m.intakeStopped()
	}
}

// recoverWrite is deferred by the committer after it begins a write
// transaction: a panic before the transaction ends (bbolt's assertions on
// a damaged page, a fault on the mapped file) rolls it back, stops intake,
// and answers done when an operator request waits for it. A panic after
// the transaction ended is no damage and goes on.
func (o *Outbox) recoverWrite(tx *bolt.Tx, done chan<- error) {
	r := recover()
	if r == nil {
		return
	}
	if tx.DB() == nil {
		panic(r)
	}
	_ = tx.Rollback()
	err := &DamageError{Path: o.path, What: fmt.Sprintf("writing to it failed: %v", r)}
	o.damaged(err)
	if done != nil {
		done <- err
	}
}

// committer is the committer goroutine: a fault on the mapped file while it
// writes is a panic that recoverWrite catches.
func (o *Outbox) committer() {
	debug.SetPanicOnFault(true)
	o.run()
}

package outbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDamagedStore: bytes written anywhere in a store, or the file cut
// anywhere, never crash Open (read-only or not), the reads that follow, a
// write, or Check: each either works or fails with an error. (A crash
// here is a SIGBUS, a SIGSEGV or a panic in one of bbolt's goroutines,
// which kills the fuzzing process.)
func FuzzDamagedStore(f *testing.F) {
	base := sampleStore(f)
	l := layout(f, base)
	ps := uint32(l.pageSize)
	branch, leaf := treePages(f, base)
	free := freePage(f, base)
	junk := []byte("\xde\xad\xbe\xef\xff\xff\xff\xff\x00\x00\x00\x00\x01\x00\x00\x00\x7f\xff\xff\xff")
	for _, off := range []uint32{0, 16, 32, 48, ps + 24, uint32(branch) * ps, uint32(branch)*ps + 20, uint32(leaf) * ps,
		uint32(leaf)*ps + 16, uint32(leaf)*ps + 40, uint32(free) * ps, uint32(l.meta.root) * ps} {
		f.Add(off, junk, uint32(0))
	}
	f.Add(uint32(0), []byte{}, 3*ps+1)
	f.Add(uint32(0), []byte{}, uint32(l.meta.pgid-1)*ps)
	f.Add(uint32(branch)*ps+16+8, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f}, uint32(0)) // a child far away
	f.Add(uint32(branch)*ps+16+8, []byte{byte(branch), 0, 0, 0, 0, 0, 0, 0}, uint32(0))              // a child that is itself

	whole, err := os.ReadFile(base)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, off uint32, data []byte, cut uint32) {
		b := append([]byte(nil), whole...)
		if len(data) > 0 {
			at := int(off) % len(b)
			copy(b[at:], data)
		}
		if cut != 0 {
			b = b[:int(cut)%len(b)]
		}
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Check(path, time.Second); err != nil {
			t.Fatalf("check: %v", err)
		}
		for _, ro := range []bool{true, false} {
			o, err := Open(path, Options{ReadOnly: ro, NoSync: true})
			if err != nil {
				if !errors.Is(err, ErrDamaged) {
					t.Logf("open (read-only %v): %v", ro, err) // a layout version, ...: an error all the same
				}
				continue
			}
			exercise(o, ro)
			_ = o.Close()
		}
	})
}

// exercise reads everything an open store holds and, unless read-only,
// writes to it; errors are fine, crashes are not.
func exercise(o *Outbox, ro bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eps, _ := o.Endpoints()
	if dl, err := o.DeadLetters(DeadFilter{}); err == nil && len(dl) > 0 {
		_, _ = o.DeadLetter(dl[0].Endpoint, dl[0].ID)
	}
	for _, ep := range eps {
		after := Key{}
		for range 100 {
			page, err := o.Pending(ep.Name, PendingQuery{After: after})
			if err != nil || page.End {
				break
			}
			after = page.Last
		}
	}
	if ro {
		return
	}
	subs := make([]Subscription, 0, len(eps))
	for _, ep := range eps {
		subs = append(subs, Subscription{Name: ep.Name, Wants: all})
	}
	if err := o.SetSubscriptions(ctx, subs); err != nil {
		return
	}
	pos := o.Position() + 1
	if o.Append(ctx, pos, true, txn(pos, 1)) == nil {
		_ = o.Flush(ctx)
	}
	if len(eps) > 0 {
		o.Record(Result{Endpoint: eps[0].Name, Key: Key{Pos: pos}, Outcome: Delivered, Attempt: Attempt{At: time.Now(), Status: 200}})
		_, _ = o.Replay(ctx, DeadFilter{})
	}
	_ = o.Flush(ctx)
}

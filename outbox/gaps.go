package outbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
)

// What the store remembers of its source beyond the stored position, so a
// replication slot that no longer fits the store (dropped, invalidated,
// re-created, advanced by someone else, or another database's) is noticed
// instead of silently replacing what was lost (design rule 1):
//
//	meta "source" → JSON SourceMark
//	meta "resume" → the source's resume token for the stored position
//	                (AppendResume; a source that keeps no position on its
//	                server, MySQL/MariaDB, reads on from it), opaque here
//	meta "gaps"   → bucket { seq (8 bytes BE) → JSON Gap }, the gaps an
//	                operator accepted, in the order accepted
var (
	keySource  = []byte("source")
	keyResume  = []byte("resume")
	bucketGaps = []byte("gaps")
)

// SourceMark is the store's record of its source.
type SourceMark struct {
	// Source names the database the store is filled from (the server's
	// system identifier and the database name); "" until the first stream.
	Source string `json:"source,omitempty"`
	// Confirmed is the highest position the source may have been told is
	// done. It is written before that is sent, so a slot confirmed past
	// both it and the stored position was moved by someone else.
	Confirmed change.Position `json:"confirmed,omitempty"`
}

// Gap is a stretch of the source an operator accepted as lost: changes
// committed after From and before To were never stored.
type Gap struct {
	From   change.Position `json:"from"`
	To     change.Position `json:"to"`
	At     time.Time       `json:"at"`
	Reason string          `json:"reason"`
	// Source is the database streamed from To on (see SourceMark.Source).
	Source string `json:"source,omitempty"`
	// Resume, when set, is the source's resume token to read on from
	// (replacing the stored one): where a source that keeps no position on
	// its server starts after the gap.
	Resume string `json:"resume,omitempty"`
}

// Resume returns the stored position and the source's resume token stored
// with it (AppendResume, AcceptGap), read together: "" when the source
// never gave one.
func (o *Outbox) Resume() (change.Position, string, error) {
	var pos change.Position
	var token string
	err := o.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyPosition); len(v) == 8 {
			pos = change.Position(binary.BigEndian.Uint64(v))
		}
		token = string(meta.Get(keyResume))
		return nil
	})
	return pos, token, err
}

// SourceMark reads the store's record of its source.
func (o *Outbox) SourceMark() (SourceMark, error) {
	var m SourceMark
	err := o.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = readSourceMark(tx.Bucket(bucketMeta))
		return err
	})
	return m, err
}

func readSourceMark(meta *bolt.Bucket) (SourceMark, error) {
	var m SourceMark
	v := meta.Get(keySource)
	if v == nil {
		return m, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return m, fmt.Errorf("outbox: the source record %q is damaged: %w", v, err)
	}
	return m, nil
}

func writeSourceMark(meta *bolt.Bucket, m SourceMark) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return meta.Put(keySource, v)
}

// RecordConfirmed durably raises the confirmed mark to pos for source, and
// records source if the store has none yet. Call it before telling the
// source that pos is done. It fails, changing nothing, when the store was
// filled from another source.
func (o *Outbox) RecordConfirmed(ctx context.Context, source string, pos change.Position) error {
	return o.do(ctx, func(g *group) error {
		m, err := readSourceMark(g.meta)
		if err != nil {
			return err
		}
		if m.Source != "" && m.Source != source {
			return fmt.Errorf("outbox: store %s is filled from source %s, not %s", o.path, m.Source, source)
		}
		if m.Source == source && pos <= m.Confirmed {
			return nil
		}
		m.Source, m.Confirmed = source, max(m.Confirmed, pos)
		return writeSourceMark(g.meta, m)
	})
}

// RecordStart records where a store that has never streamed starts
// reading a source that keeps no position on its server: the source and
// the resume token of the source's position now, written before the first
// stream, so that a restart before any transaction arrives reads on from
// there instead of from wherever the source is then. It fails, changing
// nothing, once the store has a position or a source.
func (o *Outbox) RecordStart(ctx context.Context, source, resume string) error {
	if source == "" || resume == "" {
		return errors.New("outbox: a start needs its source and resume token")
	}
	return o.do(ctx, func(g *group) error {
		m, err := readSourceMark(g.meta)
		if err != nil {
			return err
		}
		if g.stored > 0 || m.Source != "" {
			return fmt.Errorf("outbox: store %s has streamed already (source %q, position %s)", o.path, m.Source, g.stored)
		}
		if err := g.meta.Put(keyResume, []byte(resume)); err != nil {
			return err
		}
		return writeSourceMark(g.meta, SourceMark{Source: source})
	})
}

// AcceptGap records g and makes the store resume from g.To on g.Source:
// the confirmed mark becomes g.To (a mark from another source means
// nothing here), and g.Resume, when set, the resume token. g.To must be past the stored position, or the store would
// skip the source's transactions up to it as already stored.
func (o *Outbox) AcceptGap(ctx context.Context, g Gap) error {
	if g.Source == "" || g.To == 0 {
		return errors.New("outbox: a gap needs its source and where it ends")
	}
	if g.At.IsZero() {
		g.At = time.Now()
	}
	g.At = g.At.UTC()
	return o.do(ctx, func(gr *group) error {
		if stored := gr.stored; g.To <= stored {
			return fmt.Errorf("outbox: the gap ends at %s, not past the stored position %s", g.To, stored)
		}
		b, err := gr.meta.CreateBucketIfNotExists(bucketGaps)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(g)
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		if g.Resume != "" {
			if err := gr.meta.Put(keyResume, []byte(g.Resume)); err != nil {
				return err
			}
		}
		return writeSourceMark(gr.meta, SourceMark{Source: g.Source, Confirmed: g.To})
	})
}

// Gaps returns the gaps accepted so far, oldest first.
func (o *Outbox) Gaps() ([]Gap, error) {
	var out []Gap
	err := o.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Bucket(bucketGaps)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var g Gap
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("outbox: gap record %x is damaged: %w", k, err)
			}
			out = append(out, g)
			return nil
		})
	})
	return out, err
}

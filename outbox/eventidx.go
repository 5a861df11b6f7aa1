package outbox

import (
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// The stored events' indexes, kept with the events bucket (every put and
// delete of an event changes them in the same transaction), for Events
// and Resend's selections by ticket and commit time:
//
//	eventidx/ticket  ticket (8) · event key (12)
//	eventidx/commit  commit time (unix ns, 8) · event key (12)
//
// Values are empty.

var (
	bucketEventIdx  = []byte("eventidx")
	bucketIdxTicket = []byte("ticket")
	bucketIdxCommit = []byte("commit")
)

const eventIdxKeyLen = 8 + keyLen

type eventIdx struct{ ticket, commit *bolt.Bucket }

// eventIdxIn returns the indexes, or false in a store written by a
// deskhook without them (opened read-only, not upgraded).
func eventIdxIn(tx *bolt.Tx) (eventIdx, bool) {
	root := tx.Bucket(bucketEventIdx)
	if root == nil {
		return eventIdx{}, false
	}
	x := eventIdx{ticket: root.Bucket(bucketIdxTicket), commit: root.Bucket(bucketIdxCommit)}
	return x, x.ticket != nil && x.commit != nil
}

// createEventIdx creates the indexes where they are missing and fills
// them from the events a store written before them holds.
func createEventIdx(tx *bolt.Tx) error {
	if _, ok := eventIdxIn(tx); ok {
		return nil
	}
	root, err := tx.CreateBucketIfNotExists(bucketEventIdx)
	if err != nil {
		return err
	}
	var x eventIdx
	if x.ticket, err = root.CreateBucketIfNotExists(bucketIdxTicket); err != nil {
		return err
	}
	if x.commit, err = root.CreateBucketIfNotExists(bucketIdxCommit); err != nil {
		return err
	}
	c := tx.Bucket(bucketEvents).Cursor()
	var buf [2][eventIdxKeyLen]byte
	for k, v := c.First(); k != nil; k, v = c.Next() {
		t, cm, ok := eventIdxKeys(&buf, k, v)
		if !ok {
			return errCorrupt
		}
		if err := x.ticket.Put(t, nil); err != nil {
			return err
		}
		if err := x.commit.Put(cm, nil); err != nil {
			return err
		}
	}
	return nil
}

// eventIdxKeys builds an event's two index keys from its key and record.
func eventIdxKeys(buf *[2][eventIdxKeyLen]byte, kb, rec []byte) (ticket, commit []byte, ok bool) {
	if len(rec) < 35 || len(kb) != keyLen {
		return nil, nil, false
	}
	copy(buf[0][:8], rec[9:17])
	copy(buf[0][8:], kb)
	copy(buf[1][:8], rec[1:9])
	copy(buf[1][8:], kb)
	return buf[0][:], buf[1][:], true
}

func (g *group) eventIdx() (eventIdx, bool) {
	if !g.evIdxSet {
		g.evIdxSet = true
		g.evIdx, g.evIdxOK = eventIdxIn(g.tx)
		if g.evIdxOK {
			g.evIdx.ticket.FillPercent = 0.9
			g.evIdx.commit.FillPercent = 0.95
		}
	}
	return g.evIdx, g.evIdxOK
}

// indexEvent adds an event's index keys; rec is its record.
func (g *group) indexEvent(kb, rec []byte) error {
	x, ok := g.eventIdx()
	if !ok {
		return nil
	}
	var buf [2][eventIdxKeyLen]byte
	t, c, ok := eventIdxKeys(&buf, kb, rec)
	if !ok {
		return errCorrupt
	}
	if err := x.ticket.Put(t, nil); err != nil {
		return err
	}
	return x.commit.Put(c, nil)
}

// unindexEvent removes an event's index keys; rec is its record.
func (g *group) unindexEvent(kb, rec []byte) error {
	x, ok := g.eventIdx()
	if !ok {
		return nil
	}
	var buf [2][eventIdxKeyLen]byte
	t, c, ok := eventIdxKeys(&buf, kb, rec)
	if !ok {
		return nil // a damaged record: its keys cannot be known (store check names it)
	}
	if err := x.ticket.Delete(t); err != nil {
		return err
	}
	return x.commit.Delete(c)
}

// deleteEvent deletes an event and its index keys.
func (g *group) deleteEvent(kb []byte) error {
	rec := g.events.Get(kb)
	if rec == nil {
		return nil
	}
	if err := g.unindexEvent(kb, rec); err != nil {
		return err
	}
	return g.events.Delete(kb)
}

// KeyOfID returns the key of the event id names (mapping.EventID's form,
// "evt_<16 hex digits>_<index>"), or false.
func KeyOfID(id string) (Key, bool) {
	rest, ok := strings.CutPrefix(id, "evt_")
	if !ok || len(rest) < 18 || rest[16] != '_' {
		return Key{}, false
	}
	pos, err := strconv.ParseUint(rest[:16], 16, 64)
	if err != nil {
		return Key{}, false
	}
	idx, err := strconv.ParseUint(rest[17:], 10, 32)
	if err != nil {
		return Key{}, false
	}
	k := Key{Pos: change.Position(pos), Index: uint32(idx)}
	if mapping.EventID(k.Pos, k.Index) != id {
		return Key{}, false
	}
	return k, true
}

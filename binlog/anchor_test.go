package binlog

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestResetServerBeyondStored: a server reset (RESET MASTER) whose new
// history has gone past the stored GTID's sequence number is refused, not
// read from that number on. The token alone cannot tell: 0-1-6 is in the
// new binlog too; the anchor says the stored transaction was elsewhere.
func TestResetServerBeyondStored(t *testing.T) {
	db := testenv.MariaDB(t, testenv.Dedicated())
	cfg := testConfig(db)
	ctx := context.Background()
	for range 5 {
		mark(t, db)
	}
	run := startReader(t, cfg, "", nil)
	m := mark(t, db)
	txs := transactions(run.c.waitFor(t, "the marker", time.Minute, sawMarker(m)))
	last := txs[len(txs)-1]
	run.close(t)
	if last.Anchor == "" || !strings.Contains(last.Anchor, last.Resume) {
		t.Fatalf("the last transaction (%s) has no anchor: %q", last.Resume, last.Anchor)
	}
	stored := WithAnchor(last.Resume, last.Anchor)
	if TokenGTID(stored) != last.Resume {
		t.Errorf("TokenGTID(%q) = %q", stored, TokenGTID(stored))
	}
	// Before the reset the anchor holds: no false alarm, and the reader
	// resumes from it.
	if _, err := CheckRetention(ctx, cfg, stored); err != nil {
		t.Fatalf("CheckRetention(%s) before the reset: %v", stored, err)
	}
	again := startReader(t, cfg, stored, nil)
	m = mark(t, db)
	again.c.waitFor(t, "a marker read from the anchored token", time.Minute, sawMarker(m))
	again.close(t)

	db.Exec(t, "RESET MASTER")
	for range 3 * int(last.Pos) {
		mark(t, db)
	}
	_, err := CheckRetention(ctx, cfg, stored)
	var lost *PositionLostError
	if !errors.As(err, &lost) || !errors.Is(err, ErrPositionLost) || !strings.Contains(lost.Reason, "rebuilt or reset") {
		t.Fatalf("CheckRetention(%s) after RESET MASTER and %d transactions: %v; want the position lost", stored, 3*last.Pos, err)
	}
	second := startReader(t, cfg, stored, nil)
	if err := second.runErr(t, time.Minute); !errors.Is(err, ErrPositionLost) {
		t.Errorf("Run from %s after the reset: %v; want ErrPositionLost", stored, err)
	}
}

// TestAnchorFormat: anchors and tokens read back as written, for both
// servers' GTIDs, and MySQL's SHOW BINLOG EVENTS text names its GTID.
func TestAnchorFormat(t *testing.T) {
	for _, c := range []struct{ resume, anchor, gtid, info string }{
		{"0-1-33", "binlog.000002:4567 0-1-33 id1", "0-1-33", "BEGIN GTID 0-1-33"},
		{"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23", "mysql-bin.000010:120 3e11fa47-71ca-11e1-9e33-c80aa9429562:23 3e11fa47-71ca-11e1-9e33-c80aa9429562",
			"3e11fa47-71ca-11e1-9e33-c80aa9429562:23", "SET @@SESSION.GTID_NEXT= '3E11FA47-71CA-11E1-9E33-C80AA9429562:23'"},
	} {
		tok := WithAnchor(c.resume, c.anchor)
		if TokenGTID(tok) != c.resume || TokenGTID(c.resume) != c.resume {
			t.Errorf("TokenGTID(%q) = %q", tok, TokenGTID(tok))
		}
		_, anc := splitToken(tok)
		a := parseAnchor(anc)
		if !a.valid || a.gtid != c.gtid || !strings.HasPrefix(c.anchor, a.file+":") {
			t.Errorf("parseAnchor(%q) = %+v", anc, a)
		}
		m := gtidInfoRE.FindStringSubmatch(c.info)
		if m == nil || (m[1] != a.gtid && !strings.EqualFold(m[2], a.gtid)) {
			t.Errorf("%q does not name %s", c.info, a.gtid)
		}
	}
	if WithAnchor("0-1-3", "") != "0-1-3" || parseAnchor("").valid || parseAnchor("nonsense").valid {
		t.Error("a token without an anchor")
	}
	if !laterFile("binlog.000010", "binlog.000009") || laterFile("binlog.000002", "binlog.000010") || laterFile("a.000002", "b.000001") {
		t.Error("laterFile")
	}
}

// FuzzAnchor: any stored token splits and parses without a panic, and an
// anchor parsed from it names a file, an offset and a GTID.
func FuzzAnchor(f *testing.F) {
	f.Add("0-1-33 at binlog.000002:4567 0-1-33 id1")
	f.Add("uuid:1-5 at b.1:4 uuid:5")
	f.Add(" at :: ")
	f.Fuzz(func(t *testing.T, token string) {
		gtid, anc := splitToken(token)
		if TokenGTID(token) != gtid {
			t.Fatalf("TokenGTID(%q) = %q, splitToken %q", token, TokenGTID(token), gtid)
		}
		if a := parseAnchor(anc); a.valid && (a.file == "" || a.gtid == "" || a.server == "") {
			t.Fatalf("parseAnchor(%q) = %+v", anc, a)
		}
	})
}

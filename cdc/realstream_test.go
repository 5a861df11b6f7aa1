package cdc

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// update rewrites the stored real stream (the FuzzDecode seed). Another
// test file of the package may define -update first; then both share it.
var update = boolFlag("update", "rewrite testdata files from a real PostgreSQL")

func boolFlag(name, usage string) func() bool {
	if f := flag.Lookup(name); f != nil {
		return func() bool { return f.Value.String() == "true" }
	}
	p := flag.Bool(name, false, usage)
	return func() bool { return *p }
}

// realStreamSeed is the FuzzDecode seed captured from PostgreSQL.
var realStreamSeed = filepath.Join("testdata", "fuzz", "FuzzDecode", "real_stream")

// TestRealStreamDecodes captures the raw CopyData messages of a real
// pgoutput stream (every message type deskhook handles: Relation, Type,
// Begin, Insert, Update with old rows full and keyed, Delete, Truncate,
// Commit, keepalives) and runs them through the reader's decoding path
// without an error. With -update it stores them as FuzzDecode's seed.
func TestRealStreamDecodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	ctx := testCtx(t, time.Minute)
	conn, err := pgconn.Connect(ctx, f.db.ReplicationDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := pglogrepl.StartReplication(ctx, conn, f.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'deskhook'"}}); err != nil {
		t.Fatal(err)
	}

	must := func(w testenv.Write, err error) testenv.Write {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := must(f.hd.CreateTicket(ctx, testenv.NewTicket{Subject: "Printer \"on\" fire", Body: "<p>ünïcode ✓</p>"}))
	must(f.hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>On it</p>"))
	must(f.hd.AssignAgent(ctx, w.TicketID, testenv.AgentBob, testenv.AdminID))
	must(f.hd.ChangeStatus(ctx, w.TicketID, testenv.StatusClosed))
	f.db.Exec(t, "CREATE TYPE mood AS ENUM ('calm', 'cross')")
	f.db.Exec(t, "ALTER TABLE users ADD COLUMN mood mood, ADD COLUMN notes text")
	f.db.Exec(t, "UPDATE users SET mood = 'cross', notes = repeat('long ', 1000) WHERE id = 5")
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5") // notes unchanged and TOASTed
	must(f.hd.HardDelete(ctx, w.TicketID))
	f.db.Exec(t, "UPDATE teams SET id = 30 WHERE id = 3") // a key change: the old key comes along
	f.db.Exec(t, "TRUNCATE teams")
	const txns = 9 // ALTER TABLE and CREATE TYPE send nothing

	var msgs [][]byte
	types := map[byte]int{}
	commits, keepalives := 0, 0
	askedReply := false
	for commits < txns || keepalives == 0 {
		if commits == txns && !askedReply {
			// Ask for a keepalive, to have one in the seed too.
			if err := sendStatus(conn, 0, 0, time.Now(), true); err != nil {
				t.Fatal(err)
			}
			askedReply = true
		}
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %d commits: %v", commits, err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			t.Fatalf("unexpected %T", msg)
		}
		data := bytes.Clone(cd.Data)
		msgs = append(msgs, data)
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			if askedReply {
				keepalives++
			}
		case pglogrepl.XLogDataByteID:
			typ := data[25]
			types[typ]++
			if typ == 'C' {
				commits++
			}
		}
	}
	for _, typ := range []byte("RYBIUDTC") {
		if types[typ] == 0 {
			t.Errorf("no %q message in the stream: %v", typ, types)
		}
	}

	// The reader's path: CopyData, then pgoutput, without an error.
	d := testDecoder(1000)
	var changes, batches int
	for i, m := range msgs {
		cd, err := parseCopyData(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if cd.keepalive {
			continue
		}
		out, ok, err := d.decode(cd.wal)
		if err != nil {
			t.Fatalf("message %d (%q): %v", i, cd.wal[0], err)
		}
		if ok {
			batches++
			changes += len(out.batch.Changes)
		}
	}
	if batches != txns {
		t.Errorf("%d batches, want %d", batches, txns)
	}
	if n := driveStream(frame(msgs...), 2); n != changes {
		t.Errorf("driveStream handed over %d changes, the decoder %d", n, changes)
	}

	if update() {
		if err := os.MkdirAll(filepath.Dir(realStreamSeed), 0o755); err != nil {
			t.Fatal(err)
		}
		seed := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(frame(msgs...))))
		if err := os.WriteFile(realStreamSeed, []byte(seed), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRealStreamSeed: the stored seed is a valid fuzz input that decodes
// to changes (refresh it with go test -run TestRealStreamDecodes -update).
func TestRealStreamSeed(t *testing.T) {
	b, err := os.ReadFile(realStreamSeed)
	if err != nil {
		t.Fatalf("%v (create it with go test -run TestRealStreamDecodes -update)", err)
	}
	lines := strings.SplitN(string(b), "\n", 3)
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s is not a fuzz corpus file", realStreamSeed)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	if n := driveStream([]byte(s), 2); n < 10 {
		t.Errorf("the seed decodes to %d changes", n)
	}
}

package outbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// benchPayload is about the size of a Faveo ticket_reply payload.
var benchPayload = []byte(`{"event":"ticket_reply","thread":{"body":"` + string(bytes.Repeat([]byte("x"), 2500)) + `"}}`)

func benchTxns(n, perTxn int) [][]mapping.Event {
	txns := make([][]mapping.Event, 0, n/perTxn+1)
	for pos := change.Position(1); n > 0; pos++ {
		k := min(perTxn, n)
		evs := make([]mapping.Event, k)
		for i := range evs {
			// Replies to 20,000 tickets, spread: the tickets' index keys
			// land all over their trees, as a helpdesk's do.
			evs[i] = event(pos, uint32(i), int64(pos)*7919%20000+1, mapping.TicketReply)
			evs[i].Payload = benchPayload
		}
		txns = append(txns, evs)
		n -= k
	}
	return txns
}

// BenchmarkAppend measures storing events with fsync, as in production:
// transactions of 5 events, one endpoint, until the last is durable.
func BenchmarkAppend(b *testing.B) {
	txns := benchTxns(b.N, 5)
	d := newDurable()
	path := filepath.Join(b.TempDir(), "outbox.db")
	o := open(b, path, Options{OnDurable: d.on}, Subscription{Name: "a", Wants: all})
	ctx := context.Background()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	start, writes := time.Now(), pagesWritten(o)
	for _, evs := range txns {
		if err := o.Append(ctx, evs[0].Pos, true, evs); err != nil {
			b.Fatal(err)
		}
	}
	d.waitFor(b, txns[len(txns)-1][0].Pos)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(pagesWritten(o)-writes)/float64(b.N), "pages/event")
	// Issue 7 bounds the file at twice the undelivered events' size.
	if fi, err := os.Stat(path); err == nil && b.N >= 10000 {
		b.ReportMetric(float64(fi.Size())/float64(b.N*len(benchPayload)), "file/payload")
	}
}

// BenchmarkClaimDeliver measures the sender's path through the outbox with
// fsync: read pending entries with their events, record them delivered
// (which prunes the events), commit.
func BenchmarkClaimDeliver(b *testing.B) { claimDeliver(b, Options{}) }

// BenchmarkClaimDeliverLogged is BenchmarkClaimDeliver with the delivery
// log on, as the daemon runs by default: each result also writes its log
// entry and four index keys, and the events stay for the log.
func BenchmarkClaimDeliverLogged(b *testing.B) {
	claimDeliver(b, Options{Log: LogLimits{Retention: 7 * 24 * time.Hour, MaxBytes: 256 << 20}})
}

func claimDeliver(b *testing.B, opts Options) {
	txns := benchTxns(b.N, 5)
	o := open(b, filepath.Join(b.TempDir(), "outbox.db"), opts, Subscription{Name: "a", Wants: all})
	ctx := context.Background()
	for _, evs := range txns {
		if err := o.Append(ctx, evs[0].Pos, true, evs); err != nil {
			b.Fatal(err)
		}
	}
	mustFlush(b, o)
	b.ResetTimer()
	start, writes := time.Now(), pagesWritten(o)
	after := Key{}
	n := 0
	for {
		page, err := o.Pending("a", PendingQuery{After: after, Max: 512})
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		results := make([]Result, len(page.Deliveries))
		for i, dl := range page.Deliveries {
			results[i] = Result{Endpoint: "a", Key: dl.Key, Outcome: Delivered, Attempt: Attempt{At: now, Status: 200}}
		}
		o.Record(results...)
		n += len(results)
		if page.End {
			break
		}
		after = page.Last
	}
	mustFlush(b, o)
	b.StopTimer()
	if n != b.N {
		b.Fatalf("delivered %d of %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(pagesWritten(o)-writes)/float64(b.N), "pages/event")
}

// pagesWritten counts the pages bbolt wrote so far: what a commit costs
// the disk, whatever else the machine does.
func pagesWritten(o *Outbox) int64 {
	st := o.db.Stats()
	return st.TxStats.GetWrite()
}

package change

import "context"

// Handler receives committed transactions from a source reader (cdc for
// PostgreSQL, binlog for MySQL/MariaDB), in commit order; large ones in
// several chunks (Batch Seq/Last). Handle may block for minutes: the
// reader keeps answering the server meanwhile. The reader does not touch a
// batch after handing it over. An error stops the reader's Run.
type Handler interface {
	Handle(ctx context.Context, b *Batch) error
}

// BatchHandler is a Handler that can take several transactions at once:
// when it implements this, a reader calls HandleBatches with every batch
// queued, up to MaxHandleBatches, in commit order, instead of Handle with
// one. A consumer that reads the source for what it lacks can then do it
// for all of them in one round, and store them together. The same rules
// hold as for Handle; the slice itself is the reader's, reused after
// HandleBatches returns (the batches are not).
type BatchHandler interface {
	Handler
	HandleBatches(ctx context.Context, bs []*Batch) error
}

// MaxHandleBatches bounds the batches of one HandleBatches call. Their
// memory is bounded anyway (the reader's queue); this bounds what one call
// reads ahead from the source (a few hundred transactions already make a
// read round cheap per transaction).
const MaxHandleBatches = 512

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *Batch) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b *Batch) error { return f(ctx, b) }

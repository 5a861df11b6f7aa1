// Package outbox owns deskhook's durable store: one bbolt file holding the
// events the mapper produced, every endpoint's delivery state (pending
// entries with their attempts and next-attempt times, dead letters, enabled
// or disabled), and the source position up to which everything is stored.
//
// Writes go through one committer goroutine that groups many source
// transactions and delivery results into one bbolt transaction and its
// fsyncs (group commit). An append is committed at once with whatever is
// queued by then (under load, what queued during the previous commit);
// delivery results alone wait up to Options.ResultDelay for company. Only
// after the commit does it report the position through Options.OnDurable,
// so the source may acknowledge it (design rule 1), and tell the endpoints'
// readers (Subscription.Notify). Positions already stored are skipped, so a
// source that resends after a restart duplicates nothing and changes
// nothing: an event is sent only once it is durable, and always with the
// body stored, even if the mapper maps its transaction again differently.
//
// Memory is bounded in bytes (payloads.go): the appends waiting for the
// committer (Options.MaxQueuedBytes), the payloads of a page of Pending
// (PendingQuery.MaxBytes); large payloads are stored in chunks, so a
// commit's pages follow what it changes, and the file's mapped pages that
// reads and commits touch are dropped from the process as they go.
//
// Fan-out happens when an event is stored: it gets a pending entry for every
// registered endpoint whose Subscription wants it. An event's body is
// deleted once no endpoint needs it any more (delivered, its dead letter
// dropped, or its endpoint forgotten) and the delivery log no longer
// points at it, so the file stays bounded by the queues and the log's
// retention.
//
// The delivery log (log.go, docs/delivery-log.md) records every attempt
// in the commit of its result, with four indexes; a pruner goroutine
// deletes entries past Options.Log's retention or size in small steps,
// and the events only the log kept with them. Log, Event and Events read
// it; Resend queues stored events again for one endpoint.
//
// An endpoint is never dropped because the configuration stopped naming
// it: SetSubscriptions orphans it (its queue, dead letters and state are
// kept, nothing new is queued for it) until it is named again or Forget
// drops it.
//
// The package does no HTTP: package sender is told after each commit
// (Subscription.Notify), reads pending deliveries (Pending) and records
// outcomes (Record), which ride along in the next group commit. The
// operator functions (dead letters, replay, queue depth, enable/disable,
// forget) are for the CLI and the admin API.
//
// A damaged file is an error, never a crash: Open walks the file's
// structure, bounds-checked, before bbolt maps it (a file cut short, a
// damaged page or another kind of file is a DamageError naming the file
// and the way back), and reads and writes that meet damage later return a
// DamageError and stop intake (damage.go, filecheck.go). Check reads the
// whole file (`deskhook store check`), Compact rewrites it with only what
// it holds, Backup streams a consistent copy while the committer goes on.
//
// Layout of the file:
//
//	meta      "version" → 3 (1 and 2: before the delivery log; 2 held chunked payloads),
//	          "position" → stored position (8 bytes BE),
//	          "source" → JSON SourceMark, "resume" → the source's resume token
//	          for the stored position, "gaps" → bucket of accepted gaps (gaps.go)
//	events    key → event record          key = pos (8 bytes BE) | index (4 bytes BE)
//	payloads  key | chunk (4 bytes BE) → 64 KiB of a payload over 64 KiB (its record holds its length)
//	refs      key → endpoints still needing the event, only where that is ≥ 2
//	endpoints name → bucket { "state" → JSON EndpointState,
//	                           pending { key → delivery record },
//	                           dead    { key → delivery record } }
//	eventidx  ticket { ticket · key }, commit { commit time · key } (eventidx.go)
//	log       entries { at · seq → entry }, ticket, event, endpoint, type
//	          { field · at · seq } (log.go); meta "logstat" → count, bytes
package outbox

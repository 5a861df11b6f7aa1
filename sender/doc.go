// Package sender delivers the outbox's per-endpoint queues over HTTP.
//
// It owns the endpoints' configuration (name, URL, events, format,
// secrets, headers, timeout, concurrency, retry schedule, filters, CA
// file) and their identity (an unnamed endpoint is named after its URL,
// NameFromURL, never after its place in the list), one dispatcher and
// max_in_flight workers per endpoint, the requests (body rendered by
// mapping.Render, Standard Webhooks headers and signatures; refused or
// reset connections retried at once within the attempt), the retry
// schedule with jitter, Retry-After, 410 Gone, dead letters, the log lines
// an operator acts on (first failure, summaries, recovery: failing.go),
// and the delivery metrics.
//
// The store is reached through one interface, Store, which *outbox.Outbox
// implements. The store tells each endpoint after every commit how far it
// now goes; the endpoint's dispatcher then reads its queue from the store
// into a bounded window (Options.Window entries, window_bytes of payloads;
// its requests hold at most render_bytes: memory.go). Everything sent is
// read from the store, so it is durable before it is sent: after a crash
// an event goes out again with the same id and the same body.
//
// Each endpoint is independent: its own queue, goroutines and connection
// pool, so a slow or dead endpoint never slows another. Delivery is per
// ticket in order: only a ticket's oldest pending event is ever in flight,
// and while it waits for a retry the ticket's later events wait too, while
// other tickets go on. Outcomes are recorded in the store (batched into its
// group commits), so the retry schedule survives restarts; the outbox, not
// the sender, acknowledges the source, so deliveries never hold back the
// replication slot.
package sender

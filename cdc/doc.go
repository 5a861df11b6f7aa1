// Package cdc owns everything PostgreSQL in deskhook's change stream.
//
// It sets up, checks and tears down what logical replication needs (the
// publication over the helpdesk tables, the pgoutput slot, REPLICA IDENTITY
// FULL on tickets: Setup, Check, Teardown, SlotInfo; Verify compares the
// live schema with what package mapping declares it reads, mapping.Needs),
// and it tails the slot (Reader): pgoutput protocol 1 decoded with a
// relation cache that follows
// schema changes, values decoded by type with their text form kept,
// committed transactions handed over as source-neutral change.Batch values
// (large ones in bounded chunks; several at once to a BatchHandler, with
// the memory they hold bounded by queue_bytes), keepalives and standby
// status answered
// whatever the consumer is doing, acknowledgements turned into the slot's
// confirmed position, and reconnects with backoff after connection loss or
// a server restart. cdc.Lookup, the by-primary-key row reader package
// mapping uses for rows it has never seen (rows by id, and each ticket's
// thread facts in one statement for many tickets), lives here too.
//
// The durability rule: the slot is confirmed only up to what the consumer
// acknowledged with Reader.Ack (or, when nothing is pending, up to the
// server's WAL end), so a crash anywhere hands over again what was not
// acknowledged, and never what was.
package cdc

// Package mapping turns committed row changes (package change) into Faveo
// webhook events, following the contract in docs/faveo-webhooks.md.
//
// It owns:
//   - the Mapper: triggers, the eight events and their payload trees, and the
//     state of related rows (users, statuses, status types, departments,
//     teams, tickets, first threads, thread counts; a collaborator or
//     attachment change makes its ticket's counts be read again) that the
//     change stream keeps current, kept compact (rows as pre-rendered
//     values) and bounded by an LRU in entries and in honestly counted
//     bytes; rows it never saw
//     are read once from a Source (declared here, implemented for
//     PostgreSQL by cdc.Lookup, for MySQL/MariaDB by binlog.Lookup), for
//     several transactions at once when the caller prefetches
//     (Mapper.Prefetch);
//   - Faveo's rules for what the stream cannot show (thread counts, first
//     thread, collaborator and attachment counts: facts.go), written as
//     source-neutral Aggregates that a Source answers in one statement
//     (aggregate.go builds it for a SQL dialect), so the readers hold no
//     Faveo SQL;
//   - the payloads' canonical JSON (keys in Faveo's order, scalars strings as
//     MySQL hands them to Laravel, nulls kept);
//   - the renderers that turn canonical JSON into wire bodies (faveo-form,
//     json);
//   - encrypted_id, Laravel's Crypt::encryptString under the APP_KEY;
//   - Needs: what it reads of each table under source.tables (columns and
//     their type families), which the source checks the live schema
//     against; a row whose table lacks one of those columns is skipped and
//     counted as a bad row, never mapped into another event.
//
// Mapping is deterministic: the same transaction and the same prior state
// give the same events, byte for byte, with the same ids.
package mapping

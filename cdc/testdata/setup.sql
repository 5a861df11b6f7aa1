-- deskhook setup, to run by hand: as a superuser (or as the owner of the tables with CREATE on
-- the database, CREATEROLE and REPLICATION), connected to database "helpdesk":
--
--   psql -v ON_ERROR_STOP=1 -v password='...' -d helpdesk -f deskhook-setup.sql
--
-- deskhook itself then runs as role "deskhook", which needs nothing more than what this grants.
-- Leave out -v password=... for a role that logs in without one (peer or certificate).

BEGIN;

-- The role deskhook runs as (source.dsn's user): it streams the slot and reads the tables.
\if :{?password}
CREATE ROLE "deskhook" LOGIN REPLICATION PASSWORD :'password';
\else
CREATE ROLE "deskhook" LOGIN REPLICATION;
\endif
GRANT CONNECT ON DATABASE "helpdesk" TO "deskhook";
GRANT USAGE ON SCHEMA "public" TO "deskhook";
GRANT SELECT ON "public"."tickets", "public"."ticket_thread", "public"."users", "public"."ticket_status", "public"."ticket_status_type", "public"."department", "public"."teams", "public"."ticket_collaborator", "public"."ticket_attachment" TO "deskhook";

-- The publication over the tables deskhook follows. The comment marks it as setup's: teardown
-- drops it (and leaves the replica identity below as it is).
CREATE PUBLICATION "deskhook" FOR TABLE "public"."tickets", "public"."ticket_thread", "public"."users", "public"."ticket_status", "public"."ticket_status_type", "public"."department", "public"."teams", "public"."ticket_collaborator", "public"."ticket_attachment";
COMMENT ON PUBLICATION "deskhook" IS 'deskhook setup {}';

-- Updates of tickets carry the old row, so deskhook tells which fields changed.
ALTER TABLE "public"."tickets" REPLICA IDENTITY FULL;

COMMIT;

-- The replication slot, after the publication (a slot older than its publication cannot decode
-- what was committed in between) and outside the transaction (PostgreSQL creates a logical slot
-- only in a transaction that has written nothing).
SELECT pg_create_logical_replication_slot('deskhook_1', 'pgoutput');

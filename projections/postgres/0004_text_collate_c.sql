-- Every text column of the views compares byte by byte (COLLATE "C"), as SQLite's do, so
-- both stores order ids, codes and ISO timestamps the same way whatever the database's
-- default collation. It is also what made the primary keys cheap: under a libc collation
-- (even C.UTF-8) PostgreSQL copies both strings and calls strcoll for every comparison, about
-- half the server's time in a COPY of audit rows. By hand, 222,923 real audit rows: 1.26 s
-- into the table with its text key, 0.64 s with this collation, 0.34 s with no key at all.
-- Changing a text column's collation does not rewrite the table; its indexes are rebuilt.
ALTER TABLE access_log
  ALTER COLUMN at TYPE TEXT COLLATE "C",
  ALTER COLUMN actor TYPE TEXT COLLATE "C",
  ALTER COLUMN stream TYPE TEXT COLLATE "C",
  ALTER COLUMN command TYPE TEXT COLLATE "C";
ALTER TABLE audit_events
  ALTER COLUMN event_id TYPE TEXT COLLATE "C",
  ALTER COLUMN stream TYPE TEXT COLLATE "C",
  ALTER COLUMN event_type TYPE TEXT COLLATE "C",
  ALTER COLUMN occurred_at TYPE TEXT COLLATE "C",
  ALTER COLUMN recorded_at TYPE TEXT COLLATE "C",
  ALTER COLUMN actor TYPE TEXT COLLATE "C",
  ALTER COLUMN hash TYPE TEXT COLLATE "C",
  ALTER COLUMN prev_hash TYPE TEXT COLLATE "C";
ALTER TABLE cases
  ALTER COLUMN subject TYPE TEXT COLLATE "C",
  ALTER COLUMN kind TYPE TEXT COLLATE "C",
  ALTER COLUMN stage TYPE TEXT COLLATE "C",
  ALTER COLUMN key_groups TYPE TEXT COLLATE "C",
  ALTER COLUMN caseworker TYPE TEXT COLLATE "C",
  ALTER COLUMN region TYPE TEXT COLLATE "C",
  ALTER COLUMN opened_at TYPE TEXT COLLATE "C",
  ALTER COLUMN closed_at TYPE TEXT COLLATE "C",
  ALTER COLUMN last_activity_at TYPE TEXT COLLATE "C";
ALTER TABLE chains
  ALTER COLUMN stream TYPE TEXT COLLATE "C",
  ALTER COLUMN hash TYPE TEXT COLLATE "C";
ALTER TABLE checkpoints
  ALTER COLUMN digest TYPE TEXT COLLATE "C";
ALTER TABLE clocks
  ALTER COLUMN clock_id TYPE TEXT COLLATE "C",
  ALTER COLUMN subject TYPE TEXT COLLATE "C",
  ALTER COLUMN policy TYPE TEXT COLLATE "C",
  ALTER COLUMN step TYPE TEXT COLLATE "C",
  ALTER COLUMN clock_key TYPE TEXT COLLATE "C",
  ALTER COLUMN region TYPE TEXT COLLATE "C",
  ALTER COLUMN caseworker TYPE TEXT COLLATE "C",
  ALTER COLUMN started_at TYPE TEXT COLLATE "C",
  ALTER COLUMN due_at TYPE TEXT COLLATE "C",
  ALTER COLUMN met_at TYPE TEXT COLLATE "C",
  ALTER COLUMN cancelled_at TYPE TEXT COLLATE "C",
  ALTER COLUMN start_event TYPE TEXT COLLATE "C",
  ALTER COLUMN end_event TYPE TEXT COLLATE "C",
  ALTER COLUMN pauses TYPE TEXT COLLATE "C";
ALTER TABLE dead_letters
  ALTER COLUMN reason TYPE TEXT COLLATE "C";
ALTER TABLE digests
  ALTER COLUMN digest TYPE TEXT COLLATE "C";
ALTER TABLE findings
  ALTER COLUMN event_id TYPE TEXT COLLATE "C",
  ALTER COLUMN kind TYPE TEXT COLLATE "C",
  ALTER COLUMN subject TYPE TEXT COLLATE "C",
  ALTER COLUMN detail TYPE TEXT COLLATE "C";
ALTER TABLE household_clearings
  ALTER COLUMN event_id TYPE TEXT COLLATE "C",
  ALTER COLUMN household TYPE TEXT COLLATE "C",
  ALTER COLUMN member TYPE TEXT COLLATE "C",
  ALTER COLUMN occurred_at TYPE TEXT COLLATE "C";
ALTER TABLE placements
  ALTER COLUMN event_id TYPE TEXT COLLATE "C",
  ALTER COLUMN subject TYPE TEXT COLLATE "C",
  ALTER COLUMN kind TYPE TEXT COLLATE "C",
  ALTER COLUMN occurred_at TYPE TEXT COLLATE "C";

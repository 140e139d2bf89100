-- The facts the household findings compare with a clearing: who was a member of a household
-- when (one row per member an identification lists, per link and per unlink), and when a
-- person's job ended. Read at report time (`audit::findings`): the household and its
-- members are different streams, on different partitions, so no fold sees both.
CREATE TABLE household_members (gen INTEGER NOT NULL, event_id TEXT NOT NULL, household TEXT NOT NULL, person TEXT NOT NULL, membership TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id, person));
CREATE TABLE job_losses (gen INTEGER NOT NULL, event_id TEXT NOT NULL, subject TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id));

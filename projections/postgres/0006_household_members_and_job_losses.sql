-- The facts the household findings compare with a clearing: who was a member of a household
-- when (one row per member an identification lists, per link and per unlink), and when a
-- person's job ended. Read at report time (`audit::findings`): the household and its
-- members are different streams, on different partitions, so no fold sees both.
CREATE TABLE household_members (gen BIGINT NOT NULL, event_id TEXT COLLATE "C" NOT NULL, household TEXT COLLATE "C" NOT NULL, person TEXT COLLATE "C" NOT NULL, membership TEXT COLLATE "C" NOT NULL, occurred_at TEXT COLLATE "C" NOT NULL, PRIMARY KEY (gen, event_id, person));
CREATE TABLE job_losses (gen BIGINT NOT NULL, event_id TEXT COLLATE "C" NOT NULL, subject TEXT COLLATE "C" NOT NULL, occurred_at TEXT COLLATE "C" NOT NULL, PRIMARY KEY (gen, event_id));

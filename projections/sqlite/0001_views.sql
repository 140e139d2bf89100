-- The read models of assist (SQLite). Every view table carries `gen`: a rebuild fills
-- generation N+1 while queries read the active one, then the active generation flips.
CREATE TABLE view_state (id INTEGER PRIMARY KEY, active_gen INTEGER NOT NULL, building_gen INTEGER);
INSERT INTO view_state (id, active_gen, building_gen) VALUES (1, 1, NULL);

CREATE TABLE checkpoints (gen INTEGER NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (gen, part));
CREATE TABLE digests (gen INTEGER NOT NULL, part INTEGER NOT NULL, next_offset INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (gen, part, next_offset));
CREATE TABLE dead_letters (gen INTEGER NOT NULL, part INTEGER NOT NULL, log_offset INTEGER NOT NULL, raw BLOB NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (gen, part, log_offset));

CREATE TABLE audit_events (gen INTEGER NOT NULL, event_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, part INTEGER NOT NULL, log_offset INTEGER NOT NULL, event_type TEXT NOT NULL, occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, record_delay_ms INTEGER NOT NULL, hash TEXT NOT NULL, prev_hash TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE INDEX audit_by_stream ON audit_events (gen, stream, seq);
CREATE TABLE chains (gen INTEGER NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (gen, stream));

CREATE TABLE cases (gen INTEGER NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, is_open INTEGER NOT NULL, stage TEXT NOT NULL, key_groups TEXT NOT NULL, caseworker TEXT NOT NULL, region TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT, last_activity_at TEXT NOT NULL, PRIMARY KEY (gen, subject));
CREATE TABLE case_changes (gen INTEGER NOT NULL, subject TEXT NOT NULL, seq INTEGER NOT NULL, occurred_at TEXT NOT NULL, kind TEXT NOT NULL, is_open INTEGER NOT NULL, stage TEXT NOT NULL, key_groups TEXT NOT NULL, caseworker TEXT NOT NULL, region TEXT NOT NULL, opened_at TEXT NOT NULL, PRIMARY KEY (gen, subject, seq));

CREATE TABLE clocks (gen INTEGER NOT NULL, clock_id TEXT NOT NULL, subject TEXT NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, clock_key TEXT NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, started_at TEXT NOT NULL, due_at TEXT NOT NULL, met_count INTEGER NOT NULL, needed INTEGER NOT NULL, met_at TEXT, cancelled_at TEXT, start_event TEXT NOT NULL, end_event TEXT, pauses TEXT NOT NULL, is_open INTEGER NOT NULL, PRIMARY KEY (gen, clock_id));
CREATE INDEX clocks_by_subject ON clocks (gen, subject, is_open);

CREATE TABLE placements (gen INTEGER NOT NULL, event_id TEXT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE TABLE household_clearings (gen INTEGER NOT NULL, event_id TEXT NOT NULL, household TEXT NOT NULL, member TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE TABLE findings (gen INTEGER NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (gen, event_id, kind));

CREATE TABLE access_log (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, stream TEXT NOT NULL, command TEXT NOT NULL);

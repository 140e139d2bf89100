-- The read models of assist (PostgreSQL). Every view table carries `gen`: a rebuild fills
-- generation N+1 while queries read the active one, then the active generation flips.
CREATE TABLE view_state (id BIGINT PRIMARY KEY, active_gen BIGINT NOT NULL, building_gen BIGINT);
INSERT INTO view_state (id, active_gen, building_gen) VALUES (1, 1, NULL);

CREATE TABLE checkpoints (gen BIGINT NOT NULL, part BIGINT NOT NULL, next_offset BIGINT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (gen, part));
CREATE TABLE digests (gen BIGINT NOT NULL, part BIGINT NOT NULL, next_offset BIGINT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (gen, part, next_offset));
CREATE TABLE dead_letters (gen BIGINT NOT NULL, part BIGINT NOT NULL, log_offset BIGINT NOT NULL, raw BYTEA NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (gen, part, log_offset));

CREATE TABLE audit_events (gen BIGINT NOT NULL, event_id TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, part BIGINT NOT NULL, log_offset BIGINT NOT NULL, event_type TEXT NOT NULL, occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL, record_delay_ms BIGINT NOT NULL, hash TEXT NOT NULL, prev_hash TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE INDEX audit_by_stream ON audit_events (gen, stream, seq);
CREATE TABLE chains (gen BIGINT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (gen, stream));

CREATE TABLE cases (gen BIGINT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, is_open BIGINT NOT NULL, stage TEXT NOT NULL, key_groups TEXT NOT NULL, caseworker TEXT NOT NULL, region TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT, last_activity_at TEXT NOT NULL, PRIMARY KEY (gen, subject));
CREATE TABLE case_changes (gen BIGINT NOT NULL, subject TEXT NOT NULL, seq BIGINT NOT NULL, occurred_at TEXT NOT NULL, kind TEXT NOT NULL, is_open BIGINT NOT NULL, stage TEXT NOT NULL, key_groups TEXT NOT NULL, caseworker TEXT NOT NULL, region TEXT NOT NULL, opened_at TEXT NOT NULL, PRIMARY KEY (gen, subject, seq));

CREATE TABLE clocks (gen BIGINT NOT NULL, clock_id TEXT NOT NULL, subject TEXT NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, clock_key TEXT NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, started_at TEXT NOT NULL, due_at TEXT NOT NULL, met_count BIGINT NOT NULL, needed BIGINT NOT NULL, met_at TEXT, cancelled_at TEXT, start_event TEXT NOT NULL, end_event TEXT, pauses TEXT NOT NULL, is_open BIGINT NOT NULL, PRIMARY KEY (gen, clock_id));
CREATE INDEX clocks_by_subject ON clocks (gen, subject, is_open);

CREATE TABLE placements (gen BIGINT NOT NULL, event_id TEXT NOT NULL, subject TEXT NOT NULL, kind TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE TABLE household_clearings (gen BIGINT NOT NULL, event_id TEXT NOT NULL, household TEXT NOT NULL, member TEXT NOT NULL, occurred_at TEXT NOT NULL, PRIMARY KEY (gen, event_id));
CREATE TABLE findings (gen BIGINT NOT NULL, event_id TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (gen, event_id, kind));

CREATE TABLE access_log (id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, stream TEXT NOT NULL, command TEXT NOT NULL);

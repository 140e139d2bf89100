-- Notices: the reminders and escalations the SLA timer sends (`assist notify`). They are
-- facts about the world, not part of a view generation: a rebuild keeps them, and a
-- notice's id (derived from its clock and kind) keeps it from being sent twice.
CREATE TABLE notices (notice_id TEXT PRIMARY KEY, clock_id TEXT NOT NULL, subject TEXT NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, kind TEXT NOT NULL, audience TEXT NOT NULL, recipient TEXT NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, deadline TEXT NOT NULL, moment TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX notices_by_recipient ON notices (audience, recipient, moment);
CREATE INDEX notices_by_region ON notices (region, moment);
CREATE INDEX notices_by_clock ON notices (clock_id);
-- One row per notice and channel (webhook, Kafka topic): the outbox. A delivery is retried
-- with backoff until the receiver takes it; the notice id is its idempotency key.
CREATE TABLE notice_deliveries (notice_id TEXT NOT NULL, channel TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TEXT NOT NULL, delivered_at TEXT, last_error TEXT, PRIMARY KEY (notice_id, channel));
CREATE INDEX notice_deliveries_due ON notice_deliveries (delivered_at, next_attempt_at);
-- The timer's index of open clocks by the moment of their next notice: one row per clock
-- that has one coming.
CREATE TABLE notice_schedule (clock_id TEXT PRIMARY KEY, subject TEXT NOT NULL, kind TEXT NOT NULL, fire_at TEXT NOT NULL);
CREATE INDEX notice_schedule_by_subject ON notice_schedule (subject);
CREATE INDEX notice_schedule_by_moment ON notice_schedule (fire_at);
-- Which view generation the schedule was made from, and how far into the log it has
-- followed the subjects whose clocks changed.
CREATE TABLE notice_timer (id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE notice_checkpoints (part INTEGER PRIMARY KEY, next_offset INTEGER NOT NULL);

-- A dead letter keeps its record's bytes only when they hold no personal value in clear
-- (else a redacted form, `redacted` = 1), with a SHA-256 of the bytes and the stream the
-- record was keyed by, so that erasing a person clears what dead letters hold of them.
ALTER TABLE dead_letters ADD COLUMN stream TEXT;
ALTER TABLE dead_letters ADD COLUMN sha256 TEXT;
ALTER TABLE dead_letters ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
CREATE INDEX dead_letters_by_stream ON dead_letters (stream);

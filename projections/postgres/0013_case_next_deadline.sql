-- A case's next deadline, kept with the case so that a caseload is paged in deadline order
-- by the store: the step (`policy/step`) and deadline of its earliest open clock, NULL
-- when none runs. `next_moves` = 1 while one of its clocks is paused (the deadline moves
-- with the time, so it is computed when read), and on rows from before this migration,
-- until their subject's next fact (or a rebuild) writes them again.
ALTER TABLE cases ADD COLUMN next_step TEXT COLLATE "C";
ALTER TABLE cases ADD COLUMN next_due TEXT COLLATE "C";
ALTER TABLE cases ADD COLUMN next_moves BIGINT NOT NULL DEFAULT 1;

-- What the SLA figures need in SQL: when a clock was settled (met or cancelled), its status
-- from then on, and whether its status needs the calendar at query time (it was paused).
-- Rows from before this migration have plain = 0: their status is computed as before, from
-- the whole row, until a rebuild writes them again.
ALTER TABLE clocks ADD COLUMN settled_at TEXT;
ALTER TABLE clocks ADD COLUMN outcome TEXT;
ALTER TABLE clocks ADD COLUMN plain INTEGER NOT NULL DEFAULT 0;

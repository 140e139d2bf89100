-- What the SLA figures need in SQL of a paused clock after its last pause fact
-- (`Clock::after_pauses`): from just after `pauses_end` its deadline is `moved_due` for
-- good or, while `waiting`, it waits on the person until settled. A settled paused clock
-- also has its `outcome` (computed with the generation's calendar). Rows written before
-- this migration have NULL here: they are read one by one, as before.
ALTER TABLE clocks ADD COLUMN pauses_end TEXT COLLATE "C";
ALTER TABLE clocks ADD COLUMN moved_due TEXT COLLATE "C";
ALTER TABLE clocks ADD COLUMN waiting BIGINT NOT NULL DEFAULT 0;

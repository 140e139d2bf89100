-- A generation nobody reads yet (one being rebuilt) is projected with its subjects' rows
-- (cases, open clocks, chain heads) written once per partition, when the partition is
-- caught up, instead of again in every batch. Until then a partition's checkpoint says
-- so: its other rows are past the subjects' rows, and a batch that cannot use the
-- runner's memory first takes the partition back to offset 0.
ALTER TABLE checkpoints ADD COLUMN subjects_deferred BIGINT NOT NULL DEFAULT 0;

-- The runner that last committed a partition's checkpoint, as a token it drew at random
-- (empty after a rewind, or for a row from before this migration). What a runner keeps in
-- memory between its batches is trusted only while the checkpoint row still carries the
-- token it expects (its own once it has committed), checked in the transaction that writes
-- the next batch.
ALTER TABLE checkpoints ADD COLUMN writer TEXT NOT NULL DEFAULT '';

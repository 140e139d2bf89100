-- A store whose views were never built reads generation 0 (empty) and builds generation 1
-- as a rebuild builds one: read by nobody until it is whole, then swapped in. So a live
-- generation is only ever projected batch by batch with its checkpoint, and the fast
-- path that writes a partition's subjects' rows once, at its end, serves only generations
-- nobody reads. A store that has projected anything keeps its generations.
UPDATE view_state SET active_gen = 0, building_gen = 1
 WHERE id = 1 AND active_gen = 1 AND building_gen IS NULL
   AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE gen = 1);
-- The partitions of a generation nobody reads yet that a runner has projected to the log's
-- end at least once: a first build is swapped in when every partition holding records is
-- here and none has its subjects' rows deferred. A partition started over leaves it.
CREATE TABLE partitions_caught_up (gen BIGINT NOT NULL, part BIGINT NOT NULL, PRIMARY KEY (gen, part));

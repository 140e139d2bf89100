-- The SLA counts tables keyed by their primary key alone (WITHOUT ROWID): a summary reads
-- their rows in key order with `n` beside the key, where a rowid table made it look up
-- each row of the key's index in the table (a province's caseworker counts: 62,455 rows,
-- BENCHMARKS.md). The triggers that keep them are dropped first, so that no trigger names
-- a table while it is made again, then made again as they were (migration 0016).

DROP TRIGGER clocks_counted_on_insert;
DROP TRIGGER clocks_uncounted_on_delete;
DROP TRIGGER clocks_uncounted_on_update;
DROP TRIGGER clocks_counted_on_update;
DROP TRIGGER sla_counts_rolled_up_on_insert;
DROP TRIGGER sla_counts_rolled_up_on_update;
DROP TRIGGER sla_counts_rolled_up_on_delete;

CREATE TABLE sla_counts_keyed (gen INTEGER NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (gen, policy, step, region, caseworker, status)) WITHOUT ROWID;
INSERT INTO sla_counts_keyed (gen, policy, step, region, caseworker, status, n) SELECT gen, policy, step, region, caseworker, status, n FROM sla_counts;
DROP TABLE sla_counts;
ALTER TABLE sla_counts_keyed RENAME TO sla_counts;

CREATE TABLE sla_step_counts_keyed (gen INTEGER NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, region TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (gen, policy, step, region, status)) WITHOUT ROWID;
INSERT INTO sla_step_counts_keyed (gen, policy, step, region, status, n) SELECT gen, policy, step, region, status, n FROM sla_step_counts;
DROP TABLE sla_step_counts;
ALTER TABLE sla_step_counts_keyed RENAME TO sla_step_counts;

CREATE TABLE sla_worker_counts_keyed (gen INTEGER NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (gen, region, caseworker, status)) WITHOUT ROWID;
INSERT INTO sla_worker_counts_keyed (gen, region, caseworker, status, n) SELECT gen, region, caseworker, status, n FROM sla_worker_counts;
DROP TABLE sla_worker_counts;
ALTER TABLE sla_worker_counts_keyed RENAME TO sla_worker_counts;

CREATE TRIGGER clocks_counted_on_insert AFTER INSERT ON clocks
BEGIN
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT NEW.gen, NEW.policy, NEW.step, NEW.region, NEW.caseworker,
         CASE WHEN NEW.settled_at IS NOT NULL AND NEW.settled_at <= b.base_at THEN NEW.outcome
              WHEN NEW.due_at < b.base_at THEN 'breached' ELSE 'pending' END, 1
  FROM sla_base b WHERE b.gen = NEW.gen AND NEW.started_at <= b.base_at
    AND (NEW.plain = 1 OR (NEW.outcome IS NOT NULL AND NEW.settled_at <= b.base_at))
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER clocks_uncounted_on_delete AFTER DELETE ON clocks
BEGIN
  UPDATE sla_counts SET n = n - 1
  WHERE (gen, policy, step, region, caseworker, status) = (
    SELECT OLD.gen, OLD.policy, OLD.step, OLD.region, OLD.caseworker,
           CASE WHEN OLD.settled_at IS NOT NULL AND OLD.settled_at <= b.base_at THEN OLD.outcome
                WHEN OLD.due_at < b.base_at THEN 'breached' ELSE 'pending' END
    FROM sla_base b WHERE b.gen = OLD.gen AND OLD.started_at <= b.base_at
      AND (OLD.plain = 1 OR (OLD.outcome IS NOT NULL AND OLD.settled_at <= b.base_at)));
END;

CREATE TRIGGER clocks_uncounted_on_update AFTER UPDATE ON clocks
BEGIN
  UPDATE sla_counts SET n = n - 1
  WHERE (gen, policy, step, region, caseworker, status) = (
    SELECT OLD.gen, OLD.policy, OLD.step, OLD.region, OLD.caseworker,
           CASE WHEN OLD.settled_at IS NOT NULL AND OLD.settled_at <= b.base_at THEN OLD.outcome
                WHEN OLD.due_at < b.base_at THEN 'breached' ELSE 'pending' END
    FROM sla_base b WHERE b.gen = OLD.gen AND OLD.started_at <= b.base_at
      AND (OLD.plain = 1 OR (OLD.outcome IS NOT NULL AND OLD.settled_at <= b.base_at)));
END;

CREATE TRIGGER clocks_counted_on_update AFTER UPDATE ON clocks
BEGIN
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT NEW.gen, NEW.policy, NEW.step, NEW.region, NEW.caseworker,
         CASE WHEN NEW.settled_at IS NOT NULL AND NEW.settled_at <= b.base_at THEN NEW.outcome
              WHEN NEW.due_at < b.base_at THEN 'breached' ELSE 'pending' END, 1
  FROM sla_base b WHERE b.gen = NEW.gen AND NEW.started_at <= b.base_at
    AND (NEW.plain = 1 OR (NEW.outcome IS NOT NULL AND NEW.settled_at <= b.base_at))
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER sla_counts_rolled_up_on_insert AFTER INSERT ON sla_counts
BEGIN
  INSERT INTO sla_step_counts (gen, policy, step, region, status, n)
  VALUES (NEW.gen, NEW.policy, NEW.step, NEW.region, NEW.status, NEW.n)
  ON CONFLICT (gen, policy, step, region, status) DO UPDATE SET n = n + NEW.n;
  INSERT INTO sla_worker_counts (gen, region, caseworker, status, n)
  VALUES (NEW.gen, NEW.region, NEW.caseworker, NEW.status, NEW.n)
  ON CONFLICT (gen, region, caseworker, status) DO UPDATE SET n = n + NEW.n;
END;

CREATE TRIGGER sla_counts_rolled_up_on_update AFTER UPDATE ON sla_counts WHEN NEW.n <> OLD.n
BEGIN
  UPDATE sla_step_counts SET n = n + NEW.n - OLD.n
  WHERE gen = NEW.gen AND policy = NEW.policy AND step = NEW.step AND region = NEW.region AND status = NEW.status;
  UPDATE sla_worker_counts SET n = n + NEW.n - OLD.n
  WHERE gen = NEW.gen AND region = NEW.region AND caseworker = NEW.caseworker AND status = NEW.status;
END;

CREATE TRIGGER sla_counts_rolled_up_on_delete AFTER DELETE ON sla_counts
BEGIN
  UPDATE sla_step_counts SET n = n - OLD.n
  WHERE gen = OLD.gen AND policy = OLD.policy AND step = OLD.step AND region = OLD.region AND status = OLD.status;
  UPDATE sla_worker_counts SET n = n - OLD.n
  WHERE gen = OLD.gen AND region = OLD.region AND caseworker = OLD.caseworker AND status = OLD.status;
END;

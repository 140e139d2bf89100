-- Counted SLA figures. `sla_base` holds, per generation, a moment W (the latest clock start
-- when the base was made); `sla_counts` the number of clocks never paused (`plain = 1`)
-- started by W per policy step, region, caseworker and their status at W, where every clock
-- not settled by W and not past its deadline then is `pending`. The triggers keep the
-- counts true as clock rows are written, replaced and deleted; a generation without a base
-- row (one being rebuilt) counts nothing until its base is made in one pass. A summary at
-- any time T reads the counts and corrects them by the clocks started, due or settled
-- between W and T (see `sla::report`).
CREATE TABLE sla_base (gen INTEGER PRIMARY KEY, base_at TEXT NOT NULL);
CREATE TABLE sla_counts (gen INTEGER NOT NULL, policy TEXT NOT NULL, step TEXT NOT NULL, region TEXT NOT NULL, caseworker TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (gen, policy, step, region, caseworker, status));

CREATE TRIGGER clocks_counted_on_insert AFTER INSERT ON clocks WHEN NEW.plain = 1
BEGIN
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT NEW.gen, NEW.policy, NEW.step, NEW.region, NEW.caseworker,
         CASE WHEN NEW.settled_at IS NOT NULL AND NEW.settled_at <= b.base_at THEN NEW.outcome
              WHEN NEW.due_at < b.base_at THEN 'breached' ELSE 'pending' END, 1
  FROM sla_base b WHERE b.gen = NEW.gen AND NEW.started_at <= b.base_at
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER clocks_uncounted_on_delete AFTER DELETE ON clocks WHEN OLD.plain = 1
BEGIN
  UPDATE sla_counts SET n = n - 1
  WHERE (gen, policy, step, region, caseworker, status) = (
    SELECT OLD.gen, OLD.policy, OLD.step, OLD.region, OLD.caseworker,
           CASE WHEN OLD.settled_at IS NOT NULL AND OLD.settled_at <= b.base_at THEN OLD.outcome
                WHEN OLD.due_at < b.base_at THEN 'breached' ELSE 'pending' END
    FROM sla_base b WHERE b.gen = OLD.gen AND OLD.started_at <= b.base_at);
END;

CREATE TRIGGER clocks_uncounted_on_update AFTER UPDATE ON clocks WHEN OLD.plain = 1
BEGIN
  UPDATE sla_counts SET n = n - 1
  WHERE (gen, policy, step, region, caseworker, status) = (
    SELECT OLD.gen, OLD.policy, OLD.step, OLD.region, OLD.caseworker,
           CASE WHEN OLD.settled_at IS NOT NULL AND OLD.settled_at <= b.base_at THEN OLD.outcome
                WHEN OLD.due_at < b.base_at THEN 'breached' ELSE 'pending' END
    FROM sla_base b WHERE b.gen = OLD.gen AND OLD.started_at <= b.base_at);
END;

CREATE TRIGGER clocks_counted_on_update AFTER UPDATE ON clocks WHEN NEW.plain = 1
BEGIN
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT NEW.gen, NEW.policy, NEW.step, NEW.region, NEW.caseworker,
         CASE WHEN NEW.settled_at IS NOT NULL AND NEW.settled_at <= b.base_at THEN NEW.outcome
              WHEN NEW.due_at < b.base_at THEN 'breached' ELSE 'pending' END, 1
  FROM sla_base b WHERE b.gen = NEW.gen AND NEW.started_at <= b.base_at
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = n + 1;
END;

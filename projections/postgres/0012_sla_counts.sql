-- Counted SLA figures. `sla_base` holds, per generation, a moment W (the latest clock start
-- when the base was made); `sla_counts` the number of clocks never paused (`plain = 1`)
-- started by W per policy step, region, caseworker and their status at W, where every clock
-- not settled by W and not past its deadline then is `pending`. The triggers (one per
-- statement, over its transition tables) keep the counts true as clock rows are written,
-- replaced and deleted; a generation without a base row (one being rebuilt) counts nothing
-- until its base is made in one pass. A summary at any time T reads the counts and
-- corrects them by the clocks started, due or settled between W and T (see `sla::report`).
-- A statement that changes counts first takes one transaction-scoped advisory lock (key
-- 4242012, shared with `case_counts`): batches of different partitions, committed by
-- different processes, would otherwise lock the shared count rows in different orders and
-- deadlock; with it they take their turns.
CREATE TABLE sla_base (gen BIGINT PRIMARY KEY, base_at TEXT COLLATE "C" NOT NULL);
CREATE TABLE sla_counts (gen BIGINT NOT NULL, policy TEXT COLLATE "C" NOT NULL, step TEXT COLLATE "C" NOT NULL, region TEXT COLLATE "C" NOT NULL, caseworker TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (gen, policy, step, region, caseworker, status));

CREATE FUNCTION clocks_counted_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
         CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
              WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END, COUNT(*)
  FROM new_rows c JOIN sla_base b ON b.gen = c.gen
  WHERE c.plain = 1 AND c.started_at <= b.base_at
  GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION clocks_uncounted_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
         CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
              WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END, -COUNT(*)
  FROM old_rows c JOIN sla_base b ON b.gen = c.gen
  WHERE c.plain = 1 AND c.started_at <= b.base_at
  GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION clocks_recounted_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows c JOIN sla_base b ON b.gen = c.gen) OR EXISTS (SELECT 1 FROM new_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT gen, policy, step, region, caseworker, status, SUM(n) FROM (
    SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
           CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
                WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END AS status, -1 AS n
    FROM old_rows c JOIN sla_base b ON b.gen = c.gen
    WHERE c.plain = 1 AND c.started_at <= b.base_at
    UNION ALL
    SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
           CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
                WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END AS status, 1 AS n
    FROM new_rows c JOIN sla_base b ON b.gen = c.gen
    WHERE c.plain = 1 AND c.started_at <= b.base_at
  ) changed
  GROUP BY 1, 2, 3, 4, 5, 6
  HAVING SUM(n) <> 0
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER clocks_counted_on_insert AFTER INSERT ON clocks
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION clocks_counted_on_insert();
CREATE TRIGGER clocks_uncounted_on_delete AFTER DELETE ON clocks
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION clocks_uncounted_on_delete();
CREATE TRIGGER clocks_recounted_on_update AFTER UPDATE ON clocks
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION clocks_recounted_on_update();

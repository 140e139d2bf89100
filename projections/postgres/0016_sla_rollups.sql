-- SLA counts that a summary reads whatever the size of the province. (1) A paused clock
-- settled by the base W is counted in `sla_counts` too, by its outcome (it can change no
-- more); before, every paused clock was counted at each summary, and settled ones pile up
-- with the log. (2) Two roll-ups of `sla_counts`, kept by its own row trigger: per step and
-- region without the caseworker (the step and region lines: a few hundred rows for a
-- province), and per region and caseworker without the step (the caseworker lines: a few
-- rows per caseworker). A summary reads `sla_counts` itself only under a filter the
-- roll-ups cannot answer (a caseworker's steps, a step's caseworkers). The roll-ups change
-- only with `sla_counts`, under the same advisory lock.
-- The bases made before this migration counted otherwise: they are dropped, and the next
-- catch-up makes them again.
DELETE FROM sla_counts;
DELETE FROM sla_base;

CREATE TABLE sla_step_counts (gen BIGINT NOT NULL, policy TEXT COLLATE "C" NOT NULL, step TEXT COLLATE "C" NOT NULL, region TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (gen, policy, step, region, status));
CREATE TABLE sla_worker_counts (gen BIGINT NOT NULL, region TEXT COLLATE "C" NOT NULL, caseworker TEXT COLLATE "C" NOT NULL, status TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (gen, region, caseworker, status));

CREATE OR REPLACE FUNCTION clocks_counted_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
         CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
              WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END, COUNT(*)
  FROM new_rows c JOIN sla_base b ON b.gen = c.gen
  WHERE (c.plain = 1 OR (c.outcome IS NOT NULL AND c.settled_at <= b.base_at)) AND c.started_at <= b.base_at
  GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION clocks_uncounted_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO sla_counts (gen, policy, step, region, caseworker, status, n)
  SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
         CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
              WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END, -COUNT(*)
  FROM old_rows c JOIN sla_base b ON b.gen = c.gen
  WHERE (c.plain = 1 OR (c.outcome IS NOT NULL AND c.settled_at <= b.base_at)) AND c.started_at <= b.base_at
  GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION clocks_recounted_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
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
    WHERE (c.plain = 1 OR (c.outcome IS NOT NULL AND c.settled_at <= b.base_at)) AND c.started_at <= b.base_at
    UNION ALL
    SELECT c.gen, c.policy, c.step, c.region, c.caseworker,
           CASE WHEN c.settled_at IS NOT NULL AND c.settled_at <= b.base_at THEN c.outcome
                WHEN c.due_at < b.base_at THEN 'breached' ELSE 'pending' END AS status, 1 AS n
    FROM new_rows c JOIN sla_base b ON b.gen = c.gen
    WHERE (c.plain = 1 OR (c.outcome IS NOT NULL AND c.settled_at <= b.base_at)) AND c.started_at <= b.base_at
  ) changed
  GROUP BY 1, 2, 3, 4, 5, 6
  HAVING SUM(n) <> 0
  ON CONFLICT (gen, policy, step, region, caseworker, status) DO UPDATE SET n = sla_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

-- The roll-ups follow every change of a count (an upsert's update fires the update
-- trigger; a key never changes).
CREATE FUNCTION sla_counts_rolled_up() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  k sla_counts;
  delta BIGINT;
BEGIN
  IF TG_OP = 'DELETE' THEN
    k := OLD; delta := -OLD.n;
  ELSIF TG_OP = 'UPDATE' THEN
    k := NEW; delta := NEW.n - OLD.n;
  ELSE
    k := NEW; delta := NEW.n;
  END IF;
  IF delta = 0 THEN
    RETURN NULL;
  END IF;
  INSERT INTO sla_step_counts (gen, policy, step, region, status, n)
  VALUES (k.gen, k.policy, k.step, k.region, k.status, delta)
  ON CONFLICT (gen, policy, step, region, status) DO UPDATE SET n = sla_step_counts.n + EXCLUDED.n;
  INSERT INTO sla_worker_counts (gen, region, caseworker, status, n)
  VALUES (k.gen, k.region, k.caseworker, k.status, delta)
  ON CONFLICT (gen, region, caseworker, status) DO UPDATE SET n = sla_worker_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER sla_counts_rolled_up AFTER INSERT OR UPDATE OR DELETE ON sla_counts
  FOR EACH ROW EXECUTE FUNCTION sla_counts_rolled_up();

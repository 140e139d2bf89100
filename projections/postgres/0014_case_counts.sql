-- Counted caseloads: the number of cases per region, stage, open or closed and key groups,
-- so that a caseload page's counts read a few rows whatever the number of cases. Kept by
-- triggers on `cases` (one per statement, over its transition tables) for a generation
-- that has its `sla_base` row (made in one pass when the generation is caught up, with
-- these counts); a caseworker's counts are read from the cases themselves (few). The
-- triggers take the advisory lock of `sla_counts` (0012) first, for the same reason.
CREATE TABLE case_counts (gen BIGINT NOT NULL, region TEXT COLLATE "C" NOT NULL, stage TEXT COLLATE "C" NOT NULL, is_open BIGINT NOT NULL, key_groups TEXT COLLATE "C" NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (gen, region, stage, is_open, key_groups));

CREATE FUNCTION cases_counted_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM new_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n)
  SELECT c.gen, c.region, c.stage, c.is_open, c.key_groups, COUNT(*)
  FROM new_rows c JOIN sla_base b ON b.gen = c.gen
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT (gen, region, stage, is_open, key_groups) DO UPDATE SET n = case_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION cases_uncounted_on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n)
  SELECT c.gen, c.region, c.stage, c.is_open, c.key_groups, -COUNT(*)
  FROM old_rows c JOIN sla_base b ON b.gen = c.gen
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT (gen, region, stage, is_open, key_groups) DO UPDATE SET n = case_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE FUNCTION cases_recounted_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM old_rows c JOIN sla_base b ON b.gen = c.gen) OR EXISTS (SELECT 1 FROM new_rows c JOIN sla_base b ON b.gen = c.gen) THEN
    PERFORM pg_advisory_xact_lock(4242012);
  END IF;
  INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n)
  SELECT gen, region, stage, is_open, key_groups, SUM(n) FROM (
    SELECT c.gen, c.region, c.stage, c.is_open, c.key_groups, -1 AS n
    FROM old_rows c JOIN sla_base b ON b.gen = c.gen
    UNION ALL
    SELECT c.gen, c.region, c.stage, c.is_open, c.key_groups, 1 AS n
    FROM new_rows c JOIN sla_base b ON b.gen = c.gen
  ) changed
  GROUP BY 1, 2, 3, 4, 5
  HAVING SUM(n) <> 0
  ON CONFLICT (gen, region, stage, is_open, key_groups) DO UPDATE SET n = case_counts.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER cases_counted_on_insert AFTER INSERT ON cases
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cases_counted_on_insert();
CREATE TRIGGER cases_uncounted_on_delete AFTER DELETE ON cases
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cases_uncounted_on_delete();
CREATE TRIGGER cases_recounted_on_update AFTER UPDATE ON cases
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cases_recounted_on_update();

-- Counted caseloads: the number of cases per region, stage, open or closed and key groups,
-- so that a caseload page's counts read a few rows whatever the number of cases. Kept by
-- triggers on `cases` for a generation that has its `sla_base` row (made in one pass
-- when the generation is caught up, with these counts); a caseworker's counts are read
-- from the cases themselves (few).
CREATE TABLE case_counts (gen INTEGER NOT NULL, region TEXT NOT NULL, stage TEXT NOT NULL, is_open INTEGER NOT NULL, key_groups TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (gen, region, stage, is_open, key_groups));

CREATE TRIGGER cases_counted_on_insert AFTER INSERT ON cases
WHEN EXISTS (SELECT 1 FROM sla_base WHERE gen = NEW.gen)
BEGIN
  INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n)
  VALUES (NEW.gen, NEW.region, NEW.stage, NEW.is_open, NEW.key_groups, 1)
  ON CONFLICT (gen, region, stage, is_open, key_groups) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER cases_uncounted_on_delete AFTER DELETE ON cases
WHEN EXISTS (SELECT 1 FROM sla_base WHERE gen = OLD.gen)
BEGIN
  UPDATE case_counts SET n = n - 1
  WHERE gen = OLD.gen AND region = OLD.region AND stage = OLD.stage AND is_open = OLD.is_open AND key_groups = OLD.key_groups;
END;

CREATE TRIGGER cases_recounted_on_update AFTER UPDATE ON cases
WHEN EXISTS (SELECT 1 FROM sla_base WHERE gen = NEW.gen)
  AND (OLD.region IS NOT NEW.region OR OLD.stage IS NOT NEW.stage OR OLD.is_open IS NOT NEW.is_open OR OLD.key_groups IS NOT NEW.key_groups)
BEGIN
  UPDATE case_counts SET n = n - 1
  WHERE gen = OLD.gen AND region = OLD.region AND stage = OLD.stage AND is_open = OLD.is_open AND key_groups = OLD.key_groups;
  INSERT INTO case_counts (gen, region, stage, is_open, key_groups, n)
  VALUES (NEW.gen, NEW.region, NEW.stage, NEW.is_open, NEW.key_groups, 1)
  ON CONFLICT (gen, region, stage, is_open, key_groups) DO UPDATE SET n = n + 1;
END;

-- Case snapshots were replaced by re-folding the log for --as-of (a step recorded late
-- must count from when it happened): nothing reads them any more.
DROP TABLE case_changes;

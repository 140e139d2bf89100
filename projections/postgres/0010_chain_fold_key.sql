-- The greatest fold key (occurred time, recorded time, event id) among a subject's applied
-- events: a fact with a smaller key arrived late, and the runner re-folds its subject in
-- occurred order. Empty on rows projected before this migration: such a subject is
-- re-folded by its next fact (see `runner::SubjectState`).
ALTER TABLE chains ADD COLUMN fold_key TEXT COLLATE "C" NOT NULL DEFAULT '';

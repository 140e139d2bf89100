-- Who read, in which role and why: the HTTP service records the caller's role and the
-- reason an auditor gave; the command line's reads are marked `local`.
ALTER TABLE access_log ADD COLUMN role TEXT NOT NULL DEFAULT 'local';
ALTER TABLE access_log ADD COLUMN reason TEXT;

-- The region an export's list covers, so that an auditor of that region sees who
-- exported it (a read of one history is found through its subject's case instead).
ALTER TABLE access_log ADD COLUMN region TEXT;

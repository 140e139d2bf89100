-- The two secondary indexes become one per view generation (audit_by_stream_gN,
-- clocks_by_subject_gN, partial on gen = N): the runner creates a generation's indexes
-- once that generation is caught up (in one sorted pass instead of an insert per row
-- while it is built) or before it first looks rows up, and drops them with the
-- generation. A store migrated from 0002 gets its active generation's indexes at the
-- next catch-up (`assist project`, or any command that brings the views up to date).
DROP INDEX audit_by_stream;
DROP INDEX clocks_by_subject;

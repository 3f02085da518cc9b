-- Norfolk's ANPR reads, pulled from Norfolk's own database instead of a file.
--
-- Incremental by the time a read reached Norfolk's system (loaded_at), over the night's
-- half-open window [:window_start, :window_end) in UTC, so every row is pulled by exactly one
-- night and a read whose own timestamp is wrong still arrives (and is quarantined with its reason).
-- The columns are those of the shared_csv anpr_reads file; times come back as timestamps and are
-- written in the contract's format. ORDER BY keeps the bytes, and so the checksum, stable.
--
-- Expected source table (in Norfolk's database):
--   anpr_reads(row_no bigserial primary key, read_id text, read_at timestamptz, camera_id text,
--              latitude double precision, longitude double precision, vrm text,
--              loaded_at timestamptz not null)
SELECT read_id, read_at, camera_id, latitude, longitude, vrm
FROM anpr_reads
WHERE loaded_at >= :window_start
  AND loaded_at < :window_end
ORDER BY loaded_at, row_no

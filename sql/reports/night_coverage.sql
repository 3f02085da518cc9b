-- What the night stands on: one row per force and dataset from the night's completeness table
-- (curated/dataset=completeness/date=<night>/), the same truth as the manifests and the ledger.
-- No rows: the night has no completeness table (published before it existed), coverage unknown.
--
-- Views: completeness. Parameters: $night.
SELECT
    CAST($night AS VARCHAR) AS night,
    force,
    force_name,
    dataset_name,
    status,
    status IN ('published', 'published_with_warnings', 'late') AS present,
    received_at,
    cutoff_at,
    late,
    minutes_after_cutoff,
    rows_in,
    rows_published,
    rows_quarantined,
    reasons,
    error,
    warning
FROM completeness
WHERE date = $night
ORDER BY list_position(['incidents', 'anpr_reads', 'seizures'], dataset_name), force

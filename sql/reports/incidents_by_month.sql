-- Incidents per force and calendar month (Europe/London), and for all forces together, over every
-- night published up to and including $night. A record delivered with more than one night counts once.
--
-- Views: incidents. Parameters: $night.
-- month_precision: rows that only carry their month (police.uk street-level files; their time is
-- the first of the month, 00:00 UTC, which is in the same month in Europe/London).
WITH incident AS (
    SELECT DISTINCT ON (record_id) record_id, force, occurred_at, offence, time_precision
    FROM incidents
    WHERE date <= $night
    ORDER BY record_id, date DESC
),
dated AS (
    SELECT force, offence, time_precision, strftime(timezone('Europe/London', occurred_at), '%Y-%m') AS month
    FROM incident
)
SELECT
    coalesce(force, 'all forces') AS force,
    month,
    count(*) AS incidents,
    count(*) FILTER (WHERE offence = 'hare_coursing') AS hare_coursing,
    count(*) FILTER (WHERE time_precision = 'month') AS month_precision
FROM dated
GROUP BY GROUPING SETS ((force, month), (month))
ORDER BY month, force = 'all forces', force

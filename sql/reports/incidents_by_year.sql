-- Incidents per force and financial year (1 April to 31 March, Europe/London; "2021-22"), and for
-- all forces together, with the change on the year before. Over every night published up to and
-- including $night; a record delivered with more than one night counts once. The latest year is
-- usually partial: months_with_data says how many of its months have any incident.
--
-- Views: incidents. Parameters: $night.
WITH incident AS (
    SELECT DISTINCT ON (record_id) record_id, force, occurred_at, offence
    FROM incidents
    WHERE date <= $night
    ORDER BY record_id, date DESC
),
dated AS (
    SELECT force, offence, strftime(local_at, '%Y-%m') AS month,
           CASE WHEN month(local_at) >= 4 THEN year(local_at) ELSE year(local_at) - 1 END AS fy
    FROM (SELECT *, timezone('Europe/London', occurred_at) AS local_at FROM incident)
),
per_year AS (
    SELECT coalesce(force, 'all forces') AS force, fy,
           count(*) AS incidents,
           count(*) FILTER (WHERE offence = 'hare_coursing') AS hare_coursing,
           count(DISTINCT month) AS months_with_data
    FROM dated
    GROUP BY GROUPING SETS ((force, fy), (fy))
)
SELECT
    y.force,
    printf('%d-%02d', y.fy, (y.fy + 1) % 100) AS financial_year,
    y.fy AS year_start,
    y.months_with_data,
    y.incidents,
    p.incidents AS previous_incidents,
    y.incidents - p.incidents AS change,
    round(100.0 * (y.incidents - p.incidents) / p.incidents, 1) AS change_pct,
    y.hare_coursing,
    p.hare_coursing AS previous_hare_coursing,
    round(100.0 * (y.hare_coursing - p.hare_coursing) / nullif(p.hare_coursing, 0), 1) AS hare_coursing_change_pct
FROM per_year AS y
LEFT JOIN per_year AS p ON p.force = y.force AND p.fy = y.fy - 1
ORDER BY y.fy, y.force = 'all forces', y.force

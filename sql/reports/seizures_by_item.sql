-- Seizures per force and item type (dog, vehicle, equipment), and for all forces together: on the
-- night, and in the financial year to date (1 April, Europe/London). "items" adds up quantities
-- (dogs seized; a seizure without a quantity counts as one item). A record delivered with more
-- than one night counts once.
--
-- Views: seizures. Parameters: $night.
WITH seizure AS (
    SELECT DISTINCT ON (record_id) record_id, date, force, item_type, quantity, seized_at
    FROM seizures
    WHERE date <= $night
    ORDER BY record_id, date DESC
),
this_year AS (
    SELECT *
    FROM (SELECT *, timezone('Europe/London', seized_at) AS local_at FROM seizure)
    WHERE (CASE WHEN month(local_at) >= 4 THEN year(local_at) ELSE year(local_at) - 1 END)
        = (CASE WHEN month(CAST($night AS DATE)) >= 4 THEN year(CAST($night AS DATE))
                ELSE year(CAST($night AS DATE)) - 1 END)
)
SELECT
    CAST($night AS VARCHAR) AS night,
    coalesce(force, 'all forces') AS force,
    item_type,
    count(*) FILTER (WHERE date = $night) AS seizures_night,
    CAST(coalesce(sum(coalesce(quantity, 1)) FILTER (WHERE date = $night), 0) AS BIGINT) AS items_night,
    count(*) AS seizures_year_to_date,
    CAST(sum(coalesce(quantity, 1)) AS BIGINT) AS items_year_to_date
FROM this_year
GROUP BY GROUPING SETS ((force, item_type), (item_type))
ORDER BY force = 'all forces', force, item_type

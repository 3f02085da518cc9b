-- Nights with a force's extract absent (missing, quarantined or failed), per force, dataset and
-- calendar month of the night, over every night up to and including $night that has a completeness
-- table: the months and forces the history reports (year-on-year, monthly, seizures) stand on least.
-- Only months with at least one absent night are listed.
--
-- Views: completeness. Parameters: $night.
SELECT
    force,
    dataset_name,
    substr(date, 1, 7) AS month,
    count(*) AS nights_recorded,
    count(*) FILTER (WHERE status NOT IN ('published', 'published_with_warnings', 'late')) AS nights_absent,
    list_sort(list(date) FILTER (WHERE status NOT IN ('published', 'published_with_warnings', 'late')))
        AS absent_nights
FROM completeness
WHERE date <= $night
GROUP BY force, dataset_name, substr(date, 1, 7)
HAVING count(*) FILTER (WHERE status NOT IN ('published', 'published_with_warnings', 'late')) > 0
ORDER BY month, force, list_position(['incidents', 'anpr_reads', 'seizures'], dataset_name)

-- The night's hare-coursing incidents with an exact time, per force (the context of the
-- crossing-vehicles report and of its chart).
--
-- Views: incidents. Parameters: $night.
SELECT DISTINCT ON (record_id)
    CAST($night AS VARCHAR) AS night, force, record_id, occurred_at, latitude, longitude, outcome
FROM incidents
WHERE date = $night AND offence = 'hare_coursing' AND time_precision = 'exact'
ORDER BY record_id, date DESC

-- Vehicles (plate tokens) read by ANPR in two or more forces, each read within ±2 hours of a
-- hare-coursing incident in the force that made the read.
--
-- Views: incidents, anpr_reads (the curated dataset, partition columns date and force included).
-- Parameters: $night (YYYY-MM-DD), $day_before, $day_after (the neighbouring nights: a read just
-- after midnight is published with the next night's ANPR extract).
-- Only incidents with an exact time count: a police.uk row that only knows its month cannot be
-- within two hours of anything.
--
-- Coverage (view completeness, the night's completeness table): the forces whose ANPR reads or
-- incidents are absent on $night (missing, quarantined, failed). A vehicle seen there is not seen
-- here, so a count of forces is a lower bound. Null when the night has no completeness table.
WITH coverage AS (
    SELECT
        count(*) > 0 AS known,
        list_sort(list(force) FILTER (WHERE dataset_name = 'anpr_reads' AND status NOT IN
            ('published', 'published_with_warnings', 'late'))) AS anpr_absent,
        list_sort(list(force) FILTER (WHERE dataset_name = 'incidents' AND status NOT IN
            ('published', 'published_with_warnings', 'late'))) AS incidents_absent
    FROM completeness
    WHERE date = $night
),
hare_coursing AS (
    SELECT DISTINCT ON (record_id) record_id, force, occurred_at
    FROM incidents
    WHERE date = $night AND offence = 'hare_coursing' AND time_precision = 'exact'
    ORDER BY record_id, date DESC
),
reads AS (
    SELECT DISTINCT ON (record_id) record_id, force, plate_token, read_at, camera_id
    FROM anpr_reads
    WHERE date BETWEEN $day_before AND $day_after
    ORDER BY record_id, date DESC
),
near AS (
    SELECT r.plate_token, r.force, r.record_id AS read_record_id, r.read_at, r.camera_id,
           h.record_id AS incident_record_id
    FROM reads AS r
    JOIN hare_coursing AS h
      ON r.force = h.force
     AND r.read_at BETWEEN h.occurred_at - INTERVAL 2 HOUR AND h.occurred_at + INTERVAL 2 HOUR
),
sightings AS (
    SELECT DISTINCT plate_token, force, read_record_id, read_at, camera_id FROM near
)
SELECT
    CAST($night AS VARCHAR) AS night,
    v.plate_token,
    count(DISTINCT v.force) AS n_forces,
    list_sort(list(DISTINCT v.force)) AS forces,
    count(*) AS n_reads,
    min(v.read_at) AS first_read_at,
    max(v.read_at) AS last_read_at,
    (SELECT list_sort(list(DISTINCT n.incident_record_id)) FROM near AS n WHERE n.plate_token = v.plate_token)
        AS incident_record_ids,
    list({'force': v.force, 'read_at': v.read_at, 'camera_id': v.camera_id} ORDER BY v.read_at, v.force)
        AS sightings,
    any_value(CASE WHEN c.known THEN coalesce(c.anpr_absent, CAST([] AS VARCHAR[])) END)
        AS anpr_reads_absent_forces,
    any_value(CASE WHEN c.known THEN coalesce(c.incidents_absent, CAST([] AS VARCHAR[])) END)
        AS incidents_absent_forces
FROM sightings AS v
CROSS JOIN coverage AS c
GROUP BY v.plate_token
HAVING count(DISTINCT v.force) >= 2
ORDER BY n_forces DESC, first_read_at, plate_token
